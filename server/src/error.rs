//! The one error type of the server, and its single mapping to gRPC.
//!
//! Every failure a caller can see is a variant here. Each has a stable [`Reason`]
//! (the list, with what the user can do about each, is [`Reason::ALL`]; `docs/errors.md`
//! is generated from it and checked by a test), a gRPC code, a message for people, and
//! metadata naming the objects involved (cluster, database, collection, backup, file).
//! The mapping to [`tonic::Status`] (with a `google.rpc.ErrorInfo` detail) and to a
//! job's [`JobError`] lives only in this file.
//!
//! Errors keep structure instead of text: a Milvus failure keeps the gRPC code,
//! Milvus's own `code`/`error_code` and reason and the operation ([`MilvusError`]);
//! a storage failure keeps OpenDAL's [`opendal::ErrorKind`], the path and the source
//! ([`StorageError`]). Callers decide on those fields, never on a message.
//!
//! Internal errors (bugs, impossible states) reach callers as a short summary and an
//! id; the full text is logged once with that id.

use std::collections::BTreeMap;

use milvault_proto::milvault::v1::JobError;
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// Result alias used across the server.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The domain (`ErrorInfo.domain`) of every error this server reports.
pub(crate) const DOMAIN: &str = "milvault";

/// A failed call to Milvus, as Milvus reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilvusError {
    /// The configured cluster name.
    pub cluster: String,
    /// The RPC (`CreateCollection`, ...).
    pub op: &'static str,
    /// The gRPC status of the call: `Ok` when the call went through and Milvus's own
    /// status said it failed.
    pub grpc: Code,
    /// Milvus's `Status.code` (2.3+; 0 on 2.2).
    pub code: i32,
    /// Milvus's legacy `Status.error_code` (2.2 fills only this one).
    pub error_code: i32,
    /// Milvus's reason text, kept for people (never matched outside `milvus/`).
    pub reason: String,
    /// Milvus's `Status.retriable` (2.3+).
    pub retriable: bool,
}

/// A failed storage operation, as OpenDAL reported it.
#[derive(Debug)]
pub struct StorageError {
    /// The store's name (`cluster a`, `repository local`).
    pub storage: String,
    /// The operation (`read`, `write`, `list`, `stat`, `delete`).
    pub op: &'static str,
    /// The key the operation was about.
    pub path: String,
    /// OpenDAL's kind of error.
    pub kind: opendal::ErrorKind,
    /// Whether repeating the operation may succeed.
    pub retryable: bool,
    /// OpenDAL's error.
    pub source: opendal::Error,
}

impl StorageError {
    /// Wraps an OpenDAL error.
    pub(crate) fn new(storage: &str, op: &'static str, path: &str, source: opendal::Error) -> Self {
        Self {
            storage: storage.to_owned(),
            op,
            path: path.to_owned(),
            kind: source.kind(),
            retryable: source.is_temporary(),
            source,
        }
    }

    /// Whether the store ran out of room: no space left, or a quota reached. OpenDAL
    /// files these under `Unexpected` and keeps the I/O error as the source, whose
    /// kind says it.
    pub fn is_full(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&self.source);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && matches!(
                    io.kind(),
                    std::io::ErrorKind::StorageFull
                        | std::io::ErrorKind::QuotaExceeded
                        | std::io::ErrorKind::FileTooLarge
                )
            {
                return true;
            }
            cur = e.source();
        }
        false
    }
}

/// A storage failure: [`Error::StorageFull`] when the store ran out of room, else
/// [`Error::Storage`].
impl From<StorageError> for Error {
    fn from(s: StorageError) -> Self {
        if s.is_full() {
            Error::StorageFull(s)
        } else {
            Error::Storage(s)
        }
    }
}

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
    #[error("job {id:?} not found")]
    JobNotFound { id: String },
    /// Another job already works on the same backup or target.
    #[error("{message}")]
    Conflict {
        /// The lock key (`backup:<repository>/<name>`, `target:<cluster>/<db>.<coll>`).
        resource: String,
        /// The id of the job that holds it.
        job: String,
        message: String,
    },
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
    #[error(
        "alias {alias:?} already exists in database {database:?} of cluster {cluster:?}{}; restore without aliases (skip_aliases, --skip-aliases), or, when it points at the collection this backup was taken from, move it (move_aliases, --move-aliases)",
        owner.as_deref().map(|o| format!(" (points at {o})")).unwrap_or_default()
    )]
    AliasExists {
        cluster: String,
        database: String,
        alias: String,
        owner: Option<String>,
    },
    /// Milvus could not be reached at all.
    #[error("Milvus at {address} is unreachable: {op}: {detail}")]
    MilvusUnavailable {
        cluster: String,
        address: String,
        op: &'static str,
        detail: String,
    },
    /// Milvus answered with an error.
    #[error(
        "Milvus {} failed: {} (code {}, error_code {}{})",
        .0.op, .0.reason, .0.code, .0.error_code,
        if .0.grpc == Code::Ok { String::new() } else { format!(", gRPC {:?}", .0.grpc) }
    )]
    Milvus(MilvusError),
    /// The source or target cannot do what the job needs.
    #[error("{message}")]
    Unsupported {
        message: String,
        metadata: Vec<(&'static str, String)>,
    },
    /// Object storage failed.
    #[error("storage {:?}: {} {:?} failed: {}", .0.storage, .0.op, .0.path, .0.source)]
    Storage(StorageError),
    /// A store ran out of space or quota.
    #[error(
        "storage {:?} is full: {} {:?} failed: {}; free space or grow it, then run the job again",
        .0.storage, .0.op, .0.path, .0.source
    )]
    StorageFull(StorageError),
    /// A file a manifest lists is not in the repository.
    #[error(
        "file {path:?} of backup {backup:?} is missing from {storage:?}; the backup is damaged"
    )]
    FileMissing {
        storage: String,
        backup: String,
        path: String,
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
    /// Row counts that must agree do not (a backup against its source, a restore
    /// against its manifest, a decoded segment against Milvus's count).
    #[error("{collection}: {message}")]
    RowsMismatch { collection: String, message: String },
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
    /// `ResumeJob` of a job that is not an interrupted restore kept for a resume, or a
    /// resume that cannot tell what the interrupted run left behind.
    #[error("job {id} cannot be resumed: {message}")]
    NotResumable { id: String, message: String },
    /// A wait ran out of time.
    #[error("{what} did not finish within {secs} s")]
    Timeout { what: String, secs: u64 },
    /// Bugs and impossible states: `summary` is shown, `detail` only logged.
    #[error("internal error: {summary}")]
    Internal {
        summary: &'static str,
        detail: String,
    },
}

/// Stable, machine-readable reasons (`ErrorInfo.reason`, `JobError.reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    // One per line; what each means and what to do is [`Reason::remedy`].
    ClusterNotFound,
    RepositoryNotFound,
    NameRequired,
    BackupNotFound,
    BackupExists,
    BackupIncomplete,
    InvalidArgument,
    JobNotFound,
    JobConflict,
    CollectionExists,
    CollectionNotFound,
    AliasExists,
    MilvusUnavailable,
    MilvusError,
    Unsupported,
    StorageError,
    StorageFull,
    StorageConfig,
    FileMissing,
    FileCorrupt,
    ManifestInvalid,
    SegmentFilesInconsistent,
    ImportFailed,
    RowCountMismatch,
    Timeout,
    Cancelled,
    ServerRestarted,
    JobNotResumable,
    Unauthenticated,
    Internal,
}

impl Reason {
    /// Every reason, in the order `docs/errors.md` lists them.
    pub const ALL: [Reason; 30] = [
        Reason::ClusterNotFound,
        Reason::RepositoryNotFound,
        Reason::NameRequired,
        Reason::BackupNotFound,
        Reason::BackupExists,
        Reason::BackupIncomplete,
        Reason::InvalidArgument,
        Reason::JobNotFound,
        Reason::JobConflict,
        Reason::CollectionExists,
        Reason::CollectionNotFound,
        Reason::AliasExists,
        Reason::MilvusUnavailable,
        Reason::MilvusError,
        Reason::Unsupported,
        Reason::StorageError,
        Reason::StorageFull,
        Reason::StorageConfig,
        Reason::FileMissing,
        Reason::FileCorrupt,
        Reason::ManifestInvalid,
        Reason::SegmentFilesInconsistent,
        Reason::ImportFailed,
        Reason::RowCountMismatch,
        Reason::Timeout,
        Reason::Cancelled,
        Reason::ServerRestarted,
        Reason::JobNotResumable,
        Reason::Unauthenticated,
        Reason::Internal,
    ];

    /// The stable text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::ClusterNotFound => "CLUSTER_NOT_FOUND",
            Reason::RepositoryNotFound => "REPOSITORY_NOT_FOUND",
            Reason::NameRequired => "NAME_REQUIRED",
            Reason::BackupNotFound => "BACKUP_NOT_FOUND",
            Reason::BackupExists => "BACKUP_EXISTS",
            Reason::BackupIncomplete => "BACKUP_INCOMPLETE",
            Reason::InvalidArgument => "INVALID_ARGUMENT",
            Reason::JobNotFound => "JOB_NOT_FOUND",
            Reason::JobConflict => "JOB_CONFLICT",
            Reason::CollectionExists => "COLLECTION_EXISTS",
            Reason::CollectionNotFound => "COLLECTION_NOT_FOUND",
            Reason::AliasExists => "ALIAS_EXISTS",
            Reason::MilvusUnavailable => "MILVUS_UNAVAILABLE",
            Reason::MilvusError => "MILVUS_ERROR",
            Reason::Unsupported => "UNSUPPORTED",
            Reason::StorageError => "STORAGE_ERROR",
            Reason::StorageFull => "STORAGE_FULL",
            Reason::StorageConfig => "STORAGE_CONFIG",
            Reason::FileMissing => "FILE_MISSING",
            Reason::FileCorrupt => "FILE_CORRUPT",
            Reason::ManifestInvalid => "MANIFEST_INVALID",
            Reason::SegmentFilesInconsistent => "SEGMENT_FILES_INCONSISTENT",
            Reason::ImportFailed => "IMPORT_FAILED",
            Reason::RowCountMismatch => "ROW_COUNT_MISMATCH",
            Reason::Timeout => "TIMEOUT",
            Reason::Cancelled => "CANCELLED",
            Reason::ServerRestarted => "SERVER_RESTARTED",
            Reason::JobNotResumable => "JOB_NOT_RESUMABLE",
            Reason::Unauthenticated => "UNAUTHENTICATED",
            Reason::Internal => "INTERNAL",
        }
    }

    /// The gRPC code every error with this reason carries.
    pub const fn code(self) -> Code {
        match self {
            Reason::ClusterNotFound
            | Reason::RepositoryNotFound
            | Reason::BackupNotFound
            | Reason::JobNotFound
            | Reason::CollectionNotFound => Code::NotFound,
            Reason::NameRequired | Reason::InvalidArgument => Code::InvalidArgument,
            Reason::BackupExists | Reason::CollectionExists | Reason::AliasExists => {
                Code::AlreadyExists
            }
            Reason::BackupIncomplete
            | Reason::JobConflict
            | Reason::Unsupported
            | Reason::StorageConfig
            | Reason::JobNotResumable => Code::FailedPrecondition,
            Reason::MilvusUnavailable | Reason::StorageError => Code::Unavailable,
            Reason::MilvusError | Reason::ImportFailed | Reason::ServerRestarted => Code::Aborted,
            Reason::FileMissing
            | Reason::FileCorrupt
            | Reason::ManifestInvalid
            | Reason::SegmentFilesInconsistent
            | Reason::RowCountMismatch => Code::DataLoss,
            Reason::Timeout => Code::DeadlineExceeded,
            Reason::Cancelled => Code::Cancelled,
            Reason::StorageFull => Code::ResourceExhausted,
            Reason::Unauthenticated => Code::Unauthenticated,
            Reason::Internal => Code::Internal,
        }
    }

    /// What the user can do about it.
    pub const fn remedy(self) -> &'static str {
        match self {
            Reason::ClusterNotFound => {
                "Name a cluster from the server configuration (`milvault server-info` lists them)."
            }
            Reason::RepositoryNotFound => {
                "Name a repository from the server configuration (`milvault server-info` lists them)."
            }
            Reason::NameRequired => {
                "Several clusters or repositories are configured: name one with --cluster / --repository."
            }
            Reason::BackupNotFound => "Check the name and repository with `milvault backup list`.",
            Reason::BackupExists => {
                "Choose another backup name, or delete the existing backup first."
            }
            Reason::BackupIncomplete => {
                "The backup never finished: delete it (`milvault backup delete`) and back up again."
            }
            Reason::InvalidArgument => "Fix the named argument; the message says what is accepted.",
            Reason::JobNotFound => "Check the id with `milvault job list`.",
            Reason::JobConflict => {
                "Another job uses the same backup or target: wait for it to end."
            }
            Reason::CollectionExists => {
                "Restore under another name (--suffix, --rename) or replace it with --drop-existing."
            }
            Reason::CollectionNotFound => {
                "Check the collection filter against the source or backup."
            }
            Reason::AliasExists => {
                "Drop or move the alias in the target, or restore without aliases."
            }
            Reason::MilvusUnavailable => {
                "Check the cluster's address and that Milvus is running; the job can be started again."
            }
            Reason::MilvusError => {
                "Milvus refused an operation; its reason is in the message. Fix the cause and retry."
            }
            Reason::Unsupported => {
                "The source or target Milvus cannot do this; the message names what and why."
            }
            Reason::StorageError => {
                "Object storage failed after retries (unreachable, 5xx answers, stalls, permissions); check the named store and retry."
            }
            Reason::StorageFull => {
                "The named store ran out of space or quota; the job removed what it had written. Free space or grow the store, then run the job again."
            }
            Reason::StorageConfig => "Fix the named storage section of the server configuration.",
            Reason::FileMissing => {
                "A file of the backup is gone from the repository: restore from another backup."
            }
            Reason::FileCorrupt => {
                "A file's bytes differ from the manifest: restore from another backup; run `backup verify`."
            }
            Reason::ManifestInvalid => {
                "The manifest is unreadable or from an unknown format version: use a matching milvault."
            }
            Reason::SegmentFilesInconsistent => {
                "Segment files on the source changed or disagree (compaction, orphans): back up again."
            }
            Reason::ImportFailed => {
                "Milvus could not import the staged files; its reason is in the message."
            }
            Reason::RowCountMismatch => {
                "Rows that must agree do not (backup vs source, restore vs backup); the message names both numbers and nothing was reported complete."
            }
            Reason::Timeout => {
                "Milvus did not finish in time: raise the named timeout in [timeouts]."
            }
            Reason::Cancelled => "The job was cancelled on request; start it again if needed.",
            Reason::ServerRestarted => {
                "The server stopped while the job ran; its cleanup was done at start-up. Start it again. An interrupted restore keeps what it created for a while: `milvault job resume ID` continues it, `milvault job cancel ID` removes it."
            }
            Reason::JobNotResumable => {
                "Only a restore the server's restart interrupted can be resumed, once, within [restore] resume_window_secs; the message says why this one cannot. Start a new restore (cancel the interrupted one first when it still holds collections)."
            }
            Reason::Unauthenticated => "Send `authorization: Bearer <token>` (CLI: --token).",
            Reason::Internal => {
                "A bug: report it with the id from the message; details are in the server log."
            }
        }
    }
}

impl Error {
    /// The stable reason.
    pub fn reason(&self) -> Reason {
        match self {
            Error::UnknownCluster { .. } => Reason::ClusterNotFound,
            Error::UnknownRepository { .. } => Reason::RepositoryNotFound,
            Error::NameRequired { .. } => Reason::NameRequired,
            Error::BackupNotFound { .. } => Reason::BackupNotFound,
            Error::BackupExists { .. } => Reason::BackupExists,
            Error::BackupIncomplete { .. } => Reason::BackupIncomplete,
            Error::InvalidArgument { .. } => Reason::InvalidArgument,
            Error::JobNotFound { .. } => Reason::JobNotFound,
            Error::Conflict { .. } => Reason::JobConflict,
            Error::CollectionExists { .. } => Reason::CollectionExists,
            Error::CollectionNotFound { .. } => Reason::CollectionNotFound,
            Error::AliasExists { .. } => Reason::AliasExists,
            Error::MilvusUnavailable { .. } => Reason::MilvusUnavailable,
            Error::Milvus(_) => Reason::MilvusError,
            Error::Unsupported { .. } => Reason::Unsupported,
            Error::Storage(_) => Reason::StorageError,
            Error::StorageFull(_) => Reason::StorageFull,
            Error::FileMissing { .. } => Reason::FileMissing,
            Error::StorageConfig { .. } => Reason::StorageConfig,
            Error::Corrupt { .. } => Reason::FileCorrupt,
            Error::Manifest { .. } => Reason::ManifestInvalid,
            Error::SegmentFiles { .. } => Reason::SegmentFilesInconsistent,
            Error::ImportFailed { .. } => Reason::ImportFailed,
            Error::RowsMismatch { .. } => Reason::RowCountMismatch,
            Error::Timeout { .. } => Reason::Timeout,
            Error::Cancelled => Reason::Cancelled,
            Error::Interrupted { .. } => Reason::ServerRestarted,
            Error::NotResumable { .. } => Reason::JobNotResumable,
            Error::Internal { .. } => Reason::Internal,
        }
    }

    /// The gRPC code for this error.
    pub fn code(&self) -> Code {
        self.reason().code()
    }

    /// The objects this error is about, for `ErrorInfo.metadata`.
    pub fn metadata(&self) -> BTreeMap<String, String> {
        let pairs: Vec<(&str, String)> = match self {
            Error::UnknownCluster { name, .. } => vec![("cluster", name.clone())],
            Error::UnknownRepository { name, .. } => vec![("repository", name.clone())],
            Error::NameRequired { what, .. } => vec![("kind", (*what).to_owned())],
            Error::BackupNotFound { name, repository }
            | Error::BackupExists { name, repository }
            | Error::BackupIncomplete { name, repository } => {
                vec![("backup", name.clone()), ("repository", repository.clone())]
            }
            Error::InvalidArgument { field, .. } => vec![("field", (*field).to_owned())],
            Error::JobNotFound { id } | Error::NotResumable { id, .. } => {
                vec![("job", id.clone())]
            }
            Error::Conflict { resource, job, .. } => {
                vec![("resource", resource.clone()), ("job", job.clone())]
            }
            Error::CollectionNotFound {
                database,
                collection,
                ..
            } => vec![
                ("database", database.clone()),
                ("collection", collection.clone()),
            ],
            Error::CollectionExists {
                cluster,
                database,
                collection,
            } => vec![
                ("cluster", cluster.clone()),
                ("database", database.clone()),
                ("collection", collection.clone()),
            ],
            Error::AliasExists {
                cluster,
                database,
                alias,
                owner,
            } => {
                let mut v = vec![
                    ("cluster", cluster.clone()),
                    ("database", database.clone()),
                    ("alias", alias.clone()),
                ];
                if let Some(o) = owner {
                    v.push(("collection", o.clone()));
                }
                v
            }
            Error::MilvusUnavailable {
                cluster,
                address,
                op,
                ..
            } => vec![
                ("cluster", cluster.clone()),
                ("address", address.clone()),
                ("operation", (*op).to_owned()),
            ],
            Error::Milvus(m) => vec![
                ("cluster", m.cluster.clone()),
                ("operation", m.op.to_owned()),
                ("milvus_code", m.code.to_string()),
                ("milvus_error_code", m.error_code.to_string()),
            ],
            Error::Unsupported { metadata, .. } => metadata.clone(),
            Error::Storage(s) | Error::StorageFull(s) => vec![
                ("storage", s.storage.clone()),
                ("operation", s.op.to_owned()),
                ("file", s.path.clone()),
                ("kind", format!("{:?}", s.kind)),
            ],
            Error::FileMissing {
                storage,
                backup,
                path,
            } => vec![
                ("storage", storage.clone()),
                ("backup", backup.clone()),
                ("file", path.clone()),
            ],
            Error::StorageConfig { owner, .. } => vec![("storage", owner.clone())],
            Error::Corrupt { path, .. } => vec![("file", path.clone())],
            Error::Manifest { name, .. } => vec![("backup", name.clone())],
            Error::SegmentFiles {
                collection,
                segment,
                ..
            }
            | Error::ImportFailed {
                collection,
                segment,
                ..
            } => vec![
                ("collection", collection.clone()),
                ("segment", segment.to_string()),
            ],
            Error::RowsMismatch { collection, .. } => vec![("collection", collection.clone())],
            Error::Timeout { what, secs } => {
                vec![("operation", what.clone()), ("seconds", secs.to_string())]
            }
            Error::Cancelled | Error::Interrupted { .. } | Error::Internal { .. } => Vec::new(),
        };
        pairs
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    /// The message callers see. For internal errors: the summary and a fresh id, with
    /// the full text logged once under that id.
    fn public_message(&self) -> String {
        match self {
            Error::Internal { summary, detail } => {
                let id = uuid::Uuid::new_v4().simple().to_string();
                let id = &id[..12];
                tracing::error!(error_id = id, summary, detail, "internal error");
                format!("internal error {id}: {summary}; the server log has the details")
            }
            other => other.to_string(),
        }
    }

    /// The error as carried inside a failed job.
    pub fn to_job_error(&self) -> JobError {
        JobError {
            code: code_name(self.code()).to_owned(),
            reason: self.reason().as_str().to_owned(),
            message: self.public_message(),
            metadata: self.metadata().into_iter().collect(),
        }
    }

    /// Shorthand for an [`Error::InvalidArgument`].
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            message: message.into(),
        }
    }

    /// Shorthand for an [`Error::Internal`]: `summary` is shown, `detail` logged.
    pub fn internal(summary: &'static str, detail: impl std::fmt::Display) -> Self {
        Error::Internal {
            summary,
            detail: detail.to_string(),
        }
    }

    /// Shorthand for an [`Error::Unsupported`] about a collection.
    pub fn unsupported(
        message: impl Into<String>,
        database: &str,
        collection: &str,
        cluster: &str,
    ) -> Self {
        Error::Unsupported {
            message: message.into(),
            metadata: vec![
                ("cluster", cluster.to_owned()),
                ("database", database.to_owned()),
                ("collection", collection.to_owned()),
            ],
        }
    }

    /// Whether repeating the failed operation may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Storage(s) => s.retryable,
            Error::Milvus(m) => m.retriable,
            Error::MilvusUnavailable { .. } => true,
            _ => false,
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

/// A status with an `ErrorInfo` detail: the one way this server builds error statuses.
pub(crate) fn status(
    code: Code,
    reason: Reason,
    message: String,
    metadata: BTreeMap<String, String>,
) -> tonic::Status {
    let details = ErrorDetails::with_error_info(
        reason.as_str(),
        DOMAIN,
        metadata
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>(),
    );
    tonic::Status::with_error_details(code, message, details)
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        status(
            err.code(),
            err.reason(),
            err.public_message(),
            err.metadata(),
        )
    }
}

/// The table of reasons in Markdown (`docs/errors.md` is this text).
pub fn reasons_markdown() -> String {
    let mut out = String::from(
        "# Error reasons\n\nEvery error Milvault reports carries one of these stable reasons \
         (`google.rpc.ErrorInfo.reason` on RPC errors, `JobError.reason` in a failed job) and \
         metadata naming the objects involved. Generated from `server/src/error.rs`; a test \
         keeps this file in step.\n\n| reason | gRPC code | what to do |\n|---|---|---|\n",
    );
    for r in Reason::ALL {
        out.push_str(&format!(
            "| `{}` | `{}` | {} |\n",
            r.as_str(),
            code_name(r.code()),
            r.remedy()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_carries_code_reason_message_and_metadata() {
        let status: tonic::Status = Error::BackupNotFound {
            name: "b1".into(),
            repository: "r".into(),
        }
        .into();
        assert_eq!(status.code(), Code::NotFound);
        assert!(status.message().contains("\"b1\""));
        let info = status.get_details_error_info().expect("error info present");
        assert_eq!(info.reason, "BACKUP_NOT_FOUND");
        assert_eq!(info.metadata.get("backup").map(String::as_str), Some("b1"));
        assert_eq!(
            info.metadata.get("repository").map(String::as_str),
            Some("r")
        );
    }

    #[test]
    fn job_error_uses_code_names() {
        let e = Error::MilvusUnavailable {
            cluster: "a".into(),
            address: "http://x:1".into(),
            op: "Connect",
            detail: "refused".into(),
        };
        let je = e.to_job_error();
        assert_eq!(je.code, "UNAVAILABLE");
        assert_eq!(je.reason, "MILVUS_UNAVAILABLE");
        assert!(je.message.contains("http://x:1"));
        assert_eq!(je.metadata.get("cluster").map(String::as_str), Some("a"));
    }

    #[test]
    fn a_full_store_is_resource_exhausted() {
        let io = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let dal = opendal::Error::new(opendal::ErrorKind::Unexpected, "write").set_source(io);
        let e: Error = StorageError::new("repository r", "write", "backups/b/x", dal).into();
        assert!(matches!(e, Error::StorageFull(_)), "{e:?}");
        let s: tonic::Status = e.into();
        assert_eq!(s.code(), Code::ResourceExhausted);
        let info = s.get_details_error_info().expect("error info");
        assert_eq!(info.reason, "STORAGE_FULL");
        assert_eq!(
            info.metadata.get("storage").map(String::as_str),
            Some("repository r")
        );
        // Anything else stays a storage error.
        let other = opendal::Error::new(opendal::ErrorKind::Unexpected, "reset").set_temporary();
        let e: Error = StorageError::new("cluster b", "read", "k", other).into();
        assert_eq!(e.code(), Code::Unavailable);
        assert_eq!(e.reason(), Reason::StorageError);
    }

    #[test]
    fn internal_errors_show_a_summary_and_an_id_only() {
        let e = Error::internal("journal write failed", "redb: secret path /x/y corrupted");
        let s: tonic::Status = e.into();
        assert_eq!(s.code(), Code::Internal);
        assert!(
            s.message().contains("journal write failed"),
            "{}",
            s.message()
        );
        assert!(!s.message().contains("/x/y"), "{}", s.message());
        assert!(
            s.message().starts_with("internal error "),
            "{}",
            s.message()
        );
    }

    #[test]
    fn every_reason_is_distinct_and_documented() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "{} twice", r.as_str());
            assert!(!r.remedy().is_empty());
        }
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/errors.md");
        if std::env::var_os("MILVAULT_BLESS").is_some() {
            std::fs::write(path, reasons_markdown()).expect("write docs/errors.md");
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            on_disk,
            reasons_markdown(),
            "docs/errors.md is out of date: run this test with MILVAULT_BLESS=1"
        );
    }
}
