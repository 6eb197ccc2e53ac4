//! The one error type of meshql.
//!
//! Every failure carries an [`ErrorKind`] that says *whose* problem it is (the user's input, a
//! missing object, a permission, the machine's resources, or a bug in meshql) and a message written
//! for the person who has to fix it. The kind is mapped to gRPC codes and CLI exit codes here and
//! nowhere else.

use std::fmt;

use datafusion::error::DataFusionError;

/// Whose problem an error is; decides the gRPC code and the CLI exit code.
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
    /// The object exists but is in a state that forbids the operation.
    Conflict,
    /// Data failed its product's contract: the publish was blocked.
    ContractViolation,
    /// A limit was hit: memory, size, concurrency.
    ResourceExhausted,
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
            ErrorKind::ResourceExhausted | ErrorKind::Unavailable => 6,
            ErrorKind::Internal => 70,
        }
    }

    fn tonic_code(self) -> tonic::Code {
        match self {
            ErrorKind::UserInput => tonic::Code::InvalidArgument,
            ErrorKind::NotFound => tonic::Code::NotFound,
            ErrorKind::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorKind::Conflict | ErrorKind::ContractViolation => tonic::Code::FailedPrecondition,
            ErrorKind::ResourceExhausted => tonic::Code::ResourceExhausted,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
            ErrorKind::Internal => tonic::Code::Internal,
        }
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

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// Wraps this error so it can travel through DataFusion APIs and be recovered intact.
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
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

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        if err.kind == ErrorKind::Internal {
            tracing::error!(error = %err, source = ?err.source, "internal error");
        }
        tonic::Status::new(err.kind.tonic_code(), err.to_string())
    }
}

impl From<DataFusionError> for Error {
    fn from(err: DataFusionError) -> Self {
        classify_datafusion(err)
    }
}

impl From<deltalake::DeltaTableError> for Error {
    fn from(err: deltalake::DeltaTableError) -> Self {
        use deltalake::DeltaTableError as D;
        match err {
            D::Arrow { source } => Error::user(format!("data error: {source}")),
            D::ObjectStore { source } => {
                Error::new(ErrorKind::Unavailable, format!("storage error: {source}"))
            }
            D::Io { source } => {
                Error::new(ErrorKind::Unavailable, format!("storage error: {source}"))
            }
            D::NotATable(msg) => Error::not_found(format!("not a Delta table: {msg}")),
            // delta-rs turns DataFusion's planning and execution errors into `Generic` strings:
            // those are the transform's input or SQL.
            // An error of ours raised inside the plan arrives as DataFusion's `External` text.
            D::Generic(msg) => Error::user(
                msg.strip_prefix("External error: ")
                    .map(str::to_string)
                    .unwrap_or(msg),
            ),
            D::SchemaMismatch { msg } => Error::user(format!("schema mismatch: {msg}")),
            D::InvalidData { message } => Error::user(format!("invalid data: {message}")),
            D::VersionAlreadyExists(v) => Error::new(
                ErrorKind::Conflict,
                format!("another writer committed version {v} first; retry the run"),
            ),
            other => Error::internal(format!("Delta Lake: {other}")),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(err: arrow::error::ArrowError) -> Self {
        classify_datafusion(DataFusionError::ArrowError(Box::new(err), None))
    }
}

/// Maps a DataFusion error to a kind, recovering meshql errors wrapped in `External`.
fn classify_datafusion(err: DataFusionError) -> Error {
    use DataFusionError as D;
    use arrow::error::ArrowError as A;
    match err {
        D::External(inner) => match inner.downcast::<Error>() {
            Ok(ours) => *ours,
            Err(other) => match other.downcast::<deltalake::DeltaTableError>() {
                Ok(delta) => Error::from(*delta),
                Err(other) => Error::internal(other.to_string()),
            },
        },
        D::Context(ctx, inner) => {
            let mut e = classify_datafusion(*inner);
            e.message = format!("{ctx}: {}", e.message);
            e
        }
        D::Diagnostic(_, inner) => classify_datafusion(*inner),
        D::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
            Ok(inner) => classify_datafusion(inner),
            Err(shared) => Error::internal(shared.to_string()),
        },
        D::Collection(mut errs) if !errs.is_empty() => classify_datafusion(errs.remove(0)),
        D::SQL(e, _) => Error::user(format!("SQL error: {e}")),
        D::Plan(msg) => Error::user(msg),
        D::SchemaError(e, _) => Error::user(e.to_string()),
        D::NotImplemented(msg) => Error::user(format!("not supported: {msg}")),
        D::Configuration(msg) => Error::user(msg),
        D::Execution(msg) => Error::user(msg),
        D::ExecutionJoin(e) => Error::internal(format!("task failed: {e}")),
        D::ResourcesExhausted(msg) => Error::resource(msg),
        D::ArrowError(e, _) => match *e {
            A::ExternalError(inner) => classify_datafusion(D::External(inner)),
            A::IoError(msg, _) => Error::new(ErrorKind::Unavailable, format!("I/O error: {msg}")),
            A::MemoryError(msg) => Error::resource(msg),
            other => Error::user(other.to_string()),
        },
        D::ParquetError(e) => Error::new(ErrorKind::Unavailable, format!("Parquet: {e}")),
        D::ObjectStore(e) => Error::new(ErrorKind::Unavailable, format!("storage error: {e}")),
        D::IoError(e) => Error::new(ErrorKind::Unavailable, format!("I/O error: {e}")),
        other => Error::internal(other.to_string()),
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
        let status = tonic::Status::from(Error::user("bad SQL"));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "bad SQL");
    }
}
