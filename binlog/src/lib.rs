//! # milvault-binlog
//!
//! Reads (and writes) the segment files Milvus keeps in object storage, without Milvus.
//! Milvault uses it to count exact live rows of a backup, verify segments, restore rows
//! by insert, export to Parquet, and rewrite delete logs for old restore targets.
//!
//! ## Layout
//! - [`source`] — [`ByteSource`]: async ranged reads (memory, local file; the server
//!   plugs in object storage). Nothing here reads a whole file at once.
//! - [`v1`] — the storage-v1 envelope (magic, descriptor, event headers).
//! - [`insert`] — one v1 insert log as a stream of Arrow arrays.
//! - [`v2`] — storage-v2 (2.6) bare-Parquet column-group files.
//! - [`convert`] — the Milvus → Arrow type mapping (the table is there).
//! - [`scalar_field`] — the protobuf bytes Milvus stores per ARRAY row.
//! - [`delta`] — delete logs in all four encodings.
//! - [`segment`] — one segment's files as aligned record batches, row-count checks.
//! - [`live`] — delete sets and Milvus's visibility rule; live-row counts and filters.
//! - [`mod@write`] — writers for v1 insert logs, every delete-log encoding, v2 groups.
//! - [`datatype`], [`error`] — Milvus type numbers; the one error type.
//!
//! Every error names the file (the caller's name for it) and, for damage, the byte
//! offset; damaged input never panics.
#![warn(missing_docs)]

pub mod convert;
pub mod datatype;
pub mod delta;
pub mod error;
pub mod insert;
pub mod live;
mod payload;
pub mod scalar_field;
pub mod segment;
pub mod source;
pub mod v1;
pub mod v2;
pub mod write;

pub use datatype::DataType;
pub use delta::{DeleteEntry, DeltaEncoding, DeltaLog, Pk, read_delta_log};
pub use error::{Error, Result};
pub use insert::InsertLog;
pub use live::{DeleteSet, RowCounts};
pub use payload::DEFAULT_BATCH_ROWS;
pub use segment::{Segment, SegmentFiles, SegmentReader};
pub use source::{ByteSource, FileSource, MemSource};
pub use v2::{ColumnGroupFile, FieldSpec};
