//! Binlog import: stage one segment's files in the target's storage (checked against
//! the manifest as they are copied), `Import` them in backup mode, wait, check the row
//! count Milvus reports, remove the staged files. Segments go bounded-parallel.
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
use milvault_proto::milvault::v1::{BackupFile, JobPhase, SegmentBackup};

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

    /// Imports every segment of the task's collection into `into`, each into its
    /// original partition, and the L0 segments where the target imports them; returns
    /// the live rows restored per partition id.
    pub(super) async fn import_all(
        &self,
        task: Task<'_>,
        into: &Target,
        partition_names: &BTreeMap<i64, String>,
    ) -> Result<BTreeMap<i64, i64>> {
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
        // Collected first: a concrete Vec of futures keeps the job future `Send`
        // (a lazy `map` over borrowed segments trips rustc's lifetime inference).
        let mut imports = Vec::with_capacity(plans.len());
        for plan in &plans {
            imports.push(async move {
                let rows = self.import_segment(task, into, plan, mode).await?;
                Ok::<_, Error>((plan.seg.partition_id, rows))
            });
        }
        let rows: Vec<(i64, i64)> = futures::stream::iter(imports)
            .buffer_unordered(self.job.limits.import_concurrency)
            .try_collect()
            .await?;
        let mut by_partition = BTreeMap::new();
        for (p, n) in rows {
            *by_partition.entry(p).or_default() += n;
        }

        if mode == Deletes::Own && !l0.is_empty() {
            // L0 deletes after the data they delete: partition-level ones, then the
            // ones for every partition. Milvus applies them; the live rows they leave
            // are the manifest's.
            let mut ordered = l0.clone();
            ordered.sort_by_key(|s| (s.partition_id == ALL_PARTITIONS, s.segment_id));
            for seg in ordered {
                let partition = if seg.partition_id == ALL_PARTITIONS {
                    String::new()
                } else {
                    self.partition_name(partition_names, seg)?
                };
                self.import_l0(task, into, seg, &partition).await?;
            }
            if src.rows_counted {
                by_partition = src
                    .partitions
                    .iter()
                    .map(|p| (p.partition_id, p.live_rows))
                    .collect();
            }
        }
        Ok(by_partition)
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

    /// Stages one segment's files, imports them in backup mode, waits, checks the
    /// rows, inserts the survivors of a key-only delete rule, cleans up.
    async fn import_segment(
        &self,
        task: Task<'_>,
        into: &Target,
        plan: &SegmentPlan<'_>,
        mode: Deletes,
    ) -> Result<i64> {
        self.ctx.check_cancelled()?;
        let seg = plan.seg;
        let staged = self.staging.segment(task.src.collection_id, seg);
        let own_deltas: &[BackupFile] = if plan.fold.is_some() {
            &[]
        } else {
            &seg.delta_logs
        };
        let files: Vec<_> = seg
            .insert_logs
            .iter()
            .map(|f| (f, staged.key_of(seg, f, false)))
            .chain(own_deltas.iter().map(|f| (f, staged.key_of(seg, f, true))))
            .collect();
        self.stage(task, files).await?;
        let dst = &self.job.cluster.store;
        if let Some((folded, _)) = &plan.fold {
            for f in &seg.delta_logs {
                self.ctx.file_done(Some(task.idx), f.size_bytes);
            }
            if !folded.entries.is_empty() {
                let ids = LogIds::new(task.src.collection_id, seg.partition_id, seg.segment_id, -1);
                let bytes = write_delta_log(&ids, &folded.entries, DeltaEncoding::V1Json)
                    .map_err(|e| Error::internal("a delete log could not be written", e))?;
                let log_id = seg.delta_logs.iter().map(|f| f.log_id).max().unwrap_or(0) + 1;
                let key = format!("{}{}/{log_id}", staged.delta_dir, seg.segment_id);
                dst.write_small(&key, bytes).await?;
            }
        }

        let spec = ImportSpec {
            database: &into.database,
            collection: &into.collection,
            partition: &plan.partition,
            paths: staged.import_paths(&self.staging),
            l0: false,
            storage_version: seg.storage_version,
        };
        let tasks = self.client.import_binlogs(&spec).await?;
        let mut rows = 0;
        for id in tasks {
            rows += self.wait_import(into, seg, id).await?;
        }
        if let Some(expect) = plan.expect
            && rows != expect
        {
            return Err(Error::RowsMismatch {
                collection: format!("{}.{}", into.database, into.collection),
                message: format!(
                    "segment {}: Milvus imported {rows} rows, its staged files hold {expect}",
                    seg.segment_id
                ),
            });
        }
        if mode == Deletes::FoldedKeys
            && let Some((folded, set)) = &plan.fold
            && folded.survivors > 0
        {
            rows += self.insert_survivors(task, into, plan, folded, set).await?;
        }
        if let Err(e) = dst.delete_prefix(&staged.dir).await {
            tracing::warn!(error = %e, "could not remove staged segment files; they go with the job's staging prefix");
        }
        Ok(rows)
    }

    /// Imports one L0 (delete-only) segment with `l0_import` (2.4+).
    async fn import_l0(
        &self,
        task: Task<'_>,
        into: &Target,
        seg: &SegmentBackup,
        partition: &str,
    ) -> Result<()> {
        self.ctx.check_cancelled()?;
        let staged = self.staging.segment(task.src.collection_id, seg);
        let files: Vec<_> = seg
            .delta_logs
            .iter()
            .map(|f| (f, staged.key_of(seg, f, true)))
            .collect();
        self.stage(task, files).await?;
        // A partition-level L0 segment is given as the group directory holding
        // `<segment>/<log>`; an all-partition one as its segment directory.
        let dir = if seg.partition_id == ALL_PARTITIONS {
            format!("{}{}/", staged.delta_dir, seg.segment_id)
        } else {
            staged.delta_dir.clone()
        };
        let spec = ImportSpec {
            database: &into.database,
            collection: &into.collection,
            partition,
            paths: vec![self.staging.import_path(&dir)],
            l0: true,
            storage_version: seg.storage_version,
        };
        for id in self.client.import_binlogs(&spec).await? {
            match self.client.wait_import(id, self.ctx.cancel_token()).await? {
                ImportProgress::Completed { .. } => {}
                ImportProgress::Failed { reason } => {
                    return Err(Error::ImportFailed {
                        collection: format!("{}.{}", into.database, into.collection),
                        segment: seg.segment_id,
                        message: format!("L0 delete segment, task {id}: {reason}"),
                    });
                }
                ImportProgress::Running => {
                    return Err(Error::internal(
                        "an import wait ended while the task ran",
                        format!("task {id}"),
                    ));
                }
            }
        }
        if let Err(e) = self.job.cluster.store.delete_prefix(&staged.dir).await {
            tracing::warn!(error = %e, "could not remove staged L0 files; they go with the job's staging prefix");
        }
        Ok(())
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

    /// Waits for one import task and checks the rows it reports against the segment.
    async fn wait_import(&self, into: &Target, seg: &SegmentBackup, id: i64) -> Result<i64> {
        let fail = |message: String| Error::ImportFailed {
            collection: format!("{}.{}", into.database, into.collection),
            segment: seg.segment_id,
            message,
        };
        match self.client.wait_import(id, self.ctx.cancel_token()).await? {
            ImportProgress::Completed { rows } => {
                if rows > seg.num_rows {
                    return Err(fail(format!(
                        "Milvus imported {rows} rows, the segment holds {}",
                        seg.num_rows
                    )));
                }
                if rows == 0 && seg.num_rows > 0 && seg.delta_logs.is_empty() {
                    return Err(fail(format!(
                        "Milvus reported success with 0 rows for a segment of {} rows (it could not read the staged files)",
                        seg.num_rows
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
