//! The one error type of meshql.
//!
//! Every failure carries an [`ErrorKind`] that says *whose* problem it is (the user's input, a
//! missing object, a permission, the machine's resources, a limit, or a bug in meshql) and a
//! message written for the person who has to fix it. The kind is mapped to gRPC codes and CLI
//! exit codes here and nowhere else; [`foreign`] decides the kind of the errors of the libraries
//! meshql is built on (DataFusion, Arrow, Parquet, delta-rs).

mod foreign;

use std::fmt;

use datafusion::error::DataFusionError;

/// Longest message sent to a client or printed: a cast of a 100,000-digit literal must not turn
/// into a 75 KB error that gRPC refuses to carry.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Whose problem an error is; decides the CLI exit code here and each front end's code (gRPC
/// status, SQLSTATE, HTTP status) in that front end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad SQL, bad configuration, bad data: the caller can fix it.
    UserInput,
    /// A domain, layer, dataset or file that does not exist.
    NotFound,
    /// The principal is known but may not do this (including writes by read-only clients).
    PermissionDenied,
    /// The caller is not authenticated.
    Unauthenticated,
    /// Another writer got there first, or the object is in a state that forbids the operation.
    Conflict,
    /// Data failed its product's contract: the publish was blocked.
    ContractViolation,
    /// A limit was hit: memory, size, complexity, concurrency.
    ResourceExhausted,
    /// The request took longer than its deadline.
    DeadlineExceeded,
    /// The request was cancelled (by the client, or because it went away).
    Cancelled,
    /// Storage or another dependency could not be reached.
    Unavailable,
    /// A bug in meshql.
    Internal,
}

impl ErrorKind {
    /// Process exit code used by the CLI for an error of this kind (documented in the README).
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::UserInput => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::PermissionDenied | ErrorKind::Unauthenticated => 4,
            ErrorKind::Conflict => 5,
            ErrorKind::ContractViolation => 1,
            ErrorKind::ResourceExhausted | ErrorKind::DeadlineExceeded | ErrorKind::Unavailable => {
                6
            }
            ErrorKind::Cancelled => 130,
            ErrorKind::Internal => 70,
        }
    }

    /// The name in `mesh.ops.audit.outcome` and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::UserInput => "user_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::Conflict => "conflict",
            ErrorKind::ContractViolation => "contract_violation",
            ErrorKind::ResourceExhausted => "resource_exhausted",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether trying the same request again later may succeed (a conflict, a busy server, an
    /// unreachable store).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Conflict | ErrorKind::ResourceExhausted | ErrorKind::Unavailable
        )
    }

    /// Whether the server should log the error: bugs and unreachable storage are the
    /// operator's business; a user's mistake is not.
    pub fn should_log(self) -> bool {
        matches!(self, ErrorKind::Internal | ErrorKind::Unavailable)
    }
}

/// An error with a kind, a user-facing message and optional key/value context.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    context: Vec<(&'static str, String)>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// Result alias used across meshql.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            context: Vec::new(),
            source: None,
        }
    }

    pub fn user(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::UserInput, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn permission(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }

    pub fn resource(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceExhausted, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    pub fn deadline(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::DeadlineExceeded, message)
    }

    pub fn cancelled(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Cancelled, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Adds a `key=value` pair shown after the message (dataset, file, run id...).
    pub fn with_context(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.context.push((key, value.to_string()));
        self
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The same error with `prefix: ` before its message.
    pub fn prefixed(mut self, prefix: impl fmt::Display) -> Self {
        self.message = format!("{prefix}: {}", self.message);
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// A copy of the kind, message and context (the source stays with the original).
    pub fn duplicate(&self) -> Self {
        Self {
            kind: self.kind,
            message: self.message.clone(),
            context: self.context.clone(),
            source: None,
        }
    }

    /// Wraps this error so it can travel through DataFusion APIs and be recovered intact.
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }

    /// The error of a failure of foreign code (DataFusion, Arrow, Parquet, delta-rs, ...),
    /// classified by walking its chain of causes.
    pub fn from_foreign(err: &(dyn std::error::Error + 'static)) -> Self {
        foreign::classify(err)
    }

    /// The error of a panic caught in query code: the query fails, the server does not.
    pub fn from_panic(payload: &(dyn std::any::Any + Send)) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        Error::internal(format!(
            "the query engine failed on this query (panic: {what}); the server is unaffected"
        ))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.context.is_empty() {
            let parts: Vec<String> = self
                .context
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// `text` cut to at most `max` bytes on a character boundary, saying how much was left out.
pub fn truncate_message(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!(
        "{}… ({} more bytes not shown)",
        &text[..cut],
        text.len() - cut
    )
}

impl From<DataFusionError> for Error {
    fn from(err: DataFusionError) -> Self {
        foreign::classify(&err)
    }
}

impl From<deltalake::DeltaTableError> for Error {
    fn from(err: deltalake::DeltaTableError) -> Self {
        foreign::classify(&err)
    }
}

impl From<iceberg::Error> for Error {
    fn from(err: iceberg::Error) -> Self {
        foreign::classify(&err)
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(err: arrow::error::ArrowError) -> Self {
        foreign::classify(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_survive_a_trip_through_datafusion() {
        let e = Error::not_found("dataset `a.b.c` not found").into_datafusion();
        let back = Error::from(DataFusionError::Context("planning".into(), Box::new(e)));
        assert_eq!(back.kind(), ErrorKind::NotFound);
        assert_eq!(back.message(), "planning: dataset `a.b.c` not found");
    }

    #[test]
    fn plan_errors_are_user_errors_and_internal_is_internal() {
        assert_eq!(
            Error::from(DataFusionError::Plan("bad".into())).kind(),
            ErrorKind::UserInput
        );
        assert_eq!(
            Error::from(DataFusionError::Internal("bug".into())).kind(),
            ErrorKind::Internal
        );
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let text = "é".repeat(5000);
        let cut = truncate_message(&text, 4097);
        assert!(cut.len() < 4200, "{}", cut.len());
        assert!(cut.ends_with("(5904 more bytes not shown)"), "{cut}");
    }

    #[test]
    fn kinds_know_whether_to_retry() {
        assert!(ErrorKind::Conflict.is_retryable());
        assert!(!ErrorKind::UserInput.is_retryable());
    }
}
