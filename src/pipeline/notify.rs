//! Events meshql sends to the webhooks of mesh.yaml: a run that failed, a publish its contract
//! blocked, a product that turned stale. Each is one JSON POST; a webhook that cannot be reached
//! is logged and never fails what sent the event.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::report::{NodeStatus, RunReport};
use crate::spec::{EventKind, Mesh};

/// One event.
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    pub body: Value,
}

fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::RunFailed => "run_failed",
        EventKind::PublishBlocked => "publish_blocked",
        EventKind::ProductStale => "product_stale",
    }
}

impl Event {
    fn new(kind: EventKind, mesh: &Mesh, at: DateTime<Utc>, fields: Value) -> Self {
        let mut body = json!({
            "event": kind_name(kind),
            "mesh": mesh.name,
            "at": at.to_rfc3339(),
        });
        if let (Some(b), Value::Object(f)) = (body.as_object_mut(), fields) {
            b.extend(f);
        }
        Self { kind, body }
    }

    /// `publish_blocked` for each blocked node of a run, then one `run_failed` if any node
    /// failed or was blocked.
    pub fn of_run(mesh: &Mesh, report: &RunReport) -> Vec<Event> {
        let now = Utc::now();
        let mut out = Vec::new();
        for n in &report.nodes {
            if let NodeStatus::Blocked(why) = &n.status {
                let failed: Vec<Value> = n
                    .checks
                    .iter()
                    .filter(|c| c.blocks())
                    .map(|c| json!({"rule": c.rule, "kind": c.kind, "expected": c.expected, "observed": c.observed}))
                    .collect();
                out.push(Event::new(
                    EventKind::PublishBlocked,
                    mesh,
                    now,
                    json!({"run_id": report.run_id, "node": n.name, "message": why, "failed_rules": failed}),
                ));
            }
        }
        let bad: Vec<Value> = report
            .nodes
            .iter()
            .filter(|n| matches!(n.status, NodeStatus::Failed { .. } | NodeStatus::Blocked(_)))
            .map(|n| json!({"node": n.name, "status": n.status.label(), "message": n.status.detail()}))
            .collect();
        if !bad.is_empty() {
            let skipped: Vec<&str> = report
                .nodes
                .iter()
                .filter(|n| n.status.label() == "skipped")
                .map(|n| n.name.as_str())
                .collect();
            out.push(Event::new(
                EventKind::RunFailed,
                mesh,
                now,
                json!({"run_id": report.run_id, "failed": bad, "skipped": skipped}),
            ));
        }
        out
    }

    /// `product_stale`.
    pub fn stale(
        mesh: &Mesh,
        at: DateTime<Utc>,
        product: &str,
        contract_id: &str,
        last_publish: Option<DateTime<Utc>>,
        latency: Duration,
    ) -> Event {
        Event::new(
            EventKind::ProductStale,
            mesh,
            at,
            json!({
                "product": product,
                "contract_id": contract_id,
                "last_publish": last_publish.map(|t| t.to_rfc3339()),
                "age_secs": last_publish.map(|t| (at - t).num_seconds()),
                "latency_secs": latency.as_secs(),
            }),
        )
    }
}

/// Sends events to every webhook that wants them.
pub async fn send(mesh: &Mesh, events: &[Event]) {
    let hooks = &mesh.notifications.webhooks;
    if hooks.is_empty() || events.is_empty() {
        return;
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot build the webhook client");
            return;
        }
    };
    for event in events {
        for hook in hooks {
            if !hook.events.is_empty() && !hook.events.contains(&event.kind) {
                continue;
            }
            let sent = client
                .post(&hook.url)
                .header("content-type", "application/json")
                .body(event.body.to_string())
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::warn!(url = %hook.url, status = %r.status(), "webhook refused the event")
                }
                Err(e) => tracing::warn!(url = %hook.url, error = %e, "cannot reach webhook"),
            }
        }
    }
}
