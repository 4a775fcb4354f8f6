//! Rows decoded from a backup (Arrow, columns named by field id) as Milvus insert
//! columns (`FieldData`), for restoring rows where Milvus cannot import binlogs.
//!
//! Every column of the schema is sent, always: a Milvus 2.3.5 proxy dies on an insert
//! that leaves out a column with a default value. Only an auto-id primary key is left
//! out (Milvus assigns new keys). The dynamic field goes back as the dynamic field.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType as ArrowType;
use milvault_binlog::segment::column;
use milvault_proto::milvault::v1::{CollectionSchema, DataType, FieldSchema};
use milvault_proto::milvus::milvus as pb;
use milvault_proto::milvus::schema::{
    ArrayArray, BoolArray, DoubleArray, FieldData, FloatArray, IntArray, JsonArray, LongArray,
    ScalarField, SparseFloatArray, StringArray, VectorField, field_data, scalar_field,
    vector_field,
};

use super::client::MilvusClient;
use crate::error::{Error, Result};

fn unexpected(f: &FieldSchema, a: &ArrayRef) -> Error {
    Error::Corrupt {
        path: String::new(),
        message: format!(
            "field {} ({:?}) decoded as {}, which cannot be inserted as that type",
            f.name,
            f.data_type(),
            a.data_type()
        ),
    }
}

fn scalar(data: scalar_field::Data) -> Option<field_data::Field> {
    Some(field_data::Field::Scalars(ScalarField { data: Some(data) }))
}

fn vector(dim: i64, data: vector_field::Data) -> Option<field_data::Field> {
    Some(field_data::Field::Vectors(VectorField {
        dim,
        data: Some(data),
    }))
}

/// One row of an ARRAY field as the `ScalarField` Milvus takes.
fn array_row(element: DataType, values: &ArrayRef) -> Option<ScalarField> {
    use scalar_field::Data as S;
    let data = match (element, values.data_type()) {
        (DataType::Bool, ArrowType::Boolean) => S::BoolData(BoolArray {
            data: values
                .as_boolean()
                .iter()
                .map(|v| v.unwrap_or_default())
                .collect(),
        }),
        (DataType::Int8 | DataType::Int16 | DataType::Int32, ArrowType::Int32) => {
            S::IntData(IntArray {
                data: values.as_primitive::<Int32Type>().values().to_vec(),
            })
        }
        (DataType::Int64, ArrowType::Int64) => S::LongData(LongArray {
            data: values.as_primitive::<Int64Type>().values().to_vec(),
        }),
        (DataType::Float, ArrowType::Float32) => S::FloatData(FloatArray {
            data: values.as_primitive::<Float32Type>().values().to_vec(),
        }),
        (DataType::Double, ArrowType::Float64) => S::DoubleData(DoubleArray {
            data: values.as_primitive::<Float64Type>().values().to_vec(),
        }),
        (DataType::Varchar | DataType::String, ArrowType::Utf8) => S::StringData(StringArray {
            data: values
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or_default().to_owned())
                .collect(),
        }),
        _ => return None,
    };
    Some(ScalarField { data: Some(data) })
}

/// One decoded column as a Milvus insert column.
fn to_field_data(f: &FieldSchema, a: &ArrayRef) -> Result<FieldData> {
    use scalar_field::Data as S;
    use vector_field::Data as V;
    let field = match (f.data_type(), a.data_type()) {
        (DataType::Bool, ArrowType::Boolean) => scalar(S::BoolData(BoolArray {
            data: a
                .as_boolean()
                .iter()
                .map(|v| v.unwrap_or_default())
                .collect(),
        })),
        (DataType::Int8, ArrowType::Int8) => scalar(S::IntData(IntArray {
            data: a
                .as_primitive::<Int8Type>()
                .values()
                .iter()
                .map(|v| i32::from(*v))
                .collect(),
        })),
        (DataType::Int16, ArrowType::Int16) => scalar(S::IntData(IntArray {
            data: a
                .as_primitive::<Int16Type>()
                .values()
                .iter()
                .map(|v| i32::from(*v))
                .collect(),
        })),
        (DataType::Int32, ArrowType::Int32) => scalar(S::IntData(IntArray {
            data: a.as_primitive::<Int32Type>().values().to_vec(),
        })),
        (DataType::Int64, ArrowType::Int64) => scalar(S::LongData(LongArray {
            data: a.as_primitive::<Int64Type>().values().to_vec(),
        })),
        (DataType::Float, ArrowType::Float32) => scalar(S::FloatData(FloatArray {
            data: a.as_primitive::<Float32Type>().values().to_vec(),
        })),
        (DataType::Double, ArrowType::Float64) => scalar(S::DoubleData(DoubleArray {
            data: a.as_primitive::<Float64Type>().values().to_vec(),
        })),
        (DataType::Varchar | DataType::String, ArrowType::Utf8) => {
            scalar(S::StringData(StringArray {
                data: a
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.unwrap_or_default().to_owned())
                    .collect(),
            }))
        }
        (DataType::Json, ArrowType::Binary) => scalar(S::JsonData(JsonArray {
            data: a
                .as_binary::<i32>()
                .iter()
                .map(|v| v.unwrap_or_default().to_vec())
                .collect(),
        })),
        (DataType::Array, ArrowType::List(_)) => {
            let element = f.element_type();
            let list = a.as_list::<i32>();
            let mut rows = Vec::with_capacity(list.len());
            for i in 0..list.len() {
                rows.push(array_row(element, &list.value(i)).ok_or_else(|| unexpected(f, a))?);
            }
            scalar(S::ArrayData(ArrayArray {
                data: rows,
                element_type: element as i32,
            }))
        }
        (DataType::FloatVector, ArrowType::FixedSizeList(_, dim)) => {
            let list = a.as_fixed_size_list();
            let values = list.values().as_primitive::<Float32Type>();
            vector(
                i64::from(*dim),
                V::FloatVector(FloatArray {
                    data: values.values().to_vec(),
                }),
            )
        }
        (DataType::BinaryVector, ArrowType::FixedSizeBinary(n)) => vector(
            i64::from(*n) * 8,
            V::BinaryVector(a.as_fixed_size_binary().values().to_vec()),
        ),
        (DataType::Float16Vector, ArrowType::FixedSizeBinary(n)) => vector(
            i64::from(*n) / 2,
            V::Float16Vector(a.as_fixed_size_binary().values().to_vec()),
        ),
        (DataType::Bfloat16Vector, ArrowType::FixedSizeBinary(n)) => vector(
            i64::from(*n) / 2,
            V::Bfloat16Vector(a.as_fixed_size_binary().values().to_vec()),
        ),
        (DataType::SparseFloatVector, ArrowType::Binary) => {
            let b = a.as_binary::<i32>();
            let mut dim = 0i64;
            let mut contents = Vec::with_capacity(b.len());
            for row in b.iter() {
                let row = row.unwrap_or_default();
                if let Some(pairs) = milvault_binlog::convert::sparse_row(row) {
                    for (idx, _) in pairs {
                        dim = dim.max(i64::from(idx) + 1);
                    }
                }
                contents.push(row.to_vec());
            }
            vector(
                dim,
                V::SparseFloatVector(SparseFloatArray { contents, dim }),
            )
        }
        _ => return Err(unexpected(f, a)),
    };
    Ok(FieldData {
        r#type: f.data_type,
        field_name: f.name.clone(),
        field,
        field_id: f.field_id,
        is_dynamic: f.is_dynamic,
        ..Default::default()
    })
}

/// The columns to insert for a batch of live rows: every schema field (the auto-id
/// key excepted) and the dynamic field, found in the batch by field id.
fn batch_columns(schema: &CollectionSchema, batch: &RecordBatch) -> Result<Vec<FieldData>> {
    let mut out = Vec::new();
    let mut known: Vec<i64> = vec![0, 1];
    for f in &schema.fields {
        known.push(f.field_id);
        if f.is_primary_key && f.auto_id {
            continue;
        }
        let a = column(batch, f.field_id).ok_or_else(|| Error::Corrupt {
            path: String::new(),
            message: format!(
                "field {} ({}) has no column in a segment",
                f.field_id, f.name
            ),
        })?;
        let mut fd = to_field_data(f, a)?;
        if f.is_dynamic {
            fd.field_name = "$meta".into();
        }
        out.push(fd);
    }
    // A dynamic field the described schema did not list: the one extra column.
    if schema.enable_dynamic_field && !schema.fields.iter().any(|f| f.is_dynamic) {
        for field in batch.schema().fields() {
            let Ok(id) = field.name().parse::<i64>() else {
                continue;
            };
            if known.contains(&id) {
                continue;
            }
            if let Some(a) = column(batch, id) {
                let meta = FieldSchema {
                    field_id: id,
                    name: "$meta".into(),
                    data_type: DataType::Json as i32,
                    is_dynamic: true,
                    ..Default::default()
                };
                out.push(to_field_data(&meta, a)?);
            }
        }
    }
    Ok(out)
}

/// About how many bytes one row of `schema` takes on the wire, to size insert batches.
pub(crate) fn row_bytes(schema: &CollectionSchema) -> usize {
    let dim = |f: &FieldSchema| {
        f.type_params
            .iter()
            .find(|kv| kv.key == "dim")
            .and_then(|kv| kv.value.parse::<usize>().ok())
            .unwrap_or(0)
    };
    schema
        .fields
        .iter()
        .map(|f| match f.data_type() {
            DataType::FloatVector => 4 * dim(f),
            DataType::BinaryVector => dim(f) / 8,
            DataType::Float16Vector | DataType::Bfloat16Vector => 2 * dim(f),
            DataType::Varchar | DataType::String | DataType::Json | DataType::Array => 256,
            DataType::SparseFloatVector => 1024,
            _ => 8,
        })
        .sum::<usize>()
        .max(1)
}

impl MilvusClient {
    /// Inserts a batch of live rows into `partition` (or lets Milvus route them by
    /// partition key when `None`); returns how many rows Milvus took.
    pub(crate) async fn insert_rows(
        &self,
        db: &str,
        coll: &str,
        partition: Option<&str>,
        schema: &CollectionSchema,
        batch: &RecordBatch,
    ) -> Result<i64> {
        let req = pb::InsertRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            partition_name: partition.unwrap_or_default().to_owned(),
            fields_data: batch_columns(schema, batch)?,
            num_rows: u32::try_from(batch.num_rows()).unwrap_or(u32::MAX),
            ..Default::default()
        };
        Ok(self
            .call("Insert", db, req, |c, r| Box::pin(c.insert(r)))
            .await?
            .insert_cnt)
    }
}
