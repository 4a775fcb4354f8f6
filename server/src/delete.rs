//! The delete job: removes a backup, complete or not, and nothing a later backup needs.
//!
//! An incremental backup points at files earlier backups copied. Deleting such an
//! earlier backup removes its manifest and catalog entry (it is no longer a backup)
//! and every file no remaining backup references; the referenced ones stay in its
//! folder, marked `retained.json`, until the last backup referencing them is deleted:
//! each delete also collects the retained folders the deleted backup pointed into.
//!
//! Order matters for crashes: the retained marker first, then the catalog entry and
//! the manifest (so a backup half-deleted is never restorable half-gone), then the
//! files. Every step is idempotent, so deleting again finishes the job.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use milvault_proto::milvault::v1::{DeleteBackupRequest, JobKind, JobPhase, RetainedFiles, job};

use crate::app::App;
use crate::catalog::{self, Entry};
use crate::error::{Error, Result};
use crate::jobs::{JobCtx, Lock, Submission, now};
use crate::repository::{Repository, manifest_files};
use crate::selection::validate_backup_name;
use crate::storage::Store;

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
        let listing = catalog::fresh(&repository).await?;
        match listing.entries.get(&req.name) {
            None | Some(Entry::Retained) => {
                return Err(Error::BackupNotFound {
                    name: req.name,
                    repository: repository.name().to_owned(),
                });
            }
            Some(_) => {}
        }
        req.repository = repository.name().to_owned();
        // The retained folders this backup points into may be collected: no job may
        // be pointing at them meanwhile.
        let mut locks = vec![Lock::backup_writer(repository.name(), &req.name)];
        if let Some(Entry::Complete(m)) = listing.entries.get(&req.name) {
            for r in &m.references {
                if matches!(listing.entries.get(&r.name), Some(Entry::Retained)) {
                    locks.push(Lock::backup_writer(repository.name(), &r.name));
                }
            }
        }
        Ok(Self::submission(
            req,
            repository,
            app.config.limits.copy_concurrency,
            locks,
        ))
    }

    fn submission(
        req: DeleteBackupRequest,
        repository: Repository,
        concurrency: usize,
        locks: Vec<Lock>,
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
            locks,
            request: job::Request::DeleteBackup(req),
            run: Box::new(move |ctx| Box::pin(job.run(ctx))),
        }
    }

    /// Runs the job to the end.
    async fn run(self: Arc<Self>, ctx: JobCtx) -> Result<()> {
        let name = self.request.name.as_str();
        let repository = &self.repository;
        ctx.phase(JobPhase::Scanning, "").await;
        let listing = catalog::fresh(repository).await?;
        let own = match repository.read_manifest(name).await {
            Ok(m) => m,
            // A damaged manifest must not keep a backup from being deleted; what it
            // referenced is collected by later deletes.
            Err(e) => {
                ctx.warn(format!(
                    "the manifest could not be read ({e}); deleting the folder"
                ))
                .await;
                None
            }
        };
        // Folders whose files some remaining backup may need: this one, and the
        // retained folders it pointed into.
        let mut folders: BTreeSet<String> = BTreeSet::from([name.to_owned()]);
        if let Some(m) = &own {
            for r in &m.references {
                if matches!(listing.entries.get(&r.name), Some(Entry::Retained)) {
                    folders.insert(r.name.clone());
                }
            }
        }
        let keep = referenced_by_others(repository, &listing, name, &folders).await?;

        ctx.phase(JobPhase::Deleting, "").await;
        let store = repository.store().clone();
        let dir = Repository::backup_dir(name);
        let kept_here = keep.iter().filter(|k| k.starts_with(&dir)).count();
        if kept_here > 0 {
            repository
                .write_retained(
                    name,
                    &RetainedFiles {
                        id: own.as_ref().map(|m| m.id.clone()).unwrap_or_default(),
                        delete_time: Some(now()),
                    },
                )
                .await?;
        }
        repository.delete_catalog_entries(name).await?;
        store.delete(&Repository::manifest_key(name)).await?;
        repository
            .catalog()
            .note(name, (kept_here > 0).then_some(Entry::Retained));
        for folder in &folders {
            let kept = self.collect(&ctx, &store, folder, &keep).await?;
            if folder == name && kept > 0 {
                ctx.warn(format!(
                    "kept {kept} files that later backups reference, in {dir} (marked retained; removed with the last backup referencing them)"
                ))
                .await;
            }
            if folder != name && kept == 0 {
                repository.catalog().note(folder, None);
            }
        }
        Ok(())
    }

    /// Deletes the files of one folder no remaining backup references; the whole
    /// folder when none is. Returns how many files were kept.
    async fn collect(
        &self,
        ctx: &JobCtx,
        store: &Store,
        folder: &str,
        keep: &BTreeSet<String>,
    ) -> Result<usize> {
        let dir = Repository::backup_dir(folder);
        let files_dir = format!("{dir}files/");
        let files = store.list_recursive(&files_dir).await?;
        let (kept, doomed): (Vec<_>, Vec<_>) =
            files.into_iter().partition(|o| keep.contains(&o.key));
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
        if kept.is_empty() {
            store.delete_prefix(&dir).await?;
        }
        Ok(kept.len())
    }
}

/// Paths under `folders` that complete backups other than `deleted` reference. Only
/// the manifests whose catalog entry names one of the folders are read.
async fn referenced_by_others(
    repository: &Repository,
    listing: &catalog::Snapshot,
    deleted: &str,
    folders: &BTreeSet<String>,
) -> Result<BTreeSet<String>> {
    let mut keep = BTreeSet::new();
    for m in listing.complete() {
        if m.name == deleted || !m.references.iter().any(|r| folders.contains(&r.name)) {
            continue;
        }
        // An unreadable manifest may reference these files: refuse rather than guess.
        let full = repository.load_complete(&m.name).await?;
        keep.extend(
            manifest_files(&full)
                .filter(|f| folders.contains(&f.referenced_from))
                .map(|f| f.path.clone()),
        );
    }
    Ok(keep)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use milvault_proto::milvault::v1::{
        BackupFile, BackupManifest, BackupReference, CollectionBackup, JobState, SegmentBackup,
    };

    use super::*;
    use crate::config::StorageConfig;
    use crate::jobs::Jobs;
    use crate::repository::FORMAT_VERSION;
    use milvault_proto::milvault::v1::Job;

    fn manifest(name: &str, paths: &[&str]) -> BackupManifest {
        let files: Vec<BackupFile> = paths
            .iter()
            .map(|p| BackupFile {
                path: (*p).to_owned(),
                referenced_from: Repository::backup_of_key(p)
                    .filter(|owner| *owner != name)
                    .unwrap_or_default()
                    .to_owned(),
                ..Default::default()
            })
            .collect();
        let references = files
            .iter()
            .filter(|f| !f.referenced_from.is_empty())
            .map(|f| BackupReference {
                name: f.referenced_from.clone(),
                id: format!("id-{}", f.referenced_from),
            })
            .collect();
        BackupManifest {
            format_version: FORMAT_VERSION,
            name: name.into(),
            id: format!("id-{name}"),
            references,
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

    async fn delete(jobs: &Jobs, repo: &Repository, name: &str) -> Job {
        let listing = catalog::fresh(repo).await.expect("listing");
        assert!(listing.entries.contains_key(name), "{name} is listed");
        let req = DeleteBackupRequest {
            name: name.into(),
            repository: "r".into(),
        };
        let started = jobs
            .submit(DeleteJob::submission(req, repo.clone(), 2, Vec::new()))
            .await
            .expect("submit");
        let mut rx = jobs.watch(&started.id).expect("watch");
        while !rx.borrow_and_update().state().is_terminal() {
            rx.changed().await.expect("changed");
        }
        let done = jobs.get(&started.id).expect("get");
        assert_eq!(done.state(), JobState::Succeeded, "{:?}", done.error);
        done
    }

    #[tokio::test]
    async fn a_deleted_base_keeps_what_later_backups_reference_until_they_go() {
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
        let (shared, own, later) = (
            "backups/a/files/x/1",
            "backups/a/files/x/2",
            "backups/b/files/y/1",
        );
        for key in [shared, own, later] {
            store
                .write_small(key, b"data".to_vec())
                .await
                .expect("write");
        }
        for m in [
            manifest("a", &[shared, own]),
            manifest("b", &[shared, later]),
        ] {
            repo.write_manifest(&m).await.expect("manifest");
            repo.write_catalog_entry(&m).await.expect("catalog");
        }
        let jobs = Jobs::open(state.path(), 1).expect("jobs");

        let done = delete(&jobs, &repo, "a").await;
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
        assert!(repo.read_retained("a").await.expect("read").is_some());
        let listing = catalog::fresh(&repo).await.expect("listing");
        assert!(
            matches!(listing.entries.get("a"), Some(Entry::Retained)),
            "a retained folder is not a backup: {:?}",
            listing.entries.get("a")
        );
        assert!(matches!(listing.entries.get("b"), Some(Entry::Complete(_))));

        delete(&jobs, &repo, "b").await;
        assert!(
            store
                .list_recursive("backups/")
                .await
                .expect("list")
                .is_empty(),
            "the last backup referencing a's files took them along"
        );
        assert!(
            catalog::fresh(&repo)
                .await
                .expect("listing")
                .entries
                .is_empty()
        );
    }
}
