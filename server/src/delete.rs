//! The delete job: removes a backup, complete or not.
//!
//! The manifest goes first, so a backup being deleted is never restorable half-gone.
//! Files another backup's manifest references (a later incremental backup may point
//! into this one) are kept.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use milvault_proto::milvault::v1::DeleteBackupSpec;

use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::repository::{Repository, manifest_files};

/// Everything a delete job needs.
pub struct DeleteJob {
    /// The request.
    pub spec: DeleteBackupSpec,
    /// Where the backup is.
    pub repository: Repository,
    /// Deletions at once.
    pub concurrency: usize,
}

impl DeleteJob {
    /// Runs the job to the end.
    pub async fn run(self: Arc<Self>, ctx: JobCtx) -> Result<()> {
        let name = &self.spec.name;
        ctx.phase("scanning").await;
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
        ctx.phase("deleting").await;
        store.delete(&Repository::manifest_key(name)).await?;
        let dir = Repository::backup_dir(name);
        let files = store.list_recursive(&dir).await?;
        let doomed: Vec<_> = files
            .into_iter()
            .filter(|o| !keep.contains(&o.key))
            .collect();
        let kept = keep.iter().filter(|k| k.starts_with(&dir)).count();
        ctx.update(|j| {
            if let Some(p) = j.progress.as_mut() {
                p.files_total = doomed.len() as u64;
                p.bytes_total = doomed.iter().map(|o| o.size).sum();
            }
        });
        futures::stream::iter(doomed.into_iter().map(|o| {
            let store = store.clone();
            let ctx = ctx.clone();
            async move {
                store.delete(&o.key).await?;
                ctx.update(|j| {
                    if let Some(p) = j.progress.as_mut() {
                        p.files_done += 1;
                        p.bytes_done += o.size;
                    }
                });
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
