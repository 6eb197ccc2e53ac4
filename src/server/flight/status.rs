//! meshql's errors as gRPC statuses: the one place the Flight front end maps error kinds to the
//! codes its clients see.

use tonic::{Code, Status};

use crate::error::{Error, ErrorKind, MAX_MESSAGE_BYTES, truncate_message};

/// The gRPC code of an error of `kind`.
pub fn code(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::UserInput => Code::InvalidArgument,
        ErrorKind::NotFound => Code::NotFound,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Unauthenticated => Code::Unauthenticated,
        ErrorKind::Conflict | ErrorKind::ContractViolation => Code::FailedPrecondition,
        ErrorKind::ResourceExhausted => Code::ResourceExhausted,
        ErrorKind::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorKind::Cancelled => Code::Cancelled,
        ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::Internal => Code::Internal,
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        if err.kind().should_log() {
            let source = std::error::Error::source(&err).map(|s| s.to_string());
            tracing::error!(kind = ?err.kind(), error = %err, source = ?source, "request failed");
        }
        let message = truncate_message(&err.to_string(), MAX_MESSAGE_BYTES);
        Status::new(code(err.kind()), message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_become_the_codes_clients_expect() {
        let status = Status::from(Error::user("bad SQL"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(status.message(), "bad SQL");
        assert_eq!(code(ErrorKind::DeadlineExceeded), Code::DeadlineExceeded);
        assert_eq!(code(ErrorKind::Cancelled), Code::Cancelled);
        assert_eq!(code(ErrorKind::ContractViolation), Code::FailedPrecondition);
    }

    #[test]
    fn long_messages_are_cut() {
        let status = Status::from(Error::user("9".repeat(100_000)));
        assert!(status.message().len() < MAX_MESSAGE_BYTES + 100);
    }
}
