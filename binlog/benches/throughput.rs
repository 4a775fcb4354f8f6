//! Decode throughput on generated data: `cargo bench -p milvault-binlog` (not run in CI).
//!
//! Writes a v1 segment (row id, timestamp, int64 pk, varchar, 128-dim float vector) and a
//! JSON delete log with our writers, then times: full aligned decode, the cheap pk+ts
//! live count, and delete-log parsing. Prints MB/s of file bytes read.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use arrow_array::{ArrayRef, Int64Array, StringArray};
use milvault_binlog::write::{InsertLogSpec, LogIds, write_delta_log, write_insert_log};
use milvault_binlog::{
    ByteSource, DataType, DeleteEntry, DeleteSet, DeltaEncoding, MemSource, Pk, Segment,
    SegmentFiles, read_delta_log,
};

const ROWS_PER_FILE: usize = 50_000;
const FILES: usize = 4;
const DIM: i32 = 128;
const TS0: u64 = 449_885_066_469_376_001;

fn spec(dt: DataType, field: i64) -> InsertLogSpec {
    InsertLogSpec {
        ids: LogIds::new(1, 2, 3, field),
        data_type: dt,
        start_ts: TS0,
        end_ts: TS0 + 1,
        nullable: None,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut fields: BTreeMap<i64, Vec<Arc<dyn ByteSource>>> = BTreeMap::new();
    let mut total_bytes = 0usize;
    let mut pkts_bytes = 0usize;
    for f in 0..FILES {
        let base = (f * ROWS_PER_FILE) as i64;
        let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(
            base..base + ROWS_PER_FILE as i64,
        ));
        let ts: ArrayRef = Arc::new(Int64Array::from_iter_values(
            (0..ROWS_PER_FILE as i64).map(|i| (TS0 as i64) + i),
        ));
        let s: ArrayRef = Arc::new(StringArray::from_iter_values(
            (0..ROWS_PER_FILE).map(|i| format!("row-{}", base as usize + i)),
        ));
        let mut vb = FixedSizeListBuilder::new(Float32Builder::new(), DIM);
        for i in 0..ROWS_PER_FILE {
            for j in 0..DIM {
                vb.values().append_value((i as f32) * 0.001 + j as f32);
            }
            vb.append(true);
        }
        let vec: ArrayRef = Arc::new(vb.finish());
        for (field, dt, col) in [
            (0, DataType::Int64, &ids),
            (1, DataType::Int64, &ts),
            (100, DataType::Int64, &ids),
            (101, DataType::VarChar, &s),
            (102, DataType::FloatVector, &vec),
        ] {
            let b = write_insert_log(&spec(dt, field), col).expect("write");
            total_bytes += b.len();
            if field == 1 || field == 100 {
                pkts_bytes += b.len();
            }
            fields
                .entry(field)
                .or_default()
                .push(Arc::new(MemSource::new(format!("f{field}/{f}"), b)));
        }
    }
    let rows = (FILES * ROWS_PER_FILE) as u64;
    let seg = Segment::new("bench", SegmentFiles::V1 { fields });
    let deletes: Vec<DeleteEntry> = (0..100_000)
        .map(|i| DeleteEntry {
            pk: Pk::Int64(i * 2),
            ts: TS0 + 10,
        })
        .collect();
    let delta =
        write_delta_log(&LogIds::new(1, 2, 3, -1), &deletes, DeltaEncoding::V1Json).expect("delta");
    let mb = |b: usize, secs: f64| b as f64 / 1e6 / secs;

    rt.block_on(async {
        let t = Instant::now();
        let mut reader = seg.batches(None).await.expect("open");
        let mut n = 0u64;
        while let Some(b) = reader.next_batch().await.expect("batch") {
            n += b.num_rows() as u64;
        }
        let s = t.elapsed().as_secs_f64();
        assert_eq!(n, rows);
        println!(
            "full decode: {rows} rows, {:.1} MB files in {s:.3}s = {:.1} MB/s, {:.0} rows/s",
            total_bytes as f64 / 1e6,
            mb(total_bytes, s),
            rows as f64 / s
        );

        let t = Instant::now();
        let log = read_delta_log(Arc::new(MemSource::new("delta", delta.clone())))
            .await
            .expect("delta");
        let set: DeleteSet = log.entries.into_iter().collect();
        let s = t.elapsed().as_secs_f64();
        println!(
            "delete log: {} JSON rows, {:.2} MB in {s:.3}s = {:.1} MB/s, {:.0} deletes/s",
            set.len(),
            delta.len() as f64 / 1e6,
            mb(delta.len(), s),
            set.len() as f64 / s
        );

        let t = Instant::now();
        let c = set.count_live(&seg, 100).await.expect("count");
        let s = t.elapsed().as_secs_f64();
        println!(
            "live count (pk+ts only): {} live of {}, {:.1} MB read in {s:.3}s = {:.1} MB/s",
            c.live,
            c.inserted,
            pkts_bytes as f64 / 1e6,
            mb(pkts_bytes, s)
        );
    });
}
