//! The audit log: every request — principal, operation, protocol, SQL, tables read, masked
//! columns, rows, bytes, duration, outcome — as one structured log line (target `meshql::audit`, SQL as a hash only) and
//! one row of `mesh.ops.audit`, a Delta table readable by the admin group.
//!
//! Requests never wait for the log: records go through a channel to a writer task that appends
//! them in batches (every `server.audit_flush_secs`, or every 8192 records), so the cost of a
//! Delta commit is shared by many requests.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::operation::{Call, Operation, Protocol};
use crate::engine::Engine;
use crate::error::{Error, ErrorKind, Result};
use crate::storage::WriteMode;

/// One request.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    pub principal: String,
    pub operation: Operation,
    pub protocol: Protocol,
    pub sql: Option<String>,
    pub tables: Vec<String>,
    pub masked: Vec<String>,
    pub rows: Option<u64>,
    pub bytes: Option<u64>,
    pub duration: Duration,
    /// The kind of the error the request ended with; `None` when it succeeded.
    pub failed: Option<ErrorKind>,
    pub message: Option<String>,
}

impl AuditRecord {
    pub fn new(principal: &str, protocol: Protocol, operation: Operation) -> Self {
        Self {
            at: Utc::now(),
            principal: principal.to_string(),
            operation,
            protocol,
            sql: None,
            tables: Vec::new(),
            masked: Vec::new(),
            rows: None,
            bytes: None,
            duration: Duration::ZERO,
            failed: None,
            message: None,
        }
    }

    /// The record of `call`, started when the call started.
    pub fn of(call: &Call) -> Self {
        let mut r = Self::new(&call.principal.name, call.protocol, call.operation);
        r.at = call.started;
        r
    }

    /// Sets the outcome from a result.
    pub fn outcome<T>(mut self, result: &Result<T>) -> Self {
        if let Err(e) = result {
            self.fail(e);
        }
        self.duration = (Utc::now() - self.at).to_std().unwrap_or_default();
        self
    }

    /// Records a failure (the first one wins).
    pub fn fail(&mut self, e: &Error) {
        if self.failed.is_none() {
            self.failed = Some(e.kind());
            self.message = Some(crate::error::truncate_message(
                &e.to_string(),
                crate::error::MAX_MESSAGE_BYTES,
            ));
        }
    }
}

impl AuditRecord {
    /// `ok`, or the kind of the error (`permission_denied`, ...): `mesh.ops.audit.outcome`.
    pub fn outcome_name(&self) -> &'static str {
        self.failed.map_or("ok", ErrorKind::as_str)
    }
}

enum Message {
    Record(Box<AuditRecord>),
    Flush(oneshot::Sender<()>),
}

/// Where records go.
#[derive(Clone)]
pub struct AuditLog {
    tx: Option<mpsc::UnboundedSender<Message>>,
}

impl AuditLog {
    /// Starts the writer task (nothing is written when `enabled` is false, but log lines are).
    pub fn start(engine: Arc<Engine>, enabled: bool, every: Duration) -> Self {
        if !enabled {
            return Self { tx: None };
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(writer(engine, rx, every.max(Duration::from_millis(100))));
        Self { tx: Some(tx) }
    }

    /// Logs `record` and queues it for `mesh.ops.audit`.
    pub fn record(&self, record: AuditRecord) {
        let sql_sha256 = record.sql.as_deref().map(|s| {
            Sha256::digest(s.as_bytes())
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        });
        tracing::info!(
            target: "meshql::audit",
            principal = %record.principal,
            operation = record.operation.as_str(),
            protocol = record.protocol.as_str(),
            sql_sha256 = sql_sha256.as_deref().unwrap_or(""),
            tables = %record.tables.join(","),
            masked = %record.masked.join(","),
            rows = record.rows.unwrap_or(0),
            bytes = record.bytes.unwrap_or(0),
            duration_ms = record.duration.as_millis() as u64,
            outcome = record.outcome_name(),
            "request"
        );
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Record(Box::new(record)));
        }
    }

    /// Waits until every record queued so far is written.
    pub async fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (done, wait) = oneshot::channel();
            if tx.send(Message::Flush(done)).is_ok() {
                let _ = wait.await;
            }
        }
    }
}

const BATCH: usize = 8192;

async fn writer(engine: Arc<Engine>, mut rx: mpsc::UnboundedReceiver<Message>, every: Duration) {
    let mut pending: Vec<AuditRecord> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    // When the oldest pending record must be written at the latest.
    let mut due = tokio::time::Instant::now();
    loop {
        let message = if pending.is_empty() {
            let m = rx.recv().await;
            due = tokio::time::Instant::now() + every;
            m
        } else {
            match tokio::time::timeout_at(due, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    write(&engine, std::mem::take(&mut pending)).await;
                    continue;
                }
            }
        };
        match message {
            Some(Message::Record(r)) => {
                pending.push(*r);
                if pending.len() >= BATCH {
                    write(&engine, std::mem::take(&mut pending)).await;
                }
            }
            Some(Message::Flush(done)) => {
                waiting.push(done);
                write(&engine, std::mem::take(&mut pending)).await;
                for w in waiting.drain(..) {
                    let _ = w.send(());
                }
            }
            None => {
                write(&engine, std::mem::take(&mut pending)).await;
                return;
            }
        }
    }
}

async fn write(engine: &Engine, records: Vec<AuditRecord>) {
    if records.is_empty() {
        return;
    }
    let text = |f: &dyn Fn(&AuditRecord) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from_iter(records.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                records.iter().map(|r| r.at.timestamp_micros()),
            )
            .with_timezone("UTC"),
        ),
        text(&|r| Some(r.principal.clone())),
        text(&|r| Some(r.operation.as_str().to_string())),
        text(&|r| Some(r.protocol.as_str().to_string())),
        text(&|r| r.sql.clone()),
        text(&|r| (!r.tables.is_empty()).then(|| r.tables.join(", "))),
        text(&|r| (!r.masked.is_empty()).then(|| r.masked.join(", "))),
        Arc::new(Int64Array::from_iter(
            records.iter().map(|r| r.rows.map(|v| v as i64)),
        )),
        Arc::new(Int64Array::from_iter(
            records.iter().map(|r| r.bytes.map(|v| v as i64)),
        )),
        Arc::new(Int64Array::from_iter_values(
            records.iter().map(|r| r.duration.as_millis() as i64),
        )),
        text(&|r| Some(r.outcome_name().to_string())),
        text(&|r| r.message.clone()),
    ];
    if let Err(e) = engine
        .catalog()
        .write_system_table(
            &engine.session(),
            "ops",
            "audit",
            columns,
            WriteMode::Append,
        )
        .await
    {
        tracing::error!(error = %e, records = records.len(), "cannot append to mesh.ops.audit");
    }
}
