//! The delete job: removes a backup, complete or not.
//!
//! The manifest goes first, so a backup being deleted is never restorable half-gone.
//! Files another backup's manifest references (a later incremental backup may point
//! into this one) are kept.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use milvault_proto::milvault::v1::{DeleteBackupRequest, JobKind, JobPhase, job};

use crate::app::App;
use crate::error::{Error, Result};
use crate::jobs::{JobCtx, Lock, Submission};
use crate::repository::{Repository, manifest_files};
use crate::selection::validate_backup_name;

/// Everything a delete job needs.
pub(crate) struct DeleteJob {
    /// The request, names resolved.
    request: DeleteBackupRequest,
    /// Where the backup is.
    repository: Repository,
    /// Deletions at once.
    concurrency: usize,
}

impl DeleteJob {
    /// Checks a request and prepares the job.
    pub(crate) async fn prepare(app: &App, mut req: DeleteBackupRequest) -> Result<Submission> {
        validate_backup_name(&req.name)?;
        let repository = app.repository(&req.repository)?.clone();
        if !repository.backup_exists(&req.name).await? {
            return Err(Error::BackupNotFound {
                name: req.name,
                repository: repository.name().to_owned(),
            });
        }
        req.repository = repository.name().to_owned();
        Ok(Self::submission(
            req,
            repository,
            app.config.limits.copy_concurrency,
        ))
    }

    fn submission(
        req: DeleteBackupRequest,
        repository: Repository,
        concurrency: usize,
    ) -> Submission {
        let job = Arc::new(DeleteJob {
            request: req.clone(),
            repository: repository.clone(),
            concurrency,
        });
        Submission {
            kind: JobKind::Delete,
            backup: req.name.clone(),
            cluster: String::new(),
            repository: repository.name().to_owned(),
            locks: vec![Lock::backup_writer(repository.name(), &req.name)],
            request: job::Request::DeleteBackup(req),
            run: Box::new(move |ctx| Box::pin(job.run(ctx))),
        }
    }

    /// Runs the job to the end.
    async fn run(self: Arc<Self>, ctx: JobCtx) -> Result<()> {
        let name = &self.request.name;
        ctx.phase(JobPhase::Scanning, "").await;
        let mut keep = BTreeSet::new();
        for other in self.repository.backup_names().await? {
            if &other == name {
                continue;
            }
            // An unreadable manifest may reference our files: refuse rather than guess.
            if let Some(m) = self.repository.read_manifest(&other).await? {
                keep.extend(manifest_files(&m).map(|f| f.path.clone()));
            }
        }
        let store = self.repository.store().clone();
        ctx.phase(JobPhase::Deleting, "").await;
        store.delete(&Repository::manifest_key(name)).await?;
        let dir = Repository::backup_dir(name);
        let files = store.list_recursive(&dir).await?;
        let doomed: Vec<_> = files
            .into_iter()
            .filter(|o| !keep.contains(&o.key))
            .collect();
        let kept = keep.iter().filter(|k| k.starts_with(&dir)).count();
        ctx.plan_files(doomed.len() as u64, doomed.iter().map(|o| o.size).sum());
        futures::stream::iter(doomed.into_iter().map(|o| {
            let store = store.clone();
            let ctx = ctx.clone();
            async move {
                store.delete(&o.key).await?;
                ctx.file_done(None, o.size);
                Ok::<_, Error>(())
            }
        }))
        .buffer_unordered(self.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
        if kept == 0 {
            store.delete_prefix(&dir).await?;
        } else {
            ctx.warn(format!("kept {kept} files that other backups reference"))
                .await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use milvault_proto::milvault::v1::{
        BackupFile, BackupManifest, CollectionBackup, JobState, SegmentBackup,
    };

    use super::*;
    use crate::config::StorageConfig;
    use crate::jobs::Jobs;
    use crate::repository::FORMAT_VERSION;
    use crate::storage::Store;

    fn manifest(name: &str, paths: &[&str]) -> BackupManifest {
        let files = paths
            .iter()
            .map(|p| BackupFile {
                path: (*p).to_owned(),
                ..Default::default()
            })
            .collect();
        BackupManifest {
            format_version: FORMAT_VERSION,
            name: name.into(),
            collections: vec![CollectionBackup {
                segments: vec![SegmentBackup {
                    insert_logs: files,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn delete_keeps_files_other_backups_reference() {
        let dir = tempfile::tempdir().expect("tmp");
        let state = tempfile::tempdir().expect("tmp");
        let mut options = BTreeMap::new();
        options.insert("root".to_owned(), dir.path().display().to_string());
        let store = Store::new(
            "r",
            &StorageConfig {
                scheme: "fs".into(),
                options,
            },
        )
        .expect("store");
        let repo = Repository::new("r", store.clone());
        let (shared, own) = ("backups/a/files/x/1", "backups/a/files/x/2");
        for key in [shared, own, "backups/b/files/y/1"] {
            store
                .write_small(key, b"data".to_vec())
                .await
                .expect("write");
        }
        repo.write_manifest(&manifest("a", &[shared, own]))
            .await
            .expect("manifest a");
        repo.write_manifest(&manifest("b", &[shared, "backups/b/files/y/1"]))
            .await
            .expect("manifest b");

        let jobs = Jobs::open(state.path(), 1).expect("jobs");
        let req = DeleteBackupRequest {
            name: "a".into(),
            repository: "r".into(),
        };
        let started = jobs
            .submit(DeleteJob::submission(req, repo.clone(), 2))
            .await
            .expect("submit");
        let mut rx = jobs.watch(&started.id).expect("watch");
        while !rx.borrow_and_update().state().is_terminal() {
            rx.changed().await.expect("changed");
        }
        let done = jobs.get(&started.id).expect("get");
        assert_eq!(done.state(), JobState::Succeeded, "{:?}", done.error);
        assert!(
            done.warnings.iter().any(|w| w.contains("kept 1 files")),
            "{:?}",
            done.warnings
        );
        assert!(
            store.exists(shared).await.expect("stat"),
            "a file backup b needs was deleted"
        );
        assert!(!store.exists(own).await.expect("stat"));
        assert!(repo.read_manifest("a").await.expect("read").is_none());
        assert!(repo.read_manifest("b").await.expect("read").is_some());
    }
}
