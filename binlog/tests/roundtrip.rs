//! Files from our writers: byte layout against the upstream constants, every type and
//! encoding round-tripped, v2 segments, and damage (truncation at every offset, flipped
//! bytes) ending as errors, never panics.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::builder::{
    FixedSizeListBuilder, Float32Builder, Int8Builder, Int64Builder, ListBuilder,
};
use arrow_array::cast::AsArray;
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, FixedSizeBinaryArray, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, StringArray,
};
use milvault_binlog::segment::{TIMESTAMP_FIELD, column};
use milvault_binlog::v1::BinlogFile;
use milvault_binlog::write::{
    GroupColumn, InsertLogSpec, LogIds, write_column_group, write_delta_log, write_insert_log,
};
use milvault_binlog::{
    ByteSource, DataType, DeleteEntry, DeleteSet, DeltaEncoding, Error, FieldSpec, InsertLog,
    MemSource, Pk, Segment, SegmentFiles, read_delta_log,
};

const TS0: u64 = 449_885_066_469_376_001;

fn ids(field: i64) -> LogIds {
    LogIds {
        collection_id: 11,
        partition_id: 22,
        segment_id: 33,
        field_id: field,
        written_at: TS0,
    }
}

fn mem(name: &str, b: Vec<u8>) -> Arc<dyn ByteSource> {
    Arc::new(MemSource::new(name, b))
}

fn spec(dt: DataType, field: i64, nullable: Option<bool>) -> InsertLogSpec {
    InsertLogSpec {
        ids: ids(field),
        data_type: dt,
        start_ts: TS0,
        end_ts: TS0 + 10,
        nullable,
    }
}

fn float_vectors(rows: usize, dim: i32) -> ArrayRef {
    let mut b = FixedSizeListBuilder::new(Float32Builder::new(), dim).with_field(Arc::new(
        arrow_schema::Field::new_list_field(arrow_schema::DataType::Float32, false),
    ));
    for i in 0..rows {
        for j in 0..dim {
            b.values()
                .append_value(f32::from_bits(0x3f80_0000 + (i as u32) * 97 + j as u32));
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn int8_vectors(rows: usize, dim: i32) -> ArrayRef {
    let mut b = FixedSizeListBuilder::new(Int8Builder::new(), dim).with_field(Arc::new(
        arrow_schema::Field::new_list_field(arrow_schema::DataType::Int8, false),
    ));
    for i in 0..rows {
        for j in 0..dim {
            b.values().append_value((i as i32 * 3 - j) as i8);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn long_lists(rows: usize) -> ArrayRef {
    let mut b = ListBuilder::new(Int64Builder::new());
    for i in 0..rows {
        for k in 0..(i % 3) {
            b.values().append_value((i * 10 + k) as i64 - 7);
        }
        b.append(true);
    }
    Arc::new(b.finish())
}

fn sparse_rows(rows: usize) -> ArrayRef {
    Arc::new(BinaryArray::from_iter_values((0..rows).map(|i| {
        let mut r = Vec::new();
        for k in 0..(i % 4) as u32 {
            r.extend_from_slice(&(k * 5 + 1).to_le_bytes());
            r.extend_from_slice(&(k as f32 + 0.5).to_le_bytes());
        }
        r
    })))
}

/// One column per Milvus type this crate writes, in returned form.
fn every_type(rows: usize) -> Vec<(DataType, ArrayRef)> {
    let n = rows as i64;
    vec![
        (
            DataType::Bool,
            Arc::new(BooleanArray::from_iter((0..rows).map(|i| Some(i % 3 == 0)))),
        ),
        (
            DataType::Int8,
            Arc::new(Int8Array::from_iter_values(
                (0..n).map(|i| (i % 200 - 100) as i8),
            )),
        ),
        (
            DataType::Int16,
            Arc::new(Int16Array::from_iter_values(
                (0..n).map(|i| (i * 7 - 900) as i16),
            )),
        ),
        (
            DataType::Int32,
            Arc::new(Int32Array::from_iter_values(
                (0..n).map(|i| (i * 100_003) as i32),
            )),
        ),
        (
            DataType::Int64,
            Arc::new(Int64Array::from_iter_values(
                (0..n).map(|i| i * -1_000_000_007),
            )),
        ),
        (
            DataType::Float,
            Arc::new(Float32Array::from_iter_values(
                (0..n).map(|i| i as f32 / 3.0),
            )),
        ),
        (
            DataType::Double,
            Arc::new(Float64Array::from_iter_values(
                (0..n).map(|i| i as f64 / 7.0),
            )),
        ),
        (
            DataType::VarChar,
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("v-{i}-é")),
            )),
        ),
        (
            DataType::String,
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| format!("s{i}")),
            )),
        ),
        (
            DataType::Text,
            Arc::new(StringArray::from_iter_values(
                (0..n).map(|i| "t".repeat(i as usize % 9)),
            )),
        ),
        (
            DataType::Json,
            Arc::new(BinaryArray::from_iter_values(
                (0..n).map(|i| format!("{{\"k\":{i}}}").into_bytes()),
            )),
        ),
        (
            DataType::Geometry,
            Arc::new(BinaryArray::from_iter_values(
                (0..n).map(|i| vec![1u8, 1, 0, 0, 0, i as u8]),
            )),
        ),
        (
            DataType::Timestamptz,
            Arc::new(Int64Array::from_iter_values(
                (0..n).map(|i| 1_700_000_000_000_000 + i),
            )),
        ),
        (DataType::Array, long_lists(rows)),
        (DataType::FloatVector, float_vectors(rows, 4)),
        (DataType::Int8Vector, int8_vectors(rows, 5)),
        (
            DataType::BinaryVector,
            Arc::new(
                FixedSizeBinaryArray::try_from_iter((0..rows).map(|i| [i as u8, !(i as u8)]))
                    .expect("test data"),
            ),
        ),
        (
            DataType::Float16Vector,
            Arc::new(
                FixedSizeBinaryArray::try_from_iter((0..rows).map(|i| [i as u8, 0x3c, 0, 0xbc]))
                    .expect("test data"),
            ),
        ),
        (
            DataType::BFloat16Vector,
            Arc::new(
                FixedSizeBinaryArray::try_from_iter((0..rows).map(|i| [0x80, 0x3f, i as u8, 0x40]))
                    .expect("test data"),
            ),
        ),
        (DataType::SparseFloatVector, sparse_rows(rows)),
    ]
}

async fn read_all(src: Arc<dyn ByteSource>) -> Result<ArrayRef, Error> {
    let mut log = InsertLog::open(src).await?.with_batch_rows(7);
    let mut parts = Vec::new();
    while let Some(a) = log.next_array().await? {
        parts.push(a);
    }
    let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
    Ok(arrow_select::concat::concat(&refs).expect("test data"))
}

#[tokio::test]
async fn header_bytes_follow_upstream_layout() {
    let col: ArrayRef = Arc::new(Int64Array::from(vec![5, 6, 7]));
    let b = write_insert_log(&spec(DataType::Int64, 100, None), &col).expect("test data");
    assert_eq!(
        &b[0..4],
        &[0xBC, 0xFA, 0xFF, 0x00],
        "magic 0xFFFABC little-endian"
    );
    assert_eq!(
        u64::from_le_bytes(b[4..12].try_into().expect("test data")),
        TS0
    );
    assert_eq!(b[12], 0, "descriptor type code");
    let extras = br#"{"original_size":""#;
    let ev_len = i32::from_le_bytes(b[13..17].try_into().expect("test data")) as usize;
    let extra_len = i32::from_le_bytes(b[81..85].try_into().expect("test data")) as usize;
    assert_eq!(ev_len, 17 + 52 + 8 + 4 + extra_len);
    assert_eq!(
        i32::from_le_bytes(b[17..21].try_into().expect("test data")) as usize,
        4 + ev_len
    );
    assert_eq!(
        i64::from_le_bytes(b[21..29].try_into().expect("test data")),
        11
    );
    assert_eq!(
        i64::from_le_bytes(b[29..37].try_into().expect("test data")),
        22
    );
    assert_eq!(
        i64::from_le_bytes(b[37..45].try_into().expect("test data")),
        33
    );
    assert_eq!(
        i64::from_le_bytes(b[45..53].try_into().expect("test data")),
        100
    );
    assert_eq!(
        u64::from_le_bytes(b[53..61].try_into().expect("test data")),
        TS0
    );
    assert_eq!(
        u64::from_le_bytes(b[61..69].try_into().expect("test data")),
        TS0 + 10
    );
    assert_eq!(
        i32::from_le_bytes(b[69..73].try_into().expect("test data")),
        5,
        "payload type Int64"
    );
    assert_eq!(&b[73..81], &[52, 16, 16, 16, 16, 16, 16, 16]);
    assert_eq!(&b[85..85 + extras.len()], extras);
    let ev = 4 + ev_len;
    assert_eq!(b[ev + 8], 1, "insert event");
    let len = i32::from_le_bytes(b[ev + 9..ev + 13].try_into().expect("test data")) as usize;
    assert_eq!(ev + len, b.len());
    assert_eq!(
        i32::from_le_bytes(b[ev + 13..ev + 17].try_into().expect("test data")) as usize,
        b.len()
    );
    assert_eq!(
        u64::from_le_bytes(b[ev + 17..ev + 25].try_into().expect("test data")),
        TS0
    );
    assert_eq!(&b[ev + 33..ev + 37], b"PAR1");
    assert_eq!(&b[b.len() - 4..], b"PAR1");
}

#[tokio::test]
async fn every_type_round_trips() {
    for (dt, col) in every_type(50) {
        let b = write_insert_log(&spec(dt, 101, None), &col).expect("test data");
        let got = read_all(mem("t", b))
            .await
            .unwrap_or_else(|e| panic!("{dt}: {e}"));
        assert_eq!(got.to_data(), col.to_data(), "{dt}");
        let f = BinlogFile::open(mem(
            "t",
            write_insert_log(&spec(dt, 101, None), &col).expect("test data"),
        ))
        .await
        .expect("test data");
        assert_eq!(f.descriptor().payload_type, dt);
    }
}

#[tokio::test]
async fn nullable_columns_keep_validity() {
    let col: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None, Some(3), None]));
    let b = write_insert_log(&spec(DataType::Int32, 102, Some(true)), &col).expect("test data");
    let f = BinlogFile::open(mem("n", b.clone()))
        .await
        .expect("test data");
    assert!(f.descriptor().nullable());
    let got = read_all(mem("n", b)).await.expect("test data");
    assert_eq!(got.to_data(), col.to_data());
    let s: ArrayRef = Arc::new(StringArray::from(vec![None, Some("x")]));
    let b = write_insert_log(&spec(DataType::VarChar, 103, Some(true)), &s).expect("test data");
    assert_eq!(
        read_all(mem("n", b)).await.expect("test data").to_data(),
        s.to_data()
    );
    // nulls without the nullable flag are refused, as upstream does
    assert!(write_insert_log(&spec(DataType::Int32, 102, None), &col).is_err());
}

fn entries(varchar: bool) -> Vec<DeleteEntry> {
    (0..20)
        .map(|i| DeleteEntry {
            pk: if varchar {
                Pk::VarChar(format!("k<{i}>&"))
            } else {
                Pk::Int64(i * 3 - 10)
            },
            ts: TS0 + i as u64,
        })
        .collect()
}

#[tokio::test]
async fn delete_logs_in_every_encoding() {
    for enc in [
        DeltaEncoding::V1Json,
        DeltaEncoding::V1Legacy,
        DeltaEncoding::V1MultiField,
        DeltaEncoding::V2Parquet,
    ] {
        for varchar in [false, true] {
            let es = entries(varchar);
            let res = write_delta_log(&ids(0), &es, enc);
            if enc == DeltaEncoding::V1Legacy && varchar {
                assert!(res.is_err());
                continue;
            }
            let b = res.expect("test data");
            let log = read_delta_log(mem("d", b.clone()))
                .await
                .expect("test data");
            assert_eq!(log.encoding, enc);
            assert_eq!(log.entries, es, "{enc:?}");
            match enc {
                DeltaEncoding::V2Parquet => assert_eq!(&b[..4], b"PAR1"),
                DeltaEncoding::V1MultiField => {
                    let d = log.descriptor.expect("test data");
                    assert!(d.is_multi_field());
                    assert_eq!(d.payload_type, DataType::Int64);
                    let mut f = BinlogFile::open(mem("d", b)).await.expect("test data");
                    let e = f.next_event().await.expect("test data").expect("test data");
                    assert_eq!((e.header.next_position, e.start_ts, e.end_ts), (-1, 1, 1));
                }
                _ => {
                    let d = log.descriptor.expect("test data");
                    assert_eq!((d.field_id, d.payload_type), (-1, DataType::String));
                    assert_eq!((d.start_ts, d.end_ts), (TS0, TS0 + 19));
                }
            }
        }
    }
}

#[tokio::test]
async fn json_delete_rows_are_the_go_bytes() {
    let es = vec![DeleteEntry {
        pk: Pk::VarChar("a<b".into()),
        ts: 9,
    }];
    let b = write_delta_log(&ids(0), &es, DeltaEncoding::V1Json).expect("test data");
    // the string sits uncompressed-or-not inside zstd; decode and compare the row text
    let mut f = BinlogFile::open(mem("d", b.clone()))
        .await
        .expect("test data");
    let e = f.next_event().await.expect("test data").expect("test data");
    assert_eq!(e.header.event_type, milvault_binlog::v1::EventType::Delete);
    let row = milvault_binlog::write::json_row(&es[0]);
    assert_eq!(row, r#"{"pk":"a\u003cb","ts":9,"pkType":21}"#);
    assert_eq!(
        read_delta_log(mem("d", b))
            .await
            .expect("test data")
            .entries,
        es
    );
}

fn v2_segment(rows: usize, group0_rows: usize) -> Segment {
    let n = rows as i64;
    let g0 = vec![
        GroupColumn {
            field_id: 0,
            name: "RowID".into(),
            data_type: DataType::Int64,
            nullable: false,
            values: Arc::new(Int64Array::from_iter_values(
                (0..group0_rows as i64).map(|i| 1000 + i),
            )),
        },
        GroupColumn {
            field_id: 1,
            name: "Timestamp".into(),
            data_type: DataType::Int64,
            nullable: false,
            values: Arc::new(Int64Array::from_iter_values(
                (0..group0_rows as i64).map(|i| (TS0 + i as u64) as i64),
            )),
        },
        GroupColumn {
            field_id: 100,
            name: "pk".into(),
            data_type: DataType::Int64,
            nullable: false,
            values: Arc::new(Int64Array::from_iter_values(0..group0_rows as i64)),
        },
        GroupColumn {
            field_id: 102,
            name: "arr".into(),
            data_type: DataType::Array,
            nullable: false,
            values: long_lists(group0_rows),
        },
    ];
    let g101 = vec![GroupColumn {
        field_id: 101,
        name: "vec".into(),
        data_type: DataType::FloatVector,
        nullable: false,
        values: float_vectors(rows, 4),
    }];
    let groups = vec![vec![0, 1, 100, 102], vec![101]];
    let f0 = write_column_group(&g0, &groups).expect("test data");
    let f1 = write_column_group(&g101, &groups).expect("test data");
    let _ = n;
    let mut map = BTreeMap::new();
    map.insert(0, vec![mem("g0", f0)]);
    map.insert(101, vec![mem("g101", f1)]);
    Segment::new(
        "v2seg",
        SegmentFiles::V2 {
            groups: map,
            schema: vec![
                FieldSpec {
                    field_id: 100,
                    data_type: DataType::Int64,
                },
                FieldSpec {
                    field_id: 101,
                    data_type: DataType::FloatVector,
                },
                FieldSpec {
                    field_id: 102,
                    data_type: DataType::Array,
                },
            ],
        },
    )
    .with_batch_rows(16)
}

#[tokio::test]
async fn storage_v2_segments_read_aligned_and_count_live() {
    let seg = v2_segment(40, 40);
    assert_eq!(seg.check_row_counts().await.expect("test data"), 40);
    let mut r = seg.batches(None).await.expect("test data");
    let mut rows = 0;
    let want_vec = float_vectors(40, 4);
    let want_arr = long_lists(40);
    while let Some(b) = r.next_batch().await.expect("test data") {
        let pk = column(&b, 100)
            .expect("test data")
            .as_primitive::<arrow_array::types::Int64Type>();
        for i in 0..b.num_rows() {
            let p = pk.value(i) as usize;
            assert_eq!(p, rows + i);
            let v = column(&b, 101)
                .expect("test data")
                .as_fixed_size_list()
                .value(i);
            assert_eq!(
                v.to_data(),
                want_vec.as_fixed_size_list().value(p).to_data()
            );
            let a = column(&b, 102)
                .expect("test data")
                .as_list::<i32>()
                .value(i);
            assert_eq!(a.to_data(), want_arr.as_list::<i32>().value(p).to_data());
        }
        rows += b.num_rows();
    }
    assert_eq!(rows, 40);
    // deletes at the row's own ts keep the row; later ones remove it
    let set: DeleteSet = [
        DeleteEntry {
            pk: Pk::Int64(3),
            ts: TS0 + 3,
        },
        DeleteEntry {
            pk: Pk::Int64(4),
            ts: TS0 + 5,
        },
        DeleteEntry {
            pk: Pk::Int64(99),
            ts: u64::MAX,
        },
    ]
    .into_iter()
    .collect();
    let c = set.count_live(&seg, 100).await.expect("test data");
    assert_eq!((c.inserted, c.live), (40, 39));
    // the cheap path reads only the pk and timestamp columns
    let mut r = seg
        .batches(Some(&[100, TIMESTAMP_FIELD]))
        .await
        .expect("test data");
    let b = r.next_batch().await.expect("test data").expect("test data");
    assert_eq!(b.num_columns(), 2);
}

#[tokio::test]
async fn row_count_mismatch_names_segment_and_fields() {
    let seg = v2_segment(40, 39);
    let e = seg.check_row_counts().await.unwrap_err();
    match &e {
        Error::RowCountMismatch { segment, counts } => {
            assert_eq!(segment, "v2seg");
            assert_eq!(counts, &vec![(0, 39), (101, 40)]);
        }
        other => panic!("{other}"),
    }
    assert!(seg.batches(None).await.is_err());
    // v1: a field with one row fewer
    let a: ArrayRef = Arc::new(Int64Array::from(vec![1, 2, 3]));
    let b: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
    let mut fields = BTreeMap::new();
    fields.insert(
        0,
        vec![mem(
            "f0",
            write_insert_log(&spec(DataType::Int64, 0, None), &a).expect("test data"),
        )],
    );
    fields.insert(
        100,
        vec![mem(
            "f100",
            write_insert_log(&spec(DataType::Int64, 100, None), &b).expect("test data"),
        )],
    );
    let seg = Segment::new("seg-7", SegmentFiles::V1 { fields });
    let msg = seg.check_row_counts().await.unwrap_err().to_string();
    assert!(
        msg.contains("seg-7")
            && msg.contains("field 0: 3 rows")
            && msg.contains("field 100: 2 rows"),
        "{msg}"
    );
}

/// Decode a file fully with every reader that applies; must not panic.
async fn decode_everything(b: Vec<u8>) -> Result<(), Error> {
    let src = mem("damaged/file", b);
    let r1 = read_all(src.clone()).await.map(|_| ());
    let r2 = InsertLog::row_count(src.clone()).await.map(|_| ());
    let r3 = read_delta_log(src).await.map(|_| ());
    r1.and(r2).or(r3)
}

#[tokio::test]
async fn truncation_at_every_offset_is_an_error_naming_file_and_offset() {
    let col: ArrayRef = Arc::new(StringArray::from_iter_values(
        (0..30).map(|i| format!("row {i}")),
    ));
    let full = write_insert_log(&spec(DataType::VarChar, 100, None), &col).expect("test data");
    let delta =
        write_delta_log(&ids(0), &entries(false), DeltaEncoding::V1Json).expect("test data");
    for file in [full, delta] {
        for cut in 0..file.len() {
            let e = decode_everything(file[..cut].to_vec()).await;
            let e = e.expect_err("truncated file decoded");
            let msg = e.to_string();
            assert!(msg.contains("damaged/file"), "{cut}: {msg}");
            assert!(msg.contains("offset"), "{cut}: {msg}");
        }
    }
}

#[tokio::test]
async fn flipped_bytes_never_panic() {
    let col: ArrayRef = Arc::new(Int64Array::from_iter_values(0..100));
    let full = write_insert_log(&spec(DataType::Int64, 100, None), &col).expect("test data");
    let ev = 85 + full[81] as usize; // first data event
    // bytes every flip of which must be caught: magic, descriptor type/length/next,
    // payload type, post-header lengths, extras length, event type/length/next
    let checked = |at: usize| {
        at < 4
            || (12..21).contains(&at)
            || (69..85).contains(&at)
            || (ev + 8..ev + 17).contains(&at)
    };
    for at in 0..full.len() {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut b = full.clone();
            b[at] ^= mask;
            let r = decode_everything(b).await;
            // damage to the envelope is always caught; inside Parquet data it may decode
            // to other values, but it must not panic
            if checked(at) {
                assert!(r.is_err(), "flip {mask:#x} at {at} went unnoticed");
            }
        }
    }
}

#[tokio::test]
async fn unknown_data_type_is_rejected_precisely() {
    let col: ArrayRef = Arc::new(Int64Array::from(vec![1]));
    let mut b = write_insert_log(&spec(DataType::Int64, 100, None), &col).expect("test data");
    b[69..73].copy_from_slice(&77i32.to_le_bytes());
    let e = InsertLog::open(mem("ins/77", b))
        .await
        .err()
        .expect("test data");
    assert!(
        matches!(
            e,
            Error::UnknownDataType {
                value: 77,
                offset: 69,
                ..
            }
        ),
        "{e}"
    );
}
