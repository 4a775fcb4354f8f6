//! The verify job: re-reads every file a backup's manifest lists and checks its size
//! and SHA-256, so damage in the repository is found before a restore needs the data.
//! Every damaged or missing file is named (up to a bound) and the job fails with
//! `DATA_LOSS`; nothing is changed.

use std::sync::Arc;

use futures::StreamExt;
use milvault_proto::milvault::v1::VerifyBackupSpec;

use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::repository::{Repository, manifest_files};

/// How many damaged files the error names.
const NAMED: usize = 10;

/// Everything a verify job needs.
pub struct VerifyJob {
    /// The request.
    pub spec: VerifyBackupSpec,
    /// Where the backup is.
    pub repository: Repository,
    /// Files read at once.
    pub concurrency: usize,
}

impl VerifyJob {
    /// Runs the job to the end.
    pub async fn run(self: Arc<Self>, ctx: JobCtx) -> Result<()> {
        ctx.phase("reading manifest").await;
        let manifest = self.repository.load_complete(&self.spec.name).await?;
        let files: Vec<_> = manifest_files(&manifest).cloned().collect();
        ctx.update(|j| {
            if let Some(p) = j.progress.as_mut() {
                p.files_total = files.len() as u64;
                p.bytes_total = files.iter().map(|f| f.size_bytes).sum();
            }
        });
        ctx.phase("verifying").await;
        let store = self.repository.store().clone();
        let checks = files.into_iter().map(|f| {
            let (store, ctx) = (store.clone(), ctx.clone());
            async move {
                ctx.check_cancelled()?;
                let problem = match store.hash(&f.path).await {
                    Ok(got) if got.size == f.size_bytes && got.sha256 == f.sha256 => None,
                    Ok(got) => Some(format!(
                        "{}: {} bytes with SHA-256 {}, manifest says {} bytes with {}",
                        f.path, got.size, got.sha256, f.size_bytes, f.sha256
                    )),
                    Err(e) => Some(format!("{}: {e}", f.path)),
                };
                ctx.file_done(None, f.size_bytes);
                Ok::<_, Error>(problem)
            }
        });
        let mut bad = Vec::new();
        let mut stream = futures::stream::iter(checks).buffer_unordered(self.concurrency);
        while let Some(r) = stream.next().await {
            if let Some(problem) = r? {
                bad.push(problem);
            }
        }
        if bad.is_empty() {
            return Ok(());
        }
        bad.sort();
        let total = bad.len();
        for b in bad.iter().take(NAMED) {
            ctx.warn(b.clone()).await;
        }
        Err(Error::Corrupt {
            path: bad[0].split(':').next().unwrap_or_default().to_owned(),
            message: format!(
                "{total} file(s) of backup {:?} are damaged or missing; first: {}",
                self.spec.name,
                bad.iter().take(3).cloned().collect::<Vec<_>>().join("; ")
            ),
        })
    }
}
