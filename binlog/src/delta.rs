//! Delete logs ("delta logs") in every encoding Milvus has written.
//!
//! | encoding | who writes it | shape |
//! |---|---|---|
//! | [`DeltaEncoding::V1Json`] | 2.2–2.5 default (`DeleteCodec`, `dataNode.deltalogFormat=json`) | v1 envelope, payload String (20), one row per delete: `{"pk":..,"ts":..,"pkType":5\|21}` |
//! | [`DeltaEncoding::V1Legacy`] | pre-2.2 int64-only writers | same envelope, rows `"pk,ts"` |
//! | [`DeltaEncoding::V1MultiField`] | 2.4+ with `deltalogFormat=parquet` | v1 envelope, descriptor extra `"version":"MULTI_FIELD"`, payload Int64, Parquet columns `pk` (Int64 or Utf8) and `ts` (Int64) |
//! | [`DeltaEncoding::V2Parquet`] | 2.6 storage v2 | bare Parquet, columns with `PARQUET:field_id` 0 (pk) and 1 (ts, Int64) |
//!
//! Row parsing follows upstream `DeleteLog.Parse`: JSON first, then `"pk,ts"`. Timestamps
//! are hybrid TSOs (physical ms << 18 | logical) and compare directly with row timestamps.
//! A delete log holds deletes only, so the result is bounded by the number of deletes.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType as ArrowType;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::payload::{DEFAULT_BATCH_ROWS, PayloadStream};
use crate::source::{ByteSource, read_checked};
use crate::v1::{BinlogFile, Descriptor, EventType, has_v1_magic};

/// A primary key: Milvus allows Int64 and VarChar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Pk {
    /// Int64 primary key (`pkType` 5).
    Int64(i64),
    /// VarChar primary key (`pkType` 21).
    VarChar(String),
}

/// One delete: rows with this pk and a timestamp before `ts` are gone.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeleteEntry {
    /// The deleted primary key.
    pub pk: Pk,
    /// Hybrid timestamp (TSO) of the delete.
    pub ts: u64,
}

/// How a delete log was encoded (restores into old Milvus need [`DeltaEncoding::V1Json`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaEncoding {
    /// v1 envelope, String payload, JSON rows.
    V1Json,
    /// v1 envelope, String payload, at least one `"pk,ts"` row.
    V1Legacy,
    /// v1 envelope, `MULTI_FIELD` pk/ts columns.
    V1MultiField,
    /// Bare Parquet (storage v2).
    V2Parquet,
}

/// A decoded delete log.
#[derive(Debug, Clone)]
pub struct DeltaLog {
    /// Encoding found.
    pub encoding: DeltaEncoding,
    /// The v1 descriptor (`None` for bare Parquet).
    pub descriptor: Option<Descriptor>,
    /// Deletes in file order.
    pub entries: Vec<DeleteEntry>,
}

/// Read a whole delete log, whatever its encoding.
pub async fn read_delta_log(src: Arc<dyn ByteSource>) -> Result<DeltaLog> {
    let name = src.name().to_owned();
    if src.len() < 4 {
        return Err(Error::corrupt(
            &name,
            src.len(),
            "truncated: shorter than any magic",
        ));
    }
    let head = read_checked(src.as_ref(), 0..4).await?;
    if &head[..] == b"PAR1" {
        let len = src.len();
        let mut stream = PayloadStream::open(src, 0, len, DEFAULT_BATCH_ROWS).await?;
        let mut entries = Vec::new();
        while let Some(b) = stream.next().await? {
            pk_ts_columns(&b, &name, 0, true, &mut entries)?;
        }
        return Ok(DeltaLog {
            encoding: DeltaEncoding::V2Parquet,
            descriptor: None,
            entries,
        });
    }
    if !has_v1_magic(&head) {
        return Err(Error::corrupt(
            &name,
            0,
            "neither a v1 binlog (magic 0xFFFABC) nor Parquet (PAR1)",
        ));
    }
    let mut file = BinlogFile::open(src).await?;
    let desc = file.descriptor().clone();
    let multi = desc.is_multi_field();
    let mut legacy = false;
    let mut entries = Vec::new();
    while let Some(e) = file.next_event().await? {
        if e.header.event_type != EventType::Delete {
            return Err(Error::corrupt(
                &name,
                e.offset + 8,
                format!("{:?} event in a delete log", e.header.event_type),
            ));
        }
        let mut stream = PayloadStream::open(
            file.source().clone(),
            e.payload_offset,
            e.payload_len,
            DEFAULT_BATCH_ROWS,
        )
        .await?;
        while let Some(b) = stream.next().await? {
            if multi {
                pk_ts_columns(&b, &name, e.payload_offset, false, &mut entries)?;
            } else {
                legacy |= string_rows(&b, &name, e.payload_offset, &mut entries)?;
            }
        }
    }
    let encoding = if multi {
        DeltaEncoding::V1MultiField
    } else if legacy {
        DeltaEncoding::V1Legacy
    } else {
        DeltaEncoding::V1Json
    };
    Ok(DeltaLog {
        encoding,
        descriptor: Some(desc),
        entries,
    })
}

fn field_id_of(f: &arrow_schema::Field) -> Option<i64> {
    f.metadata().get("PARQUET:field_id")?.parse().ok()
}

fn pk_ts_columns(
    b: &RecordBatch,
    name: &str,
    offset: u64,
    by_field_id: bool,
    out: &mut Vec<DeleteEntry>,
) -> Result<()> {
    let schema = b.schema();
    let find = |id: i64, fallback: usize| -> Option<usize> {
        if by_field_id
            && let Some(i) = schema
                .fields()
                .iter()
                .position(|f| field_id_of(f) == Some(id))
        {
            return Some(i);
        }
        (fallback < schema.fields().len()).then_some(fallback)
    };
    let (Some(pi), Some(ti)) = (find(0, 0), find(1, 1)) else {
        return Err(Error::corrupt(
            name,
            offset,
            format!(
                "delete payload needs pk and ts columns, has {}",
                schema.fields().len()
            ),
        ));
    };
    let ts = b.column(ti);
    if ts.data_type() != &ArrowType::Int64 {
        return Err(Error::corrupt(
            name,
            offset,
            format!("delete ts column is {}, expected Int64", ts.data_type()),
        ));
    }
    let ts = ts.as_primitive::<Int64Type>();
    let pk = b.column(pi);
    if pk.null_count() > 0 || ts.null_count() > 0 {
        return Err(Error::corrupt(
            name,
            offset,
            "null pk or ts in a delete log",
        ));
    }
    match pk.data_type() {
        ArrowType::Int64 => {
            let pk = pk.as_primitive::<Int64Type>();
            for (p, t) in pk.values().iter().zip(ts.values().iter()) {
                out.push(DeleteEntry {
                    pk: Pk::Int64(*p),
                    ts: *t as u64,
                });
            }
        }
        ArrowType::Utf8 => {
            let pk = pk.as_string::<i32>();
            for (i, t) in ts.values().iter().enumerate() {
                out.push(DeleteEntry {
                    pk: Pk::VarChar(pk.value(i).to_owned()),
                    ts: *t as u64,
                });
            }
        }
        other => {
            return Err(Error::corrupt(
                name,
                offset,
                format!("delete pk column is {other}, expected Int64 or Utf8"),
            ));
        }
    }
    Ok(())
}

/// Parse String rows; returns true when a legacy `"pk,ts"` row was seen.
fn string_rows(
    b: &RecordBatch,
    name: &str,
    offset: u64,
    out: &mut Vec<DeleteEntry>,
) -> Result<bool> {
    if b.num_columns() != 1 {
        return Err(Error::corrupt(
            name,
            offset,
            format!("delete payload has {} columns, expected 1", b.num_columns()),
        ));
    }
    let col = b.column(0);
    let mut legacy = false;
    let mut push = |i: usize, row: &str| -> Result<()> {
        let (entry, was_legacy) = parse_row(row).map_err(|what| {
            Error::corrupt(name, offset, format!("delete row {i} {row:?}: {what}"))
        })?;
        legacy |= was_legacy;
        out.push(entry);
        Ok(())
    };
    match col.data_type() {
        ArrowType::Utf8 => {
            let s = col.as_string::<i32>();
            for i in 0..s.len() {
                push(i, s.value(i))?;
            }
        }
        ArrowType::Binary => {
            let s = col.as_binary::<i32>();
            for i in 0..s.len() {
                let row = std::str::from_utf8(s.value(i)).map_err(|_| {
                    Error::corrupt(name, offset, format!("delete row {i} is not UTF-8"))
                })?;
                push(i, row)?;
            }
        }
        other => {
            return Err(Error::corrupt(
                name,
                offset,
                format!("delete payload column is {other}, expected a string"),
            ));
        }
    }
    Ok(legacy)
}

/// Parse one String-payload delete row, as upstream `DeleteLog.Parse` does.
pub fn parse_row(row: &str) -> std::result::Result<(DeleteEntry, bool), String> {
    if let Ok(v) = serde_json::from_str::<Value>(row) {
        let obj = v.as_object().ok_or("JSON row is not an object")?;
        let ts = obj
            .get("ts")
            .and_then(Value::as_u64)
            .ok_or("missing or non-integer \"ts\"")?;
        let pk_type = obj.get("pkType").and_then(Value::as_i64);
        let pk = match (pk_type, obj.get("pk")) {
            (Some(5) | None, Some(Value::Number(n))) => {
                Pk::Int64(n.as_i64().ok_or("\"pk\" is not an int64")?)
            }
            (Some(21) | None, Some(Value::String(s))) => Pk::VarChar(s.clone()),
            (t, p) => return Err(format!("pkType {t:?} does not match pk {p:?}")),
        };
        return Ok((DeleteEntry { pk, ts }, false));
    }
    let mut it = row.split(',');
    let (Some(pk), Some(ts), None) = (it.next(), it.next(), it.next()) else {
        return Err("neither JSON nor \"pk,ts\"".into());
    };
    let pk: i64 = pk.parse().map_err(|e| format!("pk: {e}"))?;
    let ts: u64 = ts.parse().map_err(|e| format!("ts: {e}"))?;
    Ok((
        DeleteEntry {
            pk: Pk::Int64(pk),
            ts,
        },
        true,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_in_every_string_form() {
        let (e, l) = parse_row(r#"{"pk":7,"ts":449885066469376001,"pkType":5}"#).unwrap();
        assert_eq!(
            e,
            DeleteEntry {
                pk: Pk::Int64(7),
                ts: 449885066469376001
            }
        );
        assert!(!l);
        let (e, _) = parse_row(r#"{"pk":"a\u003cb","ts":3,"pkType":21}"#).unwrap();
        assert_eq!(e.pk, Pk::VarChar("a<b".into()));
        let (e, l) = parse_row("-5,18446744073709551615").unwrap();
        assert_eq!(
            e,
            DeleteEntry {
                pk: Pk::Int64(-5),
                ts: u64::MAX
            }
        );
        assert!(l);
        assert!(parse_row("x,1").is_err());
        assert!(parse_row(r#"{"pk":"s","ts":1,"pkType":5}"#).is_err());
        assert!(parse_row("1,2,3").is_err());
    }
}
