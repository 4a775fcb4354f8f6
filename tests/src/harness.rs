//! The test environment: addresses of the real services `scripts/services.sh` started
//! (read from `MILVAULT_TEST_*`), an in-process milvault-server on a free port, and
//! helpers to run the real `milvault` binary.

use std::path::PathBuf;
use std::process::Output;

use anyhow::{Context, Result};
use milvault_sdk::{Client, pb};
use milvault_server::app::App;
use milvault_server::config::Config;
use tokio::net::TcpListener;

/// Addresses of the services the tests run against.
#[derive(Clone, Debug)]
pub struct TestEnv {
    /// Milvus A (source, local storage).
    pub a_addr: String,
    pub a_mgmt: String,
    pub a_data: String,
    /// Milvus B (target, S3 storage, in its own network namespace).
    pub b_addr: String,
    pub b_mgmt: String,
    pub s3_endpoint: String,
    pub b_bucket: String,
    pub b_root: String,
    pub s3_access_key: String,
    pub s3_secret_key: String,
    pub s3_region: String,
    /// Milvus C (2.2.16, local storage, in its own network namespace).
    pub c_addr: String,
    pub c_mgmt: String,
    pub c_data: String,
    /// A Python with pyarrow.
    pub python: String,
}

fn var(name: &str) -> Result<String> {
    std::env::var(name).with_context(|| {
        format!("{name} is not set: run the tests through scripts/test.sh, which starts Milvus and exports the addresses")
    })
}

impl TestEnv {
    /// Reads the environment `scripts/services.sh up` exported.
    pub fn from_env() -> Result<Self> {
        Ok(Self {
            a_addr: var("MILVAULT_TEST_A_ADDR")?,
            a_mgmt: var("MILVAULT_TEST_A_MGMT")?,
            a_data: var("MILVAULT_TEST_A_DATA")?,
            b_addr: var("MILVAULT_TEST_B_ADDR")?,
            b_mgmt: var("MILVAULT_TEST_B_MGMT")?,
            s3_endpoint: var("MILVAULT_TEST_S3_ENDPOINT")?,
            b_bucket: var("MILVAULT_TEST_B_BUCKET")?,
            b_root: var("MILVAULT_TEST_B_ROOT")?,
            s3_access_key: var("MILVAULT_TEST_S3_ACCESS_KEY")?,
            s3_secret_key: var("MILVAULT_TEST_S3_SECRET_KEY")?,
            s3_region: var("MILVAULT_TEST_S3_REGION")?,
            c_addr: var("MILVAULT_TEST_C_ADDR")?,
            c_mgmt: var("MILVAULT_TEST_C_MGMT")?,
            c_data: var("MILVAULT_TEST_C_DATA")?,
            python: var("MILVAULT_TEST_PYTHON")?,
        })
    }

    /// A server configuration with clusters `a` and `b`, a local-folder repository
    /// `local` at `repo_dir`, and an S3 repository `s3` (bucket `s3_repo_bucket`).
    pub fn config_toml(
        &self,
        state_dir: &std::path::Path,
        repo_dir: &std::path::Path,
        s3_repo_bucket: &str,
    ) -> String {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
state_dir = "{state}"

[clusters.a]
address = "{a_addr}"
management = "{a_mgmt}"
username = "root"
password = "Milvus"
storage = {{ scheme = "fs", root = "{a_data}" }}

[clusters.b]
address = "{b_addr}"
management = "{b_mgmt}"
username = "root"
password = "Milvus"
storage = {{ scheme = "s3", endpoint = "{s3}", bucket = "{bucket}", root = "{root}", region = "{region}", access_key_id = "{ak}", secret_access_key = "{sk}" }}

[clusters.c]
address = "{c_addr}"
management = "{c_mgmt}"
username = "root"
password = "Milvus"
storage = {{ scheme = "fs", root = "{c_data}" }}

[repositories.local]
storage = {{ scheme = "fs", root = "{repo}" }}

[repositories.s3]
storage = {{ scheme = "s3", endpoint = "{s3}", bucket = "{repo_bucket}", root = "/", region = "{region}", access_key_id = "{ak}", secret_access_key = "{sk}" }}

[limits]
copy_concurrency = 8
import_concurrency = 4
"#,
            state = state_dir.display(),
            a_addr = self.a_addr,
            a_mgmt = self.a_mgmt,
            a_data = self.a_data,
            b_addr = self.b_addr,
            b_mgmt = self.b_mgmt,
            s3 = self.s3_endpoint,
            bucket = self.b_bucket,
            root = self.b_root,
            region = self.s3_region,
            ak = self.s3_access_key,
            sk = self.s3_secret_key,
            repo = repo_dir.display(),
            c_addr = self.c_addr,
            c_mgmt = self.c_mgmt,
            c_data = self.c_data,
            repo_bucket = s3_repo_bucket,
        )
    }
}

/// A cluster of a [`Minimal`] configuration: its address and a local-folder storage.
#[derive(Clone, Debug)]
pub struct MinimalCluster {
    /// Configured name.
    pub name: String,
    /// gRPC address.
    pub address: String,
    /// Management HTTP address, if any.
    pub management: Option<String>,
    /// The folder that is its storage root.
    pub root: PathBuf,
    /// More TOML lines for the cluster's table (e.g. `connect_timeout_secs = 2`).
    pub extra: String,
}

/// The smallest useful server configuration: a fresh state directory, one local
/// repository `local`, and the given clusters. The one place tests build a config
/// by hand.
#[derive(Clone, Debug, Default)]
pub struct Minimal {
    /// Clusters.
    pub clusters: Vec<MinimalCluster>,
    /// More TOML lines for `[server]` (e.g. `auth_token = "..."`).
    pub server_extra: String,
}

impl Minimal {
    /// The TOML text, with the state and repository folders given.
    fn toml(&self, state: &std::path::Path, repo: &std::path::Path) -> String {
        let mut out = format!(
            "[server]\nstate_dir = \"{}\"\n{}\n[repositories.local]\nstorage = {{ scheme = \"fs\", root = \"{}\" }}\n",
            state.display(),
            self.server_extra,
            repo.display()
        );
        for c in &self.clusters {
            out.push_str(&format!(
                "[clusters.{}]\naddress = \"{}\"\n{}storage = {{ scheme = \"fs\", root = \"{}\" }}\n{}\n",
                c.name,
                c.address,
                c.management
                    .as_ref()
                    .map(|m| format!("management = \"{m}\"\n"))
                    .unwrap_or_default(),
                c.root.display(),
                c.extra
            ));
        }
        out
    }
}

/// A milvault-server running inside the test process.
pub struct TestServer {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// Kept alive for the server's lifetime.
    pub dirs: Vec<tempfile::TempDir>,
    /// Repository folder of `local`.
    pub repo_dir: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with [`TestEnv::config_toml`].
    pub async fn start(env: &TestEnv) -> Result<Self> {
        let state = tempfile::tempdir()?;
        let repo = tempfile::tempdir()?;
        let toml = env.config_toml(state.path(), repo.path(), "milvault-repo");
        Self::start_with(&toml, vec![state, repo]).await
    }

    /// Starts a server with a [`Minimal`] configuration; `dirs` (e.g. cluster storage
    /// folders) live as long as the server.
    pub async fn start_minimal(config: &Minimal, mut dirs: Vec<tempfile::TempDir>) -> Result<Self> {
        let state = tempfile::tempdir()?;
        let repo = tempfile::tempdir()?;
        let toml = config.toml(state.path(), repo.path());
        dirs.push(state);
        dirs.push(repo);
        Self::start_with(&toml, dirs).await
    }

    /// Starts a server from a TOML document; `dirs` live as long as the server.
    pub async fn start_with(toml: &str, dirs: Vec<tempfile::TempDir>) -> Result<Self> {
        let config = Config::from_toml(toml)?;
        let repo_dir = config
            .repositories
            .get("local")
            .and_then(|r| r.storage.options.get("root"))
            .map(PathBuf::from)
            .unwrap_or_default();
        let app = App::new(config)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            if let Err(e) = milvault_server::serve(app, listener, async {
                let _ = rx.await;
            })
            .await
            {
                eprintln!("test server stopped: {e}");
            }
        });
        Ok(Self {
            endpoint,
            dirs,
            repo_dir,
            shutdown: Some(tx),
            handle: Some(handle),
        })
    }

    /// A connected SDK client.
    pub async fn client(&self) -> Result<Client> {
        // The listener is bound before the server task starts, so the connection is
        // accepted by the kernel at once and served as soon as the task runs.
        Ok(Client::connect(&self.endpoint).await?)
    }

    /// Stops the server and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }
}

/// Runs a job to its end and returns the terminal snapshot.
pub async fn run_job(client: &Client, job: pb::Job) -> Result<pb::Job> {
    Ok(client.wait_job(&job.id, |_| {}).await?)
}

/// Asserts the job succeeded, with its error in the message if not.
pub fn assert_succeeded(job: &pb::Job) {
    assert!(
        milvault_sdk::job_succeeded(job),
        "job {} ended {:?}: {:?}\nwarnings: {:?}",
        job.id,
        pb::JobState::try_from(job.state),
        job.error,
        job.warnings
    );
}

/// Path of a binary built in this workspace (`milvault`, `milvault-server`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test-binary> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    dir.join(name)
}

/// Runs the `milvault` CLI against `endpoint`.
pub async fn cli(endpoint: &str, args: &[&str]) -> Result<Output> {
    let bin = workspace_bin("milvault");
    anyhow::ensure!(
        bin.exists(),
        "{} not built: run `cargo build --workspace` first",
        bin.display()
    );
    let out = tokio::process::Command::new(bin)
        .arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .output()
        .await?;
    Ok(out)
}

/// A name unique to this run, for collections and backups.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}_{}", &id[..8])
}

/// Starts the real `milvault-server` binary with `conf` (its `listen` may be port 0)
/// and returns the child (killed on drop) and its `http://ADDR` from its log.
pub async fn spawn_server(conf: &std::path::Path) -> Result<(tokio::process::Child, String)> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let bin = workspace_bin("milvault-server");
    anyhow::ensure!(bin.exists(), "{} not built", bin.display());
    let mut child = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(conf)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(16);
    for reader in [
        Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(i) = line.find("local=") {
                    let addr: String = line[i + 6..]
                        .chars()
                        .take_while(|c| !c.is_whitespace())
                        .collect();
                    let _ = tx.send(addr).await;
                }
            }
        });
    }
    let addr = tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
        .await?
        .ok_or_else(|| anyhow::anyhow!("the server printed no address"))?;
    Ok((child, format!("http://{addr}")))
}

/// Every file under `dir`, recursively (none when it does not exist).
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
