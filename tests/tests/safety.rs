//! Nothing destroyed, nothing left behind (against the behaving fake Milvus):
//! `--drop-existing` never loses the original when the restore fails; a replacement
//! takes the old collection's place only when complete; aliases are left, moved or
//! skipped as asked; a cancelled restore removes exactly what it created; a
//! `kill -9`ed server finishes the cleanup of its interrupted jobs at restart.

use std::time::Duration;

use milvault_sdk::{Client, pb};
use milvault_tests::fake_milvus::{CollectionSpec, FakeMilvus, Fault, SegmentSpec};
use milvault_tests::harness::{
    Minimal, MinimalCluster, TestServer, assert_succeeded, files_under, run_job, spawn_server,
};

async fn started(version: &str) -> anyhow::Result<FakeMilvus> {
    let fake = FakeMilvus::new(version);
    fake.serve().await?;
    fake.serve_management().await?;
    Ok(fake)
}

fn config(fake: &FakeMilvus) -> Minimal {
    Minimal {
        clusters: vec![MinimalCluster {
            name: "fake".into(),
            address: fake.grpc_url().expect("served"),
            management: fake.management_url(),
            root: fake.root().to_path_buf(),
            extra: String::new(),
        }],
        ..Default::default()
    }
}

fn ten_rows() -> SegmentSpec {
    let rows: Vec<(i64, u64)> = (0..10).map(|i| (i, 1000 + i as u64)).collect();
    SegmentSpec::ints(&rows).with_deletes(&[(3, 2000)])
}

/// A fake 2.3.5 with `c1` (9 live rows, alias `a1`), a server, and backup `b1` of it.
async fn backed_up() -> anyhow::Result<(FakeMilvus, TestServer, Client)> {
    let fake = started("v2.3.5").await?;
    let mut spec = CollectionSpec::new("c1");
    spec.aliases = vec!["a1".into()];
    fake.add_collection(spec)?;
    fake.add_segment("c1", "_default", ten_rows()).await?;
    let server = TestServer::start_minimal(&config(&fake), vec![]).await?;
    let c = server.client().await?;
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: "b1".into(),
            ..Default::default()
        })
        .await?;
    assert_succeeded(&run_job(&c, job).await?);
    Ok((fake, server, c))
}

fn restore_req(f: impl FnOnce(&mut pb::RestoreBackupRequest)) -> pb::RestoreBackupRequest {
    let mut r = pb::RestoreBackupRequest {
        backup: "b1".into(),
        ..Default::default()
    };
    f(&mut r);
    r
}

async fn restore(c: &Client, req: pb::RestoreBackupRequest) -> anyhow::Result<pb::Job> {
    let job = c.restore_backup(req).await?;
    run_job(c, job).await
}

fn temporary(fake: &FakeMilvus) -> Vec<String> {
    fake.collection_names()
        .into_iter()
        .filter(|n| n.contains("_mvtmp_"))
        .collect()
}

#[tokio::test]
async fn drop_existing_never_loses_the_original_when_the_restore_fails() -> anyhow::Result<()> {
    let (fake, server, c) = backed_up().await?;
    // One file of the backup damaged: found while staging, after the replacement
    // collection was created.
    let files = std::fs::read_dir(server.repo_dir.join("backups/b1/files"))?.count();
    assert!(files > 0);
    let victim = files_under(&server.repo_dir.join("backups/b1/files"))
        .into_iter()
        .find(|p| p.to_string_lossy().contains("insert_log"))
        .expect("an insert log");
    let mut bytes = std::fs::read(&victim)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&victim, &bytes)?;

    let done = restore(&c, restore_req(|r| r.drop_existing = true)).await?;
    let err = done.error.clone().expect("the damage is found");
    assert_eq!(err.code, "DATA_LOSS", "{err:?}");
    // The original is untouched, with its alias; the half-built replacement is gone
    // and the job says so.
    assert_eq!(fake.live_rows("c1"), Some(9));
    assert_eq!(fake.alias_target("a1").as_deref(), Some("c1"));
    assert!(temporary(&fake).is_empty(), "{:?}", fake.collection_names());
    assert!(
        done.cleanup
            .iter()
            .any(|n| n.contains("dropped") && n.contains("_mvtmp_")),
        "{:?}",
        done.cleanup
    );
    Ok(())
}

#[tokio::test]
async fn drop_existing_replaces_only_once_the_restore_is_complete() -> anyhow::Result<()> {
    let (fake, _server, c) = backed_up().await?;
    // The live collection moves on after the backup: 10 more rows.
    let more: Vec<(i64, u64)> = (100..110).map(|i| (i, 5000)).collect();
    fake.add_segment("c1", "_default", SegmentSpec::ints(&more))
        .await?;
    assert_eq!(fake.live_rows("c1"), Some(19));
    let done = restore(&c, restore_req(|r| r.drop_existing = true)).await?;
    assert_succeeded(&done);
    assert_eq!(fake.live_rows("c1"), Some(9), "the backup's rows are back");
    assert_eq!(fake.alias_target("a1").as_deref(), Some("c1"));
    assert!(temporary(&fake).is_empty(), "{:?}", fake.collection_names());
    let report = done.report.expect("report");
    assert!(
        report.collections[0]
            .warnings
            .iter()
            .any(|w| w.contains("replaced the existing collection")),
        "{report:?}"
    );
    Ok(())
}

#[tokio::test]
async fn aliases_of_the_original_are_left_moved_or_skipped() -> anyhow::Result<()> {
    let (fake, _server, c) = backed_up().await?;
    // A copy beside the original: the alias stays with the original, with a warning.
    let done = restore(&c, restore_req(|r| r.suffix = "_copy".into())).await?;
    assert_succeeded(&done);
    assert_eq!(fake.alias_target("a1").as_deref(), Some("c1"));
    let warnings = &done.report.as_ref().expect("report").collections[0].warnings;
    assert!(warnings.iter().any(|w| w.contains("a1")), "{warnings:?}");
    assert_eq!(fake.live_rows("c1_copy"), Some(9));

    // Asked to move: the alias follows the copy once the restore succeeded.
    let done = restore(
        &c,
        restore_req(|r| {
            r.suffix = "_blue".into();
            r.move_aliases = true;
        }),
    )
    .await?;
    assert_succeeded(&done);
    assert_eq!(fake.alias_target("a1").as_deref(), Some("c1_blue"));

    // Skipped: no alias at all.
    let done = restore(
        &c,
        restore_req(|r| {
            r.suffix = "_plain".into();
            r.skip_aliases = true;
        }),
    )
    .await?;
    assert_succeeded(&done);
    assert_eq!(fake.alias_target("a1").as_deref(), Some("c1_blue"));

    // Held by an unrelated collection: refused before anything is written, and the
    // message names both ways out.
    let mut other = CollectionSpec::new("zz");
    other.aliases = vec!["a2".into()];
    fake.add_collection(other)?;
    let target = started("v2.3.5").await?;
    let mut holder = CollectionSpec::new("elsewhere");
    holder.aliases = vec!["a1".into()];
    target.add_collection(holder)?;
    let mut cfg = config(&fake);
    cfg.clusters.push(MinimalCluster {
        name: "other".into(),
        address: target.grpc_url().expect("served"),
        management: target.management_url(),
        root: target.root().to_path_buf(),
        extra: String::new(),
    });
    let server2 = TestServer::start_minimal(&cfg, vec![]).await?;
    let c2 = server2.client().await?;
    let job = c2
        .create_backup(pb::CreateBackupRequest {
            name: "b2".into(),
            cluster: "fake".into(),
            // c1_blue holds a1 now.
            collections: vec!["c1_blue".into()],
            ..Default::default()
        })
        .await?;
    assert_succeeded(&run_job(&c2, job).await?);
    let done = restore(
        &c2,
        pb::RestoreBackupRequest {
            backup: "b2".into(),
            cluster: "other".into(),
            ..Default::default()
        },
    )
    .await?;
    let err = done.error.expect("refused");
    assert_eq!(err.reason, "ALIAS_EXISTS", "{err:?}");
    assert!(
        err.message.contains("--skip-aliases") && err.message.contains("--move-aliases"),
        "{}",
        err.message
    );
    assert!(!target.has_collection("", "c1_blue"));
    Ok(())
}

#[tokio::test]
async fn a_cancelled_restore_removes_exactly_what_it_created() -> anyhow::Result<()> {
    let (fake, _server, c) = backed_up().await?;
    fake.inject(Fault::HoldImports);
    let job = c
        .restore_backup(restore_req(|r| r.suffix = "_r".into()))
        .await?;
    wait_for_phase(&c, &job.id, pb::JobPhase::Importing).await?;
    c.cancel_job(pb::CancelJobRequest { id: job.id.clone() })
        .await?;
    let done = run_job(&c, job).await?;
    assert_eq!(done.state(), pb::JobState::Cancelled);
    assert!(!fake.has_collection("", "c1_r"));
    assert!(fake.has_collection("", "c1"), "the source is never touched");
    assert!(
        done.cleanup
            .iter()
            .any(|n| n.contains("dropped") && n.contains("c1_r")),
        "{:?}",
        done.cleanup
    );
    assert!(no_staging_left(&fake), "staged files left behind");
    Ok(())
}

/// `kill -9` of the real server binary during a restore; the restarted server fails
/// the job and removes what it created.
#[tokio::test]
async fn a_killed_server_cleans_up_its_interrupted_restore_at_restart() -> anyhow::Result<()> {
    let fake = started("v2.3.5").await?;
    fake.add_collection(CollectionSpec::new("c1"))?;
    fake.add_segment("c1", "_default", ten_rows()).await?;
    let dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n[repositories.local]\nstorage = {{ scheme = \"fs\", root = \"{}\" }}\n[clusters.fake]\naddress = \"{}\"\nstorage = {{ scheme = \"fs\", root = \"{}\" }}\n[restore]\nresume_window_secs = 0\n",
        dirs.0.path().display(),
        dirs.1.path().display(),
        fake.grpc_url().expect("served"),
        fake.root().display()
    );
    let conf = dirs.0.path().join("milvault.toml");
    std::fs::write(&conf, &toml)?;

    let (mut child, endpoint) = spawn_server(&conf).await?;
    let c = Client::connect(&endpoint).await?;
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: "b1".into(),
            ..Default::default()
        })
        .await?;
    assert_succeeded(&run_job(&c, job).await?);
    fake.inject(Fault::HoldImports);
    let job = c
        .restore_backup(restore_req(|r| r.suffix = "_r".into()))
        .await?;
    wait_for_phase(&c, &job.id, pb::JobPhase::Importing).await?;
    assert!(fake.has_collection("", "c1_r"));
    child.kill().await?; // SIGKILL
    child.wait().await?;
    fake.clear_faults();

    let (mut child, endpoint) = spawn_server(&conf).await?;
    let c = Client::connect(&endpoint).await?;
    // The start-up cleanup runs in the background: wait for its record.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let after = loop {
        let j = c.get_job(pb::GetJobRequest { id: job.id.clone() }).await?;
        if !j.cleanup.is_empty() || tokio::time::Instant::now() > deadline {
            break j;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(after.state(), pb::JobState::Failed);
    assert_eq!(
        after.error.as_ref().map(|e| e.reason.as_str()),
        Some("SERVER_RESTARTED")
    );
    assert!(
        after
            .cleanup
            .iter()
            .any(|n| n.contains("dropped") && n.contains("c1_r")),
        "{:?}",
        after.cleanup
    );
    assert!(!fake.has_collection("", "c1_r"));
    assert!(no_staging_left(&fake), "staged files left behind");
    child.kill().await?;
    Ok(())
}

async fn wait_for_phase(c: &Client, id: &str, phase: pb::JobPhase) -> anyhow::Result<()> {
    let mut stream = Box::pin(
        c.watch_job(pb::WatchJobRequest { id: id.to_owned() })
            .await?,
    );
    use futures::StreamExt;
    while let Some(j) = stream.next().await {
        let j = j?;
        if j.phase() == phase {
            return Ok(());
        }
        anyhow::ensure!(
            !j.state().is_terminal(),
            "job ended before {phase:?}: {j:?}"
        );
    }
    anyhow::bail!("the watch ended before {phase:?}")
}

fn no_staging_left(fake: &FakeMilvus) -> bool {
    files_under(&fake.root().join("milvault-staging")).is_empty()
}
