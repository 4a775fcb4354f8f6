//! Storage-v2 (Milvus 2.6) column-group files: bare Parquet, columns named by field id.
//!
//! `insert_log/{c}/{p}/{s}/{groupID}/{logID}` holds every column of one group (group 0:
//! row id, timestamp and the short scalars; vectors usually one group each, keyed by field
//! id). Written by the milvus-storage packed writer: each column carries Arrow/Parquet
//! field metadata `PARQUET:field_id` = the Milvus field id, and the footer carries
//! `row_group_metadata` (`mem|rows|offset;...`), `group_field_id_list`
//! (`100,101;102`) and `storage_version`. The file does not say the Milvus type of a column
//! (a `FixedSizeBinary(32)` may be an 8-dim float vector or a 32-dim int8 vector), so the
//! caller supplies it ([`FieldSpec`]); row id (0) and timestamp (1) are Int64 by default.
//!
//! Reading goes through the async Parquet reader over ranged reads: one row group at a time.

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_schema::Field;

use crate::convert::to_logical;
use crate::datatype::DataType;
use crate::error::{Error, Result};
use crate::payload::{PayloadStream, metadata};
use crate::source::ByteSource;

/// A field's id and Milvus type: what v2 files do not record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    /// Milvus field id.
    pub field_id: i64,
    /// Milvus data type.
    pub data_type: DataType,
}

/// The key under which Parquet/Arrow field metadata carries the Milvus field id.
pub const FIELD_ID_KEY: &str = "PARQUET:field_id";

/// The Milvus field id of a column: `PARQUET:field_id` metadata, else a numeric name.
pub fn field_id_of(f: &Field) -> Option<i64> {
    f.metadata()
        .get(FIELD_ID_KEY)
        .and_then(|v| v.parse().ok())
        .or_else(|| f.name().parse().ok())
}

fn type_of(schema: &[FieldSpec], id: i64) -> Option<DataType> {
    schema
        .iter()
        .find(|f| f.field_id == id)
        .map(|f| f.data_type)
        .or(match id {
            0 | 1 => Some(DataType::Int64),
            _ => None,
        })
}

/// One column-group file opened for reading.
pub struct ColumnGroupFile {
    name: String,
    stream: PayloadStream,
    ids: Vec<i64>,
    types: Vec<Option<DataType>>,
}

impl ColumnGroupFile {
    /// Open `src`; `schema` gives the Milvus type of each field (fields missing from it come
    /// back as stored). `only`: decode just these field ids (others are not read).
    pub async fn open(
        src: Arc<dyn ByteSource>,
        schema: &[FieldSpec],
        only: Option<&[i64]>,
        batch_rows: usize,
    ) -> Result<ColumnGroupFile> {
        let name = src.name().to_owned();
        let len = src.len();
        let keep = |f: &Field| match (only, field_id_of(f)) {
            (None, _) => true,
            (Some(ids), Some(id)) => ids.contains(&id),
            (Some(_), None) => false,
        };
        let stream = PayloadStream::open_projected(src, 0, len, batch_rows, Some(&keep)).await?;
        let mut ids = Vec::new();
        let mut types = Vec::new();
        for f in stream.schema().fields() {
            let id = field_id_of(f).ok_or_else(|| {
                Error::corrupt(
                    &name,
                    0,
                    format!(
                        "column {:?} has no PARQUET:field_id and no numeric name",
                        f.name()
                    ),
                )
            })?;
            ids.push(id);
            types.push(type_of(schema, id));
        }
        Ok(ColumnGroupFile {
            name,
            stream,
            ids,
            types,
        })
    }

    /// Field ids of the decoded columns, in file order.
    pub fn field_ids(&self) -> &[i64] {
        &self.ids
    }

    /// Next batch as `(field id, array)` pairs of equal length, or `None` at the end.
    pub async fn next_columns(&mut self) -> Result<Option<Vec<(i64, ArrayRef)>>> {
        let Some(b) = self.stream.next().await? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(b.num_columns());
        for (i, col) in b.columns().iter().enumerate() {
            let arr = match self.types[i] {
                Some(dt) => to_logical(dt, col.clone(), &self.name, 0)?,
                None => col.clone(),
            };
            out.push((self.ids[i], arr));
        }
        Ok(Some(out))
    }

    /// Rows and field ids from the footer only.
    pub async fn inspect(src: Arc<dyn ByteSource>) -> Result<(u64, Vec<i64>)> {
        let name = src.name().to_owned();
        let len = src.len();
        let md = metadata(src, 0, len).await?;
        let n = md.file_metadata().num_rows();
        let rows = u64::try_from(n)
            .map_err(|_| Error::corrupt(&name, 0, format!("negative row count {n}")))?;
        let schema = parquet::arrow::parquet_to_arrow_schema(
            md.file_metadata().schema_descr(),
            md.file_metadata().key_value_metadata(),
        )
        .map_err(|e| Error::parquet(&name, 0, e))?;
        let ids = schema
            .fields()
            .iter()
            .filter_map(|f| field_id_of(f))
            .collect();
        Ok((rows, ids))
    }
}
