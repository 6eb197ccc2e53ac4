//! Time travel: reading a dataset as it was at an earlier version.
//!
//! ```sql
//! SELECT * FROM finance.gold.revenue VERSION AS OF 3;
//! SELECT * FROM finance.gold.revenue TIMESTAMP AS OF '2026-11-30 10:00:00';
//! SELECT * FROM finance.gold.revenue FOR SYSTEM_TIME AS OF now() - INTERVAL '1' DAY;
//! ```
//!
//! `VERSION AS OF n` names a Delta version, an Iceberg sequence number or an Iceberg snapshot
//! id; `TIMESTAMP AS OF t` (or `FOR SYSTEM_TIME AS OF t`) the version current at `t` — the last
//! committed at or before it —, with `t` any constant expression, read as UTC when it carries no
//! zone. These are the forms of Spark, Databricks and BigQuery; client SQL is parsed with
//! [`MeshDialect`], DataFusion's generic dialect with these clauses on.
//!
//! DataFusion's planner ignores the clauses, and opening an old version is asynchronous while
//! planning a relation is not. So, before planning, [`prepare`] finds every versioned table of
//! the statement and opens the version it names; during planning [`Versions`], a relation
//! planner, turns each into a scan of that version under the name the query wrote — so the
//! scan is governed exactly like one of the current version (policies, masks, row filters,
//! audit), and a versioned table it does not hold is an error, never the current version.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Array, TimestampMicrosecondArray};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::provider_as_source;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlanBuilder;
use datafusion::logical_expr::planner::{
    PlannedRelation, RelationPlanner, RelationPlannerContext, RelationPlanning,
};
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{
    Expr, ObjectName, TableFactor, TableVersion, Value, Visit, Visitor,
};

use super::guard::{self, SqlLimits};
use crate::catalog::MeshCatalog;
use crate::error::{Error, Result};
use crate::spec::DatasetName;
use crate::storage::AsOf;

/// A versioned table as the statement wrote it: its name and its version clause.
type Key = (TableReference, String);

/// The versions a statement reads, opened, for [`RelationPlanner`].
#[derive(Debug)]
pub struct Versions {
    opened: HashMap<Key, Arc<dyn TableProvider>>,
}

/// Opens every version the statement reads with `VERSION AS OF` / `TIMESTAMP AS OF`; `None`
/// when it reads none. The tables were authorized and found by the caller.
pub async fn prepare(
    catalog: &MeshCatalog,
    state: &SessionState,
    statement: &DfStatement,
    limits: SqlLimits,
) -> Result<Option<Versions>> {
    let found = versioned_tables(statement)?;
    if found.is_empty() {
        return Ok(None);
    }
    let options = state.config().options();
    let normalize = options.sql_parser.enable_ident_normalization;
    let (domain, layer) = (
        options.catalog.default_catalog.clone(),
        options.catalog.default_schema.clone(),
    );
    let mut opened = HashMap::new();
    for (name, version) in found {
        let reference = object_name_to_table_reference(name, normalize)?;
        let key = (reference.clone(), version.to_string());
        if opened.contains_key(&key) {
            continue;
        }
        let as_of = as_of(&version, state, limits).await?;
        let dataset = DatasetName::resolve(&reference, &domain, &layer);
        let snapshot = catalog.snapshot_as_of(&dataset, &as_of).await?;
        opened.insert(key, Arc::clone(&snapshot.provider));
    }
    Ok(Some(Versions { opened }))
}

impl Versions {
    /// `state` planning with these versions.
    pub fn into_state(self, state: &SessionState) -> Result<SessionState> {
        let mut state = state.clone();
        state.register_relation_planner(Arc::new(self))?;
        Ok(state)
    }
}

impl RelationPlanner for Versions {
    fn plan_relation(
        &self,
        relation: TableFactor,
        context: &mut dyn RelationPlannerContext,
    ) -> DfResult<RelationPlanning> {
        let TableFactor::Table {
            name,
            alias,
            version: Some(version),
            ..
        } = &relation
        else {
            return Ok(RelationPlanning::Original(Box::new(relation)));
        };
        let reference = context.object_name_to_table_reference(name.clone())?;
        let key = (reference.clone(), version.to_string());
        // Never the current version in place of the one asked for.
        let provider = self.opened.get(&key).ok_or_else(|| {
            DataFusionError::Plan(format!(
                "`{reference} {version}` can only be read where a dataset is named directly"
            ))
        })?;
        let plan =
            LogicalPlanBuilder::scan(reference, provider_as_source(Arc::clone(provider)), None)?
                .build()?;
        Ok(RelationPlanning::Planned(Box::new(PlannedRelation::new(
            plan,
            alias.clone(),
        ))))
    }
}

/// Every table of the statement (in subqueries and CTEs too) with a version clause.
fn versioned_tables(statement: &DfStatement) -> Result<Vec<(ObjectName, TableVersion)>> {
    struct Found(Vec<(ObjectName, TableVersion)>);
    impl Visitor for Found {
        type Break = Error;
        fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<Error> {
            if let TableFactor::Table {
                name,
                version: Some(version),
                args,
                ..
            } = factor
            {
                if args.is_some() {
                    return ControlFlow::Break(Error::user(format!(
                        "`{name}(...)` is a table function; only datasets have versions"
                    )));
                }
                self.0.push((name.clone(), version.clone()));
            }
            ControlFlow::Continue(())
        }
    }
    let mut found = Found(Vec::new());
    let inner = match statement {
        DfStatement::Statement(s) => s.visit(&mut found),
        DfStatement::Explain(e) => return versioned_tables(&e.statement),
        _ => ControlFlow::Continue(()),
    };
    match inner {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(found.0),
    }
}

/// The version a clause names.
async fn as_of(version: &TableVersion, state: &SessionState, limits: SqlLimits) -> Result<AsOf> {
    match version {
        TableVersion::VersionAsOf(Expr::Value(v)) => match &v.value {
            Value::Number(n, _) => n.parse().map(AsOf::Version).map_err(|_| {
                Error::user(format!(
                    "`VERSION AS OF {n}`: a version is a whole number (a Delta version, an \
                     Iceberg sequence number or snapshot id)"
                ))
            }),
            other => Err(Error::user(format!(
                "`VERSION AS OF {other}`: a version is a whole number"
            ))),
        },
        TableVersion::VersionAsOf(other) => Err(Error::user(format!(
            "`VERSION AS OF {other}`: a version is a whole number"
        ))),
        TableVersion::TimestampAsOf(expr) | TableVersion::ForSystemTimeAsOf(expr) => {
            timestamp_of(expr, state, limits).await.map(AsOf::Timestamp)
        }
        TableVersion::Function(f) => Err(Error::user(format!(
            "`{f}` is not supported; name a version with `VERSION AS OF n` or a time with \
             `TIMESTAMP AS OF '2026-11-30 10:00:00'`"
        ))),
    }
}

/// Evaluates the constant `expr` of `TIMESTAMP AS OF` as a UTC time. It may call functions
/// (`now() - INTERVAL '1' DAY`) but not read tables, nor take parameters: the version is chosen
/// when the statement is planned.
async fn timestamp_of(
    expr: &Expr,
    state: &SessionState,
    limits: SqlLimits,
) -> Result<DateTime<Utc>> {
    let clause = || format!("`TIMESTAMP AS OF {expr}`");
    let sql = format!("SELECT CAST(({expr}) AS TIMESTAMP(6))");
    let statement = guard::parse(&sql, limits)?;
    if !state.resolve_table_references(&statement)?.is_empty() {
        return Err(Error::user(format!(
            "{}: the time is a constant expression and cannot read tables",
            clause()
        )));
    }
    let plan = state
        .statement_to_plan(statement)
        .await
        .map_err(|e| Error::from(e).prefixed(clause()))?;
    if !plan.get_parameter_types()?.is_empty() {
        return Err(Error::user(format!(
            "{}: parameters cannot name a version (it is chosen when the statement is \
             prepared); write the time as a literal",
            clause()
        )));
    }
    let physical = state
        .create_physical_plan(&plan)
        .await
        .map_err(|e| Error::from(e).prefixed(clause()))?;
    let batches = datafusion::physical_plan::collect(physical, state.task_ctx())
        .await
        .map_err(|e| Error::from(e).prefixed(clause()))?;
    let micros = batches
        .first()
        .and_then(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
        })
        .filter(|a| a.len() == 1 && a.is_valid(0))
        .map(|a| a.value(0));
    micros
        .and_then(DateTime::<Utc>::from_timestamp_micros)
        .ok_or_else(|| Error::user(format!("{} is not a time", clause())))
}

#[cfg(test)]
mod tests {
    use datafusion::sql::parser::DFParserBuilder;

    use super::super::dialect::MeshDialect;

    use super::*;

    fn versions_of(sql: &str) -> Vec<String> {
        let mut statements = DFParserBuilder::new(sql)
            .with_dialect(&MeshDialect::new())
            .build()
            .and_then(|mut p| p.parse_statements())
            .unwrap();
        versioned_tables(&statements.pop_front().unwrap())
            .unwrap()
            .into_iter()
            .map(|(n, v)| format!("{n} {v}"))
            .collect()
    }

    #[test]
    fn every_versioned_table_is_found_in_joins_subqueries_and_ctes() {
        assert_eq!(
            versions_of(
                "WITH old AS (SELECT * FROM a.b.c VERSION AS OF 2) \
                 SELECT * FROM old JOIN d TIMESTAMP AS OF '2026-01-01' AS x ON true \
                 WHERE EXISTS (SELECT 1 FROM e FOR SYSTEM_TIME AS OF now())"
            ),
            [
                "a.b.c VERSION AS OF 2",
                "d TIMESTAMP AS OF '2026-01-01'",
                "e FOR SYSTEM_TIME AS OF now()"
            ]
        );
        assert!(versions_of("SELECT * FROM t").is_empty());
        assert_eq!(
            versions_of("EXPLAIN SELECT * FROM t VERSION AS OF 1"),
            ["t VERSION AS OF 1"]
        );
    }
}
