//! The verify job: re-reads every file a backup's manifest lists and checks its size
//! and SHA-256, so damage in the repository is found before a restore needs the data.
//! With `deep`, it also decodes every file without Milvus (`rows::deep`): fields of a
//! segment agree, counts match the manifest, live rows are recomputed and reported per
//! collection.
//! Every damaged or missing file is named (up to a bound) and the job fails with
//! `DATA_LOSS`; nothing is changed.

use std::sync::Arc;

use futures::StreamExt;
use milvault_proto::milvault::v1::{
    BackupManifest, CollectionReport, JobKind, JobPhase, VerifyBackupRequest, job,
};

use crate::app::App;
use crate::error::{Error, Result};
use crate::jobs::{JobCtx, Lock, Submission};
use crate::repository::{Repository, manifest_files};
use crate::rows::{Files, deep};
use crate::selection::validate_backup_name;

/// How many damaged files the error names.
const NAMED: usize = 10;

/// Everything a verify job needs.
pub(crate) struct VerifyJob {
    /// The request, names resolved.
    request: VerifyBackupRequest,
    /// Where the backup is.
    repository: Repository,
    /// Files read at once.
    concurrency: usize,
}

/// One damaged or missing file (or segment).
struct Problem {
    path: String,
    what: String,
    /// The file is not in the repository at all ([`Error::FileMissing`]).
    missing: Option<Error>,
}

impl VerifyJob {
    /// Checks a request and prepares the job; refused at once when there is nothing
    /// complete to verify.
    pub(crate) async fn prepare(app: &App, mut req: VerifyBackupRequest) -> Result<Submission> {
        validate_backup_name(&req.name)?;
        let repository = app.repository(&req.repository)?.clone();
        repository.load_complete(&req.name).await?;
        req.repository = repository.name().to_owned();
        let job = Arc::new(VerifyJob {
            request: req.clone(),
            repository: repository.clone(),
            concurrency: app.config.limits.copy_concurrency,
        });
        Ok(Submission {
            kind: JobKind::Verify,
            backup: req.name.clone(),
            cluster: String::new(),
            repository: repository.name().to_owned(),
            locks: vec![Lock::backup_reader(repository.name(), &req.name)],
            request: job::Request::VerifyBackup(req),
            run: Box::new(move |ctx| Box::pin(job.run(ctx))),
        })
    }

    /// Runs the job to the end.
    async fn run(self: Arc<Self>, ctx: JobCtx) -> Result<()> {
        let name = &self.request.name;
        ctx.phase(JobPhase::ReadingManifest, "").await;
        let manifest = self.repository.load_complete(name).await?;
        let files: Vec<_> = manifest_files(&manifest).cloned().collect();
        ctx.plan_files(files.len() as u64, files.iter().map(|f| f.size_bytes).sum());
        ctx.phase(JobPhase::Verifying, "").await;
        let repository = &self.repository;
        let checks = files.into_iter().map(|f| {
            let ctx = ctx.clone();
            async move {
                ctx.check_cancelled()?;
                let problem = match repository.hash_file(name, &f.path).await {
                    Ok(got) if got.size == f.size_bytes && got.sha256 == f.sha256 => None,
                    Ok(got) => Some((
                        format!(
                            "{} bytes with SHA-256 {}, manifest says {} bytes with {}",
                            got.size, got.sha256, f.size_bytes, f.sha256
                        ),
                        None,
                    )),
                    Err(e @ Error::FileMissing { .. }) => Some((e.to_string(), Some(e))),
                    Err(e) => Some((e.to_string(), None)),
                };
                ctx.file_done(None, f.size_bytes);
                Ok::<_, Error>(problem.map(|(what, missing)| Problem {
                    path: f.path,
                    what,
                    missing,
                }))
            }
        });
        let mut bad = Vec::new();
        let mut stream = futures::stream::iter(checks).buffer_unordered(self.concurrency);
        while let Some(r) = stream.next().await {
            if let Some(problem) = r? {
                bad.push(problem);
            }
        }
        drop(stream);
        if self.request.deep {
            bad.extend(self.deep(&ctx, &manifest).await?);
        }
        if bad.is_empty() {
            return Ok(());
        }
        bad.sort_by(|a, b| a.path.cmp(&b.path));
        let total = bad.len();
        for b in bad.iter().take(NAMED) {
            ctx.warn(format!("{}: {}", b.path, b.what)).await;
        }
        let first = bad
            .iter()
            .take(3)
            .map(|b| format!("{}: {}", b.path, b.what))
            .collect::<Vec<_>>()
            .join("; ");
        let corrupt = Error::Corrupt {
            path: bad[0].path.clone(),
            message: format!(
                "{total} file(s) of backup {name:?} are damaged or missing; first: {first}"
            ),
        };
        // Only missing files: say so (`FILE_MISSING`); the warnings name them all.
        if bad.iter().all(|b| b.missing.is_some()) {
            return Err(bad.into_iter().find_map(|b| b.missing).unwrap_or(corrupt));
        }
        Err(corrupt)
    }
}

impl VerifyJob {
    /// Decodes every file of every collection without Milvus; reports the rows found
    /// per collection and returns every problem.
    async fn deep(&self, ctx: &JobCtx, manifest: &BackupManifest) -> Result<Vec<Problem>> {
        ctx.phase(JobPhase::Counting, "decoding every file").await;
        let files = Files {
            store: self.repository.store(),
            backup: &self.request.name,
        };
        let mut problems = Vec::new();
        for c in &manifest.collections {
            ctx.check_cancelled()?;
            ctx.phase(JobPhase::Counting, format!("{}.{}", c.database, c.name))
                .await;
            let checked = deep::check_collection(&files, c).await?;
            let mut report = CollectionReport {
                database: c.database.clone(),
                collection: c.name.clone(),
                rows: checked.live,
                size_bytes: c.size_bytes,
                ..Default::default()
            };
            if !c.rows_counted {
                report.warnings.push(
                    "the manifest predates row counts: rows were recomputed, not compared".into(),
                );
            }
            report.warnings.extend(
                checked
                    .problems
                    .iter()
                    .map(|p| format!("{}: {}", p.place, p.what)),
            );
            ctx.report_collection(report).await;
            problems.extend(checked.problems.into_iter().map(|p| Problem {
                path: p.place,
                what: p.what,
                missing: None,
            }));
        }
        Ok(problems)
    }
}
