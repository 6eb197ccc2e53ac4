//! What a run reports: how each node ended, and what the run tells its observer. A leaf of the
//! pipeline module: runs write reports; history, lineage and notifications read them.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{Error, ErrorKind};
use crate::quality::Check;

/// How a node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeStatus {
    /// Published a new version.
    Succeeded,
    /// Nothing to do: its definition and everything it reads are unchanged since its last
    /// publish.
    UpToDate,
    /// Failed; the table keeps its previous version. The kind says whose problem it is (a
    /// conflict with another writer is worth retrying; a bad transform is not).
    Failed { kind: ErrorKind, message: String },
    /// Its rows failed their contract: nothing was published; the table keeps its previous
    /// version.
    Blocked(String),
    /// Not run because a node it reads failed or was skipped.
    Skipped(String),
}

impl NodeStatus {
    pub fn failed(e: &Error) -> Self {
        NodeStatus::Failed {
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    /// `ok`, `up_to_date`, `failed`, `blocked` or `skipped` (as in `mesh.ops.runs`).
    pub fn label(&self) -> &'static str {
        match self {
            NodeStatus::Succeeded => "ok",
            NodeStatus::UpToDate => "up_to_date",
            NodeStatus::Failed { .. } => "failed",
            NodeStatus::Blocked(_) => "blocked",
            NodeStatus::Skipped(_) => "skipped",
        }
    }

    /// Why it failed, was blocked or was skipped.
    pub fn detail(&self) -> Option<&str> {
        match self {
            NodeStatus::Failed { message: why, .. }
            | NodeStatus::Blocked(why)
            | NodeStatus::Skipped(why) => Some(why),
            _ => None,
        }
    }

    pub(crate) fn is_success(&self) -> bool {
        matches!(self, NodeStatus::Succeeded | NodeStatus::UpToDate)
    }
}

/// What happened to one node.
#[derive(Debug, Clone)]
pub struct NodeReport {
    /// The node: the table it writes (the first one, for a job writing several), or
    /// `file#item` for a job writing only files.
    pub name: String,
    /// `transform` or `job`.
    pub kind: &'static str,
    pub status: NodeStatus,
    pub rows: Option<u64>,
    pub started_at: DateTime<Utc>,
    pub duration: Duration,
    /// Version published by this run (or current, when up to date).
    pub version: Option<u64>,
    /// What the node read: dataset → version, `file:<path>` → size and modification time.
    pub inputs: BTreeMap<String, Value>,
    /// Contract rules evaluated before publishing.
    pub checks: Vec<Check>,
}

impl NodeReport {
    /// A node that did no work: skipped, or failed before it started.
    pub(crate) fn unrun(name: String, kind: &'static str, status: NodeStatus) -> Self {
        Self {
            name,
            kind,
            status,
            rows: None,
            started_at: Utc::now(),
            duration: Duration::ZERO,
            version: None,
            inputs: BTreeMap::new(),
            checks: Vec::new(),
        }
    }
}

/// What happened to every node of a run, in completion order.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    pub run_id: String,
    pub nodes: Vec<NodeReport>,
    pub duration: Duration,
    /// Problems recording the run in the `mesh` system catalog (the nodes' tables are
    /// published regardless).
    pub history_errors: Vec<String>,
}

impl RunReport {
    /// Every node published or was up to date.
    pub fn succeeded(&self) -> bool {
        self.nodes.iter().all(|n| n.status.is_success())
    }

    /// The CLI's exit code for this run: 0 when every node succeeded, 5 when the only failures
    /// were conflicts with other writers (retrying the run may succeed), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.succeeded() {
            return 0;
        }
        let only_conflicts = self.nodes.iter().all(|n| match &n.status {
            NodeStatus::Failed { kind, .. } => *kind == ErrorKind::Conflict,
            NodeStatus::Blocked(_) => false,
            _ => true,
        });
        if only_conflicts {
            ErrorKind::Conflict.exit_code() as u8
        } else {
            1
        }
    }

    pub fn count(&self, label: &str) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.status.label() == label)
            .count()
    }

    pub fn node(&self, name: &str) -> Option<&NodeReport> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// What a run tells its observer.
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// A node started.
    Started { name: &'a str, kind: &'static str },
    /// A node ended (or was skipped).
    Finished(&'a NodeReport),
    /// Text of a `print` destination.
    Printed { name: &'a str, text: &'a str },
}
