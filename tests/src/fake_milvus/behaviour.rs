//! The one table of version behaviours: everything the fake does differently per Milvus
//! version is a named field (or a status constructor) of [`Behaviour`], decided once from
//! the version string, each with the source it comes from.
//!
//! Sources: `MILVUS.md` (seen on real 2.2.16 / 2.3.5 here), `MILVUS-PROTOCOL.md` (read in
//! milvus-proto tags and upstream code), `MILVUS-24-26.md` (2.4–2.6, read in upstream and
//! milvus-backup code; never run here). "[I]" marks an inference, "[NC]" a guess the notes
//! could not confirm; both are the fake's choice until someone sees the real answer.

use std::ops::RangeInclusive;

use milvault_binlog::{DeleteEntry, DeleteSet, DeltaEncoding, Pk};
use milvault_proto::milvus::common::{ErrorCode, ImportState, Status};

/// How an import applies a segment's delete logs to its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteRule {
    /// A row is dropped when its primary key is in any delete log of its segment, whatever
    /// the timestamps (2.2: `MILVUS.md` "2.2.16 import (seen here)", `MILVUS-24-26.md` a.6).
    PkOnly,
    /// A row is kept iff `delete_ts <= row_ts` (2.3+: seen exact on 2.3.5, `MILVUS.md`;
    /// 2.4+ `importutilv2/binlog/filter.go`, `MILVUS-24-26.md` a.4).
    Timestamp,
}

impl DeleteRule {
    /// The delete set that decides, with [`DeleteSet::is_deleted`], which rows this rule
    /// drops: for [`DeleteRule::PkOnly`] every deleted key gets the largest timestamp, so
    /// every row of it goes.
    pub fn delete_set(self, deletes: &[(Pk, u64)]) -> DeleteSet {
        deletes
            .iter()
            .map(|(pk, ts)| DeleteEntry {
                pk: pk.clone(),
                ts: match self {
                    DeleteRule::PkOnly => u64::MAX,
                    DeleteRule::Timestamp => *ts,
                },
            })
            .collect()
    }

    /// The rows of one segment an import keeps, under this rule.
    pub fn survivors(self, rows: &[(Pk, u64)], deletes: &[(Pk, u64)]) -> Vec<(Pk, u64)> {
        let set = self.delete_set(deletes);
        rows.iter()
            .filter(|(pk, ts)| !set.is_deleted(pk, *ts))
            .cloned()
            .collect()
    }
}

/// How a backup-mode import turns its paths into segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportListing {
    /// Lists the insert path recursively and parses `…/<segment>/<field>/<log>` out of
    /// every key, deltas as `…/<segment>/<log>`: a segment, group or partition directory
    /// all work (2.2/2.3 `binlog_adapter`, `MILVUS-PROTOCOL.md` §7.1).
    Recursive,
    /// Lists the insert path non-recursively and treats every child as one segment; a
    /// delta child is matched to the insert child of the same name (2.4+ datacoord
    /// `ListBinlogsAndGroupBySegment`, `MILVUS-24-26.md` c.5).
    SegmentChildren,
}

/// How the garbage collector is paused over the management port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GcPauseMode {
    /// No route: 404 (2.3.5 seen answering 404; 2.2.16 has no handler, `MILVUS-PROTOCOL.md` §4).
    None,
    /// `pause?pause_seconds=N` → `{"msg":"OK"}`, `resume` without parameters (2.4–2.6.7).
    Global,
    /// Every pause is a record with an opaque ticket, per collection or global; `resume`
    /// needs `ticket=` (2.6.8+, milvus#45943/#46201; ticketless resume → 500, milvus#53591).
    Ticketed,
}

/// Everything the fake does differently per version. Build it with [`Behaviour::of`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Behaviour {
    /// The version string reported by `Connect` and `GetVersion`.
    pub version: String,
    /// The parsed version (unparsable strings are 0.0.0).
    pub number: (u32, u32, u32),
    /// `Connect` exists (2.2.9+); older servers answer gRPC Unimplemented
    /// (`MILVUS-PROTOCOL.md` §1.2; research: 2.2.8 seen Unimplemented).
    pub connect: bool,
    /// `ListDatabases`/`CreateDatabase` and the `dbname` header (2.2.7+, §1.2).
    pub databases: bool,
    /// `DescribeDatabase` (2.4.3+, §1.2).
    pub describe_database: bool,
    /// `GetFlushAllState` (2.2.5+, §1.2).
    pub flush_all_state: bool,
    /// `AllocTimestamp` (2.2.13+, §1.2).
    pub alloc_timestamp: bool,
    /// `ListAliases`/`DescribeAlias` (2.3.0+); before, gRPC Unimplemented and aliases
    /// only in `DescribeCollection.aliases` (§1.2; research: 2.2 DescribeAlias seen
    /// Unimplemented).
    pub alias_rpcs: bool,
    /// Statuses carry the merr `code` (2.3+); 2.2 fills only `error_code` (`MILVUS.md`,
    /// seen on both).
    pub merr_codes: bool,
    /// `count(*)` in `Query` (2.3+); 2.2 answers "query expression is empty" (seen 2.2.16).
    pub count_star: bool,
    /// More than one vector field in a collection (2.4+; 2.3.5 seen rejecting, `MILVUS.md`).
    pub multiple_vector_fields: bool,
    /// The COSINE metric (2.3+; 2.2.16 seen: "metric type not found or not supported,
    /// supported: [L2 IP]", `MILVUS.md`).
    pub cosine_metric: bool,
    /// `DescribeCollection` lists the dynamic `$meta` field (2.3+ per `MILVUS-PROTOCOL.md`
    /// §1.3, [NC] per `MILVUS-24-26.md` f); 2.2.16 hides it (research, seen).
    pub describe_lists_dynamic_field: bool,
    /// `PersistentSegmentInfo.level` (field 6) is filled (milvus-proto v2.4.7+; 2.4.0–2.4.6
    /// report Legacy, `MILVUS-24-26.md` a.1).
    pub reports_segment_level: bool,
    /// `PersistentSegmentInfo.is_sorted` (field 7, milvus-proto v2.5.0+).
    pub reports_is_sorted: bool,
    /// `PersistentSegmentInfo.storage_version` (field 8, milvus-proto v2.6.0+).
    pub reports_storage_version: bool,
    /// The server can hold L0 delete segments (2.4+, `MILVUS-24-26.md` a.1).
    pub l0_segments: bool,
    /// The server can hold storage-v2 segments (2.6+, `MILVUS-24-26.md` b.1).
    pub storage_v2_segments: bool,
    /// The delete rule of a backup-mode import.
    pub import_delete_rule: DeleteRule,
    /// Imported rows keep their own timestamps (2.4+, "keep original rowID and ts",
    /// `MILVUS-24-26.md` a.4); 2.2/2.3 stamp them with the import time (`MILVUS.md`).
    pub import_keeps_timestamps: bool,
    /// How the import expands its paths.
    pub import_listing: ImportListing,
    /// How many paths a backup-mode import takes: 2.2 one or two, 2.3 exactly two
    /// (`isBinlogImport`), 2.4+ one or two (`MILVUS-PROTOCOL.md` §7.1).
    pub import_paths: RangeInclusive<usize>,
    /// Binlog import into a partition-key collection (2.4+); 2.2/2.3 fail the task with
    /// "target partition must be only one" (`MILVUS-PROTOCOL.md` §7.3).
    pub partition_key_binlog_import: bool,
    /// `l0_import=true` imports a delete-only segment (2.4–2.6, milvus#33514; off by
    /// default on 3.0, `MILVUS-24-26.md` a.4).
    pub l0_import: bool,
    /// `skip_disk_quota_check=true` is honoured (2.4+, milvus#35274); older servers
    /// ignore the option (`MILVUS-PROTOCOL.md` §7.3).
    pub skip_disk_quota_check: bool,
    /// The `storage_version` import option is read (2.6+); older servers ignore it and
    /// read v2 Parquet as v1 envelopes, failing on the magic number (`MILVUS-24-26.md` b.4).
    pub storage_version_option: bool,
    /// Delete-log encodings the import reads: 2.2/2.3 only the v1 String payload
    /// (`ReadVarchar`, a.6), 2.4/2.5 also MULTI_FIELD (milvus#34116), 2.6 also bare
    /// Parquet (`readDelete` tries v1 then v2, a.5).
    pub import_delta_encodings: Vec<DeltaEncoding>,
    /// Storage version of the segments an import writes (2 on 2.6, "import always writes
    /// v2", `MILVUS-24-26.md` b.1; 1 before).
    pub import_writes_storage_version: i64,
    /// The reason of `backup=true` without a partition name (`MILVUS-PROTOCOL.md` §7.1).
    pub partition_required: &'static str,
    /// States `GetImportState` walks through before the terminal one: 2.2/2.3 Started then
    /// Persisted (rootcoord import manager, §7.2); 2.4+ Started ([I]: the v2 engine behind
    /// the same RPC, states mapped to Pending/Started/Completed/Failed, c.3).
    pub import_states: Vec<ImportState>,
    /// How GC is paused (`MILVUS-24-26.md` e.2).
    pub gc_pause: GcPauseMode,
    /// REST `POST /v2/vectordb/segments/describe` (2.5.8+, `MILVUS-24-26.md` e.1).
    pub segments_describe: bool,
    /// `BackupRBAC`/`RestoreRBAC` (2.4.10+, `MILVUS-24-26.md` d.1).
    pub rbac_meta: bool,
    /// `RBACMeta.privilege_groups` (2.4.16+, d.1).
    pub privilege_groups: bool,
}

fn parse(text: &str) -> (u32, u32, u32) {
    let t = text.trim().trim_start_matches(['v', 'V']);
    let core = t.split(['-', '+', ' ']).next().unwrap_or_default();
    let mut parts = core.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    )
}

impl Behaviour {
    /// The behaviours of the version `version` (e.g. `v2.4.10`).
    pub fn of(version: &str) -> Behaviour {
        let n = parse(version);
        let at = |a: u32, b: u32, c: u32| n >= (a, b, c);
        let v23 = at(2, 3, 0);
        let v24 = at(2, 4, 0);
        let v26 = at(2, 6, 0);
        let mut delta = vec![DeltaEncoding::V1Json, DeltaEncoding::V1Legacy];
        if v24 {
            delta.push(DeltaEncoding::V1MultiField);
        }
        if v26 {
            delta.push(DeltaEncoding::V2Parquet);
        }
        Behaviour {
            version: version.to_owned(),
            number: n,
            connect: at(2, 2, 9),
            databases: at(2, 2, 7),
            describe_database: at(2, 4, 3),
            flush_all_state: at(2, 2, 5),
            alloc_timestamp: at(2, 2, 13),
            alias_rpcs: v23,
            merr_codes: v23,
            count_star: v23,
            multiple_vector_fields: v24,
            cosine_metric: v23,
            describe_lists_dynamic_field: v23,
            reports_segment_level: at(2, 4, 7),
            reports_is_sorted: at(2, 5, 0),
            reports_storage_version: v26,
            l0_segments: v24,
            storage_v2_segments: v26,
            import_delete_rule: if v23 {
                DeleteRule::Timestamp
            } else {
                DeleteRule::PkOnly
            },
            import_keeps_timestamps: v24,
            import_listing: if v24 {
                ImportListing::SegmentChildren
            } else {
                ImportListing::Recursive
            },
            import_paths: if v24 || !v23 { 1..=2 } else { 2..=2 },
            partition_key_binlog_import: v24,
            l0_import: v24 && !at(3, 0, 0),
            skip_disk_quota_check: v24,
            storage_version_option: v26,
            import_delta_encodings: delta,
            import_writes_storage_version: if v26 { 2 } else { 1 },
            partition_required: if v24 {
                "partition not specified"
            } else {
                "partition name not specified when backup"
            },
            import_states: if v24 {
                vec![ImportState::ImportStarted]
            } else {
                vec![ImportState::ImportStarted, ImportState::ImportPersisted]
            },
            gc_pause: if at(2, 6, 8) {
                GcPauseMode::Ticketed
            } else if v24 {
                GcPauseMode::Global
            } else {
                GcPauseMode::None
            },
            segments_describe: at(2, 5, 8),
            rbac_meta: at(2, 4, 10),
            privilege_groups: at(2, 4, 16),
        }
    }

    /// Whether this version is at least `major.minor.patch`.
    pub fn at_least(&self, major: u32, minor: u32, patch: u32) -> bool {
        self.number >= (major, minor, patch)
    }

    /// A failed status the way this version fills it: 2.2 only `error_code`, 2.3+ also
    /// the merr `code` (`MILVUS.md`: success is `code == 0 && error_code == 0`).
    pub fn status(&self, merr: i32, legacy: ErrorCode, reason: impl Into<String>) -> Status {
        Status {
            error_code: legacy as i32,
            code: if self.merr_codes { merr } else { 0 },
            reason: reason.into(),
            ..Default::default()
        }
    }

    /// Any error 2.3+ reports as merr "unexpected" (65535).
    pub fn unexpected(&self, reason: impl Into<String>) -> Status {
        self.status(65535, ErrorCode::UnexpectedError, reason)
    }

    /// A parameter the server refuses (merr 1100 on 2.3+).
    pub fn invalid(&self, reason: impl Into<String>) -> Status {
        let legacy = if self.merr_codes {
            ErrorCode::IllegalArgument
        } else {
            ErrorCode::UnexpectedError
        };
        self.status(1100, legacy, reason)
    }

    /// A missing collection: 2.2.16 "can't find collection default:x" (its meta table's
    /// wording, matched in server `status.rs`); 2.3+ merr 100 with `CollectionNotExists`.
    pub fn collection_not_found(&self, db: &str, name: &str) -> Status {
        if self.merr_codes {
            self.status(
                100,
                ErrorCode::CollectionNotExists,
                format!("collection not found[database={db}][collection={name}]"),
            )
        } else {
            self.status(
                0,
                ErrorCode::UnexpectedError,
                format!("can't find collection {db}:{name}"),
            )
        }
    }

    /// A missing partition (merr 200).
    pub fn partition_not_found(&self, name: &str) -> Status {
        if self.merr_codes {
            self.status(
                200,
                ErrorCode::UnexpectedError,
                format!("partition not found[partition={name}]"),
            )
        } else {
            self.unexpected(format!("partition {name} does not exist"))
        }
    }

    /// `DescribeIndex` of a collection without index: 2.2 `IndexNotExist` (25), 2.3+ merr
    /// 700 "index not found[collection=..]" (research summary).
    pub fn index_not_found(&self, collection: &str) -> Status {
        if self.merr_codes {
            self.status(
                700,
                ErrorCode::IndexNotExist,
                format!("index not found[collection={collection}]"),
            )
        } else {
            self.status(0, ErrorCode::IndexNotExist, "index not exist")
        }
    }

    /// A missing database (merr 800).
    pub fn database_not_found(&self, db: &str) -> Status {
        if self.merr_codes {
            self.status(
                800,
                ErrorCode::UnexpectedError,
                format!("database not found[database={db}]"),
            )
        } else {
            self.unexpected(format!("database:{db} not found"))
        }
    }

    /// A missing alias (merr 1600, 2.3+ only: 2.2 has no `DescribeAlias`).
    pub fn alias_not_found(&self, db: &str, alias: &str) -> Status {
        self.status(
            1600,
            ErrorCode::UnexpectedError,
            format!("alias not found[database={db}][alias={alias}]"),
        )
    }

    /// An alias that names another collection: 2.2 text, 2.3+ merr 1602 (research).
    pub fn alias_taken(&self, db: &str, alias: &str, other: &str) -> Status {
        if self.merr_codes {
            self.status(
                1602,
                ErrorCode::UnexpectedError,
                format!("alias already exist[database={db}][alias={alias}]"),
            )
        } else {
            self.unexpected(format!(
                "alias exists and already aliased to another collection, alias: {alias}, collection: {other}"
            ))
        }
    }

    /// An alias with the name of a collection: 2.2 text, 2.3+ merr 1601 (research).
    pub fn alias_is_collection(&self, alias: &str) -> Status {
        if self.merr_codes {
            self.status(
                1601,
                ErrorCode::UnexpectedError,
                format!("alias and collection name conflict[alias={alias}]"),
            )
        } else {
            self.unexpected(format!(
                "cannot create alias, collection already exists with same name: {alias}"
            ))
        }
    }

    /// A query or load-dependent call on a collection that is not loaded (merr 101).
    pub fn not_loaded(&self, collection: &str) -> Status {
        if self.merr_codes {
            self.status(
                101,
                ErrorCode::UnexpectedError,
                format!("collection not loaded[collection={collection}]"),
            )
        } else {
            self.unexpected(format!(
                "collection {collection} was not loaded into memory"
            ))
        }
    }

    /// `CreateRole` of an existing role: 2.2 `CreateRoleFailure` + etcd's "has existed";
    /// 2.3+ the same legacy code with merr 65535 (research summary, seen).
    pub fn role_exists(&self, role: &str) -> Status {
        if self.merr_codes {
            self.status(
                65535,
                ErrorCode::CreateRoleFailure,
                format!("role [name:\"{role}\"] already exists"),
            )
        } else {
            self.status(
                0,
                ErrorCode::CreateRoleFailure,
                format!(
                    "fail to create role, error: the key[root-coord/credential/roles/{role}] has existed"
                ),
            )
        }
    }

    /// `CreateCredential` of an existing user (error_code 29, research summary).
    pub fn user_exists(&self, user: &str) -> Status {
        self.status(
            65535,
            ErrorCode::CreateCredentialFailure,
            format!("user already exists: {user}"),
        )
    }

    /// `CreateDatabase` of an existing database (error_code 1, research summary).
    pub fn database_exists(&self, db: &str) -> Status {
        self.unexpected(format!("database already exist: {db}"))
    }

    /// An import the 2.4+ engine refuses before creating a job (merr 2100 ImportFailed).
    pub fn import_refused(&self, reason: impl Into<String>) -> Status {
        self.status(2100, ErrorCode::UnexpectedError, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gates() {
        assert!(!Behaviour::of("v2.2.8").connect);
        assert!(Behaviour::of("v2.2.9").connect);
        assert_eq!(Behaviour::of("v2.6.8").gc_pause, GcPauseMode::Ticketed);
        assert_eq!(Behaviour::of("2.6.7").gc_pause, GcPauseMode::Global);
        assert_eq!(Behaviour::of("v2.3.5").import_paths, 2..=2);
    }
}
