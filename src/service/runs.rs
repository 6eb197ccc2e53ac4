//! Pipeline runs on behalf of a principal: every node of the selection must be the principal's
//! to run (policies); the run is audited.

use std::sync::Arc;

use super::api::QueryService;
use super::audit::AuditRecord;
use super::operation::Call;
use crate::error::Result;
use crate::pipeline::{Run, RunPlan, RunReport, Selector};
use crate::spec::Action;

impl QueryService {
    /// Runs the nodes `select` names (`domain`, `domain.layer`, `domain.layer.dataset`, with a
    /// trailing `+` for everything downstream) and answers the report once the run has ended.
    pub async fn run_pipeline(
        &self,
        call: &Call,
        select: &[String],
        force: bool,
    ) -> Result<RunReport> {
        let result = self.run_selection(call, select, force).await;
        self.audit.record(AuditRecord::of(call).outcome(&result));
        result
    }

    async fn run_selection(
        &self,
        call: &Call,
        select: &[String],
        force: bool,
    ) -> Result<RunReport> {
        let selectors: Vec<Selector> = select.iter().map(|s| s.parse()).collect::<Result<_>>()?;
        let plan = RunPlan::new(self.engine.mesh(), &selectors)?;
        for node in &plan.nodes {
            self.require(&call.principal, Action::Run, node)?;
        }
        Ok(Run::new(Arc::clone(&self.engine), plan)
            .with_force(force)
            .await)
    }
}
