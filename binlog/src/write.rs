//! Writers that produce what Milvus itself writes, so real Milvus can read the result.
//!
//! - [`write_insert_log`]: a v1 insert binlog for one field, as the 2.2–2.5 `InsertCodec`
//!   writes it (one insert event; `next_position` absolute; extras `original_size` and,
//!   when given, `nullable`).
//! - [`write_delta_log`]: a delete log in any [`DeltaEncoding`]. The JSON variant follows
//!   2.3 `DeleteCodec.Serialize` byte for byte in its envelope (String payload, field id
//!   -1, start/end = min/max delete ts, Go-escaped JSON rows) — 2.2/2.3 imports read only
//!   this one. MULTI_FIELD follows the 2.4 `MultiFieldDeltalogStreamWriter` (payload type
//!   Int64, event start/end ts 1, `next_position` -1). V2 is the bare Parquet of the 2.6
//!   packed writer (pk = field 0, ts = field 1).
//! - [`write_column_group`]: a storage-v2 column-group file.
//!
//! Parquet payloads use the upstream writer properties: zstd level 3, one column named
//! `val` for v1 insert payloads, no embedded Arrow schema.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::{Array, ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType as ArrowType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde_json::{Map, Value};

use crate::convert::to_stored;
use crate::datatype::DataType;
use crate::delta::{DeleteEntry, DeltaEncoding, Pk};
use crate::error::{Error, Result};
use crate::v1::{
    DATA_FIX_LEN, DESCRIPTOR_FIX_LEN, EVENT_HEADER_LEN, EventType, MAGIC, POST_HEADER_LENGTHS,
};
use crate::v2::FIELD_ID_KEY;

/// Ids written into a v1 descriptor, and the header timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogIds {
    /// Collection id.
    pub collection_id: i64,
    /// Partition id.
    pub partition_id: i64,
    /// Segment id.
    pub segment_id: i64,
    /// Field id (insert logs; delete logs always write -1 as upstream does).
    pub field_id: i64,
    /// Event header timestamp: a hybrid TSO of the writing time ([`tso_now`]).
    pub written_at: u64,
}

impl LogIds {
    /// Ids with `written_at` = now.
    pub fn new(collection_id: i64, partition_id: i64, segment_id: i64, field_id: i64) -> LogIds {
        LogIds {
            collection_id,
            partition_id,
            segment_id,
            field_id,
            written_at: tso_now(),
        }
    }
}

/// Current time as a hybrid timestamp (physical milliseconds << 18, logical 0).
pub fn tso_now() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    ms << 18
}

fn props() -> WriterProperties {
    let zstd = ZstdLevel::try_new(3).unwrap_or_default();
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .build()
}

fn parquet_bytes(batch: &RecordBatch, kv: Option<Vec<KeyValue>>) -> Result<Vec<u8>> {
    let mut p = props();
    if let Some(kv) = kv {
        p = WriterProperties::builder()
            .set_compression(p.compression(&parquet::schema::types::ColumnPath::new(vec![])))
            .set_key_value_metadata(Some(kv))
            .build();
    }
    let opts = ArrowWriterOptions::new()
        .with_properties(p)
        .with_skip_arrow_metadata(true);
    let mut out = Vec::new();
    let mut w = ArrowWriter::try_new_with_options(&mut out, batch.schema(), opts)
        .map_err(|e| Error::invalid(format!("parquet writer: {e}")))?;
    w.write(batch)
        .map_err(|e| Error::invalid(format!("parquet write: {e}")))?;
    w.close()
        .map_err(|e| Error::invalid(format!("parquet close: {e}")))?;
    Ok(out)
}

struct Envelope<'a> {
    ids: LogIds,
    field_id: i64,
    payload_type: DataType,
    start_ts: u64,
    end_ts: u64,
    extras: Map<String, Value>,
    event_type: EventType,
    event_start_ts: u64,
    event_end_ts: u64,
    absolute_next: bool,
    payload: &'a [u8],
}

fn envelope(e: Envelope<'_>) -> Result<Vec<u8>> {
    let extras = serde_json::to_vec(&Value::Object(e.extras))
        .map_err(|err| Error::invalid(format!("extras: {err}")))?;
    let desc_len = EVENT_HEADER_LEN + DESCRIPTOR_FIX_LEN + 8 + 4 + extras.len() as u64;
    let event_len = EVENT_HEADER_LEN + DATA_FIX_LEN + e.payload.len() as u64;
    let total = 4 + desc_len + event_len;
    let to_i32 = |v: u64| {
        i32::try_from(v).map_err(|_| Error::invalid(format!("binlog of {v} bytes is too large")))
    };
    let mut out = Vec::with_capacity(total as usize);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    // descriptor header
    out.extend_from_slice(&e.ids.written_at.to_le_bytes());
    out.push(EventType::Descriptor as i8 as u8);
    out.extend_from_slice(&to_i32(desc_len)?.to_le_bytes());
    out.extend_from_slice(&to_i32(4 + desc_len)?.to_le_bytes());
    // descriptor fix part
    out.extend_from_slice(&e.ids.collection_id.to_le_bytes());
    out.extend_from_slice(&e.ids.partition_id.to_le_bytes());
    out.extend_from_slice(&e.ids.segment_id.to_le_bytes());
    out.extend_from_slice(&e.field_id.to_le_bytes());
    out.extend_from_slice(&e.start_ts.to_le_bytes());
    out.extend_from_slice(&e.end_ts.to_le_bytes());
    out.extend_from_slice(&e.payload_type.code().to_le_bytes());
    out.extend_from_slice(&POST_HEADER_LENGTHS);
    out.extend_from_slice(&to_i32(extras.len() as u64)?.to_le_bytes());
    out.extend_from_slice(&extras);
    // data event
    out.extend_from_slice(&e.ids.written_at.to_le_bytes());
    out.push(e.event_type as i8 as u8);
    out.extend_from_slice(&to_i32(event_len)?.to_le_bytes());
    let next = if e.absolute_next { to_i32(total)? } else { -1 };
    out.extend_from_slice(&next.to_le_bytes());
    out.extend_from_slice(&e.event_start_ts.to_le_bytes());
    out.extend_from_slice(&e.event_end_ts.to_le_bytes());
    out.extend_from_slice(e.payload);
    Ok(out)
}

/// What to write into a v1 insert log besides the column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsertLogSpec {
    /// Ids and header timestamp.
    pub ids: LogIds,
    /// Milvus type of the field.
    pub data_type: DataType,
    /// Smallest row timestamp (upstream refuses 0).
    pub start_ts: u64,
    /// Largest row timestamp (upstream refuses 0).
    pub end_ts: u64,
    /// `Some(_)` writes the `nullable` extra (2.5+ writers always do).
    pub nullable: Option<bool>,
}

/// Write one field's rows as a v1 insert log. `column` may be in returned form (see
/// [`crate::convert`]) or already in stored form.
pub fn write_insert_log(spec: &InsertLogSpec, column: &ArrayRef) -> Result<Vec<u8>> {
    if spec.start_ts == 0 || spec.end_ts == 0 {
        return Err(Error::invalid(
            "insert log start/end timestamps must be non-zero",
        ));
    }
    if column.is_empty() {
        return Err(Error::invalid("an insert log needs at least one row"));
    }
    let stored = to_stored(spec.data_type, column)?;
    let nullable = spec.nullable.unwrap_or(false);
    if !nullable && stored.null_count() > 0 {
        return Err(Error::invalid("nulls in a column not marked nullable"));
    }
    let schema = Schema::new(vec![Field::new(
        "val",
        stored.data_type().clone(),
        nullable,
    )]);
    let batch = RecordBatch::try_new(Arc::new(schema), vec![stored.clone()])
        .map_err(|e| Error::invalid(format!("insert batch: {e}")))?;
    let payload = parquet_bytes(&batch, None)?;
    let mut extras = Map::new();
    extras.insert(
        "original_size".into(),
        Value::String(stored.get_array_memory_size().to_string()),
    );
    if let Some(n) = spec.nullable {
        extras.insert("nullable".into(), Value::Bool(n));
    }
    envelope(Envelope {
        ids: spec.ids,
        field_id: spec.ids.field_id,
        payload_type: spec.data_type,
        start_ts: spec.start_ts,
        end_ts: spec.end_ts,
        extras,
        event_type: EventType::Insert,
        event_start_ts: spec.start_ts,
        event_end_ts: spec.end_ts,
        absolute_next: true,
        payload: &payload,
    })
}

/// Go's `json.Marshal` of a string: escapes `<`, `>`, `&`, U+2028, U+2029 as well.
fn go_json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One JSON delete row exactly as Go marshals `DeleteLog{Pk, Ts, PkType}`.
pub fn json_row(e: &DeleteEntry) -> String {
    match &e.pk {
        Pk::Int64(p) => format!("{{\"pk\":{p},\"ts\":{},\"pkType\":5}}", e.ts),
        Pk::VarChar(s) => format!(
            "{{\"pk\":{},\"ts\":{},\"pkType\":21}}",
            go_json_string(s),
            e.ts
        ),
    }
}

/// Write a delete log in the chosen encoding. `ids.field_id` is ignored (-1 is written,
/// as upstream does). Entries must be non-empty and share one pk type.
pub fn write_delta_log(
    ids: &LogIds,
    entries: &[DeleteEntry],
    encoding: DeltaEncoding,
) -> Result<Vec<u8>> {
    let Some(first) = entries.first() else {
        return Err(Error::invalid("a delete log needs at least one delete"));
    };
    let varchar = matches!(first.pk, Pk::VarChar(_));
    if entries
        .iter()
        .any(|e| matches!(e.pk, Pk::VarChar(_)) != varchar)
    {
        return Err(Error::invalid("delete entries mix Int64 and VarChar keys"));
    }
    let start = entries.iter().map(|e| e.ts).min().unwrap_or(0);
    let end = entries.iter().map(|e| e.ts).max().unwrap_or(0);
    let pk_ts_batch = |names: [&str; 2], field_ids: bool| -> Result<RecordBatch> {
        let pk: ArrayRef = if varchar {
            Arc::new(StringArray::from_iter_values(entries.iter().map(
                |e| match &e.pk {
                    Pk::VarChar(s) => s.as_str(),
                    Pk::Int64(_) => "",
                },
            )))
        } else {
            Arc::new(Int64Array::from_iter_values(entries.iter().map(
                |e| match e.pk {
                    Pk::Int64(p) => p,
                    Pk::VarChar(_) => 0,
                },
            )))
        };
        let ts: ArrayRef = Arc::new(Int64Array::from_iter_values(
            entries.iter().map(|e| e.ts as i64),
        ));
        let md = |id: i64| {
            if field_ids {
                HashMap::from([(FIELD_ID_KEY.to_owned(), id.to_string())])
            } else {
                HashMap::new()
            }
        };
        let schema = Schema::new(vec![
            Field::new(names[0], pk.data_type().clone(), false).with_metadata(md(0)),
            Field::new(names[1], ArrowType::Int64, false).with_metadata(md(1)),
        ]);
        RecordBatch::try_new(Arc::new(schema), vec![pk, ts])
            .map_err(|e| Error::invalid(format!("delete batch: {e}")))
    };
    match encoding {
        DeltaEncoding::V1Json | DeltaEncoding::V1Legacy => {
            let rows: Vec<String> = if encoding == DeltaEncoding::V1Json {
                entries.iter().map(json_row).collect()
            } else {
                if varchar {
                    return Err(Error::invalid(
                        "the legacy \"pk,ts\" encoding holds Int64 keys only",
                    ));
                }
                entries
                    .iter()
                    .map(|e| match e.pk {
                        Pk::Int64(p) => format!("{p},{}", e.ts),
                        Pk::VarChar(_) => String::new(),
                    })
                    .collect()
            };
            let size: usize = rows.iter().map(String::len).sum();
            let col: ArrayRef = Arc::new(StringArray::from_iter_values(rows.iter()));
            let schema = Schema::new(vec![Field::new("val", ArrowType::Utf8, false)]);
            let batch = RecordBatch::try_new(Arc::new(schema), vec![col])
                .map_err(|e| Error::invalid(format!("delete batch: {e}")))?;
            let payload = parquet_bytes(&batch, None)?;
            let mut extras = Map::new();
            extras.insert("original_size".into(), Value::String(size.to_string()));
            envelope(Envelope {
                ids: *ids,
                field_id: -1,
                payload_type: DataType::String,
                start_ts: start,
                end_ts: end,
                extras,
                event_type: EventType::Delete,
                event_start_ts: start,
                event_end_ts: end,
                absolute_next: true,
                payload: &payload,
            })
        }
        DeltaEncoding::V1MultiField => {
            let batch = pk_ts_batch(["pk", "ts"], false)?;
            let payload = parquet_bytes(&batch, None)?;
            let mut extras = Map::new();
            extras.insert(
                "original_size".into(),
                Value::String(batch.get_array_memory_size().to_string()),
            );
            extras.insert("version".into(), Value::String("MULTI_FIELD".into()));
            envelope(Envelope {
                ids: *ids,
                field_id: -1,
                payload_type: DataType::Int64,
                start_ts: 0,
                end_ts: 0,
                extras,
                event_type: EventType::Delete,
                event_start_ts: 1,
                event_end_ts: 1,
                absolute_next: false,
                payload: &payload,
            })
        }
        DeltaEncoding::V2Parquet => {
            let batch = pk_ts_batch(["", ""], true)?;
            let rows = batch.num_rows();
            let kv = packed_metadata(&batch, &[vec![0, 1]], rows);
            parquet_bytes(&batch, Some(kv))
        }
    }
}

fn packed_metadata(batch: &RecordBatch, groups: &[Vec<i64>], rows: usize) -> Vec<KeyValue> {
    let groups = groups
        .iter()
        .map(|g| g.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>()
        .join(";");
    vec![
        KeyValue::new(
            "row_group_metadata".into(),
            format!("{}|{}|0", batch.get_array_memory_size(), rows),
        ),
        KeyValue::new("group_field_id_list".into(), groups),
        KeyValue::new("storage_version".into(), "1.0.0".to_owned()),
    ]
}

/// One column of a storage-v2 column-group file.
#[derive(Debug, Clone)]
pub struct GroupColumn {
    /// Milvus field id (written as `PARQUET:field_id`).
    pub field_id: i64,
    /// Column name (upstream uses the schema's field name).
    pub name: String,
    /// Milvus type.
    pub data_type: DataType,
    /// Whether the field is nullable.
    pub nullable: bool,
    /// The rows, in returned or stored form.
    pub values: ArrayRef,
}

/// Write a storage-v2 column-group file. `all_groups` lists the field ids of every group
/// of the segment in group order (the packed writer records it in each file's footer).
pub fn write_column_group(columns: &[GroupColumn], all_groups: &[Vec<i64>]) -> Result<Vec<u8>> {
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    for c in columns {
        let stored = to_stored(c.data_type, &c.values)?;
        let md = HashMap::from([(FIELD_ID_KEY.to_owned(), c.field_id.to_string())]);
        fields.push(Field::new(&c.name, stored.data_type().clone(), c.nullable).with_metadata(md));
        arrays.push(stored);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(|e| Error::invalid(format!("column group: {e}")))?;
    let rows = batch.num_rows();
    let kv = packed_metadata(&batch, all_groups, rows);
    parquet_bytes(&batch, Some(kv))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_rows_match_go() {
        let e = DeleteEntry {
            pk: Pk::VarChar("a<b>&\"c\"".into()),
            ts: 7,
        };
        assert_eq!(
            json_row(&e),
            r#"{"pk":"a\u003cb\u003e\u0026\"c\"","ts":7,"pkType":21}"#
        );
        let e = DeleteEntry {
            pk: Pk::Int64(-3),
            ts: u64::MAX,
        };
        assert_eq!(
            json_row(&e),
            r#"{"pk":-3,"ts":18446744073709551615,"pkType":5}"#
        );
    }
}
