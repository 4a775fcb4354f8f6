//! The backup job: describe → flush → pause GC → list segment files → copy (bounded,
//! hashed) → write the manifest last.
//!
//! The segment list is taken once, after the flush, and exactly those files are copied:
//! compaction may retire segments meanwhile, but their files stay on storage for
//! Milvus's drop tolerance (hours), so the copy is a consistent snapshot. A file that
//! vanished anyway fails the job; it never yields a manifest.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use milvault_proto::milvault::v1::{
    BackupFile, BackupManifest, BackupSummary, CollectionBackup, CollectionProgress,
    CreateBackupSpec, DatabaseBackup, IndexBackup, PartitionBackup, SegmentBackup, SourceInfo,
};
use milvault_proto::milvus::common::{SegmentLevel, SegmentState};
use prost::Message;

use crate::app::Cluster;
use crate::error::{Error, Result};
use crate::jobs::{JobCtx, now};
use crate::milvus::convert;
use crate::milvus::management::GcPauseGuard;
use crate::milvus::{GcPause, MilvusClient};
use crate::repository::{FORMAT_VERSION, Repository, segment_files};
use crate::selection::Filter;
use crate::storage::Store;

/// Everything a backup job needs.
pub struct BackupJob {
    /// The request.
    pub spec: CreateBackupSpec,
    /// Parsed filter.
    pub filter: Filter,
    /// Source cluster.
    pub cluster: Cluster,
    /// Destination.
    pub repository: Repository,
    /// Files copied at once.
    pub copy_concurrency: usize,
}

/// One file to copy.
struct Planned {
    collection: usize,
    source_key: String,
    size: u64,
}

impl BackupJob {
    /// Runs the job to the end.
    pub async fn run(self: Arc<Self>, ctx: JobCtx) -> Result<()> {
        let start_time = now();
        ctx.phase("connecting").await;
        let client = MilvusClient::connect(&self.cluster.name, &self.cluster.config).await?;
        ctx.check_cancelled()?;

        ctx.phase("describing").await;
        let (databases, mut collections) = self.describe(&client).await?;
        ctx.update(|j| {
            if let Some(p) = j.progress.as_mut() {
                p.collections_total = collections.len() as u32;
                p.collections = collections
                    .iter()
                    .map(|c| CollectionProgress {
                        database: c.database.clone(),
                        collection: c.name.clone(),
                        phase: "pending".into(),
                        ..Default::default()
                    })
                    .collect();
            }
        });
        ctx.check_cancelled()?;

        ctx.phase("flushing").await;
        let mut backup_ts = 0u64;
        for c in &collections {
            ctx.check_cancelled()?;
            let ts = client
                .flush_and_wait(&c.database, &c.name, Duration::from_secs(600))
                .await?;
            backup_ts = backup_ts.max(ts);
        }

        let rbac = if self.spec.include_rbac {
            ctx.phase("reading users, roles and grants").await;
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

        let outcome = self.list_and_copy(&ctx, &client, &mut collections).await;
        for p in pauses {
            p.resume().await;
        }
        outcome?;

        ctx.phase("sealing").await;
        let summary = BackupSummary {
            size_bytes: collections.iter().map(|c| c.size_bytes).sum(),
            file_count: collections
                .iter()
                .flat_map(|c| &c.segments)
                .map(|s| (s.insert_logs.len() + s.delta_logs.len() + s.stats_logs.len()) as u64)
                .sum(),
            row_count: collections.iter().map(|c| c.row_count).sum(),
            collection_count: collections.len() as u32,
            database_count: databases.len() as u32,
        };
        let manifest = BackupManifest {
            format_version: FORMAT_VERSION,
            name: self.spec.name.clone(),
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
            filters: self.spec.collections.clone(),
            warnings: ctx.snapshot().warnings,
        };
        ctx.check_cancelled()?;
        self.repository.write_manifest(&manifest).await?;
        ctx.update(|j| {
            j.report = Some(milvault_proto::milvault::v1::JobReport {
                collections: manifest
                    .collections
                    .iter()
                    .map(|c| milvault_proto::milvault::v1::CollectionReport {
                        database: c.database.clone(),
                        collection: c.name.clone(),
                        rows: c.row_count,
                        size_bytes: c.size_bytes,
                        ..Default::default()
                    })
                    .collect(),
                rbac: rbac.map(|r| milvault_proto::milvault::v1::RbacReport {
                    users: r.users.len() as u32,
                    roles: r.roles.len() as u32,
                    grants: r.grants.len() as u32,
                    users_needing_password_reset: Vec::new(),
                }),
            })
        });
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
        ctx.phase("listing").await;
        let mut planned = Vec::new();
        for (idx, c) in collections.iter_mut().enumerate() {
            ctx.check_cancelled()?;
            let segments = settled_segments(client, &c.database, &c.name).await?;
            for seg in segments {
                if seg.state != SegmentState::Flushed as i32 {
                    // Growing segments hold rows written after the flush; dropped ones
                    // were compacted into segments that are listed themselves.
                    continue;
                }
                // Formats this build cannot restore faithfully are refused here, loudly,
                // rather than backed up into something that would lose deletes or rows.
                if seg.level == SegmentLevel::L0 as i32 {
                    return Err(Error::Unsupported(format!(
                        "{}.{} has L0 delete segments (Milvus 2.4+), which this build cannot back up yet; compact the collection first",
                        c.database, c.name
                    )));
                }
                if seg.storage_version >= 2 {
                    return Err(Error::Unsupported(format!(
                        "{}.{} has segments in storage format v{} (Milvus 2.6), which this build cannot back up yet",
                        c.database, c.name, seg.storage_version
                    )));
                }
                let files = list_segment(&self.cluster.store, c, &seg).await?;
                for f in segment_files(&files) {
                    planned.push(Planned {
                        collection: idx,
                        source_key: f.source_key.clone(),
                        size: f.size_bytes,
                    });
                }
                c.row_count += seg.num_rows;
                c.segments.push(files);
            }
            c.segments.sort_by_key(|s| s.segment_id);
        }
        let totals: Vec<(u64, u64)> = (0..collections.len())
            .map(|i| {
                let mine = planned.iter().filter(|p| p.collection == i);
                (mine.clone().map(|p| p.size).sum(), mine.count() as u64)
            })
            .collect();
        ctx.update(|j| {
            if let Some(p) = j.progress.as_mut() {
                p.bytes_total = planned.iter().map(|f| f.size).sum();
                p.files_total = planned.len() as u64;
                for (cp, (bytes, files)) in p.collections.iter_mut().zip(&totals) {
                    cp.bytes_total = *bytes;
                    cp.files_total = *files;
                    cp.phase = "copying".into();
                }
            }
        });

        ctx.phase("copying").await;
        let name = self.spec.name.clone();
        let results: Vec<(String, crate::storage::Copied)> = futures::stream::iter(planned.into_iter().map(|p| {
            let ctx = ctx.clone();
            let src = self.cluster.store.clone();
            let dst = self.repository.store().clone();
            let name = name.clone();
            async move {
                ctx.check_cancelled()?;
                let key = Repository::file_key(&name, &p.source_key);
                let copied = src.copy_to(&p.source_key, &dst, &key, None).await.map_err(|e| match e {
                    Error::Storage { message, .. } if message.contains("NotFound") => Error::SegmentFiles {
                        collection: String::new(),
                        segment: 0,
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
                    ctx.update(|j| {
                        if let Some(pr) = j.progress.as_mut() {
                            pr.collections_done += 1;
                            if let Some(cp) = pr.collections.get_mut(p.collection) {
                                cp.phase = "copied".into();
                            }
                        }
                    });
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
                        Error::Internal(format!("file {} was planned but not copied", f.source_key))
                    })?;
                    f.sha256 = copied.sha256.clone();
                    f.path = Repository::file_key(&self.spec.name, &f.source_key);
                    f.size_bytes = copied.size;
                    size += copied.size;
                }
            }
            c.size_bytes = size;
        }
        ctx.update(|j| {
            if let Some(p) = j.progress.as_mut() {
                p.collections_done = p.collections_total;
                for cp in &mut p.collections {
                    cp.phase = "done".into();
                }
            }
        });
        Ok(())
    }
}

/// The segment list once no segment is between sealed and flushed: a sealed or
/// flushing segment holds rows the backup must have, so it is waited for, never skipped.
async fn settled_segments(
    client: &MilvusClient,
    db: &str,
    name: &str,
) -> Result<Vec<milvault_proto::milvus::milvus::PersistentSegmentInfo>> {
    let in_between = |s: &milvault_proto::milvus::milvus::PersistentSegmentInfo| {
        s.state == SegmentState::Sealed as i32 || s.state == SegmentState::Flushing as i32
    };
    for _ in 0..120 {
        let segments = client.persistent_segments(db, name).await?;
        if !segments.iter().any(in_between) {
            return Ok(segments);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(Error::Milvus {
        operation: "Flush".into(),
        message: format!("segments of {db}.{name} stayed sealed but unflushed for 60s; try again"),
    })
}

/// Reads one collection's metadata (no segments yet).
pub async fn describe_collection(
    client: &MilvusClient,
    db: &str,
    name: &str,
) -> Result<CollectionBackup> {
    let d = client.describe_collection(db, name).await?;
    let raw_schema = d.schema.clone().unwrap_or_default();
    let schema = convert::schema_from(&raw_schema);
    let partitions = client
        .show_partitions(db, name)
        .await?
        .into_iter()
        .map(|(name, partition_id)| PartitionBackup { name, partition_id })
        .collect();
    let indexes = client
        .describe_indexes(db, name)
        .await?
        .into_iter()
        .map(|i| IndexBackup {
            index_name: i.index_name,
            field_name: i.field_name,
            params: convert::kvs_from(&i.params),
            index_id: i.index_id,
        })
        .collect();
    let mut aliases = client.list_aliases(db, name).await?;
    aliases.sort();
    let loaded = client.is_loaded(db, name).await?;
    Ok(CollectionBackup {
        database: db.to_owned(),
        name: name.to_owned(),
        collection_id: d.collection_id,
        schema: Some(schema),
        shards_num: d.shards_num,
        consistency_level: convert::consistency_from(d.consistency_level),
        properties: convert::kvs_from(&d.properties),
        partitions,
        indexes,
        aliases,
        loaded,
        num_partitions: d.num_partitions,
        segments: Vec::new(),
        row_count: 0,
        size_bytes: 0,
        milvus_schema: raw_schema.encode_to_vec(),
        created_timestamp: d.created_timestamp,
    })
}

/// Lists one segment's files and checks they form a whole segment: every schema
/// field (plus RowID 0 and Timestamp 1) has insert logs, all with the same count.
/// More files for one field means orphans from retried writes; we refuse to guess.
async fn list_segment(
    store: &Store,
    c: &CollectionBackup,
    seg: &milvault_proto::milvus::milvus::PersistentSegmentInfo,
) -> Result<SegmentBackup> {
    let base = format!(
        "{}/{}/{}/",
        seg.collection_id, seg.partition_id, seg.segment_id
    );
    let mut out = SegmentBackup {
        segment_id: seg.segment_id,
        partition_id: seg.partition_id,
        num_rows: seg.num_rows,
        level: seg.level,
        storage_version: seg.storage_version,
        ..Default::default()
    };
    let bad = |message: String| Error::SegmentFiles {
        collection: format!("{}.{}", c.database, c.name),
        segment: seg.segment_id,
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
    if seg.num_rows > 0 {
        let mut counts: BTreeMap<i64, usize> = BTreeMap::new();
        for f in &out.insert_logs {
            *counts.entry(f.field_id).or_default() += 1;
        }
        let schema = c
            .schema
            .as_ref()
            .map(|s| s.fields.iter().map(|f| f.field_id).collect::<Vec<_>>())
            .unwrap_or_default();
        for id in [0, 1].into_iter().chain(schema) {
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
