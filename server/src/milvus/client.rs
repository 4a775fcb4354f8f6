//! The connection to one Milvus: credentials and the `dbname` header on every call,
//! version detection, and the one place where an answer becomes a typed result.
//!
//! Every RPC goes through [`MilvusClient::call`], which checks the transport status
//! and Milvus's own status (`code == 0 && error_code == 0`; 2.2 fills only
//! `error_code`) and returns [`Error::MilvusUnavailable`] or [`Error::Milvus`] with the
//! codes kept. The domain methods callers use live in `meta.rs`, `data.rs` and
//! `rbac.rs` beside this file; none of the job code builds Milvus messages.

use std::time::Duration;

use base64::Engine;
use milvault_proto::milvus::common::{ClientInfo, Status};
use milvault_proto::milvus::milvus as pb;
use milvault_proto::milvus::milvus::milvus_service_client::MilvusServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::features::{Features, Version};
use crate::config::{ClusterConfig, ClusterTlsConfig, TimeoutsConfig};
use crate::error::{Error, MilvusError, Result};

/// Largest message we accept from Milvus (describe/list answers can be large).
const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Responses that carry a `common.Status`.
pub(crate) trait HasStatus {
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
    pb::SelectRoleResponse,
    pb::SelectUserResponse,
    pb::SelectGrantResponse,
    pb::ListCredUsersResponse,
    pb::DescribeAliasResponse,
    pb::GetCollectionStatisticsResponse,
    pb::GetFlushAllStateResponse,
    pb::FlushAllResponse,
    pb::AllocTimestampResponse,
);

/// Whether a Milvus status means success.
pub(crate) fn status_ok(status: Option<&Status>) -> bool {
    status.is_none_or(|s| s.code == 0 && s.error_code == 0)
}

/// A connected client for one cluster; cheap to clone.
#[derive(Clone)]
pub(crate) struct MilvusClient {
    cluster: String,
    address: String,
    auth: Option<MetadataValue<tonic::metadata::Ascii>>,
    inner: MilvusServiceClient<Channel>,
    features: Features,
    version_text: String,
    pub(super) timeouts: TimeoutsConfig,
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

/// The boxed future a generated stub method returns.
pub(super) type RpcFuture<'a, Resp> = std::pin::Pin<
    Box<
        dyn std::future::Future<Output = std::result::Result<tonic::Response<Resp>, tonic::Status>>
            + Send
            + 'a,
    >,
>;

impl MilvusClient {
    /// Connects and detects the server version (`Connect`, falling back to
    /// `GetVersion` on servers older than 2.2.9). An `https://` address speaks TLS,
    /// verified against `tls.ca_file` or the system's CA certificates; credentials
    /// (`username`/`password` or `token`) go in `authorization` as Milvus reads it:
    /// `base64(user:password)` or `base64(token)` (a token without `:` is an API key).
    pub(crate) async fn connect(
        cluster: &str,
        config: &ClusterConfig,
        timeouts: &TimeoutsConfig,
    ) -> Result<Self> {
        let address = config.address.clone();
        let unavailable = |detail: String| Error::MilvusUnavailable {
            cluster: cluster.to_owned(),
            address: address.clone(),
            op: "connect",
            detail,
        };
        let mut endpoint = Endpoint::from_shared(address.clone())
            .map_err(|e| Error::invalid("cluster address", format!("{address:?}: {e}")))?
            .connect_timeout(Duration::from_secs(config.connect_timeout_secs))
            .tcp_keepalive(Some(Duration::from_secs(30)));
        if address.starts_with("https://") {
            endpoint = endpoint
                .tls_config(client_tls(config.tls.as_ref().unwrap_or(&Default::default())).await?)
                .map_err(|e| unavailable(error_chain(&e)))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| unavailable(error_chain(&e)))?;
        let credentials = match (&config.token, &config.username) {
            (Some(token), _) => Some(token.expose().to_owned()),
            (None, Some(u)) => Some(format!(
                "{u}:{}",
                config.password.as_ref().map(|p| p.expose()).unwrap_or("")
            )),
            (None, None) => None,
        };
        let auth = credentials
            .map(|c| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(c);
                MetadataValue::try_from(encoded).map_err(|_| {
                    Error::invalid("cluster credentials", "cannot be sent as a header")
                })
            })
            .transpose()?;
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
            timeouts: timeouts.for_cluster(config),
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
        // `Connect` exists from 2.2.9; older servers answer Unimplemented, and any
        // server may leave the build tags empty: then `GetVersion` says it.
        let version = match self
            .call("Connect", "", req, |c, r| Box::pin(c.connect(r)))
            .await
        {
            Ok(resp) => resp.server_info.map(|s| s.build_tags).unwrap_or_default(),
            Err(Error::Milvus(MilvusError {
                grpc: tonic::Code::Unimplemented,
                ..
            })) => String::new(),
            Err(e) => return Err(e),
        };
        let version = if Version::parse(&version).is_some() {
            version
        } else {
            self.call("GetVersion", "", pb::GetVersionRequest {}, |c, r| {
                Box::pin(c.get_version(r))
            })
            .await?
            .version
        };
        let parsed = Version::parse(&version).unwrap_or_default();
        tracing::info!(cluster = %self.cluster, version = %version, "connected to Milvus");
        self.features = Features::new(parsed);
        self.version_text = version;
        Ok(())
    }

    /// The cluster's configured name.
    pub(crate) fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The version string the server reported.
    pub(crate) fn version_text(&self) -> &str {
        &self.version_text
    }

    /// Feature gates of this server.
    pub(crate) fn features(&self) -> Features {
        self.features
    }

    /// Wraps a message with the auth and database headers.
    fn request<T>(&self, db: &str, msg: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(msg);
        req.set_timeout(Duration::from_secs(self.timeouts.rpc_secs));
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

    /// A transport-level failure: unreachable (no answer at all) or an error status
    /// from the gRPC layer itself.
    fn rpc_error(&self, op: &'static str, s: tonic::Status) -> Error {
        // Unavailable and DeadlineExceeded are what tonic reports when the connection
        // fails or a call times out; Unknown with a source is a transport error too.
        let unreachable = matches!(
            s.code(),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
        ) || (s.code() == tonic::Code::Unknown
            && std::error::Error::source(&s).is_some());
        if unreachable {
            Error::MilvusUnavailable {
                cluster: self.cluster.clone(),
                address: self.address.clone(),
                op,
                detail: s.message().to_owned(),
            }
        } else {
            Error::Milvus(MilvusError {
                cluster: self.cluster.clone(),
                op,
                grpc: s.code(),
                code: 0,
                error_code: 0,
                reason: s.message().to_owned(),
                retriable: false,
            })
        }
    }

    /// Calls one RPC and checks both the transport and Milvus's own status.
    pub(super) async fn call<Req, Resp, F>(
        &self,
        op: &'static str,
        db: &str,
        msg: Req,
        f: F,
    ) -> Result<Resp>
    where
        Resp: HasStatus,
        F: for<'a> FnOnce(
            &'a mut MilvusServiceClient<Channel>,
            tonic::Request<Req>,
        ) -> RpcFuture<'a, Resp>,
    {
        let mut inner = self.inner.clone();
        let resp = f(&mut inner, self.request(db, msg))
            .await
            .map_err(|s| self.rpc_error(op, s))?
            .into_inner();
        self.check(op, resp.status())?;
        Ok(resp)
    }

    /// Turns a Milvus status into an error naming the operation.
    pub(super) fn check(&self, op: &'static str, status: Option<&Status>) -> Result<()> {
        if status_ok(status) {
            return Ok(());
        }
        let s = status.cloned().unwrap_or_default();
        Err(Error::Milvus(MilvusError {
            cluster: self.cluster.clone(),
            op,
            grpc: tonic::Code::Ok,
            code: s.code,
            error_code: s.error_code,
            retriable: super::status::is_retryable(s.code, s.error_code, s.retriable, &s.reason),
            reason: s.reason,
        }))
    }
}

/// The TLS settings for one cluster: its CA (or the system's), client certificate
/// and server name.
async fn client_tls(tls: &ClusterTlsConfig) -> Result<ClientTlsConfig> {
    async fn pem(field: &'static str, path: &std::path::Path) -> Result<Vec<u8>> {
        tokio::fs::read(path)
            .await
            .map_err(|e| Error::invalid(field, format!("cannot read {}: {e}", path.display())))
    }
    let mut out = ClientTlsConfig::new();
    out = match &tls.ca_file {
        Some(ca) => {
            out.ca_certificate(Certificate::from_pem(pem("cluster tls.ca_file", ca).await?))
        }
        None => out.with_native_roots(),
    };
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        out = out.identity(Identity::from_pem(
            pem("cluster tls.cert_file", cert).await?,
            pem("cluster tls.key_file", key).await?,
        ));
    }
    if let Some(name) = &tls.server_name {
        out = out.domain_name(name.clone());
    }
    Ok(out)
}

/// The whole source chain of an error, for messages about unreachable servers.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
