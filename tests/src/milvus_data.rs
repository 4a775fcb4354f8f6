//! A small Milvus data client for tests and the demo: create collections, insert
//! full columns, delete, flush, index, load, and dump every row in a canonical form
//! (floats by their bits) so two collections can be compared exactly.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use milvault_proto::milvus::common::{KeyValuePair, LoadState, Status};
use milvault_proto::milvus::milvus as pb;
use milvault_proto::milvus::milvus::milvus_service_client::MilvusServiceClient;
use milvault_proto::milvus::schema::{
    self as ms, FieldData, ScalarField, VectorField, field_data, scalar_field, vector_field,
};
use prost::Message;
use tonic::transport::{Channel, Endpoint};

/// Milvus data type numbers.
pub mod dt {
    pub const BOOL: i32 = 1;
    pub const INT8: i32 = 2;
    pub const INT16: i32 = 3;
    pub const INT32: i32 = 4;
    pub const INT64: i32 = 5;
    pub const FLOAT: i32 = 10;
    pub const DOUBLE: i32 = 11;
    pub const VARCHAR: i32 = 21;
    pub const JSON: i32 = 23;
    pub const ARRAY: i32 = 22;
    pub const BINARY_VECTOR: i32 = 100;
    pub const FLOAT_VECTOR: i32 = 101;
}

/// One field of a test collection.
#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub dtype: i32,
    pub primary: bool,
    pub auto_id: bool,
    pub params: Vec<(String, String)>,
    pub description: String,
    pub element_type: i32,
    pub default: Option<ms::ValueField>,
    pub partition_key: bool,
}

impl Field {
    pub fn new(name: &str, dtype: i32) -> Self {
        Self {
            name: name.into(),
            dtype,
            primary: false,
            auto_id: false,
            params: vec![],
            description: format!("field {name}"),
            element_type: 0,
            default: None,
            partition_key: false,
        }
    }
    /// An ARRAY of `element` with `capacity` slots.
    pub fn array(name: &str, element: i32, capacity: usize) -> Self {
        let mut f = Self::new(name, dt::ARRAY).param("max_capacity", capacity);
        f.element_type = element;
        if element == dt::VARCHAR {
            f = f.param("max_length", 32);
        }
        f
    }
    pub fn default_value(mut self, v: ms::value_field::Data) -> Self {
        self.default = Some(ms::ValueField { data: Some(v) });
        self
    }
    pub fn partition_key(mut self) -> Self {
        self.partition_key = true;
        self
    }
    pub fn primary(mut self) -> Self {
        self.primary = true;
        self
    }
    pub fn auto_id(mut self) -> Self {
        self.auto_id = true;
        self
    }
    pub fn param(mut self, k: &str, v: impl ToString) -> Self {
        self.params.push((k.into(), v.to_string()));
        self
    }
    fn dim(&self) -> usize {
        self.params
            .iter()
            .find(|(k, _)| k == "dim")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0)
    }
}

/// Collection-level options.
#[derive(Clone, Debug, Default)]
pub struct CollOpts {
    pub shards: i32,
    /// Milvus numbering: Strong 0, Session 1, Bounded 2, Eventually 3.
    pub consistency: i32,
    pub dynamic: bool,
    pub num_partitions: i64,
    pub properties: Vec<(String, String)>,
}

/// The `$meta` column of a dynamic collection: extra keys per row.
pub fn dynamic_column(start: i64, n: usize) -> FieldData {
    let data = (start..start + n as i64)
        .map(|i| format!(r#"{{"color":"c{}","extra_{}":{}}}"#, i % 7, i % 3, i * 2).into_bytes())
        .collect();
    FieldData {
        r#type: dt::JSON,
        field_name: "$meta".into(),
        is_dynamic: true,
        field: Some(field_data::Field::Scalars(ScalarField {
            data: Some(scalar_field::Data::JsonData(ms::JsonArray { data })),
        })),
        ..Default::default()
    }
}

/// A connected data client.
#[derive(Clone)]
pub struct DataClient {
    inner: MilvusServiceClient<Channel>,
}

fn ok(op: &str, s: Option<&Status>) -> Result<()> {
    match s {
        Some(s) if s.code != 0 || s.error_code != 0 => bail!(
            "{op}: {} (code {}, error_code {})",
            s.reason,
            s.code,
            s.error_code
        ),
        _ => Ok(()),
    }
}

fn req<T>(db: &str, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    // Some 2.3 RPCs (grants) need credentials even with auth off; harmless elsewhere.
    r.metadata_mut().insert(
        "authorization",
        "cm9vdDpNaWx2dXM=".parse().expect("static header"),
    );
    if !db.is_empty() {
        r.metadata_mut()
            .insert("dbname", db.parse().expect("ascii db name"));
    }
    r
}

/// Deterministic pseudo-random numbers (no external seed source).
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Self {
        Self(
            seed.wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407),
        )
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
    pub fn f32(&mut self) -> f32 {
        (self.next_u64() % 1_000_000) as f32 / 1_000_000.0 - 0.5
    }
}

/// Builds the column of `f` for rows `start..start+n`.
pub fn column(f: &Field, start: i64, n: usize, seed: u64) -> FieldData {
    let mut rng = Lcg::new(seed ^ (start as u64) ^ (f.name.len() as u64 * 7919));
    let ids = start..start + n as i64;
    let scalar = |d: scalar_field::Data| field_data::Field::Scalars(ScalarField { data: Some(d) });
    let field = match f.dtype {
        dt::BOOL => scalar(scalar_field::Data::BoolData(ms::BoolArray {
            data: ids.map(|i| i % 3 == 0).collect(),
        })),
        dt::INT8 => scalar(scalar_field::Data::IntData(ms::IntArray {
            data: ids.map(|i| (i % 256 - 128) as i32).collect(),
        })),
        dt::INT16 => scalar(scalar_field::Data::IntData(ms::IntArray {
            data: ids.map(|i| (i * 7 % 65536 - 32768) as i32).collect(),
        })),
        dt::INT32 => scalar(scalar_field::Data::IntData(ms::IntArray {
            data: ids
                .map(|i| (i * 104729 % i32::MAX as i64) as i32 - 7)
                .collect(),
        })),
        dt::INT64 => scalar(scalar_field::Data::LongData(ms::LongArray {
            data: ids
                .map(|i| {
                    if f.primary {
                        i
                    } else {
                        i * 1_000_000_007 - (1 << 40)
                    }
                })
                .collect(),
        })),
        dt::FLOAT => scalar(scalar_field::Data::FloatData(ms::FloatArray {
            data: (0..n).map(|_| rng.f32() * 1e3).collect(),
        })),
        dt::DOUBLE => scalar(scalar_field::Data::DoubleData(ms::DoubleArray {
            data: (0..n).map(|_| rng.f32() as f64 * 1e9 + 0.1).collect(),
        })),
        dt::VARCHAR => scalar(scalar_field::Data::StringData(ms::StringArray {
            data: ids
                .map(|i| {
                    if f.primary {
                        format!("key-{i:06}")
                    } else {
                        format!("text {i} ünïcödé {}", rng.next_u64() % 1000)
                    }
                })
                .collect(),
        })),
        dt::JSON => scalar(scalar_field::Data::JsonData(ms::JsonArray {
            data: ids
                .map(|i| {
                    format!(
                        r#"{{"id":{i},"tags":["a","b{}"],"nested":{{"x":{}}}}}"#,
                        i % 5,
                        i * 3
                    )
                    .into_bytes()
                })
                .collect(),
        })),
        dt::FLOAT_VECTOR => field_data::Field::Vectors(VectorField {
            dim: f.dim() as i64,
            data: Some(vector_field::Data::FloatVector(ms::FloatArray {
                data: (0..n * f.dim()).map(|_| rng.f32()).collect(),
            })),
        }),
        dt::BINARY_VECTOR => field_data::Field::Vectors(VectorField {
            dim: f.dim() as i64,
            data: Some(vector_field::Data::BinaryVector(
                (0..n * f.dim() / 8).map(|_| rng.next_u64() as u8).collect(),
            )),
        }),
        dt::ARRAY => {
            let cap: usize = f
                .params
                .iter()
                .find(|(k, _)| k == "max_capacity")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(4);
            let elem = Field {
                dtype: f.element_type,
                primary: false,
                ..Field::new("e", f.element_type)
            };
            let rows = ids
                .map(|i| {
                    let len = (i as usize) % (cap + 1);
                    match column(&elem, i * 31, len, seed).field {
                        Some(field_data::Field::Scalars(sf)) => sf,
                        _ => ScalarField::default(),
                    }
                })
                .collect();
            scalar(scalar_field::Data::ArrayData(ms::ArrayArray {
                data: rows,
                element_type: f.element_type,
            }))
        }
        other => panic!("test data for type {other} not implemented"),
    };
    FieldData {
        r#type: f.dtype,
        field_name: f.name.clone(),
        field: Some(field),
        ..Default::default()
    }
}

impl DataClient {
    /// Connects to `address` (`http://host:19530`).
    pub async fn connect(address: &str) -> Result<Self> {
        let channel = Endpoint::from_shared(address.to_owned())?
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .with_context(|| format!("connecting to Milvus at {address}"))?;
        Ok(Self {
            inner: MilvusServiceClient::new(channel).max_decoding_message_size(256 << 20),
        })
    }

    pub fn raw(&self) -> MilvusServiceClient<Channel> {
        self.inner.clone()
    }

    pub async fn create_database(&self, db: &str) -> Result<()> {
        let dbs = self
            .inner
            .clone()
            .list_databases(req("", pb::ListDatabasesRequest::default()))
            .await?
            .into_inner();
        if dbs.db_names.iter().any(|d| d == db) {
            return Ok(());
        }
        let r = self
            .inner
            .clone()
            .create_database(req(
                "",
                pb::CreateDatabaseRequest {
                    db_name: db.into(),
                    ..Default::default()
                },
            ))
            .await?;
        ok("CreateDatabase", Some(r.get_ref()))
    }

    pub async fn drop_collection_if_exists(&self, db: &str, name: &str) -> Result<()> {
        let r = self
            .inner
            .clone()
            .drop_collection(req(
                db,
                pb::DropCollectionRequest {
                    db_name: db.into(),
                    collection_name: name.into(),
                    ..Default::default()
                },
            ))
            .await?;
        let s = r.into_inner();
        if s.code != 0 && !s.reason.to_lowercase().contains("not") {
            bail!("DropCollection {name}: {}", s.reason);
        }
        Ok(())
    }

    /// Creates a collection with `fields` in order (ids 100, 101, ...).
    pub async fn create_collection(
        &self,
        db: &str,
        name: &str,
        fields: &[Field],
        shards: i32,
        properties: &[(&str, &str)],
    ) -> Result<()> {
        let opts = CollOpts {
            shards,
            properties: properties
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        };
        self.create_collection_with(db, name, fields, &opts).await
    }

    /// Creates a collection with every option.
    pub async fn create_collection_with(
        &self,
        db: &str,
        name: &str,
        fields: &[Field],
        opts: &CollOpts,
    ) -> Result<()> {
        #[allow(deprecated)]
        let schema = ms::CollectionSchema {
            name: name.into(),
            description: format!("test collection {name}"),
            fields: fields
                .iter()
                .map(|f| ms::FieldSchema {
                    name: f.name.clone(),
                    description: f.description.clone(),
                    data_type: f.dtype,
                    is_primary_key: f.primary,
                    auto_id: f.auto_id,
                    type_params: f
                        .params
                        .iter()
                        .map(|(k, v)| KeyValuePair {
                            key: k.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                    element_type: f.element_type,
                    default_value: f.default.clone(),
                    is_partition_key: f.partition_key,
                    ..Default::default()
                })
                .collect(),
            enable_dynamic_field: opts.dynamic,
            ..Default::default()
        };
        let r = self
            .inner
            .clone()
            .create_collection(req(
                db,
                pb::CreateCollectionRequest {
                    db_name: db.into(),
                    collection_name: name.into(),
                    schema: schema.encode_to_vec(),
                    shards_num: opts.shards,
                    consistency_level: opts.consistency,
                    properties: opts
                        .properties
                        .iter()
                        .map(|(k, v)| KeyValuePair {
                            key: k.clone(),
                            value: v.clone(),
                        })
                        .collect(),
                    num_partitions: opts.num_partitions,
                    ..Default::default()
                },
            ))
            .await?;
        ok("CreateCollection", Some(r.get_ref()))
    }

    pub async fn create_partition(&self, db: &str, coll: &str, part: &str) -> Result<()> {
        let r = self
            .inner
            .clone()
            .create_partition(req(
                db,
                pb::CreatePartitionRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    partition_name: part.into(),
                    ..Default::default()
                },
            ))
            .await?;
        ok("CreatePartition", Some(r.get_ref()))
    }

    /// Inserts rows `start..start+n` of every non-auto field (full columns always).
    #[allow(clippy::too_many_arguments)]
    pub async fn insert(
        &self,
        db: &str,
        coll: &str,
        part: &str,
        fields: &[Field],
        start: i64,
        n: usize,
        seed: u64,
    ) -> Result<()> {
        let cols = fields
            .iter()
            .filter(|f| !f.auto_id)
            .map(|f| column(f, start, n, seed))
            .collect();
        self.insert_columns(db, coll, part, cols, n).await
    }

    /// Inserts prepared columns.
    pub async fn insert_columns(
        &self,
        db: &str,
        coll: &str,
        part: &str,
        cols: Vec<FieldData>,
        n: usize,
    ) -> Result<()> {
        let r = self
            .inner
            .clone()
            .insert(req(
                db,
                pb::InsertRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    partition_name: part.into(),
                    fields_data: cols,
                    num_rows: n as u32,
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        ok("Insert", r.status.as_ref())?;
        anyhow::ensure!(
            r.insert_cnt == n as i64,
            "Insert into {coll}: inserted {} of {n}",
            r.insert_cnt
        );
        Ok(())
    }

    /// Upserts rows `start..start+n` with values from `seed`.
    pub async fn upsert(
        &self,
        db: &str,
        coll: &str,
        fields: &[Field],
        start: i64,
        n: usize,
        seed: u64,
    ) -> Result<()> {
        let cols = fields.iter().map(|f| column(f, start, n, seed)).collect();
        let r = self
            .inner
            .clone()
            .upsert(req(
                db,
                pb::UpsertRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    fields_data: cols,
                    num_rows: n as u32,
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        ok("Upsert", r.status.as_ref())
    }

    pub async fn create_alias(&self, db: &str, coll: &str, alias: &str) -> Result<()> {
        let r = self
            .inner
            .clone()
            .create_alias(req(
                db,
                pb::CreateAliasRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    alias: alias.into(),
                    ..Default::default()
                },
            ))
            .await?;
        ok("CreateAlias", Some(r.get_ref()))
    }

    pub async fn aliases(&self, db: &str, coll: &str) -> Result<Vec<String>> {
        let r = self
            .inner
            .clone()
            .list_aliases(req(
                db,
                pb::ListAliasesRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    ..Default::default()
                },
            ))
            .await;
        // Milvus 2.2 has no ListAliases: its aliases are in DescribeCollection.
        let r = match r {
            Err(s) if s.code() == tonic::Code::Unimplemented => {
                let mut a = self.describe(db, coll).await?.aliases;
                a.sort();
                return Ok(a);
            }
            other => other?.into_inner(),
        };
        ok("ListAliases", r.status.as_ref())?;
        let mut a = r.aliases;
        a.sort();
        Ok(a)
    }

    pub async fn create_role(&self, role: &str) -> Result<()> {
        let r = self
            .inner
            .clone()
            .create_role(req(
                "",
                pb::CreateRoleRequest {
                    entity: Some(pb::RoleEntity {
                        name: role.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ))
            .await?;
        ok("CreateRole", Some(r.get_ref()))
    }

    pub async fn create_user(&self, user: &str, password: &str) -> Result<()> {
        use base64::Engine;
        let password = base64::engine::general_purpose::STANDARD.encode(password);
        let r = self
            .inner
            .clone()
            .create_credential(req(
                "",
                pb::CreateCredentialRequest {
                    username: user.into(),
                    password,
                    ..Default::default()
                },
            ))
            .await?;
        ok("CreateCredential", Some(r.get_ref()))
    }

    pub async fn add_user_to_role(&self, user: &str, role: &str) -> Result<()> {
        let r = self
            .inner
            .clone()
            .operate_user_role(req(
                "",
                pb::OperateUserRoleRequest {
                    username: user.into(),
                    role_name: role.into(),
                    r#type: 0,
                    ..Default::default()
                },
            ))
            .await?;
        ok("OperateUserRole", Some(r.get_ref()))
    }

    pub async fn grant(
        &self,
        role: &str,
        object: &str,
        name: &str,
        privilege: &str,
        db: &str,
    ) -> Result<()> {
        let entity = pb::GrantEntity {
            role: Some(pb::RoleEntity {
                name: role.into(),
                ..Default::default()
            }),
            object: Some(pb::ObjectEntity {
                name: object.into(),
            }),
            object_name: name.into(),
            grantor: Some(pb::GrantorEntity {
                user: None,
                privilege: Some(pb::PrivilegeEntity {
                    name: privilege.into(),
                }),
            }),
            db_name: db.into(),
        };
        let r = self
            .inner
            .clone()
            .operate_privilege(req(
                db,
                pb::OperatePrivilegeRequest {
                    entity: Some(entity),
                    r#type: 0,
                    ..Default::default()
                },
            ))
            .await?;
        ok("OperatePrivilege", Some(r.get_ref()))
    }

    /// A role's grants in `db` as sorted "object/name/privilege" lines.
    pub async fn grants(&self, role: &str, db: &str) -> Result<Vec<String>> {
        let entity = pb::GrantEntity {
            role: Some(pb::RoleEntity {
                name: role.into(),
                ..Default::default()
            }),
            db_name: db.into(),
            ..Default::default()
        };
        let r = self
            .inner
            .clone()
            .select_grant(req(
                db,
                pb::SelectGrantRequest {
                    entity: Some(entity),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        ok("SelectGrant", r.status.as_ref())?;
        let mut out: Vec<String> = r
            .entities
            .iter()
            .map(|g| {
                format!(
                    "{}/{}/{}",
                    g.object.as_ref().map(|o| o.name.as_str()).unwrap_or(""),
                    g.object_name,
                    g.grantor
                        .as_ref()
                        .and_then(|x| x.privilege.as_ref())
                        .map(|p| p.name.as_str())
                        .unwrap_or("")
                )
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// The roles of a user (empty when the user does not exist).
    pub async fn user_roles(&self, user: &str) -> Result<Option<Vec<String>>> {
        let users = self
            .inner
            .clone()
            .list_cred_users(req("", pb::ListCredUsersRequest::default()))
            .await?
            .into_inner();
        ok("ListCredUsers", users.status.as_ref())?;
        if !users.usernames.iter().any(|u| u == user) {
            return Ok(None);
        }
        let r = self
            .inner
            .clone()
            .select_user(req(
                "",
                pb::SelectUserRequest {
                    user: Some(pb::UserEntity { name: user.into() }),
                    include_role_info: true,
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        ok("SelectUser", r.status.as_ref())?;
        let mut roles: Vec<String> = r
            .results
            .iter()
            .flat_map(|u| u.roles.iter().map(|r| r.name.clone()))
            .collect();
        roles.sort();
        Ok(Some(roles))
    }

    pub async fn delete(&self, db: &str, coll: &str, expr: &str) -> Result<()> {
        let r = self
            .inner
            .clone()
            .delete(req(
                db,
                pb::DeleteRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    expr: expr.into(),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        ok("Delete", r.status.as_ref())
    }

    /// Seals and waits until the collection's data is on storage.
    pub async fn flush(&self, db: &str, coll: &str) -> Result<()> {
        let r = self
            .inner
            .clone()
            .flush(req(
                db,
                pb::FlushRequest {
                    db_name: db.into(),
                    collection_names: vec![coll.into()],
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        ok("Flush", r.status.as_ref())?;
        let segs = r
            .coll_seg_i_ds
            .get(coll)
            .map(|l| l.data.clone())
            .unwrap_or_default();
        let ts = r.coll_flush_ts.get(coll).copied().unwrap_or(0);
        for _ in 0..600 {
            let st = self
                .inner
                .clone()
                .get_flush_state(req(
                    db,
                    pb::GetFlushStateRequest {
                        segment_i_ds: segs.clone(),
                        flush_ts: ts,
                        db_name: db.into(),
                        collection_name: coll.into(),
                    },
                ))
                .await?
                .into_inner();
            ok("GetFlushState", st.status.as_ref())?;
            if st.flushed {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        bail!("flush of {coll} did not finish")
    }

    pub async fn create_index(
        &self,
        db: &str,
        coll: &str,
        field: &str,
        index_name: &str,
        params: &[(&str, &str)],
    ) -> Result<()> {
        let r = self
            .inner
            .clone()
            .create_index(req(
                db,
                pb::CreateIndexRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    field_name: field.into(),
                    index_name: index_name.into(),
                    extra_params: params
                        .iter()
                        .map(|(k, v)| KeyValuePair {
                            key: (*k).into(),
                            value: (*v).into(),
                        })
                        .collect(),
                    ..Default::default()
                },
            ))
            .await?;
        ok("CreateIndex", Some(r.get_ref()))
    }

    pub async fn load(&self, db: &str, coll: &str) -> Result<()> {
        let r = self
            .inner
            .clone()
            .load_collection(req(
                db,
                pb::LoadCollectionRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    ..Default::default()
                },
            ))
            .await?;
        ok("LoadCollection", Some(r.get_ref()))?;
        self.wait_loaded(db, coll).await
    }

    pub async fn release(&self, db: &str, coll: &str) -> Result<()> {
        let r = self
            .inner
            .clone()
            .release_collection(req(
                db,
                pb::ReleaseCollectionRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    ..Default::default()
                },
            ))
            .await?;
        ok("ReleaseCollection", Some(r.get_ref()))
    }

    pub async fn load_state(&self, db: &str, coll: &str) -> Result<i32> {
        let st = self
            .inner
            .clone()
            .get_load_state(req(
                db,
                pb::GetLoadStateRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        ok("GetLoadState", st.status.as_ref())?;
        Ok(st.state)
    }

    pub async fn wait_loaded(&self, db: &str, coll: &str) -> Result<()> {
        for _ in 0..600 {
            if self.load_state(db, coll).await? == LoadState::Loaded as i32 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        bail!("{coll} did not load")
    }

    pub async fn describe(&self, db: &str, coll: &str) -> Result<pb::DescribeCollectionResponse> {
        let d = self
            .inner
            .clone()
            .describe_collection(req(
                db,
                pb::DescribeCollectionRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        ok("DescribeCollection", d.status.as_ref())?;
        Ok(d)
    }

    pub async fn has_collection(&self, db: &str, coll: &str) -> Result<bool> {
        let r = self
            .inner
            .clone()
            .has_collection(req(
                db,
                pb::HasCollectionRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        ok("HasCollection", r.status.as_ref())?;
        Ok(r.value)
    }

    pub async fn partitions(&self, db: &str, coll: &str) -> Result<Vec<String>> {
        let r = self
            .inner
            .clone()
            .show_partitions(req(
                db,
                pb::ShowPartitionsRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        ok("ShowPartitions", r.status.as_ref())?;
        let mut p = r.partition_names;
        p.sort();
        Ok(p)
    }

    /// Index definitions as sorted "field/name: k=v ..." lines.
    pub async fn indexes(&self, db: &str, coll: &str) -> Result<Vec<String>> {
        let r = self
            .inner
            .clone()
            .describe_index(req(
                db,
                pb::DescribeIndexRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        let no_index = |s: &Status| {
            s.error_code == 25 || s.reason.contains("not exist") || s.reason.contains("not found")
        };
        if r.status.as_ref().is_some_and(no_index) {
            return Ok(vec![]);
        }
        ok("DescribeIndex", r.status.as_ref())?;
        let mut out: Vec<String> = r
            .index_descriptions
            .iter()
            .map(|i| {
                let mut p: Vec<String> = i
                    .params
                    .iter()
                    .map(|kv| format!("{}={}", kv.key, kv.value))
                    .collect();
                p.sort();
                format!("{}/{}: {}", i.field_name, i.index_name, p.join(" "))
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Every row (at most 16,384) as canonical JSON objects keyed by field name
    /// (see [`canonical_rows`]), sorted by primary key, with `$meta` for dynamic
    /// collections. The collection must be loaded.
    pub async fn rows_json(&self, db: &str, coll: &str) -> Result<Vec<serde_json::Value>> {
        let d = self.describe(db, coll).await?;
        let schema = d.schema.unwrap_or_default();
        let pk = schema
            .fields
            .iter()
            .find(|f| f.is_primary_key)
            .context("no primary key")?;
        let expr = if pk.data_type == dt::VARCHAR {
            format!("{} != \"\"", pk.name)
        } else {
            format!("{} >= -9223372036854775807", pk.name)
        };
        let mut outputs: Vec<String> = schema
            .fields
            .iter()
            .filter(|f| !f.is_dynamic)
            .map(|f| f.name.clone())
            .collect();
        if schema.enable_dynamic_field {
            outputs.push("$meta".into());
        }
        let r = self
            .inner
            .clone()
            .query(req(
                db,
                pb::QueryRequest {
                    db_name: db.into(),
                    collection_name: coll.into(),
                    expr,
                    output_fields: outputs,
                    query_params: vec![KeyValuePair {
                        key: "limit".into(),
                        value: "16384".into(),
                    }],
                    consistency_level: 0,
                    ..Default::default()
                },
            ))
            .await?
            .into_inner();
        ok("Query", r.status.as_ref())?;
        let mut rows = canonical_rows(&r.fields_data);
        let key = pk.name.clone();
        rows.sort_by(|a, b| {
            let (x, y) = (&a[&key], &b[&key]);
            match (x.as_i64(), y.as_i64()) {
                (Some(i), Some(j)) => i.cmp(&j),
                _ => x.as_str().cmp(&y.as_str()),
            }
        });
        Ok(rows)
    }

    /// Every row of every partition: "partition|pk" -> canonical row text.
    pub async fn dump(&self, db: &str, coll: &str) -> Result<BTreeMap<String, String>> {
        let d = self.describe(db, coll).await?;
        let schema = d.schema.unwrap_or_default();
        let pk = schema
            .fields
            .iter()
            .find(|f| f.is_primary_key)
            .context("no primary key")?;
        let expr = if pk.data_type == dt::VARCHAR {
            format!("{} != \"\"", pk.name)
        } else {
            format!("{} >= -9223372036854775807", pk.name)
        };
        let mut outputs: Vec<String> = schema
            .fields
            .iter()
            .filter(|f| !f.is_dynamic)
            .map(|f| f.name.clone())
            .collect();
        // The dynamic field's values are compared too: `$meta` holds each row's extra
        // keys (as JSON), whether or not the schema lists the field.
        if schema.enable_dynamic_field {
            outputs.push("$meta".into());
        }
        let mut rows = BTreeMap::new();
        // Partition-key collections refuse queries naming partitions: read them whole.
        let parts = if schema.fields.iter().any(|f| f.is_partition_key) {
            vec![String::new()]
        } else {
            self.partitions(db, coll).await?
        };
        for part in parts {
            let r = self
                .inner
                .clone()
                .query(req(
                    db,
                    pb::QueryRequest {
                        db_name: db.into(),
                        collection_name: coll.into(),
                        expr: expr.clone(),
                        output_fields: outputs.clone(),
                        partition_names: if part.is_empty() {
                            vec![]
                        } else {
                            vec![part.clone()]
                        },
                        query_params: vec![KeyValuePair {
                            key: "limit".into(),
                            value: "16384".into(),
                        }],
                        consistency_level: 0,
                        ..Default::default()
                    },
                ))
                .await?
                .into_inner();
            ok("Query", r.status.as_ref())?;
            let cols: Vec<(String, Vec<String>)> = r
                .fields_data
                .iter()
                .map(|f| (f.field_name.clone(), render(f)))
                .collect();
            let n = cols.first().map(|c| c.1.len()).unwrap_or(0);
            let pk_col = cols
                .iter()
                .find(|c| c.0 == pk.name)
                .context("pk not returned")?;
            for i in 0..n {
                let mut sorted: Vec<&(String, Vec<String>)> = cols.iter().collect();
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
                let row: Vec<String> = sorted
                    .iter()
                    .map(|(name, vals)| {
                        format!("{name}={}", vals.get(i).cloned().unwrap_or_default())
                    })
                    .collect();
                rows.insert(format!("{part}|{}", pk_col.1[i]), row.join(";"));
            }
        }
        Ok(rows)
    }
}

/// One column as canonical per-row strings (floats by their bits, exactly as stored).
pub fn render(f: &FieldData) -> Vec<String> {
    use scalar_field::Data as S;
    match &f.field {
        Some(field_data::Field::Scalars(s)) => match &s.data {
            Some(S::BoolData(a)) => a.data.iter().map(|v| v.to_string()).collect(),
            Some(S::IntData(a)) => a.data.iter().map(|v| v.to_string()).collect(),
            Some(S::LongData(a)) => a.data.iter().map(|v| v.to_string()).collect(),
            Some(S::FloatData(a)) => a
                .data
                .iter()
                .map(|v| format!("{:08x}", v.to_bits()))
                .collect(),
            Some(S::DoubleData(a)) => a
                .data
                .iter()
                .map(|v| format!("{:016x}", v.to_bits()))
                .collect(),
            Some(S::StringData(a)) => a.data.iter().map(|v| format!("{v:?}")).collect(),
            Some(S::JsonData(a)) => a
                .data
                .iter()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect(),
            Some(S::ArrayData(a)) => a.data.iter().map(|v| format!("{v:?}")).collect(),
            other => vec![format!("{other:?}")],
        },
        Some(field_data::Field::Vectors(v)) => {
            let dim = v.dim.max(1) as usize;
            match &v.data {
                Some(vector_field::Data::FloatVector(a)) => a
                    .data
                    .chunks(dim)
                    .map(|c| {
                        c.iter()
                            .map(|x| format!("{:08x}", x.to_bits()))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .collect(),
                Some(vector_field::Data::BinaryVector(b)) => {
                    b.chunks(dim / 8).map(hex::encode).collect()
                }
                other => vec![format!("{other:?}")],
            }
        }
        _ => vec![],
    }
}

fn f32_text(v: f32) -> serde_json::Value {
    serde_json::Value::String(format!("f:{:08x}", v.to_bits()))
}

fn f64_text(v: f64) -> serde_json::Value {
    serde_json::Value::String(format!("d:{:016x}", v.to_bits()))
}

/// One scalar column (or one ARRAY row's elements) as canonical JSON values.
fn canonical_scalars(data: Option<&scalar_field::Data>) -> Vec<serde_json::Value> {
    use scalar_field::Data as S;
    use serde_json::Value as V;
    match data {
        Some(S::BoolData(a)) => a.data.iter().map(|v| V::Bool(*v)).collect(),
        Some(S::IntData(a)) => a.data.iter().map(|v| V::from(*v)).collect(),
        Some(S::LongData(a)) => a.data.iter().map(|v| V::from(*v)).collect(),
        Some(S::FloatData(a)) => a.data.iter().map(|v| f32_text(*v)).collect(),
        Some(S::DoubleData(a)) => a.data.iter().map(|v| f64_text(*v)).collect(),
        Some(S::StringData(a)) => a.data.iter().map(|v| V::String(v.clone())).collect(),
        Some(S::JsonData(a)) => a
            .data
            .iter()
            .map(|v| serde_json::from_slice(v).unwrap_or(V::Null))
            .collect(),
        Some(S::ArrayData(a)) => a
            .data
            .iter()
            .map(|row| V::Array(canonical_scalars(row.data.as_ref())))
            .collect(),
        _ => Vec::new(),
    }
}

/// Query columns as rows of canonical JSON: floats as their bits ("f:"/"d:" + hex),
/// float vectors element-wise, binary vectors as hex, JSON parsed. The Parquet export
/// test renders pyarrow's values the same way (`tests/py/parquet_rows.py`).
pub fn canonical_rows(cols: &[FieldData]) -> Vec<serde_json::Value> {
    let mut columns: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
    for f in cols {
        let values = match &f.field {
            Some(field_data::Field::Scalars(s)) => canonical_scalars(s.data.as_ref()),
            Some(field_data::Field::Vectors(v)) => {
                let dim = usize::try_from(v.dim.max(1)).unwrap_or(1);
                match &v.data {
                    Some(vector_field::Data::FloatVector(a)) => a
                        .data
                        .chunks(dim)
                        .map(|c| serde_json::Value::Array(c.iter().map(|x| f32_text(*x)).collect()))
                        .collect(),
                    Some(vector_field::Data::BinaryVector(b)) => b
                        .chunks(dim / 8)
                        .map(|c| serde_json::Value::String(hex::encode(c)))
                        .collect(),
                    _ => Vec::new(),
                }
            }
            _ => Vec::new(),
        };
        columns.push((f.field_name.clone(), values));
    }
    let n = columns.iter().map(|c| c.1.len()).max().unwrap_or(0);
    (0..n)
        .map(|i| {
            let mut row = serde_json::Map::new();
            for (name, values) in &columns {
                row.insert(
                    name.clone(),
                    values.get(i).cloned().unwrap_or(serde_json::Value::Null),
                );
            }
            serde_json::Value::Object(row)
        })
        .collect()
}
