//! Secrets never show. A configuration full of known secret strings — a cluster
//! password, a Milvus token, credentials inside a cluster address, a management URL,
//! and the OTLP endpoint, storage secret keys, the service's own
//! bearer token — runs every kind of job against real Milvus 2.3.5 (A; its
//! authentication is off, so the secrets are configured and sent but not checked):
//! backup (from a password, a URL-credentials and a token cluster), verify, deep
//! verify, export, restore, delete, and two that fail (an unreachable cluster whose
//! address carries credentials; a backup into an S3 repository with a secret key and
//! no bucket, refused at once);
//! credentials inside a storage endpoint are refused at load. Then the server's
//! logs at debug level, every job record (GetJob and ListJobs as JSON), the
//! manifests and every other file the server wrote (repository, export, job
//! journal), GetServerInfo, `Debug` of the configuration and the binary's
//! `--print-config` and own logs are searched for each secret (and for the base64
//! forms Milvus's header carries): none may appear.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use milvault_sdk::{Client, pb};
use milvault_server::config::Config;
use milvault_tests::fixtures::{seed, standard};
use milvault_tests::harness::{TestEnv, TestServer, cli, run_job, unique, workspace_bin};
use milvault_tests::milvus_data::DataClient;
use tokio::io::{AsyncBufReadExt, BufReader};

const PASSWORD: &str = "pw-Secret-7Q1";
const URL_PASSWORD: &str = "url-Secret-9K";
const TOKEN: &str = "tok-Secret-5M";
const DOWN_PASSWORD: &str = "down-Secret-2P";
const MANAGEMENT_PASSWORD: &str = "mgmt-Secret-3Z";
const STORAGE_SECRET: &str = "sk-Secret-4R";
const SAS: &str = "sas-Secret-2B";
const ENDPOINT_PASSWORD: &str = "ep-Secret-8W";
const SERVICE_TOKEN: &str = "svc-Secret-6T";
const OTLP_PASSWORD: &str = "otlp-Secret-1V";
const ENV_PASSWORD: &str = "envpw-Secret-0X";

/// Every secret, and the `authorization` values Milvus would receive for them.
fn needles() -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut all: Vec<String> = [
        PASSWORD,
        URL_PASSWORD,
        TOKEN,
        DOWN_PASSWORD,
        MANAGEMENT_PASSWORD,
        STORAGE_SECRET,
        SAS,
        ENDPOINT_PASSWORD,
        SERVICE_TOKEN,
        OTLP_PASSWORD,
        ENV_PASSWORD,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for user_pass in [
        format!("root:{PASSWORD}"),
        format!("root:{URL_PASSWORD}"),
        format!("root:{TOKEN}"),
        format!("root:{ENV_PASSWORD}"),
        format!("mgr:{MANAGEMENT_PASSWORD}"),
        format!("otel:{OTLP_PASSWORD}"),
    ] {
        all.push(b64(&user_pass));
    }
    all
}

/// Fails naming `place` and the secret when any appears in `text`.
fn assert_clean(place: &str, text: &str) {
    for n in needles() {
        assert!(
            !text.contains(&n),
            "secret {n:?} appears in {place}:\n{text}"
        );
    }
}

/// Every file under `dir`, searched as bytes.
fn assert_files_clean(dir: &Path) -> anyhow::Result<usize> {
    let mut checked = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", d.display())),
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                // Removed while we walked (a temporary file): nothing left to leak.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
            };
            for n in needles() {
                let found = bytes.windows(n.len()).any(|w| w == n.as_bytes());
                assert!(!found, "secret {n:?} appears in {}", path.display());
            }
            checked += 1;
        }
    }
    Ok(checked)
}

/// `http://user:password@host…` from `http://host…`.
fn with_credentials(url: &str, user: &str, password: &str) -> String {
    url.replacen("://", &format!("://{user}:{password}@"), 1)
}

/// The configuration: clusters `a` (password), `a_url` (credentials in the address),
/// `a_token` (token) on Milvus A, `down` (nothing listens), repositories `local` and
/// `s3bad` (a secret key, a bucket that does not exist).
fn config(env: &TestEnv, state: &Path, repo: &Path, down_root: &Path, password: bool) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
state_dir = "{state}"
auth_token = "{SERVICE_TOKEN}"

[clusters.a]
address = "{a}"
management = "{mgmt}"
username = "root"
{password_line}
storage = {{ scheme = "fs", root = "{a_data}", secret_access_key = "{STORAGE_SECRET}" }}

[clusters.a_url]
address = "{a_url}"
storage = {{ scheme = "fs", root = "{a_data}" }}

[clusters.a_token]
address = "{a}"
token = "root:{TOKEN}"
storage = {{ scheme = "fs", root = "{a_data}" }}

[clusters.down]
address = "{down}"
connect_timeout_secs = 2
storage = {{ scheme = "fs", root = "{down_root}" }}

[repositories.local]
storage = {{ scheme = "fs", root = "{repo}", sas_token = "{SAS}" }}

[repositories.s3bad]
storage = {{ scheme = "s3", endpoint = "{s3}", bucket = "no-such-bucket-milvault", root = "/secrets-test", region = "{region}", access_key_id = "{ak}", secret_access_key = "{STORAGE_SECRET}" }}

[telemetry]
otlp_endpoint = "http://otel:{OTLP_PASSWORD}@127.0.0.1:1"
"#,
        state = state.display(),
        a = env.a_addr,
        mgmt = with_credentials(&env.a_mgmt, "mgr", MANAGEMENT_PASSWORD),
        password_line = if password {
            format!("password = \"{PASSWORD}\"")
        } else {
            String::new()
        },
        a_data = env.a_data,
        a_url = with_credentials(&env.a_addr, "root", URL_PASSWORD),
        down = with_credentials("http://127.0.0.1:1", "root", DOWN_PASSWORD),
        down_root = down_root.display(),
        repo = repo.display(),
        s3 = env.s3_endpoint,
        region = env.s3_region,
        ak = env.s3_access_key,
    )
}

fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string(value)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_jobs_manifests_or_answers() -> anyhow::Result<()> {
    let logs = milvault_tests::logs::capture("debug");
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let fx = standard(&format!("{}_", unique("sec"))).remove(2); // auto IDs, 400 rows
    seed(&a, "default", &fx, 5).await?;

    let state = tempfile::tempdir()?;
    let repo = tempfile::tempdir()?;
    let down = tempfile::tempdir()?;
    let export = tempfile::tempdir()?;
    let toml = config(&env, state.path(), repo.path(), down.path(), true);
    assert_clean(
        "Debug of the configuration",
        &format!("{:?}", Config::from_toml(&toml)?),
    );
    // OpenDAL logs a storage endpoint as given: credentials inside one are refused,
    // and the refusal does not repeat them.
    let in_endpoint = toml.replace(
        &format!("endpoint = \"{}\"", env.s3_endpoint),
        &format!(
            "endpoint = \"{}\"",
            with_credentials(&env.s3_endpoint, "minio", ENDPOINT_PASSWORD)
        ),
    );
    assert_ne!(in_endpoint, toml);
    let refused = Config::from_toml(&in_endpoint)
        .map(|_| ())
        .expect_err("refused");
    assert!(
        refused
            .to_string()
            .contains("repositories.s3bad.storage.endpoint"),
        "{refused}"
    );
    assert_clean(
        "the refusal of a storage URL with credentials",
        &refused.to_string(),
    );
    let (state_dir, repo_dir, export_dir) = (
        state.path().to_owned(),
        repo.path().to_owned(),
        export.path().to_owned(),
    );
    // The folders outlive the server: they are searched after it stopped.
    let _dirs = (state, repo, down, export);
    let server = TestServer::start_with(&toml, vec![]).await?;
    let client = Client::connect_with(&server.endpoint, Some(SERVICE_TOKEN)).await?;

    let info = client.server_info().await?;
    assert_clean("GetServerInfo", &json(&info)?);
    let a_info = info.clusters.iter().find(|c| c.name == "a_url");
    assert_eq!(a_info.map(|c| c.username.as_str()), Some("root"));
    assert_eq!(
        a_info.map(|c| c.address.as_str()),
        Some(env.a_addr.as_str())
    );

    let mut answers = Vec::new();
    let backup = |name: &str, cluster: &str, repository: &str| pb::CreateBackupRequest {
        name: name.to_owned(),
        cluster: cluster.to_owned(),
        repository: repository.to_owned(),
        collections: vec![fx.name.clone()],
        ..Default::default()
    };
    let (bk1, bk2) = (unique("secbk"), unique("secbk"));
    let mut jobs = Vec::new();
    for (req, must_succeed) in [
        (backup(&bk1, "a", "local"), true),
        (backup(&bk2, "a_token", "local"), true),
        (backup(&unique("secbk"), "down", "local"), false),
    ] {
        let job = client.create_backup(req).await?;
        answers.push(json(&job)?);
        let done = run_job(&client, job).await?;
        assert_eq!(milvault_sdk::job_succeeded(&done), must_succeed, "{done:?}");
        jobs.push(done);
    }
    let down_error = jobs[2].error.clone().unwrap_or_default();
    assert_eq!(down_error.reason, "MILVUS_UNAVAILABLE", "{down_error:?}");
    assert!(down_error.message.contains("127.0.0.1:1"), "{down_error:?}");
    // The S3 repository with the secret key has no bucket: the request is refused
    // with OpenDAL's error (its request, its context), which must not carry the key.
    let refused = client
        .create_backup(backup(&unique("secbk"), "a", "s3bad"))
        .await
        .expect_err("no bucket");
    assert!(refused.to_string().contains("s3bad"), "{refused}");
    answers.push(format!("{refused} {:?}", refused.metadata()));

    for name in [&bk1, &bk2] {
        let got = client
            .get_backup(pb::GetBackupRequest {
                name: name.clone(),
                repository: "local".into(),
            })
            .await?;
        answers.push(json(&got)?);
        let manifest =
            std::fs::read_to_string(repo_dir.join("backups").join(name).join("manifest.json"))?;
        assert_clean("a manifest", &manifest);
    }
    let listed = client
        .list_backups(pb::ListBackupsRequest {
            repository: "local".into(),
            ..Default::default()
        })
        .await?;
    answers.push(json(&listed)?);

    let started = [
        client
            .verify_backup(pb::VerifyBackupRequest {
                name: bk1.clone(),
                repository: "local".into(),
                deep: false,
            })
            .await?,
        client
            .verify_backup(pb::VerifyBackupRequest {
                name: bk1.clone(),
                repository: "local".into(),
                deep: true,
            })
            .await?,
        client
            .export_backup(pb::ExportBackupRequest {
                name: bk1.clone(),
                repository: "local".into(),
                collections: vec![],
                destination: export_dir.display().to_string(),
            })
            .await?,
    ];
    for job in started {
        let done = run_job(&client, job).await?;
        milvault_tests::harness::assert_succeeded(&done);
        jobs.push(done);
    }
    let restored = format!("{}_r", fx.name);
    let job = client
        .restore_backup(pb::RestoreBackupRequest {
            backup: bk1.clone(),
            cluster: "a_url".into(),
            repository: "local".into(),
            suffix: "_r".into(),
            ..Default::default()
        })
        .await?;
    let done = run_job(&client, job).await?;
    milvault_tests::harness::assert_succeeded(&done);
    jobs.push(done);
    for name in [&bk1, &bk2] {
        let job = client
            .delete_backup(pb::DeleteBackupRequest {
                name: name.clone(),
                repository: "local".into(),
            })
            .await?;
        let done = run_job(&client, job).await?;
        milvault_tests::harness::assert_succeeded(&done);
        jobs.push(done);
    }

    // Job records, one by one and listed, and the CLI's view of them.
    for job in &jobs {
        let got = client
            .get_job(pb::GetJobRequest { id: job.id.clone() })
            .await?;
        answers.push(json(&got)?);
    }
    let all = client
        .list_jobs(pb::ListJobsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await?;
    assert_eq!(all.len(), jobs.len());
    answers.push(json(&all)?);
    let out = cli(
        &server.endpoint,
        &["--token", SERVICE_TOKEN, "-o", "json", "job", "list"],
    )
    .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    answers.push(String::from_utf8_lossy(&out.stdout).into_owned());
    let out = cli(&server.endpoint, &["--token", SERVICE_TOKEN, "server-info"]).await?;
    answers.push(String::from_utf8_lossy(&out.stdout).into_owned());
    for (i, text) in answers.iter().enumerate() {
        assert_clean(&format!("API answer {i}"), text);
    }

    server.stop().await;
    let logged = logs.text();
    assert!(
        logged.contains("configuration"),
        "the configuration was not logged"
    );
    assert!(logged.contains("connected to Milvus"), "{logged}");
    assert_clean("the server's logs", &logged);
    // Journal, repository (manifests were deleted with their backups, checked above)
    // and the exported Parquet files.
    let files = assert_files_clean(&state_dir)?
        + assert_files_clean(&repo_dir)?
        + assert_files_clean(&export_dir)?;
    assert!(files > 0);
    a.drop_collection_if_exists("default", &restored).await?;
    a.drop_collection_if_exists("default", &fx.name).await?;
    Ok(())
}

#[tokio::test]
async fn the_binary_shows_and_logs_no_secret() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let dir = tempfile::tempdir()?;
    let (state, repo, down) = (
        dir.path().join("state"),
        dir.path().join("repo"),
        dir.path().join("down"),
    );
    for d in [&state, &repo, &down] {
        std::fs::create_dir_all(d)?;
    }
    let file = dir.path().join("milvault.toml");
    // Cluster a's password comes from the environment, as the Helm chart passes it.
    std::fs::write(&file, config(&env, &state, &repo, &down, false))?;
    let bin = workspace_bin("milvault-server");
    anyhow::ensure!(
        bin.exists(),
        "{} not built: run `cargo build --workspace` first",
        bin.display()
    );

    let out = tokio::process::Command::new(&bin)
        .arg("--config")
        .arg(&file)
        .arg("--print-config")
        .env("MILVAULT_CLUSTERS__A__PASSWORD", ENV_PASSWORD)
        .output()
        .await?;
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(
        shown.contains("127.0.0.1:19530") || shown.contains(&env.a_addr),
        "{shown}"
    );
    assert_clean("--print-config", &shown);

    // Run it at debug level, ask it something, stop it, read everything it logged.
    let mut child = tokio::process::Command::new(&bin)
        .arg("--config")
        .arg(&file)
        .args(["--log-filter", "debug"])
        .env("MILVAULT_CLUSTERS__A__PASSWORD", ENV_PASSWORD)
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<String>();
    let reader = tokio::spawn(async move {
        let mut all = String::new();
        let mut addr_tx = Some(addr_tx);
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("milvault-server listening")
                && let Some(addr) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("local="))
                && let Some(tx) = addr_tx.take()
            {
                let _ = tx.send(addr.to_owned());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let addr = tokio::time::timeout(Duration::from_secs(30), addr_rx)
        .await
        .map_err(|_| anyhow::anyhow!("the server did not say where it listens"))??;
    let endpoint = format!("http://{addr}");
    let out = cli(
        &endpoint,
        &["--token", SERVICE_TOKEN, "-o", "json", "server-info"],
    )
    .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean(
        "server-info from the binary",
        &String::from_utf8_lossy(&out.stdout),
    );
    let out = cli(
        &endpoint,
        &[
            "--token",
            SERVICE_TOKEN,
            "backup",
            "create",
            &unique("secbk"),
            "--cluster",
            "down",
            "--repository",
            "local",
        ],
    )
    .await?;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean(
        "a failed job in the CLI",
        &format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    );
    // The S3 repository's signer loads the secret key (and would log it at debug).
    let out = cli(
        &endpoint,
        &[
            "--token",
            SERVICE_TOKEN,
            "backup",
            "create",
            &unique("secbk"),
            "--cluster",
            "a",
            "--repository",
            "s3bad",
        ],
    )
    .await?;
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean(
        "a refused request in the CLI",
        &format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    );
    if let Some(pid) = child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    let logged = tokio::time::timeout(Duration::from_secs(10), reader).await??;
    assert!(logged.contains("configuration"), "{logged}");
    assert!(logged.contains("no-such-bucket-milvault"), "{logged}");
    assert_clean("the binary's logs", &logged);
    Ok(())
}
