//! Issue 3's round trip on real Milvus 2.3.5: back up collections of every kind from
//! Milvus A (local storage) into a local-folder repository, restore them into
//! Milvus B (S3 storage, another network namespace) and into A under a suffix, and
//! compare schema, partitions, indexes, load state and every row.

use milvault_sdk::pb;
use milvault_tests::complete::manifest_files;
use milvault_tests::fixtures::{compare, seed, standard};
use milvault_tests::harness::{TestEnv, TestServer, assert_succeeded, run_job, unique};
use milvault_tests::milvus_data::DataClient;
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_then_restore_into_another_milvus_and_under_a_suffix() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let b = DataClient::connect(&env.b_addr).await?;
    let prefix = format!("{}_", unique("rt"));
    let fixtures = standard(&prefix);
    for fx in &fixtures {
        seed(&a, "default", fx, 42).await?;
        // The source really holds what the fixture says, so equal dumps mean something.
        a.load("default", &fx.name).await?;
        assert_eq!(
            a.dump("default", &fx.name).await?.len(),
            fx.expected_rows(),
            "{}",
            fx.name
        );
        if !fx.load {
            a.release("default", &fx.name).await?;
        }
    }
    let server = TestServer::start(&env).await?;
    let client = server.client().await?;
    let names: Vec<String> = fixtures.iter().map(|f| f.name.clone()).collect();
    let backup = unique("bk");

    let job = client
        .create_backup(pb::CreateBackupRequest {
            name: backup.clone(),
            cluster: "a".into(),
            repository: "local".into(),
            collections: vec![names.join(",")],
            include_rbac: false,
            ..Default::default()
        })
        .await?;
    let done = run_job(&client, job).await?;
    assert_succeeded(&done);

    // The manifest lists every collection, and every file's checksum matches its bytes.
    let got = client
        .get_backup(pb::GetBackupRequest {
            name: backup.clone(),
            repository: "local".into(),
        })
        .await?;
    assert_eq!(got.state, pb::BackupState::Complete as i32);
    let manifest = got.manifest.expect("manifest");
    assert_eq!(manifest.collections.len(), fixtures.len());
    let version = manifest
        .source
        .as_ref()
        .map(|s| s.milvus_version.clone())
        .unwrap_or_default();
    assert!(version.starts_with("v2.3.5"), "{version}");
    let all_types = manifest
        .collections
        .iter()
        .find(|c| c.name.ends_with("all_types"))
        .expect("all_types");
    assert!(
        all_types.segments.len() >= 3,
        "expected several segments, got {}",
        all_types.segments.len()
    );
    assert!(
        all_types.segments.iter().any(|s| !s.delta_logs.is_empty()),
        "delete logs were not backed up"
    );
    let mut checked = 0;
    for f in manifest_files(&manifest) {
        let bytes = std::fs::read(server.repo_dir.join(&f.path))?;
        assert_eq!(bytes.len() as u64, f.size_bytes, "{}", f.path);
        assert_eq!(hex::encode(Sha256::digest(&bytes)), f.sha256, "{}", f.path);
        checked += 1;
    }
    assert!(checked > 20, "only {checked} files in the backup");

    // Into Milvus B, whose binlogs live on S3.
    let job = client
        .restore_backup(pb::RestoreBackupRequest {
            backup: backup.clone(),
            cluster: "b".into(),
            repository: "local".into(),
            ..Default::default()
        })
        .await?;
    let done = run_job(&client, job).await?;
    assert_succeeded(&done);
    let report = done.report.expect("report");
    assert_eq!(report.collections.len(), fixtures.len());
    for fx in &fixtures {
        compare(&a, "default", &fx.name, &b, "default", &fx.name, fx.load).await?;
    }

    // Into the same Milvus under a suffix.
    let job = client
        .restore_backup(pb::RestoreBackupRequest {
            backup: backup.clone(),
            cluster: "a".into(),
            repository: "local".into(),
            suffix: "_r".into(),
            ..Default::default()
        })
        .await?;
    let done = run_job(&client, job).await?;
    assert_succeeded(&done);
    for fx in &fixtures {
        compare(
            &a,
            "default",
            &fx.name,
            &a,
            "default",
            &format!("{}_r", fx.name),
            fx.load,
        )
        .await?;
    }

    // The job's staged files are gone (other tests may be staging beside it).
    let staged = std::path::Path::new(&env.a_data)
        .join("milvault-staging")
        .join(&done.id);
    assert!(
        !staged.exists(),
        "staging files left in {}",
        staged.display()
    );
    server.stop().await;
    Ok(())
}

/// The other direction: a cluster that keeps its binlogs on S3 backed up into an S3
/// repository (another bucket), restored into a local-storage cluster; plus the
/// metadata-only and no-index variants.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_from_s3_cluster_restore_into_local_cluster() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let b = DataClient::connect(&env.b_addr).await?;
    let prefix = format!("{}_", unique("s3src"));
    let fixtures: Vec<_> = standard(&prefix).into_iter().take(2).collect();
    for fx in &fixtures {
        seed(&b, "default", fx, 77).await?;
    }
    let server = TestServer::start(&env).await?;
    let client = server.client().await?;
    let names: Vec<String> = fixtures.iter().map(|f| f.name.clone()).collect();
    let backup = unique("bks3");
    let job = client
        .create_backup(pb::CreateBackupRequest {
            name: backup.clone(),
            cluster: "b".into(),
            repository: "s3".into(),
            collections: names.clone(),
            include_rbac: false,
            ..Default::default()
        })
        .await?;
    let done = run_job(&client, job).await?;
    assert_succeeded(&done);
    let m = client
        .get_backup(pb::GetBackupRequest {
            name: backup.clone(),
            repository: "s3".into(),
        })
        .await?
        .manifest
        .expect("manifest");
    assert_eq!(
        m.source.as_ref().map(|s| s.storage_scheme.as_str()),
        Some("s3")
    );
    assert!(m.summary.expect("summary").file_count > 10);

    let job = client
        .restore_backup(pb::RestoreBackupRequest {
            backup: backup.clone(),
            cluster: "a".into(),
            repository: "s3".into(),
            ..Default::default()
        })
        .await?;
    assert_succeeded(&run_job(&client, job).await?);
    for fx in &fixtures {
        compare(&b, "default", &fx.name, &a, "default", &fx.name, fx.load).await?;
    }

    // Metadata only: same schema, partitions and indexes, no rows.
    let fx = &fixtures[0];
    let job = client
        .restore_backup(pb::RestoreBackupRequest {
            backup: backup.clone(),
            cluster: "a".into(),
            repository: "s3".into(),
            collections: vec![fx.name.clone()],
            suffix: "_meta".into(),
            meta_only: true,
            skip_load: true,
            ..Default::default()
        })
        .await?;
    let done = run_job(&client, job).await?;
    assert_succeeded(&done);
    let report = done.report.expect("report");
    assert_eq!(
        report.collections[0].method,
        pb::RestoreMethod::MetaOnly as i32
    );
    let meta = format!("{}_meta", fx.name);
    assert_eq!(
        a.partitions("default", &meta).await?,
        b.partitions("default", &fx.name).await?
    );
    assert_eq!(
        a.indexes("default", &meta).await?,
        b.indexes("default", &fx.name).await?
    );
    a.load("default", &meta).await?;
    assert!(a.dump("default", &meta).await?.is_empty());

    // No indexes: rows back, indexes not built, and the report says so.
    let job = client
        .restore_backup(pb::RestoreBackupRequest {
            backup: backup.clone(),
            cluster: "a".into(),
            repository: "s3".into(),
            collections: vec![fx.name.clone()],
            suffix: "_noidx".into(),
            skip_indexes: true,
            ..Default::default()
        })
        .await?;
    let done = run_job(&client, job).await?;
    assert_succeeded(&done);
    let noidx = format!("{}_noidx", fx.name);
    assert!(a.indexes("default", &noidx).await?.is_empty());
    let warnings = &done.report.expect("report").collections[0].warnings;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("indexes were not built")),
        "{warnings:?}"
    );
    server.stop().await;
    Ok(())
}
