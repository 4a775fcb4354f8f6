//! Exact rows of a backed-up collection: per segment, partition and collection, the
//! inserted rows and the live rows after Milvus's delete rule. Only the primary-key and
//! timestamp columns are decoded (a small share of the bytes), plus the delete logs.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use milvault_proto::milvault::v1::CollectionBackup;

use super::{Files, is_delete_only, pk_field};
use crate::error::{Error, Result};

/// Segments counted at once.
const CONCURRENCY: usize = 4;

/// Rows of one segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SegmentRows {
    /// Rows in its insert logs.
    pub(crate) inserted: i64,
    /// Rows no delete removed.
    pub(crate) live: i64,
}

/// Rows of one collection.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct CollectionRows {
    /// Per segment, in the manifest's order.
    pub(crate) segments: Vec<SegmentRows>,
    /// Live rows per partition id.
    pub(crate) partitions: BTreeMap<i64, i64>,
    /// Inserted rows of the collection.
    pub(crate) inserted: i64,
    /// Live rows of the collection.
    pub(crate) live: i64,
}

/// Counts the rows of `c` from the backup's files. A segment whose decoded rows differ
/// from the count Milvus gave for it fails with [`Error::SegmentFiles`].
pub(crate) async fn count_collection(
    files: &Files<'_>,
    c: &CollectionBackup,
) -> Result<CollectionRows> {
    let pk = pk_field(c)?;
    let partitions: BTreeSet<i64> = c
        .segments
        .iter()
        .filter(|s| !is_delete_only(s))
        .map(|s| s.partition_id)
        .collect();
    let mut out = CollectionRows {
        segments: vec![SegmentRows::default(); c.segments.len()],
        ..Default::default()
    };
    for p in partitions {
        let deletes = files.deletes_of(c, p).await?;
        let deletes = &deletes;
        let mut jobs = Vec::new();
        for (i, seg) in c.segments.iter().enumerate() {
            if seg.partition_id != p || is_delete_only(seg) {
                continue;
            }
            jobs.push(async move {
                let segment = files.segment_of(c, seg);
                let n = deletes
                    .count_live(&segment, pk)
                    .await
                    .map_err(|e| files.segment_error(e, c, seg))?;
                let inserted = i64::try_from(n.inserted).unwrap_or(i64::MAX);
                if inserted != seg.num_rows {
                    return Err(Error::SegmentFiles {
                        collection: format!("{}.{}", c.database, c.name),
                        segment: seg.segment_id,
                        message: format!(
                            "its files hold {inserted} rows, Milvus counted {} for it",
                            seg.num_rows
                        ),
                    });
                }
                Ok::<_, Error>((
                    i,
                    SegmentRows {
                        inserted,
                        live: i64::try_from(n.live).unwrap_or(i64::MAX),
                    },
                ))
            });
        }
        let counted: Vec<(usize, SegmentRows)> = futures::stream::iter(jobs)
            .buffer_unordered(CONCURRENCY)
            .try_collect()
            .await?;
        for (i, rows) in counted {
            out.segments[i] = rows;
            out.inserted += rows.inserted;
            out.live += rows.live;
            *out.partitions.entry(p).or_default() += rows.live;
        }
    }
    Ok(out)
}

/// Writes counted rows into the manifest's collection.
pub(crate) fn record(c: &mut CollectionBackup, rows: &CollectionRows) {
    for (seg, n) in c.segments.iter_mut().zip(&rows.segments) {
        seg.inserted_rows = n.inserted;
        seg.live_rows = n.live;
    }
    for p in &mut c.partitions {
        p.live_rows = rows.partitions.get(&p.partition_id).copied().unwrap_or(0);
    }
    c.live_rows = rows.live;
    c.rows_counted = true;
}

/// Live rows of one segment under its own delete logs only (what an import that
/// compares timestamps lands when given the segment's files as backed up).
pub(crate) async fn count_own(
    files: &Files<'_>,
    c: &CollectionBackup,
    seg: &milvault_proto::milvault::v1::SegmentBackup,
) -> Result<i64> {
    let pk = pk_field(c)?;
    let mut deletes = milvault_binlog::DeleteSet::new();
    for f in &seg.delta_logs {
        let log = milvault_binlog::read_delta_log(files.source(f))
            .await
            .map_err(|e| files.error(e))?;
        deletes.extend(log.entries);
    }
    let n = deletes
        .count_live(&files.segment_of(c, seg), pk)
        .await
        .map_err(|e| files.segment_error(e, c, seg))?;
    Ok(i64::try_from(n.live).unwrap_or(i64::MAX))
}
