//! The backup job: describe → flush → pause GC → list segment files → re-read
//! partitions and indexes → copy (bounded, hashed; or reference a base's copy) →
//! count rows → write the manifest last, then its catalog entry.
//!
//! The segment list is taken once, after the flush, and exactly those files are copied:
//! compaction may retire segments meanwhile, but their files stay on storage for
//! Milvus's drop tolerance (hours), so the copy is a consistent snapshot. A file that
//! vanished anyway fails the job; it never yields a manifest.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use milvault_proto::milvault::v1::{
    BackupFile, BackupManifest, BackupStart, BackupSummary, CollectionBackup, CollectionReport,
    CreateBackupRequest, DataType, DatabaseBackup, JobKind, JobPhase, JobResource, RbacReport,
    ResourceKind, RowCheck, RowCheckMethod, SegmentBackup, SourceInfo, job,
};

use crate::app::{App, Cluster};
use crate::catalog::{self, Entry};
use crate::config::TimeoutsConfig;
use crate::error::{Error, Result};
use crate::incremental::{Base, LATEST, latest_of};
use crate::jobs::{CollectionPlan, JobCtx, Lock, Submission, now};
use crate::milvus::management::GcPauseGuard;
use crate::milvus::rest::{DescribedSegment, Describer};
use crate::milvus::types::{SegmentInfo, SegmentLevel, SegmentState};
use crate::milvus::{GcPause, MilvusClient, PkField};
use crate::repository::{FORMAT_VERSION, Repository, segment_files};
use crate::rows::{Files, count};
use crate::s3copy::ServerSideCopy;
use crate::selection::{Filter, validate_backup_name};
use crate::storage::Store;

/// Everything a backup job needs.
pub(crate) struct BackupJob {
    /// The request, names resolved.
    request: CreateBackupRequest,
    /// Parsed filter.
    filter: Filter,
    /// Source cluster.
    cluster: Cluster,
    /// Destination.
    repository: Repository,
    /// Files copied at once.
    copy_concurrency: usize,
    /// Deadlines for waiting on Milvus.
    timeouts: TimeoutsConfig,
    /// The server, for releasing what a failed job created.
    app: Arc<App>,
    /// The backup this one is incremental against.
    base: Option<Base>,
    /// Said in the job when `--base latest` found nothing to build on.
    base_note: Option<String>,
    /// Copies inside S3 when cluster and repository share an S3 endpoint.
    server_side: Option<ServerSideCopy>,
}

/// Collections flushed at once.
const FLUSHES_AT_ONCE: usize = 4;

/// Longest a server-side copy may take before the allowance for its size (one second
/// per 8 MiB, `s3copy`): a stalled copy falls back to streaming instead of holding the
/// job for an hour.
const SERVER_SIDE_COPY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One file to copy.
struct Planned {
    collection: usize,
    collection_name: String,
    segment: i64,
    source_key: String,
    size: u64,
}

/// What the copy step did, for the summary.
#[derive(Default)]
struct Transfer {
    copied_bytes: u64,
    copied_files: u64,
    referenced_bytes: u64,
    referenced_files: u64,
}

impl BackupJob {
    /// Checks a request and prepares the job: names, filter, locks.
    pub(crate) async fn prepare(
        app: &Arc<App>,
        mut req: CreateBackupRequest,
    ) -> Result<Submission> {
        validate_backup_name(&req.name)?;
        let filter = Filter::parse(&req.collections)?;
        let cluster = app.cluster(&req.cluster)?.clone();
        let repository = app.repository(&req.repository)?.clone();
        if app.jobs.backup_in_progress(repository.name(), &req.name)
            || repository.backup_exists(&req.name).await?
        {
            return Err(Error::BackupExists {
                name: req.name,
                repository: repository.name().to_owned(),
            });
        }
        req.cluster = cluster.name.clone();
        req.repository = repository.name().to_owned();
        let (base, base_note) = resolve_base(&repository, &cluster.name, &req.base).await?;
        req.base = base
            .as_ref()
            .map(|b| b.name().to_owned())
            .unwrap_or_default();
        let mut locks = vec![Lock::backup_writer(repository.name(), &req.name)];
        // The base and every backup holding bytes it points at must stay while this
        // backup points there too.
        if let Some(b) = &base {
            locks.extend(
                b.holders()
                    .map(|h| Lock::backup_reader(repository.name(), h)),
            );
        }
        let job = Arc::new(BackupJob {
            request: req.clone(),
            filter,
            cluster: cluster.clone(),
            repository: repository.clone(),
            copy_concurrency: app.config.limits.copy_concurrency,
            timeouts: app.config.timeouts.clone(),
            app: app.clone(),
            base,
            base_note,
            server_side: ServerSideCopy::between(
                &cluster.config.storage,
                repository.store().config(),
                SERVER_SIDE_COPY_TIMEOUT,
            ),
        });
        Ok(Submission {
            kind: JobKind::Backup,
            backup: req.name.clone(),
            cluster: cluster.name.clone(),
            repository: repository.name().to_owned(),
            locks,
            request: job::Request::CreateBackup(req),
            run: Box::new(move |ctx| Box::pin(job.run(ctx))),
        })
    }

    /// Runs the job to the end.
    async fn run(self: Arc<Self>, ctx: JobCtx) -> Result<()> {
        let result = self.run_inner(&ctx).await;
        if let Err(e) = &result {
            // A backup that did not finish leaves no files behind.
            tracing::warn!(error = %e, "backup failed; removing its files");
            ctx.phase(JobPhase::CleaningUp, "").await;
            let notes = crate::cleanup::release(&self.app, &ctx.resources()).await;
            ctx.cleaned(notes).await;
        }
        result
    }

    async fn run_inner(&self, ctx: &JobCtx) -> Result<()> {
        let ctx = ctx.clone();
        let start_time = now();
        if let Some(note) = &self.base_note {
            ctx.warn(note.clone()).await;
        }
        ctx.phase(JobPhase::Connecting, &self.cluster.name).await;
        let client =
            MilvusClient::connect(&self.cluster.name, &self.cluster.config, &self.timeouts).await?;
        ctx.check_cancelled()?;

        ctx.phase(JobPhase::Describing, "").await;
        let (databases, mut collections) = self.describe(&client).await?;
        let plan: Vec<CollectionPlan> = collections
            .iter()
            .map(|c| CollectionPlan {
                database: c.database.clone(),
                collection: c.name.clone(),
                ..Default::default()
            })
            .collect();
        ctx.plan_collections(&plan);
        ctx.check_cancelled()?;

        let mut backup_ts = 0u64;
        // Milvus 2.2 keeps deletes of flushed segments in memory: take a timestamp
        // now and, after the flushes, wait until everything before it is in storage.
        let flush_all_from = if client.features().flush_writes_deletes() {
            None
        } else {
            let ts = client.flush_all_timestamp().await?;
            if ts.is_none() {
                ctx.warn(format!(
                    "Milvus {} has no GetFlushAllState: nothing proves its buffered deletes reached storage; the row check against the source decides",
                    client.version_text()
                ))
                .await;
            }
            ts
        };
        // Several collections flush at once: a flush is mostly waiting for Milvus
        // (about a second on 2.3 even when nothing changed).
        let flushes: Vec<_> = collections
            .iter()
            .enumerate()
            .map(|(idx, c)| flush_one(&ctx, &client, idx, c))
            .collect();
        let flushed: Vec<(u64, (RowCheckMethod, i64))> = futures::stream::iter(flushes)
            .buffered(FLUSHES_AT_ONCE)
            .try_collect()
            .await?;
        let mut before = Vec::with_capacity(collections.len());
        for (ts, rows) in flushed {
            backup_ts = backup_ts.max(ts);
            before.push(rows);
        }

        if let Some(ts) = flush_all_from {
            ctx.phase(
                JobPhase::Flushing,
                format!(
                    "waiting for Milvus {} to write buffered deletes (dataNode.segment.syncPeriod, 10 min by default)",
                    client.version_text()
                ),
            )
            .await;
            client.wait_flush_all(ts, ctx.cancel_token()).await?;
            backup_ts = backup_ts.max(ts);
        }

        let rbac = if self.request.include_rbac {
            ctx.phase(JobPhase::ReadingRbac, "").await;
            let all_dbs = client.list_databases().await?;
            let rbac = crate::rbac::export(&client, &all_dbs).await?;
            if rbac.passwords_missing {
                ctx.warn(format!(
                    "Milvus {} cannot export passwords: {} users are backed up without them; a restore gives new users a random password to reset",
                    client.version_text(),
                    rbac.users.len()
                ))
                .await;
            }
            Some(rbac)
        } else {
            None
        };

        let mut pauses = Vec::new();
        let mode = client.features().gc_pause();
        let mgmt_url = self.cluster.config.management_url();
        let mgmt = mgmt_url.as_deref();
        let ids: Vec<i64> = match mode {
            GcPause::Ticketed => collections.iter().map(|c| c.collection_id).collect(),
            _ => vec![0],
        };
        for id in ids {
            match GcPauseGuard::pause(mgmt, mode, id).await {
                Ok(g) => pauses.push(g),
                Err(w) => {
                    ctx.warn(w).await;
                    break;
                }
            }
        }

        let folder = ctx
            .hold(JobResource {
                kind: ResourceKind::Backup as i32,
                repository: self.repository.name().to_owned(),
                name: self.request.name.clone(),
                path: Repository::backup_dir(&self.request.name),
                ..Default::default()
            })
            .await;
        let started = BackupStart {
            id: ctx.id(),
            cluster: self.cluster.name.clone(),
            start_time: Some(start_time),
            job_id: ctx.id(),
            base: self.request.base.clone(),
        };
        let outcome = async {
            self.repository
                .write_started(&self.request.name, &started)
                .await?;
            self.repository
                .catalog()
                .note(&self.request.name, Some(Entry::Incomplete(Some(started))));
            self.list_and_copy(&ctx, &client, &mut collections).await
        }
        .await;
        for p in pauses {
            p.resume().await;
        }
        let transfer = outcome?;

        ctx.phase(JobPhase::Counting, "").await;
        let files = Files {
            store: self.repository.store(),
            backup: &self.request.name,
        };
        for (idx, c) in collections.iter_mut().enumerate() {
            ctx.check_cancelled()?;
            ctx.collection_phase(idx, JobPhase::Counting);
            // The same files as the base's: the same rows.
            let rows = match self.base.as_ref().and_then(|b| b.same_rows(c)) {
                Some(rows) => rows,
                None => count::count_collection(&files, c).await?,
            };
            count::record(c, &rows);
            let after = source_rows(&client, c, &ctx).await?;
            let check = check_source(c, before[idx], after)?;
            if check.changed {
                ctx.warn(format!("{}.{}: {}", c.database, c.name, check.detail))
                    .await;
            }
            c.row_check = Some(check);
            ctx.collection_done(idx);
        }

        ctx.phase(JobPhase::Sealing, "").await;
        let summary = BackupSummary {
            size_bytes: collections.iter().map(|c| c.size_bytes).sum(),
            file_count: collections
                .iter()
                .flat_map(|c| &c.segments)
                .map(|s| (s.insert_logs.len() + s.delta_logs.len() + s.stats_logs.len()) as u64)
                .sum(),
            row_count: collections.iter().map(|c| c.live_rows).sum(),
            inserted_rows: collections.iter().map(|c| c.row_count).sum(),
            collection_count: collections.len() as u32,
            database_count: databases.len() as u32,
            copied_bytes: transfer.copied_bytes,
            copied_files: transfer.copied_files,
            referenced_bytes: transfer.referenced_bytes,
            referenced_files: transfer.referenced_files,
        };
        let references = match &self.base {
            Some(b) => b.references(
                collections
                    .iter()
                    .flat_map(|c| &c.segments)
                    .flat_map(segment_files),
            ),
            None => Vec::new(),
        };
        let manifest = BackupManifest {
            format_version: FORMAT_VERSION,
            name: self.request.name.clone(),
            id: ctx.id(),
            source: Some(SourceInfo {
                cluster: self.cluster.name.clone(),
                address: self.cluster.config.address.clone(),
                milvus_version: client.version_text().to_owned(),
                storage_scheme: self.cluster.config.storage.scheme.clone(),
            }),
            start_time: Some(start_time),
            end_time: Some(now()),
            backup_ts,
            databases,
            collections,
            rbac: rbac.clone(),
            summary: Some(summary),
            filters: self.request.collections.clone(),
            warnings: ctx.warnings(),
            base: self.request.base.clone(),
            references,
        };
        ctx.check_cancelled()?;
        // Checked as a reader will check it, before it is made the backup's truth.
        crate::repository::decode_manifest(
            &manifest.name,
            &crate::repository::encode_manifest(&manifest)?,
        )?;
        self.repository.write_manifest(&manifest).await?;
        ctx.update_resource(folder, |r| r.kept = true).await;
        // The manifest decides; a missing catalog entry is found and rewritten by
        // the next listing.
        if let Err(e) = self.repository.write_catalog_entry(&manifest).await {
            tracing::warn!(error = %e, "could not write the catalog entry");
        }
        self.repository.catalog().note(
            &manifest.name,
            Some(Entry::Complete(Arc::new(crate::repository::catalog_entry(
                &manifest,
            )))),
        );
        for c in &manifest.collections {
            ctx.report_collection(CollectionReport {
                database: c.database.clone(),
                collection: c.name.clone(),
                rows: c.live_rows,
                size_bytes: c.size_bytes,
                ..Default::default()
            })
            .await;
        }
        if let Some(r) = rbac {
            let n = |len: usize| u32::try_from(len).unwrap_or(u32::MAX);
            ctx.report_rbac(RbacReport {
                users: n(r.users.len()),
                roles: n(r.roles.len()),
                grants: n(r.grants.len()),
                users_needing_password_reset: Vec::new(),
                ..Default::default()
            })
            .await;
        }
        Ok(())
    }

    /// Reads every selected database and collection's metadata.
    async fn describe(
        &self,
        client: &MilvusClient,
    ) -> Result<(Vec<DatabaseBackup>, Vec<CollectionBackup>)> {
        let mut databases = Vec::new();
        let mut collections = Vec::new();
        let mut dbs = client.list_databases().await?;
        dbs.sort();
        for db in dbs {
            if !self.filter.may_match_database(&db) {
                continue;
            }
            let mut any = false;
            // Milvus lists in no particular order; manifests list by name, so two
            // backups of the same data read the same.
            let mut names = client.show_collections(&db).await?;
            names.sort();
            for name in names {
                if !self.filter.matches(&db, &name) {
                    continue;
                }
                any = true;
                collections.push(describe_collection(client, &db, &name).await?);
            }
            if any || self.filter.is_all() {
                databases.push(DatabaseBackup {
                    name: db,
                    ..Default::default()
                });
            }
        }
        for (db, coll) in self.filter.exact_names() {
            if !collections
                .iter()
                .any(|c| c.database == db && c.name == coll)
            {
                return Err(Error::CollectionNotFound {
                    place: format!("cluster {:?}", self.cluster.name),
                    database: db,
                    collection: coll,
                });
            }
        }
        Ok((databases, collections))
    }

    async fn list_and_copy(
        &self,
        ctx: &JobCtx,
        client: &MilvusClient,
        collections: &mut [CollectionBackup],
    ) -> Result<Transfer> {
        ctx.phase(JobPhase::Listing, "").await;
        let mut planned = Vec::new();
        let mut describer = Describer::new(&self.cluster.config, client.features());
        for (idx, c) in collections.iter_mut().enumerate() {
            ctx.check_cancelled()?;
            ctx.collection_phase(idx, JobPhase::Listing);
            let segments = client
                .settled_segments(&c.database, &c.name, ctx.cancel_token())
                .await?;
            // segments/describe (2.5.8+) names the files each segment owns; without it
            // (older, or failed: a warning) the segment folders are listed.
            let flushed: Vec<i64> = segments
                .iter()
                .filter(|s| s.state == SegmentState::Flushed)
                .map(|s| s.id)
                .collect();
            let described = match describer
                .describe(&c.database, c.collection_id, &flushed)
                .await
            {
                Ok(d) => d,
                Err(w) => {
                    ctx.warn(format!("{}.{}: {w}", c.database, c.name)).await;
                    None
                }
            };
            for seg in segments {
                if seg.state != SegmentState::Flushed {
                    // Growing segments hold rows written after the flush; dropped ones
                    // were compacted into segments that are listed themselves.
                    continue;
                }
                let only = described.as_ref().and_then(|d| d.get(&seg.id));
                let files = list_segment(&self.cluster.store, c, &seg, only).await?;
                for f in segment_files(&files) {
                    if self
                        .base
                        .as_ref()
                        .and_then(|b| {
                            b.same_file(&f.source_key, f.size_bytes, &f.source_fingerprint)
                        })
                        .is_some()
                    {
                        continue;
                    }
                    planned.push(Planned {
                        collection: idx,
                        collection_name: format!("{}.{}", c.database, c.name),
                        segment: seg.id,
                        source_key: f.source_key.clone(),
                        size: f.size_bytes,
                    });
                }
                c.row_count += seg.num_rows;
                c.segments.push(files);
            }
            c.segments.sort_by_key(|s| s.segment_id);
        }
        // Read after the listing, so every partition and index a listed segment can
        // belong to is in the manifest; then every segment must fit them.
        for c in collections.iter_mut() {
            ctx.check_cancelled()?;
            refresh_layout(client, c).await?;
            check_segments_fit(c)?;
        }
        // The manifest this backup will write must be one a reader accepts: found
        // out now, not after the copy.
        crate::repository::encode_manifest(&BackupManifest {
            format_version: FORMAT_VERSION,
            name: self.request.name.clone(),
            collections: collections.to_vec(),
            ..Default::default()
        })?;
        for i in 0..collections.len() {
            let mine = planned.iter().filter(|p| p.collection == i);
            ctx.collection_totals(i, mine.clone().map(|p| p.size).sum(), mine.count() as u64);
            ctx.collection_phase(i, JobPhase::Copying);
        }

        ctx.phase(JobPhase::Copying, "").await;
        let name = self.request.name.clone();
        // Set once a server-side copy failed: the rest stream (one warning).
        let streaming_only = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let results: Vec<(String, crate::storage::Copied)> = futures::stream::iter(planned.into_iter().map(|p| {
            let ctx = ctx.clone();
            let src = self.cluster.store.clone();
            let dst = self.repository.store().clone();
            let name = name.clone();
            let server_side = self.server_side.clone();
            let streaming_only = streaming_only.clone();
            async move {
                ctx.check_cancelled()?;
                let key = Repository::file_key(&name, &p.source_key);
                // A cancel stops the copy inside the file; the cleanup removes the rest.
                let copy = copy_file(&src, &dst, &p.source_key, &key, p.size, server_side.as_ref(), &streaming_only);
                let copied = tokio::select! {
                    r = copy => r,
                    _ = ctx.cancel_token().cancelled() => Err(Error::Cancelled),
                };
                let copied = copied.map_err(|e| match e {
                    Error::Storage(s) if s.kind == opendal::ErrorKind::NotFound => Error::SegmentFiles {
                        collection: p.collection_name.clone(),
                        segment: p.segment,
                        message: format!(
                            "{} disappeared during the copy (compacted and collected); run the backup again",
                            p.source_key
                        ),
                    },
                    other => other,
                })?;
                if copied.size != p.size {
                    return Err(Error::Corrupt {
                        path: p.source_key.clone(),
                        message: format!("listed with {} bytes, read {} bytes", p.size, copied.size),
                    });
                }
                if ctx.file_done(Some(p.collection), copied.size) {
                    ctx.collection_done(p.collection);
                }
                Ok::<_, Error>((p.source_key, copied))
            }
        }))
        .buffer_unordered(self.copy_concurrency)
        .try_collect()
        .await?;

        let by_key: BTreeMap<String, crate::storage::Copied> = results.into_iter().collect();
        let mut transfer = Transfer::default();
        for c in collections.iter_mut() {
            let mut size = 0;
            for s in c.segments.iter_mut() {
                for f in s
                    .insert_logs
                    .iter_mut()
                    .chain(s.delta_logs.iter_mut())
                    .chain(s.stats_logs.iter_mut())
                {
                    if let Some(copied) = by_key.get(&f.source_key) {
                        f.sha256 = copied.sha256.clone();
                        f.path = Repository::file_key(&self.request.name, &f.source_key);
                        f.size_bytes = copied.size;
                        transfer.copied_bytes += copied.size;
                        transfer.copied_files += 1;
                    } else {
                        let found = self
                            .base
                            .as_ref()
                            .and_then(|b| {
                                b.same_file(&f.source_key, f.size_bytes, &f.source_fingerprint)
                                    .map(|found| b.reference(found))
                            })
                            .ok_or_else(|| {
                                Error::internal("a planned file was not copied", &f.source_key)
                            })??;
                        *f = found;
                        transfer.referenced_bytes += f.size_bytes;
                        transfer.referenced_files += 1;
                    }
                    size += f.size_bytes;
                }
            }
            c.size_bytes = size;
        }
        for i in 0..collections.len() {
            ctx.collection_done(i);
        }
        Ok(transfer)
    }
}

/// Copies one file: inside S3 (while this process reads the source once for its
/// SHA-256) where the stores allow it, else streamed through with the hash.
async fn copy_file(
    src: &Store,
    dst: &Store,
    src_key: &str,
    dst_key: &str,
    size: u64,
    server_side: Option<&ServerSideCopy>,
    streaming_only: &std::sync::atomic::AtomicBool,
) -> Result<crate::storage::Copied> {
    use std::sync::atomic::Ordering;
    if let Some(s3) = server_side
        .filter(|_| size < crate::s3copy::MAX_COPY_BYTES && !streaming_only.load(Ordering::Relaxed))
    {
        let (copied, hashed) = tokio::join!(s3.copy(src_key, dst_key, size), src.hash(src_key));
        match copied {
            Ok(()) => {
                tracing::debug!(store = dst.name(), key = dst_key, "copied inside S3");
                return hashed;
            }
            Err(e) => {
                if !streaming_only.swap(true, Ordering::Relaxed) {
                    tracing::warn!(store = dst.name(), error = %e, "server-side copy refused; streaming the files through instead");
                }
            }
        }
    }
    src.copy_to(src_key, dst, dst_key, None).await
}

/// What the source serves for a collection, counted the strongest way its version
/// offers without loading it.
/// Flushes one collection and says what the source served around the flush;
/// returns the flush timestamp and that count.
async fn flush_one(
    ctx: &JobCtx,
    client: &MilvusClient,
    idx: usize,
    c: &CollectionBackup,
) -> Result<(u64, (RowCheckMethod, i64))> {
    ctx.check_cancelled()?;
    ctx.phase(JobPhase::Flushing, format!("{}.{}", c.database, c.name))
        .await;
    ctx.collection_phase(idx, JobPhase::Flushing);
    // What the source serves, from just before the flush: if it still serves that
    // after the copy, the collection did not change meanwhile.
    let early = if c.loaded {
        Some(source_rows(client, c, ctx).await?)
    } else {
        None
    };
    let ts = client
        .flush_and_wait(&c.database, &c.name, ctx.cancel_token())
        .await?;
    let before = match early {
        Some(n) => n,
        None => source_rows(client, c, ctx).await?,
    };
    Ok((ts, before))
}

async fn source_rows(
    client: &MilvusClient,
    c: &CollectionBackup,
    ctx: &JobCtx,
) -> Result<(RowCheckMethod, i64)> {
    if !c.loaded {
        return Ok((
            RowCheckMethod::FlushedRows,
            client.flushed_rows(&c.database, &c.name).await?,
        ));
    }
    client
        .wait_while_loading(&c.database, &c.name, ctx.cancel_token())
        .await?;
    if client.features().supports_count_star() {
        return Ok((
            RowCheckMethod::CountStar,
            client.count_rows(&c.database, &c.name).await?,
        ));
    }
    let pk = c
        .schema
        .as_ref()
        .and_then(|s| s.fields.iter().find(|f| f.is_primary_key))
        .ok_or_else(|| Error::Manifest {
            name: String::new(),
            message: format!("{}.{} has no primary key", c.database, c.name),
        })?;
    let field = PkField {
        name: &pk.name,
        is_varchar: pk.data_type() == DataType::Varchar,
    };
    Ok((
        RowCheckMethod::PkPages,
        client
            .count_by_keys(&c.database, &c.name, &field, ctx.cancel_token())
            .await?,
    ))
}

/// Compares a collection's counted rows with what the source served before the flush
/// and after the copy. Unchanged and different is a failed backup; changed is recorded.
fn check_source(
    c: &CollectionBackup,
    (method, before): (RowCheckMethod, i64),
    (_, after): (RowCheckMethod, i64),
) -> Result<RowCheck> {
    let (ours, what) = match method {
        RowCheckMethod::FlushedRows => (
            c.row_count,
            "inserted rows (the collection is not loaded: Milvus's flushed row count)",
        ),
        RowCheckMethod::PkPages => (c.live_rows, "live rows (paging primary keys)"),
        _ => (c.live_rows, "live rows (count(*))"),
    };
    let changed = before != after;
    let detail = if changed {
        format!(
            "changed during the backup: the source served {before} {what} before the flush and {after} after the copy; the backup holds {ours}, the rows of the flush"
        )
    } else {
        format!("the backup holds {ours} {what}, as the source serves")
    };
    if !changed && ours != before {
        return Err(Error::RowsMismatch {
            collection: format!("{}.{}", c.database, c.name),
            message: format!(
                "the backup holds {ours} {what} but the source serves {before}, and the collection did not change during the backup: rows or deletes did not reach storage"
            ),
        });
    }
    Ok(RowCheck {
        method: method as i32,
        source_rows_before: before,
        source_rows_after: after,
        changed,
        detail,
    })
}

/// Reads one collection's metadata (no segments yet).
async fn describe_collection(
    client: &MilvusClient,
    db: &str,
    name: &str,
) -> Result<CollectionBackup> {
    let d = client.describe_collection(db, name).await?;
    if let Some(raw) = crate::milvus::schema_rules::decode(&d.raw_schema) {
        let unknown = crate::milvus::schema_rules::not_understood(&raw);
        if !unknown.is_empty() {
            return Err(Error::unsupported(
                format!(
                    "{db}.{name} has schema elements this milvault does not understand, so a backup could not restore them: {}",
                    unknown.join("; ")
                ),
                db,
                name,
                client.cluster(),
            ));
        }
    }
    let partitions = client.show_partitions(db, name).await?;
    let indexes = client.describe_indexes(db, name).await?;
    let mut aliases = client.list_aliases(db, name).await?;
    aliases.sort();
    let loaded = client.is_loaded(db, name).await?;
    Ok(CollectionBackup {
        database: db.to_owned(),
        name: name.to_owned(),
        collection_id: d.id,
        schema: Some(d.schema),
        shards_num: d.shards_num,
        consistency_level: d.consistency_level as i32,
        properties: d.properties,
        partitions,
        indexes,
        aliases,
        loaded,
        num_partitions: d.num_partitions,
        segments: Vec::new(),
        row_count: 0,
        size_bytes: 0,
        milvus_schema: d.raw_schema,
        live_rows: 0,
        row_check: None,
        rows_counted: false,
        created_timestamp: d.created_timestamp,
    })
}

/// Lists one segment's files and checks they form a whole segment: every schema
/// field (plus RowID 0 and Timestamp 1) has insert logs, all with the same count.
/// More files for one field means orphans from retried writes; we refuse to guess.
/// With `described` (segments/describe), only the files Milvus's metadata names are
/// taken, and each of them must be in storage.
async fn list_segment(
    store: &Store,
    c: &CollectionBackup,
    seg: &SegmentInfo,
    described: Option<&DescribedSegment>,
) -> Result<SegmentBackup> {
    let base = format!("{}/{}/{}/", c.collection_id, seg.partition_id, seg.id);
    let mut out = SegmentBackup {
        segment_id: seg.id,
        partition_id: seg.partition_id,
        num_rows: seg.num_rows,
        level: seg.level.as_i32(),
        storage_version: seg.storage_version,
        ..Default::default()
    };
    let bad = |message: String| Error::SegmentFiles {
        collection: format!("{}.{}", c.database, c.name),
        segment: seg.id,
        message,
    };
    for (kind, target) in [("insert_log", 0usize), ("delta_log", 1), ("stats_log", 2)] {
        let prefix = format!("{kind}/{base}");
        for obj in store.list_recursive(&prefix).await? {
            let rest = obj.key.strip_prefix(&prefix).unwrap_or(&obj.key);
            let parts: Vec<&str> = rest.split('/').collect();
            let (field_id, log_id) = match (kind, parts.as_slice()) {
                ("delta_log", [log]) => (0, log.parse().unwrap_or(0)),
                (_, [field, log]) => (
                    field
                        .parse()
                        .map_err(|_| bad(format!("unexpected file {}", obj.key)))?,
                    log.parse().unwrap_or(0),
                ),
                _ => return Err(bad(format!("unexpected file layout {}", obj.key))),
            };
            if described.is_some_and(|d| !d.owns(kind, field_id, log_id)) {
                // Not in Milvus's metadata: an orphan of a retried write.
                continue;
            }
            let file = BackupFile {
                path: String::new(),
                source_key: obj.key.clone(),
                size_bytes: obj.size,
                sha256: String::new(),
                field_id,
                log_id,
                source_fingerprint: obj.fingerprint.clone(),
                referenced_from: String::new(),
            };
            match target {
                0 => out.insert_logs.push(file),
                1 => out.delta_logs.push(file),
                _ => out.stats_logs.push(file),
            }
        }
    }
    use milvault_proto::milvault::v1::SegmentFilesSource;
    out.files_source = match described {
        Some(d) => {
            let present = segment_files(&out).map(|f| f.source_key.as_str()).collect();
            let missing = d.missing(c.collection_id, &present);
            if !missing.is_empty() {
                return Err(bad(format!(
                    "Milvus's metadata names files storage does not hold: {}",
                    missing.join(", ")
                )));
            }
            SegmentFilesSource::Describe
        }
        None => SegmentFilesSource::Listing,
    } as i32;
    // Milvus 2.4.0–2.4.6 list L0 (delete-only) segments without their level: they
    // are the ones of partition -1, or with delete logs and no insert logs.
    if seg.level == SegmentLevel::Legacy
        && (seg.partition_id == crate::rows::ALL_PARTITIONS
            || (out.insert_logs.is_empty() && !out.delta_logs.is_empty()))
    {
        out.level = SegmentLevel::L0.as_i32();
    }
    if seg.num_rows > 0 && out.level != SegmentLevel::L0.as_i32() {
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for f in &out.insert_logs {
            *counts.entry(f.field_id).or_default() += 1;
        }
        // Storage v2 (2.6) keeps column groups, not one directory per field.
        let schema = if seg.storage_version >= crate::rows::STORAGE_V2 {
            Vec::new()
        } else {
            c.schema
                .as_ref()
                .map(|s| s.fields.iter().map(|f| f.field_id).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let required: Vec<i64> = if seg.storage_version >= crate::rows::STORAGE_V2 {
            Vec::new()
        } else {
            vec![0, 1]
        };
        for id in required.into_iter().chain(schema) {
            if !counts.contains_key(&id) {
                return Err(bad(format!(
                    "field {id} has no insert log on storage under insert_log/{base}"
                )));
            }
        }
        let distinct: std::collections::BTreeSet<usize> = counts.values().copied().collect();
        if distinct.len() > 1 {
            return Err(bad(format!(
                "fields have different numbers of insert logs ({counts:?}): orphan files from retried writes; compact the collection and back up again"
            )));
        }
    }
    Ok(out)
}

/// Finds the base a request names: none, a named complete backup, or with
/// [`LATEST`] the newest complete backup of the same cluster (none there yet: a full
/// backup, said in the job).
async fn resolve_base(
    repository: &Repository,
    cluster: &str,
    requested: &str,
) -> Result<(Option<Base>, Option<String>)> {
    let name = match requested {
        "" => return Ok((None, None)),
        LATEST => {
            let listing = catalog::fresh(repository).await?;
            match latest_of(listing.complete(), cluster) {
                Some(m) => m.name.clone(),
                None => {
                    return Ok((
                        None,
                        Some(format!(
                            "--base latest: repository {:?} holds no complete backup of cluster {cluster:?} yet; this is a full backup",
                            repository.name()
                        )),
                    ));
                }
            }
        }
        name => {
            validate_backup_name(name).map_err(|e| match e {
                Error::InvalidArgument { message, .. } => Error::InvalidArgument {
                    field: "base",
                    message,
                },
                other => other,
            })?;
            name.to_owned()
        }
    };
    let manifest = repository.load_complete(&name).await?;
    let from = manifest
        .source
        .as_ref()
        .map(|s| s.cluster.clone())
        .unwrap_or_default();
    if from != cluster {
        return Err(Error::InvalidArgument {
            field: "base",
            message: format!(
                "backup {name:?} was taken from cluster {from:?}, not {cluster:?}: an incremental backup builds on a backup of the same cluster"
            ),
        });
    }
    let mut base = Base::new(manifest);
    let gone = base.keep_present(repository).await?;
    let note = (!gone.is_empty()).then(|| {
        format!(
            "base {name:?}: {} of its files are missing or cut short in the repository (e.g. {}); they were copied again from the source (run `backup verify {name}`)",
            gone.len(),
            gone[0]
        )
    });
    Ok((Some(base), note))
}

/// Reads a collection's partitions and indexes again, after its segments were listed:
/// a partition created meanwhile holds listed segments and must be in the manifest.
async fn refresh_layout(client: &MilvusClient, c: &mut CollectionBackup) -> Result<()> {
    c.partitions = client.show_partitions(&c.database, &c.name).await?;
    c.indexes = client.describe_indexes(&c.database, &c.name).await?;
    Ok(())
}

/// Every segment must belong to a partition of the manifest and hold only fields of
/// its schema; otherwise the collection changed in a way this backup cannot describe.
fn check_segments_fit(c: &CollectionBackup) -> Result<()> {
    let fields: std::collections::BTreeSet<i64> = c
        .schema
        .as_ref()
        .map(|s| s.fields.iter().map(|f| f.field_id).collect())
        .unwrap_or_default();
    // Milvus's DescribeCollection hides the dynamic `$meta` field (2.2-2.4 proxies skip
    // `is_dynamic` fields), so with `enable_dynamic_field` and no dynamic field listed,
    // one field id beyond the described ones is that column; a second is not.
    let hidden_meta_allowed = c
        .schema
        .as_ref()
        .is_some_and(|s| s.enable_dynamic_field && !s.fields.iter().any(|f| f.is_dynamic));
    let mut hidden_meta: Option<i64> = None;
    for s in &c.segments {
        let bad = |message: String| Error::SegmentFiles {
            collection: format!("{}.{}", c.database, c.name),
            segment: s.segment_id,
            message,
        };
        if s.partition_id != crate::rows::ALL_PARTITIONS
            && !c
                .partitions
                .iter()
                .any(|p| p.partition_id == s.partition_id)
        {
            return Err(bad(format!(
                "its partition {} is not among the collection's partitions (dropped during the backup?); run the backup again",
                s.partition_id
            )));
        }
        if s.storage_version >= crate::rows::STORAGE_V2 {
            continue;
        }
        for f in s.insert_logs.iter().chain(&s.stats_logs) {
            // 0 and 1 are Milvus's RowID and Timestamp columns.
            if f.field_id > 1 && !fields.contains(&f.field_id) {
                if hidden_meta_allowed && hidden_meta.is_none_or(|m| m == f.field_id) {
                    hidden_meta = Some(f.field_id);
                    continue;
                }
                return Err(bad(format!(
                    "it holds field {} that the schema does not have (the schema changed during the backup?); run the backup again",
                    f.field_id
                )));
            }
        }
    }
    Ok(())
}
