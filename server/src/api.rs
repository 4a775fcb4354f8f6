//! The tonic edge of `milvault.v1.BackupService`. Handlers are thin: validate the
//! request, resolve names, start a job or read state, and let `?` turn our
//! [`Error`](crate::Error) into a `Status` (the one mapping lives in `error.rs`).

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use milvault_proto::milvault::v1::backup_service_server::BackupService;
use milvault_proto::milvault::v1::{
    CancelJobRequest, CancelJobResponse, ClusterInfo, CreateBackupRequest, CreateBackupResponse,
    CreateBackupSpec, DeleteBackupRequest, DeleteBackupResponse, DeleteBackupSpec,
    GetBackupRequest, GetBackupResponse, GetJobRequest, GetJobResponse, GetServerInfoRequest,
    GetServerInfoResponse, JobKind, ListBackupsRequest, ListBackupsResponse, ListJobsRequest,
    ListJobsResponse, RepositoryInfo, RestoreBackupRequest, RestoreBackupResponse,
    RestoreBackupSpec, StorageInfo, VerifyBackupRequest, VerifyBackupResponse, VerifyBackupSpec,
    WatchJobRequest, WatchJobResponse, job,
};
use tonic::{Request, Response, Status};

use crate::app::App;
use crate::backup::BackupJob;
use crate::delete::DeleteJob;
use crate::error::{Error, Result};
use crate::jobs::{Lock, NewJob, is_terminal};
use crate::restore::{RestoreJob, plan_targets};
use crate::selection::{Filter, validate_backup_name};
use crate::verify::VerifyJob;

/// The service implementation.
#[derive(Clone)]
pub struct Api {
    app: Arc<App>,
}

impl Api {
    /// Serves `app`.
    pub fn new(app: Arc<App>) -> Self {
        Self { app }
    }
}

fn backup_lock(repository: &str, name: &str, exclusive: bool) -> Lock {
    Lock {
        key: format!("backup:{repository}/{name}"),
        exclusive,
        conflict_message: format!(
            "another job is using backup {name:?} of repository {repository:?}; wait for it to finish"
        ),
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

/// Cuts one page out of `items` (sorted by `key`), after the token's key.
fn paginate<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    size: usize,
    token: &str,
) -> (Vec<T>, String) {
    let start = if token.is_empty() {
        0
    } else {
        items
            .iter()
            .position(|i| key(i) == token)
            .map(|p| p + 1)
            .unwrap_or(items.len())
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
    async fn create_backup_inner(
        &self,
        req: CreateBackupRequest,
    ) -> Result<milvault_proto::milvault::v1::Job> {
        validate_backup_name(&req.name)?;
        let filter = Filter::parse(&req.collections)?;
        let cluster = self.app.cluster(&req.cluster)?.clone();
        let repository = self.app.repository(&req.repository)?.clone();
        let lock = backup_lock(repository.name(), &req.name, true);
        if self.app.jobs.is_locked(&lock.key) || repository.backup_exists(&req.name).await? {
            return Err(Error::BackupExists {
                name: req.name,
                repository: repository.name().to_owned(),
            });
        }
        let spec = CreateBackupSpec {
            name: req.name.clone(),
            cluster: cluster.name.clone(),
            repository: repository.name().to_owned(),
            collections: req.collections,
            include_rbac: req.include_rbac,
        };
        let job = Arc::new(BackupJob {
            spec: spec.clone(),
            filter,
            cluster: cluster.clone(),
            repository: repository.clone(),
            copy_concurrency: self.app.config.limits.copy_concurrency,
        });
        let new = NewJob {
            kind: JobKind::Backup,
            request: job::Request::CreateBackup(spec),
            backup: req.name,
            cluster: cluster.name.clone(),
            repository: repository.name().to_owned(),
            locks: vec![lock],
        };
        self.app.jobs.submit(new, move |ctx| job.run(ctx)).await
    }

    async fn restore_inner(
        &self,
        req: RestoreBackupRequest,
    ) -> Result<milvault_proto::milvault::v1::Job> {
        validate_backup_name(&req.backup)?;
        let cluster = self.app.cluster(&req.cluster)?.clone();
        let repository = self.app.repository(&req.repository)?.clone();
        let spec = RestoreBackupSpec {
            backup: req.backup.clone(),
            cluster: cluster.name.clone(),
            repository: repository.name().to_owned(),
            collections: req.collections,
            suffix: req.suffix,
            renames: req.renames,
            drop_existing: req.drop_existing,
            meta_only: req.meta_only,
            database_map: req.database_map,
            restore_rbac: req.restore_rbac,
            skip_load: req.skip_load,
            skip_indexes: req.skip_indexes,
        };
        let manifest = repository.load_complete(&req.backup).await?;
        if spec.restore_rbac && manifest.rbac.is_none() {
            return Err(Error::invalid(
                "restore_rbac",
                format!(
                    "backup {:?} holds no users, roles or grants (it was made without include_rbac)",
                    req.backup
                ),
            ));
        }
        let targets = plan_targets(&manifest, &spec)?;
        let mut locks = vec![backup_lock(repository.name(), &req.backup, false)];
        locks.extend(targets.iter().map(|t| Lock {
            key: format!("target:{}/{}.{}", cluster.name, t.database, t.collection),
            exclusive: true,
            conflict_message: format!(
                "another restore is writing {}.{} in cluster {:?}",
                t.database, t.collection, cluster.name
            ),
        }));
        let job = Arc::new(RestoreJob {
            spec: spec.clone(),
            manifest,
            targets,
            cluster: cluster.clone(),
            repository: repository.clone(),
            copy_concurrency: self.app.config.limits.copy_concurrency,
            import_concurrency: self.app.config.limits.import_concurrency,
        });
        let new = NewJob {
            kind: JobKind::Restore,
            request: job::Request::RestoreBackup(spec),
            backup: req.backup,
            cluster: cluster.name.clone(),
            repository: repository.name().to_owned(),
            locks,
        };
        self.app.jobs.submit(new, move |ctx| job.run(ctx)).await
    }

    async fn verify_inner(
        &self,
        req: VerifyBackupRequest,
    ) -> Result<milvault_proto::milvault::v1::Job> {
        validate_backup_name(&req.name)?;
        let repository = self.app.repository(&req.repository)?.clone();
        // Refused at once when there is nothing complete to verify.
        repository.load_complete(&req.name).await?;
        let spec = VerifyBackupSpec {
            name: req.name.clone(),
            repository: repository.name().to_owned(),
        };
        let job = Arc::new(VerifyJob {
            spec: spec.clone(),
            repository: repository.clone(),
            concurrency: self.app.config.limits.copy_concurrency,
        });
        let new = NewJob {
            kind: JobKind::Verify,
            request: job::Request::VerifyBackup(spec),
            backup: req.name.clone(),
            cluster: String::new(),
            repository: repository.name().to_owned(),
            locks: vec![backup_lock(repository.name(), &req.name, false)],
        };
        self.app.jobs.submit(new, move |ctx| job.run(ctx)).await
    }

    async fn delete_inner(
        &self,
        req: DeleteBackupRequest,
    ) -> Result<milvault_proto::milvault::v1::Job> {
        validate_backup_name(&req.name)?;
        let repository = self.app.repository(&req.repository)?.clone();
        if !repository.backup_exists(&req.name).await? {
            return Err(Error::BackupNotFound {
                name: req.name,
                repository: repository.name().to_owned(),
            });
        }
        let spec = DeleteBackupSpec {
            name: req.name.clone(),
            repository: repository.name().to_owned(),
        };
        let job = Arc::new(DeleteJob {
            spec: spec.clone(),
            repository: repository.clone(),
            concurrency: self.app.config.limits.copy_concurrency,
        });
        let new = NewJob {
            kind: JobKind::Delete,
            request: job::Request::DeleteBackup(spec),
            backup: req.name.clone(),
            cluster: String::new(),
            repository: repository.name().to_owned(),
            locks: vec![backup_lock(repository.name(), &req.name, true)],
        };
        self.app.jobs.submit(new, move |ctx| job.run(ctx)).await
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
        let job = self.create_backup_inner(req.into_inner()).await?;
        Ok(Response::new(CreateBackupResponse { job: Some(job) }))
    }

    async fn get_backup(
        &self,
        req: Request<GetBackupRequest>,
    ) -> std::result::Result<Response<GetBackupResponse>, Status> {
        let req = req.into_inner();
        validate_backup_name(&req.name)?;
        let repository = self.app.repository(&req.repository)?;
        let lock = backup_lock(repository.name(), &req.name, true);
        let in_progress = self.app.jobs.is_locked(&lock.key);
        if !in_progress && !repository.backup_exists(&req.name).await? {
            return Err(Error::BackupNotFound {
                name: req.name,
                repository: repository.name().to_owned(),
            }
            .into());
        }
        let backup = repository.describe(&req.name, in_progress, true).await?;
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
        let names = repository.backup_names().await?;
        let (page, next) = paginate(names, |n| n.clone(), size, &req.page_token);
        let mut backups = Vec::with_capacity(page.len());
        for name in page {
            let in_progress = self
                .app
                .jobs
                .is_locked(&backup_lock(repository.name(), &name, true).key);
            backups.push(repository.describe(&name, in_progress, false).await?);
        }
        Ok(Response::new(ListBackupsResponse {
            backups,
            next_page_token: next,
        }))
    }

    async fn delete_backup(
        &self,
        req: Request<DeleteBackupRequest>,
    ) -> std::result::Result<Response<DeleteBackupResponse>, Status> {
        let job = self.delete_inner(req.into_inner()).await?;
        Ok(Response::new(DeleteBackupResponse { job: Some(job) }))
    }

    async fn restore_backup(
        &self,
        req: Request<RestoreBackupRequest>,
    ) -> std::result::Result<Response<RestoreBackupResponse>, Status> {
        let job = self.restore_inner(req.into_inner()).await?;
        Ok(Response::new(RestoreBackupResponse { job: Some(job) }))
    }

    async fn verify_backup(
        &self,
        req: Request<VerifyBackupRequest>,
    ) -> std::result::Result<Response<VerifyBackupResponse>, Status> {
        let job = self.verify_inner(req.into_inner()).await?;
        Ok(Response::new(VerifyBackupResponse { job: Some(job) }))
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
        let (jobs, next) = paginate(
            self.app.jobs.list(),
            |j| j.id.clone(),
            size,
            &req.page_token,
        );
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
                let terminal = is_terminal(job.state);
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
        let job = self.app.jobs.cancel(&req.into_inner().id).await?;
        Ok(Response::new(CancelJobResponse { job: Some(job) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_tokens() {
        let items: Vec<String> = (0..5).map(|i| format!("b{i}")).collect();
        let (p1, t1) = paginate(items.clone(), |s| s.clone(), 2, "");
        assert_eq!(p1, vec!["b0", "b1"]);
        assert_eq!(t1, "b1");
        let (p2, t2) = paginate(items.clone(), |s| s.clone(), 2, &t1);
        assert_eq!(p2, vec!["b2", "b3"]);
        let (p3, t3) = paginate(items, |s| s.clone(), 2, &t2);
        assert_eq!(p3, vec!["b4"]);
        assert!(t3.is_empty());
        assert!(page_size(-1).is_err());
        assert_eq!(page_size(5000).expect("size"), 1000);
    }
}
