//! Row insert, for collections Milvus cannot take binlogs into (partition-key
//! collections on Milvus < 2.4, and the cases of the compatibility rules).
//!
//! The live rows are read from the backup itself (`rows::reader`: deletes applied with
//! their timestamps), one bounded batch at a time, and inserted with full columns: into
//! their partition, or routed by Milvus on its partition key. No temporary collection,
//! no `count(*)` (so it works on Milvus 2.2): the rows Milvus took are summed and must
//! equal the manifest's live rows.

use std::collections::BTreeMap;

use milvault_proto::milvault::v1::{CollectionSchema, JobPhase};

use super::{Side, Task};
use crate::error::{Error, Result};
use crate::milvus::columns::row_bytes;
use crate::rows::Files;
use crate::rows::reader::LiveBatches;

/// Bytes of rows sent in one insert (well below Milvus's 64 MiB message limit).
const INSERT_BYTES: usize = 8 * 1024 * 1024;
/// Rows in one insert at most.
const INSERT_ROWS: usize = 8192;

impl Side<'_> {
    /// Restores the task's live rows by insert; returns the rows Milvus took, per
    /// partition id.
    pub(super) async fn restore_rows(
        &self,
        task: Task<'_>,
        schema: &CollectionSchema,
        partition_names: &BTreeMap<i64, String>,
    ) -> Result<BTreeMap<i64, i64>> {
        let (client, ctx) = (self.client, self.ctx);
        let t = task.target;
        ctx.collection_phase(task.idx, JobPhase::Inserting);
        ctx.phase(
            JobPhase::Inserting,
            format!("{}.{}", t.database, t.collection),
        )
        .await;
        let partition_key = schema.fields.iter().any(|f| f.is_partition_key);
        let files = Files {
            store: self.job.repository.store(),
            backup: &self.job.manifest.name,
        };
        let batch_rows = (INSERT_BYTES / row_bytes(schema)).clamp(1, INSERT_ROWS);
        let mut batches = LiveBatches::new(files, task.src, batch_rows)?;
        let mut rows: BTreeMap<i64, i64> = BTreeMap::new();
        let mut current: Option<i64> = None;
        while let Some((seg, batch)) = batches.next().await? {
            ctx.check_cancelled()?;
            if current != Some(seg.segment_id) {
                current = Some(seg.segment_id);
                for f in seg.insert_logs.iter().chain(&seg.delta_logs) {
                    ctx.file_done(Some(task.idx), f.size_bytes);
                }
            }
            let partition = if partition_key {
                None
            } else {
                Some(
                    partition_names
                        .get(&seg.partition_id)
                        .ok_or_else(|| Error::Manifest {
                            name: self.job.manifest.name.clone(),
                            message: format!(
                                "segment {} names unknown partition {}",
                                seg.segment_id, seg.partition_id
                            ),
                        })?,
                )
            };
            let n = batch.num_rows() as i64;
            let took = client
                .insert_rows(
                    &t.database,
                    &t.collection,
                    partition.map(String::as_str),
                    schema,
                    &batch,
                )
                .await?;
            if took != n {
                return Err(Error::RowsMismatch {
                    collection: format!("{}.{}", t.database, t.collection),
                    message: format!("Milvus took {took} of {n} rows sent in one insert"),
                });
            }
            *rows.entry(seg.partition_id).or_default() += took;
        }
        // Inserted rows sit in growing segments until a flush: seal them.
        client
            .flush_and_wait(&t.database, &t.collection, ctx.cancel_token())
            .await?;
        Ok(rows)
    }
}
