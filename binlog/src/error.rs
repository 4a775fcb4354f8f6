//! The one error type of the crate.
//!
//! Every error that comes from reading names the file (the name the caller gave its
//! [`ByteSource`](crate::ByteSource)) and, where the damage has a place, the byte offset in
//! that file: "which object of which backup is broken, and where" is what an operator needs.

use std::io;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading or writing Milvus segment files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The byte source failed (object storage, local file).
    #[error("{file}: read of {len} bytes at offset {offset} failed: {source}")]
    Io {
        /// Name of the file.
        file: String,
        /// Offset of the failed read.
        offset: u64,
        /// Length of the failed read.
        len: u64,
        /// What the source reported.
        #[source]
        source: io::Error,
    },
    /// The file is damaged, truncated, or not what it claims to be.
    #[error("{file}: corrupt at offset {offset}: {what}")]
    Corrupt {
        /// Name of the file.
        file: String,
        /// Byte offset where the damage was found.
        offset: u64,
        /// What was expected and what was found.
        what: String,
    },
    /// A Parquet payload (inside a v1 event or a bare v2 file) could not be decoded.
    #[error("{file}: Parquet payload at offset {offset}: {source}")]
    Parquet {
        /// Name of the file.
        file: String,
        /// Offset of the payload's first byte in the file.
        offset: u64,
        /// The decoder's error.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A data type number Milvus does not define (or this crate does not know).
    #[error("{file}: unknown Milvus data type {value} at offset {offset}")]
    UnknownDataType {
        /// Name of the file (empty when the number came from the caller).
        file: String,
        /// Where the number was read.
        offset: u64,
        /// The number found.
        value: i32,
    },
    /// The file is valid but uses something this crate does not handle.
    #[error("{file}: unsupported: {what}")]
    Unsupported {
        /// Name of the file.
        file: String,
        /// What is not supported.
        what: String,
    },
    /// The fields (or column groups) of one segment disagree on their row count.
    #[error("segment {segment}: fields disagree on row count: {}", fmt_counts(.counts))]
    RowCountMismatch {
        /// Name of the segment, as the caller gave it.
        segment: String,
        /// Row count per field (or column group) id.
        counts: Vec<(i64, u64)>,
    },
    /// The caller passed something that cannot be written or read as asked.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

fn fmt_counts(counts: &[(i64, u64)]) -> String {
    counts
        .iter()
        .map(|(f, n)| format!("field {f}: {n} rows"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    pub(crate) fn corrupt(file: &str, offset: u64, what: impl Into<String>) -> Self {
        Error::Corrupt {
            file: file.to_owned(),
            offset,
            what: what.into(),
        }
    }

    pub(crate) fn parquet(file: &str, offset: u64, source: parquet::errors::ParquetError) -> Self {
        Error::Parquet {
            file: file.to_owned(),
            offset,
            source,
        }
    }

    pub(crate) fn unsupported(file: &str, what: impl Into<String>) -> Self {
        Error::Unsupported {
            file: file.to_owned(),
            what: what.into(),
        }
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Self {
        Error::InvalidInput(what.into())
    }
}
