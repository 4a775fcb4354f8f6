//! What a Milvus server version can do, decided in one place.
//!
//! Code asks for a feature by name (`supports_databases`, `gc_pause`, ...) instead of
//! comparing versions where it needs them; the version facts live here only.

use std::fmt;

/// A Milvus server version (`v2.3.5` → 2.3.5). Unparsable strings become 0.0.0 and
/// are treated as the oldest version (the safe side).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version {
    /// Major.
    pub(crate) major: u32,
    /// Minor.
    pub(crate) minor: u32,
    /// Patch.
    pub(crate) patch: u32,
}

impl Version {
    /// Builds a version.
    pub(crate) const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses `v2.3.5`, `2.3.5`, `v2.4.0-rc.1`, `2.6.8-dev`, ...
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let t = text.trim().trim_start_matches(['v', 'V']);
        let core = t.split(['-', '+', ' ']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u32>());
        let major = parts.next()?.ok()?;
        let minor = parts.next().unwrap_or(Ok(0)).ok()?;
        let patch = parts.next().unwrap_or(Ok(0)).ok()?;
        Some(Self {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// How the server's garbage collector can be paused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GcPause {
    /// No working endpoint (2.2, 2.3): copy promptly and verify instead.
    Unavailable,
    /// `pause?pause_seconds=N` / `resume` (2.4 up to 2.6.7).
    Global,
    /// Per-collection tickets (`collection_id=`, `ticket=`), 2.6.8+.
    Ticketed,
}

/// Where the timestamp of a `GetFlushAllState` wait comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FlushAllTs {
    /// `AllocTimestamp` (2.2.13+).
    AllocTimestamp,
    /// The `flush_all_ts` of `FlushAll` (2.2.5–2.2.12; it also seals every growing
    /// segment of the cluster).
    FlushAll,
    /// No `GetFlushAllState` (before 2.2.5): nothing proves deletes reached storage.
    Unavailable,
}

/// The feature gates of one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Features {
    /// The server's version.
    pub(crate) version: Version,
}

impl Features {
    /// Gates for `version`.
    pub(crate) const fn new(version: Version) -> Self {
        Self { version }
    }

    fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.version >= Version::new(major, minor, patch)
    }

    /// Databases (`ListDatabases`, `CreateDatabase`, the `dbname` header): 2.2.7+.
    pub(crate) fn supports_databases(&self) -> bool {
        self.at_least(2, 2, 7)
    }

    /// `ListAliases`: 2.3.0+ (before that, aliases come from `DescribeCollection`).
    pub(crate) fn supports_list_aliases(&self) -> bool {
        self.at_least(2, 3, 0)
    }

    /// Whether a collection's `Flush` (with `GetFlushState` on its flush timestamp)
    /// brings every buffered delete to storage: 2.3+. Milvus 2.2 writes the deletes
    /// of already-flushed segments only on its periodic sync
    /// (`dataNode.segment.syncPeriod`, 10 min by default); a backup then waits for
    /// `GetFlushAllState` at a timestamp taken before the flush.
    pub(crate) fn flush_writes_deletes(&self) -> bool {
        self.at_least(2, 3, 0)
    }

    /// Whether a binlog import compares a delete's timestamp with the row's (2.3+);
    /// 2.2 drops every row of a key its delete log names, so an upserted key would
    /// lose its newest row: the restore then rewrites the deletes (`rows::fold`).
    pub(crate) fn import_compares_delete_timestamps(&self) -> bool {
        self.at_least(2, 3, 0)
    }

    /// How a backup gets the timestamp it waits for with `GetFlushAllState` on
    /// servers whose flush leaves deletes in memory (2.2).
    pub(crate) fn flush_all_timestamp(&self) -> FlushAllTs {
        if self.at_least(2, 2, 13) {
            FlushAllTs::AllocTimestamp
        } else if self.at_least(2, 2, 5) {
            FlushAllTs::FlushAll
        } else {
            FlushAllTs::Unavailable
        }
    }

    /// `l0_import=true` imports of L0 delete segments: 2.4 up to 2.6 (3.0 disables
    /// them by default, milvus#51194).
    pub(crate) fn l0_import(&self) -> bool {
        self.at_least(2, 4, 0) && !self.at_least(3, 0, 0)
    }

    /// The `storage_version` import option: 2.6+.
    pub(crate) fn storage_version_option(&self) -> bool {
        self.at_least(2, 6, 0)
    }

    /// Binlog import of storage-v2 (column-group) segments: 2.6+. Older targets get
    /// their rows by insert.
    pub(crate) fn imports_storage_v2(&self) -> bool {
        self.at_least(2, 6, 0)
    }

    /// Whether imported rows keep their original timestamps (2.4+): a collection TTL
    /// then counts from the source's write time, not the restore's.
    pub(crate) fn import_keeps_row_timestamps(&self) -> bool {
        self.at_least(2, 4, 0)
    }

    /// `count(*)` in queries: 2.3.0+ (2.2 counts by paging through keys).
    pub(crate) fn supports_count_star(&self) -> bool {
        self.at_least(2, 3, 0)
    }

    /// How GC can be paused during a backup.
    pub(crate) fn gc_pause(&self) -> GcPause {
        if self.at_least(2, 6, 8) {
            GcPause::Ticketed
        } else if self.at_least(2, 4, 0) {
            GcPause::Global
        } else {
            GcPause::Unavailable
        }
    }

    /// Binlog import into a partition-key collection: refused by 2.2/2.3 ("target
    /// partition must be only one"); 2.4+ accepts a named partition in backup mode.
    pub(crate) fn binlog_import_into_partition_key(&self) -> bool {
        self.at_least(2, 4, 0)
    }

    /// Most segments one backup-mode import may carry (one group directory holding
    /// many segment directories), `None` = no limit of the server's own.
    /// 2.2/2.3: the binlog parser lists the directory recursively and imports every
    /// segment under it, one after another, in one task (seen here: 1,100 segments in
    /// one task on 2.3.5, 300 on 2.2.16, rows exact); the task's time limit
    /// (`importTaskExpiration`, 900 s from its start) is what bounds it, so restores
    /// also cap a task's bytes. 2.4+: one import job expands to one file per segment,
    /// at most `dataCoord.import.maxImportFileNumPerReq` (1,024 by default).
    pub(crate) fn max_segments_per_import(&self) -> Option<usize> {
        self.at_least(2, 4, 0).then_some(1024)
    }

    /// Import tasks (jobs) the server takes at once. 2.2/2.3 queue them (65,535
    /// pending) and run one per DataNode at a time — seen on 2.3.5 standalone: four
    /// tasks submitted together ran strictly one after another, each starting as the
    /// previous completed; 2.4+ runs up to `dataCoord.import.maxImportJobNum` (1,024)
    /// jobs. A restore keeps `min(this, limits.import_concurrency)` in flight, so the
    /// next task is always queued when one ends.
    pub(crate) fn import_jobs_accepted(&self) -> usize {
        if self.at_least(2, 4, 0) { 1024 } else { 65_535 }
    }

    /// The `skip_disk_quota_check` import option: 2.4+.
    pub(crate) fn import_skips_disk_quota(&self) -> bool {
        self.at_least(2, 4, 0)
    }

    /// `BackupRBAC`/`RestoreRBAC` (milvus-proto v2.4.10): users come out with their
    /// password hash and go back in with it; before, users, roles and grants are read
    /// with the select RPCs and passwords cannot be exported.
    pub(crate) fn rbac_meta(&self) -> bool {
        self.at_least(2, 4, 10)
    }

    /// Custom privilege groups (`RBACMeta.privilege_groups`, the group RPCs):
    /// milvus-proto v2.4.16. A `RestoreRBAC` of an older server drops the groups it
    /// is sent (an unknown field), so grants naming them must be expanded.
    pub(crate) fn privilege_groups(&self) -> bool {
        self.at_least(2, 4, 16)
    }

    /// Whether a grant may name the built-in privilege group `name` (`ReadOnly`,
    /// `ClusterAdmin`, ...; `common.proto` `PrivilegeGroup*`): `ReadOnly`, `ReadWrite`
    /// and `Admin` from 2.4.10, the cluster/database/collection groups from 2.4.18.
    /// `None` when `name` is no built-in group.
    pub(crate) fn knows_builtin_privilege_group(&self, name: &str) -> Option<bool> {
        match name {
            "ReadOnly" | "ReadWrite" | "Admin" => Some(self.at_least(2, 4, 10)),
            "ClusterReadOnly"
            | "ClusterReadWrite"
            | "ClusterAdmin"
            | "DatabaseReadOnly"
            | "DatabaseReadWrite"
            | "DatabaseAdmin"
            | "CollectionReadOnly"
            | "CollectionReadWrite"
            | "CollectionAdmin" => Some(self.at_least(2, 4, 18)),
            _ => None,
        }
    }

    /// REST `POST /v2/vectordb/segments/describe` names every file a segment owns
    /// (milvus#40466, 2.5.8; milvus-backup gates it the same way): a backup copies
    /// exactly those instead of what a listing of the segment's folders finds.
    pub(crate) fn segment_describe_rest(&self) -> bool {
        self.at_least(2, 5, 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(Version::parse("v2.3.5"), Some(Version::new(2, 3, 5)));
        assert_eq!(Version::parse("2.4.0-rc.1"), Some(Version::new(2, 4, 0)));
        assert_eq!(Version::parse("v2.6"), Some(Version::new(2, 6, 0)));
        assert_eq!(Version::parse("garbage"), None);
    }

    #[test]
    fn gates_follow_the_protocol_facts() {
        let v = |s| Features::new(Version::parse(s).expect("version"));
        assert!(!v("v2.2.6").supports_databases());
        assert!(v("v2.2.16").supports_databases());
        assert!(!v("v2.2.16").supports_list_aliases());
        assert!(v("v2.3.5").supports_list_aliases());
        assert_eq!(v("v2.3.5").gc_pause(), GcPause::Unavailable);
        assert_eq!(v("v2.4.10").gc_pause(), GcPause::Global);
        assert_eq!(v("v2.6.8").gc_pause(), GcPause::Ticketed);
        assert!(!v("v2.3.5").binlog_import_into_partition_key());
    }

    #[test]
    fn import_batching_follows_the_version() {
        let v = |s| Features::new(Version::parse(s).expect("version"));
        assert_eq!(v("v2.2.16").max_segments_per_import(), None);
        assert_eq!(v("v2.3.5").max_segments_per_import(), None);
        assert_eq!(v("v2.4.0").max_segments_per_import(), Some(1024));
        assert_eq!(v("v2.6.8").max_segments_per_import(), Some(1024));
        assert_eq!(v("v2.3.5").import_jobs_accepted(), 65_535);
        assert_eq!(v("v2.4.10").import_jobs_accepted(), 1024);
    }

    #[test]
    fn rbac_and_segment_description_gates() {
        let v = |s| Features::new(Version::parse(s).expect("version"));
        assert!(!v("v2.4.9").rbac_meta());
        assert!(v("v2.4.10").rbac_meta());
        assert!(!v("v2.4.15").privilege_groups());
        assert!(v("v2.4.16").privilege_groups());
        assert!(v("v2.5.0").privilege_groups());
        assert_eq!(
            v("v2.4.9").knows_builtin_privilege_group("ReadOnly"),
            Some(false)
        );
        assert_eq!(
            v("v2.4.10").knows_builtin_privilege_group("ReadOnly"),
            Some(true)
        );
        assert_eq!(
            v("v2.4.17").knows_builtin_privilege_group("ClusterAdmin"),
            Some(false)
        );
        assert_eq!(
            v("v2.4.18").knows_builtin_privilege_group("ClusterAdmin"),
            Some(true)
        );
        assert_eq!(v("v2.6.0").knows_builtin_privilege_group("Query"), None);
        assert!(!v("v2.5.7").segment_describe_rest());
        assert!(v("v2.5.8").segment_describe_rest());
        assert!(v("v2.6.0").segment_describe_rest());
    }
}
