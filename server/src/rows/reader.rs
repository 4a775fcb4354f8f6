//! The live rows of a backed-up collection as Arrow batches, partition by partition and
//! segment by segment, one batch in memory at a time: what row insert and Parquet export
//! consume. Columns are named by field id ("0" row id, "1" timestamp, "100" ...).

use std::collections::VecDeque;

use arrow_array::RecordBatch;
use milvault_binlog::{DeleteSet, SegmentReader};
use milvault_proto::milvault::v1::{CollectionBackup, SegmentBackup};

use super::{Files, is_delete_only, pk_field};
use crate::error::Result;

/// A cursor over the live rows of one collection; see [`LiveBatches::next`].
pub(crate) struct LiveBatches<'a> {
    files: Files<'a>,
    c: &'a CollectionBackup,
    pk: i64,
    batch_rows: usize,
    partitions: VecDeque<i64>,
    segments: VecDeque<&'a SegmentBackup>,
    deletes: DeleteSet,
    open: Option<(SegmentReader, &'a SegmentBackup)>,
}

impl<'a> LiveBatches<'a> {
    /// Live rows of `c`, `batch_rows` rows at most per batch (before deletes).
    pub(crate) fn new(
        files: Files<'a>,
        c: &'a CollectionBackup,
        batch_rows: usize,
    ) -> Result<Self> {
        let mut partitions: Vec<i64> = c
            .segments
            .iter()
            .filter(|s| !is_delete_only(s))
            .map(|s| s.partition_id)
            .collect();
        partitions.sort_unstable();
        partitions.dedup();
        Ok(Self {
            pk: pk_field(c)?,
            files,
            c,
            batch_rows: batch_rows.max(1),
            partitions: partitions.into(),
            segments: VecDeque::new(),
            deletes: DeleteSet::new(),
            open: None,
        })
    }

    /// The next non-empty batch of live rows and the segment it came from; `None` at
    /// the end.
    pub(crate) async fn next(&mut self) -> Result<Option<(&'a SegmentBackup, RecordBatch)>> {
        loop {
            if let Some((reader, seg)) = self.open.as_mut() {
                let seg: &'a SegmentBackup = seg;
                match reader
                    .next_batch()
                    .await
                    .map_err(|e| self.files.segment_error(e, self.c, seg))?
                {
                    Some(batch) => {
                        let live = self
                            .deletes
                            .filter_live(&batch, self.pk)
                            .map_err(|e| self.files.segment_error(e, self.c, seg))?;
                        if live.num_rows() > 0 {
                            return Ok(Some((seg, live)));
                        }
                        continue;
                    }
                    None => self.open = None,
                }
            }
            if let Some(seg) = self.segments.pop_front() {
                let segment = self
                    .files
                    .segment_of(self.c, seg)
                    .with_batch_rows(self.batch_rows);
                let reader = segment
                    .batches(None)
                    .await
                    .map_err(|e| self.files.segment_error(e, self.c, seg))?;
                self.open = Some((reader, seg));
                continue;
            }
            let Some(p) = self.partitions.pop_front() else {
                return Ok(None);
            };
            self.deletes = self.files.deletes_of(self.c, p).await?;
            self.segments = self
                .c
                .segments
                .iter()
                .filter(|s| s.partition_id == p && !is_delete_only(s))
                .collect();
        }
    }
}
