//! The tonic edge of `milvault.v1.BackupService`. Handlers are thin: validate the
//! request, resolve names, start a job or read state, and let `?` turn our
//! [`Error`](crate::Error) into a `Status` (the one mapping lives in `error.rs`).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use milvault_proto::milvault::v1::backup_service_server::BackupService;
use milvault_proto::milvault::v1::{
    CancelJobRequest, CancelJobResponse, ClusterInfo, CreateBackupRequest, CreateBackupResponse,
    DeleteBackupRequest, DeleteBackupResponse, ExportBackupRequest, ExportBackupResponse,
    GetBackupRequest, GetBackupResponse, GetJobRequest, GetJobResponse, GetServerInfoRequest,
    GetServerInfoResponse, Job, ListBackupsRequest, ListBackupsResponse, ListJobsRequest,
    ListJobsResponse, RepositoryInfo, RestoreBackupRequest, RestoreBackupResponse,
    ResumeJobRequest, ResumeJobResponse, StorageInfo, VerifyBackupRequest, VerifyBackupResponse,
    WatchJobRequest, WatchJobResponse,
};
use tonic::{Request, Response, Status};

use crate::app::App;
use crate::backup::BackupJob;
use crate::catalog::Entry;
use crate::delete::DeleteJob;
use crate::error::{Error, Result};
use crate::export::ExportJob;
use crate::jobs::Submission;
use crate::repository::{complete_view, incomplete_view};
use crate::restore::RestoreJob;
use crate::selection::validate_backup_name;
use crate::verify::VerifyJob;

/// The service implementation.
#[derive(Clone)]
pub(crate) struct Api {
    app: Arc<App>,
}

impl Api {
    /// Serves `app`.
    pub(crate) fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

/// Page bounds: default 100, at most 1000.
fn page_size(requested: i32) -> Result<usize> {
    match requested {
        n if n < 0 => Err(Error::invalid("page_size", format!("{n} is negative"))),
        0 => Ok(100),
        n => Ok((n as usize).min(1000)),
    }
}

/// Cuts one page out of `items` (in list order), after the item whose key is
/// `after`; returns the page and the key to continue after (empty at the end).
fn paginate<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    size: usize,
    after: Option<&str>,
) -> (Vec<T>, String) {
    let start = match after {
        None => 0,
        Some(after) => items
            .iter()
            .position(|i| key(i) == after)
            .map(|p| p + 1)
            .unwrap_or(items.len()),
    };
    let page: Vec<T> = items.into_iter().skip(start).take(size + 1).collect();
    if page.len() > size {
        let mut page = page;
        page.truncate(size);
        let next = page.last().map(&key).unwrap_or_default();
        (page, next)
    } else {
        (page, String::new())
    }
}

type WatchStream =
    Pin<Box<dyn Stream<Item = std::result::Result<WatchJobResponse, Status>> + Send>>;

impl Api {
    /// Submits a prepared job and returns its first snapshot.
    async fn start(&self, submission: Result<Submission>) -> Result<Job> {
        self.app.jobs.submit(submission?).await
    }
}

#[tonic::async_trait]
impl BackupService for Api {
    async fn get_server_info(
        &self,
        _req: Request<GetServerInfoRequest>,
    ) -> std::result::Result<Response<GetServerInfoResponse>, Status> {
        let storage = |s: &crate::config::StorageConfig| StorageInfo {
            scheme: s.scheme.clone(),
            options: s.redacted().into_iter().collect(),
        };
        Ok(Response::new(GetServerInfoResponse {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            clusters: self
                .app
                .clusters
                .values()
                .map(|c| ClusterInfo {
                    name: c.name.clone(),
                    address: c.config.address.clone(),
                    management: c.config.management.clone().unwrap_or_default(),
                    storage: Some(storage(&c.config.storage)),
                    username: c.config.username.clone().unwrap_or_default(),
                })
                .collect(),
            repositories: self
                .app
                .repositories
                .values()
                .map(|r| RepositoryInfo {
                    name: r.name().to_owned(),
                    storage: Some(storage(r.store().config())),
                })
                .collect(),
        }))
    }

    async fn create_backup(
        &self,
        req: Request<CreateBackupRequest>,
    ) -> std::result::Result<Response<CreateBackupResponse>, Status> {
        let job = self
            .start(BackupJob::prepare(&self.app, req.into_inner()).await)
            .await?;
        Ok(Response::new(CreateBackupResponse { job: Some(job) }))
    }

    async fn get_backup(
        &self,
        req: Request<GetBackupRequest>,
    ) -> std::result::Result<Response<GetBackupResponse>, Status> {
        let req = req.into_inner();
        validate_backup_name(&req.name)?;
        let repository = self.app.repository(&req.repository)?;
        let in_progress = self
            .app
            .jobs
            .backup_in_progress(repository.name(), &req.name);
        if !in_progress && !repository.backup_exists(&req.name).await? {
            return Err(Error::BackupNotFound {
                name: req.name,
                repository: repository.name().to_owned(),
            }
            .into());
        }
        let mut backup = repository.describe(&req.name, in_progress, true).await?;
        // Password hashes stay in the repository for restores, never in an answer.
        if let Some(m) = backup.manifest.as_mut() {
            crate::rbac::redact(m);
        }
        Ok(Response::new(GetBackupResponse {
            backup: Some(backup),
        }))
    }

    async fn list_backups(
        &self,
        req: Request<ListBackupsRequest>,
    ) -> std::result::Result<Response<ListBackupsResponse>, Status> {
        let req = req.into_inner();
        let size = page_size(req.page_size)?;
        let repository = self.app.repository(&req.repository)?;
        let after = self.app.pager.open("backups", &req.page_token)?;
        // From memory: see catalog.rs for how it is kept true.
        let listing = crate::catalog::snapshot(repository).await?;
        let names: Vec<&String> = listing
            .entries
            .iter()
            .filter(|(_, e)| !matches!(e, Entry::Retained))
            .map(|(n, _)| n)
            .collect();
        let (page, next) = paginate(names, |n| (*n).clone(), size, after.as_deref());
        let next = if next.is_empty() {
            next
        } else {
            self.app.pager.issue("backups", &next)
        };
        let backups = page
            .into_iter()
            .filter_map(|name| {
                let view = match listing.entries.get(name)? {
                    Entry::Complete(m) => complete_view(repository.name(), m),
                    e @ (Entry::Incomplete(_) | Entry::Unreadable) => incomplete_view(
                        repository.name(),
                        name,
                        self.app.jobs.backup_in_progress(repository.name(), name),
                        e.started(),
                    ),
                    Entry::Retained => return None,
                };
                Some(view)
            })
            .collect();
        Ok(Response::new(ListBackupsResponse {
            backups,
            next_page_token: next,
        }))
    }

    async fn delete_backup(
        &self,
        req: Request<DeleteBackupRequest>,
    ) -> std::result::Result<Response<DeleteBackupResponse>, Status> {
        let job = self
            .start(DeleteJob::prepare(&self.app, req.into_inner()).await)
            .await?;
        Ok(Response::new(DeleteBackupResponse { job: Some(job) }))
    }

    async fn restore_backup(
        &self,
        req: Request<RestoreBackupRequest>,
    ) -> std::result::Result<Response<RestoreBackupResponse>, Status> {
        let job = self
            .start(RestoreJob::prepare(&self.app, req.into_inner()).await)
            .await?;
        Ok(Response::new(RestoreBackupResponse { job: Some(job) }))
    }

    async fn verify_backup(
        &self,
        req: Request<VerifyBackupRequest>,
    ) -> std::result::Result<Response<VerifyBackupResponse>, Status> {
        let job = self
            .start(VerifyJob::prepare(&self.app, req.into_inner()).await)
            .await?;
        Ok(Response::new(VerifyBackupResponse { job: Some(job) }))
    }

    async fn export_backup(
        &self,
        req: Request<ExportBackupRequest>,
    ) -> std::result::Result<Response<ExportBackupResponse>, Status> {
        let job = self
            .start(ExportJob::prepare(&self.app, req.into_inner()).await)
            .await?;
        Ok(Response::new(ExportBackupResponse { job: Some(job) }))
    }

    async fn get_job(
        &self,
        req: Request<GetJobRequest>,
    ) -> std::result::Result<Response<GetJobResponse>, Status> {
        let job = self.app.jobs.get(&req.into_inner().id)?;
        Ok(Response::new(GetJobResponse { job: Some(job) }))
    }

    async fn list_jobs(
        &self,
        req: Request<ListJobsRequest>,
    ) -> std::result::Result<Response<ListJobsResponse>, Status> {
        let req = req.into_inner();
        let size = page_size(req.page_size)?;
        let after = self.app.pager.open("jobs", &req.page_token)?;
        let (jobs, next) = paginate(
            self.app.jobs.list(),
            |j| j.id.clone(),
            size,
            after.as_deref(),
        );
        let next = if next.is_empty() {
            next
        } else {
            self.app.pager.issue("jobs", &next)
        };
        Ok(Response::new(ListJobsResponse {
            jobs,
            next_page_token: next,
        }))
    }

    async fn watch_job(
        &self,
        req: Request<WatchJobRequest>,
    ) -> std::result::Result<Response<WatchStream>, Status> {
        let rx = self.app.jobs.watch(&req.into_inner().id)?;
        // State: the receiver, and whether the terminal snapshot was already sent.
        let stream =
            futures::stream::unfold((rx, true, false), |(mut rx, first, done)| async move {
                if done {
                    return None;
                }
                if !first && rx.changed().await.is_err() {
                    return None;
                }
                let job = rx.borrow_and_update().clone();
                let terminal = job.state().is_terminal();
                Some((
                    Ok(WatchJobResponse { job: Some(job) }),
                    (rx, false, terminal),
                ))
            });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn cancel_job(
        &self,
        req: Request<CancelJobRequest>,
    ) -> std::result::Result<Response<CancelJobResponse>, Status> {
        let id = req.into_inner().id;
        let job = match crate::restore::resume::give_up(&self.app, &id).await? {
            Some(job) => job,
            None => self.app.jobs.cancel(&id).await?,
        };
        Ok(Response::new(CancelJobResponse { job: Some(job) }))
    }

    async fn resume_job(
        &self,
        req: Request<ResumeJobRequest>,
    ) -> std::result::Result<Response<ResumeJobResponse>, Status> {
        let job = crate::restore::resume::resume(&self.app, &req.into_inner().id).await?;
        Ok(Response::new(ResumeJobResponse { job: Some(job) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_tokens() {
        let items: Vec<String> = (0..5).map(|i| format!("b{i}")).collect();
        let (p1, t1) = paginate(items.clone(), |s| s.clone(), 2, None);
        assert_eq!(p1, vec!["b0", "b1"]);
        assert_eq!(t1, "b1");
        let (p2, t2) = paginate(items.clone(), |s| s.clone(), 2, Some(&t1));
        assert_eq!(p2, vec!["b2", "b3"]);
        let (p3, t3) = paginate(items, |s| s.clone(), 2, Some(&t2));
        assert_eq!(p3, vec!["b4"]);
        assert!(t3.is_empty());
        assert!(page_size(-1).is_err());
        assert_eq!(page_size(5000).expect("size"), 1000);
    }
}
