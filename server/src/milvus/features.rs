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

    /// The `skip_disk_quota_check` import option: 2.4+.
    pub(crate) fn import_skips_disk_quota(&self) -> bool {
        self.at_least(2, 4, 0)
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
}
