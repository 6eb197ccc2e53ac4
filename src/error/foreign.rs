//! Kinds for the errors of the libraries meshql is built on.
//!
//! A failure deep in a query arrives wrapped several times: a cast error inside a Parquet
//! filter inside a repartition shared by every output partition, or one of meshql's own errors
//! raised in a table provider and carried through DataFusion as `External`. [`classify`] walks
//! the chain of causes by reference (shared errors cannot be unwrapped) until it finds the layer
//! that decides whose problem it is, and writes the message from that layer, without the
//! wrappers' prefixes and without DataFusion's "please file a bug report" boilerplate.

use std::error::Error as StdError;
use std::sync::Arc;

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use datafusion::object_store;
use datafusion::parquet::errors::ParquetError;
use deltalake::DeltaTableError;
use deltalake::kernel::transaction::TransactionError;

use super::{Error, ErrorKind};

/// DataFusion's note appended to its internal errors; not meant for our users.
const BUG_NOTE: &str = "This issue was likely caused by a bug in DataFusion's code";

/// DataFusion errors raised as `Internal` that are answers to a user's mistake (each reported
/// upstream-worthy; see the closing notes), with what to do instead where DataFusion's words do
/// not say it. Matched on the message because DataFusion gives them no variant of their own.
const USER_MISTAKES_REPORTED_AS_INTERNAL: &[(&str, &str)] = &[
    // `sha256(CAST(x AS SMALLINT))`: no signature matches; type coercion says Internal.
    ("failed to match any signature", ""),
    // `range(STRUCT ...)` and similar: argument types no signature accepts.
    ("does not support zero arguments", ""),
    ("Unsupported data type", ""),
    // `regexp_like(x, '\\1')`: an invalid pattern, wrapped by `regexp_like` as Internal.
    ("Regular expression did not compile", ""),
    // `true BETWEEN 1 AND 2`: bounds of a type the expression cannot be compared with.
    ("in BETWEEN expression", ""),
    // `first_value(x) OVER (ORDER BY row(month))`: a window frame ordered by a struct.
    (
        "Cannot run range queries on datatype",
        "a window's ORDER BY must be a number, text, date or time value when its frame is a \
         RANGE (the default); order by the fields of the struct, or use ROWS BETWEEN",
    ),
    // `max(arrow_metadata(x))`: min/max of a type without an order (maps).
    (
        "accumulator not implemented for type",
        "min and max need values that have an order; maps have none: aggregate one of their \
         entries (`m['key']`) instead",
    ),
];

/// One step of the walk: a final answer, or the next cause to look at.
enum Step<'a> {
    Done(Error),
    Into(&'a (dyn StdError + 'static)),
}

/// The meshql error for `top`, decided by the first layer of its causes that knows.
pub(super) fn classify(top: &(dyn StdError + 'static)) -> Error {
    let mut prefixes: Vec<String> = Vec::new();
    let mut current = top;
    // Bounded: a cycle of causes (never seen) must not hang a request.
    for _ in 0..64 {
        let step = if let Some(ours) = current.downcast_ref::<Error>() {
            Step::Done(ours.duplicate())
        } else if let Some(df) = current.downcast_ref::<DataFusionError>() {
            datafusion(df, &mut prefixes)
        } else if let Some(df) = current.downcast_ref::<Arc<DataFusionError>>() {
            Step::Into(df.as_ref())
        } else if let Some(arrow) = current.downcast_ref::<ArrowError>() {
            self::arrow(arrow)
        } else if let Some(parquet) = current.downcast_ref::<ParquetError>() {
            self::parquet(parquet)
        } else if let Some(delta) = current.downcast_ref::<DeltaTableError>() {
            self::delta(delta)
        } else if let Some(ice) = current.downcast_ref::<iceberg::Error>() {
            self::iceberg(ice)
        } else if let Some(tx) = current.downcast_ref::<TransactionError>() {
            transaction(tx)
        } else if let Some(re) = current.downcast_ref::<regex::Error>() {
            Step::Done(Error::user(format!("invalid regular expression: {re}")))
        } else if let Some(re) = current.downcast_ref::<regex_syntax::Error>() {
            Step::Done(Error::user(format!("invalid regular expression: {re}")))
        } else if let Some(join) = current.downcast_ref::<tokio::task::JoinError>() {
            Step::Done(joined(join))
        } else if let Some(store) = current.downcast_ref::<object_store::Error>() {
            Step::Done(object_store(store))
        } else if let Some(io) = current.downcast_ref::<std::io::Error>() {
            Step::Done(Error::unavailable(format!("I/O error: {io}")))
        } else {
            match current.source() {
                Some(next) => Step::Into(next),
                None => Step::Done(Error::internal(clean(&current.to_string()))),
            }
        };
        match step {
            Step::Into(next) => current = next,
            Step::Done(mut e) => {
                for p in prefixes.iter().rev() {
                    e = e.prefixed(p);
                }
                return e;
            }
        }
    }
    Error::internal(clean(&top.to_string()))
}

fn datafusion<'a>(err: &'a DataFusionError, prefixes: &mut Vec<String>) -> Step<'a> {
    use DataFusionError as D;
    let done = |kind, msg: &str| Step::Done(Error::new(kind, clean(msg)));
    match err {
        D::External(inner) => Step::Into(inner.as_ref()),
        D::Shared(inner) => Step::Into(inner.as_ref()),
        D::Diagnostic(_, inner) => Step::Into(inner.as_ref()),
        D::Context(ctx, inner) => {
            if !is_rule_name(ctx) {
                prefixes.push(ctx.clone());
            }
            Step::Into(inner.as_ref())
        }
        D::Collection(errs) => match errs.first() {
            Some(first) => Step::Into(first),
            None => done(ErrorKind::Internal, "an empty collection of errors"),
        },
        D::ArrowError(e, _) => Step::Into(e.as_ref()),
        D::ParquetError(e) => Step::Into(e.as_ref()),
        D::ObjectStore(e) => Step::Into(e.as_ref()),
        D::IoError(e) => done(ErrorKind::Unavailable, &format!("I/O error: {e}")),
        D::ExecutionJoin(e) => Step::Done(joined(e)),
        D::SQL(e, _) => done(ErrorKind::UserInput, &format!("SQL error: {e}")),
        D::Plan(msg) | D::Configuration(msg) | D::Execution(msg) => done(ErrorKind::UserInput, msg),
        D::SchemaError(e, _) => done(ErrorKind::UserInput, &e.to_string()),
        D::NotImplemented(msg) => done(ErrorKind::UserInput, &format!("not supported: {msg}")),
        D::ResourcesExhausted(msg) => done(ErrorKind::ResourceExhausted, msg),
        D::Internal(msg) => match USER_MISTAKES_REPORTED_AS_INTERNAL
            .iter()
            .find(|(needle, _)| msg.contains(needle))
        {
            Some((_, "")) => done(ErrorKind::UserInput, msg),
            Some((_, hint)) => done(ErrorKind::UserInput, &format!("{}: {hint}", clean(msg))),
            None => done(ErrorKind::Internal, msg),
        },
        other => done(ErrorKind::Internal, &other.to_string()),
    }
}

fn arrow(err: &ArrowError) -> Step<'_> {
    use ArrowError as A;
    let kind = match err {
        A::ExternalError(inner) => return Step::Into(inner.as_ref()),
        A::IoError(_, source) => {
            return Step::Done(Error::unavailable(format!("I/O error: {source}")));
        }
        A::MemoryError(_) => ErrorKind::ResourceExhausted,
        // A string or list column grew past what one array can hold (2 GiB of offsets).
        A::OffsetOverflowError(_) | A::DictionaryKeyOverflowError | A::RunEndIndexOverflowError => {
            ErrorKind::ResourceExhausted
        }
        A::CDataInterface(_) => ErrorKind::Internal,
        _ => ErrorKind::UserInput,
    };
    Step::Done(Error::new(kind, clean(&err.to_string())))
}

fn parquet(err: &ParquetError) -> Step<'_> {
    match err {
        ParquetError::External(inner) => Step::Into(inner.as_ref()),
        ParquetError::ArrowError(msg) => Step::Done(Error::user(clean(msg))),
        ParquetError::NYI(msg) => Step::Done(Error::user(format!(
            "a data file uses a Parquet feature that is not supported: {msg}"
        ))),
        other => Step::Done(Error::unavailable(format!(
            "a data file could not be read: {other}"
        ))),
    }
}

fn delta(err: &DeltaTableError) -> Step<'_> {
    use DeltaTableError as D;
    let e = match err {
        D::Arrow { source } => return Step::Into(source),
        D::Parquet { source } => return Step::Into(source),
        D::ObjectStore { source } => return Step::Into(source),
        D::GenericError { source } => return Step::Into(source.as_ref()),
        D::Transaction { source } => return transaction(source),
        D::Io { source } => Error::unavailable(format!("storage error: {source}")),
        // The log could be fetched but not read: damaged, or written by a writer this build
        // does not understand. Nothing the query can change, nor a bug of ours.
        D::KernelError(_) | D::Kernel { .. } | D::InvalidJsonLog { .. } => {
            Error::unavailable(format!(
                "the table's Delta log cannot be read (damaged or from an incompatible writer): {err}"
            ))
        }
        D::NotATable(msg) => Error::not_found(format!("not a Delta table: {msg}")),
        D::NotInitialized | D::NotInitializedWithFiles(_) => {
            Error::not_found(format!("the table has no committed version: {err}"))
        }
        D::InvalidTableLocation(msg) => Error::user(format!("invalid table location: {msg}")),
        // delta-rs turns DataFusion's planning and execution errors into `Generic` strings:
        // those are the transform's input or SQL. An error of ours raised inside the plan
        // arrives as DataFusion's `External` text.
        D::Generic(msg) => Error::user(clean(msg.strip_prefix("External error: ").unwrap_or(msg))),
        D::SchemaMismatch { msg } => Error::user(format!("schema mismatch: {msg}")),
        D::InvalidData { message } => Error::user(format!("invalid data: {message}")),
        D::VersionAlreadyExists(v) => Error::conflict(format!(
            "another writer committed version {v} first; retry the run"
        )),
        D::MissingFeature { .. } => Error::user(format!("Delta Lake: {err}")),
        other => match other.source() {
            Some(next) => return Step::Into(next),
            None => Error::internal(format!("Delta Lake: {other}")),
        },
    };
    Step::Done(e)
}

fn transaction(err: &TransactionError) -> Step<'_> {
    use TransactionError as T;
    let e = match err {
        T::VersionAlreadyExists(v) => Error::conflict(format!(
            "another writer committed version {v} first; retry the run"
        )),
        T::CommitConflict(c) => Error::conflict(format!(
            "another writer committed to the table at the same time ({c}); retry the run"
        )),
        T::MaxCommitAttempts(n) => Error::conflict(format!(
            "the commit lost {n} races against other writers of the table; retry later"
        )),
        T::ObjectStore { source } => return Step::Into(source),
        T::DeltaTableAppendOnly => Error::user(format!("{err}")),
        other => Error::internal(format!("Delta Lake: {other}")),
    };
    Step::Done(e)
}

/// Iceberg's kinds say whose problem it is, except `Unexpected`, which wraps whatever failed
/// underneath (a file that cannot be read): its cause decides.
fn iceberg(err: &iceberg::Error) -> Step<'_> {
    use iceberg::ErrorKind as K;
    let message = err.message();
    let e = match err.kind() {
        K::DataInvalid => Error::user(format!("invalid Iceberg table: {message}")),
        K::FeatureUnsupported => Error::user(format!("Iceberg: {message}")),
        K::TableNotFound | K::NamespaceNotFound => Error::not_found(format!("Iceberg: {message}")),
        K::TableAlreadyExists | K::NamespaceAlreadyExists => {
            Error::conflict(format!("Iceberg: {message}"))
        }
        K::CatalogCommitConflicts | K::PreconditionFailed => {
            Error::conflict(format!("Iceberg commit conflict: {message}"))
        }
        _ => match std::error::Error::source(err) {
            Some(io) if io.is::<std::io::Error>() => {
                Error::unavailable(format!("Iceberg: {message}: {io}"))
            }
            Some(cause) => return Step::Into(cause),
            None => Error::internal(format!("Iceberg: {message}")),
        },
    };
    Step::Done(e)
}

fn object_store(err: &object_store::Error) -> Error {
    match err {
        object_store::Error::NotFound { path, .. } => Error::unavailable(format!(
            "storage error: `{path}` is missing (was the table's data removed?)"
        )),
        other => Error::unavailable(format!("storage error: {other}")),
    }
}

/// A task of the query that ended without an answer: a panic (the query fails, the server does
/// not), or a cancellation.
fn joined(err: &tokio::task::JoinError) -> Error {
    if err.is_cancelled() {
        Error::cancelled("the query was cancelled")
    } else {
        Error::internal(format!(
            "the query engine failed on this query ({err}); the server is unaffected"
        ))
    }
}

/// Whether a DataFusion context string names one of its analyzer or optimizer rules (noise to a
/// user: `type_coercion`, `Optimizer rule 'simplify_expressions' failed`).
fn is_rule_name(ctx: &str) -> bool {
    ctx.starts_with("Optimizer rule '")
        || ctx == "Invalid regex"
        || (ctx.contains('_')
            && ctx
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
}

/// A message without DataFusion's bug-report note, backtraces and error-kind prefixes.
fn clean(msg: &str) -> String {
    let mut text = msg;
    if let Some(i) = text.find(DataFusionError::BACK_TRACE_SEP) {
        text = &text[..i];
    }
    if let Some(i) = text.find(BUG_NOTE) {
        text = &text[..i];
    }
    let mut text = text.trim_end().trim_end_matches('.').to_string();
    for prefix in [
        "Internal error: ",
        "Error during planning: ",
        "Execution error: ",
        "External error: ",
        "Arrow error: ",
    ] {
        while let Some(rest) = text.strip_prefix(prefix) {
            text = rest.to_string();
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(e: DataFusionError) -> DataFusionError {
        let arc = Arc::new(e);
        // A second holder, as RepartitionExec keeps for every output partition.
        let _other = Arc::clone(&arc);
        DataFusionError::Shared(arc)
    }

    #[test]
    fn shared_errors_keep_their_kind() {
        let e = shared(DataFusionError::Execution(
            "Overflow happened on FACTORIAL(21)".into(),
        ));
        let ours = classify(&e);
        assert_eq!(ours.kind(), ErrorKind::UserInput);
        assert_eq!(ours.message(), "Overflow happened on FACTORIAL(21)");
    }

    #[test]
    fn a_cast_error_inside_a_parquet_filter_is_the_users() {
        let cast =
            ArrowError::CastError("Cannot cast string 'north' to value of Int64 type".into());
        let parquet = ParquetError::External(Box::new(cast));
        let e = shared(DataFusionError::ParquetError(Box::new(parquet)));
        let ours = classify(&e);
        assert_eq!(ours.kind(), ErrorKind::UserInput, "{ours}");
        assert!(
            ours.message().contains("Cannot cast string 'north'"),
            "{ours}"
        );
    }

    #[test]
    fn regex_errors_and_rule_contexts() {
        let pattern = String::from("[");
        let re = regex::Regex::new(&pattern).unwrap_err();
        let e = DataFusionError::Context(
            "Optimizer rule 'simplify_expressions' failed".into(),
            Box::new(DataFusionError::External(Box::new(re))),
        );
        let ours = classify(&e);
        assert_eq!(ours.kind(), ErrorKind::UserInput);
        assert!(
            ours.message().starts_with("invalid regular expression"),
            "{ours}"
        );
    }

    #[test]
    fn boilerplate_is_removed_and_signature_mismatches_are_the_users() {
        let e = DataFusionError::Context(
            "type_coercion".into(),
            Box::new(DataFusionError::Internal(format!(
                "Function 'sha256' failed to match any signature. {BUG_NOTE}. Please help us"
            ))),
        );
        let ours = classify(&e);
        assert_eq!(ours.kind(), ErrorKind::UserInput);
        assert_eq!(
            ours.message(),
            "Function 'sha256' failed to match any signature"
        );
        let bug = classify(&DataFusionError::Internal(format!("oops. {BUG_NOTE}")));
        assert_eq!(bug.kind(), ErrorKind::Internal);
        assert_eq!(bug.message(), "oops");
    }

    #[test]
    fn commit_conflicts_are_conflicts() {
        let e = DeltaTableError::Transaction {
            source: TransactionError::MaxCommitAttempts(15),
        };
        let ours = classify(&e);
        assert_eq!(ours.kind(), ErrorKind::Conflict);
        assert!(ours.kind().is_retryable());
        let e = DeltaTableError::VersionAlreadyExists(7);
        assert!(classify(&e).message().contains("committed version 7 first"));
    }
}
