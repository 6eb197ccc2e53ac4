//! Queries as a principal: plan (guard, read-only check, governance rewrite) and run (admission,
//! planning within the deadline, execution as a [`QueryStream`] with its limits and audit).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::ScalarValue;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan};
use futures::stream::AbortHandle;

use super::api::QueryService;
use super::audit::AuditRecord;
use super::cancel::CancelKey;
use super::rpc::Call;
use super::stream::QueryStream;
use crate::catalog::Visibility;
use crate::engine::{Authorizer, Budget, SearchPath};
use crate::error::{Error, Result};
use crate::governance::{Access, Context, Governed, govern};
use crate::spec::{Action, DatasetName};

/// What a front end asks [`QueryService::execute`] to run: SQL in a search path, with what the
/// protocol adds to it.
#[derive(Debug, Clone)]
pub struct Statement<'a> {
    /// Where unqualified names resolve.
    pub path: &'a SearchPath,
    pub sql: &'a str,
    /// One row of values for `$1`, `$2`, ... (a batch of more rows binds its first).
    pub params: Option<&'a RecordBatch>,
    /// The key [`QueryService::cancel`] stops the query by.
    pub cancel: Option<CancelKey>,
    /// The id of the plan [`QueryService::park`] kept for this statement.
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

    pub fn with_cancel(mut self, key: Option<CancelKey>) -> Self {
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

impl QueryService {
    /// Plans `sql` for the caller: listings of its session show what the principal may read,
    /// every table it reads is checked, row filters and masks are applied. With `params`, the
    /// schema is the one of the plan with their first row bound. Audited as the call's RPC.
    pub async fn plan(
        &self,
        call: &Call,
        path: &SearchPath,
        sql: &str,
        params: Option<&RecordBatch>,
    ) -> Result<Planned> {
        let result = self.plan_within(call, path, sql, params, None).await;
        let mut record = AuditRecord::of(call);
        record.sql = Some(sql.to_string());
        if let Ok(p) = &result {
            record.tables = p.read.iter().cloned().collect();
            record.masked = p.masked.iter().cloned().collect();
        }
        self.audit.record(record.outcome(&result));
        result
    }

    /// Keeps `planned` (what [`QueryService::plan`] answered for the caller's `sql` in `path`)
    /// for a later [`QueryService::execute`] of the same statement, which then does not plan
    /// again; answers the id to pass it. Kept a minute at most, and only once.
    pub fn park(&self, call: &Call, path: &SearchPath, sql: &str, planned: &Planned) -> u128 {
        self.parked.park(&call.principal.name, sql, path, planned)
    }

    /// Plans `sql` as `principal` would run it, unaudited: what `meshql policy explain` shows.
    pub async fn explain(
        &self,
        principal: &crate::governance::Principal,
        sql: &str,
    ) -> Result<Planned> {
        let call = Call::new(principal.clone(), super::Rpc::GetFlightInfo);
        let path = self.default_path().clone();
        self.plan_within(&call, &path, sql, None, None).await
    }

    /// Plans `sql` (or takes the plan kept for it, see [`super::PlanCache`]) within `deadline`.
    async fn plan_within(
        &self,
        call: &Call,
        path: &SearchPath,
        sql: &str,
        params: Option<&RecordBatch>,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Planned> {
        let catalog = self.engine.catalog();
        if params.is_none()
            && let Some(kept) = self.plans.get(catalog, &call.principal, path, sql).await
        {
            return Ok((*kept).clone());
        }
        let (governed, state) = self
            .governed(call, path, sql, self.engine.planning_budget(deadline))
            .await?;
        let bound = bind_first(governed.plan.clone(), params)?;
        let schema = self.engine.result_schema(&bound, &state).await?;
        let parameters = parameter_schema(&governed.plan)?;
        let planned = Planned {
            plan: governed.plan,
            state,
            schema,
            parameters,
            read: governed.read,
            masked: governed.masked,
            rules: governed.rules,
        };
        if params.is_none() {
            let kept = Arc::new(planned.clone());
            self.plans
                .keep(catalog, &call.principal, path, sql, &kept)
                .await;
        }
        Ok(planned)
    }

    /// Plans and governs `sql` within `budget`.
    async fn governed(
        &self,
        call: &Call,
        path: &SearchPath,
        sql: &str,
        budget: Arc<Budget>,
    ) -> Result<(Governed, Arc<SessionState>)> {
        let access = self.access(&call.principal);
        let state = self.session(&access, path);
        let principal = call.principal.clone();
        let decider = access.clone();
        let authorize: Authorizer = Arc::new(move |d: &DatasetName| {
            let decision = decider.decide(Action::Read, d);
            if decision.allowed || d.domain == crate::catalog::SYSTEM_CATALOG {
                return Ok(());
            }
            Err(Error::permission(format!(
                "`{}` may not read `{d}` ({})",
                principal.name, decision.reason
            )))
        });
        let plan = self
            .engine
            .plan_within(sql, &state, budget, Some(authorize))
            .await?;
        let catalog = self.engine.catalog();
        let governed = govern(
            plan,
            &Context {
                access: &access,
                state: &state,
                domain: &path.domain,
                layer: &path.layer,
                known: &|d| catalog.store(d).is_some(),
                datasets: &|| catalog.dataset_names(),
            },
        )?;
        Ok((governed, state))
    }

    /// The session `access`'s principal plans in within `path`: its listings show what the
    /// principal may read. Kept for the next statement (a session holds no state of a query).
    fn session(&self, access: &Access, path: &SearchPath) -> Arc<SessionState> {
        let key = (access.principal.clone(), path.clone());
        self.sessions.get_with(key, || {
            let lister = access.clone();
            let visible: Visibility = Arc::new(move |d: &DatasetName| lister.can(Action::Read, d));
            Arc::new(self.engine.session_visible(path, visible))
        })
    }

    /// Runs `statement` for the caller: waits for a slot, plans within the query's deadline (or
    /// takes the plan parked for it, see [`QueryService::park`]) and answers the result stream,
    /// in the schema [`QueryService::plan`] announced. A cancel key lets
    /// [`QueryService::cancel`] stop it; the audit record is written when the stream ends.
    pub async fn execute(&self, call: &Call, statement: Statement<'_>) -> Result<QueryStream> {
        let mut record = AuditRecord::of(call);
        record.sql = Some(statement.sql.to_string());
        let started = self.start(call, statement, &mut record).await;
        match started {
            Ok(stream) => Ok(stream),
            Err(e) => {
                self.audit.record(record.outcome::<()>(&Err(e.duplicate())));
                Err(e)
            }
        }
    }

    async fn start(
        &self,
        call: &Call,
        statement: Statement<'_>,
        record: &mut AuditRecord,
    ) -> Result<QueryStream> {
        let Statement {
            path,
            sql,
            params,
            cancel,
            parked,
        } = statement;
        if let Some(key) = &cancel
            && self.running.is_cancelled(key)
        {
            return Err(Error::cancelled(
                "this query was cancelled (CancelFlightInfo)",
            ));
        }
        let permit = self.admission.admit().await?;
        // One deadline for planning and streaming.
        let deadline = self.limits.timeout.map(|t| tokio::time::Instant::now() + t);
        let parked = parked.and_then(|id| self.parked.take(id, &call.principal.name, sql, path));
        let planned = match parked {
            Some(planned) => planned,
            None => self.plan_within(call, path, sql, params, deadline).await?,
        };
        record.tables = planned.read.iter().cloned().collect();
        record.masked = planned.masked.iter().cloned().collect();
        let plan = bind_first(planned.plan, params)?;
        // A kept answer of this very plan over the same table versions, or the plan run (and
        // its answer kept as it streams).
        let key = self
            .results
            .key(self.engine.catalog(), path, &plan)
            .await
            .unwrap_or_default();
        let mut fill = None;
        let stream = match key.as_ref().and_then(|k| self.results.get(k)) {
            Some(kept) => {
                record.message = Some("answered from the result cache".into());
                kept
            }
            None => {
                let budget = self.engine.planning_budget(deadline);
                let (_, stream) = self
                    .engine
                    .execute_query(plan, Arc::clone(&planned.state), budget)
                    .await?;
                fill = key.and_then(|k| self.results.fill(k, Arc::clone(&planned.schema)));
                stream
            }
        };
        let (abort, registration) = AbortHandle::new_pair();
        let registered = cancel.map(|key| self.running.register(key, abort));
        Ok(QueryStream::new(
            planned.schema,
            stream,
            registration,
            registered,
            permit,
            self.limits,
            deadline,
            (self.audit.clone(), record.clone()),
        )
        .keeping(fill))
    }
}

/// `plan` with the first row of `params` bound (what one execution binds), if any.
fn bind_first(plan: LogicalPlan, params: Option<&RecordBatch>) -> Result<LogicalPlan> {
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
fn parameter_schema(plan: &LogicalPlan) -> Result<Schema> {
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
