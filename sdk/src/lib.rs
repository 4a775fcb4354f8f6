//! # milvault-sdk
//!
//! Rust client for the Milvault `BackupService`: the generated stubs ([`pb`]) plus a
//! small ergonomic layer — connect with an optional bearer token and TLS
//! ([`ConnectOptions`]), follow a job as a [`Stream`] of snapshots, wait for a job to
//! finish, and read an error's stable reason.
//!
//! Every method takes `&self` (the client is cheap to clone and safe to share) and
//! its request message, so each call reads the same way as in any other language.
//!
//! ```no_run
//! # async fn demo() -> Result<(), milvault_sdk::SdkError> {
//! use milvault_sdk::{Client, pb};
//! let client = Client::connect("http://127.0.0.1:50051").await?;
//! let job = client
//!     .create_backup(pb::CreateBackupRequest { name: "nightly".into(), ..Default::default() })
//!     .await?;
//! let done = client.wait_job(&job.id, |j| println!("{}: {}", j.id, milvault_sdk::phase_text(j))).await?;
//! assert!(milvault_sdk::job_succeeded(&done));
//! # Ok(()) }
//! ```
//!
//! Over TLS, with the server's CA and a client certificate (mutual TLS):
//!
//! ```no_run
//! # async fn demo() -> Result<(), milvault_sdk::SdkError> {
//! use milvault_sdk::{Client, ConnectOptions};
//! let options = ConnectOptions::new()
//!     .ca_file("/etc/milvault/ca.pem")
//!     .identity_files("/etc/milvault/client.pem", "/etc/milvault/client-key.pem")
//!     .token("s3cret");
//! let client = Client::connect_opts("https://milvault.example:50051", &options).await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic_types::StatusExt;

/// The generated `milvault.v1` types and stubs.
pub use milvault_proto::milvault::v1 as pb;

use pb::backup_service_client::BackupServiceClient;

/// What can go wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// The endpoint is malformed or unreachable.
    #[error("cannot connect to {endpoint}: {message}")]
    Connect {
        /// The endpoint tried.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// The server answered with an error status.
    #[error("{}: {}", code_name(.0.code()), .0.message())]
    Status(#[from] tonic::Status),
    /// A stream ended before the job finished.
    #[error("the job stream ended before job {0} finished")]
    StreamEnded(String),
    /// The server answered without the message it must send.
    #[error("the server's answer had no {0}")]
    Malformed(&'static str),
}

impl SdkError {
    /// The stable reason the server gave (`google.rpc.ErrorInfo.reason`, e.g.
    /// `BACKUP_NOT_FOUND`), when the error came from the server with one.
    pub fn reason(&self) -> Option<String> {
        match self {
            SdkError::Status(s) => s.get_details_error_info().map(|i| i.reason),
            _ => None,
        }
    }

    /// The objects the error is about (`ErrorInfo.metadata`: cluster, backup, ...).
    pub fn metadata(&self) -> std::collections::HashMap<String, String> {
        match self {
            SdkError::Status(s) => s
                .get_details_error_info()
                .map(|i| i.metadata)
                .unwrap_or_default(),
            _ => Default::default(),
        }
    }

    /// The gRPC code, when the error is a server status.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            SdkError::Status(s) => Some(s.code()),
            _ => None,
        }
    }
}

fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
}

/// Adds `authorization: Bearer <token>` when a token is set.
#[derive(Clone)]
pub struct Auth {
    token: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(t) = &self.token {
            req.metadata_mut().insert("authorization", t.clone());
        }
        Ok(req)
    }
}

/// PEM text, given as bytes or as a file read when connecting.
#[derive(Clone)]
enum Pem {
    Bytes(Vec<u8>),
    File(PathBuf),
}

impl Pem {
    fn load(&self) -> Result<Vec<u8>, String> {
        match self {
            Pem::Bytes(b) => Ok(b.clone()),
            Pem::File(p) => {
                std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            }
        }
    }
}

/// How to reach the server: a bearer token, and for `https://` endpoints the CA
/// that signs the server's certificate (the system's CAs when none is given), a
/// client certificate for servers that require one, and the name to verify.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    token: Option<String>,
    ca: Option<Pem>,
    identity: Option<(Pem, Pem)>,
    server_name: Option<String>,
    connect_timeout: Option<Duration>,
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca", &self.ca.is_some())
            .field("client_certificate", &self.identity.is_some())
            .field("server_name", &self.server_name)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl ConnectOptions {
    /// No token, no TLS settings (an `https://` endpoint then trusts the system's
    /// CAs).
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends `authorization: Bearer <token>` on every call.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Trusts the CA certificates in this PEM text instead of the system's.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(Pem::Bytes(pem.into()));
        self
    }

    /// Trusts the CA certificates in this PEM file instead of the system's.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca = Some(Pem::File(path.into()));
        self
    }

    /// Presents this client certificate and key (PEM text) to the server.
    pub fn identity_pem(mut self, cert: impl Into<Vec<u8>>, key: impl Into<Vec<u8>>) -> Self {
        self.identity = Some((Pem::Bytes(cert.into()), Pem::Bytes(key.into())));
        self
    }

    /// Presents the client certificate and key in these PEM files to the server.
    pub fn identity_files(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.identity = Some((Pem::File(cert.into()), Pem::File(key.into())));
        self
    }

    /// Verifies the server's certificate for this name instead of the endpoint's host.
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// Gives up connecting after this long (10 s when not set).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    fn wants_tls(&self) -> bool {
        self.ca.is_some() || self.identity.is_some() || self.server_name.is_some()
    }

    fn tls(&self) -> Result<ClientTlsConfig, String> {
        let mut tls = match &self.ca {
            Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca.load()?)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            tls = tls.identity(Identity::from_pem(cert.load()?, key.load()?));
        }
        if let Some(name) = &self.server_name {
            tls = tls.domain_name(name.clone());
        }
        Ok(tls)
    }
}

/// The generated stub type the client wraps.
pub type Raw = BackupServiceClient<InterceptedService<Channel, Auth>>;

/// A connected client; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Raw,
}

/// Whether a job ended well.
pub fn job_succeeded(job: &pb::Job) -> bool {
    job.state() == pb::JobState::Succeeded
}

/// A job's phase for people: `copying (db.collection)`.
pub fn phase_text(job: &pb::Job) -> String {
    let name = job
        .phase()
        .as_str_name()
        .trim_start_matches("JOB_PHASE_")
        .to_lowercase()
        .replace('_', " ");
    if job.phase_detail.is_empty() {
        name
    } else {
        format!("{name} ({})", job.phase_detail)
    }
}

impl Client {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:50051`).
    pub async fn connect(endpoint: &str) -> Result<Self, SdkError> {
        Self::connect_with(endpoint, None).await
    }

    /// Connects, sending `token` as a bearer token on every call.
    pub async fn connect_with(endpoint: &str, token: Option<&str>) -> Result<Self, SdkError> {
        let mut options = ConnectOptions::new();
        if let Some(t) = token {
            options = options.token(t);
        }
        Self::connect_opts(endpoint, &options).await
    }

    /// Connects with a token and TLS settings. `https://` endpoints speak TLS;
    /// TLS settings with an `http://` endpoint are refused rather than ignored.
    pub async fn connect_opts(endpoint: &str, options: &ConnectOptions) -> Result<Self, SdkError> {
        let err = |message: String| SdkError::Connect {
            endpoint: endpoint.to_owned(),
            message,
        };
        let https = endpoint.starts_with("https://");
        if options.wants_tls() && !https {
            return Err(err(
                "a CA, client certificate or server name needs an https:// endpoint".to_owned(),
            ));
        }
        let mut ep = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| err(e.to_string()))?
            .connect_timeout(options.connect_timeout.unwrap_or(Duration::from_secs(10)));
        if https {
            ep = ep
                .tls_config(options.tls().map_err(err)?)
                .map_err(|e| err(error_chain(&e)))?;
        }
        let channel = ep.connect().await.map_err(|e| err(error_chain(&e)))?;
        let token = options
            .token
            .as_ref()
            .map(|t| MetadataValue::try_from(format!("Bearer {t}")))
            .transpose()
            .map_err(|e| err(format!("invalid token: {e}")))?;
        let inner = BackupServiceClient::with_interceptor(channel, Auth { token })
            .max_decoding_message_size(64 * 1024 * 1024);
        Ok(Self { inner })
    }

    /// A copy of the raw generated stub, for calls the helpers below do not cover.
    pub fn raw(&self) -> Raw {
        self.inner.clone()
    }

    /// Server version, clusters and repositories.
    pub async fn server_info(&self) -> Result<pb::GetServerInfoResponse, SdkError> {
        Ok(self
            .raw()
            .get_server_info(pb::GetServerInfoRequest {})
            .await?
            .into_inner())
    }

    /// Starts a backup; returns its job.
    pub async fn create_backup(&self, req: pb::CreateBackupRequest) -> Result<pb::Job, SdkError> {
        job_of(self.raw().create_backup(req).await?.into_inner().job)
    }

    /// Starts a restore; returns its job.
    pub async fn restore_backup(&self, req: pb::RestoreBackupRequest) -> Result<pb::Job, SdkError> {
        job_of(self.raw().restore_backup(req).await?.into_inner().job)
    }

    /// Starts deleting a backup; returns its job.
    pub async fn delete_backup(&self, req: pb::DeleteBackupRequest) -> Result<pb::Job, SdkError> {
        job_of(self.raw().delete_backup(req).await?.into_inner().job)
    }

    /// Starts re-reading a backup's files against their checksums; returns its job.
    pub async fn verify_backup(&self, req: pb::VerifyBackupRequest) -> Result<pb::Job, SdkError> {
        job_of(self.raw().verify_backup(req).await?.into_inner().job)
    }

    /// Starts writing a backup's live rows as Parquet files; returns its job.
    pub async fn export_backup(&self, req: pb::ExportBackupRequest) -> Result<pb::Job, SdkError> {
        job_of(self.raw().export_backup(req).await?.into_inner().job)
    }

    /// One backup with its manifest.
    pub async fn get_backup(&self, req: pb::GetBackupRequest) -> Result<pb::Backup, SdkError> {
        self.raw()
            .get_backup(req)
            .await?
            .into_inner()
            .backup
            .ok_or(SdkError::Malformed("backup"))
    }

    /// Every backup of the request's repository (follows pages from the request's
    /// token, `page_size` per call).
    pub async fn list_backups(
        &self,
        mut req: pb::ListBackupsRequest,
    ) -> Result<Vec<pb::Backup>, SdkError> {
        let mut out = Vec::new();
        loop {
            let resp = self.raw().list_backups(req.clone()).await?.into_inner();
            out.extend(resp.backups);
            if resp.next_page_token.is_empty() {
                return Ok(out);
            }
            req.page_token = resp.next_page_token;
        }
    }

    /// One job.
    pub async fn get_job(&self, req: pb::GetJobRequest) -> Result<pb::Job, SdkError> {
        job_of(self.raw().get_job(req).await?.into_inner().job)
    }

    /// Every job, newest first (follows pages from the request's token).
    pub async fn list_jobs(&self, mut req: pb::ListJobsRequest) -> Result<Vec<pb::Job>, SdkError> {
        let mut out = Vec::new();
        loop {
            let resp = self.raw().list_jobs(req.clone()).await?.into_inner();
            out.extend(resp.jobs);
            if resp.next_page_token.is_empty() {
                return Ok(out);
            }
            req.page_token = resp.next_page_token;
        }
    }

    /// Asks a job to stop. For an interrupted restore kept for a resume, gives the
    /// resume up: what it created is removed now.
    pub async fn cancel_job(&self, req: pb::CancelJobRequest) -> Result<pb::Job, SdkError> {
        job_of(self.raw().cancel_job(req).await?.into_inner().job)
    }

    /// Continues a restore the server's restart interrupted, as a new job (returned)
    /// that holds what the interrupted one created; segments whose import was
    /// confirmed are not imported again. `FAILED_PRECONDITION` with reason
    /// `JOB_NOT_RESUMABLE` says why a job cannot be resumed.
    ///
    /// ```no_run
    /// # async fn f(client: milvault_sdk::Client) -> Result<(), milvault_sdk::SdkError> {
    /// use milvault_sdk::pb;
    /// let job = client
    ///     .resume_job(pb::ResumeJobRequest { id: "the-interrupted-job".into() })
    ///     .await?;
    /// let done = client.wait_job(&job.id, |_| {}).await?;
    /// # Ok(()) }
    /// ```
    pub async fn resume_job(&self, req: pb::ResumeJobRequest) -> Result<pb::Job, SdkError> {
        job_of(self.raw().resume_job(req).await?.into_inner().job)
    }

    /// The job's snapshots: the current one first, then one per change, ending with
    /// the terminal one.
    pub async fn watch_job(
        &self,
        req: pb::WatchJobRequest,
    ) -> Result<impl Stream<Item = Result<pb::Job, SdkError>> + use<>, SdkError> {
        let stream = self.raw().watch_job(req).await?.into_inner();
        Ok(stream.filter_map(|item| async move {
            match item {
                Ok(resp) => resp.job.map(Ok),
                Err(s) => Some(Err(SdkError::Status(s))),
            }
        }))
    }

    /// Follows job `id` to its end, calling `on_update` with every snapshot; returns
    /// the terminal snapshot. Reconnects the watch if the stream drops.
    pub async fn wait_job(
        &self,
        id: &str,
        mut on_update: impl FnMut(&pb::Job),
    ) -> Result<pb::Job, SdkError> {
        let mut reconnects = 0;
        loop {
            let req = pb::WatchJobRequest { id: id.to_owned() };
            let mut stream = Box::pin(self.watch_job(req).await?);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(job) => {
                        on_update(&job);
                        if job.state().is_terminal() {
                            return Ok(job);
                        }
                    }
                    // A dropped stream is retried below; anything else is the answer.
                    Err(SdkError::Status(s)) if s.code() == tonic::Code::Unavailable => break,
                    Err(e) => return Err(e),
                }
            }
            reconnects += 1;
            if reconnects > 5 {
                return Err(SdkError::StreamEnded(id.to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn job_of(job: Option<pb::Job>) -> Result<pb::Job, SdkError> {
    job.ok_or(SdkError::Malformed("job"))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
