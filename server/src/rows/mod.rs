//! What is inside a backup, row by row, read with `milvault-binlog` and no Milvus.
//!
//! A backup tool that cannot read its own backups cannot prove them. This module reads
//! the segment files a backup holds to:
//! - count exact inserted and live rows per segment, partition and collection
//!   ([`count`]), for every manifest and for the checks of backups and restores;
//! - verify a backup deeply ([`deep`]): every file decodes, fields agree, counts match;
//! - restore rows by insert where Milvus cannot import binlogs ([`reader`] feeds
//!   `restore/rows.rs`);
//! - export live rows as Parquet ([`export`]).
//!
//! Deletes follow Milvus's rule: a delete of key K at time D removes the rows of K
//! written before D (a row written at D survives: an upsert is a delete and an insert
//! at the same time). A partition's deletes are the delete logs of its segments plus
//! those of channel-level L0 segments (partition −1), which apply to all partitions.

pub(crate) mod count;
pub(crate) mod deep;
pub(crate) mod export;
pub(crate) mod fold;
pub(crate) mod reader;

use std::collections::BTreeMap;
use std::sync::Arc;

use milvault_binlog::{ByteSource, DeleteSet, FieldSpec, Segment, SegmentFiles};
use milvault_proto::milvault::v1::{BackupFile, CollectionBackup, SegmentBackup};

use crate::error::{Error, StorageError};
use crate::storage::Store;

/// Partition id of deletes that apply to every partition (channel-level L0).
pub(crate) const ALL_PARTITIONS: i64 = -1;

/// The storage version of Milvus 2.6's column-group segments.
pub(crate) const STORAGE_V2: i64 = 2;

/// Level number of delete-only segments.
const LEVEL_L0: i32 = 1;

/// Whether a backed-up segment holds only deletes (an L0 segment of Milvus 2.4+).
pub(crate) fn is_delete_only(seg: &SegmentBackup) -> bool {
    seg.level == LEVEL_L0 || (seg.insert_logs.is_empty() && !seg.delta_logs.is_empty())
}

/// The field id of the primary key.
pub(crate) fn pk_field(c: &CollectionBackup) -> Result<i64, Error> {
    c.schema
        .as_ref()
        .and_then(|s| s.fields.iter().find(|f| f.is_primary_key))
        .map(|f| f.field_id)
        .ok_or_else(|| Error::Manifest {
            name: String::new(),
            message: format!("collection {}.{} has no primary key", c.database, c.name),
        })
}

/// One log file of a field: its log id and its bytes.
type LogFile = (i64, Arc<dyn ByteSource>);

/// Reads the files of one backup from its repository.
#[derive(Clone)]
pub(crate) struct Files<'a> {
    /// The repository's store.
    pub(crate) store: &'a Store,
    /// The backup's name (for errors).
    pub(crate) backup: &'a str,
}

impl Files<'_> {
    /// One file of the manifest as a ranged-read source.
    pub(crate) fn source(&self, f: &BackupFile) -> Arc<dyn ByteSource> {
        self.store.byte_source(&f.path, f.size_bytes)
    }

    /// A segment's insert logs as a reader: storage v1 (files per field, in log order)
    /// or storage v2 (Parquet column groups, Milvus 2.6; the schema gives the types).
    pub(crate) fn segment_of(&self, c: &CollectionBackup, seg: &SegmentBackup) -> Segment {
        if seg.storage_version < STORAGE_V2 {
            return self.segment(seg);
        }
        let schema = c
            .schema
            .as_ref()
            .map(|s| {
                s.fields
                    .iter()
                    .filter_map(|f| {
                        milvault_binlog::DataType::from_code(f.data_type, "", 0)
                            .ok()
                            .map(|data_type| FieldSpec {
                                field_id: f.field_id,
                                data_type,
                            })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Segment::new(
            format!("segment {}", seg.segment_id),
            SegmentFiles::V2 {
                groups: self.by_id(seg),
                schema,
            },
        )
    }

    /// The segment's insert logs grouped by field (or column-group) id, each list in
    /// log order.
    fn by_id(&self, seg: &SegmentBackup) -> BTreeMap<i64, Vec<Arc<dyn ByteSource>>> {
        let mut fields: BTreeMap<i64, Vec<LogFile>> = BTreeMap::new();
        for f in &seg.insert_logs {
            fields
                .entry(f.field_id)
                .or_default()
                .push((f.log_id, self.source(f)));
        }
        fields
            .into_iter()
            .map(|(id, mut files)| {
                files.sort_by_key(|(log, _)| *log);
                (id, files.into_iter().map(|(_, s)| s).collect())
            })
            .collect()
    }

    /// A storage-v1 segment's insert logs as a reader.
    fn segment(&self, seg: &SegmentBackup) -> Segment {
        let fields = self.by_id(seg);
        Segment::new(
            format!("segment {}", seg.segment_id),
            SegmentFiles::V1 { fields },
        )
    }

    /// The deletes that apply to partition `partition`: the delete logs of its own
    /// segments and of every all-partition (L0) segment.
    pub(crate) async fn deletes_of(
        &self,
        c: &CollectionBackup,
        partition: i64,
    ) -> Result<DeleteSet, Error> {
        let mut set = DeleteSet::new();
        for seg in c
            .segments
            .iter()
            .filter(|s| s.partition_id == partition || s.partition_id == ALL_PARTITIONS)
        {
            for f in &seg.delta_logs {
                let log = milvault_binlog::read_delta_log(self.source(f))
                    .await
                    .map_err(|e| self.error(e))?;
                set.extend(log.entries);
            }
        }
        Ok(set)
    }

    /// Turns a reader error into ours: storage failures keep their kind (a file the
    /// manifest lists but the repository lacks is data loss), decoding failures are
    /// corrupt files.
    pub(crate) fn error(&self, e: milvault_binlog::Error) -> Error {
        match e {
            milvault_binlog::Error::Io {
                file,
                source,
                offset,
                ..
            } => {
                let kind = source.kind();
                match source.into_inner().map(|i| i.downcast::<opendal::Error>()) {
                    Some(Ok(dal)) if dal.kind() == opendal::ErrorKind::NotFound => {
                        Error::FileMissing {
                            storage: self.store.name().to_owned(),
                            backup: self.backup.to_owned(),
                            path: file,
                        }
                    }
                    Some(Ok(dal)) => {
                        Error::Storage(StorageError::new(self.store.name(), "read", &file, *dal))
                    }
                    _ => Error::Corrupt {
                        path: file,
                        message: format!("read at offset {offset} failed ({kind:?})"),
                    },
                }
            }
            milvault_binlog::Error::Corrupt { ref file, .. }
            | milvault_binlog::Error::Parquet { ref file, .. }
            | milvault_binlog::Error::UnknownDataType { ref file, .. }
            | milvault_binlog::Error::Unsupported { ref file, .. } => Error::Corrupt {
                path: file.clone(),
                message: e.to_string(),
            },
            milvault_binlog::Error::RowCountMismatch { ref segment, .. } => Error::SegmentFiles {
                collection: String::new(),
                segment: 0,
                message: format!("{segment}: {e}"),
            },
            other => Error::internal("a segment file could not be read", other),
        }
    }

    /// Like [`Self::error`], naming the collection and segment a row-count
    /// disagreement is about.
    pub(crate) fn segment_error(
        &self,
        e: milvault_binlog::Error,
        c: &CollectionBackup,
        seg: &SegmentBackup,
    ) -> Error {
        match self.error(e) {
            Error::SegmentFiles { message, .. } => Error::SegmentFiles {
                collection: format!("{}.{}", c.database, c.name),
                segment: seg.segment_id,
                message,
            },
            other => other,
        }
    }
}
