//! An in-process stand-in for the Milvus versions that cannot run here (2.2 before
//! `Connect`, 2.4, 2.6): a `MilvusService` that answers from a small in-memory model
//! and records every request, plus a management HTTP endpoint that records GC pause
//! and resume calls. Tests assert on what Milvault sent, per version.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use milvault_proto::milvus::common::{self, KeyValuePair, ServerInfo, Status};
use milvault_proto::milvus::milvus::milvus_service_server::{MilvusService, MilvusServiceServer};
use milvault_proto::milvus::milvus::{self as pb};
use milvault_proto::milvus::schema as ms;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status as GrpcStatus};

/// What the fake was sent, in order.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    /// RPC names.
    pub calls: Vec<String>,
    /// Every ImportRequest.
    pub imports: Vec<pb::ImportRequest>,
    /// Every CreateCollectionRequest.
    pub creates: Vec<pb::CreateCollectionRequest>,
    /// Management HTTP request lines (path and query).
    pub http: Vec<String>,
}

#[derive(Default)]
struct Model {
    collections: BTreeMap<String, (i64, ms::CollectionSchema)>,
    next_id: i64,
    segment_level: i32,
    rec: Recorded,
}

/// The fake server's handle.
#[derive(Clone)]
pub struct FakeMilvus {
    version: String,
    /// Whether `Connect` exists (2.2.9+).
    has_connect: bool,
    model: Arc<Mutex<Model>>,
}

fn ok() -> Option<Status> {
    Some(Status::default())
}

impl FakeMilvus {
    /// A fake reporting `version`.
    pub fn new(version: &str) -> Self {
        let has_connect = version != "v2.2.8";
        Self {
            version: version.into(),
            has_connect,
            model: Arc::new(Mutex::new(Model {
                next_id: 1000,
                ..Default::default()
            })),
        }
    }

    /// Adds a source collection with fields `pk` (id 100) and `v` (id 101).
    pub fn add_collection(&self, name: &str, partition_key: bool) -> i64 {
        #[allow(deprecated)]
        let schema = ms::CollectionSchema {
            name: name.into(),
            fields: vec![
                ms::FieldSchema {
                    field_id: 100,
                    name: "pk".into(),
                    is_primary_key: true,
                    data_type: 5,
                    ..Default::default()
                },
                ms::FieldSchema {
                    field_id: 101,
                    name: "k".into(),
                    data_type: 5,
                    is_partition_key: partition_key,
                    ..Default::default()
                },
                ms::FieldSchema {
                    field_id: 102,
                    name: "v".into(),
                    data_type: 101,
                    type_params: vec![KeyValuePair {
                        key: "dim".into(),
                        value: "4".into(),
                    }],
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let mut m = self.lock();
        m.next_id += 1;
        let id = m.next_id;
        m.collections.insert(name.into(), (id, schema));
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Model> {
        self.model.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record(&self, call: &str) {
        self.lock().rec.calls.push(call.into());
    }

    /// Makes the listed segment an L0 (delete-only, 2.4+) segment.
    pub fn set_segment_level(&self, level: i32) {
        self.lock().segment_level = level;
    }

    /// A copy of what was recorded.
    pub fn recorded(&self) -> Recorded {
        self.lock().rec.clone()
    }

    /// Serves gRPC on a free port; returns `http://addr`.
    pub async fn serve(&self) -> anyhow::Result<String> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let svc = MilvusServiceServer::new(self.clone());
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
                .await;
        });
        Ok(format!("http://{addr}"))
    }

    /// Serves the management HTTP API on a free port; returns `http://addr`.
    /// `pause` answers with a ticket on 2.6.8+.
    pub async fn serve_management(&self) -> anyhow::Result<String> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let this = self.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let line = text
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .split(' ')
                    .nth(1)
                    .unwrap_or_default()
                    .to_owned();
                this.lock().rec.http.push(line.clone());
                let ticketed = version_at_least(&this.version, (2, 6, 8));
                let body = if line.contains("/pause") && ticketed {
                    r#"{"msg":"OK","ticket":"t-123"}"#
                } else {
                    r#"{"msg":"OK"}"#
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            }
        });
        Ok(format!("http://{addr}"))
    }
}

type R<T> = Result<Response<T>, GrpcStatus>;

#[tonic::async_trait]
impl MilvusService for FakeMilvus {
    async fn connect(&self, _r: Request<pb::ConnectRequest>) -> R<pb::ConnectResponse> {
        self.record("Connect");
        if !self.has_connect {
            return Err(GrpcStatus::unimplemented("unknown method Connect"));
        }
        Ok(Response::new(pb::ConnectResponse {
            status: ok(),
            server_info: Some(ServerInfo {
                build_tags: self.version.clone(),
                ..Default::default()
            }),
            identifier: 1,
        }))
    }

    async fn get_version(&self, _r: Request<pb::GetVersionRequest>) -> R<pb::GetVersionResponse> {
        self.record("GetVersion");
        Ok(Response::new(pb::GetVersionResponse {
            status: ok(),
            version: self.version.clone(),
        }))
    }

    async fn list_databases(
        &self,
        _r: Request<pb::ListDatabasesRequest>,
    ) -> R<pb::ListDatabasesResponse> {
        self.record("ListDatabases");
        Ok(Response::new(pb::ListDatabasesResponse {
            status: ok(),
            db_names: vec!["default".into()],
            ..Default::default()
        }))
    }

    async fn show_collections(
        &self,
        _r: Request<pb::ShowCollectionsRequest>,
    ) -> R<pb::ShowCollectionsResponse> {
        self.record("ShowCollections");
        let names = self.lock().collections.keys().cloned().collect();
        Ok(Response::new(pb::ShowCollectionsResponse {
            status: ok(),
            collection_names: names,
            ..Default::default()
        }))
    }

    async fn has_collection(&self, r: Request<pb::HasCollectionRequest>) -> R<pb::BoolResponse> {
        self.record("HasCollection");
        let value = self
            .lock()
            .collections
            .contains_key(&r.into_inner().collection_name);
        Ok(Response::new(pb::BoolResponse {
            status: ok(),
            value,
        }))
    }

    async fn describe_collection(
        &self,
        r: Request<pb::DescribeCollectionRequest>,
    ) -> R<pb::DescribeCollectionResponse> {
        self.record("DescribeCollection");
        let name = r.into_inner().collection_name;
        let m = self.lock();
        let Some((id, schema)) = m.collections.get(&name) else {
            return Ok(Response::new(pb::DescribeCollectionResponse {
                status: Some(Status {
                    code: 100,
                    reason: "collection not found".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }));
        };
        Ok(Response::new(pb::DescribeCollectionResponse {
            status: ok(),
            schema: Some(schema.clone()),
            collection_id: *id,
            shards_num: 1,
            collection_name: name,
            num_partitions: 1,
            ..Default::default()
        }))
    }

    async fn show_partitions(
        &self,
        _r: Request<pb::ShowPartitionsRequest>,
    ) -> R<pb::ShowPartitionsResponse> {
        self.record("ShowPartitions");
        Ok(Response::new(pb::ShowPartitionsResponse {
            status: ok(),
            partition_names: vec!["_default".into()],
            partition_i_ds: vec![2],
            ..Default::default()
        }))
    }

    async fn describe_index(
        &self,
        _r: Request<pb::DescribeIndexRequest>,
    ) -> R<pb::DescribeIndexResponse> {
        self.record("DescribeIndex");
        Ok(Response::new(pb::DescribeIndexResponse {
            status: Some(Status {
                error_code: 25,
                reason: "index not exist".into(),
                ..Default::default()
            }),
            ..Default::default()
        }))
    }

    async fn list_aliases(
        &self,
        _r: Request<pb::ListAliasesRequest>,
    ) -> R<pb::ListAliasesResponse> {
        self.record("ListAliases");
        Ok(Response::new(pb::ListAliasesResponse {
            status: ok(),
            ..Default::default()
        }))
    }

    async fn get_load_state(
        &self,
        _r: Request<pb::GetLoadStateRequest>,
    ) -> R<pb::GetLoadStateResponse> {
        self.record("GetLoadState");
        Ok(Response::new(pb::GetLoadStateResponse {
            status: ok(),
            state: common::LoadState::NotLoad as i32,
        }))
    }

    async fn flush(&self, r: Request<pb::FlushRequest>) -> R<pb::FlushResponse> {
        self.record("Flush");
        let names = r.into_inner().collection_names;
        Ok(Response::new(pb::FlushResponse {
            status: ok(),
            coll_seg_i_ds: names
                .iter()
                .map(|n| (n.clone(), ms::LongArray { data: vec![3] }))
                .collect(),
            coll_flush_ts: names.iter().map(|n| (n.clone(), 42u64)).collect(),
            ..Default::default()
        }))
    }

    async fn get_flush_state(
        &self,
        _r: Request<pb::GetFlushStateRequest>,
    ) -> R<pb::GetFlushStateResponse> {
        self.record("GetFlushState");
        Ok(Response::new(pb::GetFlushStateResponse {
            status: ok(),
            flushed: true,
        }))
    }

    async fn get_persistent_segment_info(
        &self,
        r: Request<pb::GetPersistentSegmentInfoRequest>,
    ) -> R<pb::GetPersistentSegmentInfoResponse> {
        self.record("GetPersistentSegmentInfo");
        let name = r.into_inner().collection_name;
        let (id, level) = {
            let m = self.lock();
            (
                m.collections.get(&name).map(|c| c.0).unwrap_or_default(),
                m.segment_level,
            )
        };
        Ok(Response::new(pb::GetPersistentSegmentInfoResponse {
            status: ok(),
            infos: vec![pb::PersistentSegmentInfo {
                segment_id: 3,
                collection_id: id,
                partition_id: 2,
                num_rows: 10,
                state: common::SegmentState::Flushed as i32,
                level,
                ..Default::default()
            }],
        }))
    }

    async fn create_collection(&self, r: Request<pb::CreateCollectionRequest>) -> R<Status> {
        self.record("CreateCollection");
        let req = r.into_inner();
        let mut schema = ms::CollectionSchema::decode(req.schema.as_slice())
            .map_err(|e| GrpcStatus::invalid_argument(e.to_string()))?;
        // Like Milvus: ids assigned in order from 100.
        for (i, f) in schema.fields.iter_mut().enumerate() {
            f.field_id = 100 + i as i64;
        }
        let mut m = self.lock();
        m.next_id += 1;
        let id = m.next_id;
        m.collections
            .insert(req.collection_name.clone(), (id, schema));
        m.rec.creates.push(req);
        Ok(Response::new(Status::default()))
    }

    async fn drop_collection(&self, r: Request<pb::DropCollectionRequest>) -> R<Status> {
        self.record("DropCollection");
        self.lock()
            .collections
            .remove(&r.into_inner().collection_name);
        Ok(Response::new(Status::default()))
    }

    async fn create_index(&self, _r: Request<pb::CreateIndexRequest>) -> R<Status> {
        self.record("CreateIndex");
        Ok(Response::new(Status::default()))
    }

    async fn import(&self, r: Request<pb::ImportRequest>) -> R<pb::ImportResponse> {
        self.record("Import");
        self.lock().rec.imports.push(r.into_inner());
        Ok(Response::new(pb::ImportResponse {
            status: ok(),
            tasks: vec![77],
        }))
    }

    async fn get_import_state(
        &self,
        _r: Request<pb::GetImportStateRequest>,
    ) -> R<pb::GetImportStateResponse> {
        self.record("GetImportState");
        Ok(Response::new(pb::GetImportStateResponse {
            status: ok(),
            state: common::ImportState::ImportCompleted as i32,
            row_count: 10,
            ..Default::default()
        }))
    }
}

/// Whether a version string like `v2.6.8` is at least `want`.
fn version_at_least(version: &str, want: (u32, u32, u32)) -> bool {
    let core = version.trim_start_matches('v');
    let core = core.split(['-', '+']).next().unwrap_or_default();
    let mut parts = core.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let got = (
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
        parts.next().unwrap_or(0),
    );
    got >= want
}
