//! The fake's state: databases, collections with their segments, RBAC, import tasks,
//! GC pauses, what was recorded. Row arithmetic (live rows, stored rows) lives here so
//! `count(*)`, queries, statistics and the test accessors agree.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use milvault_binlog::{DeleteSet, Pk};
use milvault_proto::milvus::common::{ImportState, KeyValuePair};
use milvault_proto::milvus::schema as ms;

use super::behaviour::{Behaviour, DeleteRule};
use super::{CollectionSpec, Fault, GcPause, PkType, Recorded};

/// The database of a request: the named one, else `default` (always `default` before
/// databases existed).
pub(super) fn db_name(b: &Behaviour, db: &str) -> String {
    if !b.databases || db.is_empty() {
        "default".to_owned()
    } else {
        db.to_owned()
    }
}

/// What the fake stores as a user's password: a stand-in for Milvus's bcrypt hash.
pub(super) fn hash_password(plain: &str) -> String {
    use base64::Engine;
    format!(
        "$2a$10$fake.{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(plain)
    )
}

/// A database.
#[derive(Clone, Debug)]
pub(super) struct Database {
    pub(super) name: String,
    pub(super) id: i64,
}

/// A segment's level as the model keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SegLevel {
    /// Data.
    L1,
    /// Deletes only.
    L0,
}

/// Growing (rows from `Insert`, not flushed) or flushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SegState {
    Growing,
    Flushed,
}

/// Log ids of a segment's files on storage.
#[derive(Clone, Debug, Default)]
pub(super) struct FileIds {
    /// Field (v1) or column-group (v2) id → log ids.
    pub(super) insert: BTreeMap<i64, Vec<i64>>,
    /// Delete-log ids.
    pub(super) delta: Vec<i64>,
}

/// A segment.
#[derive(Clone, Debug)]
pub(super) struct Seg {
    pub(super) id: i64,
    /// −1 for an all-partition L0 segment.
    pub(super) partition_id: i64,
    pub(super) level: SegLevel,
    pub(super) storage_version: i64,
    pub(super) state: SegState,
    /// `(key, timestamp)` of every row in the segment's insert logs.
    pub(super) rows: Vec<(Pk, u64)>,
    /// Deletes in its delete logs.
    pub(super) deletes: Vec<(Pk, u64)>,
    /// Files on storage (`None`: rows from `Insert`, kept in memory only).
    pub(super) files: Option<FileIds>,
}

impl Seg {
    /// Rows Milvus counts for the segment (`num_rows`): 0 for L0 [I: datacoord creates
    /// L0 segments with no rows].
    pub(super) fn num_rows(&self) -> i64 {
        match self.level {
            SegLevel::L1 => self.rows.len() as i64,
            SegLevel::L0 => 0,
        }
    }
}

/// An index.
#[derive(Clone, Debug)]
pub(super) struct Index {
    pub(super) field_name: String,
    pub(super) index_name: String,
    pub(super) index_id: i64,
    pub(super) params: Vec<KeyValuePair>,
}

/// A collection.
#[derive(Clone, Debug)]
pub(super) struct Coll {
    pub(super) db: String,
    pub(super) name: String,
    pub(super) id: i64,
    /// With field ids, `$meta` included.
    pub(super) schema: ms::CollectionSchema,
    /// `(name, id)` in creation order.
    pub(super) partitions: Vec<(String, i64)>,
    pub(super) aliases: Vec<String>,
    pub(super) loaded: bool,
    pub(super) indexes: Vec<Index>,
    pub(super) shards_num: i32,
    pub(super) consistency_level: i32,
    pub(super) properties: Vec<KeyValuePair>,
    pub(super) created_ts: u64,
    pub(super) segments: Vec<Seg>,
}

fn field(id: i64, name: &str, data_type: i32) -> ms::FieldSchema {
    ms::FieldSchema {
        field_id: id,
        name: name.into(),
        data_type,
        ..Default::default()
    }
}

fn kv(key: &str, value: &str) -> KeyValuePair {
    KeyValuePair {
        key: key.into(),
        value: value.into(),
    }
}

impl Coll {
    /// The collection a [`CollectionSpec`] describes (database filled by the caller).
    pub(super) fn from_spec(
        spec: &CollectionSpec,
        id: i64,
        mut alloc: impl FnMut() -> i64,
    ) -> Coll {
        let mut pk = field(
            100,
            "pk",
            match spec.pk {
                PkType::Int64 => 5,
                PkType::VarChar => 21,
            },
        );
        pk.is_primary_key = true;
        if spec.pk == PkType::VarChar {
            pk.type_params = vec![kv("max_length", "64")];
        }
        let mut k = field(101, "k", 5);
        k.is_partition_key = spec.partition_key;
        let mut v = field(102, "v", 101);
        v.type_params = vec![kv("dim", "4")];
        let mut fields = vec![pk, k, v];
        if spec.dynamic {
            let mut meta = field(103, "$meta", 23);
            meta.is_dynamic = true;
            fields.push(meta);
        }
        let names: Vec<String> = if !spec.partitions.is_empty() {
            spec.partitions.clone()
        } else if spec.partition_key {
            vec!["_default_0".into(), "_default_1".into()]
        } else {
            vec!["_default".into()]
        };
        let partitions = names.into_iter().map(|n| (n, alloc())).collect();
        let indexes = if spec.indexed {
            vec![Index {
                field_name: "v".into(),
                index_name: "v_idx".into(),
                index_id: alloc(),
                params: vec![
                    kv("index_type", "FLAT"),
                    kv("metric_type", "L2"),
                    kv("params", "{}"),
                ],
            }]
        } else {
            Vec::new()
        };
        Coll {
            db: "default".into(),
            name: spec.name.clone(),
            id,
            schema: ms::CollectionSchema {
                name: spec.name.clone(),
                fields,
                enable_dynamic_field: spec.dynamic,
                ..Default::default()
            },
            partitions,
            aliases: spec.aliases.clone(),
            loaded: spec.loaded,
            indexes,
            shards_num: 1,
            consistency_level: 2,
            properties: Vec::new(),
            created_ts: 0,
            segments: Vec::new(),
        }
    }

    /// The primary-key field.
    pub(super) fn pk_field(&self) -> Option<&ms::FieldSchema> {
        self.schema.fields.iter().find(|f| f.is_primary_key)
    }

    /// The primary-key type.
    pub(super) fn pk_type(&self) -> PkType {
        match self.pk_field().map(|f| f.data_type) {
            Some(21) | Some(20) => PkType::VarChar,
            _ => PkType::Int64,
        }
    }

    /// Whether a field is the partition key.
    pub(super) fn partition_key(&self) -> Option<&ms::FieldSchema> {
        self.schema.fields.iter().find(|f| f.is_partition_key)
    }

    /// A partition's id.
    pub(super) fn partition_id(&self, name: &str) -> Option<i64> {
        self.partitions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, id)| *id)
    }

    /// The live rows as `(partition id, key, timestamp)`: for each partition, the deletes
    /// of its segments and of all-partition L0 segments, applied with the timestamp rule
    /// (what query nodes serve, every version).
    pub(super) fn live(&self) -> Vec<(i64, Pk, u64)> {
        let mut out = Vec::new();
        for (_, pid) in &self.partitions {
            let deletes: Vec<(Pk, u64)> = self
                .segments
                .iter()
                .filter(|s| s.partition_id == *pid || s.partition_id == -1)
                .flat_map(|s| s.deletes.iter().cloned())
                .collect();
            let set: DeleteSet = DeleteRule::Timestamp.delete_set(&deletes);
            for s in self
                .segments
                .iter()
                .filter(|s| s.partition_id == *pid && s.level == SegLevel::L1)
            {
                for (pk, ts) in &s.rows {
                    if !set.is_deleted(pk, *ts) {
                        out.push((*pid, pk.clone(), *ts));
                    }
                }
            }
        }
        out
    }

    /// Rows `GetCollectionStatistics` reports: inserted rows of data segments, deletes
    /// not subtracted (datacoord sums `num_rows`).
    pub(super) fn stored_rows(&self) -> i64 {
        self.segments.iter().map(Seg::num_rows).sum()
    }
}

/// A grant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Grant {
    pub(super) role: String,
    pub(super) object: String,
    pub(super) object_name: String,
    pub(super) privilege: String,
    pub(super) db: String,
    pub(super) grantor: String,
}

/// Users, roles, bindings and grants.
#[derive(Clone, Debug, Default)]
pub(super) struct Rbac {
    /// User → stored password (hash stand-in).
    pub(super) users: BTreeMap<String, String>,
    pub(super) roles: BTreeSet<String>,
    /// `(user, role)`.
    pub(super) user_roles: BTreeSet<(String, String)>,
    pub(super) grants: BTreeSet<Grant>,
    /// Custom privilege groups (2.4.16+): name → privileges.
    pub(super) groups: BTreeMap<String, BTreeSet<String>>,
}

/// How an import task ends.
#[derive(Clone, Debug)]
pub(super) enum Outcome {
    /// New data segments (already written to storage).
    Segments(Vec<Seg>),
    /// An L0 segment of deletes.
    L0(Seg),
    /// Failure with Milvus's reason.
    Failed(String),
}

/// An import task.
#[derive(Clone, Debug)]
pub(super) struct Task {
    pub(super) id: i64,
    pub(super) collection_id: i64,
    /// States reported before the terminal one.
    pub(super) states: Vec<ImportState>,
    /// `GetImportState` calls so far.
    pub(super) polls: usize,
    pub(super) outcome: Outcome,
    /// Applied to the collection (once, at completion).
    pub(super) applied: bool,
    pub(super) create_ts: i64,
    pub(super) infos: Vec<KeyValuePair>,
}

impl Task {
    /// Rows the task reports at completion.
    pub(super) fn rows(&self) -> i64 {
        match &self.outcome {
            Outcome::Segments(s) => s.iter().map(Seg::num_rows).sum(),
            Outcome::L0(s) => s.deletes.len() as i64,
            Outcome::Failed(_) => 0,
        }
    }
}

/// A held pause.
#[derive(Clone, Debug)]
pub(super) struct PauseRecord {
    pub(super) pause: GcPause,
    pub(super) until: Instant,
}

/// The whole state.
#[derive(Debug)]
pub(super) struct Model {
    pub(super) databases: Vec<Database>,
    pub(super) collections: Vec<Coll>,
    pub(super) rbac: Rbac,
    pub(super) tasks: BTreeMap<i64, Task>,
    pub(super) pauses: Vec<PauseRecord>,
    pub(super) pause_seq: u64,
    pub(super) rec: Recorded,
    pub(super) faults: Vec<Fault>,
}

impl Model {
    /// A fresh server: database `default`, user `root`, roles `admin` and `public`.
    pub(super) fn new() -> Self {
        let mut rbac = Rbac::default();
        rbac.users.insert("root".into(), hash_password("Milvus"));
        rbac.roles.insert("admin".into());
        rbac.roles.insert("public".into());
        Self {
            databases: vec![Database {
                name: "default".into(),
                id: 1,
            }],
            collections: Vec::new(),
            rbac,
            tasks: BTreeMap::new(),
            pauses: Vec::new(),
            pause_seq: 0,
            rec: Recorded::default(),
            faults: Vec::new(),
        }
    }

    /// A collection by database and name.
    pub(super) fn find(&self, db: &str, name: &str) -> Option<&Coll> {
        self.collections
            .iter()
            .find(|c| c.db == db && c.name == name)
    }

    /// A collection by database and name, mutable.
    pub(super) fn find_mut(&mut self, db: &str, name: &str) -> Option<&mut Coll> {
        self.collections
            .iter_mut()
            .find(|c| c.db == db && c.name == name)
    }

    /// A collection by database and name or alias.
    pub(super) fn resolve(&self, db: &str, name: &str) -> Option<&Coll> {
        self.find(db, name).or_else(|| {
            self.collections
                .iter()
                .find(|c| c.db == db && c.aliases.iter().any(|a| a == name))
        })
    }

    /// Mutable [`Self::resolve`].
    pub(super) fn resolve_mut(&mut self, db: &str, name: &str) -> Option<&mut Coll> {
        let idx = self
            .collections
            .iter()
            .position(|c| c.db == db && c.name == name)
            .or_else(|| {
                self.collections
                    .iter()
                    .position(|c| c.db == db && c.aliases.iter().any(|a| a == name))
            })?;
        self.collections.get_mut(idx)
    }

    /// Whether a database exists.
    pub(super) fn has_db(&self, db: &str) -> bool {
        self.databases.iter().any(|d| d.name == db)
    }

    /// The rows an import reports off by, from the injected faults.
    pub(super) fn import_rows_fault(&self) -> i64 {
        self.faults
            .iter()
            .map(|f| match f {
                Fault::ImportRowsOffBy(n) => *n,
                Fault::DiskQuotaExceeded | Fault::HoldImports | Fault::FailImports => 0,
            })
            .sum()
    }

    /// Whether the disk quota is exhausted.
    pub(super) fn disk_quota_exceeded(&self) -> bool {
        self.faults.contains(&Fault::DiskQuotaExceeded)
    }

    /// Pauses not yet expired.
    pub(super) fn active_pauses(&self) -> Vec<GcPause> {
        let now = Instant::now();
        self.pauses
            .iter()
            .filter(|p| p.until > now)
            .map(|p| p.pause.clone())
            .collect()
    }

    /// Records a pause for `seconds`.
    pub(super) fn pause(&mut self, pause: GcPause) {
        let until = Instant::now() + Duration::from_secs(pause.pause_seconds);
        self.pauses.push(PauseRecord { pause, until });
    }
}
