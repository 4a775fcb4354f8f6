//! Bad input gets a precise status: unknown names are NOT_FOUND, malformed ones
//! INVALID_ARGUMENT, duplicates ALREADY_EXISTS; failures that need Milvus (an
//! existing target collection, an unreachable server) fail the job with that code.

use milvault_sdk::{SdkError, pb};
use milvault_tests::complete::manifest_files;
use milvault_tests::fake_milvus::FakeMilvus;
use milvault_tests::fixtures::{Fixture, seed};
use milvault_tests::harness::{
    Minimal, MinimalCluster, TestEnv, TestServer, assert_succeeded, run_job, unique,
};
use milvault_tests::milvus_data::{DataClient, Field, dt};
use tonic::Code;

fn code(r: Result<pb::Job, SdkError>) -> (Code, String) {
    match r {
        Err(SdkError::Status(s)) => (s.code(), s.message().to_owned()),
        other => panic!("expected an error status, got {other:?}"),
    }
}

fn small(name: &str) -> Fixture {
    Fixture {
        name: name.to_owned(),
        fields: vec![
            Field::new("pk", dt::INT64).primary(),
            Field::new("v", dt::FLOAT_VECTOR).param("dim", 4),
        ],
        batches: vec![("_default".into(), 50)],
        partitions: vec![],
        deletes: vec![],
        deleted: 0,
        indexes: vec![],
        shards: 1,
        load: false,
    }
}

/// Names and requests are checked at the edge, before any Milvus is asked: a fake
/// Milvus is enough (and records that nothing reached it).
#[tokio::test]
async fn bad_names_get_precise_statuses_before_milvus_is_asked() -> anyhow::Result<()> {
    let fake = FakeMilvus::new("v2.3.5");
    let addr = fake.serve().await?;
    let data = tempfile::tempdir()?;
    let cluster = |name: &str| MinimalCluster {
        name: name.into(),
        address: addr.clone(),
        management: None,
        root: data.path().to_path_buf(),
        extra: String::new(),
    };
    let config = Minimal {
        clusters: vec![cluster("a"), cluster("b")],
        ..Default::default()
    };
    let server = TestServer::start_minimal(&config, vec![]).await?;
    let c = server.client().await?;
    let req = |name: &str, cluster: &str, repo: &str, filter: &[&str]| pb::CreateBackupRequest {
        name: name.into(),
        cluster: cluster.into(),
        repository: repo.into(),
        collections: filter.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };

    let (code_, msg) = code(c.create_backup(req("ok1", "nope", "local", &[])).await);
    assert_eq!(code_, Code::NotFound);
    assert!(msg.contains("nope") && msg.contains("a, b"), "{msg}");
    let (code_, msg) = code(c.create_backup(req("ok1", "a", "nope", &[])).await);
    assert_eq!(code_, Code::NotFound);
    assert!(msg.contains("repository"), "{msg}");
    let (code_, _) = code(c.create_backup(req("", "a", "local", &[])).await);
    assert_eq!(code_, Code::InvalidArgument);
    let (code_, msg) = code(c.create_backup(req("bad/name", "a", "local", &[])).await);
    assert_eq!(code_, Code::InvalidArgument);
    assert!(msg.contains("backup name"), "{msg}");
    let (code_, msg) = code(c.create_backup(req("ok1", "a", "local", &["db.x.y"])).await);
    assert_eq!(code_, Code::InvalidArgument);
    assert!(msg.contains("collection filter"), "{msg}");
    // Several clusters are configured: a request must name one.
    let (code_, _) = code(c.create_backup(req("ok1", "", "local", &[])).await);
    assert_eq!(code_, Code::InvalidArgument);

    match c
        .get_backup(pb::GetBackupRequest {
            name: "missing_backup".into(),
            repository: "local".into(),
        })
        .await
    {
        Err(e) => {
            assert_eq!(e.code(), Some(Code::NotFound));
            assert_eq!(e.reason().as_deref(), Some("BACKUP_NOT_FOUND"));
            assert_eq!(
                e.metadata().get("backup").map(String::as_str),
                Some("missing_backup")
            );
        }
        other => panic!("{other:?}"),
    }
    let (code_, _) = code(
        c.restore_backup(pb::RestoreBackupRequest {
            backup: "missing_backup".into(),
            cluster: "a".into(),
            repository: "local".into(),
            ..Default::default()
        })
        .await,
    );
    assert_eq!(code_, Code::NotFound);
    let (code_, _) = code(
        c.delete_backup(pb::DeleteBackupRequest {
            name: "missing_backup".into(),
            repository: "local".into(),
        })
        .await,
    );
    assert_eq!(code_, Code::NotFound);
    match c
        .get_job(pb::GetJobRequest {
            id: "no-such-job".into(),
        })
        .await
    {
        Err(e) => assert_eq!(e.reason().as_deref(), Some("JOB_NOT_FOUND")),
        other => panic!("{other:?}"),
    }
    let calls = fake.recorded().calls;
    assert!(
        calls.is_empty(),
        "a refused request reached Milvus: {calls:?}"
    );
    server.stop().await;
    Ok(())
}

/// What needs a real Milvus: duplicates, existing targets, damaged files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_precise_statuses() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let server = TestServer::start(&env).await?;
    let c = server.client().await?;
    let req = |name: &str, cluster: &str, repo: &str, filter: &[&str]| pb::CreateBackupRequest {
        name: name.into(),
        cluster: cluster.into(),
        repository: repo.into(),
        collections: filter.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };

    // A real backup, then the same name again.
    let a = DataClient::connect(&env.a_addr).await?;
    let coll = unique("err");
    seed(&a, "default", &small(&coll), 1).await?;
    let name = unique("bk");
    let job = c.create_backup(req(&name, "a", "local", &[&coll])).await?;
    assert_succeeded(&run_job(&c, job).await?);
    let (code_, msg) = code(c.create_backup(req(&name, "a", "local", &[&coll])).await);
    assert_eq!(code_, Code::AlreadyExists);
    assert!(msg.contains(&name), "{msg}");

    // Restoring over the existing source collection without drop_existing.
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: name.clone(),
            cluster: "a".into(),
            repository: "local".into(),
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_eq!(done.state, pb::JobState::Failed as i32);
    let err = done.error.expect("error");
    assert_eq!(err.code, "ALREADY_EXISTS");
    assert_eq!(err.reason, "COLLECTION_EXISTS");
    assert!(
        err.message.contains(&coll) && err.message.contains("drop_existing"),
        "{}",
        err.message
    );
    // The failed restore changed nothing: the source still has its rows.
    assert_eq!(
        a.partitions("default", &coll).await?,
        vec!["_default".to_string()]
    );

    // Verify reads every file back: clean now.
    let job = c
        .verify_backup(pb::VerifyBackupRequest {
            name: name.clone(),
            repository: "local".into(),
            deep: false,
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    let p = done.progress.expect("progress");
    assert!(p.files_done > 0 && p.files_done == p.files_total, "{p:?}");

    // A damaged file in the repository is caught by its checksum while staging, the
    // restore fails with DATA_LOSS, and the half-made collection is dropped again.
    let manifest = c
        .get_backup(pb::GetBackupRequest {
            name: name.clone(),
            repository: "local".into(),
        })
        .await?
        .manifest
        .expect("manifest");
    let victim = manifest_files(&manifest)
        .find(|f| f.size_bytes > 64)
        .expect("a file")
        .path
        .clone();
    let path = server.repo_dir.join(&victim);
    let mut bytes = std::fs::read(&path)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes)?;
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: name.clone(),
            cluster: "b".into(),
            repository: "local".into(),
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    let err = done.error.expect("corruption detected");
    assert_eq!(
        (err.code.as_str(), err.reason.as_str()),
        ("DATA_LOSS", "FILE_CORRUPT"),
        "{}",
        err.message
    );
    assert!(err.message.contains("SHA-256"), "{}", err.message);
    let b = DataClient::connect(&env.b_addr).await?;
    assert!(
        !b.has_collection("default", &coll).await?,
        "a failed restore left {coll} behind"
    );
    // ... and verify names the damaged file.
    let job = c
        .verify_backup(pb::VerifyBackupRequest {
            name: name.clone(),
            repository: "local".into(),
            deep: false,
        })
        .await?;
    let done = run_job(&c, job).await?;
    let err = done.error.expect("verify finds the damage");
    assert_eq!(err.code, "DATA_LOSS");
    assert!(err.message.contains(&victim), "{}", err.message);
    assert!(
        done.warnings.iter().any(|w| w.contains(&victim)),
        "{:?}",
        done.warnings
    );

    // A backup of a collection that does not exist.
    let job = c
        .create_backup(req(&unique("bk"), "a", "local", &["no_such_collection_x"]))
        .await?;
    let done = run_job(&c, job).await?;
    assert_eq!(done.error.expect("error").code, "NOT_FOUND");

    // An unknown collection in a restore filter is refused before any job starts.
    let (code_, _) = code(
        c.restore_backup(pb::RestoreBackupRequest {
            backup: name.clone(),
            cluster: "a".into(),
            repository: "local".into(),
            collections: vec!["not_in_backup".into()],
            ..Default::default()
        })
        .await,
    );
    assert_eq!(code_, Code::NotFound);
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn unreachable_milvus_fails_the_job_with_unavailable() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let config = Minimal {
        clusters: vec![MinimalCluster {
            name: "down".into(),
            address: "http://127.0.0.1:1".into(),
            management: None,
            root: env.a_data.clone().into(),
            extra: "connect_timeout_secs = 2".into(),
        }],
        ..Default::default()
    };
    let server = TestServer::start_minimal(&config, vec![]).await?;
    let c = server.client().await?;
    // One cluster and one repository: both names may be omitted.
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: "b1".into(),
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_eq!(done.state, pb::JobState::Failed as i32);
    let err = done.error.expect("error");
    assert_eq!(err.code, "UNAVAILABLE");
    assert_eq!(err.reason, "MILVUS_UNAVAILABLE");
    assert!(
        err.message.contains("http://127.0.0.1:1"),
        "{}",
        err.message
    );
    // The failed backup left no manifest: it is not listed as usable.
    let listed = c
        .list_backups(pb::ListBackupsRequest {
            repository: String::new(),
            ..Default::default()
        })
        .await?;
    assert!(
        listed
            .iter()
            .all(|b| b.state != pb::BackupState::Complete as i32),
        "{listed:?}"
    );
    server.stop().await;
    Ok(())
}
