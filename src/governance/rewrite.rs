//! Enforcement on the logical plan, before optimisation.
//!
//! Every table scan in the plan — in subqueries, CTEs, UNION branches and inside the mesh's views
//! too — is checked and rewritten in place:
//!
//! - a table the principal may not read is refused with PermissionDenied naming it;
//! - row filters sit directly on the scan, beneath everything else;
//! - masked columns are replaced right above it, with the column's name and qualifier, so
//!   predicates, joins, grouping, sorting, aggregates, casts and error messages only ever see the
//!   masked value.
//!
//! The scans of the `mesh` system catalog get filters limiting their rows to what the principal
//! may read. EXPLAIN shows the governed plan.

use std::collections::BTreeSet;

use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DFSchema, ScalarValue};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, TableScan, lit};

use super::access::{Access, ColumnMask};
use crate::error::{Error, Result};
use crate::spec::policy::Mask;
use crate::spec::{Action, DatasetName};

/// A governed plan and what governance did to it.
#[derive(Debug, Clone)]
pub struct Governed {
    pub plan: LogicalPlan,
    /// Datasets the query reads.
    pub read: BTreeSet<String>,
    /// `domain.layer.dataset.column` masks applied, with their mask.
    pub masked: BTreeSet<String>,
    /// Rules that shaped the plan (allows, masks, filters).
    pub rules: BTreeSet<String>,
}

/// What the rewrite needs besides the plan.
pub struct Context<'a> {
    pub access: &'a Access,
    pub state: &'a SessionState,
    /// Where unqualified names resolve (the session's default domain and layer).
    pub domain: &'a str,
    pub layer: &'a str,
    /// The datasets of the catalog: whether a name is one (table functions, a job's steps and
    /// other session-local tables are not), and all of them (to limit the system catalog's
    /// rows). Looked up, never copied, for each statement.
    pub known: &'a dyn Fn(&DatasetName) -> bool,
    pub datasets: &'a dyn Fn() -> Vec<DatasetName>,
}

/// Governs `plan` for `cx.access`.
pub fn govern(plan: LogicalPlan, cx: &Context<'_>) -> Result<Governed> {
    let mut out = Governed {
        plan: LogicalPlan::EmptyRelation(datafusion::logical_expr::EmptyRelation {
            produce_one_row: false,
            schema: std::sync::Arc::new(DFSchema::empty()),
        }),
        read: BTreeSet::new(),
        masked: BTreeSet::new(),
        rules: BTreeSet::new(),
    };
    out.plan = match plan {
        // EXPLAIN [ANALYZE] shows (and runs) the governed plan only.
        LogicalPlan::Explain(e) => {
            let inner = rewrite(
                e.plan.as_ref().clone(),
                cx,
                cx.domain,
                cx.layer,
                true,
                &mut out,
            )?;
            LogicalPlanBuilder::from(inner)
                .explain(e.verbose, false)?
                .build()?
        }
        LogicalPlan::Analyze(a) => {
            let inner = rewrite(
                a.input.as_ref().clone(),
                cx,
                cx.domain,
                cx.layer,
                true,
                &mut out,
            )?;
            LogicalPlanBuilder::from(inner)
                .explain(a.verbose, true)?
                .build()?
        }
        other => rewrite(other, cx, cx.domain, cx.layer, true, &mut out)?,
    };
    Ok(out)
}

fn rewrite(
    plan: LogicalPlan,
    cx: &Context<'_>,
    domain: &str,
    layer: &str,
    check_reads: bool,
    out: &mut Governed,
) -> Result<LogicalPlan> {
    let result = plan.transform_up_with_subqueries(|node| match node {
        LogicalPlan::TableScan(scan) => {
            let governed = scan_plan(scan, cx, domain, layer, check_reads, out)
                .map_err(|e| e.into_datafusion())?;
            Ok(Transformed::yes(governed))
        }
        // Masks may change a column's type: every parent recomputes its schema.
        other => Ok(Transformed::yes(other.recompute_schema()?)),
    });
    Ok(result.map_err(Error::from)?.data)
}

fn scan_plan(
    scan: TableScan,
    cx: &Context<'_>,
    domain: &str,
    layer: &str,
    check_reads: bool,
    out: &mut Governed,
) -> Result<LogicalPlan> {
    let name = DatasetName::resolve(&scan.table_name, domain, layer);
    // Table functions (`generate_series(...)`), a job's step outputs and other session-local
    // tables are not datasets: only known datasets and the system catalog are governed.
    if name.domain != "mesh" && !(cx.known)(&name) {
        return Ok(LogicalPlan::TableScan(scan));
    }
    if check_reads {
        let decision = cx.access.decide(Action::Read, &name);
        if !decision.allowed {
            return Err(Error::permission(format!(
                "`{}` may not read `{name}` ({})",
                cx.access.principal.name, decision.reason
            )));
        }
        out.rules
            .insert(format!("read `{name}`: {}", decision.reason));
    }
    out.read.insert(name.to_string());
    let qualifier = scan.table_name.clone();
    let fields: Vec<String> = scan
        .projected_schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();

    // A view of the mesh: inline it, governed with its own tables' masks and filters.
    let base = match scan.source.get_logical_plan() {
        Some(view) if name.domain != "mesh" => {
            let inner = rewrite(view.into_owned(), cx, &name.domain, &name.layer, false, out)?;
            let exprs: Vec<Expr> = inner
                .schema()
                .iter()
                .zip(fields.iter())
                .map(|((q, f), want)| {
                    Expr::Column(Column::new(q.cloned(), f.name()))
                        .alias_qualified(Some(qualifier.clone()), want)
                })
                .collect();
            LogicalPlanBuilder::from(inner).project(exprs)?.build()?
        }
        _ => LogicalPlan::TableScan(scan),
    };

    let mut builder = LogicalPlanBuilder::from(base);
    let schema = builder.schema().as_ref().clone();

    // Row filters first, on the raw values.
    let mut predicates: Vec<(String, String)> = cx
        .access
        .row_filters(&name)
        .into_iter()
        .map(|f| (f.predicate, f.rule))
        .collect();
    if name.domain == "mesh"
        && !cx.access.is_admin()
        && let Some(p) = system_filter(&name, cx)
    {
        predicates.push((
            p,
            "the system catalog shows what the principal may read".into(),
        ));
    }

    for (predicate, rule) in predicates {
        let expr = cx
            .state
            .create_logical_expr(&predicate, &schema)
            .map_err(|e| Error::user(format!("row filter of {rule} on `{name}`: {e}")))?;
        builder = builder.filter(expr)?;
        out.rules.insert(format!("filter `{name}` by {rule}"));
    }

    // Masks right above.
    let masks = cx.access.masks(&name, &fields);
    if !masks.is_empty() {
        let mut exprs = Vec::new();
        for (q, f) in schema.iter() {
            let column = Expr::Column(Column::new(q.cloned(), f.name()));
            match masks.iter().find(|m| m.column == *f.name()) {
                None => exprs.push(column),
                Some(m) => {
                    let masked = mask_expr(m, f.data_type(), &schema, cx.state)?;
                    exprs.push(masked.alias_qualified(Some(qualifier.clone()), f.name()));
                    out.masked
                        .insert(format!("{name}.{} ({})", m.column, m.mask));
                    out.rules
                        .insert(format!("mask `{name}.{}` by {}", m.column, m.rule));
                }
            }
        }
        builder = builder.project(exprs)?;
    }
    Ok(builder.build()?)
}

fn quoted(c: &str) -> String {
    format!("\"{}\"", c.replace('"', "\"\""))
}

fn mask_expr(
    m: &ColumnMask,
    data_type: &datafusion::arrow::datatypes::DataType,
    schema: &DFSchema,
    state: &SessionState,
) -> Result<Expr> {
    let null = || -> Result<Expr> { Ok(lit(ScalarValue::try_from(data_type)?)) };
    match &m.mask {
        Mask::Null => null(),
        Mask::Redact if is_text(data_type) => Ok(lit("*****")),
        Mask::Redact => null(),
        Mask::Sha256 => {
            let sql = format!(
                "encode(sha256(CAST({} AS VARCHAR)), 'hex')",
                quoted(&m.column)
            );
            Ok(state.create_logical_expr(&sql, schema)?)
        }
        Mask::Expression(e) => {
            let sql = e.replace("{column}", &quoted(&m.column));
            state
                .create_logical_expr(&sql, schema)
                .map_err(|err| Error::user(format!("mask of {}: {err}", m.rule)))
        }
    }
}

fn is_text(t: &datafusion::arrow::datatypes::DataType) -> bool {
    use datafusion::arrow::datatypes::DataType::*;
    matches!(t, Utf8 | LargeUtf8 | Utf8View)
}

/// The predicate limiting a system table to what the principal may read.
fn system_filter(name: &DatasetName, cx: &Context<'_>) -> Option<String> {
    let all = (cx.datasets)();
    let readable: Vec<&DatasetName> = all
        .iter()
        .filter(|d| d.domain != "mesh" && cx.access.can(Action::Read, d))
        .collect();
    let list = |items: Vec<String>| -> String {
        if items.is_empty() {
            "NULL".into()
        } else {
            items
                .iter()
                .map(|s| format!("'{}'", s.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let names = list(readable.iter().map(|d| d.to_string()).collect());
    let domains = list(
        readable
            .iter()
            .map(|d| d.domain.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    );
    let full = "concat(domain, '.', layer, '.', dataset)";
    Some(match (name.layer.as_str(), name.dataset.as_str()) {
        ("catalog", "domains") => format!("domain IN ({domains})"),
        ("catalog", _) => format!("{full} IN ({names})"),
        ("ops", "runs") => format!("node IN ({names})"),
        ("ops", "versions") => format!("{full} IN ({names})"),
        ("ops", "checks") => format!("dataset IN ({names})"),
        ("lineage", _) => format!("upstream IN ({names}) AND downstream IN ({names})"),
        _ => return None,
    })
}
