//! Live rows of a backed-up collection as Parquet files that pandas, polars, DuckDB or
//! Spark read with no Milvus at all.
//!
//! Columns are the collection's fields by name (the row-id and timestamp columns are
//! left out), in schema order, with the dynamic field as `$meta`:
//!
//! | Milvus | Parquet / Arrow |
//! |---|---|
//! | scalars, VarChar, ARRAY | the same types, lists for arrays |
//! | JSON, `$meta` | UTF-8 strings (the JSON text) |
//! | FloatVector | fixed-size list of float32 |
//! | BinaryVector | fixed-size list of uint8 (dim / 8 bytes) |
//! | Float16Vector, BFloat16Vector | fixed-size list of uint16 (the raw 16-bit values) |
//! | Int8Vector | fixed-size list of int8 |
//! | SparseFloatVector | UTF-8 JSON object `{"index": value, ...}` |
//!
//! The file's key/value metadata holds `milvus.schema` (the manifest's schema as JSON),
//! `milvus.collection` (`database.collection`) and `milvault.backup`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, FixedSizeListArray, RecordBatch, StringArray, UInt8Array, UInt16Array,
};
use arrow_buffer::ScalarBuffer;
use arrow_schema::{DataType as ArrowType, Field, Schema};
use milvault_binlog::convert::sparse_row;
use milvault_binlog::segment::column;
use milvault_proto::milvault::v1::{CollectionBackup, DataType, FieldSchema};
use parquet::arrow::AsyncArrowWriter;
use parquet::file::properties::WriterProperties;

use super::Files;
use super::reader::LiveBatches;
use crate::error::{Error, Result};
use crate::storage::Store;

/// Rows per Parquet file before a new one is started.
const ROWS_PER_FILE: usize = 1_000_000;
/// Rows per batch read from the backup.
const BATCH_ROWS: usize = 8192;

/// Where one collection's files go.
pub(crate) struct Destination<'a> {
    /// The store written to.
    pub(crate) store: &'a Store,
    /// Key prefix of the collection's files (ends with `/`).
    pub(crate) prefix: String,
}

/// What one collection's export wrote.
#[derive(Clone, Debug, Default)]
pub(crate) struct Exported {
    /// Live rows written.
    pub(crate) rows: i64,
    /// Keys of the files written.
    pub(crate) files: Vec<String>,
}

/// One output column: the field it comes from and how it is written.
struct OutColumn {
    field_id: i64,
    field: FieldSchema,
}

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal("a Parquet export step failed", e)
}

/// The export's Arrow type of a field, given the decoded column's type.
fn out_type(f: &FieldSchema, decoded: &ArrowType) -> ArrowType {
    match (f.data_type(), decoded) {
        (DataType::Json, _) => ArrowType::Utf8,
        (DataType::SparseFloatVector, _) => ArrowType::Utf8,
        (DataType::BinaryVector, ArrowType::FixedSizeBinary(n)) => {
            ArrowType::FixedSizeList(Arc::new(Field::new("item", ArrowType::UInt8, false)), *n)
        }
        (DataType::Float16Vector | DataType::Bfloat16Vector, ArrowType::FixedSizeBinary(n)) => {
            ArrowType::FixedSizeList(
                Arc::new(Field::new("item", ArrowType::UInt16, false)),
                *n / 2,
            )
        }
        (_, other) => other.clone(),
    }
}

/// Converts one decoded column into its export form.
fn out_array(f: &FieldSchema, a: &ArrayRef) -> Result<ArrayRef> {
    match (f.data_type(), a.data_type()) {
        (DataType::Json, ArrowType::Binary) => {
            let b = a.as_binary::<i32>();
            let mut out = Vec::with_capacity(b.len());
            for i in 0..b.len() {
                out.push(if b.is_null(i) {
                    None
                } else {
                    Some(String::from_utf8_lossy(b.value(i)).into_owned())
                });
            }
            Ok(Arc::new(StringArray::from(out)))
        }
        (DataType::SparseFloatVector, ArrowType::Binary) => {
            let b = a.as_binary::<i32>();
            let mut out = Vec::with_capacity(b.len());
            for i in 0..b.len() {
                if b.is_null(i) {
                    out.push(None);
                    continue;
                }
                let row = sparse_row(b.value(i)).ok_or_else(|| {
                    internal(format!("field {}: a sparse row is malformed", f.name))
                })?;
                let pairs: Vec<String> = row.map(|(k, v)| format!("\"{k}\":{v}")).collect();
                out.push(Some(format!("{{{}}}", pairs.join(","))));
            }
            Ok(Arc::new(StringArray::from(out)))
        }
        (DataType::BinaryVector, ArrowType::FixedSizeBinary(n)) => {
            let b = a.as_fixed_size_binary();
            let values = UInt8Array::new(ScalarBuffer::from(b.values().clone()), None);
            let item = Arc::new(Field::new("item", ArrowType::UInt8, false));
            Ok(Arc::new(
                FixedSizeListArray::try_new(item, *n, Arc::new(values), b.nulls().cloned())
                    .map_err(internal)?,
            ))
        }
        (DataType::Float16Vector | DataType::Bfloat16Vector, ArrowType::FixedSizeBinary(n)) => {
            let b = a.as_fixed_size_binary();
            let words: Vec<u16> = b
                .values()
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            let item = Arc::new(Field::new("item", ArrowType::UInt16, false));
            Ok(Arc::new(
                FixedSizeListArray::try_new(
                    item,
                    *n / 2,
                    Arc::new(UInt16Array::from(words)),
                    b.nulls().cloned(),
                )
                .map_err(internal)?,
            ))
        }
        _ => Ok(a.clone()),
    }
}

/// The output columns of a collection: every schema field except the system ones,
/// the dynamic field named `$meta` (its id found in the files when the schema does not
/// list it).
fn out_columns(c: &CollectionBackup, batch: &RecordBatch) -> Vec<OutColumn> {
    let Some(schema) = c.schema.as_ref() else {
        return Vec::new();
    };
    let mut cols: Vec<OutColumn> = schema
        .fields
        .iter()
        .filter(|f| f.field_id >= 100)
        .map(|f| OutColumn {
            field_id: f.field_id,
            field: if f.is_dynamic {
                FieldSchema {
                    name: "$meta".into(),
                    data_type: DataType::Json as i32,
                    ..f.clone()
                }
            } else {
                f.clone()
            },
        })
        .collect();
    if schema.enable_dynamic_field && !schema.fields.iter().any(|f| f.is_dynamic) {
        let known: Vec<i64> = schema.fields.iter().map(|f| f.field_id).collect();
        for field in batch.schema().fields() {
            if let Ok(id) = field.name().parse::<i64>()
                && id >= 100
                && !known.contains(&id)
            {
                cols.push(OutColumn {
                    field_id: id,
                    field: FieldSchema {
                        field_id: id,
                        name: "$meta".into(),
                        data_type: DataType::Json as i32,
                        is_dynamic: true,
                        ..Default::default()
                    },
                });
            }
        }
    }
    cols
}

/// Writes the live rows of `c` under `dest.prefix` as `part-NNNNN.parquet` files.
pub(crate) async fn export_collection(
    files: &Files<'_>,
    c: &CollectionBackup,
    dest: &Destination<'_>,
    backup: &str,
) -> Result<Exported> {
    let schema_json = c
        .schema
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(internal)?
        .unwrap_or_default();
    let mut metadata = HashMap::new();
    metadata.insert("milvus.schema".to_owned(), schema_json);
    metadata.insert(
        "milvus.collection".to_owned(),
        format!("{}.{}", c.database, c.name),
    );
    metadata.insert("milvault.backup".to_owned(), backup.to_owned());

    let mut out = Exported::default();
    let mut writer: Option<(AsyncArrowWriter<_>, usize)> = None;
    let mut plan: Option<(Vec<OutColumn>, Arc<Schema>)> = None;
    let mut batches = LiveBatches::new(files.clone(), c, BATCH_ROWS)?;
    while let Some((_, batch)) = batches.next().await? {
        if plan.is_none() {
            let cols = out_columns(c, &batch);
            let fields: Vec<Field> = cols
                .iter()
                .map(|oc| {
                    let decoded = column(&batch, oc.field_id)
                        .map(|a| a.data_type().clone())
                        .unwrap_or(ArrowType::Null);
                    Field::new(&oc.field.name, out_type(&oc.field, &decoded), true)
                })
                .collect();
            let schema = Arc::new(Schema::new(fields).with_metadata(metadata.clone()));
            plan = Some((cols, schema));
        }
        let Some((cols, schema)) = plan.as_ref() else {
            return Err(internal("no output plan"));
        };
        let mut arrays = Vec::with_capacity(cols.len());
        for oc in cols {
            let a = column(&batch, oc.field_id).ok_or_else(|| Error::Corrupt {
                path: format!("{}.{}", c.database, c.name),
                message: format!(
                    "field {} ({}) has no column in a segment",
                    oc.field_id, oc.field.name
                ),
            })?;
            arrays.push(out_array(&oc.field, a)?);
        }
        let rb = RecordBatch::try_new(schema.clone(), arrays).map_err(internal)?;
        if writer.as_ref().is_some_and(|(_, n)| *n >= ROWS_PER_FILE)
            && let Some((w, _)) = writer.take()
        {
            w.close().await.map_err(internal)?;
        }
        if writer.is_none() {
            let key = format!("{}part-{:05}.parquet", dest.prefix, out.files.len());
            let sink = dest.store.parquet_writer(&key).await?;
            let props = WriterProperties::builder()
                .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
                .build();
            let w =
                AsyncArrowWriter::try_new(sink, schema.clone(), Some(props)).map_err(internal)?;
            out.files.push(key);
            writer = Some((w, 0));
        }
        if let Some((w, n)) = writer.as_mut() {
            w.write(&rb).await.map_err(internal)?;
            *n += rb.num_rows();
        }
        out.rows += rb.num_rows() as i64;
    }
    if let Some((w, _)) = writer.take() {
        w.close().await.map_err(internal)?;
    }
    Ok(out)
}
