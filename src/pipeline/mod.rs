//! Pipelines: the DAG of transforms, planned from the SQL they read, run in dependency order.
//!
//! [`RunPlan::new`] picks the nodes a selection names; [`Run`] executes them — independent nodes
//! in parallel — each as one atomic publish. A failed node keeps its table at the previous
//! version and its dependants are skipped.

mod dag;
mod run;

pub use dag::{RunPlan, Selector};
pub use run::{NodeReport, NodeStatus, Run, RunReport};
