//! Faults, injected (issue 9): what a user sees when object storage misbehaves, a
//! repository disk fills up, Milvus is killed mid-job, or jobs collide.
//!
//! - Object storage: a [`FaultProxy`] between milvault and the S3 server of the test
//!   services (moto) answers 503 to a share of requests, resets connections halfway
//!   through responses and stalls others; jobs retry the failed request only and
//!   succeed, and a store that stays down fails the job `UNAVAILABLE` naming it.
//! - A repository on a small tmpfs: a backup that does not fit fails
//!   `RESOURCE_EXHAUSTED` and leaves the backups before it as they were.
//! - Milvus killed (`kill -9`) during a backup and during a restore: a Milvus 2.3.5
//!   of this test's own, in its own network namespace (the shared instances serve
//!   other tests), killed and restarted on the same data.
//! - Ten backups at once, and the refusals of jobs that would collide.
//!
//! Timing: the object-storage test measures the same backup with and without faults
//! (the faster of two runs each) and asserts that faults cost at most 3× the clean time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use futures::StreamExt;
use milvault_sdk::{Client, pb};
use milvault_tests::complete::manifest_files;
use milvault_tests::fault_proxy::{FaultProxy, Faults};
use milvault_tests::fixtures::{Fixture, compare, seed};
use milvault_tests::harness::{
    TestEnv, TestServer, assert_succeeded, run_job, spawn_server, unique,
};
use milvault_tests::milvus_data::{DataClient, Field, dt};

// ------------------------------------------------------------------ helpers --

/// One INT64 key and one float vector of `dim`; `batches` flushed segments of `rows`
/// rows each, random (incompressible) vectors, a FLAT index.
fn vectors(name: &str, batches: usize, rows: usize, dim: usize, load: bool) -> Fixture {
    Fixture {
        name: name.to_owned(),
        fields: vec![
            Field::new("pk", dt::INT64).primary(),
            Field::new("v", dt::FLOAT_VECTOR).param("dim", dim),
        ],
        batches: vec![("_default".into(), rows); batches],
        partitions: vec![],
        deletes: vec![],
        deleted: 0,
        indexes: vec![(
            "v".into(),
            "v_flat".into(),
            vec![
                ("index_type".into(), "FLAT".into()),
                ("metric_type".into(), "L2".into()),
            ],
        )],
        shards: 1,
        load,
    }
}

/// An S3 storage table for `endpoint` (the proxy), as the test services run it.
fn s3_storage(env: &TestEnv, endpoint: &str, bucket: &str, root: &str) -> String {
    format!(
        r#"{{ scheme = "s3", endpoint = "{endpoint}", bucket = "{bucket}", root = "{root}", region = "{}", access_key_id = "{}", secret_access_key = "{}" }}"#,
        env.s3_region, env.s3_access_key, env.s3_secret_key
    )
}

/// `[server]` with a fresh state folder, and a local repository `local` at `repo`.
fn server_head(state: &Path, repo: &Path, extra: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n{extra}\n[repositories.local]\nstorage = {{ scheme = \"fs\", root = \"{}\" }}\n",
        state.display(),
        repo.display()
    )
}

/// Backs up one collection and waits for the job's end (at most 5 minutes: a job
/// still running then is reported with its phase, as a hang).
async fn backup(c: &Client, name: &str, cluster: &str, repo: &str, coll: &str) -> Result<pb::Job> {
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: name.into(),
            cluster: cluster.into(),
            repository: repo.into(),
            collections: vec![coll.into()],
            ..Default::default()
        })
        .await?;
    let id = job.id.clone();
    match tokio::time::timeout(Duration::from_secs(300), run_job(c, job)).await {
        Ok(done) => done,
        Err(_) => {
            let j = c.get_job(pb::GetJobRequest { id }).await?;
            bail!(
                "backup {name} still {:?} after 300 s, phase {:?} {:?}, progress {:?}",
                j.state(),
                j.phase(),
                j.phase_detail,
                j.progress
            )
        }
    }
}

/// The error of a job that must have failed.
fn failure(job: &pb::Job) -> Result<pb::JobError> {
    ensure!(
        job.state() == pb::JobState::Failed,
        "job {} ended {:?}, not FAILED: {:?}",
        job.id,
        job.state(),
        job.error
    );
    job.error.clone().context("a failed job carries its error")
}

/// Whether `repository` lists `name` as a complete backup.
async fn listed_complete(c: &Client, repository: &str, name: &str) -> Result<bool> {
    let all = c
        .list_backups(pb::ListBackupsRequest {
            repository: repository.into(),
            ..Default::default()
        })
        .await?;
    Ok(all
        .iter()
        .any(|b| b.name == name && b.state() == pb::BackupState::Complete))
}

/// Files under `dir`, recursively, with their SHA-256.
fn files_with_hashes(dir: &Path) -> BTreeMap<PathBuf, String> {
    use sha2::{Digest, Sha256};
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.insert(p, hex::encode(Sha256::digest(&bytes)));
            }
        }
    }
    out
}

/// Source key → SHA-256 of every file of a backup's manifest.
async fn manifest_hashes(c: &Client, repo: &str, name: &str) -> Result<BTreeMap<String, String>> {
    let b = c
        .get_backup(pb::GetBackupRequest {
            name: name.into(),
            repository: repo.into(),
        })
        .await?;
    let m = b.manifest.context("a complete backup has a manifest")?;
    Ok(manifest_files(&m)
        .map(|f| (f.source_key.clone(), f.sha256.clone()))
        .collect())
}

/// Waits until the job reaches one of `phases` (watching its stream); fails if it
/// ends first.
async fn wait_for_phase(c: &Client, id: &str, phases: &[pb::JobPhase]) -> Result<pb::JobPhase> {
    let mut stream = Box::pin(
        c.watch_job(pb::WatchJobRequest { id: id.to_owned() })
            .await?,
    );
    while let Some(j) = stream.next().await {
        let j = j?;
        if phases.contains(&j.phase()) {
            return Ok(j.phase());
        }
        ensure!(
            !j.state().is_terminal(),
            "job ended before {phases:?}: {:?} {:?}",
            j.state(),
            j.error
        );
    }
    bail!("the watch ended before {phases:?}")
}

async fn verify(c: &Client, repo: &str, name: &str, deep: bool) -> Result<pb::Job> {
    let job = c
        .verify_backup(pb::VerifyBackupRequest {
            name: name.into(),
            repository: repo.into(),
            deep,
        })
        .await?;
    run_job(c, job).await
}

// ---------------------------------------------------------- object storage --

/// A backup of a collection of Milvus B (binlogs on S3) into an S3 repository, both
/// through the fault proxy: without faults, then with 503 on 20 % of requests and
/// resets on 10 %, then with stalls. Every backup succeeds with the same bytes, the
/// faulty one verifies and restores row for row under the same faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn object_store_faults_are_retried_request_by_request() -> Result<()> {
    let env = TestEnv::from_env()?;
    let b = DataClient::connect(&env.b_addr).await?;
    // Three segments of 5.3 MiB vectors each: multipart uploads (5 MiB parts) and
    // reads long enough to be cut halfway. 16,200 rows: `dump` reads them all.
    let fx = vectors(&unique("flt"), 3, 5400, 256, false);
    seed(&b, "default", &fx, 11).await?;

    let proxy = FaultProxy::start(&env.s3_endpoint, 20261202).await?;
    let (state, local) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let repo_root = format!("/{}/", unique("faults"));
    let toml = format!(
        "{}\n[repositories.s3]\nstorage = {}\n[clusters.b]\naddress = \"{}\"\nmanagement = \"{}\"\nusername = \"root\"\npassword = \"Milvus\"\nstorage = {}\n[timeouts]\nstorage_io_secs = 2\nstorage_op_secs = 3\n",
        server_head(state.path(), local.path(), ""),
        s3_storage(&env, &proxy.url(), "milvault-repo", &repo_root),
        env.b_addr,
        env.b_mgmt,
        s3_storage(&env, &proxy.url(), &env.b_bucket, &env.b_root),
    );
    let server = TestServer::start_with(&toml, vec![state, local]).await?;
    let c = server.client().await?;

    // Clean and faulty backups alternate, twice each, and the faster of each pair
    // counts: on a shared 2-core machine a single run of a couple of seconds is at the
    // mercy of whatever else runs at that moment.
    let faults = Faults {
        unavailable: 0.2,
        reset: 0.1,
        ..Faults::none()
    };
    let (mut clean_time, mut faulty_time) = (Duration::MAX, Duration::MAX);
    let mut hit = milvault_tests::fault_proxy::Counts::default();
    for round in ["", "_again"] {
        proxy.set(Faults::none());
        proxy.reset_counts();
        let t = Instant::now();
        let clean = backup(&c, &format!("clean{round}"), "b", "s3", &fx.name).await?;
        clean_time = clean_time.min(t.elapsed());
        assert_succeeded(&clean);
        let seen = proxy.counts();
        ensure!(
            seen.requests > 0,
            "nothing went through the proxy: {seen:?}"
        );
        ensure!(
            seen.forwarded == seen.requests,
            "faults without being asked: {seen:?}"
        );

        proxy.set(faults);
        proxy.reset_counts();
        let t = Instant::now();
        let faulty = backup(&c, &format!("faulty{round}"), "b", "s3", &fx.name).await?;
        faulty_time = faulty_time.min(t.elapsed());
        assert_succeeded(&faulty);
        let got = proxy.counts();
        hit.requests += got.requests;
        hit.unavailable += got.unavailable;
        hit.resets += got.resets;
    }
    proxy.set(Faults::none());
    ensure!(
        hit.unavailable > 0 && hit.resets > 0,
        "the faults did not happen: {hit:?}"
    );
    let size = c
        .get_backup(pb::GetBackupRequest {
            name: "clean".into(),
            repository: "s3".into(),
        })
        .await?
        .summary
        .map_or(0, |s| s.size_bytes);
    let ratio = faulty_time.as_secs_f64() / clean_time.as_secs_f64();
    eprintln!(
        "backup of {:.1} MiB: {:.2} s clean, {:.2} s with 503 on 20 % and resets on 10 % of requests: {ratio:.2}x; {} requests, {} answered 503, {} reset",
        size as f64 / (1 << 20) as f64,
        clean_time.as_secs_f64(),
        faulty_time.as_secs_f64(),
        hit.requests,
        hit.unavailable,
        hit.resets
    );
    ensure!(
        ratio <= 3.0,
        "under faults a backup took {ratio:.2}x its clean time ({:.2} s against {:.2} s), more than 3x",
        faulty_time.as_secs_f64(),
        clean_time.as_secs_f64()
    );
    // Retried reads and uploads copied the same bytes.
    let want = manifest_hashes(&c, "s3", "clean").await?;
    ensure!(want.len() >= 6, "only {} files backed up", want.len());
    assert_eq!(manifest_hashes(&c, "s3", "faulty").await?, want);
    assert_eq!(manifest_hashes(&c, "s3", "faulty_again").await?, want);

    // Stalled requests are timed out (2 s here) and retried.
    proxy.reset_counts();
    proxy.set(Faults {
        stall: 0.1,
        ..Faults::none()
    });
    let t = Instant::now();
    let stalled = backup(&c, "stalled", "b", "s3", &fx.name).await?;
    assert_succeeded(&stalled);
    let hit = proxy.counts();
    eprintln!(
        "backup with 10 % of requests stalled: {:.2} s ({} requests, {} stalled)",
        t.elapsed().as_secs_f64(),
        hit.requests,
        hit.stalls
    );
    ensure!(hit.stalls > 0, "no request was stalled: {hit:?}");
    assert_eq!(manifest_hashes(&c, "s3", "stalled").await?, want);

    // Under the first faults again: the faulty backup verifies (every file re-read
    // and hashed) and restores into B (staged through the proxy) row for row.
    proxy.set(Faults {
        unavailable: 0.2,
        reset: 0.1,
        ..Faults::none()
    });
    assert_succeeded(&verify(&c, "s3", "faulty", false).await?);
    let restored = format!("{}_r", fx.name);
    b.drop_collection_if_exists("default", &restored).await?;
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: "faulty".into(),
            cluster: "b".into(),
            repository: "s3".into(),
            suffix: "_r".into(),
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    proxy.set(Faults::none());
    compare(&b, "default", &fx.name, &b, "default", &restored, false).await?;
    b.drop_collection_if_exists("default", &restored).await?;
    b.drop_collection_if_exists("default", &fx.name).await?;
    Ok(())
}

/// A store that stays down fails the job `UNAVAILABLE` naming the store, within a
/// bounded time, and no manifest is written: the cluster's binlog storage refusing
/// connections from the start, then answering none of its requests (every storage
/// call has a timeout), then the repository going down once the job runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_stays_down_fails_the_job_unavailable_naming_it() -> Result<()> {
    let env = TestEnv::from_env()?;
    let b = DataClient::connect(&env.b_addr).await?;
    let fx = vectors(&unique("down"), 1, 2000, 8, false);
    seed(&b, "default", &fx, 3).await?;

    let cluster_proxy = FaultProxy::start(&env.s3_endpoint, 1).await?;
    let repo_proxy = FaultProxy::start(&env.s3_endpoint, 2).await?;
    let (state, local) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let local_dir = local.path().to_path_buf();
    let toml = format!(
        "{}\n[repositories.s3]\nstorage = {}\n[clusters.b]\naddress = \"{}\"\nmanagement = \"{}\"\nusername = \"root\"\npassword = \"Milvus\"\nstorage = {}\n[timeouts]\nstorage_io_secs = 2\nstorage_op_secs = 2\nstorage_retries = 5\n",
        server_head(state.path(), local.path(), ""),
        s3_storage(
            &env,
            &repo_proxy.url(),
            "milvault-repo",
            &format!("/{}/", unique("down"))
        ),
        env.b_addr,
        env.b_mgmt,
        s3_storage(&env, &cluster_proxy.url(), &env.b_bucket, &env.b_root),
    );
    let server = TestServer::start_with(&toml, vec![state, local]).await?;
    let c = server.client().await?;

    // The cluster's storage refuses every connection.
    cluster_proxy.set(Faults::down());
    let t = Instant::now();
    let done = backup(&c, "no_source", "b", "local", &fx.name).await?;
    let err = failure(&done)?;
    eprintln!(
        "cluster storage down: failed after {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        err.message
    );
    assert_eq!(err.code, "UNAVAILABLE", "{err:?}");
    assert_eq!(err.reason, "STORAGE_ERROR", "{err:?}");
    assert_eq!(
        err.metadata.get("storage").map(String::as_str),
        Some("cluster b"),
        "{err:?}"
    );
    assert!(err.message.contains("cluster b"), "{}", err.message);
    ensure!(
        cluster_proxy.counts().refused > 0,
        "the proxy refused nothing"
    );
    ensure!(
        t.elapsed() < Duration::from_secs(60),
        "a store that is down took {:?} to fail the job",
        t.elapsed()
    );
    ensure!(!listed_complete(&c, "local", "no_source").await?);
    ensure!(
        !local_dir.join("backups/no_source").exists(),
        "the failed backup left files"
    );

    // The cluster's storage takes every request and answers none: each attempt times
    // out (2 s here), and the job fails once the retries are spent.
    cluster_proxy.set(Faults {
        stall: 1.0,
        ..Faults::none()
    });
    let t = Instant::now();
    let done = backup(&c, "stalled_source", "b", "local", &fx.name).await?;
    let err = failure(&done)?;
    eprintln!(
        "cluster storage stalled: failed after {:.1} s: {}",
        t.elapsed().as_secs_f64(),
        err.message
    );
    assert_eq!(err.code, "UNAVAILABLE", "{err:?}");
    assert_eq!(
        err.metadata.get("storage").map(String::as_str),
        Some("cluster b"),
        "{err:?}"
    );
    ensure!(cluster_proxy.counts().stalls > 0, "nothing was stalled");
    ensure!(
        t.elapsed() < Duration::from_secs(90),
        "a store that never answers took {:?} to fail the job",
        t.elapsed()
    );
    ensure!(
        !local_dir.join("backups/stalled_source").exists(),
        "the failed backup left files"
    );
    cluster_proxy.set(Faults::none());

    // The repository goes down after the job was accepted.
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: "no_target".into(),
            cluster: "b".into(),
            repository: "s3".into(),
            collections: vec![fx.name.clone()],
            ..Default::default()
        })
        .await?;
    repo_proxy.set(Faults::down());
    let done = run_job(&c, job).await?;
    let err = failure(&done)?;
    assert_eq!(err.code, "UNAVAILABLE", "{err:?}");
    assert_eq!(
        err.metadata.get("storage").map(String::as_str),
        Some("repository s3"),
        "{err:?}"
    );
    assert!(err.message.contains("repository s3"), "{}", err.message);
    repo_proxy.set(Faults::none());
    ensure!(
        !listed_complete(&c, "s3", "no_target").await?,
        "a backup whose repository was down is listed complete"
    );
    let got = c
        .get_backup(pb::GetBackupRequest {
            name: "no_target".into(),
            repository: "s3".into(),
        })
        .await;
    ensure!(
        got.as_ref().map_or(true, |b| b.manifest.is_none()),
        "a manifest was written: {got:?}"
    );
    b.drop_collection_if_exists("default", &fx.name).await?;
    Ok(())
}

// -------------------------------------------------------------- disk full --

/// A tmpfs of a few MiB, mounted for the test and unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "milvault-faults",
            ])
            .arg(dir.path())
            .status()?;
        ensure!(
            status.success(),
            "mount -t tmpfs failed (the tests run as root)"
        );
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// A repository on a 6 MiB tmpfs: a backup that fits succeeds; one of 16 MiB fails
/// `RESOURCE_EXHAUSTED` naming the repository, leaves none of its files, and the
/// first backup is byte for byte as it was and still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_repository_fails_resource_exhausted_and_keeps_other_backups() -> Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let small = vectors(&unique("fits"), 1, 1000, 8, false);
    let big = vectors(&unique("toobig"), 2, 8000, 256, false);
    seed(&a, "default", &small, 5).await?;
    seed(&a, "default", &big, 6).await?;

    let disk = Tmpfs::mount("6m")?;
    let state = tempfile::tempdir()?;
    let toml = format!(
        "{}\n[clusters.a]\naddress = \"{}\"\nmanagement = \"{}\"\nusername = \"root\"\npassword = \"Milvus\"\nstorage = {{ scheme = \"fs\", root = \"{}\" }}\n",
        server_head(state.path(), disk.path(), ""),
        env.a_addr,
        env.a_mgmt,
        env.a_data
    );
    let server = TestServer::start_with(&toml, vec![state]).await?;
    let c = server.client().await?;

    assert_succeeded(&backup(&c, "before", "a", "local", &small.name).await?);
    let before = files_with_hashes(disk.path());
    ensure!(!before.is_empty(), "the first backup wrote nothing");

    let done = backup(&c, "too_big", "a", "local", &big.name).await?;
    let err = failure(&done)?;
    assert_eq!(err.code, "RESOURCE_EXHAUSTED", "{err:?}");
    assert_eq!(err.reason, "STORAGE_FULL", "{err:?}");
    assert_eq!(
        err.metadata.get("storage").map(String::as_str),
        Some("repository local"),
        "{err:?}"
    );
    // Partial files removed; the other backup untouched.
    assert_eq!(files_with_hashes(disk.path()), before);
    ensure!(!disk.path().join("backups/too_big").exists());
    ensure!(!listed_complete(&c, "local", "too_big").await?);
    assert_succeeded(&verify(&c, "local", "before", true).await?);
    server.stop().await;
    a.drop_collection_if_exists("default", &small.name).await?;
    a.drop_collection_if_exists("default", &big.name).await?;
    Ok(())
}

// ------------------------------------------------------------ concurrency --

/// Ten backups submitted at once all complete and verify; jobs that would collide
/// are refused with a status naming what is in use and by which job.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_backups_at_once_complete_and_colliding_jobs_are_refused() -> Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let fx = vectors(&unique("ten"), 2, 1000, 8, false);
    seed(&a, "default", &fx, 10).await?;
    let (state, repo) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let toml = env
        .config_toml(state.path(), repo.path(), "milvault-repo")
        .replacen("[server]\n", "[server]\nmax_running_jobs = 10\n", 1);
    let server = TestServer::start_with(&toml, vec![state, repo]).await?;
    let c = server.client().await?;

    let names: Vec<String> = (0..10).map(|i| format!("at_once_{i}")).collect();
    let submitted = futures::future::join_all(names.iter().map(|n| {
        c.create_backup(pb::CreateBackupRequest {
            name: n.clone(),
            cluster: "a".into(),
            repository: "local".into(),
            collections: vec![fx.name.clone()],
            ..Default::default()
        })
    }))
    .await;
    let jobs = submitted.into_iter().collect::<Result<Vec<_>, _>>()?;
    let done = futures::future::join_all(jobs.into_iter().map(|j| run_job(&c, j))).await;
    let mut rows = Vec::new();
    for d in done {
        let d = d?;
        assert_succeeded(&d);
        rows.push(d.report.map(|r| r.collections[0].rows).unwrap_or(-1));
    }
    ensure!(
        rows.iter().all(|r| *r == 2000),
        "every backup holds the 2000 rows: {rows:?}"
    );
    let verified =
        futures::future::join_all(names.iter().map(|n| verify(&c, "local", n, false))).await;
    for v in verified {
        assert_succeeded(&v?);
    }

    // The same backup name twice: the name is taken while the first runs.
    let first = c
        .create_backup(pb::CreateBackupRequest {
            name: "twice".into(),
            cluster: "a".into(),
            repository: "local".into(),
            collections: vec![fx.name.clone()],
            ..Default::default()
        })
        .await?;
    let again = c
        .create_backup(pb::CreateBackupRequest {
            name: "twice".into(),
            cluster: "a".into(),
            repository: "local".into(),
            collections: vec![fx.name.clone()],
            ..Default::default()
        })
        .await
        .expect_err("the name is in use");
    assert_eq!(again.code(), Some(tonic::Code::AlreadyExists), "{again}");
    assert_eq!(again.reason().as_deref(), Some("BACKUP_EXISTS"), "{again}");
    assert_eq!(
        again.metadata().get("backup").map(String::as_str),
        Some("twice")
    );
    assert_succeeded(&run_job(&c, first).await?);

    // A restore into a collection another running restore is creating, and the
    // delete of a backup being restored from: refused, naming the running job.
    let target = format!("{}_t", fx.name);
    a.drop_collection_if_exists("default", &target).await?;
    let restore = |backup: &str| pb::RestoreBackupRequest {
        backup: backup.into(),
        cluster: "a".into(),
        repository: "local".into(),
        suffix: "_t".into(),
        ..Default::default()
    };
    let running = c.restore_backup(restore("at_once_0")).await?;
    let clash = c
        .restore_backup(restore("at_once_1"))
        .await
        .expect_err("the target is being created");
    assert_eq!(
        clash.code(),
        Some(tonic::Code::FailedPrecondition),
        "{clash}"
    );
    assert_eq!(clash.reason().as_deref(), Some("JOB_CONFLICT"), "{clash}");
    let md = clash.metadata();
    assert_eq!(
        md.get("resource").map(String::as_str),
        Some(format!("target:a/default.{target}").as_str()),
        "{md:?}"
    );
    assert_eq!(md.get("job"), Some(&running.id), "{md:?}");
    let clash = c
        .delete_backup(pb::DeleteBackupRequest {
            name: "at_once_0".into(),
            repository: "local".into(),
        })
        .await
        .expect_err("the backup is being restored from");
    assert_eq!(clash.reason().as_deref(), Some("JOB_CONFLICT"), "{clash}");
    let md = clash.metadata();
    assert_eq!(
        md.get("resource").map(String::as_str),
        Some("backup:local/at_once_0"),
        "{md:?}"
    );
    assert_eq!(md.get("job"), Some(&running.id), "{md:?}");
    assert!(clash.to_string().contains(&running.id), "{clash}");

    // Once the restore ended, both go through.
    assert_succeeded(&run_job(&c, running).await?);
    let deleted = c
        .delete_backup(pb::DeleteBackupRequest {
            name: "at_once_0".into(),
            repository: "local".into(),
        })
        .await?;
    assert_succeeded(&run_job(&c, deleted).await?);
    a.drop_collection_if_exists("default", &target).await?;
    a.drop_collection_if_exists("default", &fx.name).await?;
    Ok(())
}

// ------------------------------------------------------------ Milvus killed --

/// A Milvus 2.3.5 of this test's own, in network namespace `milvault-f`
/// (10.97.0.2, reached over a veth pair from 10.97.0.1), on a data folder of its
/// own: `kill -9` and restart it without touching the shared services. Everything
/// (process, namespace, data) is removed when dropped; its log is kept unless the
/// test called [`DedicatedMilvus::passed`].
struct DedicatedMilvus {
    dir: PathBuf,
    child: Option<std::process::Child>,
    storage_root: PathBuf,
    keep_log: bool,
}

const NETNS: &str = "milvault-f";
const VETH_HOST: &str = "mvault-f-host";
const VETH_NS: &str = "mvault-f-ns";
const HOST_IP: &str = "10.97.0.1";
const NS_IP: &str = "10.97.0.2";

fn ip(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("ip").args(args).output()?;
    ensure!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Removes the namespace (and what a crashed earlier run of this test left in it).
fn netns_down() {
    if let Ok(out) = std::process::Command::new("ip")
        .args(["netns", "pids", NETNS])
        .output()
    {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = std::process::Command::new("kill")
                .args(["-9", pid])
                .status();
        }
    }
    let _ = ip(&["netns", "delete", NETNS]);
    let _ = ip(&["link", "delete", VETH_HOST]);
}

impl DedicatedMilvus {
    fn address() -> String {
        format!("http://{NS_IP}:19530")
    }

    fn management() -> String {
        format!("http://{NS_IP}:9091")
    }

    async fn start(env: &TestEnv) -> Result<Self> {
        netns_down();
        let used = std::process::Command::new("ip")
            .args(["-4", "-o", "addr", "show", "to", &format!("{HOST_IP}/24")])
            .output()?;
        ensure!(
            used.stdout.is_empty(),
            "{HOST_IP}/24 is in use on this host: {}",
            String::from_utf8_lossy(&used.stdout)
        );
        ip(&["netns", "add", NETNS])?;
        ip(&["netns", "exec", NETNS, "ip", "link", "set", "lo", "up"])?;
        ip(&[
            "link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS,
        ])?;
        ip(&["link", "set", VETH_NS, "netns", NETNS])?;
        ip(&["addr", "add", &format!("{HOST_IP}/24"), "dev", VETH_HOST])?;
        ip(&["link", "set", VETH_HOST, "up"])?;
        ip(&[
            "netns",
            "exec",
            NETNS,
            "ip",
            "addr",
            "add",
            &format!("{NS_IP}/24"),
            "dev",
            VETH_NS,
        ])?;
        ip(&["netns", "exec", NETNS, "ip", "link", "set", VETH_NS, "up"])?;
        let dir = std::env::temp_dir().join(unique("milvault-f"));
        std::fs::create_dir_all(&dir)?;
        let mut m = Self {
            dir,
            child: None,
            storage_root: PathBuf::new(),
            keep_log: true,
        };
        m.launch(env)?;
        m.wait_ready().await?;
        let conf = std::fs::read_to_string(m.dir.join("configs/milvus.yaml"))?;
        let path = conf
            .split("localStorage:")
            .nth(1)
            .and_then(|rest| rest.lines().find(|l| l.trim_start().starts_with("path:")))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.split('#').next().unwrap_or("").trim().to_owned())
            .context("localStorage.path in the rendered milvus.yaml")?;
        m.storage_root = PathBuf::from(path);
        Ok(m)
    }

    /// Starts Milvus as `scripts/services.sh` does (its launcher, the binaries
    /// setup.sh unpacked), in the namespace, on this instance's data folder.
    fn launch(&mut self, env: &TestEnv) -> Result<()> {
        use std::os::unix::process::CommandExt;
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let tools = std::env::var_os("MILVAULT_TOOLS")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.join(".tools"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))?;
        // `ip netns exec` and the launcher both exec: the child is Milvus itself.
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", NETNS, &env.python])
            .arg(repo.join("scripts/lib/milvus_launch.py"))
            .arg("--data")
            .arg(&self.dir)
            .arg("--bin")
            .arg(tools.join("milvus-runtime/bin"))
            .args([
                "--metrics-port",
                "9091",
                "--set",
                "common.storageType=local",
                // After `kill -9`, Milvus waits for the dead instance's session to
                // expire (30 s by default) before it reloads collections.
                "--set",
                "common.session.ttl=5",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until Milvus answers requests (health, then a real RPC).
    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                bail!(
                    "Milvus exited ({status}); see {}",
                    self.dir.with_extension("log").display()
                );
            }
            if http_get(&format!("{NS_IP}:9091"), "/healthz")
                .await
                .is_ok_and(|b| b.contains("OK"))
                && let Ok(d) = DataClient::connect(&Self::address()).await
                && d.has_collection("default", "nothing_here").await.is_ok()
            {
                return Ok(());
            }
            ensure!(Instant::now() < deadline, "Milvus not ready after 180 s");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn kill9(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    /// The test passed: its log is not needed.
    fn passed(mut self) {
        self.keep_log = false;
    }

    async fn restart(&mut self, env: &TestEnv) -> Result<()> {
        self.kill9()?;
        self.launch(env)?;
        self.wait_ready().await
    }
}

impl Drop for DedicatedMilvus {
    fn drop(&mut self) {
        let _ = self.kill9();
        netns_down();
        let _ = std::fs::remove_dir_all(&self.dir);
        let log = self.dir.with_extension("log");
        if self.keep_log {
            eprintln!("the dedicated Milvus's log is kept: {}", log.display());
        } else {
            let _ = std::fs::remove_file(log);
        }
    }
}

/// A plain HTTP/1.0 GET; the body.
async fn http_get(hostport: &str, path: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(hostport),
    )
    .await??;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {hostport}\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out)).await??;
    Ok(out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

/// Milvus killed during a backup and during a restore: each job fails with the
/// cause, leaves nothing behind (no backup folder; no collection, no staged files),
/// and once Milvus is back the same request succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn milvus_killed_during_a_backup_and_a_restore() -> Result<()> {
    let env = TestEnv::from_env()?;
    let mut milvus = DedicatedMilvus::start(&env).await?;
    let data = DataClient::connect(&DedicatedMilvus::address()).await?;
    let fx = vectors("killed", 2, 6000, 128, true);
    seed(&data, "default", &fx, 4).await?;

    let (state, repo) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let repo_dir = repo.path().to_path_buf();
    let toml = format!(
        "{}\n[clusters.f]\naddress = \"{}\"\nmanagement = \"{}\"\nstorage = {{ scheme = \"fs\", root = \"{}\" }}\nconnect_timeout_secs = 3\n[timeouts]\nrpc_secs = 20\ncleanup_secs = 180\n",
        server_head(state.path(), repo.path(), ""),
        DedicatedMilvus::address(),
        DedicatedMilvus::management(),
        milvus.storage_root.display()
    );
    let server = TestServer::start_with(&toml, vec![state, repo]).await?;
    let c = server.client().await?;

    // Killed while the backup lists and copies segment files.
    let request = pb::CreateBackupRequest {
        name: "nightly".into(),
        cluster: "f".into(),
        repository: "local".into(),
        collections: vec![fx.name.clone()],
        ..Default::default()
    };
    let job = c.create_backup(request.clone()).await?;
    let phase = wait_for_phase(
        &c,
        &job.id,
        &[
            pb::JobPhase::Listing,
            pb::JobPhase::Copying,
            pb::JobPhase::Counting,
        ],
    )
    .await?;
    milvus.kill9()?;
    let done = run_job(&c, job).await?;
    let err = failure(&done)?;
    eprintln!("backup, Milvus killed at {phase:?}: {}", err.message);
    assert_eq!(err.reason, "MILVUS_UNAVAILABLE", "{err:?}");
    assert_eq!(err.code, "UNAVAILABLE", "{err:?}");
    assert_eq!(err.metadata.get("cluster").map(String::as_str), Some("f"));
    ensure!(
        !repo_dir.join("backups/nightly").exists(),
        "the failed backup left files: {:?}",
        files_with_hashes(&repo_dir.join("backups/nightly")).keys()
    );
    ensure!(!listed_complete(&c, "local", "nightly").await?);

    milvus.restart(&env).await?;
    // Back means serving again: a Milvus restarted after `kill -9` reloads its loaded
    // collections only once the dead instance's session expired (`common.session.ttl`),
    // and a backup of a collection still loading cannot count its rows.
    DataClient::connect(&DedicatedMilvus::address())
        .await?
        .wait_loaded("default", &fx.name)
        .await?;
    let again = run_job(&c, c.create_backup(request).await?).await?;
    assert_succeeded(&again);

    // Killed while the restore imports; Milvus comes back while the job cleans up.
    let request = pb::RestoreBackupRequest {
        backup: "nightly".into(),
        cluster: "f".into(),
        repository: "local".into(),
        suffix: "_r".into(),
        ..Default::default()
    };
    let restored = format!("{}_r", fx.name);
    let job = c.restore_backup(request.clone()).await?;
    wait_for_phase(&c, &job.id, &[pb::JobPhase::Importing]).await?;
    milvus.kill9()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    milvus.restart(&env).await?;
    let done = run_job(&c, job).await?;
    let err = failure(&done)?;
    eprintln!(
        "restore, Milvus killed while importing: {}; cleanup: {:?}",
        err.message, done.cleanup
    );
    assert_eq!(err.reason, "MILVUS_UNAVAILABLE", "{err:?}");
    let data = DataClient::connect(&DedicatedMilvus::address()).await?;
    ensure!(
        !data.has_collection("default", &restored).await?,
        "the half-restored collection is still there; cleanup: {:?}",
        done.cleanup
    );
    ensure!(
        done.cleanup
            .iter()
            .any(|n| n.contains("dropped") && n.contains(&restored)),
        "{:?}",
        done.cleanup
    );
    let staged = files_with_hashes(&milvus.storage_root.join("milvault-staging"));
    ensure!(staged.is_empty(), "staged files left: {:?}", staged.keys());

    data.wait_loaded("default", &fx.name).await?;
    let again = run_job(&c, c.restore_backup(request).await?).await?;
    assert_succeeded(&again);
    compare(
        &data, "default", &fx.name, &data, "default", &restored, true,
    )
    .await?;
    server.stop().await;
    milvus.passed();
    Ok(())
}

// ---------------------------------------------------------- server killed --

/// Waits until the restarted server recorded the cleanup of interrupted job `id`
/// (it runs in the background after start-up); the job as it then is.
async fn after_recovery(c: &Client, id: &str) -> Result<pb::Job> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = c.get_job(pb::GetJobRequest { id: id.to_owned() }).await?;
        if j.state().is_terminal() && !j.cleanup.is_empty() {
            return Ok(j);
        }
        ensure!(
            Instant::now() < deadline,
            "no cleanup recorded for job {id} after 120 s: {j:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// No job of the server is queued, running or cancelling.
async fn none_running(c: &Client) -> Result<()> {
    let jobs = c.list_jobs(pb::ListJobsRequest::default()).await?;
    let live: Vec<_> = jobs
        .iter()
        .filter(|j| !j.state().is_terminal())
        .map(|j| (j.id.as_str(), j.state()))
        .collect();
    ensure!(
        live.is_empty(),
        "jobs still live after the restart: {live:?}"
    );
    Ok(())
}

/// `kill -9` of the real server binary while a backup copies (some of its files
/// already in the repository, the rest held by a stalled store) and while a restore
/// imports (files staged in the target's storage, its collection created; with
/// `resume_window_secs = 0`: not kept for `job resume`, see `resume_real.rs`); after a restart both jobs are `FAILED` with `SERVER_RESTARTED`, nothing
/// is left (no backup folder; no collection, no staged files), no job is running, and
/// the same requests then succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn milvault_server_killed_during_a_backup_and_a_restore() -> Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let b = DataClient::connect(&env.b_addr).await?;
    let fx = vectors(&unique("srvkill"), 4, 3000, 64, false);
    seed(&b, "default", &fx, 12).await?;

    let proxy = FaultProxy::start(&env.s3_endpoint, 9).await?;
    let (state, repo) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let repo_dir = repo.path().to_path_buf();
    let toml = format!(
        "{}\n[restore]\nresume_window_secs = 0\n[clusters.a]\naddress = \"{}\"\nmanagement = \"{}\"\nusername = \"root\"\npassword = \"Milvus\"\nstorage = {{ scheme = \"fs\", root = \"{}\" }}\n[clusters.b]\naddress = \"{}\"\nmanagement = \"{}\"\nusername = \"root\"\npassword = \"Milvus\"\nstorage = {}\n",
        server_head(state.path(), repo.path(), ""),
        env.a_addr,
        env.a_mgmt,
        env.a_data,
        env.b_addr,
        env.b_mgmt,
        s3_storage(&env, &proxy.url(), &env.b_bucket, &env.b_root),
    );
    let conf = state.path().join("milvault.toml");
    std::fs::write(&conf, &toml)?;

    // The backup: killed once its first files are in the repository; the source's
    // store stalls from then on, so the copy cannot finish before the kill.
    let (mut server, endpoint) = spawn_server(&conf).await?;
    let c = Client::connect(&endpoint).await?;
    let request = pb::CreateBackupRequest {
        name: "nightly".into(),
        cluster: "b".into(),
        repository: "local".into(),
        collections: vec![fx.name.clone()],
        ..Default::default()
    };
    let job = c.create_backup(request.clone()).await?;
    let folder = repo_dir.join("backups/nightly");
    let deadline = Instant::now() + Duration::from_secs(60);
    while files_with_hashes(&folder.join("files")).is_empty() {
        ensure!(Instant::now() < deadline, "no file was copied in 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    proxy.set(Faults {
        stall: 1.0,
        ..Faults::none()
    });
    let partial = files_with_hashes(&folder);
    server.kill().await?; // SIGKILL
    server.wait().await?;
    ensure!(
        !folder.join("manifest.json").exists(),
        "the backup finished before the kill"
    );
    eprintln!(
        "server killed during the backup with {} files in the repository",
        partial.len()
    );
    proxy.set(Faults::none());

    let (mut server, endpoint) = spawn_server(&conf).await?;
    let c = Client::connect(&endpoint).await?;
    let after = after_recovery(&c, &job.id).await?;
    eprintln!("after the restart: {:?}", after.cleanup);
    let err = failure(&after)?;
    assert_eq!(err.reason, "SERVER_RESTARTED", "{err:?}");
    ensure!(
        files_with_hashes(&folder).is_empty(),
        "the interrupted backup left files: {:?}",
        files_with_hashes(&folder).keys()
    );
    ensure!(!listed_complete(&c, "local", "nightly").await?);
    none_running(&c).await?;
    assert_succeeded(&run_job(&c, c.create_backup(request).await?).await?);
    assert_succeeded(&verify(&c, "local", "nightly", false).await?);

    // The restore into A: killed while Milvus imports the staged files.
    let restored = format!("{}_k", fx.name);
    a.drop_collection_if_exists("default", &restored).await?;
    let request = pb::RestoreBackupRequest {
        backup: "nightly".into(),
        cluster: "a".into(),
        repository: "local".into(),
        suffix: "_k".into(),
        ..Default::default()
    };
    let job = c.restore_backup(request.clone()).await?;
    wait_for_phase(&c, &job.id, &[pb::JobPhase::Importing]).await?;
    // Files are staged per import: killed once some are, while Milvus imports them.
    let staging = Path::new(&env.a_data)
        .join("milvault-staging")
        .join(&job.id);
    let deadline = Instant::now() + Duration::from_secs(60);
    while files_with_hashes(&staging).is_empty() {
        ensure!(Instant::now() < deadline, "nothing was staged in 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill().await?;
    server.wait().await?;
    ensure!(
        a.has_collection("default", &restored).await?,
        "the restore had not created its collection yet"
    );
    ensure!(
        !files_with_hashes(&staging).is_empty(),
        "the staged files were gone before the kill"
    );

    let (mut server, endpoint) = spawn_server(&conf).await?;
    let c = Client::connect(&endpoint).await?;
    let after = after_recovery(&c, &job.id).await?;
    eprintln!("after the restart: {:?}", after.cleanup);
    let err = failure(&after)?;
    assert_eq!(err.reason, "SERVER_RESTARTED", "{err:?}");
    ensure!(
        !a.has_collection("default", &restored).await?,
        "the half-restored collection is still there; cleanup: {:?}",
        after.cleanup
    );
    ensure!(
        files_with_hashes(&staging).is_empty(),
        "staged files left: {:?}",
        files_with_hashes(&staging).keys()
    );
    none_running(&c).await?;
    assert_succeeded(&run_job(&c, c.restore_backup(request).await?).await?);
    compare(&b, "default", &fx.name, &a, "default", &restored, false).await?;
    server.kill().await?;
    a.drop_collection_if_exists("default", &restored).await?;
    b.drop_collection_if_exists("default", &fx.name).await?;
    Ok(())
}
