//! Binlog import: stage one segment's files in the target's storage (checked against
//! the manifest as they are copied), `Import` them in backup mode, wait, check the row
//! count Milvus reports, remove the staged files. Segments go bounded-parallel.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use milvault_proto::milvault::v1::SegmentBackup;

use super::{Side, Target, Task};
use crate::error::{Error, Result};
use crate::milvus::types::{ImportProgress, ImportSpec};

impl Side<'_> {
    /// Imports every segment of the task's collection into `into`, each into its
    /// original partition; returns the rows Milvus says it imported, per partition id.
    pub(super) async fn import_all(
        &self,
        task: Task<'_>,
        into: &Target,
        partition_names: &BTreeMap<i64, String>,
    ) -> Result<BTreeMap<i64, i64>> {
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
            imports.push(async move {
                let rows = self.import_segment(task, into, seg, partition).await?;
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

    /// Stages one segment's files, imports them in backup mode, waits, cleans up.
    async fn import_segment(
        &self,
        task: Task<'_>,
        into: &Target,
        seg: &SegmentBackup,
        partition: String,
    ) -> Result<i64> {
        self.ctx.check_cancelled()?;
        let staged = self.staging.segment(task.src.collection_id, seg);
        let files: Vec<_> = seg
            .insert_logs
            .iter()
            .map(|f| (f, staged.key_of(seg, f, false)))
            .chain(
                seg.delta_logs
                    .iter()
                    .map(|f| (f, staged.key_of(seg, f, true))),
            )
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
        if let Err(e) = dst.delete_prefix(&staged.dir).await {
            tracing::warn!(error = %e, "could not remove staged segment files; they go with the job's staging prefix");
        }
        Ok(rows)
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
