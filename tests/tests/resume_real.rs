//! Batched and resumed restores on the real Milvus 2.3.5 (A, local storage):
//! - one import task carries every segment of a partition (Milvus 2.3 reads a group
//!   directory of segment directories), and the rows come back exact;
//! - `kill -9` of the real server binary during a restore whose imports go one
//!   segment at a time, a restart, and `ResumeJob`: the segments whose import was
//!   confirmed are not imported again, and the restored collection equals the source.

use std::time::Duration;

use milvault_sdk::{Client, pb};
use milvault_tests::fixtures::{Fixture, compare, seed};
use milvault_tests::harness::{
    TestEnv, TestServer, assert_succeeded, run_job, spawn_server, unique,
};
use milvault_tests::milvus_data::{DataClient, Field, dt};
use tokio::time::Instant;

const BATCHES: usize = 6;

fn fixture(name: &str) -> Fixture {
    Fixture {
        name: name.to_owned(),
        fields: vec![
            Field::new("pk", dt::INT64).primary(),
            Field::new("v", dt::FLOAT_VECTOR).param("dim", 64),
        ],
        batches: vec![("_default".into(), 3000); BATCHES],
        partitions: vec![],
        deletes: vec!["pk in [1, 2, 3, 3001, 9000]".into()],
        deleted: 5,
        indexes: vec![(
            "v".into(),
            "v_flat".into(),
            vec![
                ("index_type".into(), "FLAT".into()),
                ("metric_type".into(), "L2".into()),
            ],
        )],
        shards: 1,
        load: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batched_and_resumed_restores_on_real_2_3_5() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let fx = fixture(&unique("resume"));
    seed(&a, "default", &fx, 7).await?;
    let repo = tempfile::tempdir()?;
    let state = tempfile::tempdir()?;
    let toml = env.config_toml(state.path(), repo.path(), "milvault-repo");
    let server = TestServer::start_with(&toml, vec![]).await?;
    let c = server.client().await?;
    let backup = unique("bk");
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: backup.clone(),
            cluster: "a".into(),
            repository: "local".into(),
            collections: vec![fx.name.clone()],
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    let got = c
        .get_backup(pb::GetBackupRequest {
            name: backup.clone(),
            repository: "local".into(),
        })
        .await?;
    let segments = got.manifest.expect("manifest").collections[0]
        .segments
        .len();
    assert!(segments >= BATCHES, "only {segments} segments");

    // Batched: every segment of the partition in one import task, rows exact.
    let restore = |suffix: &str| pb::RestoreBackupRequest {
        backup: backup.clone(),
        cluster: "a".into(),
        repository: "local".into(),
        suffix: suffix.into(),
        ..Default::default()
    };
    let batched = format!("{}_b", fx.name);
    a.drop_collection_if_exists("default", &batched).await?;
    let done = run_job(&c, c.restore_backup(restore("_b")).await?).await?;
    assert_succeeded(&done);
    let report = &done.report.as_ref().expect("report").collections[0];
    assert_eq!(report.import_tasks, 1, "{segments} segments: {report:?}");
    assert_eq!(report.rows as usize, fx.expected_rows());
    compare(&a, "default", &fx.name, &a, "default", &batched, false).await?;
    a.drop_collection_if_exists("default", &batched).await?;
    server.stop().await;

    // One segment per import, one at a time; killed after two were confirmed.
    let state2 = tempfile::tempdir()?;
    let small = env
        .config_toml(state2.path(), repo.path(), "milvault-repo")
        .replace(
            "import_concurrency = 4",
            "import_concurrency = 1\n\n[restore]\nimport_batch_bytes = 1\nimport_first_batch_bytes = 1\nresume_window_secs = 600",
        );
    anyhow::ensure!(small.contains("resume_window_secs"), "config not adapted");
    let conf = state2.path().join("milvault.toml");
    std::fs::write(&conf, &small)?;
    let resumed = format!("{}_k", fx.name);
    a.drop_collection_if_exists("default", &resumed).await?;
    let (mut child, endpoint) = spawn_server(&conf).await?;
    let c = Client::connect(&endpoint).await?;
    let job = c.restore_backup(restore("_k")).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let j = c.get_job(pb::GetJobRequest { id: job.id.clone() }).await?;
        anyhow::ensure!(!j.state().is_terminal(), "the restore ended: {j:?}");
        // Two confirmed, and the next one running in Milvus (its task journaled: an
        // import journaled without its task would make the resume rebuild the
        // collection, which is right but not what this test looks at).
        let running = j
            .imports
            .last()
            .is_some_and(|i| !i.confirmed && !i.task_ids.is_empty());
        if j.imports.iter().filter(|i| i.confirmed).count() >= 2 && running {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "no two imports confirmed in 300 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The snapshot is published just before its journal write; a one-segment
    // import on 2.3.5 takes well over a second.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().await?; // SIGKILL
    child.wait().await?;
    let (mut child, endpoint) = spawn_server(&conf).await?;
    let c = Client::connect(&endpoint).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let old = loop {
        let j = c.get_job(pb::GetJobRequest { id: job.id.clone() }).await?;
        if !j.cleanup.is_empty() {
            break j;
        }
        anyhow::ensure!(Instant::now() < deadline, "no recovery record in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(old.resumable_until.is_some(), "{:?}", old.cleanup);
    let confirmed: Vec<i64> = old
        .imports
        .iter()
        .filter(|i| i.confirmed)
        .flat_map(|i| i.segment_ids.clone())
        .collect();
    anyhow::ensure!(
        confirmed.len() >= 2 && confirmed.len() < segments,
        "{confirmed:?}"
    );
    assert!(a.has_collection("default", &resumed).await?, "not kept");

    let job = c
        .resume_job(pb::ResumeJobRequest { id: old.id.clone() })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    let report = &done.report.as_ref().expect("report").collections[0];
    assert!(
        report.segments_resumed as usize >= confirmed.len(),
        "{report:?}"
    );
    // The imports this job started (after the inherited ones) carry no confirmed segment.
    let started: Vec<i64> = done.imports[old.imports.len()..]
        .iter()
        .filter(|i| !i.l0)
        .flat_map(|i| i.segment_ids.clone())
        .collect();
    for s in &confirmed {
        assert!(!started.contains(s), "segment {s} imported again");
    }
    assert_eq!(
        started.len() + report.segments_resumed as usize,
        segments,
        "every segment imported exactly once"
    );
    assert_eq!(report.rows as usize, fx.expected_rows());
    compare(&a, "default", &fx.name, &a, "default", &resumed, false).await?;
    child.kill().await?;
    a.drop_collection_if_exists("default", &resumed).await?;
    a.drop_collection_if_exists("default", &fx.name).await?;
    Ok(())
}
