//! Pipelines: transforms (SQL files) and mu-pipelines job items as one DAG, planned from the SQL
//! they read and run in dependency order.
//!
//! [`RunPlan::new`] picks the nodes a selection names; [`Run`] executes them — independent nodes
//! in parallel — each as one atomic publish per table, skipping nodes that are up to date. A
//! failed node keeps its tables at their previous versions and its dependants are skipped.
//! [`JobRun`] runs the items of one job file. Every node ends up in `mesh.ops.runs`.

mod dag;
mod freshness;
mod history;
mod incremental;
pub mod job;
pub mod lineage;
mod node;
mod notify;
mod publish;
mod report;
mod run;
mod schedule;

pub use dag::{RunPlan, Selector};
pub use freshness::FreshnessMonitor;
pub use history::refresh as refresh_system_catalog;
pub use notify::Event;
pub use report::{NodeReport, NodeStatus, RunEvent, RunReport};
pub use run::{JobRun, Run};
pub use schedule::{Scheduled, run_schedules, scheduled};
