//! An in-process Milvus of any version from 2.2 to 2.6 that behaves like that version,
//! for the versions that cannot run here (2.2 before `Connect`, 2.4, 2.5, 2.6).
//!
//! ## What it is
//! - A `MilvusService` (tonic) answering from an in-memory model of databases,
//!   collections, partitions, segments, aliases, indexes, users, roles and grants, with the
//!   statuses, refusals and wordings of the version it was made for. Every version
//!   difference is one field or constructor of the table in [`behaviour`]
//!   ([`Behaviour::of`]), with its source.
//! - A local storage root (a temporary folder, [`FakeMilvus::root`]): the segments a test
//!   adds with [`FakeMilvus::add_segment`] are real Milvus files written there in the
//!   version's layout with `milvault-binlog`'s writers (v1 binlogs per field, storage-v2
//!   column groups, delete logs in any encoding, L0 delete-only segments). Point a
//!   cluster's `fs` storage at it.
//! - `Import` reads the files at the paths it is given with `milvault-binlog`, the way
//!   that version lists them, refuses what that version refuses, applies deletes with
//!   that version's rule, writes the imported segment into its own storage (so a restored
//!   collection can be backed up again), and answers `GetImportState` with that
//!   version's states and row count. `count(*)`, key-paging queries and
//!   `GetCollectionStatistics` answer from the same rows.
//! - A management HTTP port (GC pause and resume per version, active pauses kept) and a
//!   proxy REST port (`/v2/vectordb/segments/describe` from 2.5.8), hand-written HTTP/1.1.
//! - Everything it was sent is recorded ([`Recorded`]) for assertions; [`Fault`]s make it
//!   answer wrongly on purpose, to prove the server notices.
//!
//! ## What it does not do
//! Search, delete by expression, non-binlog imports (JSON/NumPy/Parquet files),
//! `end_ts`/`start_ts` import options, stats logs. Segments made from `Insert` rows keep
//! their rows in memory only (no files), so a backup of them fails the server's file
//! checks, loudly.
//!
//! ## Layout
//! - `mod.rs` — the handle, builder API, specs, recording types.
//! - [`behaviour`] — the version table and version-worded statuses.
//! - `model.rs` — the in-memory state and its row arithmetic.
//! - `files.rs` — writing segment files, listing and decoding import paths.
//! - `grpc.rs` — the `MilvusService` implementation (metadata, data, queries);
//!   `import.rs` and `rbac.rs` hold the bodies of the import and RBAC calls.
//! - `http.rs` — management and REST endpoints.

pub mod behaviour;
mod files;
mod grpc;
mod http;
mod import;
mod model;
mod rbac;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, bail};
use milvault_proto::milvus::milvus as pb;
use milvault_proto::milvus::milvus::milvus_service_server::MilvusServiceServer;
use tokio::net::TcpListener;

pub use behaviour::{Behaviour, DeleteRule, GcPauseMode, ImportListing};
pub use milvault_binlog::{DeltaEncoding, Pk};

use model::{Model, Seg, SegLevel, SegState};

/// The partition argument of [`FakeMilvus::add_segment`] for an L0 segment that applies
/// to every partition (stored under partition id −1).
pub const ALL_PARTITIONS: &str = "*";

/// Type of a collection's primary key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PkType {
    /// `Int64` (field `pk`, id 100).
    Int64,
    /// `VarChar` (max length 64).
    VarChar,
}

/// A collection to add: fields `pk` (100), `k` (101, Int64, optionally the partition
/// key), `v` (102, float vector of dim 4) and, when `dynamic`, `$meta` (103).
#[derive(Clone, Debug)]
pub struct CollectionSpec {
    /// Name.
    pub name: String,
    /// Database ("" = `default`).
    pub database: String,
    /// Primary-key type.
    pub pk: PkType,
    /// `k` is the partition key.
    pub partition_key: bool,
    /// Dynamic field enabled (adds `$meta`).
    pub dynamic: bool,
    /// Partitions; empty = `_default` (or `_default_0`, `_default_1` with a partition key).
    pub partitions: Vec<String>,
    /// Loaded (queries and `count(*)` answer).
    pub loaded: bool,
    /// An index on `v` exists.
    pub indexed: bool,
    /// Aliases.
    pub aliases: Vec<String>,
}

impl CollectionSpec {
    /// An Int64-keyed collection with one `_default` partition, not loaded, no index.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            database: String::new(),
            pk: PkType::Int64,
            partition_key: false,
            dynamic: false,
            partitions: Vec::new(),
            loaded: false,
            indexed: false,
            aliases: Vec::new(),
        }
    }
}

/// A segment's level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// A data segment (insert logs, maybe delete logs).
    L1,
    /// A delete-only segment (2.4+): only `delta_log/<c>/<p or -1>/<s>/<log>`.
    L0,
}

/// A segment to add: its rows as `(primary key, hybrid timestamp)` and deletes likewise.
#[derive(Clone, Debug)]
pub struct SegmentSpec {
    /// Rows (other fields are derived from the key).
    pub rows: Vec<(Pk, u64)>,
    /// Deletes written to the segment's delete logs.
    pub deletes: Vec<(Pk, u64)>,
    /// Level.
    pub level: Level,
    /// 1 = v1 binlogs per field, 2 = storage-v2 column groups (2.6).
    pub storage_version: i64,
    /// Delete-log encoding (default: v1 JSON, bare Parquet for storage v2).
    pub delta_encoding: Option<DeltaEncoding>,
    /// Rows per insert-log file (0 = one file per field).
    pub rows_per_log: usize,
}

impl SegmentSpec {
    /// An L1 storage-v1 segment of Int64 keys.
    pub fn ints(rows: &[(i64, u64)]) -> Self {
        Self {
            rows: rows.iter().map(|(k, t)| (Pk::Int64(*k), *t)).collect(),
            deletes: Vec::new(),
            level: Level::L1,
            storage_version: 1,
            delta_encoding: None,
            rows_per_log: 0,
        }
    }

    /// An L1 storage-v1 segment of any keys (VarChar keys for a VarChar collection).
    pub fn keys(rows: Vec<(Pk, u64)>) -> Self {
        Self {
            rows,
            ..Self::ints(&[])
        }
    }

    /// Adds deletes of any keys.
    pub fn with_key_deletes(mut self, deletes: Vec<(Pk, u64)>) -> Self {
        self.deletes.extend(deletes);
        self
    }

    /// Adds Int64-key deletes.
    pub fn with_deletes(mut self, deletes: &[(i64, u64)]) -> Self {
        self.deletes
            .extend(deletes.iter().map(|(k, t)| (Pk::Int64(*k), *t)));
        self
    }

    /// An L0 segment holding only these Int64-key deletes.
    pub fn l0(deletes: &[(i64, u64)]) -> Self {
        Self {
            level: Level::L0,
            ..Self::ints(&[]).with_deletes(deletes)
        }
    }

    /// Written in storage v2 (2.6 column groups, Parquet delete logs).
    pub fn storage_v2(mut self) -> Self {
        self.storage_version = 2;
        self
    }
}

/// Which HTTP port an exchange was on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpPort {
    /// The management port (9091).
    Management,
    /// The proxy REST port.
    Rest,
}

/// One HTTP request and the fake's answer.
#[derive(Clone, Debug)]
pub struct HttpExchange {
    /// Port.
    pub port: HttpPort,
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    /// Request body.
    pub request_body: String,
    /// Status code answered.
    pub status: u16,
    /// Body answered.
    pub body: String,
}

/// What the fake was sent, in order.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// RPC names.
    pub calls: Vec<String>,
    /// Every `ImportRequest`.
    pub imports: Vec<pb::ImportRequest>,
    /// Every `CreateCollectionRequest`.
    pub creates: Vec<pb::CreateCollectionRequest>,
    /// Rows per `Insert`, in order.
    pub inserts: Vec<i64>,
    /// Every `QueryRequest`.
    pub queries: Vec<pb::QueryRequest>,
    /// Management HTTP request targets (path and query), as before the REST port.
    pub http: Vec<String>,
    /// Every HTTP exchange on either port.
    pub exchanges: Vec<HttpExchange>,
}

/// A GC pause the fake holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GcPause {
    /// The ticket (2.6.8+).
    pub ticket: Option<String>,
    /// Collection id (0 = global).
    pub collection_id: i64,
    /// Seconds asked for.
    pub pause_seconds: u64,
}

/// Wrong answers on purpose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// `GetImportState` reports this many rows more (or fewer) than the import wrote.
    ImportRowsOffBy(i64),
    /// The disk quota is exhausted: imports are refused unless the version honours
    /// `skip_disk_quota_check=true` and it is sent.
    DiskQuotaExceeded,
    /// Import tasks stay `Started` (they never finish) while this fault is in force:
    /// for cancelling or killing a job in the middle of an import.
    HoldImports,
    /// Import tasks are accepted and then fail (`ImportFailed`, as when Milvus cannot
    /// read a staged file).
    FailImports,
}

/// Started endpoints.
#[derive(Clone, Debug, Default)]
struct Urls {
    grpc: Option<String>,
    management: Option<String>,
    rest: Option<String>,
}

/// The fake server's handle; cheap to clone.
#[derive(Clone)]
pub struct FakeMilvus {
    behaviour: Arc<Behaviour>,
    storage: Arc<tempfile::TempDir>,
    ids: Arc<AtomicI64>,
    model: Arc<Mutex<Model>>,
    urls: Arc<Mutex<Urls>>,
}

impl FakeMilvus {
    /// A fake reporting `version` (e.g. `v2.4.10`), with an empty local storage root.
    ///
    /// # Panics
    /// When no temporary folder can be made.
    pub fn new(version: &str) -> Self {
        let storage = tempfile::Builder::new()
            .prefix("fake-milvus-")
            .tempdir()
            .expect("a temporary folder for the fake Milvus's storage");
        let behaviour = Behaviour::of(version);
        Self {
            model: Arc::new(Mutex::new(Model::new())),
            behaviour: Arc::new(behaviour),
            storage: Arc::new(storage),
            // Milvus ids are 18-digit numbers (beyond f64's exact range).
            ids: Arc::new(AtomicI64::new(449_000_000_000_000_000)),
            urls: Arc::new(Mutex::new(Urls::default())),
        }
    }

    /// The version table this fake follows.
    pub fn behaviour(&self) -> &Behaviour {
        &self.behaviour
    }

    /// The local storage root (`localStorage.path`): configure the cluster's `fs` storage
    /// with this root.
    pub fn root(&self) -> &Path {
        self.storage.path()
    }

    fn alloc(&self) -> i64 {
        self.alloc_n(1)
    }

    /// The first of `n` consecutive fresh ids.
    fn alloc_n(&self, n: i64) -> i64 {
        self.ids.fetch_add(n, Ordering::SeqCst) + 1
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a collection (as if created earlier); returns its id.
    pub fn add_collection(&self, spec: CollectionSpec) -> anyhow::Result<i64> {
        let b = &self.behaviour;
        if spec.partition_key && !b.at_least(2, 2, 9) {
            bail!("partition keys exist from Milvus 2.2.9");
        }
        let id = self.alloc();
        let mut coll = model::Coll::from_spec(&spec, id, || self.alloc());
        coll.created_ts = milvault_binlog::write::tso_now();
        let mut m = self.lock();
        let db = model::db_name(b, &spec.database);
        if !m.databases.iter().any(|d| d.name == db) {
            bail!("database {db} does not exist in the fake");
        }
        if m.find(&db, &spec.name).is_some() {
            bail!("collection {db}.{} exists", spec.name);
        }
        coll.db = db;
        m.collections.push(coll);
        Ok(id)
    }

    /// Adds a database (2.2.7+).
    pub fn add_database(&self, name: &str) -> anyhow::Result<()> {
        if !self.behaviour.databases {
            bail!("Milvus {} has no databases", self.behaviour.version);
        }
        let id = self.alloc();
        self.lock().databases.push(model::Database {
            name: name.into(),
            id,
        });
        Ok(())
    }

    /// Adds a flushed segment to `collection` (database `default`) in `partition`
    /// ([`ALL_PARTITIONS`] for an all-partition L0 segment), writing its files into the
    /// storage root in the version's layout; returns the segment id.
    pub async fn add_segment(
        &self,
        collection: &str,
        partition: &str,
        spec: SegmentSpec,
    ) -> anyhow::Result<i64> {
        let b = self.behaviour.clone();
        if spec.level == Level::L0 && !b.l0_segments {
            bail!("Milvus {} has no L0 segments", b.version);
        }
        if spec.storage_version >= 2 && !b.storage_v2_segments {
            bail!("Milvus {} has no storage-v2 segments", b.version);
        }
        if spec.level == Level::L1 && spec.rows.is_empty() {
            bail!("a data segment needs rows");
        }
        if spec.level == Level::L0 && (!spec.rows.is_empty() || spec.deletes.is_empty()) {
            bail!("an L0 segment holds deletes only");
        }
        let (cid, pid, fields) = {
            let m = self.lock();
            let c = m
                .find("default", collection)
                .with_context(|| format!("no collection {collection}"))?;
            let pid = if partition == ALL_PARTITIONS {
                if spec.level != Level::L0 {
                    bail!("only L0 segments apply to all partitions");
                }
                -1
            } else {
                c.partition_id(partition)
                    .with_context(|| format!("no partition {partition} in {collection}"))?
            };
            let pk_type = c.pk_type();
            for (pk, _) in spec.rows.iter().chain(&spec.deletes) {
                let ok = matches!(
                    (pk, pk_type),
                    (Pk::Int64(_), PkType::Int64) | (Pk::VarChar(_), PkType::VarChar)
                );
                if !ok {
                    bail!("key {pk:?} does not match the collection's {pk_type:?} primary key");
                }
            }
            (c.id, pid, files::field_infos(&c.schema)?)
        };
        let sid = self.alloc();
        let root = self.root().to_path_buf();
        let at = files::SegmentAt {
            root: &root,
            collection: cid,
            partition: pid,
            segment: sid,
        };
        let alloc = || self.alloc();
        let mut written = model::FileIds::default();
        if spec.level == Level::L1 {
            let first_row_id = self.alloc();
            let chunk = if spec.rows_per_log == 0 {
                spec.rows.len()
            } else {
                spec.rows_per_log
            };
            let mut batches = Vec::new();
            for (i, rows) in spec.rows.chunks(chunk).enumerate() {
                batches.push(files::synth_columns(
                    &fields,
                    rows,
                    first_row_id + (i * chunk) as i64,
                )?);
            }
            written.insert =
                files::write_insert(&at, &fields, &batches, spec.storage_version, &alloc)?;
        }
        if !spec.deletes.is_empty() {
            let encoding = spec.delta_encoding.unwrap_or(if spec.storage_version >= 2 {
                DeltaEncoding::V2Parquet
            } else {
                DeltaEncoding::V1Json
            });
            written
                .delta
                .push(files::write_delta(&at, &spec.deletes, encoding, &alloc)?);
        }
        let seg = Seg {
            id: sid,
            partition_id: pid,
            level: match spec.level {
                Level::L1 => SegLevel::L1,
                Level::L0 => SegLevel::L0,
            },
            storage_version: spec.storage_version,
            state: SegState::Flushed,
            rows: spec.rows,
            deletes: spec.deletes,
            files: Some(written),
        };
        let mut m = self.lock();
        let c = m
            .find_mut("default", collection)
            .with_context(|| format!("collection {collection} was dropped meanwhile"))?;
        c.segments.push(seg);
        Ok(sid)
    }

    /// The id of collection `name` (database `default`).
    pub fn collection_id(&self, name: &str) -> Option<i64> {
        self.lock().find("default", name).map(|c| c.id)
    }

    /// The id of partition `partition` of collection `collection` (database `default`).
    pub fn partition_id(&self, collection: &str, partition: &str) -> Option<i64> {
        self.lock()
            .find("default", collection)
            .and_then(|c| c.partition_id(partition))
    }

    /// Live rows of a collection (database `default`), what `count(*)` answers: rows of
    /// every segment, deletes of the partition's segments and of all-partition L0
    /// segments applied with Milvus's timestamp rule.
    pub fn live_rows(&self, collection: &str) -> Option<i64> {
        self.lock()
            .find("default", collection)
            .map(|c| c.live().len() as i64)
    }

    /// Live rows per partition name.
    pub fn live_rows_by_partition(&self, collection: &str) -> Vec<(String, i64)> {
        let m = self.lock();
        let Some(c) = m.find("default", collection) else {
            return Vec::new();
        };
        let live = c.live();
        c.partitions
            .iter()
            .map(|(name, id)| {
                (
                    name.clone(),
                    live.iter().filter(|(p, _, _)| p == id).count() as i64,
                )
            })
            .collect()
    }

    /// The live `(key, timestamp)` rows of a collection, sorted.
    pub fn live_keys(&self, collection: &str) -> Vec<(Pk, u64)> {
        let m = self.lock();
        let mut out: Vec<(Pk, u64)> = m
            .find("default", collection)
            .map(|c| c.live().into_iter().map(|(_, k, t)| (k, t)).collect())
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Rows `GetCollectionStatistics` reports (inserted rows of non-L0 segments).
    pub fn stored_rows(&self, collection: &str) -> Option<i64> {
        self.lock()
            .find("default", collection)
            .map(model::Coll::stored_rows)
    }

    /// Whether collection `name` (database `db`, "" = default) exists.
    pub fn has_collection(&self, db: &str, name: &str) -> bool {
        let db = model::db_name(&self.behaviour, db);
        self.lock().find(&db, name).is_some()
    }

    /// Names of every collection, in every database.
    pub fn collection_names(&self) -> Vec<String> {
        self.lock()
            .collections
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    /// The collection an alias names, if the alias exists.
    pub fn alias_target(&self, alias: &str) -> Option<String> {
        self.lock()
            .collections
            .iter()
            .find(|c| c.aliases.iter().any(|a| a == alias))
            .map(|c| c.name.clone())
    }

    /// Loads or releases a collection (as `LoadCollection`/`ReleaseCollection` would).
    pub fn set_loaded(&self, collection: &str, loaded: bool) -> anyhow::Result<()> {
        let mut m = self.lock();
        let c = m
            .find_mut("default", collection)
            .with_context(|| format!("no collection {collection}"))?;
        c.loaded = loaded;
        Ok(())
    }

    /// Adds a role and user (with the given roles) to the fake's RBAC state.
    pub fn add_user(&self, user: &str, password: &str, roles: &[&str]) {
        let mut m = self.lock();
        m.rbac
            .users
            .insert(user.into(), model::hash_password(password));
        for r in roles {
            m.rbac.roles.insert((*r).into());
            m.rbac.user_roles.insert((user.into(), (*r).into()));
        }
    }

    /// Grants `privilege` on `object_type`/`object_name` in `db` to `role` (created if new).
    pub fn add_grant(
        &self,
        role: &str,
        object_type: &str,
        object_name: &str,
        privilege: &str,
        db: &str,
    ) {
        let mut m = self.lock();
        m.rbac.roles.insert(role.into());
        m.rbac.grants.insert(model::Grant {
            role: role.into(),
            object: object_type.into(),
            object_name: object_name.into(),
            privilege: privilege.into(),
            db: db.into(),
            grantor: "root".into(),
        });
    }

    /// Role names (built-in `admin` and `public` included).
    pub fn roles(&self) -> Vec<String> {
        self.lock().rbac.roles.iter().cloned().collect()
    }

    /// User names.
    pub fn users(&self) -> Vec<String> {
        self.lock().rbac.users.keys().cloned().collect()
    }

    /// Grants as `(role, object type, object name, privilege, database)`.
    pub fn grants(&self) -> Vec<(String, String, String, String, String)> {
        self.lock()
            .rbac
            .grants
            .iter()
            .map(|g| {
                (
                    g.role.clone(),
                    g.object.clone(),
                    g.object_name.clone(),
                    g.privilege.clone(),
                    g.db.clone(),
                )
            })
            .collect()
    }

    /// Makes the fake answer wrongly from now on.
    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// A copy of what was recorded.
    pub fn recorded(&self) -> Recorded {
        self.lock().rec.clone()
    }

    /// GC pauses in force now (expired ones left out).
    pub fn active_gc_pauses(&self) -> Vec<GcPause> {
        self.lock().active_pauses()
    }

    /// Serves gRPC on a free port; returns `http://addr`.
    pub async fn serve(&self) -> anyhow::Result<String> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let svc = MilvusServiceServer::new(self.clone())
            .max_decoding_message_size(256 * 1024 * 1024)
            .max_encoding_message_size(256 * 1024 * 1024);
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        let url = format!("http://{addr}");
        self.urls.lock().unwrap_or_else(|p| p.into_inner()).grpc = Some(url.clone());
        Ok(url)
    }

    /// Serves the management HTTP API (GC pause/resume) on a free port; returns
    /// `http://addr`.
    pub async fn serve_management(&self) -> anyhow::Result<String> {
        let url = http::serve(self.clone(), HttpPort::Management).await?;
        self.urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .management = Some(url.clone());
        Ok(url)
    }

    /// Serves the proxy REST API (`/v2/vectordb/...`) on a free port of its own (the
    /// real one shares the gRPC port); returns `http://addr`.
    pub async fn serve_rest(&self) -> anyhow::Result<String> {
        let url = http::serve(self.clone(), HttpPort::Rest).await?;
        self.urls.lock().unwrap_or_else(|p| p.into_inner()).rest = Some(url.clone());
        Ok(url)
    }

    /// The gRPC URL, once served.
    pub fn grpc_url(&self) -> Option<String> {
        self.urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .grpc
            .clone()
    }

    /// The management URL, once served.
    pub fn management_url(&self) -> Option<String> {
        self.urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .management
            .clone()
    }

    /// The REST URL, once served.
    pub fn rest_url(&self) -> Option<String> {
        self.urls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .rest
            .clone()
    }

    /// The folder of a path under the storage root (for tests that stage files).
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root().join(relative)
    }
}
