//! The `MilvusService` the fake answers, version by version (see [`super::behaviour`]).
//! RPCs a version does not have answer gRPC Unimplemented, as a Go gRPC server does;
//! failures are statuses filled the way the version fills them.

use base64::Engine;
use milvault_binlog::Pk;
use milvault_binlog::write::tso_now;
use milvault_proto::milvus::common::{self, KeyValuePair, ServerInfo, Status};
use milvault_proto::milvus::milvus::milvus_service_server::MilvusService;
use milvault_proto::milvus::milvus::{self as pb};
use milvault_proto::milvus::schema as ms;
use prost::Message;
use tonic::{Request, Response, Status as GrpcStatus};

use super::FakeMilvus;
use super::model::{self, Coll, Index, Model, Seg, SegLevel, SegState};

type R<T> = Result<Response<T>, GrpcStatus>;

/// Responses that carry a status.
pub(super) trait Answer: Default {
    fn set_status(&mut self, s: Status);
}

impl Answer for Status {
    fn set_status(&mut self, s: Status) {
        *self = s;
    }
}

macro_rules! answers {
    ($($t:ty),* $(,)?) => {$(
        impl Answer for $t {
            fn set_status(&mut self, s: Status) { self.status = Some(s); }
        }
    )*};
}

answers!(
    pb::ListDatabasesResponse,
    pb::DescribeDatabaseResponse,
    pb::ShowCollectionsResponse,
    pb::BoolResponse,
    pb::DescribeCollectionResponse,
    pb::GetCollectionStatisticsResponse,
    pb::ShowPartitionsResponse,
    pb::GetLoadStateResponse,
    pb::DescribeAliasResponse,
    pb::ListAliasesResponse,
    pb::DescribeIndexResponse,
    pb::MutationResult,
    pb::QueryResults,
    pb::FlushResponse,
    pb::GetPersistentSegmentInfoResponse,
    pb::ImportResponse,
    pb::GetImportStateResponse,
    pb::ListImportTasksResponse,
    pb::ListCredUsersResponse,
    pb::SelectRoleResponse,
    pb::SelectUserResponse,
    pb::SelectGrantResponse,
    pb::BackupRbacMetaResponse,
);

pub(super) fn failed<T: Answer>(s: Status) -> R<T> {
    let mut t = T::default();
    t.set_status(s);
    Ok(Response::new(t))
}

pub(super) fn ok() -> Option<Status> {
    Some(Status::default())
}

pub(super) fn done<T>(t: T) -> R<T> {
    Ok(Response::new(t))
}

pub(super) fn success() -> R<Status> {
    Ok(Response::new(Status::default()))
}

pub(super) fn unimplemented(name: &str) -> GrpcStatus {
    GrpcStatus::unimplemented(format!(
        "unknown method {name} for service milvus.proto.milvus.MilvusService"
    ))
}

pub(super) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(super) fn kv(key: &str, value: impl Into<String>) -> KeyValuePair {
    KeyValuePair {
        key: key.into(),
        value: value.into(),
    }
}

/// A comparison `<field> <op> <literal>` of a query expression.
struct Filter {
    field: String,
    op: String,
    value: Pk,
}

impl Filter {
    fn parse(expr: &str) -> Option<Filter> {
        for op in [">=", "<=", "==", "!=", ">", "<"] {
            if let Some((l, r)) = expr.split_once(op) {
                let field = l.trim().to_owned();
                let r = r.trim();
                let value = if let Some(s) = r.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    Pk::VarChar(s.replace("\\\"", "\"").replace("\\\\", "\\"))
                } else {
                    Pk::Int64(r.parse().ok()?)
                };
                return Some(Filter {
                    field,
                    op: op.to_owned(),
                    value,
                });
            }
        }
        None
    }

    fn keeps(&self, k: &Pk) -> bool {
        let ord = match (k, &self.value) {
            (Pk::Int64(a), Pk::Int64(b)) => a.cmp(b),
            (Pk::VarChar(a), Pk::VarChar(b)) => a.cmp(b),
            _ => return false,
        };
        match self.op.as_str() {
            ">=" => ord.is_ge(),
            "<=" => ord.is_le(),
            "==" => ord.is_eq(),
            "!=" => ord.is_ne(),
            ">" => ord.is_gt(),
            _ => ord.is_lt(),
        }
    }
}

impl FakeMilvus {
    pub(super) fn record(&self, call: &str) {
        self.lock().rec.calls.push(call.into());
    }

    /// The database of a request: its field, else the `dbname` header, else `default`.
    pub(super) fn db_of<T>(&self, r: &Request<T>, field: &str) -> String {
        let header = r
            .metadata()
            .get("dbname")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let db = if field.is_empty() { header } else { field };
        model::db_name(&self.behaviour, db)
    }

    /// The user of the `authorization` header (`root` without one).
    pub(super) fn user_of<T>(r: &Request<T>) -> String {
        r.metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(u, _)| u.to_owned()))
            .unwrap_or_else(|| "root".into())
    }

    /// A collection (or alias) of a database, or the version's "not found".
    pub(super) fn coll<'a>(&self, m: &'a Model, db: &str, name: &str) -> Result<&'a Coll, Status> {
        if !m.has_db(db) {
            return Err(self.behaviour.database_not_found(db));
        }
        m.resolve(db, name)
            .ok_or_else(|| self.behaviour.collection_not_found(db, name))
    }

    pub(super) fn coll_mut<'a>(
        &self,
        m: &'a mut Model,
        db: &str,
        name: &str,
    ) -> Result<&'a mut Coll, Status> {
        if !m.has_db(db) {
            return Err(self.behaviour.database_not_found(db));
        }
        let b = self.behaviour.clone();
        m.resolve_mut(db, name)
            .ok_or_else(|| b.collection_not_found(db, name))
    }

    /// The schema `DescribeCollection` shows.
    pub(super) fn shown_schema(&self, c: &Coll) -> ms::CollectionSchema {
        let mut s = c.schema.clone();
        if !self.behaviour.describe_lists_dynamic_field {
            s.fields.retain(|f| !f.is_dynamic);
        }
        s
    }

    fn describe_index_of(
        &self,
        c: &Coll,
        index_name: &str,
        field_name: &str,
    ) -> pb::DescribeIndexResponse {
        let rows = c.stored_rows();
        let found: Vec<pb::IndexDescription> = c
            .indexes
            .iter()
            .filter(|i| index_name.is_empty() || i.index_name == index_name)
            .filter(|i| field_name.is_empty() || i.field_name == field_name)
            .map(|i| pb::IndexDescription {
                index_name: i.index_name.clone(),
                index_id: i.index_id,
                params: i.params.clone(),
                field_name: i.field_name.clone(),
                indexed_rows: rows,
                total_rows: rows,
                state: common::IndexState::Finished as i32,
                ..Default::default()
            })
            .collect();
        if found.is_empty() {
            return pb::DescribeIndexResponse {
                status: Some(self.behaviour.index_not_found(&c.name)),
                ..Default::default()
            };
        }
        pb::DescribeIndexResponse {
            status: ok(),
            index_descriptions: found,
        }
    }
}

fn long_field(name: &str, data_type: i32, values: Vec<i64>) -> ms::FieldData {
    ms::FieldData {
        r#type: data_type,
        field_name: name.into(),
        field: Some(ms::field_data::Field::Scalars(ms::ScalarField {
            data: Some(ms::scalar_field::Data::LongData(ms::LongArray {
                data: values,
            })),
        })),
        ..Default::default()
    }
}

fn pk_column(f: &ms::FieldSchema, keys: &[Pk]) -> ms::FieldData {
    if f.data_type == 21 || f.data_type == 20 {
        ms::FieldData {
            r#type: f.data_type,
            field_name: f.name.clone(),
            field_id: f.field_id,
            field: Some(ms::field_data::Field::Scalars(ms::ScalarField {
                data: Some(ms::scalar_field::Data::StringData(ms::StringArray {
                    data: keys
                        .iter()
                        .map(|k| match k {
                            Pk::VarChar(s) => s.clone(),
                            Pk::Int64(v) => v.to_string(),
                        })
                        .collect(),
                })),
            })),
            ..Default::default()
        }
    } else {
        let mut d = long_field(
            &f.name,
            f.data_type,
            keys.iter()
                .map(|k| match k {
                    Pk::Int64(v) => *v,
                    Pk::VarChar(_) => 0,
                })
                .collect(),
        );
        d.field_id = f.field_id;
        d
    }
}

/// Rows of one column of an insert, and its keys when it holds them.
fn column_rows(d: &ms::FieldData, dim: usize) -> (usize, Option<Vec<Pk>>) {
    use ms::field_data::Field;
    use ms::scalar_field::Data as S;
    use ms::vector_field::Data as V;
    match &d.field {
        Some(Field::Scalars(s)) => match &s.data {
            Some(S::LongData(a)) => (
                a.data.len(),
                Some(a.data.iter().map(|v| Pk::Int64(*v)).collect()),
            ),
            Some(S::StringData(a)) => (
                a.data.len(),
                Some(a.data.iter().cloned().map(Pk::VarChar).collect()),
            ),
            Some(S::IntData(a)) => (a.data.len(), None),
            Some(S::BoolData(a)) => (a.data.len(), None),
            Some(S::FloatData(a)) => (a.data.len(), None),
            Some(S::DoubleData(a)) => (a.data.len(), None),
            Some(S::BytesData(a)) => (a.data.len(), None),
            Some(S::JsonData(a)) => (a.data.len(), None),
            Some(S::ArrayData(a)) => (a.data.len(), None),
            _ => (0, None),
        },
        Some(Field::Vectors(v)) => {
            let dim = usize::try_from(v.dim).unwrap_or(dim).max(1);
            match &v.data {
                Some(V::FloatVector(a)) => (a.data.len() / dim, None),
                Some(V::BinaryVector(b)) => (b.len() * 8 / dim, None),
                Some(V::Float16Vector(b)) | Some(V::Bfloat16Vector(b)) => (b.len() / 2 / dim, None),
                Some(V::SparseFloatVector(s)) => (s.contents.len(), None),
                Some(V::Int8Vector(b)) => (b.len() / dim, None),
                _ => (0, None),
            }
        }
        _ => (0, None),
    }
}

#[tonic::async_trait]
impl MilvusService for FakeMilvus {
    async fn connect(&self, _r: Request<pb::ConnectRequest>) -> R<pb::ConnectResponse> {
        self.record("Connect");
        if !self.behaviour.connect {
            return Err(unimplemented("Connect"));
        }
        done(pb::ConnectResponse {
            status: ok(),
            server_info: Some(ServerInfo {
                build_tags: self.behaviour.version.clone(),
                deploy_mode: "STANDALONE".into(),
                ..Default::default()
            }),
            identifier: 1,
        })
    }

    async fn get_version(&self, _r: Request<pb::GetVersionRequest>) -> R<pb::GetVersionResponse> {
        self.record("GetVersion");
        done(pb::GetVersionResponse {
            status: ok(),
            version: self.behaviour.version.clone(),
        })
    }

    async fn alloc_timestamp(
        &self,
        _r: Request<pb::AllocTimestampRequest>,
    ) -> R<pb::AllocTimestampResponse> {
        self.record("AllocTimestamp");
        if !self.behaviour.alloc_timestamp {
            return Err(unimplemented("AllocTimestamp"));
        }
        done(pb::AllocTimestampResponse {
            status: ok(),
            timestamp: tso_now(),
        })
    }

    async fn list_databases(
        &self,
        _r: Request<pb::ListDatabasesRequest>,
    ) -> R<pb::ListDatabasesResponse> {
        self.record("ListDatabases");
        let b = &self.behaviour;
        if !b.databases {
            return Err(unimplemented("ListDatabases"));
        }
        let m = self.lock();
        done(pb::ListDatabasesResponse {
            status: ok(),
            db_names: m.databases.iter().map(|d| d.name.clone()).collect(),
            created_timestamp: if b.at_least(2, 3, 0) {
                m.databases.iter().map(|_| tso_now()).collect()
            } else {
                Vec::new()
            },
            db_ids: if b.at_least(2, 5, 0) {
                m.databases.iter().map(|d| d.id).collect()
            } else {
                Vec::new()
            },
        })
    }

    async fn create_database(&self, r: Request<pb::CreateDatabaseRequest>) -> R<Status> {
        self.record("CreateDatabase");
        let b = self.behaviour.clone();
        if !b.databases {
            return Err(unimplemented("CreateDatabase"));
        }
        let name = r.into_inner().db_name;
        if self.lock().has_db(&name) {
            return failed(b.database_exists(&name));
        }
        let id = self.alloc();
        self.lock().databases.push(model::Database { name, id });
        success()
    }

    async fn drop_database(&self, r: Request<pb::DropDatabaseRequest>) -> R<Status> {
        self.record("DropDatabase");
        let b = self.behaviour.clone();
        if !b.databases {
            return Err(unimplemented("DropDatabase"));
        }
        let name = r.into_inner().db_name;
        if name == "default" {
            return failed(b.unexpected("can not drop default database"));
        }
        let mut m = self.lock();
        if m.collections.iter().any(|c| c.db == name) {
            return failed(b.unexpected(format!(
                "database:{name} not empty, must drop all collections before drop database"
            )));
        }
        m.databases.retain(|d| d.name != name);
        success()
    }

    async fn describe_database(
        &self,
        r: Request<pb::DescribeDatabaseRequest>,
    ) -> R<pb::DescribeDatabaseResponse> {
        self.record("DescribeDatabase");
        let b = self.behaviour.clone();
        if !b.describe_database {
            return Err(unimplemented("DescribeDatabase"));
        }
        let name = r.into_inner().db_name;
        let m = self.lock();
        let Some(d) = m.databases.iter().find(|d| d.name == name) else {
            return failed(b.database_not_found(&name));
        };
        done(pb::DescribeDatabaseResponse {
            status: ok(),
            db_name: d.name.clone(),
            db_id: d.id,
            ..Default::default()
        })
    }

    async fn show_collections(
        &self,
        r: Request<pb::ShowCollectionsRequest>,
    ) -> R<pb::ShowCollectionsResponse> {
        self.record("ShowCollections");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let m = self.lock();
        if !m.has_db(&db) {
            return failed(self.behaviour.database_not_found(&db));
        }
        let colls: Vec<&Coll> = m.collections.iter().filter(|c| c.db == db).collect();
        done(pb::ShowCollectionsResponse {
            status: ok(),
            collection_names: colls.iter().map(|c| c.name.clone()).collect(),
            collection_ids: colls.iter().map(|c| c.id).collect(),
            created_timestamps: colls.iter().map(|c| c.created_ts).collect(),
            ..Default::default()
        })
    }

    async fn has_collection(&self, r: Request<pb::HasCollectionRequest>) -> R<pb::BoolResponse> {
        self.record("HasCollection");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let name = r.into_inner().collection_name;
        let m = self.lock();
        if !m.has_db(&db) {
            return failed(self.behaviour.database_not_found(&db));
        }
        // An alias names its collection here too (rootcoord resolves aliases).
        done(pb::BoolResponse {
            status: ok(),
            value: m.resolve(&db, &name).is_some(),
        })
    }

    async fn describe_collection(
        &self,
        r: Request<pb::DescribeCollectionRequest>,
    ) -> R<pb::DescribeCollectionResponse> {
        self.record("DescribeCollection");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let req = r.into_inner();
        let m = self.lock();
        let found = if req.collection_name.is_empty() && req.collection_id != 0 {
            m.collections
                .iter()
                .find(|c| c.id == req.collection_id)
                .ok_or_else(|| {
                    self.behaviour
                        .collection_not_found(&db, &req.collection_id.to_string())
                })
        } else {
            self.coll(&m, &db, &req.collection_name)
        };
        let c = match found {
            Ok(c) => c,
            Err(s) => return failed(s),
        };
        let channel = format!("by-dev-rootcoord-dml_0_{}v0", c.id);
        done(pb::DescribeCollectionResponse {
            status: ok(),
            schema: Some(self.shown_schema(c)),
            collection_id: c.id,
            virtual_channel_names: vec![channel],
            physical_channel_names: vec!["by-dev-rootcoord-dml_0".into()],
            created_timestamp: c.created_ts,
            created_utc_timestamp: c.created_ts >> 18,
            shards_num: c.shards_num,
            aliases: c.aliases.clone(),
            consistency_level: c.consistency_level,
            collection_name: c.name.clone(),
            properties: c.properties.clone(),
            db_name: c.db.clone(),
            num_partitions: c.partitions.len() as i64,
            ..Default::default()
        })
    }

    async fn create_collection(&self, r: Request<pb::CreateCollectionRequest>) -> R<Status> {
        self.record("CreateCollection");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let req = r.into_inner();
        let b = self.behaviour.clone();
        self.lock().rec.creates.push(req.clone());
        let mut schema = match ms::CollectionSchema::decode(req.schema.as_slice()) {
            Ok(s) => s,
            Err(e) => return failed(b.invalid(format!("failed to decode the schema: {e}"))),
        };
        if schema.fields.iter().any(|f| f.is_dynamic) {
            return failed(b.invalid("cannot explicitly set a field as a dynamic field"));
        }
        if schema.fields.iter().filter(|f| f.is_primary_key).count() != 1 {
            return failed(b.invalid("primary key is not specified"));
        }
        let vectors: Vec<String> = schema
            .fields
            .iter()
            .filter(|f| (100..200).contains(&f.data_type))
            .map(|f| f.name.clone())
            .collect();
        if vectors.is_empty() {
            return failed(b.invalid("schema does not contain vector field"));
        }
        if vectors.len() > 1 && !b.multiple_vector_fields {
            return failed(b.invalid(format!(
                "multiple vector fields is not supported, fields name: {}",
                vectors.join(", ")
            )));
        }
        // Like Milvus: ids assigned in order from 100, `$meta` appended last.
        for (i, f) in schema.fields.iter_mut().enumerate() {
            f.field_id = 100 + i as i64;
        }
        if schema.enable_dynamic_field {
            schema.fields.push(ms::FieldSchema {
                field_id: 100 + schema.fields.len() as i64,
                name: "$meta".into(),
                data_type: 23,
                is_dynamic: true,
                ..Default::default()
            });
        }
        schema.name = req.collection_name.clone();
        let partition_key = schema.fields.iter().any(|f| f.is_partition_key);
        let id = self.alloc();
        let names: Vec<String> = if partition_key {
            let default_n = if b.at_least(2, 4, 0) { 16 } else { 64 };
            let n = if req.num_partitions > 0 {
                req.num_partitions
            } else {
                default_n
            };
            (0..n).map(|i| format!("_default_{i}")).collect()
        } else {
            vec!["_default".into()]
        };
        let partitions = names.into_iter().map(|n| (n, self.alloc())).collect();
        let mut m = self.lock();
        if !m.has_db(&db) {
            return failed(b.database_not_found(&db));
        }
        if let Some(old) = m.find(&db, &req.collection_name) {
            let same = old.schema.fields.len() == schema.fields.len()
                && old
                    .schema
                    .fields
                    .iter()
                    .zip(&schema.fields)
                    .all(|(a, b)| a.name == b.name && a.data_type == b.data_type);
            return if same {
                success()
            } else {
                failed(b.unexpected(format!(
                    "create duplicate collection with different parameters, collection: {}",
                    req.collection_name
                )))
            };
        }
        m.collections.push(Coll {
            db,
            name: req.collection_name,
            id,
            schema,
            partitions,
            aliases: Vec::new(),
            loaded: false,
            indexes: Vec::new(),
            shards_num: req.shards_num.max(1),
            consistency_level: req.consistency_level,
            properties: req.properties,
            created_ts: tso_now(),
            segments: Vec::new(),
        });
        success()
    }

    async fn drop_collection(&self, r: Request<pb::DropCollectionRequest>) -> R<Status> {
        self.record("DropCollection");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let name = r.into_inner().collection_name;
        // Dropping a missing collection succeeds (rootcoord makes it idempotent) [I].
        self.lock()
            .collections
            .retain(|c| !(c.db == db && c.name == name));
        success()
    }

    async fn load_collection(&self, r: Request<pb::LoadCollectionRequest>) -> R<Status> {
        self.record("LoadCollection");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let name = r.into_inner().collection_name;
        let mut m = self.lock();
        let c = match self.coll_mut(&mut m, &db, &name) {
            Ok(c) => c,
            Err(s) => return failed(s),
        };
        // Loading needs an index on every vector field (2.2+).
        let unindexed = c
            .schema
            .fields
            .iter()
            .filter(|f| (100..200).contains(&f.data_type))
            .any(|f| !c.indexes.iter().any(|i| i.field_name == f.name));
        if unindexed {
            return failed(self.behaviour.index_not_found(&name));
        }
        c.loaded = true;
        success()
    }

    async fn release_collection(&self, r: Request<pb::ReleaseCollectionRequest>) -> R<Status> {
        self.record("ReleaseCollection");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let name = r.into_inner().collection_name;
        let mut m = self.lock();
        match self.coll_mut(&mut m, &db, &name) {
            Ok(c) => {
                c.loaded = false;
                success()
            }
            Err(s) => failed(s),
        }
    }

    async fn get_load_state(
        &self,
        r: Request<pb::GetLoadStateRequest>,
    ) -> R<pb::GetLoadStateResponse> {
        self.record("GetLoadState");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let name = r.into_inner().collection_name;
        let m = self.lock();
        match self.coll(&m, &db, &name) {
            Ok(c) => done(pb::GetLoadStateResponse {
                status: ok(),
                state: if c.loaded {
                    common::LoadState::Loaded as i32
                } else {
                    common::LoadState::NotLoad as i32
                },
            }),
            Err(s) => failed(s),
        }
    }

    async fn get_collection_statistics(
        &self,
        r: Request<pb::GetCollectionStatisticsRequest>,
    ) -> R<pb::GetCollectionStatisticsResponse> {
        self.record("GetCollectionStatistics");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let name = r.into_inner().collection_name;
        let m = self.lock();
        match self.coll(&m, &db, &name) {
            Ok(c) => done(pb::GetCollectionStatisticsResponse {
                status: ok(),
                stats: vec![kv("row_count", c.stored_rows().to_string())],
            }),
            Err(s) => failed(s),
        }
    }

    async fn create_partition(&self, r: Request<pb::CreatePartitionRequest>) -> R<Status> {
        self.record("CreatePartition");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let req = r.into_inner();
        let id = self.alloc();
        let mut m = self.lock();
        let c = match self.coll_mut(&mut m, &db, &req.collection_name) {
            Ok(c) => c,
            Err(s) => return failed(s),
        };
        if c.partition_key().is_some() {
            return failed(
                self.behaviour
                    .invalid("disable create partition if partition key mode is used"),
            );
        }
        if c.partition_id(&req.partition_name).is_none() {
            c.partitions.push((req.partition_name, id));
        }
        success()
    }

    async fn has_partition(&self, r: Request<pb::HasPartitionRequest>) -> R<pb::BoolResponse> {
        self.record("HasPartition");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let req = r.into_inner();
        let m = self.lock();
        match self.coll(&m, &db, &req.collection_name) {
            Ok(c) => done(pb::BoolResponse {
                status: ok(),
                value: c.partition_id(&req.partition_name).is_some(),
            }),
            Err(s) => failed(s),
        }
    }

    async fn show_partitions(
        &self,
        r: Request<pb::ShowPartitionsRequest>,
    ) -> R<pb::ShowPartitionsResponse> {
        self.record("ShowPartitions");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let name = r.into_inner().collection_name;
        let m = self.lock();
        match self.coll(&m, &db, &name) {
            Ok(c) => done(pb::ShowPartitionsResponse {
                status: ok(),
                partition_names: c.partitions.iter().map(|p| p.0.clone()).collect(),
                partition_i_ds: c.partitions.iter().map(|p| p.1).collect(),
                created_timestamps: c.partitions.iter().map(|_| c.created_ts).collect(),
                ..Default::default()
            }),
            Err(s) => failed(s),
        }
    }

    async fn create_alias(&self, r: Request<pb::CreateAliasRequest>) -> R<Status> {
        self.record("CreateAlias");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let req = r.into_inner();
        let b = self.behaviour.clone();
        let mut m = self.lock();
        if m.find(&db, &req.alias).is_some() {
            return failed(b.alias_is_collection(&req.alias));
        }
        if let Some(owner) = m
            .collections
            .iter()
            .find(|c| c.db == db && c.aliases.contains(&req.alias))
        {
            if owner.name == req.collection_name {
                return success();
            }
            return failed(b.alias_taken(&db, &req.alias, &owner.name));
        }
        let Some(c) = m.find_mut(&db, &req.collection_name) else {
            return failed(b.collection_not_found(&db, &req.collection_name));
        };
        c.aliases.push(req.alias);
        success()
    }

    async fn alter_alias(&self, r: Request<pb::AlterAliasRequest>) -> R<Status> {
        self.record("AlterAlias");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let req = r.into_inner();
        let b = self.behaviour.clone();
        let mut m = self.lock();
        if m.find(&db, &req.collection_name).is_none() {
            return failed(b.collection_not_found(&db, &req.collection_name));
        }
        let held = m
            .collections
            .iter()
            .any(|c| c.db == db && c.aliases.contains(&req.alias));
        if !held {
            return failed(b.unexpected(format!(
                "failed to alter alias, alias does not exist: {}",
                req.alias
            )));
        }
        for c in m.collections.iter_mut().filter(|c| c.db == db) {
            c.aliases.retain(|a| *a != req.alias);
        }
        if let Some(c) = m.find_mut(&db, &req.collection_name) {
            c.aliases.push(req.alias);
        }
        success()
    }

    async fn rename_collection(&self, r: Request<pb::RenameCollectionRequest>) -> R<Status> {
        self.record("RenameCollection");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let req = r.into_inner();
        let b = self.behaviour.clone();
        let mut m = self.lock();
        if m.find(&db, &req.new_name).is_some() {
            return failed(b.unexpected(format!(
                "duplicated new collection name default:{} with other collection name or alias",
                req.new_name
            )));
        }
        let Some(c) = m.find_mut(&db, &req.old_name) else {
            return failed(b.collection_not_found(&db, &req.old_name));
        };
        c.name = req.new_name;
        success()
    }

    async fn drop_alias(&self, r: Request<pb::DropAliasRequest>) -> R<Status> {
        self.record("DropAlias");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let alias = r.into_inner().alias;
        // A missing alias is no error [I].
        for c in self.lock().collections.iter_mut().filter(|c| c.db == db) {
            c.aliases.retain(|a| *a != alias);
        }
        success()
    }

    async fn describe_alias(
        &self,
        r: Request<pb::DescribeAliasRequest>,
    ) -> R<pb::DescribeAliasResponse> {
        self.record("DescribeAlias");
        if !self.behaviour.alias_rpcs {
            return Err(unimplemented("DescribeAlias"));
        }
        let db = self.db_of(&r, &r.get_ref().db_name);
        let alias = r.into_inner().alias;
        let m = self.lock();
        match m
            .collections
            .iter()
            .find(|c| c.db == db && c.aliases.contains(&alias))
        {
            Some(c) => done(pb::DescribeAliasResponse {
                status: ok(),
                db_name: db,
                alias,
                collection: c.name.clone(),
            }),
            None => failed(self.behaviour.alias_not_found(&db, &alias)),
        }
    }

    async fn list_aliases(&self, r: Request<pb::ListAliasesRequest>) -> R<pb::ListAliasesResponse> {
        self.record("ListAliases");
        if !self.behaviour.alias_rpcs {
            return Err(unimplemented("ListAliases"));
        }
        let db = self.db_of(&r, &r.get_ref().db_name);
        let name = r.into_inner().collection_name;
        let m = self.lock();
        let aliases = if name.is_empty() {
            m.collections
                .iter()
                .filter(|c| c.db == db)
                .flat_map(|c| c.aliases.clone())
                .collect()
        } else {
            match self.coll(&m, &db, &name) {
                Ok(c) => c.aliases.clone(),
                Err(s) => return failed(s),
            }
        };
        done(pb::ListAliasesResponse {
            status: ok(),
            db_name: db,
            collection_name: name,
            aliases,
        })
    }

    async fn create_index(&self, r: Request<pb::CreateIndexRequest>) -> R<Status> {
        self.record("CreateIndex");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let req = r.into_inner();
        let b = self.behaviour.clone();
        let id = self.alloc();
        let mut m = self.lock();
        let c = match self.coll_mut(&mut m, &db, &req.collection_name) {
            Ok(c) => c,
            Err(s) => return failed(s),
        };
        if !c.schema.fields.iter().any(|f| f.name == req.field_name) {
            return failed(b.invalid(format!(
                "cannot create index on non-existed field: {}",
                req.field_name
            )));
        }
        let cosine = req
            .extra_params
            .iter()
            .any(|p| p.value.to_ascii_uppercase().contains("COSINE"));
        if cosine && !b.cosine_metric {
            return failed(
                b.unexpected("metric type not found or not supported, supported: [L2 IP]"),
            );
        }
        let index_name = if req.index_name.is_empty() {
            format!("_default_idx_{}", req.field_name)
        } else {
            req.index_name
        };
        if let Some(old) = c.indexes.iter().find(|i| i.field_name == req.field_name) {
            return if old.params == req.extra_params {
                success()
            } else {
                failed(b.unexpected("at most one distinct index is allowed per field"))
            };
        }
        c.indexes.push(Index {
            field_name: req.field_name,
            index_name,
            index_id: id,
            params: req.extra_params,
        });
        success()
    }

    async fn describe_index(
        &self,
        r: Request<pb::DescribeIndexRequest>,
    ) -> R<pb::DescribeIndexResponse> {
        self.record("DescribeIndex");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let req = r.into_inner();
        let m = self.lock();
        match self.coll(&m, &db, &req.collection_name) {
            Ok(c) => done(self.describe_index_of(c, &req.index_name, &req.field_name)),
            Err(s) => failed(s),
        }
    }

    async fn insert(&self, r: Request<pb::InsertRequest>) -> R<pb::MutationResult> {
        self.record("Insert");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let req = r.into_inner();
        let b = self.behaviour.clone();
        let n = req.num_rows as usize;
        let auto_ids = self.alloc_n(n as i64);
        let mut m = self.lock();
        let c = match self.coll_mut(&mut m, &db, &req.collection_name) {
            Ok(c) => c,
            Err(s) => return failed(s),
        };
        let mut keys: Option<Vec<Pk>> = None;
        let mut route: Option<Vec<Pk>> = None;
        for f in c.schema.fields.iter().filter(|f| !f.is_dynamic) {
            let Some(d) = req.fields_data.iter().find(|d| d.field_name == f.name) else {
                if f.is_primary_key && f.auto_id {
                    continue;
                }
                return failed(b.invalid(format!(
                    "fieldSchema({}) has no corresponding fieldData pass in",
                    f.name
                )));
            };
            let dim = f
                .type_params
                .iter()
                .find(|p| p.key == "dim")
                .and_then(|p| p.value.parse().ok())
                .unwrap_or(1);
            let (rows, values) = column_rows(d, dim);
            if rows != n {
                return failed(b.invalid(format!(
                    "the num_rows ({rows}) of field ({}) is not equal to passed num_rows ({n})",
                    f.name
                )));
            }
            if f.is_primary_key {
                keys = values.clone();
            }
            if f.is_partition_key {
                route = values;
            }
        }
        if req.fields_data.iter().any(|d| d.is_dynamic) && !c.schema.enable_dynamic_field {
            return failed(b.invalid("the collection has no dynamic field"));
        }
        let keys = keys.unwrap_or_else(|| (0..n as i64).map(|i| Pk::Int64(auto_ids + i)).collect());
        let partition_key = c.partition_key().is_some();
        if partition_key && !req.partition_name.is_empty() {
            return failed(b.invalid(
                "not support manually specifying the partition names if partition key mode is used",
            ));
        }
        let targets: Vec<i64> = if partition_key {
            let np = c.partitions.len().max(1) as i64;
            route
                .unwrap_or_default()
                .iter()
                .map(|k| {
                    let h = match k {
                        Pk::Int64(v) => *v,
                        Pk::VarChar(s) => s
                            .bytes()
                            .fold(0i64, |h, x| h.wrapping_mul(31).wrapping_add(x as i64)),
                    };
                    c.partitions[h.rem_euclid(np) as usize].1
                })
                .collect()
        } else {
            let name = if req.partition_name.is_empty() {
                "_default"
            } else {
                &req.partition_name
            };
            match c.partition_id(name) {
                Some(p) => vec![p; n],
                None => return failed(b.partition_not_found(name)),
            }
        };
        let ts = tso_now();
        for (k, pid) in keys.iter().zip(&targets) {
            let grow = c
                .segments
                .iter_mut()
                .position(|s| s.state == SegState::Growing && s.partition_id == *pid);
            let idx = match grow {
                Some(i) => i,
                None => {
                    c.segments.push(Seg {
                        id: self.alloc(),
                        partition_id: *pid,
                        level: SegLevel::L1,
                        storage_version: 0,
                        state: SegState::Growing,
                        rows: Vec::new(),
                        deletes: Vec::new(),
                        files: None,
                    });
                    c.segments.len() - 1
                }
            };
            c.segments[idx].rows.push((k.clone(), ts));
        }
        m.rec.inserts.push(n as i64);
        let ids = match keys.first() {
            Some(Pk::VarChar(_)) => ms::i_ds::IdField::StrId(ms::StringArray {
                data: keys
                    .iter()
                    .map(|k| match k {
                        Pk::VarChar(s) => s.clone(),
                        Pk::Int64(v) => v.to_string(),
                    })
                    .collect(),
            }),
            _ => ms::i_ds::IdField::IntId(ms::LongArray {
                data: keys
                    .iter()
                    .map(|k| match k {
                        Pk::Int64(v) => *v,
                        Pk::VarChar(_) => 0,
                    })
                    .collect(),
            }),
        };
        done(pb::MutationResult {
            status: ok(),
            i_ds: Some(ms::IDs {
                id_field: Some(ids),
            }),
            succ_index: (0..n as u32).collect(),
            insert_cnt: n as i64,
            timestamp: ts,
            ..Default::default()
        })
    }

    async fn query(&self, r: Request<pb::QueryRequest>) -> R<pb::QueryResults> {
        self.record("Query");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let req = r.into_inner();
        let b = self.behaviour.clone();
        self.lock().rec.queries.push(req.clone());
        let m = self.lock();
        let c = match self.coll(&m, &db, &req.collection_name) {
            Ok(c) => c,
            Err(s) => return failed(s),
        };
        if !c.loaded {
            return failed(b.not_loaded(&c.name));
        }
        let Some(pk) = c.pk_field().cloned() else {
            return failed(b.unexpected("no primary key"));
        };
        let expr = req.expr.trim();
        let filter = if expr.is_empty() {
            None
        } else {
            match Filter::parse(expr) {
                Some(f) if f.field == pk.name => Some(f),
                _ => {
                    return failed(b.unexpected(format!(
                        "cannot parse expression: {expr} (the fake filters on the primary key only)"
                    )));
                }
            }
        };
        let live: Vec<Pk> = c
            .live()
            .into_iter()
            .map(|(_, k, _)| k)
            .filter(|k| filter.as_ref().is_none_or(|f| f.keeps(k)))
            .collect();
        let count = req
            .output_fields
            .iter()
            .any(|f| f.eq_ignore_ascii_case("count(*)"));
        if count {
            if !b.count_star {
                return failed(b.unexpected(if expr.is_empty() {
                    "query expression is empty".to_owned()
                } else {
                    "field count(*) not exist".to_owned()
                }));
            }
            return done(pb::QueryResults {
                status: ok(),
                fields_data: vec![long_field("count(*)", 5, vec![live.len() as i64])],
                collection_name: c.name.clone(),
                output_fields: vec!["count(*)".into()],
                ..Default::default()
            });
        }
        let param = |k: &str| {
            req.query_params
                .iter()
                .find(|p| p.key == k)
                .and_then(|p| p.value.parse::<i64>().ok())
        };
        let (limit, offset) = (param("limit"), param("offset").unwrap_or(0));
        if expr.is_empty() && (!b.at_least(2, 4, 0) || limit.is_none()) {
            return failed(b.unexpected("query expression is empty"));
        }
        if let Some(l) = limit
            && (l + offset > 16_384 || l <= 0)
        {
            return failed(b.invalid(format!(
                    "invalid max query result window, (offset+limit) should be in range [1, 16384], but got {}",
                    l + offset
                )));
        }
        for f in &req.output_fields {
            if *f != pk.name && f != "*" {
                return failed(
                    b.unexpected(format!("the fake returns the primary key only, not {f}")),
                );
            }
        }
        let mut keys = live;
        keys.sort();
        keys.dedup();
        let keys: Vec<Pk> = keys
            .into_iter()
            .skip(offset as usize)
            .take(limit.map_or(usize::MAX, |l| l as usize))
            .collect();
        done(pb::QueryResults {
            status: ok(),
            fields_data: vec![pk_column(&pk, &keys)],
            collection_name: c.name.clone(),
            output_fields: vec![pk.name.clone()],
            ..Default::default()
        })
    }

    async fn flush(&self, r: Request<pb::FlushRequest>) -> R<pb::FlushResponse> {
        self.record("Flush");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let names = r.into_inner().collection_names;
        let b = self.behaviour.clone();
        let mut m = self.lock();
        let mut resp = pb::FlushResponse {
            status: ok(),
            db_name: db.clone(),
            ..Default::default()
        };
        for name in names {
            let c = match self.coll_mut(&mut m, &db, &name) {
                Ok(c) => c,
                Err(s) => return failed(s),
            };
            let mut sealed = Vec::new();
            let mut flushed = Vec::new();
            for s in c.segments.iter_mut() {
                if s.state == SegState::Growing {
                    s.state = SegState::Flushed;
                    sealed.push(s.id);
                } else if s.level == SegLevel::L1 {
                    flushed.push(s.id);
                }
            }
            resp.coll_seg_i_ds
                .insert(name.clone(), ms::LongArray { data: sealed });
            resp.flush_coll_seg_i_ds
                .insert(name.clone(), ms::LongArray { data: flushed });
            resp.coll_seal_times.insert(name.clone(), now_secs() as i64);
            if b.at_least(2, 3, 1) {
                resp.coll_flush_ts.insert(name, tso_now());
            }
        }
        done(resp)
    }

    async fn get_flush_state(
        &self,
        _r: Request<pb::GetFlushStateRequest>,
    ) -> R<pb::GetFlushStateResponse> {
        self.record("GetFlushState");
        // Segments are flushed at once; unknown segments answer flushed too (research).
        done(pb::GetFlushStateResponse {
            status: ok(),
            flushed: true,
        })
    }

    async fn get_flush_all_state(
        &self,
        _r: Request<pb::GetFlushAllStateRequest>,
    ) -> R<pb::GetFlushAllStateResponse> {
        self.record("GetFlushAllState");
        if !self.behaviour.flush_all_state {
            return Err(unimplemented("GetFlushAllState"));
        }
        done(pb::GetFlushAllStateResponse {
            status: ok(),
            flushed: true,
        })
    }

    async fn flush_all(&self, _r: Request<pb::FlushAllRequest>) -> R<pb::FlushAllResponse> {
        self.record("FlushAll");
        // Same availability as GetFlushAllState (2.2.5+); segments flush at once here.
        if !self.behaviour.flush_all_state {
            return Err(unimplemented("FlushAll"));
        }
        done(pb::FlushAllResponse {
            status: ok(),
            flush_all_ts: 42 << 18,
        })
    }

    async fn get_persistent_segment_info(
        &self,
        r: Request<pb::GetPersistentSegmentInfoRequest>,
    ) -> R<pb::GetPersistentSegmentInfoResponse> {
        self.record("GetPersistentSegmentInfo");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let name = r.into_inner().collection_name;
        let b = self.behaviour.clone();
        let m = self.lock();
        let c = match self.coll(&m, &db, &name) {
            Ok(c) => c,
            Err(s) => return failed(s),
        };
        let infos = c
            .segments
            .iter()
            .map(|s| pb::PersistentSegmentInfo {
                segment_id: s.id,
                collection_id: c.id,
                partition_id: s.partition_id,
                num_rows: s.num_rows(),
                state: match s.state {
                    SegState::Growing => common::SegmentState::Growing as i32,
                    SegState::Flushed => common::SegmentState::Flushed as i32,
                },
                level: if b.reports_segment_level {
                    match s.level {
                        SegLevel::L1 => common::SegmentLevel::L1 as i32,
                        SegLevel::L0 => common::SegmentLevel::L0 as i32,
                    }
                } else {
                    common::SegmentLevel::Legacy as i32
                },
                is_sorted: b.reports_is_sorted && s.state == SegState::Flushed,
                storage_version: if b.reports_storage_version {
                    s.storage_version
                } else {
                    0
                },
            })
            .collect();
        done(pb::GetPersistentSegmentInfoResponse {
            status: ok(),
            infos,
        })
    }

    async fn import(&self, r: Request<pb::ImportRequest>) -> R<pb::ImportResponse> {
        self.import_rpc(r).await
    }

    async fn get_import_state(
        &self,
        r: Request<pb::GetImportStateRequest>,
    ) -> R<pb::GetImportStateResponse> {
        self.get_import_state_rpc(r).await
    }

    async fn list_import_tasks(
        &self,
        r: Request<pb::ListImportTasksRequest>,
    ) -> R<pb::ListImportTasksResponse> {
        self.list_import_tasks_rpc(r).await
    }

    async fn create_credential(&self, r: Request<pb::CreateCredentialRequest>) -> R<Status> {
        self.create_credential_rpc(r).await
    }

    async fn delete_credential(&self, r: Request<pb::DeleteCredentialRequest>) -> R<Status> {
        self.delete_credential_rpc(r).await
    }

    async fn list_cred_users(
        &self,
        _r: Request<pb::ListCredUsersRequest>,
    ) -> R<pb::ListCredUsersResponse> {
        self.list_cred_users_rpc(_r).await
    }

    async fn create_role(&self, r: Request<pb::CreateRoleRequest>) -> R<Status> {
        self.create_role_rpc(r).await
    }

    async fn drop_role(&self, r: Request<pb::DropRoleRequest>) -> R<Status> {
        self.drop_role_rpc(r).await
    }

    async fn operate_user_role(&self, r: Request<pb::OperateUserRoleRequest>) -> R<Status> {
        self.operate_user_role_rpc(r).await
    }

    async fn select_role(&self, r: Request<pb::SelectRoleRequest>) -> R<pb::SelectRoleResponse> {
        self.select_role_rpc(r).await
    }

    async fn select_user(&self, r: Request<pb::SelectUserRequest>) -> R<pb::SelectUserResponse> {
        self.select_user_rpc(r).await
    }

    async fn operate_privilege(&self, r: Request<pb::OperatePrivilegeRequest>) -> R<Status> {
        self.operate_privilege_rpc(r).await
    }

    async fn select_grant(&self, r: Request<pb::SelectGrantRequest>) -> R<pb::SelectGrantResponse> {
        self.select_grant_rpc(r).await
    }

    async fn backup_rbac(
        &self,
        _r: Request<pb::BackupRbacMetaRequest>,
    ) -> R<pb::BackupRbacMetaResponse> {
        self.backup_rbac_rpc(_r).await
    }

    async fn restore_rbac(&self, r: Request<pb::RestoreRbacMetaRequest>) -> R<Status> {
        self.restore_rbac_rpc(r).await
    }

    async fn create_privilege_group(
        &self,
        r: Request<pb::CreatePrivilegeGroupRequest>,
    ) -> R<Status> {
        self.create_privilege_group_rpc(r).await
    }

    async fn drop_privilege_group(&self, r: Request<pb::DropPrivilegeGroupRequest>) -> R<Status> {
        self.drop_privilege_group_rpc(r).await
    }

    async fn list_privilege_groups(
        &self,
        r: Request<pb::ListPrivilegeGroupsRequest>,
    ) -> R<pb::ListPrivilegeGroupsResponse> {
        self.list_privilege_groups_rpc(r).await
    }

    async fn operate_privilege_group(
        &self,
        r: Request<pb::OperatePrivilegeGroupRequest>,
    ) -> R<Status> {
        self.operate_privilege_group_rpc(r).await
    }
}
