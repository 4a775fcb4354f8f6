//! # milvault-sdk
//!
//! Rust client for the Milvault `BackupService`: the generated stubs ([`pb`]) plus a
//! small ergonomic layer — connect with an optional bearer token, follow a job as a
//! [`Stream`] of snapshots, and wait for a job to finish.
//!
//! ```no_run
//! # async fn demo() -> Result<(), milvault_sdk::SdkError> {
//! use milvault_sdk::{Client, pb};
//! let mut client = Client::connect("http://127.0.0.1:50051").await?;
//! let job = client
//!     .create_backup(pb::CreateBackupRequest { name: "nightly".into(), ..Default::default() })
//!     .await?;
//! let done = client.wait_job(&job.id, |j| println!("{}: {}", j.id, j.phase)).await?;
//! assert!(milvault_sdk::job_succeeded(&done));
//! # Ok(()) }
//! ```

use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

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

/// A connected client; cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: BackupServiceClient<InterceptedService<Channel, Auth>>,
}

/// Whether a job state is final.
pub fn is_terminal(job: &pb::Job) -> bool {
    matches!(
        pb::JobState::try_from(job.state),
        Ok(pb::JobState::Succeeded | pb::JobState::Failed | pb::JobState::Cancelled)
    )
}

/// Whether a job ended well.
pub fn job_succeeded(job: &pb::Job) -> bool {
    job.state == pb::JobState::Succeeded as i32
}

impl Client {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:50051`).
    pub async fn connect(endpoint: &str) -> Result<Self, SdkError> {
        Self::connect_with(endpoint, None).await
    }

    /// Connects, sending `token` as a bearer token on every call.
    pub async fn connect_with(endpoint: &str, token: Option<&str>) -> Result<Self, SdkError> {
        let err = |message: String| SdkError::Connect {
            endpoint: endpoint.to_owned(),
            message,
        };
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| err(e.to_string()))?
            .connect_timeout(Duration::from_secs(10))
            .connect()
            .await
            .map_err(|e| err(error_chain(&e)))?;
        let token = token
            .map(|t| MetadataValue::try_from(format!("Bearer {t}")))
            .transpose()
            .map_err(|e| err(format!("invalid token: {e}")))?;
        let inner = BackupServiceClient::with_interceptor(channel, Auth { token })
            .max_decoding_message_size(64 * 1024 * 1024);
        Ok(Self { inner })
    }

    /// The raw generated stub, for calls the helpers below do not cover.
    pub fn raw(&mut self) -> &mut BackupServiceClient<InterceptedService<Channel, Auth>> {
        &mut self.inner
    }

    /// Server version, clusters and repositories.
    pub async fn server_info(&mut self) -> Result<pb::GetServerInfoResponse, SdkError> {
        Ok(self
            .inner
            .get_server_info(pb::GetServerInfoRequest {})
            .await?
            .into_inner())
    }

    /// Starts a backup; returns its job.
    pub async fn create_backup(
        &mut self,
        req: pb::CreateBackupRequest,
    ) -> Result<pb::Job, SdkError> {
        job_of(self.inner.create_backup(req).await?.into_inner().job)
    }

    /// Starts a restore; returns its job.
    pub async fn restore_backup(
        &mut self,
        req: pb::RestoreBackupRequest,
    ) -> Result<pb::Job, SdkError> {
        job_of(self.inner.restore_backup(req).await?.into_inner().job)
    }

    /// Starts deleting a backup; returns its job.
    pub async fn delete_backup(
        &mut self,
        name: &str,
        repository: &str,
    ) -> Result<pb::Job, SdkError> {
        let req = pb::DeleteBackupRequest {
            name: name.to_owned(),
            repository: repository.to_owned(),
        };
        job_of(self.inner.delete_backup(req).await?.into_inner().job)
    }

    /// Starts re-reading a backup's files against their checksums; returns its job.
    pub async fn verify_backup(
        &mut self,
        name: &str,
        repository: &str,
    ) -> Result<pb::Job, SdkError> {
        let req = pb::VerifyBackupRequest {
            name: name.to_owned(),
            repository: repository.to_owned(),
        };
        job_of(self.inner.verify_backup(req).await?.into_inner().job)
    }

    /// One backup with its manifest.
    pub async fn get_backup(
        &mut self,
        name: &str,
        repository: &str,
    ) -> Result<pb::Backup, SdkError> {
        let req = pb::GetBackupRequest {
            name: name.to_owned(),
            repository: repository.to_owned(),
        };
        self.inner
            .get_backup(req)
            .await?
            .into_inner()
            .backup
            .ok_or_else(|| SdkError::Status(tonic::Status::internal("server sent no backup")))
    }

    /// Every backup of a repository (follows pages).
    pub async fn list_backups(&mut self, repository: &str) -> Result<Vec<pb::Backup>, SdkError> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let req = pb::ListBackupsRequest {
                repository: repository.to_owned(),
                page_size: 1000,
                page_token: token.clone(),
            };
            let resp = self.inner.list_backups(req).await?.into_inner();
            out.extend(resp.backups);
            if resp.next_page_token.is_empty() {
                return Ok(out);
            }
            token = resp.next_page_token;
        }
    }

    /// One job.
    pub async fn get_job(&mut self, id: &str) -> Result<pb::Job, SdkError> {
        job_of(
            self.inner
                .get_job(pb::GetJobRequest { id: id.to_owned() })
                .await?
                .into_inner()
                .job,
        )
    }

    /// Every job, newest first (follows pages).
    pub async fn list_jobs(&mut self) -> Result<Vec<pb::Job>, SdkError> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let req = pb::ListJobsRequest {
                page_size: 1000,
                page_token: token.clone(),
            };
            let resp = self.inner.list_jobs(req).await?.into_inner();
            out.extend(resp.jobs);
            if resp.next_page_token.is_empty() {
                return Ok(out);
            }
            token = resp.next_page_token;
        }
    }

    /// Asks a job to stop.
    pub async fn cancel_job(&mut self, id: &str) -> Result<pb::Job, SdkError> {
        job_of(
            self.inner
                .cancel_job(pb::CancelJobRequest { id: id.to_owned() })
                .await?
                .into_inner()
                .job,
        )
    }

    /// The job's snapshots: the current one first, then one per change, ending with
    /// the terminal one.
    pub async fn watch_job(
        &mut self,
        id: &str,
    ) -> Result<impl Stream<Item = Result<pb::Job, SdkError>> + use<>, SdkError> {
        let stream = self
            .inner
            .watch_job(pb::WatchJobRequest { id: id.to_owned() })
            .await?
            .into_inner();
        Ok(stream.filter_map(|item| async move {
            match item {
                Ok(resp) => resp.job.map(Ok),
                Err(s) => Some(Err(SdkError::Status(s))),
            }
        }))
    }

    /// Follows a job to its end, calling `on_update` with every snapshot; returns the
    /// terminal snapshot. Reconnects the watch if the stream drops.
    pub async fn wait_job(
        &mut self,
        id: &str,
        mut on_update: impl FnMut(&pb::Job),
    ) -> Result<pb::Job, SdkError> {
        let mut reconnects = 0;
        loop {
            let mut stream = Box::pin(self.watch_job(id).await?);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(job) => {
                        on_update(&job);
                        if is_terminal(&job) {
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
    job.ok_or_else(|| SdkError::Status(tonic::Status::internal("server sent no job")))
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
