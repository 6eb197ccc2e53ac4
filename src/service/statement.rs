//! What a front end hands the service and what the service makes of it: a [`Statement`] (SQL in
//! a search path, parameters, cancel key, parked plan) and its [`Planned`] form, with the binding
//! of parameter values and the inference of their types.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};

use super::cancel::QueryId;
use crate::engine::SearchPath;
use crate::error::{Error, Result};

/// What a front end asks [`super::QueryService::execute`] to run: SQL in a search path, with what the
/// protocol adds to it.
#[derive(Debug, Clone)]
pub struct Statement<'a> {
    /// Where unqualified names resolve.
    pub path: &'a SearchPath,
    pub sql: &'a str,
    /// One row of values for `$1`, `$2`, ... (a batch of more rows binds its first).
    pub params: Option<&'a RecordBatch>,
    /// The key [`super::QueryService::cancel`] stops the query by.
    pub cancel: Option<QueryId>,
    /// The id of the plan [`super::QueryService::park`] kept for this statement.
    pub parked: Option<u128>,
}

impl<'a> Statement<'a> {
    /// `sql` in `path`, without parameters, cancel key or parked plan.
    pub fn new(path: &'a SearchPath, sql: &'a str) -> Self {
        Self {
            path,
            sql,
            params: None,
            cancel: None,
            parked: None,
        }
    }

    pub fn with_params(mut self, params: Option<&'a RecordBatch>) -> Self {
        self.params = params;
        self
    }

    pub fn with_cancel(mut self, key: Option<QueryId>) -> Self {
        self.cancel = key;
        self
    }

    pub fn with_parked(mut self, id: Option<u128>) -> Self {
        self.parked = id;
        self
    }
}

/// A statement planned and governed for one principal, not yet running.
#[derive(Clone)]
pub struct Planned {
    /// The governed logical plan (placeholders unbound).
    pub plan: LogicalPlan,
    /// The session it was planned in (and runs in): it lists only what the principal may read.
    pub state: Arc<SessionState>,
    /// The schema the results will have (with the first row of parameters bound, if given).
    pub schema: SchemaRef,
    /// `$1`, `$2`, ... in numeric order, typed where the plan infers a type (`Null` otherwise).
    pub parameters: Schema,
    /// Datasets the query reads, masks applied and rules that shaped it.
    pub read: BTreeSet<String>,
    pub masked: BTreeSet<String>,
    pub rules: BTreeSet<String>,
}

/// `plan` with the first row of `params` bound (what one execution binds), if any.
pub(super) fn bind_first(plan: LogicalPlan, params: Option<&RecordBatch>) -> Result<LogicalPlan> {
    let Some(batch) = params else {
        return Ok(plan);
    };
    if batch.num_rows() == 0 {
        return Err(Error::user(
            "no parameter values were bound (the parameter batch is empty)",
        ));
    }
    bind(plan, &batch.slice(0, 1))
}

/// Binds one row of parameter values to the plan's placeholders, `$1` first.
pub fn bind(plan: LogicalPlan, row: &RecordBatch) -> Result<LogicalPlan> {
    let types = parameter_types(&plan)?;
    if row.num_columns() != types.len() {
        return Err(Error::user(format!(
            "the statement has {} parameter(s) but {} value(s) were bound",
            types.len(),
            row.num_columns()
        )));
    }
    let mut values = Vec::with_capacity(row.num_columns());
    for (i, column) in row.columns().iter().enumerate() {
        let value = ScalarValue::try_from_array(column, 0)?;
        let value = match types.get(&format!("${}", i + 1)) {
            Some(Some(wanted)) if *wanted != value.data_type() && !value.is_null() => {
                value.cast_to(wanted).map_err(|e| {
                    Error::user(format!(
                        "parameter ${} cannot be used as {wanted}: {e}",
                        i + 1
                    ))
                })?
            }
            _ => value,
        };
        values.push(value);
    }
    Ok(plan.with_param_values(values)?)
}

/// The types of the plan's placeholders, where the plan infers them; a `LIMIT` or `OFFSET`
/// count, which DataFusion leaves untyped, is a `BIGINT`.
fn parameter_types(plan: &LogicalPlan) -> Result<HashMap<String, Option<DataType>>> {
    let mut types = plan.get_parameter_types()?;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Limit(limit) = node {
            for count in [&limit.skip, &limit.fetch].into_iter().flatten() {
                if let Expr::Placeholder(p) = count.as_ref() {
                    types
                        .entry(p.id.clone())
                        .and_modify(|t| {
                            t.get_or_insert(DataType::Int64);
                        })
                        .or_insert(Some(DataType::Int64));
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    Ok(types)
}

/// `$1`, `$2`, ... in numeric order, typed where the plan infers a type; text otherwise (as
/// PostgreSQL types what it cannot infer), so that every client can send a value.
pub(super) fn parameter_schema(plan: &LogicalPlan) -> Result<Schema> {
    let mut params: Vec<(usize, String, Option<DataType>)> = parameter_types(plan)?
        .into_iter()
        .map(|(name, t)| {
            let n = name.trim_start_matches('$').parse::<usize>().map_err(|_| {
                Error::user(format!(
                    "named parameter `{name}` is not supported; use `?` or `$1, $2, ...`"
                ))
            })?;
            Ok((n, name, t))
        })
        .collect::<Result<_>>()?;
    params.sort_by_key(|(n, ..)| *n);
    let fields: Vec<Field> = params
        .into_iter()
        .map(|(_, name, t)| Field::new(name, t.unwrap_or(DataType::Utf8), true))
        .collect();
    Ok(Schema::new(fields))
}
