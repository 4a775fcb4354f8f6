//! The Milvus → Arrow type mapping: stored columns to the arrays callers get, and back.
//!
//! Milvus stores every field as one Parquet column whose Arrow type loses information
//! (a float vector is `FixedSizeBinary(dim*4)`, an array is protobuf bytes). Callers get
//! arrays that say what they hold:
//!
//! | Milvus type | stored (Parquet/Arrow) | returned |
//! |---|---|---|
//! | Bool | Boolean | Boolean |
//! | Int8 / Int16 / Int32 / Int64 | same | same |
//! | Float / Double | Float32 / Float64 | same |
//! | String, VarChar, Text | Utf8 | Utf8 |
//! | JSON (also `$meta`) | Binary (JSON text) | Binary, the JSON bytes as stored |
//! | Geometry | Binary (WKB) | Binary |
//! | Timestamptz | Int64 | Int64 |
//! | Array | Binary (`schema.ScalarField` protobuf per row) | List (nullable item field) of Boolean / Int32 (Int8, Int16 and Int32 elements, as Milvus stores them) / Int64 / Float32 / Float64 / Utf8, decoded by [`crate::scalar_field`]; native List columns pass through |
//! | FloatVector | FixedSizeBinary(dim*4), little-endian f32 | `FixedSizeList<Float32>(dim)` |
//! | Int8Vector | FixedSizeBinary(dim) | `FixedSizeList<Int8>(dim)` |
//! | BinaryVector | FixedSizeBinary(dim/8) | FixedSizeBinary(dim/8), bits as stored |
//! | Float16Vector / BFloat16Vector | FixedSizeBinary(dim*2) | FixedSizeBinary(dim*2), little-endian 16-bit values |
//! | SparseFloatVector | Binary | Binary: per row, (u32 index, f32 value) little-endian pairs; see [`sparse_row`] |
//!
//! Nullable fields (2.5+) keep their validity: nulls in, nulls out. Conversions copy
//! vectors once (Parquet buffers carry no alignment promise).

use std::sync::Arc;

use arrow_array::builder::BinaryBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int8Type};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray,
    Float32Array, Float64Array, Int8Array, Int32Array, Int64Array, ListArray, StringArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType as ArrowType, Field};

use crate::datatype::DataType;
use crate::error::{Error, Result};
use crate::scalar_field::{self, ScalarValues};

/// The Arrow type [`to_logical`] returns for a Milvus type (`dim` for dense vectors).
pub fn logical_type(data_type: DataType, dim: Option<usize>) -> Option<ArrowType> {
    let dim_i32 = |d: usize| i32::try_from(d).ok();
    Some(match data_type {
        DataType::Bool => ArrowType::Boolean,
        DataType::Int8 => ArrowType::Int8,
        DataType::Int16 => ArrowType::Int16,
        DataType::Int32 => ArrowType::Int32,
        DataType::Int64 | DataType::Timestamptz => ArrowType::Int64,
        DataType::Float => ArrowType::Float32,
        DataType::Double => ArrowType::Float64,
        DataType::String | DataType::VarChar | DataType::Text => ArrowType::Utf8,
        DataType::Json | DataType::Geometry | DataType::SparseFloatVector => ArrowType::Binary,
        DataType::FloatVector => ArrowType::FixedSizeList(
            Arc::new(Field::new_list_field(ArrowType::Float32, false)),
            dim_i32(dim?)?,
        ),
        DataType::Int8Vector => ArrowType::FixedSizeList(
            Arc::new(Field::new_list_field(ArrowType::Int8, false)),
            dim_i32(dim?)?,
        ),
        DataType::BinaryVector | DataType::Float16Vector | DataType::BFloat16Vector => {
            ArrowType::FixedSizeBinary(dim_i32(data_type.vector_row_bytes(dim?)?)?)
        }
        _ => return None,
    })
}

fn mismatch(name: &str, offset: u64, dt: DataType, found: &ArrowType) -> Error {
    Error::corrupt(
        name,
        offset,
        format!("payload column of type {found} does not hold Milvus {dt}"),
    )
}

/// Convert a stored column (as decoded from Parquet) to the returned form.
///
/// `name`/`offset` only label errors (the file and payload offset).
pub fn to_logical(dt: DataType, stored: ArrayRef, name: &str, offset: u64) -> Result<ArrayRef> {
    let found = stored.data_type().clone();
    let ok_same = |want: ArrowType| -> Result<ArrayRef> {
        if found == want {
            Ok(stored.clone())
        } else {
            Err(mismatch(name, offset, dt, &found))
        }
    };
    match dt {
        DataType::Bool => ok_same(ArrowType::Boolean),
        DataType::Int8 => ok_same(ArrowType::Int8),
        DataType::Int16 => ok_same(ArrowType::Int16),
        DataType::Int32 => ok_same(ArrowType::Int32),
        DataType::Int64 | DataType::Timestamptz => ok_same(ArrowType::Int64),
        DataType::Float => ok_same(ArrowType::Float32),
        DataType::Double => ok_same(ArrowType::Float64),
        DataType::String | DataType::VarChar | DataType::Text => match found {
            ArrowType::Utf8 => Ok(stored),
            ArrowType::Binary => {
                let b = stored.as_binary::<i32>();
                let s = StringArray::try_from_binary(b.clone())
                    .map_err(|e| Error::corrupt(name, offset, format!("string column: {e}")))?;
                Ok(Arc::new(s))
            }
            _ => Err(mismatch(name, offset, dt, &found)),
        },
        DataType::Json | DataType::Geometry | DataType::SparseFloatVector => match found {
            ArrowType::Binary => Ok(stored),
            ArrowType::Utf8 => Ok(Arc::new(BinaryArray::from(
                stored.as_string::<i32>().clone(),
            ))),
            _ => Err(mismatch(name, offset, dt, &found)),
        },
        DataType::Array => match found {
            ArrowType::Binary => decode_array_column(stored.as_binary::<i32>(), name, offset),
            ArrowType::List(_) => Ok(stored),
            _ => Err(mismatch(name, offset, dt, &found)),
        },
        DataType::FloatVector | DataType::Int8Vector => {
            let ArrowType::FixedSizeBinary(width) = found else {
                return Err(mismatch(name, offset, dt, &found));
            };
            let width = usize::try_from(width).unwrap_or(0);
            let Some(dim) = dt.vector_dim(width).filter(|d| *d > 0) else {
                return Err(mismatch(name, offset, dt, &found));
            };
            let fsb = stored.as_fixed_size_binary();
            let bytes = fsb.value_data();
            let values: ArrayRef = if dt == DataType::FloatVector {
                Arc::new(Float32Array::from_iter_values(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                ))
            } else {
                Arc::new(Int8Array::from_iter_values(bytes.iter().map(|&b| b as i8)))
            };
            let item = Field::new_list_field(values.data_type().clone(), false);
            let list = FixedSizeListArray::try_new(
                Arc::new(item),
                dim as i32,
                values,
                fsb.nulls().cloned(),
            )
            .map_err(|e| Error::corrupt(name, offset, format!("vector column: {e}")))?;
            Ok(Arc::new(list))
        }
        DataType::BinaryVector | DataType::Float16Vector | DataType::BFloat16Vector => {
            match found {
                ArrowType::FixedSizeBinary(w) if dt.vector_dim(w as usize).is_some() => Ok(stored),
                _ => Err(mismatch(name, offset, dt, &found)),
            }
        }
        DataType::None | DataType::ArrayOfVector | DataType::ArrayOfStruct | DataType::Struct => {
            Err(Error::unsupported(
                name,
                format!("decoding Milvus {dt} columns"),
            ))
        }
    }
}

fn decode_array_column(bin: &BinaryArray, name: &str, offset: u64) -> Result<ArrayRef> {
    let mut rows: Vec<ScalarValues> = Vec::with_capacity(bin.len());
    let mut kind = 0u32;
    for i in 0..bin.len() {
        if bin.is_null(i) {
            rows.push(ScalarValues::Unset);
            continue;
        }
        let v = scalar_field::decode(bin.value(i)).map_err(|e| {
            Error::corrupt(
                name,
                offset,
                format!("ARRAY row {i}: byte {} of its protobuf: {}", e.at, e.what),
            )
        })?;
        if v.kind() != 0 {
            if kind != 0 && kind != v.kind() {
                return Err(Error::corrupt(
                    name,
                    offset,
                    format!(
                        "ARRAY row {i} has element kind {} after kind {kind}",
                        v.kind()
                    ),
                ));
            }
            kind = v.kind();
        }
        rows.push(v);
    }
    let mut offsets: Vec<i32> = Vec::with_capacity(rows.len() + 1);
    offsets.push(0);
    let mut total: i32 = 0;
    for r in &rows {
        total = total
            .checked_add(r.len() as i32)
            .ok_or_else(|| Error::corrupt(name, offset, "ARRAY column too large"))?;
        offsets.push(total);
    }
    macro_rules! flat {
        ($variant:ident, $arr:ty) => {{
            let it = rows.into_iter().flat_map(|r| match r {
                ScalarValues::$variant(v) => v,
                _ => Vec::new(),
            });
            Arc::new(<$arr>::from_iter_values(it)) as ArrayRef
        }};
    }
    let values: ArrayRef = match kind {
        1 => Arc::new(BooleanArray::from(
            rows.into_iter()
                .flat_map(|r| match r {
                    ScalarValues::Bool(v) => v,
                    _ => Vec::new(),
                })
                .collect::<Vec<bool>>(),
        )),
        3 => flat!(Long, Int64Array),
        4 => flat!(Float, Float32Array),
        5 => flat!(Double, Float64Array),
        6 => Arc::new(StringArray::from_iter_values(rows.into_iter().flat_map(
            |r| match r {
                ScalarValues::String(v) => v,
                _ => Vec::new(),
            },
        ))),
        // 2, or no row told us: IntArray
        _ => flat!(Int, Int32Array),
    };
    let field = Field::new_list_field(values.data_type().clone(), true);
    let list = ListArray::try_new(
        Arc::new(field),
        OffsetBuffer::new(offsets.into()),
        values,
        bin.nulls().cloned(),
    )
    .map_err(|e| Error::corrupt(name, offset, format!("ARRAY column: {e}")))?;
    Ok(Arc::new(list))
}

/// Convert a returned-form array (or an already stored-form one) to what Milvus stores.
pub fn to_stored(dt: DataType, logical: &ArrayRef) -> Result<ArrayRef> {
    let found = logical.data_type().clone();
    let bad = || {
        Error::invalid(format!(
            "an Arrow {found} array cannot be written as Milvus {dt}"
        ))
    };
    match (dt, &found) {
        (DataType::FloatVector, ArrowType::FixedSizeList(f, dim))
            if f.data_type() == &ArrowType::Float32 =>
        {
            let l = logical.as_fixed_size_list();
            let vals = l.values().as_primitive::<Float32Type>();
            if vals.null_count() > 0 {
                return Err(Error::invalid("null elements inside a float vector"));
            }
            let start = l.offset() * (*dim as usize);
            let vals = &vals.values()[start..start + l.len() * (*dim as usize)];
            let bytes: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
            fsb(bytes, *dim * 4, l.nulls().cloned(), l.len())
        }
        (DataType::Int8Vector, ArrowType::FixedSizeList(f, dim))
            if f.data_type() == &ArrowType::Int8 =>
        {
            let l = logical.as_fixed_size_list();
            let vals = l.values().as_primitive::<Int8Type>();
            let start = l.offset() * (*dim as usize);
            let vals = &vals.values()[start..start + l.len() * (*dim as usize)];
            let bytes: Vec<u8> = vals.iter().map(|&v| v as u8).collect();
            fsb(bytes, *dim, l.nulls().cloned(), l.len())
        }
        (DataType::Array, ArrowType::List(_)) => encode_array_column(logical.as_list::<i32>()),
        (DataType::Json | DataType::Geometry, ArrowType::Utf8) => Ok(Arc::new(BinaryArray::from(
            logical.as_string::<i32>().clone(),
        ))),
        _ => {
            let stored_ok = match dt {
                DataType::FloatVector
                | DataType::Int8Vector
                | DataType::BinaryVector
                | DataType::Float16Vector
                | DataType::BFloat16Vector => {
                    matches!(found, ArrowType::FixedSizeBinary(w) if dt.vector_dim(w as usize).is_some())
                }
                DataType::Array
                | DataType::Json
                | DataType::Geometry
                | DataType::SparseFloatVector => found == ArrowType::Binary,
                other => logical_type(other, None).as_ref() == Some(&found),
            };
            if stored_ok {
                Ok(logical.clone())
            } else {
                Err(bad())
            }
        }
    }
}

fn fsb(bytes: Vec<u8>, width: i32, nulls: Option<NullBuffer>, len: usize) -> Result<ArrayRef> {
    let a = FixedSizeBinaryArray::try_new(width, bytes.into(), nulls)
        .map_err(|e| Error::invalid(format!("vector column: {e}")))?;
    debug_assert_eq!(a.len(), len);
    Ok(Arc::new(a))
}

fn encode_array_column(list: &ListArray) -> Result<ArrayRef> {
    let mut b = BinaryBuilder::new();
    for i in 0..list.len() {
        if list.is_null(i) {
            b.append_null();
            continue;
        }
        let v = list.value(i);
        let values = match v.data_type() {
            ArrowType::Boolean => {
                ScalarValues::Bool(v.as_boolean().iter().map(|x| x.unwrap_or(false)).collect())
            }
            ArrowType::Int8 => ScalarValues::Int(
                v.as_primitive::<Int8Type>()
                    .values()
                    .iter()
                    .map(|&x| i32::from(x))
                    .collect(),
            ),
            ArrowType::Int16 => ScalarValues::Int(
                v.as_primitive::<arrow_array::types::Int16Type>()
                    .values()
                    .iter()
                    .map(|&x| i32::from(x))
                    .collect(),
            ),
            ArrowType::Int32 => ScalarValues::Int(
                v.as_primitive::<arrow_array::types::Int32Type>()
                    .values()
                    .to_vec(),
            ),
            ArrowType::Int64 => ScalarValues::Long(
                v.as_primitive::<arrow_array::types::Int64Type>()
                    .values()
                    .to_vec(),
            ),
            ArrowType::Float32 => {
                ScalarValues::Float(v.as_primitive::<Float32Type>().values().to_vec())
            }
            ArrowType::Float64 => ScalarValues::Double(
                v.as_primitive::<arrow_array::types::Float64Type>()
                    .values()
                    .to_vec(),
            ),
            ArrowType::Utf8 => ScalarValues::String(
                v.as_string::<i32>()
                    .iter()
                    .map(|s| s.unwrap_or("").to_owned())
                    .collect(),
            ),
            other => {
                return Err(Error::invalid(format!(
                    "ARRAY elements of Arrow type {other} are not supported"
                )));
            }
        };
        b.append_value(scalar_field::encode(&values));
    }
    Ok(Arc::new(b.finish()))
}

/// Iterate the `(index, value)` pairs of one SparseFloatVector row as Milvus stores it.
///
/// Returns `None` when the row length is not a multiple of 8.
pub fn sparse_row(row: &[u8]) -> Option<impl Iterator<Item = (u32, f32)> + '_> {
    if !row.len().is_multiple_of(8) {
        return None;
    }
    Some(row.chunks_exact(8).map(|c| {
        (
            u32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            f32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{ListBuilder, StringBuilder};

    #[test]
    fn float_vector_round_trip_is_bit_exact() {
        let bits = [0x7fc0_0001u32, 0x8000_0000, 0x3f80_0000, 0x0000_0001];
        let bytes: Vec<u8> = bits.iter().flat_map(|b| b.to_le_bytes()).collect();
        let stored: ArrayRef =
            Arc::new(FixedSizeBinaryArray::try_new(8, bytes.clone().into(), None).unwrap());
        let logical = to_logical(DataType::FloatVector, stored, "f", 0).unwrap();
        assert_eq!(
            logical.data_type(),
            &logical_type(DataType::FloatVector, Some(2)).unwrap()
        );
        let back = to_stored(DataType::FloatVector, &logical).unwrap();
        assert_eq!(back.as_fixed_size_binary().value_data(), &bytes[..]);
    }

    #[test]
    fn arrays_decode_to_lists_and_back() {
        let mut b = ListBuilder::new(StringBuilder::new());
        b.values().append_value("x");
        b.append(true);
        b.append(true);
        b.append_null();
        let logical: ArrayRef = Arc::new(b.finish());
        let stored = to_stored(DataType::Array, &logical).unwrap();
        let bin = stored.as_binary::<i32>();
        assert_eq!(bin.value(0), &[0x32, 0x03, 0x0a, 0x01, b'x']);
        assert_eq!(bin.value(1), &[0x32, 0x00]);
        assert!(bin.is_null(2));
        let again = to_logical(DataType::Array, stored, "f", 0).unwrap();
        assert_eq!(&again, &logical);
    }

    #[test]
    fn wrong_stored_type_is_an_error() {
        let stored: ArrayRef = Arc::new(Int32Array::from(vec![1]));
        let e = to_logical(DataType::Int64, stored, "file-x", 99)
            .unwrap_err()
            .to_string();
        assert!(e.contains("file-x") && e.contains("99"), "{e}");
    }

    #[test]
    fn sparse_pairs() {
        let mut row = Vec::new();
        row.extend_from_slice(&3u32.to_le_bytes());
        row.extend_from_slice(&0.5f32.to_le_bytes());
        assert_eq!(
            sparse_row(&row).unwrap().collect::<Vec<_>>(),
            vec![(3, 0.5)]
        );
        assert!(sparse_row(&row[..5]).is_none());
    }
}
