//! `prune_incomplete_after_secs`: an incomplete backup older than the limit is removed
//! by the server itself, through an ordinary delete job (listed, with its record);
//! a younger one, one whose manifest cannot be read (damaged, not abandoned), and
//! every backup of a repository without the option, stay.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use milvault_sdk::{Client, pb};
use milvault_tests::harness::TestServer;

/// An incomplete backup folder as a server that died mid-copy leaves it: the start
/// record (started `age` seconds ago) and one copied file, no manifest.
fn abandoned(repo: &Path, name: &str, age: i64) -> Result<()> {
    let dir = repo.join("backups").join(name);
    std::fs::create_dir_all(dir.join("data/insert_log/1/2/3/100"))?;
    std::fs::write(dir.join("data/insert_log/1/2/3/100/4"), b"partial bytes")?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let start = pb::BackupStart {
        id: format!("id-{name}"),
        cluster: "a".into(),
        start_time: Some(pbjson_types::Timestamp {
            seconds: now.as_secs() as i64 - age,
            nanos: 0,
        }),
        job_id: "a-job-of-a-dead-server".into(),
        base: String::new(),
    };
    std::fs::write(dir.join("started.json"), serde_json::to_vec(&start)?)?;
    Ok(())
}

async fn names(c: &Client, repository: &str) -> Result<Vec<String>> {
    Ok(c.list_backups(pb::ListBackupsRequest {
        repository: repository.into(),
        ..Default::default()
    })
    .await?
    .into_iter()
    .map(|b| b.name)
    .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_incomplete_backups_are_pruned_after_the_configured_age() -> Result<()> {
    let state = tempfile::tempdir()?;
    let pruned_repo = tempfile::tempdir()?;
    let kept_repo = tempfile::tempdir()?;
    abandoned(pruned_repo.path(), "old", 7_200)?;
    abandoned(pruned_repo.path(), "young", 60)?;
    // As old, but with a manifest that cannot be read: damaged, not abandoned.
    abandoned(pruned_repo.path(), "damaged", 7_200)?;
    std::fs::write(
        pruned_repo.path().join("backups/damaged/manifest.json"),
        b"{ not a manifest",
    )?;
    abandoned(kept_repo.path(), "old", 7_200)?;
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
state_dir = "{}"

[repositories.local]
storage = {{ scheme = "fs", root = "{}" }}
prune_incomplete_after_secs = 3600

[repositories.other]
storage = {{ scheme = "fs", root = "{}" }}
"#,
        state.path().display(),
        pruned_repo.path().display(),
        kept_repo.path().display()
    );
    let server = TestServer::start_with(&toml, Vec::new()).await?;
    let c = server.client().await?;

    // The old one goes, by a delete job of the server's own.
    let deadline = Instant::now() + Duration::from_secs(30);
    let job = loop {
        let jobs = c.list_jobs(pb::ListJobsRequest::default()).await?;
        if let Some(j) = jobs.into_iter().find(|j| {
            j.kind() == pb::JobKind::Delete
                && j.backup == "old"
                && j.state() == pb::JobState::Succeeded
        }) {
            break j;
        }
        if Instant::now() > deadline {
            bail!("no prune of the old incomplete backup within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(job.repository, "local");
    assert!(!pruned_repo.path().join("backups/old").exists());
    assert_eq!(
        names(&c, "local").await?,
        vec!["damaged".to_string(), "young".to_string()]
    );
    assert!(
        pruned_repo
            .path()
            .join("backups/damaged/manifest.json")
            .exists()
    );
    // The young one and the other repository's are untouched.
    assert!(
        pruned_repo
            .path()
            .join("backups/young/data/insert_log/1/2/3/100/4")
            .exists()
    );
    assert!(kept_repo.path().join("backups/old/started.json").exists());
    assert_eq!(names(&c, "other").await?, vec!["old".to_string()]);
    server.stop().await;
    Ok(())
}
