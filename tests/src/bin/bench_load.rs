//! `bench_load`: fills a Milvus with benchmark data for `scripts/bench/run.sh`, and
//! drops what a benchmark round restored.
//!
//! ```text
//! bench_load main   ADDRESS [SCALE]     # ~1.2 GiB × SCALE: four collections in two
//!                                       # databases, 768-d and 128-d float vectors,
//!                                       # partitions, many segments, ~1% deleted
//! bench_load extra  ADDRESS GIB         # GIB more GiB: 768-d collections bench_big_N
//! bench_load tiny   ADDRESS             # default.bench_tiny: 1,000 rows (many small
//!                                       # backups of it fill a repository's listing)
//! bench_load drop   ADDRESS SUFFIX      # drop every collection whose name ends in SUFFIX
//! ```
//!
//! Segments: auto-compaction is off and the loader flushes after every `FLUSH_BYTES`
//! inserted per collection, so each collection holds many sealed segments (one per
//! shard per flush) whatever Milvus's own seal policy. Deletes come after the inserts
//! and a last flush, so flushed segments carry delete logs. No vector index is built
//! (index builds would dominate two cores and milvault does not copy index files).
//! Prints one JSON line: collections, rows inserted, rows deleted, raw bytes sent.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use milvault_proto::milvus::milvus as pb;
use milvault_tests::milvus_data::{DataClient, Field, dt};

/// Bytes inserted into one collection between two flushes (one segment per shard).
const FLUSH_BYTES: usize = 48 << 20;
/// Bytes per insert request.
const BATCH_BYTES: usize = 8 << 20;
/// The databases the loader uses (`drop` looks in these).
const DATABASES: [&str; 2] = ["default", "bench"];

/// One benchmark collection.
struct Spec {
    db: &'static str,
    name: String,
    fields: Vec<Field>,
    shards: i32,
    /// Partitions besides `_default`; rows go round-robin over all of them by flush.
    partitions: Vec<String>,
    rows: usize,
    /// Approximate bytes of one row as sent (vector + scalars).
    row_bytes: usize,
    /// Every `delete_every`-th row is deleted (0: none).
    delete_every: usize,
    seed: u64,
}

fn main_set(scale: f64) -> Vec<Spec> {
    let rows = |n: f64| (n * scale).round() as usize;
    vec![
        Spec {
            db: "default",
            name: "bench_v768_a".into(),
            fields: vec![
                Field::new("pk", dt::INT64).primary(),
                Field::new("score", dt::FLOAT),
                Field::new("title", dt::VARCHAR).param("max_length", 128),
                Field::new("vec", dt::FLOAT_VECTOR).param("dim", 768),
            ],
            shards: 2,
            partitions: vec![],
            rows: rows(150_000.0),
            row_bytes: 768 * 4 + 8 + 4 + 32,
            delete_every: 97,
            seed: 11,
        },
        Spec {
            db: "bench",
            name: "bench_v768_b".into(),
            fields: vec![
                Field::new("pk", dt::VARCHAR)
                    .primary()
                    .param("max_length", 32),
                Field::new("n", dt::INT64),
                Field::new("vec", dt::FLOAT_VECTOR).param("dim", 768),
            ],
            shards: 2,
            partitions: vec!["p1".into(), "p2".into()],
            rows: rows(100_000.0),
            row_bytes: 768 * 4 + 8 + 12,
            delete_every: 101,
            seed: 12,
        },
        Spec {
            db: "default",
            name: "bench_v128_a".into(),
            fields: vec![
                Field::new("pk", dt::INT64).primary(),
                Field::new("d", dt::DOUBLE),
                Field::new("meta", dt::JSON),
                Field::new("vec", dt::FLOAT_VECTOR).param("dim", 128),
            ],
            shards: 2,
            partitions: vec![],
            rows: rows(420_000.0),
            row_bytes: 128 * 4 + 8 + 8 + 50,
            delete_every: 89,
            seed: 13,
        },
        Spec {
            db: "bench",
            name: "bench_v128_b".into(),
            fields: vec![
                Field::new("pk", dt::INT64).primary(),
                Field::new("i", dt::INT32),
                Field::new("flag", dt::BOOL),
                Field::new("label", dt::VARCHAR).param("max_length", 64),
                Field::new("vec", dt::FLOAT_VECTOR).param("dim", 128),
            ],
            shards: 1,
            partitions: vec!["p1".into()],
            rows: rows(300_000.0),
            row_bytes: 128 * 4 + 8 + 4 + 1 + 24,
            delete_every: 0,
            seed: 14,
        },
    ]
}

fn extra_set(gib: f64) -> Vec<Spec> {
    let row_bytes = 768 * 4 + 8;
    let total = (gib * (1u64 << 30) as f64 / row_bytes as f64) as usize;
    // About 1 GiB per collection.
    let per = (1usize << 30) / row_bytes;
    let mut out = Vec::new();
    let mut left = total;
    let mut i = 0;
    while left > 0 {
        let rows = left.min(per);
        out.push(Spec {
            db: "default",
            name: format!("bench_big_{i}"),
            fields: vec![
                Field::new("pk", dt::INT64).primary(),
                Field::new("vec", dt::FLOAT_VECTOR).param("dim", 768),
            ],
            shards: 2,
            partitions: vec![],
            rows,
            row_bytes,
            delete_every: 0,
            seed: 100 + i as u64,
        });
        left -= rows;
        i += 1;
    }
    out
}

fn tiny_set() -> Vec<Spec> {
    vec![Spec {
        db: "default",
        name: "bench_tiny".into(),
        fields: vec![
            Field::new("pk", dt::INT64).primary(),
            Field::new("vec", dt::FLOAT_VECTOR).param("dim", 128),
        ],
        shards: 1,
        partitions: vec![],
        rows: 1000,
        row_bytes: 128 * 4 + 8,
        delete_every: 0,
        seed: 99,
    }]
}

/// Rows written and deleted, for the summary line.
#[derive(Default)]
struct Loaded {
    rows: usize,
    deleted: usize,
    bytes: usize,
}

async fn load(c: &DataClient, s: &Spec) -> Result<Loaded> {
    c.create_database(s.db).await?;
    c.drop_collection_if_exists(s.db, &s.name).await?;
    c.create_collection(
        s.db,
        &s.name,
        &s.fields,
        s.shards,
        &[("collection.autocompaction.enabled", "false")],
    )
    .await?;
    for p in &s.partitions {
        c.create_partition(s.db, &s.name, p).await?;
    }
    let parts: Vec<String> = std::iter::once("_default".to_owned())
        .chain(s.partitions.iter().cloned())
        .collect();
    let batch = (BATCH_BYTES / s.row_bytes).max(1);
    let per_flush = (FLUSH_BYTES / s.row_bytes).max(batch);
    let (mut start, mut since_flush, mut flushes) = (0usize, 0usize, 0usize);
    while start < s.rows {
        let n = batch.min(s.rows - start);
        let part = &parts[flushes % parts.len()];
        c.insert(s.db, &s.name, part, &s.fields, start as i64, n, s.seed)
            .await
            .with_context(|| format!("insert into {}.{}", s.db, s.name))?;
        start += n;
        since_flush += n;
        if since_flush >= per_flush || start == s.rows {
            c.flush(s.db, &s.name).await?;
            since_flush = 0;
            flushes += 1;
        }
    }
    let mut deleted = 0;
    if s.delete_every > 0 {
        let varchar = s.fields.iter().any(|f| f.primary && f.dtype == dt::VARCHAR);
        let keys: Vec<usize> = (0..s.rows).step_by(s.delete_every).collect();
        for chunk in keys.chunks(1000) {
            let list: Vec<String> = chunk
                .iter()
                .map(|i| {
                    if varchar {
                        // The key `column` generates for a VARCHAR primary key.
                        format!("\"key-{i:06}\"")
                    } else {
                        i.to_string()
                    }
                })
                .collect();
            c.delete(s.db, &s.name, &format!("pk in [{}]", list.join(",")))
                .await?;
        }
        deleted = keys.len();
        c.flush(s.db, &s.name).await?;
    }
    Ok(Loaded {
        rows: s.rows,
        deleted,
        bytes: s.rows * s.row_bytes,
    })
}

async fn fill(address: &str, set: Vec<Spec>) -> Result<()> {
    let c = DataClient::connect(address).await?;
    let t = Instant::now();
    // Two collections at a time: Milvus, not the loader, is the bottleneck.
    let mut total = Loaded::default();
    for pair in set.chunks(2) {
        let results = futures::future::join_all(pair.iter().map(|s| load(&c, s))).await;
        for (s, r) in pair.iter().zip(results) {
            let l = r.with_context(|| format!("loading {}.{}", s.db, s.name))?;
            eprintln!(
                "bench_load: {}.{}: {} rows, {} deleted, ~{} MiB",
                s.db,
                s.name,
                l.rows,
                l.deleted,
                l.bytes >> 20
            );
            total.rows += l.rows;
            total.deleted += l.deleted;
            total.bytes += l.bytes;
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "collections": set.iter().map(|s| format!("{}.{}", s.db, s.name)).collect::<Vec<_>>(),
            "rows": total.rows,
            "deleted": total.deleted,
            "bytes_sent": total.bytes,
            "seconds": t.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

async fn drop_suffix(address: &str, suffix: &str) -> Result<()> {
    if suffix.is_empty() {
        bail!("drop needs a non-empty suffix");
    }
    let c = DataClient::connect(address).await?;
    let mut n = 0;
    for db in DATABASES {
        let mut req = tonic::Request::new(pb::ShowCollectionsRequest {
            db_name: db.into(),
            ..Default::default()
        });
        req.metadata_mut()
            .insert("dbname", db.parse().context("database name")?);
        let resp = match c.raw().show_collections(req).await {
            Ok(r) => r.into_inner(),
            // A database that does not exist has nothing to drop.
            Err(_) => continue,
        };
        for name in resp.collection_names {
            if name.ends_with(suffix) {
                c.drop_collection_if_exists(db, &name).await?;
                n += 1;
            }
        }
    }
    eprintln!("bench_load: dropped {n} collections ending in {suffix}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: f64| -> Result<f64> {
        args.get(i)
            .map(|s| {
                s.parse::<f64>()
                    .with_context(|| format!("not a number: {s}"))
            })
            .unwrap_or(Ok(default))
    };
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["main", address, ..] => fill(address, main_set(num(2, 1.0)?)).await,
        ["extra", address, _] => fill(address, extra_set(num(2, 3.0)?)).await,
        ["tiny", address] => fill(address, tiny_set()).await,
        ["drop", address, suffix] => drop_suffix(address, suffix).await,
        _ => bail!(
            "usage: bench_load main ADDRESS [SCALE] | extra ADDRESS GIB | tiny ADDRESS | drop ADDRESS SUFFIX"
        ),
    }
}
