//! Domain types the Milvus client returns and takes, so that no Milvus wire type
//! leaves `milvus/`. Schemas, partitions, indexes and grants use the manifest's own
//! types (`milvault.v1`): they are what a backup stores.

use milvault_proto::milvault::v1 as mv;

/// What `DescribeCollection` says about a collection, in manifest terms.
#[derive(Clone, Debug)]
pub(crate) struct CollectionInfo {
    /// Milvus's collection id.
    pub(crate) id: i64,
    /// The schema, version independent.
    pub(crate) schema: mv::CollectionSchema,
    /// The schema exactly as the server encoded it (kept in the manifest).
    pub(crate) raw_schema: Vec<u8>,
    /// Number of shards (virtual channels).
    pub(crate) shards_num: i32,
    /// Consistency level in the manifest's numbering.
    pub(crate) consistency_level: mv::ConsistencyLevel,
    /// Collection properties.
    pub(crate) properties: Vec<mv::KeyValue>,
    /// Aliases as `DescribeCollection` lists them (2.2 has no `ListAliases`).
    pub(crate) aliases: Vec<String>,
    /// Partitions of a partition-key collection (0 otherwise).
    pub(crate) num_partitions: i64,
    /// Creation TSO.
    pub(crate) created_timestamp: u64,
}

/// A collection to create.
#[derive(Clone, Debug)]
pub(crate) struct NewCollection<'a> {
    /// Target database.
    pub(crate) database: &'a str,
    /// Target name.
    pub(crate) name: &'a str,
    /// Schema with the field ids to reproduce.
    pub(crate) schema: &'a mv::CollectionSchema,
    /// The schema exactly as the source encoded it (used when present: it keeps
    /// what the manifest's schema does not model, such as functions).
    pub(crate) raw_schema: &'a [u8],
    /// Number of shards.
    pub(crate) shards_num: i32,
    /// Consistency level in the manifest's numbering.
    pub(crate) consistency_level: mv::ConsistencyLevel,
    /// Collection properties.
    pub(crate) properties: &'a [mv::KeyValue],
    /// Partitions of a partition-key collection (0 otherwise).
    pub(crate) num_partitions: i64,
}

/// A segment's lifecycle state (`common.SegmentState`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SegmentState {
    /// Still taking rows.
    Growing,
    /// Sealed, not yet on storage.
    Sealed,
    /// Being written to storage.
    Flushing,
    /// On storage.
    Flushed,
    /// Compacted away or dropped.
    Dropped,
    /// Being filled by an import.
    Importing,
    /// Anything else (`None`, `NotExist`, future states).
    Other(i32),
}

/// A segment's level (`common.SegmentLevel`, 2.4.7+; `Legacy` before).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SegmentLevel {
    /// Before levels existed, or a segment of 2.4+ written the old way.
    Legacy,
    /// Delete-only segment (2.4+).
    L0,
    /// Normal data segment.
    L1,
    /// Clustering-compacted segment.
    L2,
}

/// One segment as `GetPersistentSegmentInfo` lists it.
#[derive(Clone, Debug)]
pub(crate) struct SegmentInfo {
    /// Segment id.
    pub(crate) id: i64,
    /// Partition id (−1 for channel-level L0 segments).
    pub(crate) partition_id: i64,
    /// Rows Milvus counts in it (before its deletes).
    pub(crate) num_rows: i64,
    /// Lifecycle state.
    pub(crate) state: SegmentState,
    /// Level.
    pub(crate) level: SegmentLevel,
    /// Storage format version (2 = storage v2, Milvus 2.6).
    pub(crate) storage_version: i64,
}

/// One binlog import request (one partition).
#[derive(Clone, Debug)]
pub(crate) struct ImportSpec<'a> {
    /// Target database.
    pub(crate) database: &'a str,
    /// Target collection.
    pub(crate) collection: &'a str,
    /// Target partition.
    pub(crate) partition: &'a str,
    /// Directories (insert-log group dir, delta-log group dir; or one L0 delete-log
    /// dir), as the server reads them: absolute paths on local storage, bucket keys on
    /// object storage.
    pub(crate) paths: Vec<String>,
    /// An L0 (delete-only) segment: `l0_import` instead of `backup` (2.4+).
    pub(crate) l0: bool,
    /// The segments' storage version (2 = storage v2, passed on 2.6+).
    pub(crate) storage_version: i64,
}

/// Where an import task is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ImportProgress {
    /// Queued or running.
    Running,
    /// Done; `rows` is what Milvus says it imported (after the segment's deletes).
    Completed {
        /// Rows imported.
        rows: i64,
    },
    /// Failed; `reason` is Milvus's.
    Failed {
        /// Milvus's reason.
        reason: String,
    },
}

/// Whether a create call made something new or found it there already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Created {
    /// Made now.
    New,
    /// Existed before the call.
    Existed,
}

/// A primary-key value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PkValue {
    /// Int64 key.
    Int(i64),
    /// VarChar key.
    Str(String),
}

/// A user with the roles it has.
#[derive(Clone, Debug)]
pub(crate) struct UserRoles {
    /// User name.
    pub(crate) name: String,
    /// Role names.
    pub(crate) roles: Vec<String>,
}
