//! Writing the tables of the `mesh` system catalog: appends and replacements of their rows, and
//! the one-time rewrite of a table an earlier meshql wrote with other columns.

use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemTable;
use datafusion::common::{Column, ScalarValue};
use datafusion::datasource::provider_as_source;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlanBuilder, TryCast, lit};

use super::MeshCatalog;
use super::system::{SYSTEM_CATALOG, system_schema};
use crate::error::{Error, Result};
use crate::spec::DatasetName;
use crate::storage::{CommitMetadata, WriteMode};

/// What fills a column of a system table when a table written without it is rewritten.
enum Earlier {
    /// The column earlier meshql versions wrote under this name.
    Renamed(&'static str),
    /// A value every earlier row had.
    Constant(&'static str),
}

/// The columns of `mesh.<schema>.<table>` that earlier meshql versions did not write, and what
/// fills them in their rows.
fn earlier_columns(schema: &str, table: &str) -> &'static [(&'static str, Earlier)] {
    match (schema, table) {
        // Until the front ends spoke through neutral operations, the audit recorded the Flight
        // RPC and the gRPC code, and every request came over Flight SQL.
        ("ops", "audit") => &[
            ("operation", Earlier::Renamed("rpc")),
            ("protocol", Earlier::Constant("flight_sql")),
            ("outcome", Earlier::Renamed("status")),
        ],
        _ => &[],
    }
}

impl MeshCatalog {
    /// Writes `columns` to a table of the `mesh` system catalog (`mesh.<schema>.<table>`), in
    /// `state` (a session of the engine: it plans Delta writes).
    pub async fn write_system_table(
        &self,
        state: &SessionState,
        schema: &str,
        table: &str,
        columns: Vec<ArrayRef>,
        mode: WriteMode,
    ) -> Result<()> {
        let name = DatasetName::new(SYSTEM_CATALOG, schema, table);
        let columns_schema = system_schema(schema, table)
            .ok_or_else(|| Error::internal(format!("no system table `{name}`")))?;
        if self.store(&name).is_none() {
            return Err(Error::internal(format!("no store for `{name}`")));
        }
        let checked = |catalog: &Self| {
            catalog
                .current_system_tables
                .lock()
                .is_ok_and(|c| c.contains(&name))
        };
        if matches!(mode, WriteMode::Append) && !checked(self) {
            self.upgrade_system_table(state, &name, &columns_schema)
                .await?;
        }
        if let Ok(mut current) = self.current_system_tables.lock() {
            current.insert(name.clone());
        }
        let batch = RecordBatch::try_new(Arc::clone(&columns_schema), columns)?;
        let provider = MemTable::try_new(columns_schema, vec![vec![batch]])?;
        let plan = LogicalPlanBuilder::scan(table, provider_as_source(Arc::new(provider)), None)?
            .build()?;
        self.publish(&name, plan, state, &mode, CommitMetadata::new())
            .await
            .map(|_| ())
    }

    /// Rewrites `name` in today's columns when an earlier meshql wrote it with others: renamed
    /// columns carried over, new ones filled as [`earlier_columns`] says. One replacing commit,
    /// so the earlier versions stay readable with `VERSION AS OF`.
    async fn upgrade_system_table(
        &self,
        state: &SessionState,
        name: &DatasetName,
        today: &SchemaRef,
    ) -> Result<()> {
        let Some(snapshot) = self.snapshot(name).await? else {
            return Ok(());
        };
        let found = snapshot.provider.schema();
        let names = |s: &SchemaRef| -> Vec<String> {
            s.fields().iter().map(|f| f.name().clone()).collect()
        };
        if names(&found) == names(today) {
            return Ok(());
        }
        let earlier = earlier_columns(&name.layer, &name.dataset);
        let column = |n: &str| Expr::Column(Column::from_name(n));
        let scan = LogicalPlanBuilder::scan(
            name.dataset.as_str(),
            provider_as_source(Arc::clone(&snapshot.provider)),
            None,
        )?;
        let mut exprs = Vec::new();
        for field in today.fields() {
            let value = if found.field_with_name(field.name()).is_ok() {
                column(field.name())
            } else {
                match earlier.iter().find(|(n, _)| n == field.name()) {
                    Some((_, Earlier::Renamed(from))) if found.field_with_name(from).is_ok() => {
                        column(from)
                    }
                    Some((_, Earlier::Constant(v))) => lit(*v),
                    _ if field.is_nullable() => lit(ScalarValue::Null),
                    _ => {
                        return Err(Error::internal(format!(
                            "`{name}` was written without column `{}`, and nothing fills it",
                            field.name()
                        )));
                    }
                }
            };
            // A column today's rows may leave empty must be nullable in the rewritten table,
            // whatever the earlier rows held: a TRY_CAST is.
            let typed = match field.is_nullable() {
                true => Expr::TryCast(TryCast::new(Box::new(value), field.data_type().clone())),
                false => value.cast_to(field.data_type(), scan.schema())?,
            };
            exprs.push(typed.alias(field.name()));
        }
        let plan = scan.project(exprs)?.build()?;
        tracing::info!(table = %name, "rewriting a system table in this version's columns");
        self.publish(
            name,
            plan,
            state,
            &WriteMode::Replace,
            CommitMetadata::new(),
        )
        .await?;
        Ok(())
    }
}
