//! Milvus versions that cannot run here (2.2 before `Connect`, 2.4, 2.6.8+), checked
//! against an in-process fake `MilvusService` that records what Milvault sends: the
//! version gates pick the right RPCs, GC pause style and import options.

use milvault_sdk::pb;
use milvault_tests::fake_milvus::FakeMilvus;
use milvault_tests::harness::{Minimal, MinimalCluster, TestServer, assert_succeeded, run_job};

struct Setup {
    fake: FakeMilvus,
    server: TestServer,
    data: std::path::PathBuf,
}

/// A fake of `version` holding collection `c1` (one segment with files on a local
/// folder), and a milvault-server pointed at it.
async fn setup(version: &str, partition_key: bool) -> anyhow::Result<Setup> {
    let fake = FakeMilvus::new(version);
    let cid = fake.add_collection("c1", partition_key);
    let addr = fake.serve().await?;
    let mgmt = fake.serve_management().await?;
    let data = tempfile::tempdir()?;
    for field in [0, 1, 100, 101, 102] {
        let dir = data.path().join(format!("insert_log/{cid}/2/3/{field}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("9"), format!("binlog of field {field}"))?;
    }
    let delta = data.path().join(format!("delta_log/{cid}/2/3"));
    std::fs::create_dir_all(&delta)?;
    std::fs::write(delta.join("8"), "deletes")?;
    let data_path = data.path().to_path_buf();
    let config = Minimal {
        clusters: vec![MinimalCluster {
            name: "fake".into(),
            address: addr,
            management: Some(mgmt),
            root: data_path.clone(),
            extra: String::new(),
        }],
        ..Default::default()
    };
    let server = TestServer::start_minimal(&config, vec![data]).await?;
    Ok(Setup {
        fake,
        server,
        data: data_path,
    })
}

async fn backup_and_restore(s: &Setup) -> anyhow::Result<(pb::Job, pb::Job)> {
    let c = s.server.client().await?;
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: "b1".into(),
            ..Default::default()
        })
        .await?;
    let backup = run_job(&c, job).await?;
    assert_succeeded(&backup);
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: "b1".into(),
            renames: [("c1".to_string(), "c1r".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        })
        .await?;
    let restore = run_job(&c, job).await?;
    assert_succeeded(&restore);
    Ok((backup, restore))
}

#[tokio::test]
async fn milvus_2_4_pauses_gc_globally_and_skips_the_disk_quota_on_import() -> anyhow::Result<()> {
    let s = setup("v2.4.10", false).await?;
    let (backup, _) = backup_and_restore(&s).await?;
    assert!(backup.warnings.is_empty(), "{:?}", backup.warnings);
    let rec = s.fake.recorded();
    assert_eq!(
        rec.http,
        vec![
            "/management/datacoord/garbage_collection/pause?pause_seconds=600".to_string(),
            "/management/datacoord/garbage_collection/resume".to_string()
        ]
    );
    assert_eq!(rec.imports.len(), 1);
    let imp = &rec.imports[0];
    assert_eq!(imp.collection_name, "c1r");
    assert_eq!(imp.partition_name, "_default");
    let opts: Vec<(String, String)> = imp
        .options
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect();
    assert!(opts.contains(&("backup".into(), "true".into())), "{opts:?}");
    assert!(
        opts.contains(&("skip_disk_quota_check".into(), "true".into())),
        "{opts:?}"
    );
    // Local storage: absolute directory paths, insert then delta, group dir = segment.
    assert_eq!(imp.files.len(), 2);
    let root = s.data.display().to_string();
    assert!(
        imp.files[0].starts_with(&root)
            && imp.files[0].contains("/insert_log/")
            && imp.files[0].ends_with("/3/"),
        "{:?}",
        imp.files
    );
    assert!(
        imp.files[1].contains("/delta_log/") && imp.files[1].ends_with("/3/"),
        "{:?}",
        imp.files
    );
    // Staged files are gone afterwards.
    assert!(
        !s.data
            .join("milvault-staging")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    );
    Ok(())
}

#[tokio::test]
async fn milvus_2_6_8_pauses_gc_per_collection_with_a_ticket() -> anyhow::Result<()> {
    let s = setup("v2.6.8", false).await?;
    backup_and_restore(&s).await?;
    let rec = s.fake.recorded();
    assert_eq!(rec.http.len(), 2, "{:?}", rec.http);
    assert!(
        rec.http[0].contains("pause?pause_seconds=600&collection_id="),
        "{:?}",
        rec.http
    );
    assert_eq!(
        rec.http[1],
        "/management/datacoord/garbage_collection/resume?ticket=t-123"
    );
    Ok(())
}

#[tokio::test]
async fn milvus_2_4_imports_partition_key_collections_directly() -> anyhow::Result<()> {
    let s = setup("v2.4.10", true).await?;
    let (_, restore) = backup_and_restore(&s).await?;
    let rec = s.fake.recorded();
    // One collection created (no temporary twin), binlogs imported into it.
    assert_eq!(rec.creates.len(), 1);
    assert_eq!(rec.creates[0].collection_name, "c1r");
    assert_eq!(rec.imports.len(), 1);
    let report = restore.report.expect("report");
    assert_eq!(
        report.collections[0].method,
        pb::RestoreMethod::BinlogImport as i32
    );
    Ok(())
}

#[tokio::test]
async fn milvus_2_2_without_connect_falls_back_and_uses_describe_for_aliases() -> anyhow::Result<()>
{
    let s = setup("v2.2.8", false).await?;
    let (backup, _) = backup_and_restore(&s).await?;
    let rec = s.fake.recorded();
    assert!(
        rec.calls.contains(&"GetVersion".to_string()),
        "{:?}",
        rec.calls
    );
    assert!(
        !rec.calls.contains(&"ListAliases".to_string()),
        "2.2 has no ListAliases: {:?}",
        rec.calls
    );
    assert!(
        rec.http.is_empty(),
        "no GC pause endpoint on 2.2: {:?}",
        rec.http
    );
    assert!(
        backup.warnings.iter().any(|w| w.contains("GC-pause")),
        "{:?}",
        backup.warnings
    );
    let opts: Vec<&str> = rec.imports[0]
        .options
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    assert_eq!(opts, vec!["backup"]);
    Ok(())
}

#[tokio::test]
async fn l0_segments_are_refused_loudly() -> anyhow::Result<()> {
    let s = setup("v2.4.10", false).await?;
    s.fake.set_segment_level(1);
    let c = s.server.client().await?;
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: "b1".into(),
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    let err = done.error.expect("refused");
    assert_eq!(err.reason, "UNSUPPORTED");
    assert!(err.message.contains("L0"), "{}", err.message);
    let listed = c
        .list_backups(pb::ListBackupsRequest {
            repository: String::new(),
            ..Default::default()
        })
        .await?;
    assert!(
        listed
            .iter()
            .all(|b| b.state != pb::BackupState::Complete as i32)
    );
    Ok(())
}
