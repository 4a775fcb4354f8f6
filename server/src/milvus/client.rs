//! A thin client over `MilvusService` that adds what every call needs: credentials,
//! the `dbname` header, the two-field success test (`code == 0 && error_code == 0`;
//! 2.2 fills only `error_code`), and errors that name the address and the operation.

use std::time::Duration;

use base64::Engine;
use milvault_proto::milvus::common::{self, ClientInfo, Status};
use milvault_proto::milvus::milvus as pb;
use milvault_proto::milvus::milvus::milvus_service_client::MilvusServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use super::features::{Features, Version};
use crate::config::ClusterConfig;
use crate::error::{Error, Result};

/// Largest message we accept from Milvus (describe/list answers can be large).
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Responses that carry a `common.Status`.
pub trait HasStatus {
    /// The status, when present.
    fn status(&self) -> Option<&Status>;
}

impl HasStatus for Status {
    fn status(&self) -> Option<&Status> {
        Some(self)
    }
}

macro_rules! has_status {
    ($($t:ty),* $(,)?) => {$(
        impl HasStatus for $t {
            fn status(&self) -> Option<&Status> { self.status.as_ref() }
        }
    )*};
}

has_status!(
    pb::ConnectResponse,
    pb::GetVersionResponse,
    pb::ListDatabasesResponse,
    pb::ShowCollectionsResponse,
    pb::DescribeCollectionResponse,
    pb::ShowPartitionsResponse,
    pb::DescribeIndexResponse,
    pb::ListAliasesResponse,
    pb::GetLoadStateResponse,
    pb::FlushResponse,
    pb::GetFlushStateResponse,
    pb::GetPersistentSegmentInfoResponse,
    pb::BoolResponse,
    pb::ImportResponse,
    pb::GetImportStateResponse,
    pb::MutationResult,
    pb::QueryResults,
    pb::GetLoadingProgressResponse,
    pb::SelectRoleResponse,
    pb::SelectUserResponse,
    pb::SelectGrantResponse,
    pb::ListCredUsersResponse,
    pb::AllocTimestampResponse,
    pb::DescribeAliasResponse,
);

/// Whether a Milvus status means success.
pub fn status_ok(status: Option<&Status>) -> bool {
    status.is_none_or(|s| s.code == 0 && s.error_code == 0)
}

/// A connected client for one cluster.
#[derive(Clone)]
pub struct MilvusClient {
    cluster: String,
    address: String,
    auth: Option<MetadataValue<tonic::metadata::Ascii>>,
    inner: MilvusServiceClient<Channel>,
    features: Features,
    version_text: String,
}

impl std::fmt::Debug for MilvusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MilvusClient")
            .field("cluster", &self.cluster)
            .field("address", &self.address)
            .field("version", &self.version_text)
            .finish_non_exhaustive()
    }
}

impl MilvusClient {
    /// Connects and detects the server version (`Connect`, falling back to
    /// `GetVersion` on servers older than 2.2.9).
    pub async fn connect(cluster: &str, config: &ClusterConfig) -> Result<Self> {
        let address = config.address.clone();
        let unavailable = |detail: String| Error::MilvusUnavailable {
            address: address.clone(),
            detail,
        };
        let endpoint = Endpoint::from_shared(address.clone())
            .map_err(|e| Error::invalid("cluster address", format!("{address:?}: {e}")))?
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            .tcp_keepalive(Some(Duration::from_secs(30)));
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| unavailable(error_chain(&e)))?;
        let auth = match (&config.username, &config.password) {
            (Some(u), p) => {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{u}:{}", p.as_deref().unwrap_or("")));
                Some(
                    MetadataValue::try_from(token)
                        .map_err(|e| Error::invalid("cluster credentials", e.to_string()))?,
                )
            }
            _ => None,
        };
        let inner = MilvusServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut client = Self {
            cluster: cluster.to_owned(),
            address,
            auth,
            inner,
            features: Features::new(Version::default()),
            version_text: String::new(),
        };
        client.detect_version().await?;
        Ok(client)
    }

    async fn detect_version(&mut self) -> Result<()> {
        let req = pb::ConnectRequest {
            client_info: Some(ClientInfo {
                sdk_type: "milvault".into(),
                sdk_version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut inner = self.inner.clone();
        let version = match inner.connect(self.request("", req)).await {
            Ok(resp) => {
                let resp = resp.into_inner();
                if status_ok(resp.status.as_ref()) {
                    resp.server_info.map(|s| s.build_tags).unwrap_or_default()
                } else {
                    String::new()
                }
            }
            Err(s) if s.code() == tonic::Code::Unimplemented => String::new(),
            Err(s) => return Err(self.rpc_error("Connect", s)),
        };
        let version = if Version::parse(&version).is_some() {
            version
        } else {
            let resp = self
                .call("GetVersion", "", pb::GetVersionRequest {}, |c, r| {
                    Box::pin(c.get_version(r))
                })
                .await?;
            resp.version
        };
        let parsed = Version::parse(&version).unwrap_or_default();
        tracing::info!(cluster = %self.cluster, version = %version, "connected to Milvus");
        self.features = Features::new(parsed);
        self.version_text = version;
        Ok(())
    }

    /// The cluster's configured name.
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The gRPC address.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The version string the server reported.
    pub fn version_text(&self) -> &str {
        &self.version_text
    }

    /// Feature gates of this server.
    pub fn features(&self) -> Features {
        self.features
    }

    /// Wraps a message with the auth and database headers.
    pub fn request<T>(&self, db: &str, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(Duration::from_secs(120));
        if let Some(a) = &self.auth {
            req.metadata_mut().insert("authorization", a.clone());
        }
        if let Some(v) = (!db.is_empty())
            .then(|| MetadataValue::try_from(db).ok())
            .flatten()
        {
            req.metadata_mut().insert("dbname", v);
        }
        req
    }

    fn rpc_error(&self, op: &str, s: tonic::Status) -> Error {
        match s.code() {
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown
                if s.message().contains("transport") || s.code() != tonic::Code::Unknown =>
            {
                Error::MilvusUnavailable {
                    address: self.address.clone(),
                    detail: format!("{op}: {}", s.message()),
                }
            }
            _ => Error::Milvus {
                operation: op.to_owned(),
                message: format!("{} ({:?})", s.message(), s.code()),
            },
        }
    }

    /// Calls one RPC and checks both the transport and Milvus's own status.
    pub async fn call<Req, Resp, F>(&self, op: &str, db: &str, msg: Req, f: F) -> Result<Resp>
    where
        Resp: HasStatus,
        F: for<'a> FnOnce(
            &'a mut MilvusServiceClient<Channel>,
            tonic::Request<Req>,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<
                        Output = std::result::Result<tonic::Response<Resp>, tonic::Status>,
                    > + Send
                    + 'a,
            >,
        >,
    {
        let mut inner = self.inner.clone();
        let resp = f(&mut inner, self.request(db, msg))
            .await
            .map_err(|s| self.rpc_error(op, s))?
            .into_inner();
        check(op, resp.status())?;
        Ok(resp)
    }

    // ---- metadata reads -------------------------------------------------------

    /// Database names (just `default` on servers without databases).
    pub async fn list_databases(&self) -> Result<Vec<String>> {
        if !self.features.supports_databases() {
            return Ok(vec![crate::selection::DEFAULT_DB.to_owned()]);
        }
        let r = self
            .call(
                "ListDatabases",
                "",
                pb::ListDatabasesRequest::default(),
                |c, r| Box::pin(c.list_databases(r)),
            )
            .await?;
        Ok(r.db_names)
    }

    /// Collection names of one database.
    pub async fn show_collections(&self, db: &str) -> Result<Vec<String>> {
        let req = pb::ShowCollectionsRequest {
            db_name: db.to_owned(),
            ..Default::default()
        };
        let r = self
            .call("ShowCollections", db, req, |c, r| {
                Box::pin(c.show_collections(r))
            })
            .await?;
        Ok(r.collection_names)
    }

    /// Whether a collection exists.
    pub async fn has_collection(&self, db: &str, name: &str) -> Result<bool> {
        let req = pb::HasCollectionRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        Ok(self
            .call("HasCollection", db, req, |c, r| {
                Box::pin(c.has_collection(r))
            })
            .await?
            .value)
    }

    /// Full description of a collection.
    pub async fn describe_collection(
        &self,
        db: &str,
        name: &str,
    ) -> Result<pb::DescribeCollectionResponse> {
        let req = pb::DescribeCollectionRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        self.call("DescribeCollection", db, req, |c, r| {
            Box::pin(c.describe_collection(r))
        })
        .await
    }

    /// Partition names and ids.
    pub async fn show_partitions(&self, db: &str, name: &str) -> Result<Vec<(String, i64)>> {
        let req = pb::ShowPartitionsRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let r = self
            .call("ShowPartitions", db, req, |c, r| {
                Box::pin(c.show_partitions(r))
            })
            .await?;
        Ok(r.partition_names
            .into_iter()
            .zip(r.partition_i_ds)
            .collect())
    }

    /// Index definitions; an "index not exist" answer means none.
    pub async fn describe_indexes(
        &self,
        db: &str,
        name: &str,
    ) -> Result<Vec<pb::IndexDescription>> {
        let req = pb::DescribeIndexRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let mut inner = self.inner.clone();
        let resp = inner
            .describe_index(self.request(db, req))
            .await
            .map_err(|s| self.rpc_error("DescribeIndex", s))?;
        let resp = resp.into_inner();
        if let Some(s) = &resp.status {
            // 25 = IndexNotExist on 2.2; newer servers say so in the reason.
            if s.error_code == common::ErrorCode::IndexNotExist as i32
                || s.reason.to_lowercase().contains("index not exist")
                || s.reason.to_lowercase().contains("index not found")
            {
                return Ok(Vec::new());
            }
        }
        check("DescribeIndex", resp.status.as_ref())?;
        Ok(resp.index_descriptions)
    }

    /// Aliases of a collection.
    pub async fn list_aliases(&self, db: &str, name: &str) -> Result<Vec<String>> {
        if !self.features.supports_list_aliases() {
            return Ok(self.describe_collection(db, name).await?.aliases);
        }
        let req = pb::ListAliasesRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        Ok(self
            .call("ListAliases", db, req, |c, r| Box::pin(c.list_aliases(r)))
            .await?
            .aliases)
    }

    /// Whether the collection is loaded.
    pub async fn is_loaded(&self, db: &str, name: &str) -> Result<bool> {
        let req = pb::GetLoadStateRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let r = self
            .call("GetLoadState", db, req, |c, r| {
                Box::pin(c.get_load_state(r))
            })
            .await?;
        Ok(r.state == common::LoadState::Loaded as i32
            || r.state == common::LoadState::Loading as i32)
    }

    /// Segments that hold data on storage, as Milvus knows them now.
    pub async fn persistent_segments(
        &self,
        db: &str,
        name: &str,
    ) -> Result<Vec<pb::PersistentSegmentInfo>> {
        let req = pb::GetPersistentSegmentInfoRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        let mut last = None;
        // "segment not found" is transient while compaction or stats tasks run.
        for attempt in 0..10u64 {
            match self
                .call("GetPersistentSegmentInfo", db, req.clone(), |c, r| {
                    Box::pin(c.get_persistent_segment_info(r))
                })
                .await
            {
                Ok(r) => return Ok(r.infos),
                Err(Error::Milvus { message, operation }) if message.contains("not found") => {
                    last = Some(Error::Milvus { message, operation });
                    tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Internal("segment listing retries exhausted".into())))
    }

    /// Seals the collection's growing segments and waits until they are on storage.
    pub async fn flush_and_wait(&self, db: &str, name: &str, timeout: Duration) -> Result<u64> {
        let req = pb::FlushRequest {
            db_name: db.to_owned(),
            collection_names: vec![name.to_owned()],
            ..Default::default()
        };
        let r = self
            .call("Flush", db, req, |c, r| Box::pin(c.flush(r)))
            .await?;
        let segs = r
            .coll_seg_i_ds
            .get(name)
            .map(|l| l.data.clone())
            .unwrap_or_default();
        let flush_ts = r.coll_flush_ts.get(name).copied().unwrap_or(0);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let req = pb::GetFlushStateRequest {
                segment_i_ds: segs.clone(),
                flush_ts,
                db_name: db.to_owned(),
                collection_name: name.to_owned(),
            };
            let st = self
                .call("GetFlushState", db, req, |c, r| {
                    Box::pin(c.get_flush_state(r))
                })
                .await?;
            if st.flushed {
                return Ok(flush_ts);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Milvus {
                    operation: "Flush".into(),
                    message: format!(
                        "collection {db}.{name} not flushed after {}s",
                        timeout.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    // ---- metadata writes ------------------------------------------------------

    /// Creates a database.
    pub async fn create_database(&self, db: &str) -> Result<()> {
        let req = pb::CreateDatabaseRequest {
            db_name: db.to_owned(),
            ..Default::default()
        };
        self.call("CreateDatabase", "", req, |c, r| {
            Box::pin(c.create_database(r))
        })
        .await
        .map(|_| ())
    }

    /// Creates a collection from a serialized `CollectionSchema`.
    pub async fn create_collection(&self, req: pb::CreateCollectionRequest) -> Result<()> {
        let db = req.db_name.clone();
        self.call("CreateCollection", &db, req, |c, r| {
            Box::pin(c.create_collection(r))
        })
        .await
        .map(|_| ())
    }

    /// Drops a collection.
    pub async fn drop_collection(&self, db: &str, name: &str) -> Result<()> {
        let req = pb::DropCollectionRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            ..Default::default()
        };
        self.call("DropCollection", db, req, |c, r| {
            Box::pin(c.drop_collection(r))
        })
        .await
        .map(|_| ())
    }

    /// Creates a partition.
    pub async fn create_partition(&self, db: &str, coll: &str, partition: &str) -> Result<()> {
        let req = pb::CreatePartitionRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            partition_name: partition.to_owned(),
            ..Default::default()
        };
        self.call("CreatePartition", db, req, |c, r| {
            Box::pin(c.create_partition(r))
        })
        .await
        .map(|_| ())
    }

    /// Creates an index.
    pub async fn create_index(&self, req: pb::CreateIndexRequest) -> Result<()> {
        let db = req.db_name.clone();
        self.call("CreateIndex", &db, req, |c, r| Box::pin(c.create_index(r)))
            .await
            .map(|_| ())
    }

    /// Creates an alias.
    pub async fn create_alias(&self, db: &str, coll: &str, alias: &str) -> Result<()> {
        let req = pb::CreateAliasRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            alias: alias.to_owned(),
            ..Default::default()
        };
        self.call("CreateAlias", db, req, |c, r| Box::pin(c.create_alias(r)))
            .await
            .map(|_| ())
    }

    /// The collection an alias points at, if the alias exists (2.3+).
    pub async fn describe_alias(&self, db: &str, alias: &str) -> Result<Option<String>> {
        let req = pb::DescribeAliasRequest {
            db_name: db.to_owned(),
            alias: alias.to_owned(),
            ..Default::default()
        };
        match self
            .call("DescribeAlias", db, req, |c, r| {
                Box::pin(c.describe_alias(r))
            })
            .await
        {
            Ok(r) => Ok(Some(r.collection)),
            Err(Error::Milvus { message, .. }) if message.to_lowercase().contains("not") => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Drops an alias.
    pub async fn drop_alias(&self, db: &str, alias: &str) -> Result<()> {
        let req = pb::DropAliasRequest {
            db_name: db.to_owned(),
            alias: alias.to_owned(),
            ..Default::default()
        };
        self.call("DropAlias", db, req, |c, r| Box::pin(c.drop_alias(r)))
            .await
            .map(|_| ())
    }

    /// Loads a collection (returns once Milvus accepted the request).
    pub async fn load_collection(&self, db: &str, coll: &str) -> Result<()> {
        let req = pb::LoadCollectionRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            ..Default::default()
        };
        self.call("LoadCollection", db, req, |c, r| {
            Box::pin(c.load_collection(r))
        })
        .await
        .map(|_| ())
    }

    /// Runs a query (Strong consistency) and returns the columns.
    pub async fn query(
        &self,
        req: pb::QueryRequest,
    ) -> Result<Vec<milvault_proto::milvus::schema::FieldData>> {
        let db = req.db_name.clone();
        Ok(self
            .call("Query", &db, req, |c, r| Box::pin(c.query(r)))
            .await?
            .fields_data)
    }

    /// Inserts full columns; returns how many rows Milvus took.
    pub async fn insert(&self, req: pb::InsertRequest) -> Result<i64> {
        let db = req.db_name.clone();
        Ok(self
            .call("Insert", &db, req, |c, r| Box::pin(c.insert(r)))
            .await?
            .insert_cnt)
    }

    /// Releases a collection from memory.
    pub async fn release_collection(&self, db: &str, coll: &str) -> Result<()> {
        let req = pb::ReleaseCollectionRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            ..Default::default()
        };
        self.call("ReleaseCollection", db, req, |c, r| {
            Box::pin(c.release_collection(r))
        })
        .await
        .map(|_| ())
    }

    /// Waits until a collection is loaded.
    pub async fn wait_loaded(&self, db: &str, coll: &str, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let req = pb::GetLoadStateRequest {
                db_name: db.to_owned(),
                collection_name: coll.to_owned(),
                ..Default::default()
            };
            let r = self
                .call("GetLoadState", db, req, |c, r| {
                    Box::pin(c.get_load_state(r))
                })
                .await?;
            if r.state == common::LoadState::Loaded as i32 {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Milvus {
                    operation: "LoadCollection".into(),
                    message: format!("{db}.{coll} not loaded after {}s", timeout.as_secs()),
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Starts a binlog import; returns the task ids.
    pub async fn import(&self, req: pb::ImportRequest) -> Result<Vec<i64>> {
        let db = req.db_name.clone();
        Ok(self
            .call("Import", &db, req, |c, r| Box::pin(c.import(r)))
            .await?
            .tasks)
    }

    /// State of one import task.
    pub async fn import_state(&self, task: i64) -> Result<pb::GetImportStateResponse> {
        let req = pb::GetImportStateRequest { task };
        self.call("GetImportState", "", req, |c, r| {
            Box::pin(c.get_import_state(r))
        })
        .await
    }
}

/// Turns a Milvus status into an error naming the operation.
pub fn check(op: &str, status: Option<&Status>) -> Result<()> {
    if status_ok(status) {
        return Ok(());
    }
    let s = status.cloned().unwrap_or_default();
    Err(Error::Milvus {
        operation: op.to_owned(),
        message: format!(
            "{} (code {}, error_code {})",
            s.reason, s.code, s.error_code
        ),
    })
}

/// The whole source chain of an error, for messages about unreachable servers.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
