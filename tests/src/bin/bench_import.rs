//! `bench_import`: the baseline for a restore in `scripts/bench/run.sh` — Milvus's own
//! binlog import of a backup's segments, called directly, without anything milvault
//! adds around it.
//!
//! ```text
//! bench_import ADDRESS MANIFEST REPO_DIR STAGE_DIR IMPORT_ROOT SUFFIX [CONCURRENCY] [GROUPING]
//! ```
//! - `MANIFEST`: a backup's `manifest.json`; `REPO_DIR`: the repository folder its
//!   file paths are relative to.
//! - `STAGE_DIR`: the folder that is the target cluster's storage root (Milvus's local
//!   storage path, or the folder an S3 server keeps the bucket's root prefix in);
//!   `IMPORT_ROOT`: what Milvus is given in front of a staged key (that folder, with a
//!   trailing `/`, on local storage; the bucket's root prefix, e.g. `files/`, on S3).
//! - `GROUPING`: `partition` (default): one import per partition carrying all its data
//!   segments (the fewest tasks Milvus accepts, and the form the reference tool used on
//!   2.3); `segment`: one import per segment.
//!
//! Untimed: every data segment's insert and delete logs are copied to
//! `<STAGE_DIR>/bench-raw-import/<group>/{insert,delta}_log/<c>/<p>/<group>/<s>/…`, the
//! layout of `server/src/restore/staging.rs` (a group is named by its first segment).
//! Timed: create every `<name><SUFFIX>` from the backed-up Milvus schema with its
//! partitions, then `Import` with `backup=true` per group (insert and delta group
//! directories) of all collections, up to CONCURRENCY (default 4, milvault's
//! `import_concurrency`) outstanding, each polled with `GetImportState` every 100 ms:
//! the least a client of Milvus's import can spend. The staged files are removed afterwards
//! (untimed); the collections are left for `bench_load drop`. Prints one JSON line.

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

/// The segments of one import: data segments of one partition.
struct Group<'a> {
    partition_id: i64,
    segments: Vec<&'a SegmentBackup>,
}

impl Group<'_> {
    /// A group is named by its first segment.
    fn id(&self) -> i64 {
        self.segments
            .first()
            .map(|s| s.segment_id)
            .unwrap_or_default()
    }
}

/// The imports of one collection: per partition, or per segment.
fn groups(c: &CollectionBackup, per_segment: bool) -> Vec<Group<'_>> {
    let mut by_partition: BTreeMap<i64, Vec<&SegmentBackup>> = BTreeMap::new();
    for s in c.segments.iter().filter(|s| is_data_segment(s)) {
        by_partition.entry(s.partition_id).or_default().push(s);
    }
    let mut out = Vec::new();
    for (partition_id, segments) in by_partition {
        if per_segment {
            out.extend(segments.into_iter().map(|s| Group {
                partition_id,
                segments: vec![s],
            }));
        } else {
            out.push(Group {
                partition_id,
                segments,
            });
        }
    }
    out
}

fn staged(c: &CollectionBackup, g: &Group<'_>) -> Staged {
    let dir = format!("{STAGE_PREFIX}/{}/", g.id());
    let group = format!("{}/{}/{}/", c.collection_id, g.partition_id, g.id());
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

fn stage(m: &BackupManifest, repo: &Path, stage_dir: &Path, per_segment: bool) -> Result<u64> {
    let mut bytes = 0;
    for c in &m.collections {
        for g in groups(c, per_segment) {
            let st = staged(c, &g);
            for s in &g.segments {
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
    }
    Ok(bytes)
}

/// Waits for one import task, asking every 100 ms (so that the baseline loses at most
/// that much per import to waiting).
async fn wait_import(c: &DataClient, task: i64) -> Result<i64> {
    let pause = Duration::from_millis(100);
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
    }
}

async fn import_group(
    c: &DataClient,
    col: &CollectionBackup,
    target: &str,
    partition: &str,
    st: Staged,
    import_root: &str,
) -> Result<i64> {
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

/// Creates `<name><suffix>` with the backed-up schema and partitions; returns the
/// target name and the partition names by backed-up partition id.
async fn create_target(
    c: &DataClient,
    col: &CollectionBackup,
    suffix: &str,
) -> Result<(String, BTreeMap<i64, String>)> {
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
    Ok((target, names))
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
            "usage: bench_import ADDRESS MANIFEST REPO_DIR STAGE_DIR IMPORT_ROOT SUFFIX [CONCURRENCY] [partition|segment]"
        );
    };
    let concurrency: usize = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(4);
    let grouping = rest.get(1).map(String::as_str).unwrap_or("partition");
    let per_segment = match grouping {
        "partition" => false,
        "segment" => true,
        other => bail!("grouping must be partition or segment, not {other}"),
    };
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
    let staged_bytes = stage(&m, Path::new(repo), &stage_dir, per_segment)?;
    let stage_seconds = t.elapsed().as_secs_f64();

    let c = DataClient::connect(address).await?;
    let t = Instant::now();
    let mut targets = Vec::with_capacity(m.collections.len());
    for col in &m.collections {
        let created = create_target(&c, col, suffix)
            .await
            .with_context(|| format!("creating {}.{}{suffix}", col.database, col.name))?;
        targets.push(created);
    }
    let (mut jobs, mut segments) = (Vec::new(), 0);
    for (col, (target, names)) in m.collections.iter().zip(&targets) {
        for g in groups(col, per_segment) {
            segments += g.segments.len();
            let partition = names
                .get(&g.partition_id)
                .with_context(|| format!("segments name unknown partition {}", g.partition_id))?;
            let st = staged(col, &g);
            let c = &c;
            jobs.push(async move {
                import_group(c, col, target, partition, st, import_root)
                    .await
                    .with_context(|| format!("importing into {}.{target}", col.database))
            });
        }
    }
    let imports = jobs.len();
    let rows: i64 = futures::stream::iter(jobs)
        .buffer_unordered(concurrency)
        .try_collect::<Vec<i64>>()
        .await?
        .iter()
        .sum();
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
            "grouping": grouping,
            "imports": imports,
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
