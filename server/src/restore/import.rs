//! Binlog import: stage one segment's files in the target's storage (checked against
//! the manifest as they are copied), `Import` them in backup mode, wait, check the row
//! count Milvus reports, remove the staged files. Segments go bounded-parallel.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use milvault_binlog::write::{LogIds, write_delta_log};
use milvault_binlog::{DeleteSet, DeltaEncoding};
use milvault_proto::milvault::v1::{BackupFile, SegmentBackup};

use super::{Side, Target, Task};
use crate::error::{Error, Result};
use crate::milvus::types::{ImportProgress, ImportSpec};
use crate::rows::{Files, fold};

impl Side<'_> {
    /// Imports every segment of the task's collection into `into`, each into its
    /// original partition; returns the rows Milvus says it imported, per partition id.
    pub(super) async fn import_all(
        &self,
        task: Task<'_>,
        into: &Target,
        partition_names: &BTreeMap<i64, String>,
    ) -> Result<BTreeMap<i64, i64>> {
        // A target that drops every row of a deleted key gets rewritten delete logs
        // (`rows::fold`), computed from each partition's deletes.
        let mut deletes: BTreeMap<i64, DeleteSet> = BTreeMap::new();
        if !self.client.features().import_compares_delete_timestamps() {
            let files = self.files();
            let partitions: std::collections::BTreeSet<i64> =
                task.src.segments.iter().map(|s| s.partition_id).collect();
            for p in partitions {
                deletes.insert(p, files.deletes_of(task.src, p).await?);
            }
        }
        let deletes = &deletes;
        // Collected first: a concrete Vec of futures keeps the job future `Send`
        // (a lazy `map` over borrowed segments trips rustc's lifetime inference).
        let mut imports = Vec::with_capacity(task.src.segments.len());
        for seg in &task.src.segments {
            let partition = partition_names
                .get(&seg.partition_id)
                .cloned()
                .ok_or_else(|| Error::Manifest {
                    name: self.job.manifest.name.clone(),
                    message: format!(
                        "segment {} names unknown partition {}",
                        seg.segment_id, seg.partition_id
                    ),
                })?;
            let fold = deletes.get(&seg.partition_id);
            imports.push(async move {
                let rows = self
                    .import_segment(task, into, seg, partition, fold)
                    .await?;
                Ok::<_, Error>((seg.partition_id, rows))
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
        Ok(by_partition)
    }

    /// The backup's files, for decoding.
    fn files(&self) -> Files<'_> {
        Files {
            store: self.job.repository.store(),
            backup: &self.job.manifest.name,
        }
    }

    /// Stages one segment's files, imports them in backup mode, waits, cleans up.
    /// With `fold` (the partition's deletes), the segment's delete logs are replaced
    /// by one computed for a target that drops every row of a named key, and the
    /// live rows that drops are inserted afterwards.
    async fn import_segment(
        &self,
        task: Task<'_>,
        into: &Target,
        seg: &SegmentBackup,
        partition: String,
        fold: Option<&DeleteSet>,
    ) -> Result<i64> {
        self.ctx.check_cancelled()?;
        let staged = self.staging.segment(task.src.collection_id, seg);
        let plan = match fold {
            Some(deletes) => Some(fold::plan(&self.files(), task.src, seg, deletes).await?),
            None => None,
        };
        let own_deltas: &[BackupFile] = if plan.is_some() { &[] } else { &seg.delta_logs };
        let files: Vec<_> = seg
            .insert_logs
            .iter()
            .map(|f| (f, staged.key_of(seg, f, false)))
            .chain(own_deltas.iter().map(|f| (f, staged.key_of(seg, f, true))))
            .collect();
        let backup = &self.job.manifest.name;
        let dst = &self.job.cluster.store;
        // Collected first, like the imports: a concrete Vec keeps the future `Send`.
        let mut copies = Vec::with_capacity(files.len());
        for (file, key) in files {
            copies.push(async move {
                self.ctx.check_cancelled()?;
                let c = self
                    .job
                    .repository
                    .copy_file_to(backup, file, dst, &key)
                    .await?;
                self.ctx.file_done(Some(task.idx), c.size);
                Ok::<_, Error>(())
            });
        }
        futures::stream::iter(copies)
            .buffer_unordered(self.job.limits.copy_concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        if let Some(plan) = &plan {
            for f in &seg.delta_logs {
                self.ctx.file_done(Some(task.idx), f.size_bytes);
            }
            if !plan.entries.is_empty() {
                let ids = LogIds::new(task.src.collection_id, seg.partition_id, seg.segment_id, -1);
                let bytes = write_delta_log(&ids, &plan.entries, DeltaEncoding::V1Json)
                    .map_err(|e| Error::internal("a delete log could not be written", e))?;
                let log_id = seg.delta_logs.iter().map(|f| f.log_id).max().unwrap_or(0) + 1;
                let key = format!("{}{}/{log_id}", staged.delta_dir, seg.segment_id);
                dst.write_small(&key, bytes).await?;
            }
        }

        let spec = ImportSpec {
            database: &into.database,
            collection: &into.collection,
            partition: &partition,
            paths: staged.import_paths(&self.staging),
        };
        let tasks = self.client.import_binlogs(&spec).await?;
        let mut rows = 0;
        for id in tasks {
            rows += self.wait_import(into, seg, id).await?;
        }
        if let (Some(plan), Some(deletes)) = (&plan, fold)
            && plan.survivors > 0
        {
            rows += self
                .insert_survivors(task, into, seg, &partition, deletes, plan)
                .await?;
        }
        if let Err(e) = dst.delete_prefix(&staged.dir).await {
            tracing::warn!(error = %e, "could not remove staged segment files; they go with the job's staging prefix");
        }
        Ok(rows)
    }

    /// Inserts the live rows a key-only delete log made the import drop.
    async fn insert_survivors(
        &self,
        task: Task<'_>,
        into: &Target,
        seg: &SegmentBackup,
        partition: &str,
        deletes: &DeleteSet,
        plan: &fold::SegmentDeletes,
    ) -> Result<i64> {
        let schema = task.src.schema.as_ref().ok_or_else(|| Error::Manifest {
            name: self.job.manifest.name.clone(),
            message: format!("collection {} has no schema", task.src.name),
        })?;
        let batches = fold::survivors(&self.files(), task.src, seg, deletes, plan).await?;
        let mut n = 0;
        for b in &batches {
            n += self
                .client
                .insert_rows(&into.database, &into.collection, Some(partition), schema, b)
                .await?;
        }
        if n != plan.survivors {
            return Err(Error::RowsMismatch {
                collection: format!("{}.{}", into.database, into.collection),
                message: format!(
                    "segment {}: {n} of {} re-inserted rows were taken",
                    seg.segment_id, plan.survivors
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
