//! Milvus's `schema.DataType` numbers, and which of them this crate reads.
//!
//! The numbers are written into every v1 binlog descriptor, so they are a file format, not
//! an enum we may renumber: they are copied from milvus-proto `schema.proto`.

use crate::error::{Error, Result};

/// A Milvus field data type, with the numbers of milvus-proto `schema.proto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(i32)]
pub enum DataType {
    /// `None = 0`: appears as the element type of non-array fields only.
    None = 0,
    /// Boolean.
    Bool = 1,
    /// 8-bit integer.
    Int8 = 2,
    /// 16-bit integer.
    Int16 = 3,
    /// 32-bit integer.
    Int32 = 4,
    /// 64-bit integer.
    Int64 = 5,
    /// 32-bit float.
    Float = 10,
    /// 64-bit float.
    Double = 11,
    /// Old string type; delete logs use it for their payload.
    String = 20,
    /// Variable-length string with a max length.
    VarChar = 21,
    /// Array of scalars (Milvus stores each row as `schema.ScalarField` protobuf bytes).
    Array = 22,
    /// JSON document (stored as its UTF-8 bytes).
    Json = 23,
    /// Geometry (2.6+, stored as WKB bytes).
    Geometry = 24,
    /// Text (2.6+, stored like VarChar).
    Text = 25,
    /// Timestamp with time zone (2.6+, stored as Int64 microseconds).
    Timestamptz = 26,
    /// Binary vector, `dim` bits per row.
    BinaryVector = 100,
    /// Float32 vector.
    FloatVector = 101,
    /// IEEE half-precision vector.
    Float16Vector = 102,
    /// bfloat16 vector.
    BFloat16Vector = 103,
    /// Sparse float vector.
    SparseFloatVector = 104,
    /// Int8 vector (2.5+).
    Int8Vector = 105,
    /// Array of vectors (struct-array fields, 2.6+): recognised, not decoded.
    ArrayOfVector = 106,
    /// Array of structs (2.6+): recognised, not decoded.
    ArrayOfStruct = 200,
    /// Struct (2.6+): recognised, not decoded.
    Struct = 201,
}

impl DataType {
    /// Every value, for tests and exhaustive checks.
    pub const ALL: [DataType; 24] = [
        DataType::None,
        DataType::Bool,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::Float,
        DataType::Double,
        DataType::String,
        DataType::VarChar,
        DataType::Array,
        DataType::Json,
        DataType::Geometry,
        DataType::Text,
        DataType::Timestamptz,
        DataType::BinaryVector,
        DataType::FloatVector,
        DataType::Float16Vector,
        DataType::BFloat16Vector,
        DataType::SparseFloatVector,
        DataType::Int8Vector,
        DataType::ArrayOfVector,
        DataType::ArrayOfStruct,
        DataType::Struct,
    ];

    /// The number Milvus writes for this type.
    pub fn code(self) -> i32 {
        self as i32
    }

    /// The type for a number read from a file; unknown numbers are an error naming the
    /// file and offset.
    pub fn from_code(value: i32, file: &str, offset: u64) -> Result<DataType> {
        DataType::ALL
            .iter()
            .copied()
            .find(|t| t.code() == value)
            .ok_or_else(|| Error::UnknownDataType {
                file: file.to_owned(),
                offset,
                value,
            })
    }

    /// True for the dense and sparse vector types.
    pub fn is_vector(self) -> bool {
        matches!(
            self,
            DataType::BinaryVector
                | DataType::FloatVector
                | DataType::Float16Vector
                | DataType::BFloat16Vector
                | DataType::SparseFloatVector
                | DataType::Int8Vector
        )
    }

    /// Bytes per row of a dense vector of `dim` dimensions, as Milvus stores it.
    pub fn vector_row_bytes(self, dim: usize) -> Option<usize> {
        match self {
            DataType::BinaryVector => Some(dim.div_ceil(8)),
            DataType::FloatVector => Some(dim * 4),
            DataType::Float16Vector | DataType::BFloat16Vector => Some(dim * 2),
            DataType::Int8Vector => Some(dim),
            _ => None,
        }
    }

    /// The dimension of a dense vector whose rows are `row_bytes` long.
    pub fn vector_dim(self, row_bytes: usize) -> Option<usize> {
        match self {
            DataType::BinaryVector => Some(row_bytes * 8),
            DataType::FloatVector if row_bytes.is_multiple_of(4) => Some(row_bytes / 4),
            DataType::Float16Vector | DataType::BFloat16Vector if row_bytes.is_multiple_of(2) => {
                Some(row_bytes / 2)
            }
            DataType::Int8Vector => Some(row_bytes),
            _ => None,
        }
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}({})", self, self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_milvus_proto() {
        let expected = [
            (DataType::Bool, 1),
            (DataType::Int8, 2),
            (DataType::Int16, 3),
            (DataType::Int32, 4),
            (DataType::Int64, 5),
            (DataType::Float, 10),
            (DataType::Double, 11),
            (DataType::String, 20),
            (DataType::VarChar, 21),
            (DataType::Array, 22),
            (DataType::Json, 23),
            (DataType::Geometry, 24),
            (DataType::Text, 25),
            (DataType::Timestamptz, 26),
            (DataType::BinaryVector, 100),
            (DataType::FloatVector, 101),
            (DataType::Float16Vector, 102),
            (DataType::BFloat16Vector, 103),
            (DataType::SparseFloatVector, 104),
            (DataType::Int8Vector, 105),
        ];
        for (t, n) in expected {
            assert_eq!(t.code(), n);
            assert_eq!(DataType::from_code(n, "f", 0).unwrap(), t);
        }
    }

    #[test]
    fn unknown_numbers_are_rejected_with_place() {
        let err = DataType::from_code(99, "insert_log/1/2/3/100/7", 65).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("insert_log/1/2/3/100/7"), "{msg}");
        assert!(msg.contains("65"), "{msg}");
        assert!(msg.contains("99"), "{msg}");
    }

    #[test]
    fn vector_sizes() {
        assert_eq!(DataType::FloatVector.vector_row_bytes(8), Some(32));
        assert_eq!(DataType::BinaryVector.vector_row_bytes(16), Some(2));
        assert_eq!(DataType::Float16Vector.vector_dim(16), Some(8));
        assert_eq!(DataType::Int8Vector.vector_dim(5), Some(5));
        assert_eq!(DataType::FloatVector.vector_dim(6), None);
    }
}
