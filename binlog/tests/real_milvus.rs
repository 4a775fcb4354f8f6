//! Files written by real Milvus 2.3.5 and 2.2.16 (see tests/fixtures/README.md), decoded
//! and compared value by value with the formulas of `tests/fixtures/generate.py`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef};
use milvault_binlog::segment::{ROW_ID_FIELD, TIMESTAMP_FIELD, column};
use milvault_binlog::v1::BinlogFile;
use milvault_binlog::{
    ByteSource, DataType, DeleteSet, DeltaEncoding, FileSource, InsertLog, Pk, Segment,
    SegmentFiles, read_delta_log,
};
use serde_json::Value;

fn fixtures(version: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("milvus-{version}"))
}

fn expected(version: &str) -> Value {
    let text = std::fs::read_to_string(fixtures(version).join("expected.json")).expect("test data");
    serde_json::from_str(&text).expect("test data")
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.expect("test data").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn src(p: &Path) -> Arc<dyn ByteSource> {
    Arc::new(FileSource::open(p).expect("test data"))
}

/// (collection, partition, segment, field, log) ids from an insert_log path.
fn ids(p: &Path) -> Vec<i64> {
    let parts: Vec<&str> = p.iter().map(|s| s.to_str().expect("test data")).collect();
    parts[parts.len() - 5..]
        .iter()
        .map(|s| s.parse().expect("test data"))
        .collect()
}

struct Coll {
    segment: Segment,
    by_field: BTreeMap<i64, Vec<PathBuf>>,
    delta: Vec<PathBuf>,
    stats: Vec<PathBuf>,
    exp: Value,
}

fn collection(version: &str, name: &str) -> Coll {
    let dir = fixtures(version).join(name);
    let mut by_field: BTreeMap<i64, Vec<PathBuf>> = BTreeMap::new();
    for p in files_under(&dir.join("insert_log")) {
        by_field.entry(ids(&p)[3]).or_default().push(p);
    }
    for files in by_field.values_mut() {
        files.sort_by_key(|p| ids(p)[4]);
    }
    let fields = by_field
        .iter()
        .map(|(f, ps)| (*f, ps.iter().map(|p| src(p)).collect()))
        .collect();
    Coll {
        segment: Segment::new(format!("{version}/{name}"), SegmentFiles::V1 { fields })
            .with_batch_rows(64),
        by_field,
        delta: files_under(&dir.join("delta_log")),
        stats: files_under(&dir.join("stats_log")),
        exp: expected(version)["collections"][name].clone(),
    }
}

fn field_id(exp: &Value, name: &str) -> i64 {
    exp["fields"][name]["field_id"].as_i64().expect("test data")
}

fn f32r(x: f64) -> f32 {
    x as f32
}

/// The pk → row index mapping of generate.py.
fn row_index(pk: i64) -> usize {
    ((pk - 1) / 10) as usize
}

#[tokio::test]
async fn descriptors_match_paths_and_types() {
    for version in ["2.3.5", "2.2.16"] {
        for name in ["all_types", "binvec"] {
            let c = collection(version, name);
            let types: BTreeMap<i64, i64> = c.exp["fields"]
                .as_object()
                .expect("test data")
                .values()
                .map(|f| {
                    (
                        f["field_id"].as_i64().expect("test data"),
                        f["type"].as_i64().expect("test data"),
                    )
                })
                .collect();
            for files in c.by_field.values() {
                for p in files {
                    let f = BinlogFile::open(src(p)).await.expect("test data");
                    let d = f.descriptor();
                    let id = ids(p);
                    assert_eq!(
                        [d.collection_id, d.partition_id, d.segment_id, d.field_id],
                        [id[0], id[1], id[2], id[3]],
                        "{}",
                        p.display()
                    );
                    assert!(d.original_size().is_some());
                    let want = match d.field_id {
                        0 | 1 => DataType::Int64.code() as i64,
                        f => *types.get(&f).unwrap_or(&(DataType::Json.code() as i64)), // $meta
                    };
                    assert_eq!(d.payload_type.code() as i64, want, "{}", p.display());
                    // the descriptor's timestamp and the time range are hybrid TSOs
                    let ms = d.header.timestamp >> 18;
                    assert!((1_600_000_000_000..2_000_000_000_000).contains(&ms));
                    assert!(d.start_ts > 0 && d.start_ts <= d.end_ts);
                }
            }
            for p in &c.stats {
                // stats logs are bare JSON (2.3's compound log "1" an array, others an
                // object), not binlog envelopes: a reader must not expect the magic
                let v: Value = serde_json::from_slice(&std::fs::read(p).expect("test data"))
                    .expect("test data");
                assert!(v.is_array() || v.is_object(), "{}", p.display());
                assert!(BinlogFile::open(src(p)).await.is_err());
            }
        }
    }
}

#[tokio::test]
async fn all_types_rows_are_exact() {
    for version in ["2.3.5", "2.2.16"] {
        let c = collection(version, "all_types");
        let exp = &c.exp;
        let inserted = exp["inserted_rows"].as_u64().expect("test data");
        assert_eq!(
            c.segment.check_row_counts().await.expect("test data"),
            inserted,
            "{version}"
        );
        // two sync'ed flush chunks: two insert logs per field
        assert!(c.by_field.values().all(|v| v.len() == 2), "{version}");
        let upserted: BTreeSet<i64> = exp["upserted_pks"]
            .as_array()
            .expect("test data")
            .iter()
            .map(|v| v.as_i64().expect("test data"))
            .collect();
        let fid = |n: &str| field_id(exp, n);
        let meta_field = *c.by_field.keys().max().expect("test data");
        let mut reader = c.segment.batches(None).await.expect("test data");
        let mut rows = 0u64;
        let mut row_ids = BTreeSet::new();
        let mut seen_upserted = BTreeMap::<i64, u32>::new();
        while let Some(b) = reader.next_batch().await.expect("test data") {
            let col = |id: i64| -> &ArrayRef { column(&b, id).expect("test data") };
            let pk = col(fid("pk")).as_primitive::<Int64Type>();
            let ts = col(TIMESTAMP_FIELD).as_primitive::<Int64Type>();
            let rid = col(ROW_ID_FIELD).as_primitive::<Int64Type>();
            for r in 0..b.num_rows() {
                rows += 1;
                assert!(row_ids.insert(rid.value(r)), "row ids are unique");
                let ms = (ts.value(r) as u64) >> 18;
                assert!((1_600_000_000_000..2_000_000_000_000).contains(&ms));
                let p = pk.value(r);
                let i = row_index(p);
                assert_eq!(p, i as i64 * 10 + 1);
                let it = i as i64;
                assert_eq!(col(fid("b")).as_boolean().value(r), i.is_multiple_of(2));
                assert_eq!(
                    col(fid("i8")).as_primitive::<Int8Type>().value(r) as i64,
                    (it % 256) - 128
                );
                assert_eq!(
                    col(fid("i16")).as_primitive::<Int16Type>().value(r) as i64,
                    it * 3 - 500
                );
                assert_eq!(
                    col(fid("i32")).as_primitive::<Int32Type>().value(r) as i64,
                    it * 1000 - 7
                );
                assert_eq!(
                    col(fid("i64")).as_primitive::<Int64Type>().value(r),
                    it * 1_000_000_000_000 + 5
                );
                assert_eq!(
                    col(fid("f")).as_primitive::<Float32Type>().value(r),
                    f32r(i as f64 * 0.5)
                );
                assert_eq!(
                    col(fid("d")).as_primitive::<Float64Type>().value(r),
                    i as f64 / 3.0
                );
                let s = col(fid("s")).as_string::<i32>().value(r);
                let is_new = upserted.contains(&p) && s.starts_with("upserted-");
                if upserted.contains(&p) {
                    *seen_upserted.entry(p).or_default() += 1;
                }
                assert_eq!(
                    s,
                    if is_new {
                        format!("upserted-{i}")
                    } else {
                        format!("str-{i}")
                    }
                );
                let j: Value = serde_json::from_slice(col(fid("j")).as_binary::<i32>().value(r))
                    .expect("test data");
                assert_eq!(
                    j,
                    serde_json::json!({"i": i, "tag": format!("t{}", i % 5), "list": [i, i + 1]})
                );
                let meta: Value =
                    serde_json::from_slice(col(meta_field).as_binary::<i32>().value(r))
                        .expect("test data");
                if i.is_multiple_of(2) {
                    assert_eq!(
                        meta,
                        serde_json::json!({"dyn_i": i, "dyn_s": format!("dyn-{i}")})
                    );
                } else {
                    assert_eq!(meta, serde_json::json!({}));
                }
                // float vector, bit for bit
                let v = col(fid("vec")).as_fixed_size_list().value(r);
                let v = v.as_primitive::<Float32Type>();
                let want: Vec<u32> = (0..8)
                    .map(|j| f32r(i as f64 + j as f64 / 8.0).to_bits())
                    .collect();
                let got: Vec<u32> = v.values().iter().map(|x| x.to_bits()).collect();
                assert_eq!(got, want);
                if version == "2.3.5" {
                    check_arrays(&b, exp, r, i);
                    let d = col(fid("def_i32")).as_primitive::<Int32Type>().value(r) as i64;
                    assert_eq!(d, if !i.is_multiple_of(3) { -it } else { 77 });
                }
            }
        }
        assert_eq!(rows, inserted, "{version}");
        // each upserted key: the original row and the new one
        assert!(seen_upserted.values().all(|n| *n == 2), "{seen_upserted:?}");
        assert_eq!(seen_upserted.len(), upserted.len());
    }
}

fn check_arrays(b: &arrow_array::RecordBatch, exp: &Value, r: usize, i: usize) {
    let n = i % 4;
    let list = |name: &str| -> ArrayRef {
        let l = column(b, field_id(exp, name))
            .expect("test data")
            .as_list::<i32>();
        l.value(r)
    };
    let ik = |k: usize| (i + k) as i64;
    let v = list("a_bool");
    assert_eq!(
        v.as_boolean()
            .iter()
            .map(|x| x.expect("test data"))
            .collect::<Vec<_>>(),
        (0..n)
            .map(|k| (i + k).is_multiple_of(3))
            .collect::<Vec<_>>()
    );
    // Int8 and Int16 elements travel as protobuf int32
    let v = list("a_i8");
    assert_eq!(
        v.as_primitive::<Int32Type>().values().to_vec(),
        (0..n)
            .map(|k| (ik(k) % 100 - 50) as i32)
            .collect::<Vec<_>>()
    );
    let v = list("a_i16");
    assert_eq!(
        v.as_primitive::<Int32Type>().values().to_vec(),
        (0..n).map(|k| (ik(k) * 7 - 300) as i32).collect::<Vec<_>>()
    );
    let v = list("a_i32");
    assert_eq!(
        v.as_primitive::<Int32Type>().values().to_vec(),
        (0..n).map(|k| (ik(k) * 1001) as i32).collect::<Vec<_>>()
    );
    let v = list("a_i64");
    assert_eq!(
        v.as_primitive::<Int64Type>().values().to_vec(),
        (0..n).map(|k| ik(k) * 10_000_000_000).collect::<Vec<_>>()
    );
    let v = list("a_f");
    assert_eq!(
        v.as_primitive::<Float32Type>().values().to_vec(),
        (0..n)
            .map(|k| f32r(ik(k) as f64 * 0.25))
            .collect::<Vec<_>>()
    );
    let v = list("a_d");
    assert_eq!(
        v.as_primitive::<Float64Type>().values().to_vec(),
        (0..n).map(|k| ik(k) as f64 / 7.0).collect::<Vec<_>>()
    );
    let v = list("a_s");
    assert_eq!(
        v.as_string::<i32>()
            .iter()
            .map(|s| s.expect("test data").to_owned())
            .collect::<Vec<_>>(),
        (0..n).map(|k| format!("e{i}-{k}")).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn binary_vectors_and_varchar_keys_are_exact() {
    for version in ["2.3.5", "2.2.16"] {
        let c = collection(version, "binvec");
        let exp = &c.exp;
        let mut reader = c.segment.batches(None).await.expect("test data");
        let mut rows = 0;
        while let Some(b) = reader.next_batch().await.expect("test data") {
            let pk = column(&b, field_id(exp, "pk"))
                .expect("test data")
                .as_string::<i32>();
            let n = column(&b, field_id(exp, "n"))
                .expect("test data")
                .as_primitive::<Int64Type>();
            let bv = column(&b, field_id(exp, "bv"))
                .expect("test data")
                .as_fixed_size_binary();
            assert_eq!(bv.value_length(), 2);
            for r in 0..b.num_rows() {
                let i: usize = pk.value(r)["key-".len()..].parse().expect("test data");
                assert_eq!(pk.value(r), format!("key-{i:04}"));
                assert_eq!(n.value(r), i as i64 * 2);
                assert_eq!(bv.value(r), &[(i % 256) as u8, ((i * 7 + 3) % 256) as u8]);
                rows += 1;
            }
        }
        assert_eq!(rows, 300);
    }
}

#[tokio::test]
async fn delete_logs_and_live_rows_match_milvus() {
    for version in ["2.3.5", "2.2.16"] {
        for name in ["all_types", "binvec"] {
            let c = collection(version, name);
            let exp = &c.exp;
            assert_eq!(c.delta.len(), 1, "{version}/{name}");
            let log = read_delta_log(src(&c.delta[0])).await.expect("test data");
            // 2.2.16 and 2.3.5 both write the JSON variant
            assert_eq!(log.encoding, DeltaEncoding::V1Json);
            let d = log.descriptor.as_ref().expect("test data");
            assert_eq!(d.field_id, -1);
            assert_eq!(d.payload_type, DataType::String);
            let to_pk = |v: &Value| match v {
                Value::String(s) => Pk::VarChar(s.clone()),
                v => Pk::Int64(v.as_i64().expect("test data")),
            };
            let mut want: Vec<Pk> = exp["deleted_pks"]
                .as_array()
                .expect("test data")
                .iter()
                .map(to_pk)
                .collect();
            // an upsert writes a delete of the key at the new row's timestamp
            want.extend(
                exp["upserted_pks"]
                    .as_array()
                    .expect("test data")
                    .iter()
                    .map(to_pk),
            );
            want.sort();
            let mut got: Vec<Pk> = log.entries.iter().map(|e| e.pk.clone()).collect();
            got.sort();
            assert_eq!(got, want, "{version}/{name}");
            for e in &log.entries {
                let ms = e.ts >> 18;
                assert!(
                    (1_600_000_000_000..2_000_000_000_000).contains(&ms),
                    "hybrid TSO"
                );
            }
            let set: DeleteSet = log.entries.into_iter().collect();
            let pk_field = field_id(exp, "pk");
            let counts = set
                .count_live(&c.segment, pk_field)
                .await
                .expect("test data");
            assert_eq!(
                counts.inserted,
                exp["inserted_rows"].as_u64().expect("test data")
            );
            assert_eq!(
                counts.live,
                exp["live_rows"].as_u64().expect("test data"),
                "{version}/{name}"
            );
            // the filter keeps exactly the keys Milvus's query returned
            let mut live = Vec::new();
            let mut reader = c.segment.batches(None).await.expect("test data");
            while let Some(b) = reader.next_batch().await.expect("test data") {
                let kept = set.filter_live(&b, pk_field).expect("test data");
                let col = column(&kept, pk_field).expect("test data");
                for r in 0..kept.num_rows() {
                    live.push(match col.data_type() {
                        arrow_schema::DataType::Utf8 => {
                            Pk::VarChar(col.as_string::<i32>().value(r).to_owned())
                        }
                        _ => Pk::Int64(col.as_primitive::<Int64Type>().value(r)),
                    });
                }
            }
            live.sort();
            let mut want_live: Vec<Pk> = exp["live_pks"]
                .as_array()
                .expect("test data")
                .iter()
                .map(to_pk)
                .collect();
            want_live.sort();
            assert_eq!(live, want_live, "{version}/{name}");
        }
    }
}

#[tokio::test]
async fn insert_log_row_counts_come_from_footers() {
    let c = collection("2.3.5", "all_types");
    let mut total = 0;
    for p in &c.by_field[&0] {
        let n = InsertLog::row_count(src(p)).await.expect("test data");
        let mut log = InsertLog::open(src(p)).await.expect("test data");
        let mut decoded = 0;
        while let Some(a) = log.next_array().await.expect("test data") {
            decoded += a.len() as u64;
        }
        assert_eq!(n, decoded);
        total += n;
    }
    assert_eq!(total, 308);
}
