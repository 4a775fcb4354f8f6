//! A backup from a cluster on S3 into a repository on the same S3 endpoint copies
//! inside S3 (`CopyObject`, signed by milvault) while it reads each source once for
//! its SHA-256: real Milvus 2.3.5 (B, on moto) into the `s3` repository. Every file
//! goes that way, and a plain verify (which re-reads every copied object and checks
//! it against the manifest's size and SHA-256) passes, so the bytes S3 copied are
//! the bytes that were hashed.

use milvault_sdk::pb;
use milvault_tests::fixtures::{seed, standard};
use milvault_tests::harness::{TestEnv, TestServer, assert_succeeded, run_job, unique};
use milvault_tests::logs::capture;
use milvault_tests::milvus_data::DataClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_to_s3_on_one_endpoint_copies_inside_s3_and_verifies() -> anyhow::Result<()> {
    let logs = capture("milvault_server=debug");
    let env = TestEnv::from_env()?;
    let b = DataClient::connect(&env.b_addr).await?;
    let prefix = format!("{}_", unique("ssc"));
    let fixtures: Vec<_> = standard(&prefix).into_iter().take(2).collect();
    for fx in &fixtures {
        seed(&b, "default", fx, 5).await?;
    }
    let server = TestServer::start(&env).await?;
    let c = server.client().await?;
    let backup = unique("bkssc");
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: backup.clone(),
            cluster: "b".into(),
            repository: "s3".into(),
            collections: fixtures.iter().map(|f| f.name.clone()).collect(),
            ..Default::default()
        })
        .await?;
    assert_succeeded(&run_job(&c, job).await?);
    let summary = c
        .get_backup(pb::GetBackupRequest {
            name: backup.clone(),
            repository: "s3".into(),
        })
        .await?
        .summary
        .expect("summary");
    let text = logs.text();
    let inside = text
        .lines()
        .filter(|l| l.contains("copied inside S3") && l.contains(&backup))
        .count();
    assert!(
        !text.contains("server-side copy refused"),
        "a server-side copy fell back to streaming"
    );
    assert!(summary.copied_files > 10, "{summary:?}");
    assert_eq!(
        inside as u64, summary.copied_files,
        "every file copied inside S3"
    );

    let job = c
        .verify_backup(pb::VerifyBackupRequest {
            name: backup.clone(),
            repository: "s3".into(),
            deep: true,
        })
        .await?;
    assert_succeeded(&run_job(&c, job).await?);
    for fx in &fixtures {
        b.drop_collection_if_exists("default", &fx.name).await?;
    }
    server.stop().await;
    Ok(())
}
