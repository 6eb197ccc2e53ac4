//! Custom Flight actions of `proto/meshql.proto`.

use std::sync::Arc;

use arrow_flight::{Action, ActionType};
use prost::Message;
use tonic::Status;

use super::service::MeshFlightSql;
use crate::error::Error;
use crate::pipeline::{NodeStatus, Run, RunPlan, Selector};
use crate::proto::{NodeResult, RunPipelineRequest, RunPipelineResult};

/// `Action.type` of the run-pipeline action.
pub const RUN_PIPELINE: &str = "meshql.RunPipeline";

/// The custom actions, as ListActions shows them.
pub fn action_types() -> Vec<ActionType> {
    vec![ActionType {
        r#type: RUN_PIPELINE.to_string(),
        description: "Run transforms of the mesh. Body: meshql.v1.RunPipelineRequest; \
                      result: meshql.v1.RunPipelineResult"
            .to_string(),
    }]
}

/// Runs the selected transforms and answers once the run has ended.
pub async fn run_pipeline(
    svc: &MeshFlightSql,
    action: &Action,
) -> Result<RunPipelineResult, Status> {
    let request = RunPipelineRequest::decode(action.body.as_ref())
        .map_err(|e| Error::user(format!("invalid {RUN_PIPELINE} body: {e}")))?;
    let selectors: Vec<Selector> = request
        .select
        .iter()
        .map(|s| s.parse())
        .collect::<crate::Result<_>>()?;
    let plan = RunPlan::new(svc.engine.mesh(), &selectors)?;
    let report = Run::new(Arc::clone(&svc.engine), plan).await;
    let nodes = report
        .nodes
        .iter()
        .map(|n| {
            let message = match &n.status {
                NodeStatus::Succeeded => String::new(),
                NodeStatus::Failed(why) | NodeStatus::Skipped(why) => why.clone(),
            };
            NodeResult {
                dataset: n.name.to_string(),
                status: n.status.label().to_string(),
                message,
                rows: n.rows,
                version: n.version,
                duration_seconds: n.duration.as_secs_f64(),
            }
        })
        .collect();
    Ok(RunPipelineResult {
        nodes,
        succeeded: report.succeeded(),
    })
}
