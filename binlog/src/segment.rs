//! One segment's insert logs read as aligned record batches.
//!
//! A v1 segment has, per field, a list of insert logs (ordered by log id) whose i-th
//! files hold the same rows; a v2 segment has, per column group, a list of Parquet files.
//! Each field (or group) is streamed on its own and the streams are zipped, cutting
//! batches at the shortest pending chunk, so memory stays at one decoded chunk per field.
//! Row counts are checked first from headers and footers only, so a segment whose fields
//! disagree fails before any data is decoded, with every field's count in the error.
//!
//! Batches are Arrow `RecordBatch`es whose columns are named by field id ("0" row id,
//! "1" timestamp, "100".. user fields) and carry `PARQUET:field_id` metadata.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};

use crate::error::{Error, Result};
use crate::insert::InsertLog;
use crate::payload::DEFAULT_BATCH_ROWS;
use crate::source::ByteSource;
use crate::v2::{ColumnGroupFile, FIELD_ID_KEY, FieldSpec};

/// Field id of the row-id system column.
pub const ROW_ID_FIELD: i64 = 0;
/// Field id of the timestamp system column (hybrid TSO per row).
pub const TIMESTAMP_FIELD: i64 = 1;

/// The insert-log files of one segment.
#[derive(Clone)]
pub enum SegmentFiles {
    /// Storage v1: files per field id, each list ordered by log id.
    V1 {
        /// Field id → insert logs in log-id order.
        fields: BTreeMap<i64, Vec<Arc<dyn ByteSource>>>,
    },
    /// Storage v2: files per column-group id, each list ordered by log id.
    V2 {
        /// Group id → Parquet files in log-id order.
        groups: BTreeMap<i64, Vec<Arc<dyn ByteSource>>>,
        /// Milvus types of the user fields (v2 files do not record them).
        schema: Vec<FieldSpec>,
    },
}

/// A segment to read.
#[derive(Clone)]
pub struct Segment {
    name: String,
    files: SegmentFiles,
    batch_rows: usize,
}

/// A cursor over one field (v1) or one column group (v2): a list of files, read in order.
enum Cursor {
    V1 {
        files: std::vec::IntoIter<Arc<dyn ByteSource>>,
        field_id: i64,
        open: Option<InsertLog>,
    },
    V2 {
        files: std::vec::IntoIter<Arc<dyn ByteSource>>,
        schema: Vec<FieldSpec>,
        only: Vec<i64>,
        open: Option<ColumnGroupFile>,
    },
}

impl Cursor {
    async fn next(&mut self, batch_rows: usize) -> Result<Option<Vec<(i64, ArrayRef)>>> {
        loop {
            match self {
                Cursor::V1 {
                    files,
                    field_id,
                    open,
                } => {
                    if let Some(log) = open.as_mut() {
                        if let Some(a) = log.next_array().await? {
                            return Ok(Some(vec![(*field_id, a)]));
                        }
                        *open = None;
                    }
                    let Some(src) = files.next() else {
                        return Ok(None);
                    };
                    *open = Some(InsertLog::open(src).await?.with_batch_rows(batch_rows));
                }
                Cursor::V2 {
                    files,
                    schema,
                    only,
                    open,
                } => {
                    if let Some(f) = open.as_mut() {
                        if let Some(cols) = f.next_columns().await? {
                            return Ok(Some(cols));
                        }
                        *open = None;
                    }
                    let Some(src) = files.next() else {
                        return Ok(None);
                    };
                    *open = Some(ColumnGroupFile::open(src, schema, Some(only), batch_rows).await?);
                }
            }
        }
    }
}

/// One field or column group being zipped: its cursor, the decoded chunk not yet
/// handed out (`pending` from row `off`), and how many rows it has produced so far.
struct Lane {
    id: i64,
    cursor: Cursor,
    pending: Vec<(i64, ArrayRef)>,
    off: usize,
    seen: u64,
}

impl Lane {
    fn new(id: i64, cursor: Cursor) -> Lane {
        Lane {
            id,
            cursor,
            pending: Vec::new(),
            off: 0,
            seen: 0,
        }
    }
}

/// Streams aligned batches of a segment; see [`Segment::batches`].
pub struct SegmentReader {
    name: String,
    batch_rows: usize,
    cursors: Vec<Lane>,
    order: Vec<i64>,
}

impl Segment {
    /// A segment named `name` (used in errors; e.g. its id or storage prefix).
    pub fn new(name: impl Into<String>, files: SegmentFiles) -> Segment {
        Segment {
            name: name.into(),
            files,
            batch_rows: DEFAULT_BATCH_ROWS,
        }
    }

    /// Rows per batch (upper bound; default 8192).
    pub fn with_batch_rows(mut self, rows: usize) -> Segment {
        self.batch_rows = rows.max(1);
        self
    }

    /// The segment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Row count of every field (v1) or column group (v2), from headers and footers only.
    pub async fn row_counts(&self) -> Result<BTreeMap<i64, u64>> {
        let mut out = BTreeMap::new();
        match &self.files {
            SegmentFiles::V1 { fields } => {
                for (id, files) in fields {
                    let mut n = 0;
                    for f in files {
                        n += InsertLog::row_count(f.clone()).await?;
                    }
                    out.insert(*id, n);
                }
            }
            SegmentFiles::V2 { groups, .. } => {
                for (id, files) in groups {
                    let mut n = 0;
                    for f in files {
                        n += ColumnGroupFile::inspect(f.clone()).await?.0;
                    }
                    out.insert(*id, n);
                }
            }
        }
        Ok(out)
    }

    /// The segment's row count, or [`Error::RowCountMismatch`] naming every field's count.
    pub async fn check_row_counts(&self) -> Result<u64> {
        let counts = self.row_counts().await?;
        let mut it = counts.values();
        let first = it.next().copied().unwrap_or(0);
        if it.any(|n| *n != first) {
            return Err(Error::RowCountMismatch {
                segment: self.name.clone(),
                counts: counts.into_iter().collect(),
            });
        }
        Ok(first)
    }

    /// Aligned batches of all fields, or only of `fields` (e.g. `[pk, 1]` to count rows).
    ///
    /// Checks row counts first. For v2, `fields` also limits which columns are decoded.
    pub async fn batches(&self, fields: Option<&[i64]>) -> Result<SegmentReader> {
        self.check_row_counts().await?;
        let mut cursors = Vec::new();
        let mut order = Vec::new();
        match &self.files {
            SegmentFiles::V1 { fields: all } => {
                for (id, files) in all {
                    if fields.is_some_and(|f| !f.contains(id)) {
                        continue;
                    }
                    order.push(*id);
                    let c = Cursor::V1 {
                        files: files.clone().into_iter(),
                        field_id: *id,
                        open: None,
                    };
                    cursors.push(Lane::new(*id, c));
                }
            }
            SegmentFiles::V2 { groups, schema } => {
                let mut found: HashMap<i64, i64> = HashMap::new();
                for (gid, files) in groups {
                    let Some(first) = files.first() else { continue };
                    let ids = ColumnGroupFile::inspect(first.clone()).await?.1;
                    let only: Vec<i64> = ids
                        .iter()
                        .copied()
                        .filter(|id| fields.is_none_or(|f| f.contains(id)))
                        .collect();
                    if only.is_empty() {
                        continue;
                    }
                    for id in &only {
                        if let Some(other) = found.insert(*id, *gid) {
                            return Err(Error::corrupt(
                                first.name(),
                                0,
                                format!("field {id} is in column groups {other} and {gid}"),
                            ));
                        }
                        order.push(*id);
                    }
                    let c = Cursor::V2 {
                        files: files.clone().into_iter(),
                        schema: schema.clone(),
                        only,
                        open: None,
                    };
                    cursors.push(Lane::new(*gid, c));
                }
            }
        }
        if let Some(missing) = fields.and_then(|w| w.iter().find(|id| !order.contains(id))) {
            return Err(Error::invalid(format!(
                "segment {}: no file holds field {missing}",
                self.name
            )));
        }
        Ok(SegmentReader {
            name: self.name.clone(),
            batch_rows: self.batch_rows,
            cursors,
            order,
        })
    }
}

fn pending_len(p: &[(i64, ArrayRef)], off: usize) -> usize {
    p.first().map_or(0, |(_, a)| a.len() - off)
}

impl SegmentReader {
    /// The next aligned batch, or `None` when every field is exhausted.
    pub async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        // refill empty cursors
        let mut ended = Vec::new();
        for Lane {
            id,
            cursor,
            pending,
            off,
            seen,
        } in self.cursors.iter_mut()
        {
            while pending_len(pending, *off) == 0 {
                match cursor.next(self.batch_rows).await? {
                    Some(cols) => {
                        *seen += cols.first().map_or(0, |(_, a)| a.len() as u64);
                        *pending = cols;
                        *off = 0;
                    }
                    None => {
                        ended.push(*id);
                        break;
                    }
                }
            }
        }
        if !ended.is_empty() {
            if ended.len() == self.cursors.len() {
                return Ok(None);
            }
            return Err(Error::RowCountMismatch {
                segment: self.name.clone(),
                counts: self.cursors.iter().map(|c| (c.id, c.seen)).collect(),
            });
        }
        let n = self
            .cursors
            .iter()
            .map(|l| pending_len(&l.pending, l.off))
            .min()
            .unwrap_or(0)
            .min(self.batch_rows);
        let mut cols: BTreeMap<i64, ArrayRef> = BTreeMap::new();
        for Lane { pending, off, .. } in self.cursors.iter_mut() {
            for (id, a) in pending.iter() {
                cols.insert(*id, a.slice(*off, n));
            }
            *off += n;
        }
        let mut fields = Vec::new();
        let mut arrays = Vec::new();
        for id in &self.order {
            if let Some(a) = cols.remove(id) {
                let md = HashMap::from([(FIELD_ID_KEY.to_owned(), id.to_string())]);
                fields.push(
                    Field::new(id.to_string(), a.data_type().clone(), true).with_metadata(md),
                );
                arrays.push(a);
            }
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| Error::invalid(format!("segment {}: {e}", self.name)))?;
        Ok(Some(batch))
    }
}

/// The column of `field_id` in a batch from [`SegmentReader`].
pub fn column(batch: &RecordBatch, field_id: i64) -> Option<&ArrayRef> {
    batch.column_by_name(&field_id.to_string())
}
