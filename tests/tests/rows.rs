//! Milvault reads the bytes it keeps (real Milvus 2.3.5): the manifest's live rows equal
//! what the source serves (deletes and upserts included), `verify --deep` finds a
//! segment whose field files disagree and names it, an export read back with pyarrow
//! equals a query of the source row for row (vectors bit for bit), and a restore whose
//! import lands fewer rows than the manifest fails with DATA_LOSS and leaves nothing.

use milvault_binlog::write::{LogIds, write_delta_log};
use milvault_binlog::{DeleteEntry, DeltaEncoding, Pk};
use milvault_sdk::pb;
use milvault_tests::harness::{TestEnv, TestServer, assert_succeeded, run_job, unique};
use milvault_tests::milvus_data::{CollOpts, DataClient, Field, dt, dynamic_column};
use sha2::{Digest, Sha256};

fn fields() -> Vec<Field> {
    vec![
        Field::new("pk", dt::INT64).primary(),
        Field::new("b", dt::BOOL),
        Field::new("i8", dt::INT8),
        Field::new("i32", dt::INT32),
        Field::new("f", dt::FLOAT),
        Field::new("d", dt::DOUBLE),
        Field::new("s", dt::VARCHAR).param("max_length", 64),
        Field::new("j", dt::JSON),
        Field::array("ai", dt::INT64, 4),
        Field::array("as", dt::VARCHAR, 4).param("max_length", 64),
        Field::new("v", dt::FLOAT_VECTOR).param("dim", 8),
    ]
}

/// A dynamic collection in two partitions, three segments, deletes and upserts.
async fn seed(a: &DataClient, name: &str) -> anyhow::Result<usize> {
    let fields = fields();
    let opts = CollOpts {
        shards: 1,
        dynamic: true,
        properties: vec![("collection.autocompaction.enabled".into(), "false".into())],
        ..Default::default()
    };
    a.drop_collection_if_exists("default", name).await?;
    a.create_collection_with("default", name, &fields, &opts)
        .await?;
    a.create_partition("default", name, "p1").await?;
    let batch = |start: i64, n: usize| {
        let mut cols: Vec<_> = fields
            .iter()
            .map(|f| milvault_tests::milvus_data::column(f, start, n, 5))
            .collect();
        cols.push(dynamic_column(start, n));
        cols
    };
    a.insert_columns("default", name, "_default", batch(0, 300), 300)
        .await?;
    a.flush("default", name).await?;
    a.insert_columns("default", name, "p1", batch(300, 200), 200)
        .await?;
    a.flush("default", name).await?;
    a.create_index(
        "default",
        name,
        "v",
        "v_flat",
        &[("index_type", "FLAT"), ("metric_type", "L2")],
    )
    .await?;
    a.load("default", name).await?;
    a.delete("default", name, "pk in [1, 2, 3, 301, 302]")
        .await?;
    // Upserts: a delete and a newer row of the same key, in a new segment.
    let mut up = batch(10, 5);
    up.retain(|c| c.field_name != "$meta");
    up.push(dynamic_column(1010, 5));
    a.insert_columns("default", name, "_default", batch(500, 100), 100)
        .await?;
    a.delete("default", name, "pk in [10, 11, 12, 13, 14]")
        .await?;
    a.insert_columns("default", name, "_default", up, 5).await?;
    a.flush("default", name).await?;
    Ok(600 - 5)
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Rewrites the manifest so the file at `path` has `bytes`' size and checksum.
fn fix_manifest(manifest_path: &std::path::Path, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let mut m: pb::BackupManifest = serde_json::from_slice(&std::fs::read(manifest_path)?)?;
    for c in &mut m.collections {
        for s in &mut c.segments {
            for f in s.insert_logs.iter_mut().chain(s.delta_logs.iter_mut()) {
                if f.path == path {
                    f.size_bytes = bytes.len() as u64;
                    f.sha256 = sha(bytes);
                }
            }
        }
    }
    std::fs::write(manifest_path, serde_json::to_vec_pretty(&m)?)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rows_are_counted_verified_exported_and_checked_on_restore() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let name = unique("rows");
    let expected = seed(&a, &name).await?;
    let source_rows = a.rows_json("default", &name).await?;
    assert_eq!(source_rows.len(), expected, "the fixture is what it says");

    let server = TestServer::start(&env).await?;
    let c = server.client().await?;
    let backup = unique("bk");
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: backup.clone(),
            cluster: "a".into(),
            repository: "local".into(),
            collections: vec![name.clone()],
            include_rbac: false,
            ..Default::default()
        })
        .await?;
    assert_succeeded(&run_job(&c, job).await?);
    let got = c
        .get_backup(pb::GetBackupRequest {
            name: backup.clone(),
            repository: "local".into(),
        })
        .await?;
    let manifest = got.manifest.expect("manifest");
    let coll = &manifest.collections[0];
    // Exact rows: 600 inserted + 5 re-inserted, 10 deleted (5 plain, 5 upserts).
    assert!(coll.rows_counted);
    assert_eq!(coll.live_rows, expected as i64);
    assert_eq!(coll.row_count, 605, "inserted rows before deletes");
    let check = coll.row_check.clone().expect("row check");
    assert_eq!(check.method(), pb::RowCheckMethod::CountStar);
    assert_eq!(check.source_rows_before, expected as i64);
    assert!(!check.changed);
    let by_partition: i64 = coll.partitions.iter().map(|p| p.live_rows).sum();
    assert_eq!(by_partition, expected as i64);
    assert_eq!(
        coll.partitions
            .iter()
            .find(|p| p.name == "p1")
            .map(|p| p.live_rows),
        Some(198)
    );
    let summary = got.summary.expect("summary");
    assert_eq!(summary.row_count, expected as i64);

    // Deep verify, clean: rows per collection reported.
    let job = c
        .verify_backup(pb::VerifyBackupRequest {
            name: backup.clone(),
            repository: "local".into(),
            deep: true,
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    let report = done.report.expect("report");
    assert_eq!(report.collections[0].rows, expected as i64);

    // Export, read back with pyarrow: equal to the source, row for row.
    let out = tempfile::tempdir()?;
    let job = c
        .export_backup(pb::ExportBackupRequest {
            name: backup.clone(),
            repository: "local".into(),
            collections: vec![name.clone()],
            destination: out.path().display().to_string(),
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/py/parquet_rows.py");
    let py = tokio::process::Command::new(&env.python)
        .arg(script)
        .arg(out.path())
        .output()
        .await?;
    assert!(
        py.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let read: serde_json::Value = serde_json::from_slice(&py.stdout)?;
    let rows = read["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), source_rows.len());
    for (got, want) in rows.iter().zip(&source_rows) {
        assert_eq!(got, want, "an exported row differs from the source");
    }

    // A segment whose field files disagree: one field of a segment replaced by the
    // same field of another segment (its checksum fixed in the manifest, so only
    // decoding can tell). Deep verify names the segment.
    let seg_a = &coll.segments[0];
    let seg_b = coll
        .segments
        .iter()
        .find(|s| s.num_rows != seg_a.num_rows && !s.insert_logs.is_empty())
        .expect("two segments of different sizes");
    let victim = seg_a
        .insert_logs
        .iter()
        .find(|f| f.field_id == 101)
        .expect("field 101 of segment a");
    let donor = seg_b
        .insert_logs
        .iter()
        .find(|f| f.field_id == 101)
        .expect("field 101 of segment b");
    let donor_bytes = std::fs::read(server.repo_dir.join(&donor.path))?;
    let victim_path = server.repo_dir.join(&victim.path);
    let original = std::fs::read(&victim_path)?;
    std::fs::write(&victim_path, &donor_bytes)?;
    let manifest_path = server
        .repo_dir
        .join(format!("backups/{backup}/manifest.json"));
    let manifest_text = std::fs::read_to_string(&manifest_path)?;
    fix_manifest(&manifest_path, &victim.path, &donor_bytes)?;
    let job = c
        .verify_backup(pb::VerifyBackupRequest {
            name: backup.clone(),
            repository: "local".into(),
            deep: true,
        })
        .await?;
    let done = run_job(&c, job).await?;
    let err = done
        .error
        .clone()
        .expect("deep verify finds the disagreeing segment");
    assert_eq!(err.code, "DATA_LOSS", "{}", err.message);
    let seg_name = format!("segment {}", seg_a.segment_id);
    assert!(
        done.warnings.iter().any(|w| w.contains(&seg_name)),
        "{:?} / {}",
        done.warnings,
        err.message
    );
    std::fs::write(&victim_path, &original)?;
    std::fs::write(&manifest_path, &manifest_text)?;

    // An import that lands fewer rows than the manifest: one segment's delete log
    // replaced by one deleting ten more keys (checksum fixed), so Milvus imports fewer
    // rows than the backup holds live. The restore fails with DATA_LOSS and the
    // collection it created is gone.
    // The first segment (keys 0..299) holds the deletes of keys 1, 2 and 3.
    let seg = coll
        .segments
        .iter()
        .find(|s| s.num_rows == 300 && !s.delta_logs.is_empty())
        .expect("the first segment with its delete log");
    let delta = &seg.delta_logs[0];
    let mut entries = milvault_binlog::read_delta_log(std::sync::Arc::new(
        milvault_binlog::MemSource::new("d", std::fs::read(server.repo_dir.join(&delta.path))?),
    ))
    .await?
    .entries;
    let ts = entries.iter().map(|e| e.ts).max().unwrap_or(1);
    for k in 100..110 {
        entries.push(DeleteEntry {
            pk: Pk::Int64(k),
            ts,
        });
    }
    let ids = LogIds::new(coll.collection_id, seg.partition_id, seg.segment_id, -1);
    let new_delta = write_delta_log(&ids, &entries, DeltaEncoding::V1Json)?;
    std::fs::write(server.repo_dir.join(&delta.path), &new_delta)?;
    fix_manifest(&manifest_path, &delta.path, &new_delta)?;
    let target = format!("{name}_short");
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: backup.clone(),
            cluster: "a".into(),
            repository: "local".into(),
            renames: [(name.clone(), target.clone())].into_iter().collect(),
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    let err = done.error.expect("the short import is caught");
    assert_eq!(
        (err.code.as_str(), err.reason.as_str()),
        ("DATA_LOSS", "ROW_COUNT_MISMATCH"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains(&expected.to_string()),
        "{}",
        err.message
    );
    assert!(!a.has_collection("default", &target).await?);
    server.stop().await;
    Ok(())
}
