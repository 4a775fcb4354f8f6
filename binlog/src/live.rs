//! Which rows are live: a delete set built from delete logs, and Milvus's visibility rule.
//!
//! A delete of primary key `p` at timestamp `D` removes every row of `p` written before
//! `D`; a row written at `D` or later survives (this is how an upsert's new row outlives
//! the delete issued with it at the same timestamp). Upstream: the backup-mode import
//! filter keeps a row iff `deleteTs <= rowTs`. So only the largest delete timestamp per
//! key matters, and the set costs memory per distinct deleted key, not per row.

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_schema::DataType as ArrowType;

use crate::delta::{DeleteEntry, Pk};
use crate::error::{Error, Result};
use crate::segment::{Segment, TIMESTAMP_FIELD, column};

/// Primary key → largest delete timestamp.
#[derive(Debug, Clone, Default)]
pub struct DeleteSet {
    max_ts: HashMap<Pk, u64>,
}

/// Rows of a segment before and after applying deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RowCounts {
    /// Rows in the insert logs.
    pub inserted: u64,
    /// Rows no delete removes.
    pub live: u64,
}

impl DeleteSet {
    /// An empty set.
    pub fn new() -> DeleteSet {
        DeleteSet::default()
    }

    /// Add one delete.
    pub fn insert(&mut self, e: DeleteEntry) {
        let slot = self.max_ts.entry(e.pk).or_insert(e.ts);
        if *slot < e.ts {
            *slot = e.ts;
        }
    }

    /// Number of distinct deleted keys.
    pub fn len(&self) -> usize {
        self.max_ts.len()
    }

    /// True when nothing is deleted.
    pub fn is_empty(&self) -> bool {
        self.max_ts.is_empty()
    }

    /// Largest delete timestamp of `pk`.
    pub fn delete_ts(&self, pk: &Pk) -> Option<u64> {
        self.max_ts.get(pk).copied()
    }

    /// Milvus's rule: the row is dead iff some delete of its key is strictly later.
    pub fn is_deleted(&self, pk: &Pk, row_ts: u64) -> bool {
        self.max_ts.get(pk).is_some_and(|d| *d > row_ts)
    }

    /// One boolean per row: true = live. `pks` is Int64 or Utf8, `tss` Int64 (hybrid TSO).
    pub fn live_mask(&self, pks: &ArrayRef, tss: &ArrayRef) -> Result<BooleanArray> {
        if tss.data_type() != &ArrowType::Int64 {
            return Err(Error::invalid(format!(
                "timestamps are {}, expected Int64",
                tss.data_type()
            )));
        }
        if pks.len() != tss.len() {
            return Err(Error::invalid("pk and timestamp columns differ in length"));
        }
        let ts = tss.as_primitive::<Int64Type>();
        if self.max_ts.is_empty() {
            return Ok(BooleanArray::from(vec![true; pks.len()]));
        }
        match pks.data_type() {
            ArrowType::Int64 => {
                let p = pks.as_primitive::<Int64Type>();
                Ok(p.values()
                    .iter()
                    .zip(ts.values().iter())
                    .map(|(pk, t)| Some(!self.is_deleted(&Pk::Int64(*pk), *t as u64)))
                    .collect())
            }
            ArrowType::Utf8 => {
                let p = pks.as_string::<i32>();
                let mut key = Pk::VarChar(String::new());
                Ok((0..p.len())
                    .map(|i| {
                        if let Pk::VarChar(s) = &mut key {
                            s.clear();
                            s.push_str(p.value(i));
                        }
                        Some(!self.is_deleted(&key, ts.value(i) as u64))
                    })
                    .collect())
            }
            other => Err(Error::invalid(format!("primary keys of type {other}"))),
        }
    }

    /// Keep only the live rows of a segment batch (`pk_field` = the primary key's id).
    pub fn filter_live(&self, batch: &RecordBatch, pk_field: i64) -> Result<RecordBatch> {
        let (Some(pks), Some(tss)) = (column(batch, pk_field), column(batch, TIMESTAMP_FIELD))
        else {
            return Err(Error::invalid(format!(
                "batch lacks the pk column {pk_field} or the timestamp column"
            )));
        };
        let mask = self.live_mask(pks, tss)?;
        arrow_select::filter::filter_record_batch(batch, &mask)
            .map_err(|e| Error::invalid(format!("filter: {e}")))
    }

    /// Inserted and live rows of a segment, decoding only its pk and timestamp columns.
    pub async fn count_live(&self, segment: &Segment, pk_field: i64) -> Result<RowCounts> {
        let mut reader = segment.batches(Some(&[pk_field, TIMESTAMP_FIELD])).await?;
        let mut counts = RowCounts::default();
        while let Some(b) = reader.next_batch().await? {
            let (Some(pks), Some(tss)) = (column(&b, pk_field), column(&b, TIMESTAMP_FIELD)) else {
                return Err(Error::invalid("segment batch without pk or timestamp"));
            };
            let mask = self.live_mask(pks, tss)?;
            counts.inserted += b.num_rows() as u64;
            counts.live += mask.true_count() as u64;
        }
        Ok(counts)
    }
}

impl Extend<DeleteEntry> for DeleteSet {
    fn extend<I: IntoIterator<Item = DeleteEntry>>(&mut self, iter: I) {
        for e in iter {
            self.insert(e);
        }
    }
}

impl FromIterator<DeleteEntry> for DeleteSet {
    fn from_iter<I: IntoIterator<Item = DeleteEntry>>(iter: I) -> Self {
        let mut s = DeleteSet::new();
        s.extend(iter);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn equal_timestamp_survives() {
        let s: DeleteSet = [
            DeleteEntry {
                pk: Pk::Int64(1),
                ts: 100,
            },
            DeleteEntry {
                pk: Pk::Int64(1),
                ts: 50,
            },
        ]
        .into_iter()
        .collect();
        assert!(s.is_deleted(&Pk::Int64(1), 99));
        assert!(!s.is_deleted(&Pk::Int64(1), 100));
        assert!(!s.is_deleted(&Pk::Int64(2), 0));
        let pks: ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![1, 1, 2]));
        let tss: ArrayRef = Arc::new(arrow_array::Int64Array::from(vec![99, 100, 1]));
        let m = s.live_mask(&pks, &tss).unwrap();
        assert_eq!(m, BooleanArray::from(vec![false, true, true]));
    }
}
