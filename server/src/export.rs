//! The export job: the live rows of a backup's collections as Parquet files
//! (`rows::export` has the layout and type mapping), to a local directory of the
//! server or a prefix of a configured repository. No Milvus is involved.

use std::collections::BTreeMap;
use std::sync::Arc;

use milvault_proto::milvault::v1::{
    BackupManifest, CollectionReport, ExportBackupRequest, JobKind, JobPhase, job,
};

use crate::app::App;
use crate::config::StorageConfig;
use crate::error::{Error, Result};
use crate::jobs::{CollectionPlan, JobCtx, Lock, Submission};
use crate::repository::Repository;
use crate::rows::Files;
use crate::rows::export::{Destination, export_collection};
use crate::selection::{Filter, validate_backup_name};
use crate::storage::Store;

/// Everything an export job needs.
pub(crate) struct ExportJob {
    request: ExportBackupRequest,
    manifest: BackupManifest,
    /// Indexes of the selected collections in the manifest.
    selected: Vec<usize>,
    repository: Repository,
    /// Where files go, and under which prefix.
    dest: Store,
    dest_prefix: String,
}

/// Parses a destination: an absolute directory, or `REPOSITORY:PREFIX`.
fn destination(app: &App, backup: &str, text: &str) -> Result<(Store, String)> {
    if text.starts_with('/') {
        let mut options = BTreeMap::new();
        options.insert("root".to_owned(), text.to_owned());
        let store = Store::open(
            format!("export destination {text}"),
            &StorageConfig {
                scheme: "fs".into(),
                options,
            },
            &app.config.timeouts.storage(),
        )?;
        return Ok((store, String::new()));
    }
    let Some((repo, prefix)) = text.split_once(':') else {
        return Err(Error::invalid(
            "destination",
            format!("{text:?} is neither an absolute directory nor REPOSITORY:PREFIX"),
        ));
    };
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() || prefix == "backups" || prefix.starts_with("backups/") {
        return Err(Error::invalid(
            "destination",
            format!(
                "prefix {prefix:?} must be a folder of its own, outside the repository's backups/ (exporting backup {backup:?})"
            ),
        ));
    }
    let store = app.repository(repo)?.store().clone();
    Ok((store, format!("{prefix}/")))
}

impl ExportJob {
    /// Checks a request and prepares the job: backup, selection, destination.
    pub(crate) async fn prepare(app: &App, mut req: ExportBackupRequest) -> Result<Submission> {
        validate_backup_name(&req.name)?;
        let filter = Filter::parse(&req.collections)?;
        let repository = app.repository(&req.repository)?.clone();
        req.repository = repository.name().to_owned();
        let manifest = repository.load_complete(&req.name).await?;
        let selected: Vec<usize> = manifest
            .collections
            .iter()
            .enumerate()
            .filter(|(_, c)| filter.matches(&c.database, &c.name))
            .map(|(i, _)| i)
            .collect();
        for (db, coll) in filter.exact_names() {
            if !manifest
                .collections
                .iter()
                .any(|c| c.database == db && c.name == coll)
            {
                return Err(Error::CollectionNotFound {
                    place: format!("backup {:?}", req.name),
                    database: db,
                    collection: coll,
                });
            }
        }
        let (dest, dest_prefix) = destination(app, &req.name, &req.destination)?;
        let job = Arc::new(ExportJob {
            request: req.clone(),
            manifest,
            selected,
            repository: repository.clone(),
            dest,
            dest_prefix,
        });
        Ok(Submission {
            kind: JobKind::Export,
            backup: req.name.clone(),
            cluster: String::new(),
            repository: repository.name().to_owned(),
            locks: vec![Lock::backup_reader(repository.name(), &req.name)],
            request: job::Request::ExportBackup(req),
            run: Box::new(move |ctx| Box::pin(job.run(ctx))),
        })
    }

    /// Runs the job to the end.
    async fn run(self: Arc<Self>, ctx: JobCtx) -> Result<()> {
        let plan: Vec<CollectionPlan> = self
            .selected
            .iter()
            .map(|i| {
                let c = &self.manifest.collections[*i];
                CollectionPlan {
                    database: c.database.clone(),
                    collection: c.name.clone(),
                    bytes: c.size_bytes,
                    files: c.segments.iter().map(|s| s.insert_logs.len() as u64).sum(),
                }
            })
            .collect();
        ctx.plan_collections(&plan);
        let files = Files {
            store: self.repository.store(),
            backup: &self.request.name,
        };
        for (idx, i) in self.selected.iter().enumerate() {
            ctx.check_cancelled()?;
            let c = &self.manifest.collections[*i];
            ctx.phase(JobPhase::Exporting, format!("{}.{}", c.database, c.name))
                .await;
            ctx.collection_phase(idx, JobPhase::Exporting);
            let dest = Destination {
                store: &self.dest,
                prefix: format!("{}{}/{}/", self.dest_prefix, c.database, c.name),
            };
            let exported = export_collection(&files, c, &dest, &self.request.name).await?;
            for seg in &c.segments {
                for f in &seg.insert_logs {
                    ctx.file_done(Some(idx), f.size_bytes);
                }
            }
            if c.rows_counted && exported.rows != c.live_rows {
                return Err(Error::RowsMismatch {
                    collection: format!("{}.{}", c.database, c.name),
                    message: format!(
                        "exported {} rows, the backup holds {} live rows",
                        exported.rows, c.live_rows
                    ),
                });
            }
            ctx.report_collection(CollectionReport {
                database: c.database.clone(),
                collection: c.name.clone(),
                rows: exported.rows,
                size_bytes: c.size_bytes,
                outputs: exported.files,
                ..Default::default()
            })
            .await;
            ctx.collection_done(idx);
        }
        Ok(())
    }
}
