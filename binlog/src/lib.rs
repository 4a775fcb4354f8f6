//! # milvault-binlog
//!
//! Reads (and writes) the segment files Milvus keeps in object storage, without Milvus.
//! Milvault uses it to count exact live rows of a backup, verify segments, restore rows
//! by insert, export to Parquet, and rewrite delete logs for old restore targets.
#![warn(missing_docs)]

pub mod datatype;
pub mod error;
pub mod scalar_field;
pub mod source;
pub mod v1;

pub use datatype::DataType;
pub use error::{Error, Result};
pub use source::{ByteSource, FileSource, MemSource};
