//! The backup job: describe → flush → pause GC → list segment files → copy (bounded,
//! hashed) → write the manifest last.
//!
//! The segment list is taken once, after the flush, and exactly those files are copied:
//! compaction may retire segments meanwhile, but their files stay on storage for
//! Milvus's drop tolerance (hours), so the copy is a consistent snapshot. A file that
//! vanished anyway fails the job; it never yields a manifest.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use milvault_proto::milvault::v1::{
    BackupFile, BackupManifest, BackupSummary, CollectionBackup, CollectionReport,
    CreateBackupRequest, DataType, DatabaseBackup, JobKind, JobPhase, JobResource, RbacReport,
    ResourceKind, RowCheck, RowCheckMethod, SegmentBackup, SourceInfo, job,
};

use crate::app::{App, Cluster};
use crate::config::TimeoutsConfig;
use crate::error::{Error, Result};
use crate::jobs::{CollectionPlan, JobCtx, Lock, Submission, now};
use crate::milvus::management::GcPauseGuard;
use crate::milvus::types::{SegmentInfo, SegmentLevel, SegmentState};
use crate::milvus::{GcPause, MilvusClient, PkField};
use crate::repository::{FORMAT_VERSION, Repository, segment_files};
use crate::rows::{Files, count};
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
}

/// One file to copy.
struct Planned {
    collection: usize,
    collection_name: String,
    segment: i64,
    source_key: String,
    size: u64,
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
        let job = Arc::new(BackupJob {
            request: req.clone(),
            filter,
            cluster: cluster.clone(),
            repository: repository.clone(),
            copy_concurrency: app.config.limits.copy_concurrency,
            timeouts: app.config.timeouts.clone(),
            app: app.clone(),
        });
        Ok(Submission {
            kind: JobKind::Backup,
            backup: req.name.clone(),
            cluster: cluster.name.clone(),
            repository: repository.name().to_owned(),
            locks: vec![Lock::backup_writer(repository.name(), &req.name)],
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
        let mut before = Vec::with_capacity(collections.len());
        for (idx, c) in collections.iter().enumerate() {
            ctx.check_cancelled()?;
            ctx.phase(JobPhase::Flushing, format!("{}.{}", c.database, c.name))
                .await;
            ctx.collection_phase(idx, JobPhase::Flushing);
            // What the source serves, from just before the flush: if it still serves
            // that after the copy, the collection did not change meanwhile.
            let early = if c.loaded {
                Some(source_rows(&client, c, &ctx).await?)
            } else {
                None
            };
            let ts = client
                .flush_and_wait(&c.database, &c.name, ctx.cancel_token())
                .await?;
            backup_ts = backup_ts.max(ts);
            before.push(match early {
                Some(n) => n,
                None => source_rows(&client, c, &ctx).await?,
            });
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
        let mgmt = self.cluster.config.management.as_deref();
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
        let outcome = self.list_and_copy(&ctx, &client, &mut collections).await;
        for p in pauses {
            p.resume().await;
        }
        outcome?;

        ctx.phase(JobPhase::Counting, "").await;
        let files = Files {
            store: self.repository.store(),
            backup: &self.request.name,
        };
        for (idx, c) in collections.iter_mut().enumerate() {
            ctx.check_cancelled()?;
            ctx.collection_phase(idx, JobPhase::Counting);
            let rows = count::count_collection(&files, c).await?;
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
        };
        ctx.check_cancelled()?;
        self.repository.write_manifest(&manifest).await?;
        ctx.update_resource(folder, |r| r.kept = true).await;
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
        for db in client.list_databases().await? {
            if !self.filter.may_match_database(&db) {
                continue;
            }
            let mut any = false;
            for name in client.show_collections(&db).await? {
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
    ) -> Result<()> {
        ctx.phase(JobPhase::Listing, "").await;
        let mut planned = Vec::new();
        for (idx, c) in collections.iter_mut().enumerate() {
            ctx.check_cancelled()?;
            ctx.collection_phase(idx, JobPhase::Listing);
            let segments = client
                .settled_segments(&c.database, &c.name, ctx.cancel_token())
                .await?;
            for seg in segments {
                if seg.state != SegmentState::Flushed {
                    // Growing segments hold rows written after the flush; dropped ones
                    // were compacted into segments that are listed themselves.
                    continue;
                }
                let files = list_segment(&self.cluster.store, c, &seg).await?;
                for f in segment_files(&files) {
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
        for i in 0..collections.len() {
            let mine = planned.iter().filter(|p| p.collection == i);
            ctx.collection_totals(i, mine.clone().map(|p| p.size).sum(), mine.count() as u64);
            ctx.collection_phase(i, JobPhase::Copying);
        }

        ctx.phase(JobPhase::Copying, "").await;
        let name = self.request.name.clone();
        let results: Vec<(String, crate::storage::Copied)> = futures::stream::iter(planned.into_iter().map(|p| {
            let ctx = ctx.clone();
            let src = self.cluster.store.clone();
            let dst = self.repository.store().clone();
            let name = name.clone();
            async move {
                ctx.check_cancelled()?;
                let key = Repository::file_key(&name, &p.source_key);
                // A cancel stops the copy inside the file; the cleanup removes the rest.
                let copy = src.copy_to(&p.source_key, &dst, &key, None);
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
        for c in collections.iter_mut() {
            let mut size = 0;
            for s in c.segments.iter_mut() {
                for f in s
                    .insert_logs
                    .iter_mut()
                    .chain(s.delta_logs.iter_mut())
                    .chain(s.stats_logs.iter_mut())
                {
                    let copied = by_key.get(&f.source_key).ok_or_else(|| {
                        Error::internal("a planned file was not copied", &f.source_key)
                    })?;
                    f.sha256 = copied.sha256.clone();
                    f.path = Repository::file_key(&self.request.name, &f.source_key);
                    f.size_bytes = copied.size;
                    size += copied.size;
                }
            }
            c.size_bytes = size;
        }
        for i in 0..collections.len() {
            ctx.collection_done(i);
        }
        Ok(())
    }
}

/// What the source serves for a collection, counted the strongest way its version
/// offers without loading it.
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
async fn list_segment(
    store: &Store,
    c: &CollectionBackup,
    seg: &SegmentInfo,
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
            let file = BackupFile {
                path: String::new(),
                source_key: obj.key.clone(),
                size_bytes: obj.size,
                sha256: String::new(),
                field_id,
                log_id,
            };
            match target {
                0 => out.insert_logs.push(file),
                1 => out.delta_logs.push(file),
                _ => out.stats_logs.push(file),
            }
        }
    }
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
