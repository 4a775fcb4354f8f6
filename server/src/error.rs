//! The one error type of the server, and its single mapping to gRPC.
//!
//! Every failure a caller can see is a variant here with a stable `reason` string
//! (listed in `ARCHITECTURE.md`), a gRPC code, and a message that says what to do.
//! The mapping to [`tonic::Status`] (with a `google.rpc.ErrorInfo` detail) and to a
//! job's [`JobError`] lives only in this file.

use milvault_proto::milvault::v1::JobError;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// Result alias used across the server.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, by kind.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request named a cluster the configuration does not have.
    #[error("unknown cluster {name:?}; configured clusters: {known}")]
    UnknownCluster { name: String, known: String },
    /// A request named a repository the configuration does not have.
    #[error("unknown repository {name:?}; configured repositories: {known}")]
    UnknownRepository { name: String, known: String },
    /// A request omitted a cluster/repository name while several are configured.
    #[error("{what} must be named: several are configured ({known})")]
    NameRequired { what: &'static str, known: String },
    /// No such backup in the repository.
    #[error("backup {name:?} not found in repository {repository:?}")]
    BackupNotFound { name: String, repository: String },
    /// A backup with that name already exists (complete or not).
    #[error(
        "backup {name:?} already exists in repository {repository:?}; choose another name or delete it first"
    )]
    BackupExists { name: String, repository: String },
    /// The backup exists but has no manifest: it never finished.
    #[error(
        "backup {name:?} in repository {repository:?} is incomplete (no manifest): it cannot be restored; delete it"
    )]
    BackupIncomplete { name: String, repository: String },
    /// A malformed argument.
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        field: &'static str,
        message: String,
    },
    /// No such job.
    #[error("job {0:?} not found")]
    JobNotFound(String),
    /// Another job already works on the same backup or target.
    #[error("{0}")]
    Conflict(String),
    /// A collection the request names does not exist.
    #[error("collection {collection:?} not found in database {database:?} of {place}")]
    CollectionNotFound {
        place: String,
        database: String,
        collection: String,
    },
    /// A restore target collection exists and `drop_existing` was not asked.
    #[error(
        "collection {collection:?} already exists in database {database:?} of cluster {cluster:?}; pass drop_existing (--drop-existing) to replace it, or restore under another name"
    )]
    CollectionExists {
        cluster: String,
        database: String,
        collection: String,
    },
    /// An alias the restore would create already points elsewhere.
    #[error("alias {alias:?} already exists in database {database:?} of cluster {cluster:?}")]
    AliasExists {
        cluster: String,
        database: String,
        alias: String,
    },
    /// Milvus could not be reached at all.
    #[error("Milvus at {address} is unreachable: {detail}")]
    MilvusUnavailable { address: String, detail: String },
    /// Milvus answered with an error.
    #[error("Milvus {operation} failed: {message}")]
    Milvus { operation: String, message: String },
    /// The target cluster cannot do what the backup needs.
    #[error("{0}")]
    Unsupported(String),
    /// Object storage failed.
    #[error("storage {storage:?}: {operation} {path:?} failed: {message}")]
    Storage {
        storage: String,
        operation: &'static str,
        path: String,
        message: String,
    },
    /// A storage configuration could not be turned into an operator.
    #[error("storage configuration of {owner}: {message}")]
    StorageConfig { owner: String, message: String },
    /// A file's bytes did not match what the manifest says.
    #[error("file {path:?} is corrupt: {message}")]
    Corrupt { path: String, message: String },
    /// A manifest that cannot be read, or of an unknown format version.
    #[error("manifest of backup {name:?}: {message}")]
    Manifest { name: String, message: String },
    /// The segment's files on storage are inconsistent (orphans, missing fields).
    #[error("segment {segment} of {collection}: {message}")]
    SegmentFiles {
        collection: String,
        segment: i64,
        message: String,
    },
    /// Milvus reported a failed import.
    #[error("import into {collection} (segment {segment}) failed: {message}")]
    ImportFailed {
        collection: String,
        segment: i64,
        message: String,
    },
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The server stopped while the job ran.
    #[error("the server restarted while this job was {state}; start it again")]
    Interrupted { state: String },
    /// Bugs and impossible states: logged in full, summarised to callers.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The gRPC code for this error.
    pub fn code(&self) -> Code {
        match self {
            Error::UnknownCluster { .. }
            | Error::UnknownRepository { .. }
            | Error::BackupNotFound { .. }
            | Error::JobNotFound(_)
            | Error::CollectionNotFound { .. } => Code::NotFound,
            Error::NameRequired { .. } | Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::BackupExists { .. }
            | Error::CollectionExists { .. }
            | Error::AliasExists { .. } => Code::AlreadyExists,
            Error::BackupIncomplete { .. } | Error::Conflict(_) | Error::Unsupported(_) => {
                Code::FailedPrecondition
            }
            Error::MilvusUnavailable { .. } => Code::Unavailable,
            Error::Milvus { .. } | Error::ImportFailed { .. } => Code::Aborted,
            Error::Storage { .. } => Code::Unavailable,
            Error::StorageConfig { .. } => Code::FailedPrecondition,
            Error::Corrupt { .. } | Error::Manifest { .. } | Error::SegmentFiles { .. } => {
                Code::DataLoss
            }
            Error::Cancelled => Code::Cancelled,
            Error::Interrupted { .. } => Code::Aborted,
            Error::Internal(_) => Code::Internal,
        }
    }

    /// A stable, machine-readable reason (documented in ARCHITECTURE.md).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::UnknownCluster { .. } => "CLUSTER_NOT_FOUND",
            Error::UnknownRepository { .. } => "REPOSITORY_NOT_FOUND",
            Error::NameRequired { .. } => "NAME_REQUIRED",
            Error::BackupNotFound { .. } => "BACKUP_NOT_FOUND",
            Error::BackupExists { .. } => "BACKUP_EXISTS",
            Error::BackupIncomplete { .. } => "BACKUP_INCOMPLETE",
            Error::InvalidArgument { .. } => "INVALID_ARGUMENT",
            Error::JobNotFound(_) => "JOB_NOT_FOUND",
            Error::Conflict(_) => "JOB_CONFLICT",
            Error::CollectionExists { .. } => "COLLECTION_EXISTS",
            Error::CollectionNotFound { .. } => "COLLECTION_NOT_FOUND",
            Error::AliasExists { .. } => "ALIAS_EXISTS",
            Error::MilvusUnavailable { .. } => "MILVUS_UNAVAILABLE",
            Error::Milvus { .. } => "MILVUS_ERROR",
            Error::Unsupported(_) => "UNSUPPORTED",
            Error::Storage { .. } => "STORAGE_ERROR",
            Error::StorageConfig { .. } => "STORAGE_CONFIG",
            Error::Corrupt { .. } => "FILE_CORRUPT",
            Error::Manifest { .. } => "MANIFEST_INVALID",
            Error::SegmentFiles { .. } => "SEGMENT_FILES_INCONSISTENT",
            Error::ImportFailed { .. } => "IMPORT_FAILED",
            Error::Cancelled => "CANCELLED",
            Error::Interrupted { .. } => "SERVER_RESTARTED",
            Error::Internal(_) => "INTERNAL",
        }
    }

    /// The error as carried inside a failed job.
    pub fn to_job_error(&self) -> JobError {
        JobError {
            code: code_name(self.code()).to_owned(),
            reason: self.reason().to_owned(),
            message: self.to_string(),
        }
    }

    /// Shorthand for an [`Error::InvalidArgument`].
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            message: message.into(),
        }
    }
}

/// Upper-case gRPC code name, as in `google.rpc.Code`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        if matches!(err, Error::Internal(_)) {
            tracing::error!(error = %err, "internal error returned to a caller");
        }
        let details =
            ErrorDetails::with_error_info(err.reason(), "milvault", [] as [(String, String); 0]);
        tonic::Status::with_error_details(err.code(), err.to_string(), details)
    }
}

impl From<opendal::Error> for Error {
    fn from(e: opendal::Error) -> Self {
        Error::Storage {
            storage: String::new(),
            operation: "access",
            path: String::new(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_code_reason_and_message() {
        let status: tonic::Status = Error::BackupNotFound {
            name: "b1".into(),
            repository: "r".into(),
        }
        .into();
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().contains("\"b1\""));
        let info = status.get_details_error_info().expect("error info present");
        assert_eq!(info.reason, "BACKUP_NOT_FOUND");
    }

    #[test]
    fn job_error_uses_code_names() {
        let e = Error::MilvusUnavailable {
            address: "http://x:1".into(),
            detail: "refused".into(),
        };
        let je = e.to_job_error();
        assert_eq!(je.code, "UNAVAILABLE");
        assert_eq!(je.reason, "MILVUS_UNAVAILABLE");
        assert!(je.message.contains("http://x:1"));
    }
}
