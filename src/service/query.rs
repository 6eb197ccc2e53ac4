//! Queries as a principal: plan (guard, read-only check, governance rewrite) and run (admission,
//! planning within the deadline, execution as a [`QueryStream`] with its limits and audit).

use std::sync::Arc;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::SessionState;
use futures::stream::AbortHandle;

use super::api::QueryService;
use super::audit::AuditRecord;
use super::operation::{Call, Operation, Protocol};
use super::statement::{Planned, Statement, bind_first, parameter_schema};
use super::stream::QueryStream;
use crate::catalog::Visibility;
use crate::engine::{Authorizer, Budget, SearchPath};
use crate::error::{Error, Result};
use crate::governance::{Access, Context, Governed, govern};
use crate::spec::{Action, DatasetName};

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
        let call = Call::new(principal.clone(), Protocol::Cli, Operation::Query);
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
