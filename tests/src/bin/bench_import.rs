//! `bench_import`: the baseline for a restore in `scripts/bench/run.sh` — Milvus's own
//! binlog import of a backup's segments, called directly, as milvault's restore calls
//! it (`server/src/restore/import.rs`), without anything milvault adds around it.
//!
//! ```text
//! bench_import ADDRESS MANIFEST REPO_DIR STAGE_DIR IMPORT_ROOT SUFFIX [CONCURRENCY]
//! ```
//! - `MANIFEST`: a backup's `manifest.json`; `REPO_DIR`: the repository folder its
//!   file paths are relative to.
//! - `STAGE_DIR`: the folder that is the target cluster's storage root (Milvus's local
//!   storage path, or the folder an S3 server keeps the bucket's root prefix in);
//!   `IMPORT_ROOT`: what Milvus is given in front of a staged key (that folder, with a
//!   trailing `/`, on local storage; the bucket's root prefix, e.g. `files/`, on S3).
//!
//! Untimed: every data segment's insert and delete logs are copied to
//! `<STAGE_DIR>/bench-raw-import/<segment>/{insert,delta}_log/<c>/<p>/<s>/<s>/…`, the
//! layout of `restore/staging.rs`. Timed: per collection in turn (as a restore does),
//! create `<name><SUFFIX>` from the backed-up Milvus schema with its partitions, then
//! `Import` with `backup=true` per segment (insert and delta group directories), up to
//! CONCURRENCY (default 4, milvault's `import_concurrency`) outstanding, each waited
//! for with `GetImportState` polled like the server (200 ms doubling to 2 s). The
//! staged files are removed afterwards (untimed); the collections are left for
//! `bench_load drop`. Prints one JSON line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use milvault_proto::milvault::v1::{BackupFile, BackupManifest, CollectionBackup, SegmentBackup};
use milvault_proto::milvus::common::{ImportState, KeyValuePair};
use milvault_proto::milvus::milvus as pb;
use milvault_proto::milvus::schema as ms;
use milvault_tests::milvus_data::DataClient;
use prost::Message;

const STAGE_PREFIX: &str = "bench-raw-import";

fn req<T>(db: &str, msg: T) -> Result<tonic::Request<T>> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("dbname", db.parse().context("database name")?);
    Ok(r)
}

fn check(op: &str, s: Option<&milvault_proto::milvus::common::Status>) -> Result<()> {
    match s {
        Some(s) if s.code != 0 || s.error_code != 0 => {
            bail!(
                "{op}: {} (code {}, error_code {})",
                s.reason,
                s.code,
                s.error_code
            )
        }
        _ => Ok(()),
    }
}

fn is_data_segment(s: &SegmentBackup) -> bool {
    !s.insert_logs.is_empty()
}

/// Staged directories of one segment, relative to the storage root.
struct Staged {
    insert_dir: String,
    delta_dir: String,
}

fn staged(c: &CollectionBackup, s: &SegmentBackup) -> Staged {
    let dir = format!("{STAGE_PREFIX}/{}/", s.segment_id);
    let group = format!("{}/{}/{}/", c.collection_id, s.partition_id, s.segment_id);
    Staged {
        insert_dir: format!("{dir}insert_log/{group}"),
        delta_dir: format!("{dir}delta_log/{group}"),
    }
}

/// `kind/c/p/s/rest` → `<group dir><s>/rest`, as `StagedSegment::key_of`.
fn staged_key(dir: &str, s: &SegmentBackup, f: &BackupFile, kind: &str) -> String {
    let rest = f
        .source_key
        .strip_prefix(kind)
        .and_then(|r| r.splitn(4, '/').nth(3))
        .unwrap_or("");
    format!("{dir}{}/{rest}", s.segment_id)
}

fn stage(m: &BackupManifest, repo: &Path, stage_dir: &Path) -> Result<u64> {
    let mut bytes = 0;
    for c in &m.collections {
        for s in c.segments.iter().filter(|s| is_data_segment(s)) {
            let st = staged(c, s);
            let files = s
                .insert_logs
                .iter()
                .map(|f| (f, staged_key(&st.insert_dir, s, f, "insert_log/")))
                .chain(
                    s.delta_logs
                        .iter()
                        .map(|f| (f, staged_key(&st.delta_dir, s, f, "delta_log/"))),
                );
            for (f, key) in files {
                let to = stage_dir.join(&key);
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                bytes += std::fs::copy(repo.join(&f.path), &to)
                    .with_context(|| format!("staging {} to {}", f.path, to.display()))?;
            }
        }
    }
    Ok(bytes)
}

/// Waits for one import task like the server: 200 ms, doubling up to 2 s.
async fn wait_import(c: &DataClient, task: i64) -> Result<i64> {
    let mut pause = Duration::from_millis(200);
    loop {
        let st = c
            .raw()
            .get_import_state(pb::GetImportStateRequest { task })
            .await?
            .into_inner();
        check("GetImportState", st.status.as_ref())?;
        match ImportState::try_from(st.state) {
            Ok(ImportState::ImportCompleted) => return Ok(st.row_count),
            Ok(ImportState::ImportFailed | ImportState::ImportFailedAndCleaned) => {
                let why = st
                    .infos
                    .iter()
                    .find(|kv| kv.key == "failed_reason")
                    .map(|kv| kv.value.clone())
                    .unwrap_or_default();
                bail!("import task {task} failed: {why}");
            }
            _ => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

async fn import_segment(
    c: &DataClient,
    col: &CollectionBackup,
    target: &str,
    partition: &str,
    s: &SegmentBackup,
    import_root: &str,
) -> Result<i64> {
    let st = staged(col, s);
    let r = c
        .raw()
        .import(req(
            &col.database,
            pb::ImportRequest {
                db_name: col.database.clone(),
                collection_name: target.to_owned(),
                partition_name: partition.to_owned(),
                files: vec![
                    format!("{import_root}{}", st.insert_dir),
                    format!("{import_root}{}", st.delta_dir),
                ],
                options: vec![KeyValuePair {
                    key: "backup".into(),
                    value: "true".into(),
                }],
                ..Default::default()
            },
        )?)
        .await?
        .into_inner();
    check("Import", r.status.as_ref())?;
    let mut rows = 0;
    for task in r.tasks {
        rows += wait_import(c, task).await?;
    }
    Ok(rows)
}

async fn restore_collection(
    c: &DataClient,
    col: &CollectionBackup,
    suffix: &str,
    import_root: &str,
    concurrency: usize,
) -> Result<(usize, i64)> {
    let target = format!("{}{suffix}", col.name);
    let db = col.database.as_str();
    // The backed-up Milvus schema, as the server creates it (`schema_rules::for_create`).
    let mut schema = ms::CollectionSchema::decode(col.milvus_schema.as_slice())
        .context("decoding the backed-up Milvus schema")?;
    schema.name = target.clone();
    schema.fields.retain(|f| !f.is_dynamic);
    schema.db_name.clear();
    let r = c
        .raw()
        .create_collection(req(
            db,
            pb::CreateCollectionRequest {
                db_name: db.to_owned(),
                collection_name: target.clone(),
                schema: schema.encode_to_vec(),
                shards_num: col.shards_num,
                properties: col
                    .properties
                    .iter()
                    .map(|kv| KeyValuePair {
                        key: kv.key.clone(),
                        value: kv.value.clone(),
                    })
                    .collect(),
                ..Default::default()
            },
        )?)
        .await?
        .into_inner();
    check("CreateCollection", Some(&r))?;
    let mut names = BTreeMap::new();
    for p in &col.partitions {
        if p.name != "_default" {
            c.create_partition(db, &target, &p.name).await?;
        }
        names.insert(p.partition_id, p.name.clone());
    }
    let segments: Vec<&SegmentBackup> =
        col.segments.iter().filter(|s| is_data_segment(s)).collect();
    let mut imports = Vec::with_capacity(segments.len());
    for s in &segments {
        let partition = names
            .get(&s.partition_id)
            .with_context(|| format!("segment {} names unknown partition", s.segment_id))?;
        let target = target.as_str();
        imports
            .push(async move { import_segment(c, col, target, partition, s, import_root).await });
    }
    let rows: Vec<i64> = futures::stream::iter(imports)
        .buffer_unordered(concurrency)
        .try_collect()
        .await?;
    Ok((segments.len(), rows.iter().sum()))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [
        address,
        manifest,
        repo,
        stage_dir,
        import_root,
        suffix,
        rest @ ..,
    ] = args.as_slice()
    else {
        bail!(
            "usage: bench_import ADDRESS MANIFEST REPO_DIR STAGE_DIR IMPORT_ROOT SUFFIX [CONCURRENCY]"
        );
    };
    let concurrency: usize = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(4);
    let m: BackupManifest = serde_json::from_slice(
        &std::fs::read(manifest).with_context(|| format!("reading {manifest}"))?,
    )
    .context("decoding the manifest")?;
    let stage_dir = PathBuf::from(stage_dir);
    let staging_root = stage_dir.join(STAGE_PREFIX);
    if staging_root.exists() {
        std::fs::remove_dir_all(&staging_root)?;
    }

    let t = Instant::now();
    let staged_bytes = stage(&m, Path::new(repo), &stage_dir)?;
    let stage_seconds = t.elapsed().as_secs_f64();

    let c = DataClient::connect(address).await?;
    let t = Instant::now();
    let (mut segments, mut rows) = (0, 0);
    for col in &m.collections {
        let (n, r) = restore_collection(&c, col, suffix, import_root, concurrency)
            .await
            .with_context(|| format!("importing {}.{}", col.database, col.name))?;
        segments += n;
        rows += r;
    }
    let seconds = t.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&staging_root)?;

    let live: i64 = m.collections.iter().map(|c| c.live_rows).sum();
    println!(
        "{}",
        serde_json::json!({
            "seconds": seconds,
            "stage_seconds": stage_seconds,
            "staged_bytes": staged_bytes,
            "collections": m.collections.len(),
            "segments": segments,
            "rows": rows,
            "manifest_live_rows": live,
        })
    );
    if rows != live {
        bail!("Milvus imported {rows} rows, the manifest holds {live} live rows");
    }
    Ok(())
}
