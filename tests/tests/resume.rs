//! Resuming an interrupted restore (`ResumeJob`, `job resume`) against the behaving
//! fake Milvus 2.3.5 and the real `milvault-server` binary, killed with `kill -9`:
//! segments whose import was confirmed are not imported again and the rows come out
//! exact; a job that cannot be resumed is `FAILED_PRECONDITION`; when the resume
//! window ends (or the resume is given up with `CancelJob`) what the interrupted job
//! created is removed as before.

use std::time::Duration;

use milvault_sdk::{Client, pb};
use milvault_tests::fake_milvus::{CollectionSpec, FakeMilvus, Fault, SegmentSpec};
use milvault_tests::harness::{assert_succeeded, files_under, run_job, spawn_server};
use tokio::time::Instant;

/// Segments of the restored collection (one import each with the test's limits).
const SEGMENTS: i64 = 8;

/// A fake 2.3.5 whose `c1` holds `SEGMENTS` segments of 10 rows (one deleted each).
async fn fake_with_segments() -> anyhow::Result<FakeMilvus> {
    let fake = FakeMilvus::new("v2.3.5");
    fake.serve().await?;
    fake.serve_management().await?;
    fake.add_collection(CollectionSpec::new("c1"))?;
    for s in 0..SEGMENTS {
        let rows: Vec<(i64, u64)> = (0..10).map(|i| (s * 100 + i, 1000 + i as u64)).collect();
        fake.add_segment(
            "c1",
            "_default",
            SegmentSpec::ints(&rows).with_deletes(&[(s * 100 + 3, 2000)]),
        )
        .await?;
    }
    Ok(fake)
}

/// A server configuration: one segment per import, one import at a time, and the
/// given resume window.
fn write_config(
    fake: &FakeMilvus,
    dirs: &(tempfile::TempDir, tempfile::TempDir),
    window_secs: u64,
) -> anyhow::Result<std::path::PathBuf> {
    let toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n[limits]\nimport_concurrency = 1\n[restore]\nimport_batch_bytes = 1\nimport_first_batch_bytes = 1\nresume_window_secs = {window_secs}\n[repositories.local]\nstorage = {{ scheme = \"fs\", root = \"{}\" }}\n[clusters.fake]\naddress = \"{}\"\nstorage = {{ scheme = \"fs\", root = \"{}\" }}\n",
        dirs.0.path().display(),
        dirs.1.path().display(),
        fake.grpc_url().expect("served"),
        fake.root().display()
    );
    let conf = dirs.0.path().join("milvault.toml");
    std::fs::write(&conf, toml)?;
    Ok(conf)
}

/// Imports into `collection` the fake was asked for.
fn imports_into(fake: &FakeMilvus, collection: &str) -> usize {
    fake.recorded()
        .imports
        .iter()
        .filter(|r| r.collection_name == collection)
        .count()
}

/// The restarted server of [`interrupted`] and what the kill left.
struct Interrupted {
    child: tokio::process::Child,
    endpoint: String,
    client: Client,
    /// The interrupted restore.
    id: String,
    /// Imports confirmed at the kill.
    confirmed: usize,
}

/// Restore of `c1` as `c1_r`.
fn with_suffix(r: &mut pb::RestoreBackupRequest) {
    r.suffix = "_r".into();
}

/// Backs up `c1`, starts the restore `request` of it, lets `confirmed` imports finish,
/// holds the next one and kills the server; returns the restarted server.
async fn interrupted(
    fake: &FakeMilvus,
    conf: &std::path::Path,
    confirmed: usize,
    request: impl FnOnce(&mut pb::RestoreBackupRequest),
) -> anyhow::Result<Interrupted> {
    let (mut child, endpoint) = spawn_server(conf).await?;
    let c = Client::connect(&endpoint).await?;
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: "b1".into(),
            ..Default::default()
        })
        .await?;
    assert_succeeded(&run_job(&c, job).await?);
    let mut req = pb::RestoreBackupRequest {
        backup: "b1".into(),
        ..Default::default()
    };
    request(&mut req);
    let job = c.restore_backup(req).await?;
    // Let some imports be confirmed, then hold the ones that follow.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let j = c.get_job(pb::GetJobRequest { id: job.id.clone() }).await?;
        anyhow::ensure!(!j.state().is_terminal(), "the restore ended: {j:?}");
        if j.imports.iter().filter(|i| i.confirmed).count() >= confirmed {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no import was confirmed in 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    fake.inject(Fault::HoldImports);
    // An import left running (its task journaled) when the server dies.
    let deadline = Instant::now() + Duration::from_secs(60);
    let at_kill = loop {
        let j = c.get_job(pb::GetJobRequest { id: job.id.clone() }).await?;
        anyhow::ensure!(!j.state().is_terminal(), "the restore ended: {j:?}");
        if j.imports
            .iter()
            .any(|i| !i.confirmed && !i.task_ids.is_empty())
        {
            break j;
        }
        anyhow::ensure!(Instant::now() < deadline, "no held import in 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // The job asks about the task only once its id is journaled: a question asked
    // after the snapshot was seen proves the journal holds it.
    let polls = || {
        fake.recorded()
            .calls
            .iter()
            .filter(|c| *c == "GetImportState")
            .count()
    };
    let seen = polls();
    let deadline = Instant::now() + Duration::from_secs(30);
    while polls() <= seen {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the held import was never asked about"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().await?; // SIGKILL
    child.wait().await?;
    let done = at_kill.imports.iter().filter(|i| i.confirmed).count();
    anyhow::ensure!(
        (done as i64) < SEGMENTS,
        "every import was confirmed before the kill"
    );
    let (child, endpoint) = spawn_server(conf).await?;
    let c = Client::connect(&endpoint).await?;
    // The start-up recovery records what it did with the job.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = c.get_job(pb::GetJobRequest { id: job.id.clone() }).await?;
        if !j.cleanup.is_empty() {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "no recovery record in 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Interrupted {
        child,
        endpoint,
        client: c,
        id: job.id,
        confirmed: done,
    })
}

/// The reason of a refusal, checked to come with `FAILED_PRECONDITION` when it is
/// `JOB_NOT_RESUMABLE`.
fn reason(e: &milvault_sdk::SdkError) -> String {
    let reason = e.reason().unwrap_or_default();
    if reason == "JOB_NOT_RESUMABLE"
        && let milvault_sdk::SdkError::Status(s) = e
    {
        assert_eq!(s.code(), tonic::Code::FailedPrecondition, "{e}");
    }
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resumed_restore_imports_only_what_was_not_confirmed() -> anyhow::Result<()> {
    let fake = fake_with_segments().await?;
    let dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
    let conf = write_config(&fake, &dirs, 3600)?;
    let Interrupted {
        mut child,
        client: c,
        id: old_id,
        confirmed,
        ..
    } = interrupted(&fake, &conf, 3, with_suffix).await?;
    let old = c.get_job(pb::GetJobRequest { id: old_id.clone() }).await?;
    assert_eq!(old.state(), pb::JobState::Failed);
    assert_eq!(
        old.error.as_ref().map(|e| e.reason.as_str()),
        Some("SERVER_RESTARTED")
    );
    assert!(old.resumable_until.is_some(), "not kept: {:?}", old.cleanup);
    // Kept: the half-restored collection is still there, waiting for the resume.
    assert!(fake.has_collection("", "c1_r"));
    let before = imports_into(&fake, "c1_r");
    fake.clear_faults();

    let job = c
        .resume_job(pb::ResumeJobRequest { id: old_id.clone() })
        .await?;
    assert_eq!(job.resumed_from, old_id);
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    let report = &done.report.as_ref().expect("report").collections[0];
    // Confirmed segments (and the one left running, which was waited for) were not
    // imported again; the rest were, one import each.
    assert!(
        report.segments_resumed as usize > confirmed,
        "resumed {} of {confirmed} confirmed + 1 running",
        report.segments_resumed
    );
    let new_imports = imports_into(&fake, "c1_r") - before;
    assert_eq!(
        new_imports as i64,
        SEGMENTS - i64::from(report.segments_resumed),
        "imports after the resume"
    );
    assert_eq!(report.import_tasks as usize, new_imports);
    assert_eq!(
        before + new_imports,
        SEGMENTS as usize,
        "a segment imported twice"
    );
    assert_eq!(fake.live_rows("c1_r"), Some(SEGMENTS * 9));
    assert_eq!(report.rows, SEGMENTS * 9);
    let old = c.get_job(pb::GetJobRequest { id: old_id.clone() }).await?;
    assert_eq!(old.resumed_by, done.id);
    assert!(old.resumable_until.is_none());
    assert!(
        !fake.root().join("milvault-staging").join(&old_id).exists()
            || files_under(&fake.root().join("milvault-staging")).is_empty(),
        "staged files left behind"
    );

    // Only once, and only restores the restart interrupted.
    let again = c
        .resume_job(pb::ResumeJobRequest { id: old_id.clone() })
        .await
        .expect_err("a second resume");
    assert_eq!(reason(&again), "JOB_NOT_RESUMABLE", "{again}");
    assert!(again.to_string().contains(&done.id), "{again}");
    let finished = c
        .resume_job(pb::ResumeJobRequest {
            id: done.id.clone(),
        })
        .await
        .expect_err("resume of a finished job");
    assert_eq!(reason(&finished), "JOB_NOT_RESUMABLE", "{finished}");
    let backups = c.list_jobs(pb::ListJobsRequest::default()).await?;
    let backup = backups
        .iter()
        .find(|j| j.kind() == pb::JobKind::Backup)
        .expect("the backup job");
    let e = c
        .resume_job(pb::ResumeJobRequest {
            id: backup.id.clone(),
        })
        .await
        .expect_err("resume of a backup");
    assert_eq!(reason(&e), "JOB_NOT_RESUMABLE", "{e}");
    let e = c
        .resume_job(pb::ResumeJobRequest { id: "nope".into() })
        .await
        .expect_err("resume of no job");
    assert_eq!(reason(&e), "JOB_NOT_FOUND", "{e}");
    child.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_the_window_ends_the_interrupted_restore_is_cleaned_up() -> anyhow::Result<()> {
    let fake = fake_with_segments().await?;
    let dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
    let conf = write_config(&fake, &dirs, 3)?;
    let Interrupted {
        mut child,
        client: c,
        id: old_id,
        ..
    } = interrupted(&fake, &conf, 1, with_suffix).await?;
    fake.clear_faults();
    // Kept at the restart, then cleaned up when the window ended.
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let j = c.get_job(pb::GetJobRequest { id: old_id.clone() }).await?;
        if j.cleanup.iter().any(|n| n.contains("dropped")) {
            break j;
        }
        anyhow::ensure!(Instant::now() < deadline, "the window never ended: {j:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(after.resumable_until.is_none());
    assert!(
        after.cleanup[0].contains("kept for a resume"),
        "{:?}",
        after.cleanup
    );
    assert!(
        after.cleanup.iter().any(|n| n.contains("window ended")),
        "{:?}",
        after.cleanup
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
    assert!(
        files_under(&fake.root().join("milvault-staging")).is_empty(),
        "staged files left behind"
    );
    let e = c
        .resume_job(pb::ResumeJobRequest { id: old_id.clone() })
        .await
        .expect_err("resume after the window");
    assert_eq!(reason(&e), "JOB_NOT_RESUMABLE", "{e}");
    child.kill().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_gives_a_kept_restore_up_at_once() -> anyhow::Result<()> {
    let fake = fake_with_segments().await?;
    let dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
    let conf = write_config(&fake, &dirs, 3600)?;
    let Interrupted {
        mut child,
        client: c,
        id: old_id,
        ..
    } = interrupted(&fake, &conf, 1, with_suffix).await?;
    fake.clear_faults();
    assert!(fake.has_collection("", "c1_r"));
    let job = c
        .cancel_job(pb::CancelJobRequest { id: old_id.clone() })
        .await?;
    assert!(job.resumable_until.is_none());
    assert!(
        job.cleanup
            .iter()
            .any(|n| n.contains("given up") || n.contains("dropped")),
        "{:?}",
        job.cleanup
    );
    assert!(!fake.has_collection("", "c1_r"));
    let e = c
        .resume_job(pb::ResumeJobRequest { id: old_id })
        .await
        .expect_err("resume after cancel");
    assert_eq!(reason(&e), "JOB_NOT_RESUMABLE", "{e}");
    child.kill().await?;
    Ok(())
}

/// `--drop-existing` builds the replacement under a temporary name; interrupted and
/// resumed (with the CLI), it takes the original's place only when complete, rows
/// exact, and the temporary name is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resumed_replacement_switches_only_when_complete() -> anyhow::Result<()> {
    let fake = fake_with_segments().await?;
    let dirs = (tempfile::tempdir()?, tempfile::tempdir()?);
    let conf = write_config(&fake, &dirs, 3600)?;
    let Interrupted {
        mut child,
        endpoint,
        client: c,
        id: old_id,
        ..
    } = interrupted(&fake, &conf, 2, |r| r.drop_existing = true).await?;
    let temporary: Vec<String> = fake
        .collection_names()
        .into_iter()
        .filter(|n| n.contains("_mvtmp_"))
        .collect();
    assert_eq!(temporary.len(), 1, "{temporary:?}");
    // The original is untouched while the replacement waits for its resume.
    assert!(fake.has_collection("", "c1"));
    let original = fake.collection_id("c1");
    fake.clear_faults();
    let before = imports_into(&fake, &temporary[0]);

    let out = milvault_tests::harness::cli(&endpoint, &["job", "resume", &old_id]).await?;
    assert!(
        out.status.success(),
        "job resume: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let old = c.get_job(pb::GetJobRequest { id: old_id.clone() }).await?;
    let done = c
        .get_job(pb::GetJobRequest {
            id: old.resumed_by.clone(),
        })
        .await?;
    assert_succeeded(&done);
    assert_eq!(done.resumed_from, old_id);
    let report = &done.report.as_ref().expect("report").collections[0];
    assert_eq!(
        before + report.import_tasks as usize,
        SEGMENTS as usize,
        "a segment imported twice"
    );
    assert!(fake.has_collection("", "c1"));
    assert_ne!(fake.collection_id("c1"), original, "c1 was not replaced");
    assert!(
        fake.collection_names()
            .iter()
            .all(|n| !n.contains("_mvtmp_")),
        "{:?}",
        fake.collection_names()
    );
    assert_eq!(fake.live_rows("c1"), Some(SEGMENTS * 9));
    assert!(
        files_under(&fake.root().join("milvault-staging")).is_empty(),
        "staged files left behind"
    );
    child.kill().await?;
    Ok(())
}
