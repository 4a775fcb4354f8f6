//! Every reason of the error list (`docs/errors.md`, `Reason::ALL`) provoked by a
//! test, with its gRPC code and the metadata naming what is involved (issue 9, "Bad
//! input"). The reasons that need a real Milvus, object storage or a killed process
//! are provoked in `faults.rs`, `api_errors.rs`, `safety.rs`, `resume.rs`, `rows.rs`,
//! `fake_versions.rs`, `matrix.rs` and `auth.rs`; the rest here, against the behaving
//! fake Milvus (2.3.5) and a local repository. The last test checks that every reason
//! is asserted somewhere under `tests/tests/`, so a new reason needs a test
//! (`INTERNAL`, for bugs, is the one exception: see [`NOT_PROVOKED`]).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use milvault_sdk::{Client, SdkError, pb};
use milvault_server::error::Reason;
use milvault_tests::complete::manifest_files;
use milvault_tests::fake_milvus::{CollectionSpec, FakeMilvus, Fault, SegmentSpec};
use milvault_tests::harness::{TestServer, assert_succeeded, files_under, run_job};
use tonic::Code;

async fn started() -> Result<FakeMilvus> {
    let fake = FakeMilvus::new("v2.3.5");
    fake.serve().await?;
    fake.serve_management().await?;
    Ok(fake)
}

/// A server with cluster `fake` (and `other` when `two_clusters`), repository
/// `local`; `extra` is appended (e.g. a `[timeouts]` table).
async fn server(fake: &FakeMilvus, two_clusters: bool, extra: &str) -> Result<TestServer> {
    let (state, repo) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let cluster = |name: &str| {
        format!(
            "[clusters.{name}]\naddress = \"{}\"\nmanagement = \"{}\"\nstorage = {{ scheme = \"fs\", root = \"{}\" }}\n",
            fake.grpc_url().expect("served"),
            fake.management_url().expect("served"),
            fake.root().display()
        )
    };
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n[restore]\nresume_window_secs = 0\n[repositories.local]\nstorage = {{ scheme = \"fs\", root = \"{}\" }}\n{}",
        state.path().display(),
        repo.path().display(),
        cluster("fake")
    );
    if two_clusters {
        toml.push_str(&cluster("other"));
    }
    toml.push_str(extra);
    TestServer::start_with(&toml, vec![state, repo]).await
}

fn ten_rows() -> SegmentSpec {
    let rows: Vec<(i64, u64)> = (0..10).map(|i| (i, 1000 + i as u64)).collect();
    SegmentSpec::ints(&rows)
}

/// A fake with `c1` (two segments of ten rows), a server, and backup `b1` of it.
async fn backed_up(extra: &str) -> Result<(FakeMilvus, TestServer, Client)> {
    let fake = started().await?;
    fake.add_collection(CollectionSpec::new("c1"))?;
    fake.add_segment("c1", "_default", ten_rows()).await?;
    let rows: Vec<(i64, u64)> = (10..20).map(|i| (i, 1000 + i as u64)).collect();
    fake.add_segment("c1", "_default", SegmentSpec::ints(&rows))
        .await?;
    let server = server(&fake, false, extra).await?;
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

fn restore_req(backup: &str, suffix: &str) -> pb::RestoreBackupRequest {
    pb::RestoreBackupRequest {
        backup: backup.into(),
        suffix: suffix.into(),
        ..Default::default()
    }
}

/// Asserts an RPC was refused with `code` and `reason`; returns the error.
fn refused<T: std::fmt::Debug>(
    r: Result<T, SdkError>,
    code: Code,
    reason: &str,
) -> Result<SdkError> {
    let e = match r {
        Err(e) => e,
        Ok(v) => anyhow::bail!("expected {reason}, got {v:?}"),
    };
    ensure!(e.code() == Some(code), "expected {code:?} {reason}: {e}");
    ensure!(
        e.reason().as_deref() == Some(reason),
        "expected {reason}: {e} ({:?})",
        e.reason()
    );
    Ok(e)
}

/// Asserts a job failed with `code` and `reason`; returns its error.
fn failed(job: &pb::Job, code: &str, reason: &str) -> Result<pb::JobError> {
    let err = job
        .error
        .clone()
        .with_context(|| format!("job {} ended {:?} without an error", job.id, job.state()))?;
    ensure!(
        (err.code.as_str(), err.reason.as_str()) == (code, reason),
        "expected {code} {reason}, got {err:?}"
    );
    Ok(err)
}

/// Names refused before a job starts: unknown cluster, unknown repository, no cluster
/// named where several are configured, a malformed name, unknown backup, unknown job,
/// a restore filter naming a collection the backup does not hold.
#[tokio::test]
async fn names_are_refused_with_their_reason_and_the_name() -> Result<()> {
    let fake = started().await?;
    fake.add_collection(CollectionSpec::new("c1"))?;
    fake.add_segment("c1", "_default", ten_rows()).await?;
    let server = server(&fake, true, "").await?;
    let c = server.client().await?;
    let backup = |name: &str, cluster: &str, repository: &str| pb::CreateBackupRequest {
        name: name.into(),
        cluster: cluster.into(),
        repository: repository.into(),
        ..Default::default()
    };

    let e = refused(
        c.create_backup(backup("b1", "nope", "local")).await,
        Code::NotFound,
        "CLUSTER_NOT_FOUND",
    )?;
    assert_eq!(
        e.metadata().get("cluster").map(String::as_str),
        Some("nope")
    );
    assert!(e.to_string().contains("fake, other"), "{e}");
    let e = refused(
        c.create_backup(backup("b1", "fake", "nope")).await,
        Code::NotFound,
        "REPOSITORY_NOT_FOUND",
    )?;
    assert_eq!(
        e.metadata().get("repository").map(String::as_str),
        Some("nope")
    );
    let e = refused(
        c.create_backup(backup("b1", "", "local")).await,
        Code::InvalidArgument,
        "NAME_REQUIRED",
    )?;
    assert!(e.to_string().contains("cluster"), "{e}");
    let e = refused(
        c.create_backup(backup("bad/name", "fake", "local")).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
    )?;
    assert!(e.to_string().contains("backup name"), "{e}");
    refused(
        c.get_backup(pb::GetBackupRequest {
            name: "missing".into(),
            repository: "local".into(),
        })
        .await,
        Code::NotFound,
        "BACKUP_NOT_FOUND",
    )?;
    refused(
        c.get_job(pb::GetJobRequest { id: "nope".into() }).await,
        Code::NotFound,
        "JOB_NOT_FOUND",
    )?;
    ensure!(
        fake.recorded().calls.is_empty(),
        "a refused request reached Milvus: {:?}",
        fake.recorded().calls
    );

    assert_succeeded(&run_job(&c, c.create_backup(backup("b1", "fake", "local")).await?).await?);
    let mut req = restore_req("b1", "_r");
    req.cluster = "fake".into();
    req.collections = vec!["not_in_backup".into()];
    let e = refused(
        c.restore_backup(req).await,
        Code::NotFound,
        "COLLECTION_NOT_FOUND",
    )?;
    assert!(e.to_string().contains("not_in_backup"), "{e}");
    Ok(())
}

/// A backup of a collection the cluster does not have fails `COLLECTION_NOT_FOUND`; a
/// backup name already taken by a complete backup is `BACKUP_EXISTS`.
#[tokio::test]
async fn a_missing_collection_and_a_taken_name() -> Result<()> {
    let (_fake, _server, c) = backed_up("").await?;
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: "b2".into(),
            collections: vec!["no_such_collection".into()],
            ..Default::default()
        })
        .await?;
    let err = failed(
        &run_job(&c, job).await?,
        "NOT_FOUND",
        "COLLECTION_NOT_FOUND",
    )?;
    assert!(err.message.contains("no_such_collection"), "{err:?}");
    let e = refused(
        c.create_backup(pb::CreateBackupRequest {
            name: "b1".into(),
            ..Default::default()
        })
        .await,
        Code::AlreadyExists,
        "BACKUP_EXISTS",
    )?;
    assert_eq!(e.metadata().get("backup").map(String::as_str), Some("b1"));
    Ok(())
}

/// While a restore waits for its import (held by the fake): deleting its backup is
/// `JOB_CONFLICT` naming the job; cancelling it ends it `CANCELLED` with what it
/// created removed.
#[tokio::test]
async fn a_conflicting_job_is_refused_and_a_cancelled_one_says_so() -> Result<()> {
    let (fake, _server, c) = backed_up("").await?;
    fake.inject(Fault::HoldImports);
    let job = c.restore_backup(restore_req("b1", "_r")).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !fake.has_collection("", "c1_r") {
        ensure!(tokio::time::Instant::now() < deadline, "no import started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let e = refused(
        c.delete_backup(pb::DeleteBackupRequest {
            name: "b1".into(),
            repository: "local".into(),
        })
        .await,
        Code::FailedPrecondition,
        "JOB_CONFLICT",
    )?;
    assert_eq!(e.metadata().get("job"), Some(&job.id), "{e}");

    c.cancel_job(pb::CancelJobRequest { id: job.id.clone() })
        .await?;
    let done = run_job(&c, job).await?;
    assert_eq!(done.state(), pb::JobState::Cancelled);
    failed(&done, "CANCELLED", "CANCELLED")?;
    ensure!(!fake.has_collection("", "c1_r"), "{:?}", done.cleanup);
    Ok(())
}

/// An import that never finishes fails the restore `TIMEOUT` (`DEADLINE_EXCEEDED`)
/// naming the configured limit, and the half-made collection is dropped.
#[tokio::test]
async fn an_import_that_never_ends_times_out() -> Result<()> {
    let (fake, _server, c) = backed_up("[timeouts]\nimport_secs = 1\npoll_max_ms = 100\n").await?;
    fake.inject(Fault::HoldImports);
    let done = run_job(&c, c.restore_backup(restore_req("b1", "_r")).await?).await?;
    let err = failed(&done, "DEADLINE_EXCEEDED", "TIMEOUT")?;
    assert!(err.message.contains("import"), "{err:?}");
    ensure!(!fake.has_collection("", "c1_r"), "{:?}", done.cleanup);
    Ok(())
}

/// Milvus refusing an operation (here Import, the disk quota exhausted on 2.3, which
/// cannot skip the check) fails the job `MILVUS_ERROR` with Milvus's reason and the
/// operation.
#[tokio::test]
async fn milvus_refusing_an_operation_is_milvus_error() -> Result<()> {
    let (fake, _server, c) = backed_up("").await?;
    fake.inject(Fault::DiskQuotaExceeded);
    let done = run_job(&c, c.restore_backup(restore_req("b1", "_r")).await?).await?;
    let err = failed(&done, "ABORTED", "MILVUS_ERROR")?;
    assert!(err.message.contains("disk quota"), "{err:?}");
    assert_eq!(
        err.metadata.get("operation").map(String::as_str),
        Some("Import"),
        "{err:?}"
    );
    ensure!(!fake.has_collection("", "c1_r"), "{:?}", done.cleanup);
    Ok(())
}

/// An import task Milvus accepts and then fails (here injected) fails the restore
/// `IMPORT_FAILED` naming the collection, with Milvus's reason; what the restore
/// created is removed.
#[tokio::test]
async fn an_import_milvus_fails_is_import_failed() -> Result<()> {
    let (fake, _server, c) = backed_up("").await?;
    fake.inject(Fault::FailImports);
    let done = run_job(&c, c.restore_backup(restore_req("b1", "_r")).await?).await?;
    let err = failed(&done, "ABORTED", "IMPORT_FAILED")?;
    assert!(err.message.contains("injected by the test"), "{err:?}");
    assert_eq!(
        err.metadata.get("collection").map(String::as_str),
        Some("default.c1_r"),
        "{err:?}"
    );
    ensure!(!fake.has_collection("", "c1_r"), "{:?}", done.cleanup);
    ensure!(
        files_under(&fake.root().join("milvault-staging")).is_empty(),
        "staged files left"
    );
    Ok(())
}

/// A damaged repository: a backup without its manifest is `BACKUP_INCOMPLETE`, a
/// manifest that is not one `MANIFEST_INVALID`, a file gone `FILE_MISSING` naming it
/// (restore and verify), and a truncated file whose size and checksum were made to
/// agree with the manifest is still `FILE_CORRUPT`: the restore decodes every file
/// before Milvus is given it.
#[tokio::test]
async fn a_damaged_repository_says_what_is_damaged() -> Result<()> {
    let (fake, server, c) = backed_up("").await?;
    let repo = server.repo_dir.clone();
    for name in ["no_manifest", "bad_manifest", "missing_file", "unreadable"] {
        let job = c
            .create_backup(pb::CreateBackupRequest {
                name: name.into(),
                ..Default::default()
            })
            .await?;
        assert_succeeded(&run_job(&c, job).await?);
    }
    let manifest_of = |name: &str| repo.join("backups").join(name).join("manifest.json");
    let restore = |name: &str| {
        let c = c.clone();
        let req = restore_req(name, &format!("_{name}"));
        async move { run_job(&c, c.restore_backup(req).await?).await }
    };

    std::fs::remove_file(manifest_of("no_manifest"))?;
    let e = refused(
        c.restore_backup(restore_req("no_manifest", "_x")).await,
        Code::FailedPrecondition,
        "BACKUP_INCOMPLETE",
    )?;
    assert_eq!(
        e.metadata().get("backup").map(String::as_str),
        Some("no_manifest")
    );

    std::fs::write(manifest_of("bad_manifest"), b"{ this is not a manifest")?;
    let e = refused(
        c.restore_backup(restore_req("bad_manifest", "_x")).await,
        Code::DataLoss,
        "MANIFEST_INVALID",
    )?;
    assert!(e.to_string().contains("bad_manifest"), "{e}");

    let manifest = c
        .get_backup(pb::GetBackupRequest {
            name: "missing_file".into(),
            repository: "local".into(),
        })
        .await?
        .manifest
        .context("manifest")?;
    let victim = manifest_files(&manifest)
        .next()
        .context("a file")?
        .path
        .clone();
    std::fs::remove_file(repo.join(&victim))?;
    let done = restore("missing_file").await?;
    let err = failed(&done, "DATA_LOSS", "FILE_MISSING")?;
    assert!(err.message.contains(&victim), "{err:?}");
    ensure!(!fake.has_collection("", "c1_missing_file"));
    let verified = run_job(
        &c,
        c.verify_backup(pb::VerifyBackupRequest {
            name: "missing_file".into(),
            repository: "local".into(),
            deep: false,
        })
        .await?,
    )
    .await?;
    failed(&verified, "DATA_LOSS", "FILE_MISSING")?;

    // A vector binlog of one segment (a column the restore does not decode itself; a
    // cut primary-key binlog is FILE_CORRUPT before any import) cut in half, the
    // manifest made to agree.
    let manifest = c
        .get_backup(pb::GetBackupRequest {
            name: "unreadable".into(),
            repository: "local".into(),
        })
        .await?
        .manifest
        .context("manifest")?;
    let file = manifest
        .collections
        .iter()
        .flat_map(|c| &c.segments)
        .flat_map(|s| &s.insert_logs)
        .filter(|f| f.field_id > 100)
        .max_by_key(|f| f.size_bytes)
        .context("a vector binlog")?
        .clone();
    let path = repo.join(&file.path);
    let mut bytes = std::fs::read(&path)?;
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, &bytes)?;
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifest_of("unreadable"))?)?;
    let edited = edit_file(&mut json, &file.path, bytes.len() as u64, &sha);
    ensure!(
        edited == 1,
        "the file is listed {edited} times in the manifest"
    );
    std::fs::write(manifest_of("unreadable"), serde_json::to_vec(&json)?)?;
    let done = restore("unreadable").await?;
    let err = failed(&done, "DATA_LOSS", "FILE_CORRUPT")?;
    assert!(err.message.contains("truncated"), "{err:?}");
    ensure!(
        fake.recorded()
            .imports
            .iter()
            .all(|i| i.collection_name != "c1_unreadable"),
        "a file the restore could not decode was given to Milvus"
    );
    ensure!(
        !fake.has_collection("", "c1_unreadable"),
        "{:?}",
        done.cleanup
    );
    ensure!(
        files_under(&fake.root().join("milvault-staging")).is_empty(),
        "staged files left"
    );
    Ok(())
}

/// Sets size and SHA-256 of every file entry `path` of a manifest (proto3 JSON);
/// returns how many were changed.
fn edit_file(v: &mut serde_json::Value, path: &str, size: u64, sha: &str) -> usize {
    match v {
        serde_json::Value::Object(m) => {
            if m.get("path").and_then(|p| p.as_str()) == Some(path) {
                m.insert("sizeBytes".into(), size.to_string().into());
                m.insert("sha256".into(), sha.into());
                return 1;
            }
            m.values_mut().map(|x| edit_file(x, path, size, sha)).sum()
        }
        serde_json::Value::Array(a) => a.iter_mut().map(|x| edit_file(x, path, size, sha)).sum(),
        _ => 0,
    }
}

/// A storage section OpenDAL cannot build stops the server at start-up with
/// `STORAGE_CONFIG` naming the repository; a job journal that is not one is refused
/// naming `server.state_dir`.
#[tokio::test]
async fn start_up_failures_have_reasons() -> Result<()> {
    let state = tempfile::tempdir()?;
    let toml = |storage: &str| {
        format!(
            "[server]\nstate_dir = \"{}\"\n[repositories.broken]\nstorage = {storage}\n[clusters.a]\naddress = \"http://127.0.0.1:1\"\nstorage = {{ scheme = \"fs\", root = \"/tmp\" }}\n",
            state.path().display()
        )
    };
    // S3 without a bucket.
    let config = milvault_server::Config::from_toml(&toml(
        "{ scheme = \"s3\", endpoint = \"http://127.0.0.1:1\", region = \"us-east-1\" }",
    ))?;
    let e = match milvault_server::App::new(config) {
        Err(e) => e,
        Ok(_) => anyhow::bail!("a repository without a bucket was accepted"),
    };
    assert_eq!(e.reason().as_str(), "STORAGE_CONFIG", "{e}");
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.to_string().contains("broken"), "{e}");

    std::fs::write(state.path().join("jobs.redb"), "not a redb file")?;
    let config = milvault_server::Config::from_toml(&toml(
        "{ scheme = \"fs\", root = \"/tmp/milvault-reasons\" }",
    ))?;
    let e = match milvault_server::App::new(config) {
        Err(e) => e,
        Ok(_) => anyhow::bail!("a damaged job journal was opened"),
    };
    assert_eq!(e.reason().as_str(), "INVALID_ARGUMENT", "{e}");
    assert!(e.to_string().contains("state_dir"), "{e}");
    Ok(())
}

/// Reasons no test provokes from outside, and why.
/// - `Internal`: a bug or an impossible state (a Milvus answer missing a column it
///   always has, a journal task that panicked); no input reaches it. How it is shown
///   (a summary and an id, the detail only in the log) is tested in `error.rs`.
const NOT_PROVOKED: [Reason; 1] = [Reason::Internal];

/// Every reason of the list is asserted (as its quoted text) by at least one test
/// under `tests/tests/`, except [`NOT_PROVOKED`]: a new reason needs a test that
/// provokes it.
#[test]
fn every_reason_has_a_test_that_provokes_it() -> Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut sources = String::new();
    for e in std::fs::read_dir(&dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "rs") {
            sources.push_str(&std::fs::read_to_string(&p)?);
        }
    }
    let untested: Vec<&str> = Reason::ALL
        .iter()
        .filter(|r| !NOT_PROVOKED.contains(r))
        .map(|r| r.as_str())
        .filter(|r| !sources.contains(&format!("\"{r}\"")))
        .collect();
    ensure!(
        untested.is_empty(),
        "reasons no test under tests/tests/ asserts: {untested:?}"
    );
    Ok(())
}
