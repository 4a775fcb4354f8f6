//! Deletes rewritten for an import that cannot compare timestamps.
//!
//! Milvus 2.2's binlog import drops every row whose key appears in the segment's delete
//! log, whatever the timestamps, so a key deleted and written again (an upsert) loses
//! its newest row. For such targets each segment gets a new delete log, computed from
//! the partition's deletes with Milvus's rule: it names exactly the keys that have a
//! dead row in the segment (with the latest delete time). Rows of those keys that are
//! alive (written after the delete) are the segment's *survivors*: the import drops
//! them too, so they are inserted afterwards, full columns. Import plus survivors then
//! hold exactly the segment's live rows.

use std::collections::HashSet;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::DataType as ArrowType;
use milvault_binlog::segment::{TIMESTAMP_FIELD, column};
use milvault_binlog::{DeleteEntry, DeleteSet, Pk};
use milvault_proto::milvault::v1::{CollectionBackup, SegmentBackup};

use super::{Files, pk_field};
use crate::error::{Error, Result};

/// The rewritten deletes of one segment.
#[derive(Clone, Debug, Default)]
pub(crate) struct SegmentDeletes {
    /// The delete log to stage instead of the segment's own.
    pub(crate) entries: Vec<DeleteEntry>,
    /// Keys it names.
    pub(crate) keys: HashSet<Pk>,
    /// Live rows of those keys in the segment, to insert after the import.
    pub(crate) survivors: i64,
    /// Live rows of the segment.
    pub(crate) live: i64,
}

/// The keys of a primary-key column, row by row.
fn keys(a: &ArrayRef) -> Result<Vec<Pk>> {
    match a.data_type() {
        ArrowType::Int64 => Ok(a
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|v| Pk::Int64(*v))
            .collect()),
        ArrowType::Utf8 => Ok(a
            .as_string::<i32>()
            .iter()
            .map(|v| Pk::VarChar(v.unwrap_or_default().to_owned()))
            .collect()),
        other => Err(Error::internal(
            "a primary key column of an unexpected type",
            other,
        )),
    }
}

/// The key and timestamp columns of a batch.
fn key_ts(batch: &RecordBatch, pk: i64) -> Result<(Vec<Pk>, Vec<u64>)> {
    let (Some(k), Some(t)) = (column(batch, pk), column(batch, TIMESTAMP_FIELD)) else {
        return Err(Error::internal(
            "a segment batch without key or timestamp",
            pk,
        ));
    };
    if t.data_type() != &ArrowType::Int64 {
        return Err(Error::internal(
            "timestamps that are not Int64",
            t.data_type(),
        ));
    }
    let ts = t
        .as_primitive::<Int64Type>()
        .values()
        .iter()
        .map(|v| u64::try_from(*v).unwrap_or(0))
        .collect();
    Ok((keys(k)?, ts))
}

/// Plans the delete log of `seg` for an import that drops every row of a named key.
pub(crate) async fn plan(
    files: &Files<'_>,
    c: &CollectionBackup,
    seg: &SegmentBackup,
    deletes: &DeleteSet,
) -> Result<SegmentDeletes> {
    let pk = pk_field(c)?;
    let segment = files.segment_of(c, seg);
    let mut reader = segment
        .batches(Some(&[pk, TIMESTAMP_FIELD]))
        .await
        .map_err(|e| files.segment_error(e, c, seg))?;
    let mut out = SegmentDeletes::default();
    // Pass 1: keys with a dead row; live rows per key are counted in pass 2.
    let mut live_rows: Vec<(Pk, u64)> = Vec::new();
    while let Some(b) = reader
        .next_batch()
        .await
        .map_err(|e| files.segment_error(e, c, seg))?
    {
        let (ks, ts) = key_ts(&b, pk)?;
        for (k, t) in ks.into_iter().zip(ts) {
            if deletes.is_deleted(&k, t) {
                if !out.keys.contains(&k)
                    && let Some(d) = deletes.delete_ts(&k)
                {
                    out.entries.push(DeleteEntry {
                        pk: k.clone(),
                        ts: d,
                    });
                    out.keys.insert(k);
                }
            } else {
                out.live += 1;
                if deletes.delete_ts(&k).is_some() {
                    live_rows.push((k, t));
                }
            }
        }
    }
    out.survivors = live_rows
        .iter()
        .filter(|(k, _)| out.keys.contains(k))
        .count() as i64;
    Ok(out)
}

/// The survivors of `plan` as full-column batches (live rows of the keys the new
/// delete log names).
pub(crate) async fn survivors(
    files: &Files<'_>,
    c: &CollectionBackup,
    seg: &SegmentBackup,
    deletes: &DeleteSet,
    plan: &SegmentDeletes,
) -> Result<Vec<RecordBatch>> {
    let pk = pk_field(c)?;
    let segment = files.segment_of(c, seg);
    let mut reader = segment
        .batches(None)
        .await
        .map_err(|e| files.segment_error(e, c, seg))?;
    let mut out = Vec::new();
    while let Some(b) = reader
        .next_batch()
        .await
        .map_err(|e| files.segment_error(e, c, seg))?
    {
        let (ks, ts) = key_ts(&b, pk)?;
        let mask: BooleanArray = ks
            .iter()
            .zip(&ts)
            .map(|(k, t)| Some(plan.keys.contains(k) && !deletes.is_deleted(k, *t)))
            .collect();
        if mask.true_count() > 0 {
            out.push(
                arrow_select_filter(&b, &mask)
                    .map_err(|e| Error::internal("filtering survivor rows failed", e))?,
            );
        }
    }
    Ok(out)
}

fn arrow_select_filter(
    b: &RecordBatch,
    mask: &BooleanArray,
) -> std::result::Result<RecordBatch, arrow_schema::ArrowError> {
    let columns = b
        .columns()
        .iter()
        .map(|c| arrow_select::filter::filter(c.as_ref(), mask))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    RecordBatch::try_new(b.schema(), columns)
}
