//! Minimal protobuf codec for `schema.ScalarField`, the per-row encoding of ARRAY fields.
//!
//! Milvus writes each ARRAY row as `proto.Marshal(*schemapb.ScalarField)` into a Binary
//! column. Only the scalar element kinds an ARRAY can hold are decoded; the oneof field
//! number tells the kind, so no schema is needed:
//!
//! | field | message      | element            |
//! |-------|--------------|--------------------|
//! | 1     | BoolArray    | bool               |
//! | 2     | IntArray     | int32 (also Int8 and Int16 elements) |
//! | 3     | LongArray    | int64              |
//! | 4     | FloatArray   | float              |
//! | 5     | DoubleArray  | double             |
//! | 6     | StringArray  | string (VarChar)   |
//!
//! Each inner message has `repeated T data = 1`, packed by Go's marshaller; unpacked
//! encodings are accepted too, as protobuf requires. Unknown fields are skipped.
//! [`encode`] produces the same bytes as Go's `proto.Marshal` (deterministic for these
//! messages: one field, packed).

/// The decoded elements of one ARRAY row.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalarValues {
    /// `bool_data`.
    Bool(Vec<bool>),
    /// `int_data` (Milvus stores Int8, Int16 and Int32 elements here).
    Int(Vec<i32>),
    /// `long_data`.
    Long(Vec<i64>),
    /// `float_data`.
    Float(Vec<f32>),
    /// `double_data`.
    Double(Vec<f64>),
    /// `string_data`.
    String(Vec<String>),
    /// No oneof field set (an all-default message).
    Unset,
}

impl ScalarValues {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            ScalarValues::Bool(v) => v.len(),
            ScalarValues::Int(v) => v.len(),
            ScalarValues::Long(v) => v.len(),
            ScalarValues::Float(v) => v.len(),
            ScalarValues::Double(v) => v.len(),
            ScalarValues::String(v) => v.len(),
            ScalarValues::Unset => 0,
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The oneof field number, or 0 for [`ScalarValues::Unset`].
    pub fn kind(&self) -> u32 {
        match self {
            ScalarValues::Bool(_) => 1,
            ScalarValues::Int(_) => 2,
            ScalarValues::Long(_) => 3,
            ScalarValues::Float(_) => 4,
            ScalarValues::Double(_) => 5,
            ScalarValues::String(_) => 6,
            ScalarValues::Unset => 0,
        }
    }
}

/// Why a row's bytes are not a ScalarField this crate understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset inside the row.
    pub at: usize,
    /// What went wrong.
    pub what: String,
}

fn err<T>(at: usize, what: impl Into<String>) -> Result<T, DecodeError> {
    Err(DecodeError {
        at,
        what: what.into(),
    })
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&byte) = self.b.get(self.pos) else {
                return err(self.pos, "truncated varint");
            };
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        err(self.pos, "varint longer than 10 bytes")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len());
        match end {
            Some(end) => {
                let s = &self.b[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => err(self.pos, format!("length {n} runs past the end")),
        }
    }

    fn skip(&mut self, wire: u64) -> Result<(), DecodeError> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.take(8).map(|_| ()),
            2 => {
                let n = self.varint()? as usize;
                self.take(n).map(|_| ())
            }
            5 => self.take(4).map(|_| ()),
            w => err(self.pos, format!("unsupported wire type {w}")),
        }
    }
}

/// Decode one ARRAY row.
pub fn decode(bytes: &[u8]) -> Result<ScalarValues, DecodeError> {
    let mut c = Cursor { b: bytes, pos: 0 };
    let mut out = ScalarValues::Unset;
    while c.pos < bytes.len() {
        let key = c.varint()?;
        let (field, wire) = (key >> 3, key & 7);
        if (1..=6).contains(&field) && wire == 2 {
            let n = c.varint()? as usize;
            let start = c.pos;
            let inner = c.take(n)?;
            out = decode_inner(field as u32, inner).map_err(|e| DecodeError {
                at: start + e.at,
                what: e.what,
            })?;
        } else {
            c.skip(wire)?;
        }
    }
    Ok(out)
}

fn decode_inner(kind: u32, b: &[u8]) -> Result<ScalarValues, DecodeError> {
    let mut c = Cursor { b, pos: 0 };
    let mut out = match kind {
        1 => ScalarValues::Bool(Vec::new()),
        2 => ScalarValues::Int(Vec::new()),
        3 => ScalarValues::Long(Vec::new()),
        4 => ScalarValues::Float(Vec::new()),
        5 => ScalarValues::Double(Vec::new()),
        _ => ScalarValues::String(Vec::new()),
    };
    while c.pos < b.len() {
        let key = c.varint()?;
        let (field, wire) = (key >> 3, key & 7);
        if field != 1 {
            c.skip(wire)?;
            continue;
        }
        match (&mut out, wire) {
            (ScalarValues::String(v), 2) => {
                let n = c.varint()? as usize;
                let at = c.pos;
                let s = c.take(n)?;
                match std::str::from_utf8(s) {
                    Ok(s) => v.push(s.to_owned()),
                    Err(_) => return err(at, "string element is not UTF-8"),
                }
            }
            (ScalarValues::String(_), w) => {
                return err(c.pos, format!("string with wire type {w}"));
            }
            (_, 2) => {
                // packed
                let n = c.varint()? as usize;
                let packed = c.take(n)?;
                let mut p = Cursor { b: packed, pos: 0 };
                while p.pos < packed.len() {
                    push_scalar(&mut out, &mut p).map_err(|e| DecodeError {
                        at: c.pos - packed.len() + e.at,
                        what: e.what,
                    })?;
                }
            }
            (_, _) => push_scalar(&mut out, &mut c)?,
        }
    }
    Ok(out)
}

fn push_scalar(out: &mut ScalarValues, c: &mut Cursor<'_>) -> Result<(), DecodeError> {
    match out {
        ScalarValues::Bool(v) => v.push(c.varint()? != 0),
        ScalarValues::Int(v) => v.push(c.varint()? as i64 as i32),
        ScalarValues::Long(v) => v.push(c.varint()? as i64),
        ScalarValues::Float(v) => {
            let b = c.take(4)?;
            v.push(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        }
        ScalarValues::Double(v) => {
            let b = c.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            v.push(f64::from_le_bytes(a));
        }
        ScalarValues::String(_) | ScalarValues::Unset => {
            return err(c.pos, "packed encoding for a non-scalar");
        }
    }
    Ok(())
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Encode one ARRAY row exactly as Go's `proto.Marshal` does.
pub fn encode(values: &ScalarValues) -> Vec<u8> {
    let mut inner = Vec::new();
    let mut packed = Vec::new();
    match values {
        ScalarValues::Unset => return Vec::new(),
        ScalarValues::String(v) => {
            for s in v {
                inner.push(0x0a);
                put_varint(&mut inner, s.len() as u64);
                inner.extend_from_slice(s.as_bytes());
            }
        }
        ScalarValues::Bool(v) => v.iter().for_each(|&b| packed.push(u8::from(b))),
        ScalarValues::Int(v) => v
            .iter()
            .for_each(|&x| put_varint(&mut packed, i64::from(x) as u64)),
        ScalarValues::Long(v) => v.iter().for_each(|&x| put_varint(&mut packed, x as u64)),
        ScalarValues::Float(v) => v
            .iter()
            .for_each(|x| packed.extend_from_slice(&x.to_le_bytes())),
        ScalarValues::Double(v) => v
            .iter()
            .for_each(|x| packed.extend_from_slice(&x.to_le_bytes())),
    }
    if !packed.is_empty() {
        inner.push(0x0a);
        put_varint(&mut inner, packed.len() as u64);
        inner.extend_from_slice(&packed);
    }
    let mut out = Vec::with_capacity(inner.len() + 3);
    put_varint(&mut out, u64::from(values.kind() << 3 | 2));
    put_varint(&mut out, inner.len() as u64);
    out.extend_from_slice(&inner);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_marshal_bytes() {
        // proto.Marshal(&ScalarField{Data: &ScalarField_IntData{IntData: &IntArray{Data: []int32{1, -1}}}})
        let v = ScalarValues::Int(vec![1, -1]);
        let b = encode(&v);
        let mut want = vec![0x12, 0x0d, 0x0a, 0x0b, 0x01];
        want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(b, want);
        assert_eq!(decode(&b).unwrap(), v);
        // an empty array still names its kind: tag + zero length
        assert_eq!(encode(&ScalarValues::Long(vec![])), vec![0x1a, 0x00]);
        assert_eq!(decode(&[0x1a, 0x00]).unwrap(), ScalarValues::Long(vec![]));
        assert_eq!(decode(&[]).unwrap(), ScalarValues::Unset);
    }

    #[test]
    fn round_trips_and_unpacked() {
        for v in [
            ScalarValues::Bool(vec![true, false, true]),
            ScalarValues::Long(vec![i64::MIN, 0, i64::MAX]),
            ScalarValues::Float(vec![1.5, -0.0, f32::MAX]),
            ScalarValues::Double(vec![1.0 / 3.0]),
            ScalarValues::String(vec!["a".into(), "".into(), "ü".into()]),
        ] {
            assert_eq!(decode(&encode(&v)).unwrap(), v);
        }
        // unpacked int64: field 3 { 08 05 08 06 }
        assert_eq!(
            decode(&[0x1a, 0x04, 0x08, 0x05, 0x08, 0x06]).unwrap(),
            ScalarValues::Long(vec![5, 6])
        );
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let b = encode(&ScalarValues::String(vec!["hello".into(), "world".into()]));
        for cut in 0..b.len() {
            let _ = decode(&b[..cut]);
        }
        assert!(decode(&b[..b.len() - 1]).is_err());
        assert!(decode(&[0x12, 0x05, 0x0a]).is_err());
    }
}
