//! Binlog import: stage a batch of segments' files in the target's storage (checked
//! against the manifest as they are copied), `Import` them in backup mode as one
//! import (`batch.rs` decides the batches), wait, check the row count Milvus reports
//! against the batch's segments, remove the staged files. The next batch is staged
//! while earlier ones import, with as many imports in flight as the target takes.
//!
//! Every import is journaled before Milvus is asked, then with its task ids, then
//! confirmed (`ImportRecord`): a resumed restore (ResumeJob) skips confirmed
//! segments, and waits for and checks the imports the interrupted run left running.
//!
//! How deletes travel depends on the target (`milvus/features.rs`):
//! - it compares timestamps and can import L0 segments (2.4+): each segment with its
//!   own delete logs, then the L0 segments with `l0_import` (partition-level ones
//!   into their partition, all-partition ones last);
//! - it compares timestamps but has no L0 import (2.3), and the backup has L0 deletes
//!   or deletes of one segment recorded in another: every segment gets a delete log
//!   folded from its partition's deletes (`rows::fold`);
//! - it drops every row of a named key (2.2): folded delete logs, and the live rows of
//!   those keys inserted after the import.
//!
//! Every data segment's import must land exactly the rows its staged files hold under
//! the target's rule (decoded from the backup beforehand); anything else fails the
//! restore naming the segment.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use milvault_binlog::write::{LogIds, write_delta_log};
use milvault_binlog::{DeleteSet, DeltaEncoding};
use milvault_proto::milvault::v1::{BackupFile, ImportRecord, JobPhase, SegmentBackup};
use tokio::sync::Semaphore;

use super::batch::{self, BatchLimits, Item};
use super::staging::StagedGroup;
use super::{Side, Target, Task};
use crate::error::{Error, Result};
use crate::milvus::types::{ImportProgress, ImportSpec};
use crate::rows::{ALL_PARTITIONS, Files, count, fold, is_delete_only};

/// How one collection's deletes go to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Deletes {
    /// Each segment's own delete logs, as backed up.
    Own,
    /// Folded delete logs; the target compares timestamps.
    FoldedTs,
    /// Folded delete logs; the target drops every row of a named key, so the live
    /// rows of those keys are inserted after the import.
    FoldedKeys,
}

/// What the imports of one collection brought.
#[derive(Debug, Default)]
pub(super) struct Imported {
    /// Live rows restored per partition id.
    pub(super) rows: BTreeMap<i64, i64>,
    /// Milvus import tasks (jobs) this job ran.
    pub(super) tasks: u32,
    /// Segments an interrupted run had imported and confirmed.
    pub(super) resumed: u32,
}

/// What one data segment's import must bring.
struct SegmentPlan<'a> {
    seg: &'a SegmentBackup,
    partition: String,
    /// Rows the import must report.
    expect: Option<i64>,
    /// Folded deletes (with the partition's delete set, for survivors).
    fold: Option<(fold::SegmentDeletes, &'a DeleteSet)>,
}

impl Side<'_> {
    /// The backup's files, for decoding.
    fn files(&self) -> Files<'_> {
        Files {
            store: self.job.repository.store(),
            backup: &self.job.manifest.name,
        }
    }

    fn partition_name(&self, names: &BTreeMap<i64, String>, seg: &SegmentBackup) -> Result<String> {
        names
            .get(&seg.partition_id)
            .cloned()
            .ok_or_else(|| Error::Manifest {
                name: self.job.manifest.name.clone(),
                message: format!(
                    "segment {} names unknown partition {}",
                    seg.segment_id, seg.partition_id
                ),
            })
    }

    /// Imports every segment of the task's collection into `into`, in batches, each
    /// into its original partition, and the L0 segments where the target imports
    /// them; segments an interrupted run confirmed are skipped.
    pub(super) async fn import_all(
        &self,
        task: Task<'_>,
        into: &Target,
        partition_names: &BTreeMap<i64, String>,
    ) -> Result<Imported> {
        let src = task.src;
        let features = self.client.features();
        let files = self.files();
        let data: Vec<&SegmentBackup> =
            src.segments.iter().filter(|s| !is_delete_only(s)).collect();
        let l0: Vec<&SegmentBackup> = src.segments.iter().filter(|s| is_delete_only(s)).collect();

        // What each segment's import must report, and how deletes go.
        self.ctx.collection_phase(task.idx, JobPhase::Counting);
        let mut own = Vec::with_capacity(data.len());
        if src.rows_counted && features.import_compares_delete_timestamps() {
            for seg in &data {
                own.push(count::count_own(&files, src, seg).await?);
            }
        }
        let mode = if !features.import_compares_delete_timestamps() {
            Deletes::FoldedKeys
        } else if !src.rows_counted {
            Deletes::Own
        } else if !l0.is_empty() && !features.l0_import() {
            Deletes::FoldedTs
        } else if l0.is_empty() && own.iter().sum::<i64>() != src.live_rows {
            // Deletes recorded in a segment other than the rows': folding applies them.
            Deletes::FoldedTs
        } else {
            Deletes::Own
        };
        let mut deletes: BTreeMap<i64, DeleteSet> = BTreeMap::new();
        if mode != Deletes::Own {
            let partitions: BTreeSet<i64> = data.iter().map(|s| s.partition_id).collect();
            for p in partitions {
                deletes.insert(p, files.deletes_of(src, p).await?);
            }
        }
        let mut plans = Vec::with_capacity(data.len());
        for (i, seg) in data.iter().enumerate() {
            let partition = self.partition_name(partition_names, seg)?;
            let (expect, folded) = match mode {
                Deletes::Own => (own.get(i).copied(), None),
                Deletes::FoldedTs | Deletes::FoldedKeys => {
                    let set = deletes.get(&seg.partition_id).ok_or_else(|| {
                        Error::internal("a partition's deletes were not read", seg.partition_id)
                    })?;
                    let plan = fold::plan(&files, src, seg, set).await?;
                    let expect = if mode == Deletes::FoldedKeys {
                        plan.live - plan.survivors
                    } else {
                        plan.live
                    };
                    (Some(expect), Some((plan, set)))
                }
            };
            plans.push(SegmentPlan {
                seg,
                partition,
                expect,
                fold: folded,
            });
        }

        self.ctx.collection_phase(task.idx, JobPhase::Importing);
        let mut out = Imported::default();
        // What an earlier run of this restore confirmed (ResumeJob) is not imported
        // again; imports it left running are asked about and finished.
        let mut done: BTreeSet<i64> = BTreeSet::new();
        for (i, r) in self.ctx.imports().into_iter().enumerate() {
            if r.l0 || r.abandoned || r.database != into.database || r.collection != into.collection
            {
                continue;
            }
            let rows = if r.confirmed {
                Some(r.rows)
            } else if !r.task_ids.is_empty() {
                let mine: Vec<&SegmentPlan<'_>> = plans
                    .iter()
                    .filter(|p| r.segment_ids.contains(&p.seg.segment_id))
                    .collect();
                self.settle(task, into, i, &r, &mine, mode).await?
            } else {
                None
            };
            if let Some(rows) = rows {
                done.extend(&r.segment_ids);
                *out.rows.entry(r.partition_id).or_default() += rows;
                out.resumed += u32::try_from(r.segment_ids.len()).unwrap_or(u32::MAX);
            }
        }
        let todo: Vec<&SegmentPlan<'_>> = plans
            .iter()
            .filter(|p| {
                if done.contains(&p.seg.segment_id) {
                    for f in p.seg.insert_logs.iter().chain(&p.seg.delta_logs) {
                        self.ctx.file_done(Some(task.idx), f.size_bytes);
                    }
                    false
                } else {
                    true
                }
            })
            .collect();
        let items: Vec<Item> = todo
            .iter()
            .map(|p| Item {
                partition_id: p.seg.partition_id,
                storage_version: p.seg.storage_version,
                bytes: p
                    .seg
                    .insert_logs
                    .iter()
                    .chain(&p.seg.delta_logs)
                    .map(|f| f.size_bytes)
                    .sum(),
            })
            .collect();
        let cfg = &self.job.restore;
        let limits = BatchLimits {
            max_segments: features
                .max_segments_per_import()
                .map_or(cfg.import_batch_segments, |n| {
                    n.min(cfg.import_batch_segments)
                }),
            first_bytes: cfg.import_first_batch_bytes,
            max_bytes: cfg.import_batch_bytes,
        };
        let batches: Vec<Vec<&SegmentPlan<'_>>> = batch::group(&items, limits)
            .into_iter()
            .map(|b| b.into_iter().map(|i| todo[i]).collect())
            .collect();
        // One batch stages at a time, in order (the copy uses the job's copy
        // concurrency); the imports of earlier batches run meanwhile, as many as the
        // target takes and the limits allow.
        let turn = Semaphore::new(1);
        let in_flight = features
            .import_jobs_accepted()
            .min(self.job.limits.import_concurrency)
            .max(1);
        // Collected first: a concrete Vec of futures keeps the job future `Send`
        // (a lazy `map` over borrowed segments trips rustc's lifetime inference).
        let mut imports = Vec::with_capacity(batches.len());
        for b in &batches {
            let turn = &turn;
            imports.push(async move { self.import_batch(task, into, b, mode, turn).await });
        }
        let results: Vec<(i64, i64, u32)> = futures::stream::iter(imports)
            .buffer_unordered(in_flight)
            .try_collect()
            .await?;
        for (p, n, tasks) in results {
            *out.rows.entry(p).or_default() += n;
            out.tasks += tasks;
        }

        if mode == Deletes::Own && !l0.is_empty() {
            // L0 deletes after the data they delete: partition-level ones, then the
            // ones for every partition. Milvus applies them; the live rows they leave
            // are the manifest's.
            let mut ordered = l0.clone();
            ordered.sort_by_key(|s| (s.partition_id == ALL_PARTITIONS, s.segment_id));
            let mut l0_done: BTreeSet<i64> = BTreeSet::new();
            for (i, r) in self.ctx.imports().into_iter().enumerate() {
                if !r.l0
                    || r.abandoned
                    || r.database != into.database
                    || r.collection != into.collection
                {
                    continue;
                }
                let confirmed = r.confirmed || {
                    let seg = r.segment_ids.first().copied().unwrap_or_default();
                    !r.task_ids.is_empty() && self.settle_l0(into, i, &r, seg).await?
                };
                if confirmed {
                    l0_done.extend(&r.segment_ids);
                    out.resumed += u32::try_from(r.segment_ids.len()).unwrap_or(u32::MAX);
                }
            }
            for seg in ordered {
                if l0_done.contains(&seg.segment_id) {
                    for f in &seg.delta_logs {
                        self.ctx.file_done(Some(task.idx), f.size_bytes);
                    }
                    continue;
                }
                let partition = if seg.partition_id == ALL_PARTITIONS {
                    String::new()
                } else {
                    self.partition_name(partition_names, seg)?
                };
                out.tasks += self.import_l0(task, into, seg, &partition).await?;
            }
            if src.rows_counted {
                out.rows = src
                    .partitions
                    .iter()
                    .map(|p| (p.partition_id, p.live_rows))
                    .collect();
            }
        }
        Ok(out)
    }

    /// Copies files of the backup into the staging area (checksums checked).
    async fn stage(&self, task: Task<'_>, files: Vec<(&BackupFile, String)>) -> Result<()> {
        let backup = &self.job.manifest.name;
        let dst = &self.job.cluster.store;
        // Collected first, like the imports: a concrete Vec keeps the future `Send`.
        let mut copies = Vec::with_capacity(files.len());
        for (file, key) in files {
            copies.push(async move {
                self.ctx.check_cancelled()?;
                // A cancel stops the copy inside the file; the cleanup removes the rest.
                let copy = self.job.repository.copy_file_to(backup, file, dst, &key);
                let c = tokio::select! {
                    r = copy => r?,
                    _ = self.ctx.cancel_token().cancelled() => return Err(Error::Cancelled),
                };
                self.ctx.file_done(Some(task.idx), c.size);
                Ok::<_, Error>(())
            });
        }
        futures::stream::iter(copies)
            .buffer_unordered(self.job.limits.copy_concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok(())
    }

    /// Stages one batch's files (its turn at staging first), imports them in backup
    /// mode as one import, waits, checks the rows, inserts the survivors of a key-only
    /// delete rule, cleans up; returns (partition id, rows, import tasks).
    async fn import_batch(
        &self,
        task: Task<'_>,
        into: &Target,
        batch: &[&SegmentPlan<'_>],
        mode: Deletes,
        turn: &Semaphore,
    ) -> Result<(i64, i64, u32)> {
        self.ctx.check_cancelled()?;
        let Some(first) = batch.first() else {
            return Ok((0, 0, 0));
        };
        let (partition_id, group) = (first.seg.partition_id, first.seg.segment_id);
        let staged = self
            .staging
            .group(task.src.collection_id, partition_id, group);
        {
            let _turn = turn
                .acquire()
                .await
                .map_err(|e| Error::internal("the staging turn closed", e))?;
            self.ctx.check_cancelled()?;
            self.clear_stale(&staged.dir).await?;
            let mut files = Vec::new();
            for plan in batch {
                let seg = plan.seg;
                let own_deltas: &[BackupFile] = if plan.fold.is_some() {
                    &[]
                } else {
                    &seg.delta_logs
                };
                files.extend(
                    seg.insert_logs
                        .iter()
                        .map(|f| (f, staged.key_of(seg, f, false)))
                        .chain(own_deltas.iter().map(|f| (f, staged.key_of(seg, f, true)))),
                );
            }
            self.stage(task, files).await?;
            for plan in batch {
                self.write_folded(task, &staged, plan).await?;
            }
        }
        let segment_ids: Vec<i64> = batch.iter().map(|p| p.seg.segment_id).collect();
        // Journaled before Milvus is asked: a resume knows this import may exist.
        let record = self
            .ctx
            .import_started(ImportRecord {
                database: into.database.clone(),
                collection: into.collection.clone(),
                partition_id,
                segment_ids: segment_ids.clone(),
                staged_path: staged.dir.clone(),
                ..Default::default()
            })
            .await;
        let spec = ImportSpec {
            database: &into.database,
            collection: &into.collection,
            partition: &first.partition,
            paths: staged.import_paths(&self.staging),
            l0: false,
            storage_version: first.seg.storage_version,
        };
        let tasks = self.client.import_binlogs(&spec).await?;
        let ids = tasks.clone();
        self.ctx.update_import(record, |r| r.task_ids = ids).await;
        let mut rows = 0;
        for id in &tasks {
            match self.wait_task(into, batch, *id).await {
                Ok(n) => rows += n,
                Err(e) => {
                    if matches!(e, Error::ImportFailed { .. }) {
                        self.ctx.update_import(record, |r| r.abandoned = true).await;
                    }
                    return Err(e);
                }
            }
        }
        let rows = self.confirm(task, into, record, batch, rows, mode).await?;
        self.remove_staged(&staged.dir).await;
        Ok((
            partition_id,
            rows,
            u32::try_from(tasks.len()).unwrap_or(u32::MAX),
        ))
    }

    /// Removes an import's staged files once Milvus is done with them; what cannot be
    /// removed now goes with the job's staging prefix at its end.
    async fn remove_staged(&self, dir: &str) {
        if let Err(e) = self.job.cluster.store.delete_prefix(dir).await {
            tracing::warn!(error = %e, dir, "could not remove staged files; they go with the job's staging prefix");
        }
    }

    /// Empties a group directory before a resumed restore stages into it: the
    /// interrupted run may have left other segments' files there, which the import
    /// would take too.
    async fn clear_stale(&self, dir: &str) -> Result<()> {
        if self.job.resume.is_some() {
            self.job.cluster.store.delete_prefix(dir).await?;
        }
        Ok(())
    }

    /// Writes a segment's folded delete log beside its staged insert logs (its own
    /// delete logs then count as done: their deletes are in it).
    async fn write_folded(
        &self,
        task: Task<'_>,
        staged: &StagedGroup,
        plan: &SegmentPlan<'_>,
    ) -> Result<()> {
        let Some((folded, _)) = &plan.fold else {
            return Ok(());
        };
        let seg = plan.seg;
        for f in &seg.delta_logs {
            self.ctx.file_done(Some(task.idx), f.size_bytes);
        }
        if !folded.entries.is_empty() {
            let ids = LogIds::new(task.src.collection_id, seg.partition_id, seg.segment_id, -1);
            let bytes = write_delta_log(&ids, &folded.entries, DeltaEncoding::V1Json)
                .map_err(|e| Error::internal("a delete log could not be written", e))?;
            let log_id = seg.delta_logs.iter().map(|f| f.log_id).max().unwrap_or(0) + 1;
            let key = format!("{}{}/{log_id}", staged.delta_dir, seg.segment_id);
            self.job.cluster.store.write_small(&key, bytes).await?;
        }
        Ok(())
    }

    /// Checks the rows of a finished import against its segments, inserts the
    /// survivors of a key-only delete rule, and journals the import confirmed;
    /// returns the rows it restored.
    async fn confirm(
        &self,
        task: Task<'_>,
        into: &Target,
        record: usize,
        batch: &[&SegmentPlan<'_>],
        mut rows: i64,
        mode: Deletes,
    ) -> Result<i64> {
        let expect: Option<i64> = batch.iter().map(|p| p.expect).sum();
        if let Some(expect) = expect
            && rows != expect
        {
            return Err(Error::RowsMismatch {
                collection: format!("{}.{}", into.database, into.collection),
                message: format!(
                    "{}: Milvus imported {rows} rows, the staged files hold {expect}",
                    segments_text(batch)
                ),
            });
        }
        let survivors: Vec<_> = batch
            .iter()
            .filter_map(|p| match &p.fold {
                Some((folded, set)) if mode == Deletes::FoldedKeys && folded.survivors > 0 => {
                    Some((*p, folded, *set))
                }
                _ => None,
            })
            .collect();
        if !survivors.is_empty() {
            // From here an interruption cannot tell which rows went in.
            self.ctx.update_import(record, |r| r.inserting = true).await;
            for (plan, folded, set) in survivors {
                rows += self.insert_survivors(task, into, plan, folded, set).await?;
            }
        }
        self.ctx
            .update_import(record, |r| {
                r.rows = rows;
                r.confirmed = true;
                r.inserting = false;
            })
            .await;
        Ok(rows)
    }

    /// Finishes an import an interrupted run left running (journaled with its tasks):
    /// waits for it and confirms it (`Some(rows)`), or, when Milvus failed or lost it,
    /// records it abandoned so its segments are imported again (`None`).
    async fn settle(
        &self,
        task: Task<'_>,
        into: &Target,
        record: usize,
        r: &ImportRecord,
        batch: &[&SegmentPlan<'_>],
        mode: Deletes,
    ) -> Result<Option<i64>> {
        if batch.len() != r.segment_ids.len() {
            return Err(Error::internal(
                "a journaled import names segments the backup's plan does not have",
                format!("{:?}", r.segment_ids),
            ));
        }
        let mut rows = 0;
        for id in &r.task_ids {
            match self.wait_task(into, batch, *id).await {
                Ok(n) => rows += n,
                Err(Error::ImportFailed { .. }) => {
                    self.ctx.update_import(record, |r| r.abandoned = true).await;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
        }
        let rows = self.confirm(task, into, record, batch, rows, mode).await?;
        self.remove_staged(&r.staged_path).await;
        Ok(Some(rows))
    }

    /// [`Self::settle`] for an L0 import: whether it completed (else it is abandoned
    /// and imported again).
    async fn settle_l0(
        &self,
        into: &Target,
        record: usize,
        r: &ImportRecord,
        segment: i64,
    ) -> Result<bool> {
        for id in &r.task_ids {
            if let ImportProgress::Failed { reason } = self.wait_l0(into, segment, *id).await? {
                tracing::info!(task = id, %reason, "an interrupted L0 import had failed; importing it again");
                self.ctx.update_import(record, |r| r.abandoned = true).await;
                return Ok(false);
            }
        }
        self.ctx.update_import(record, |r| r.confirmed = true).await;
        self.remove_staged(&r.staged_path).await;
        Ok(true)
    }

    /// Imports one L0 (delete-only) segment with `l0_import` (2.4+); returns the
    /// import tasks it took.
    async fn import_l0(
        &self,
        task: Task<'_>,
        into: &Target,
        seg: &SegmentBackup,
        partition: &str,
    ) -> Result<u32> {
        self.ctx.check_cancelled()?;
        let staged = self.staging.segment(task.src.collection_id, seg);
        let files: Vec<_> = seg
            .delta_logs
            .iter()
            .map(|f| (f, staged.key_of(seg, f, true)))
            .collect();
        self.clear_stale(&staged.dir).await?;
        self.stage(task, files).await?;
        // A partition-level L0 segment is given as the group directory holding
        // `<segment>/<log>`; an all-partition one as its segment directory.
        let dir = if seg.partition_id == ALL_PARTITIONS {
            format!("{}{}/", staged.delta_dir, seg.segment_id)
        } else {
            staged.delta_dir.clone()
        };
        let record = self
            .ctx
            .import_started(ImportRecord {
                database: into.database.clone(),
                collection: into.collection.clone(),
                partition_id: seg.partition_id,
                segment_ids: vec![seg.segment_id],
                staged_path: staged.dir.clone(),
                l0: true,
                ..Default::default()
            })
            .await;
        let spec = ImportSpec {
            database: &into.database,
            collection: &into.collection,
            partition,
            paths: vec![self.staging.import_path(&dir)],
            l0: true,
            storage_version: seg.storage_version,
        };
        let tasks = self.client.import_binlogs(&spec).await?;
        let ids = tasks.clone();
        self.ctx.update_import(record, |r| r.task_ids = ids).await;
        for id in &tasks {
            if let ImportProgress::Failed { reason } =
                self.wait_l0(into, seg.segment_id, *id).await?
            {
                self.ctx.update_import(record, |r| r.abandoned = true).await;
                return Err(Error::ImportFailed {
                    collection: format!("{}.{}", into.database, into.collection),
                    segment: seg.segment_id,
                    message: format!("L0 delete segment, task {id}: {reason}"),
                });
            }
        }
        self.ctx.update_import(record, |r| r.confirmed = true).await;
        self.remove_staged(&staged.dir).await;
        Ok(u32::try_from(tasks.len()).unwrap_or(u32::MAX))
    }

    /// Waits for one L0 import task: `Completed` or `Failed`.
    async fn wait_l0(&self, into: &Target, segment: i64, id: i64) -> Result<ImportProgress> {
        match self.client.wait_import(id, self.ctx.cancel_token()).await? {
            ImportProgress::Running => Err(Error::internal(
                "an import wait ended while the task ran",
                format!(
                    "task {id} (L0 segment {segment} into {}.{})",
                    into.database, into.collection
                ),
            )),
            done => Ok(done),
        }
    }

    /// Inserts the live rows a key-only delete log made the import drop.
    async fn insert_survivors(
        &self,
        task: Task<'_>,
        into: &Target,
        plan: &SegmentPlan<'_>,
        folded: &fold::SegmentDeletes,
        deletes: &DeleteSet,
    ) -> Result<i64> {
        let schema = task.src.schema.as_ref().ok_or_else(|| Error::Manifest {
            name: self.job.manifest.name.clone(),
            message: format!("collection {} has no schema", task.src.name),
        })?;
        let batches = fold::survivors(&self.files(), task.src, plan.seg, deletes, folded).await?;
        let mut n = 0;
        for b in &batches {
            n += self
                .client
                .insert_rows(
                    &into.database,
                    &into.collection,
                    Some(&plan.partition),
                    schema,
                    b,
                )
                .await?;
        }
        if n != folded.survivors {
            return Err(Error::RowsMismatch {
                collection: format!("{}.{}", into.database, into.collection),
                message: format!(
                    "segment {}: {n} of {} re-inserted rows were taken",
                    plan.seg.segment_id, folded.survivors
                ),
            });
        }
        Ok(n)
    }

    /// Waits for one import task and checks the rows it reports against its segments.
    async fn wait_task(&self, into: &Target, batch: &[&SegmentPlan<'_>], id: i64) -> Result<i64> {
        let segment = batch.first().map_or(0, |p| p.seg.segment_id);
        let fail = |message: String| Error::ImportFailed {
            collection: format!("{}.{}", into.database, into.collection),
            segment,
            message: format!("{}: {message}", segments_text(batch)),
        };
        let held: i64 = batch.iter().map(|p| p.seg.num_rows).sum();
        let no_deletes = batch.iter().all(|p| p.seg.delta_logs.is_empty());
        match self.client.wait_import(id, self.ctx.cancel_token()).await? {
            ImportProgress::Completed { rows } => {
                if rows > held {
                    return Err(fail(format!(
                        "Milvus imported {rows} rows, the segments hold {held}"
                    )));
                }
                if rows == 0 && held > 0 && no_deletes {
                    return Err(fail(format!(
                        "Milvus reported success with 0 rows for segments of {held} rows (it could not read the staged files)"
                    )));
                }
                Ok(rows)
            }
            ImportProgress::Failed { reason } => Err(fail(format!("task {id}: {reason}"))),
            ImportProgress::Running => Err(Error::internal(
                "an import wait ended while the task ran",
                format!("task {id}"),
            )),
        }
    }
}

/// "segment 7" or "segments 7, 8, 9" (the first ten, then how many more).
fn segments_text(batch: &[&SegmentPlan<'_>]) -> String {
    let ids: Vec<String> = batch
        .iter()
        .take(10)
        .map(|p| p.seg.segment_id.to_string())
        .collect();
    let more = batch.len().saturating_sub(10);
    match (batch.len(), more) {
        (1, _) => format!("segment {}", ids.join("")),
        (_, 0) => format!("segments {}", ids.join(", ")),
        _ => format!("segments {} and {more} more", ids.join(", ")),
    }
}
