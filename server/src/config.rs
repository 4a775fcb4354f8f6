//! Server configuration: one typed struct, read from a TOML file, then environment
//! variables, then command-line flags (each overriding the one before).
//!
//! Environment keys are `MILVAULT_` + the dotted path with `__` between levels, e.g.
//! `MILVAULT_SERVER__LISTEN=0.0.0.0:50051` or
//! `MILVAULT_CLUSTERS__PROD__ADDRESS=http://milvus:19530`. Only the top-level sections
//! below are read from the environment, so unrelated `MILVAULT_*` variables (the CLI's
//! `MILVAULT_ENDPOINT`, say) are ignored.
//!
//! Secrets (passwords, storage keys) are never shown: [`StorageConfig::redacted`] and
//! [`ClusterConfig`]'s `Debug` leave them out.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Everything the server needs to run.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to listen and where to keep state.
    #[serde(default)]
    pub server: ServerConfig,
    /// Named Milvus clusters that can be backed up or restored into.
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterConfig>,
    /// Named backup repositories.
    #[serde(default)]
    pub repositories: BTreeMap<String, RepositoryConfig>,
    /// Bounds on parallel work: memory and load are set here, not by backup size.
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Logs and traces.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// How long to wait for Milvus's background work, and how often to ask.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
}

/// The listening socket and the state directory.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// gRPC listen address (API, health and reflection share it).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory for the job journal; jobs survive restarts through it.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// How many jobs run at once; later ones wait in `QUEUED`.
    #[serde(default = "default_max_jobs")]
    pub max_running_jobs: usize,
    /// When set, every BackupService call must carry `authorization: Bearer <token>`
    /// (health and reflection stay open for probes and discovery).
    #[serde(default)]
    pub auth_token: Option<Secret>,
}

/// A secret string: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            state_dir: default_state_dir(),
            max_running_jobs: default_max_jobs(),
            auth_token: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/milvault")
}
fn default_max_jobs() -> usize {
    2
}

/// One Milvus cluster.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// gRPC address, e.g. `http://127.0.0.1:19530`.
    pub address: String,
    /// Management HTTP address (GC pause), e.g. `http://127.0.0.1:9091`.
    #[serde(default)]
    pub management: Option<String>,
    /// User for Milvus authentication; sent whenever set (some 2.3 RPCs need it even
    /// with authentication off).
    #[serde(default)]
    pub username: Option<String>,
    /// Password of `username`.
    #[serde(default)]
    pub password: Option<String>,
    /// Where this cluster keeps its binlogs (Milvus's `localStorage.path`, or its
    /// bucket and `rootPath`).
    pub storage: StorageConfig,
    /// Prefix, inside the cluster's storage root, where restores stage files for
    /// import. Must not be Milvus's own `insert_log/`, `delta_log/` or `stats_log/`.
    #[serde(default = "default_staging_prefix")]
    pub staging_prefix: String,
    /// Give up on one import task after this many seconds (overrides
    /// `timeouts.import_secs` for this cluster).
    #[serde(default)]
    pub import_timeout_secs: Option<u64>,
    /// Timeout for connecting to Milvus.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
}

fn default_staging_prefix() -> String {
    "milvault-staging".to_owned()
}
fn default_connect_timeout() -> u64 {
    10
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("address", &self.address)
            .field("management", &self.management)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("storage", &self.storage)
            .finish_non_exhaustive()
    }
}

/// One backup repository.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// Where backups are written.
    pub storage: StorageConfig,
}

/// An OpenDAL storage: a scheme and that scheme's options, passed through, so any
/// backend OpenDAL has (fs, s3, gcs, azblob, ...) works by configuration alone.
#[derive(Clone, Deserialize, Serialize)]
pub struct StorageConfig {
    /// OpenDAL scheme name.
    pub scheme: String,
    /// The scheme's options (`root`, `bucket`, `endpoint`, ...).
    #[serde(flatten)]
    pub options: BTreeMap<String, String>,
}

impl StorageConfig {
    /// The storage root (`root` option) without leading or trailing slashes, except
    /// that an absolute filesystem root keeps its leading slash.
    pub fn root(&self) -> String {
        let root = self.options.get("root").map(String::as_str).unwrap_or("");
        if self.scheme == "fs" {
            root.trim_end_matches('/').to_owned()
        } else {
            root.trim_matches('/').to_owned()
        }
    }

    /// Options with every secret-looking key removed, for display.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .filter(|(k, _)| !is_secret_key(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("scheme", &self.scheme)
            .field("options", &self.redacted())
            .finish()
    }
}

/// Whether an option name looks like it holds a secret.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "password", "token", "key", "credential", "sas"]
        .iter()
        .any(|s| k.contains(s))
}

/// Bounds on concurrency.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Files copied at once per job.
    #[serde(default = "default_copy_concurrency")]
    pub copy_concurrency: usize,
    /// Import tasks outstanding at once per restore job.
    #[serde(default = "default_import_concurrency")]
    pub import_concurrency: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            copy_concurrency: default_copy_concurrency(),
            import_concurrency: default_import_concurrency(),
        }
    }
}

fn default_copy_concurrency() -> usize {
    16
}
fn default_import_concurrency() -> usize {
    4
}

/// Deadlines for waiting on Milvus, and the backoff between two questions.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsConfig {
    /// One RPC to Milvus.
    #[serde(default = "default_rpc_secs")]
    pub rpc_secs: u64,
    /// A flush: from `Flush` until `GetFlushState` says the segments are on storage.
    #[serde(default = "default_flush_secs")]
    pub flush_secs: u64,
    /// Milvus 2.2 writing the deletes it buffers for flushed segments (its periodic
    /// sync, `dataNode.segment.syncPeriod`, 600 s by default, plus its checkpoint lag).
    #[serde(default = "default_flush_all_secs")]
    pub flush_all_secs: u64,
    /// Sealed segments finishing their flush, and a segment listing that names a
    /// segment being compacted away.
    #[serde(default = "default_settle_secs")]
    pub settle_secs: u64,
    /// One import task.
    #[serde(default = "default_import_secs")]
    pub import_secs: u64,
    /// First pause between two status questions, in milliseconds (doubles up to
    /// `poll_max_ms`).
    #[serde(default = "default_poll_first_ms")]
    pub poll_first_ms: u64,
    /// Longest pause between two status questions, in milliseconds.
    #[serde(default = "default_poll_max_ms")]
    pub poll_max_ms: u64,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        Self {
            rpc_secs: default_rpc_secs(),
            flush_secs: default_flush_secs(),
            flush_all_secs: default_flush_all_secs(),
            settle_secs: default_settle_secs(),
            import_secs: default_import_secs(),
            poll_first_ms: default_poll_first_ms(),
            poll_max_ms: default_poll_max_ms(),
        }
    }
}

fn default_rpc_secs() -> u64 {
    120
}
fn default_flush_secs() -> u64 {
    600
}
fn default_flush_all_secs() -> u64 {
    1200
}
fn default_settle_secs() -> u64 {
    120
}
fn default_import_secs() -> u64 {
    3600
}
fn default_poll_first_ms() -> u64 {
    200
}
fn default_poll_max_ms() -> u64 {
    2000
}

impl TimeoutsConfig {
    fn schedule(&self, deadline_secs: u64) -> crate::poll::Schedule {
        crate::poll::Schedule {
            deadline: Duration::from_secs(deadline_secs),
            first: Duration::from_millis(self.poll_first_ms),
            max: Duration::from_millis(self.poll_max_ms.max(self.poll_first_ms)),
        }
    }

    /// Waiting for a flush.
    pub(crate) fn flush(&self) -> crate::poll::Schedule {
        self.schedule(self.flush_secs)
    }

    /// Waiting for Milvus 2.2's buffered deletes.
    pub(crate) fn flush_all(&self) -> crate::poll::Schedule {
        self.schedule(self.flush_all_secs)
    }

    /// Waiting for segments to settle.
    pub(crate) fn settle(&self) -> crate::poll::Schedule {
        self.schedule(self.settle_secs)
    }

    /// Waiting for an import task.
    pub(crate) fn import(&self) -> crate::poll::Schedule {
        self.schedule(self.import_secs)
    }

    /// These timeouts with a cluster's own overrides applied.
    pub(crate) fn for_cluster(&self, cluster: &ClusterConfig) -> Self {
        let mut t = self.clone();
        if let Some(s) = cluster.import_timeout_secs {
            t.import_secs = s;
        }
        t
    }
}

/// Logs and traces.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `tracing` filter, e.g. `info,milvault_server=debug`.
    #[serde(default = "default_log_filter")]
    pub log_filter: String,
    /// OTLP gRPC endpoint for traces (e.g. `http://127.0.0.1:4317`); off when unset.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_filter: default_log_filter(),
            otlp_endpoint: None,
        }
    }
}

fn default_log_filter() -> String {
    "info".to_owned()
}

/// Values given on the command line; `None` means "not given".
#[derive(Clone, Debug, Default, Serialize)]
pub struct FlagOverrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--log-filter`.
    pub log_filter: Option<String>,
}

const ENV_SECTIONS: [&str; 6] = [
    "server",
    "clusters",
    "repositories",
    "limits",
    "telemetry",
    "timeouts",
];

impl Config {
    /// Reads the file (if any), then the environment, then the flags.
    pub fn load(file: Option<&Path>, flags: &FlagOverrides) -> Result<Self> {
        let mut fig = Figment::new();
        if let Some(path) = file {
            if !path.exists() {
                return Err(Error::invalid(
                    "config",
                    format!("file {} does not exist", path.display()),
                ));
            }
            fig = fig.merge(Toml::file(path));
        }
        fig = fig.merge(Env::prefixed("MILVAULT_").split("__").filter(|k| {
            // Keys keep the variable's case here (figment lowercases later).
            let k = k.as_str().to_ascii_lowercase();
            let section = k.split('.').next().unwrap_or_default();
            k.contains('.') && ENV_SECTIONS.contains(&section)
        }));
        let mut overrides = serde_json::Map::new();
        let mut server = serde_json::Map::new();
        if let Some(l) = flags.listen {
            server.insert("listen".into(), l.to_string().into());
        }
        if let Some(d) = &flags.state_dir {
            server.insert("state_dir".into(), d.display().to_string().into());
        }
        if !server.is_empty() {
            overrides.insert("server".into(), server.into());
        }
        if let Some(f) = &flags.log_filter {
            overrides.insert("telemetry".into(), serde_json::json!({ "log_filter": f }));
        }
        fig = fig.merge(Serialized::defaults(serde_json::Value::Object(overrides)));
        let config: Config = fig
            .extract()
            .map_err(|e| Error::invalid("config", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses a TOML document (no environment, no flags); for tests and tools.
    pub fn from_toml(text: &str) -> Result<Self> {
        let config: Config = Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| Error::invalid("config", e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<()> {
        for (name, c) in &self.clusters {
            if !(c.address.starts_with("http://") || c.address.starts_with("https://")) {
                return Err(Error::invalid(
                    "config",
                    format!(
                        "clusters.{name}.address must start with http:// or https://, got {:?}",
                        c.address
                    ),
                ));
            }
            let p = c.staging_prefix.trim_matches('/');
            if p.is_empty()
                || ["insert_log", "delta_log", "stats_log", "index_files"]
                    .iter()
                    .any(|d| p.starts_with(d))
            {
                return Err(Error::invalid(
                    "config",
                    format!(
                        "clusters.{name}.staging_prefix {p:?} must be a prefix outside Milvus's own insert_log/, delta_log/, stats_log/, index_files/"
                    ),
                ));
            }
        }
        if self.limits.copy_concurrency == 0 || self.limits.import_concurrency == 0 {
            return Err(Error::invalid("config", "limits must be at least 1"));
        }
        if self.timeouts.rpc_secs == 0 || self.timeouts.poll_first_ms == 0 {
            return Err(Error::invalid(
                "config",
                "timeouts.rpc_secs and timeouts.poll_first_ms must be at least 1",
            ));
        }
        if self.server.max_running_jobs == 0 {
            return Err(Error::invalid(
                "config",
                "server.max_running_jobs must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[server]
listen = "127.0.0.1:50999"
state_dir = "/tmp/x"
[clusters.prod]
address = "http://127.0.0.1:19530"
management = "http://127.0.0.1:9091"
storage = { scheme = "s3", endpoint = "http://127.0.0.1:9000", bucket = "b", root = "/files/", secret_access_key = "shh", access_key_id = "id" }
[repositories.local]
storage = { scheme = "fs", root = "/var/backups/milvault/" }
"#;

    #[test]
    fn parses_the_documented_shape() {
        let c = Config::from_toml(SAMPLE).expect("parse");
        assert_eq!(c.server.listen.port(), 50999);
        let prod = &c.clusters["prod"];
        assert_eq!(prod.storage.scheme, "s3");
        assert_eq!(prod.storage.root(), "files");
        assert_eq!(
            c.repositories["local"].storage.root(),
            "/var/backups/milvault"
        );
        assert_eq!(prod.staging_prefix, "milvault-staging");
    }

    #[test]
    fn secrets_are_not_shown() {
        let with_token = SAMPLE.replace(
            "state_dir = \"/tmp/x\"",
            "state_dir = \"/tmp/x\"\nauth_token = \"tok-secret\"",
        );
        let c = Config::from_toml(&with_token).expect("parse");
        assert_eq!(
            c.server.auth_token.as_ref().map(|t| t.0.as_str()),
            Some("tok-secret")
        );
        let shown = format!("{:?}", c);
        assert!(
            !shown.contains("shh") && !shown.contains("tok-secret"),
            "{shown}"
        );
        assert!(
            !c.clusters["prod"]
                .storage
                .redacted()
                .contains_key("secret_access_key")
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = Config::from_toml("[server]\nlisten_addr = \"x\"").expect_err("must fail");
        assert!(err.to_string().contains("listen_addr"), "{err}");
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("m.toml");
        std::fs::write(&path, SAMPLE).expect("write");
        // SAFETY: this is the only test in the crate that touches these variables.
        unsafe {
            std::env::set_var("MILVAULT_CLUSTERS__PROD__ADDRESS", "http://from-env:19530");
            std::env::set_var("MILVAULT_SERVER__MAX_RUNNING_JOBS", "5");
            std::env::set_var("MILVAULT_ENDPOINT", "http://cli-only:1");
        }
        let flags = FlagOverrides {
            listen: Some("127.0.0.1:6000".parse().expect("addr")),
            ..Default::default()
        };
        let c = Config::load(Some(&path), &flags).expect("load");
        assert_eq!(c.clusters["prod"].address, "http://from-env:19530");
        assert_eq!(c.server.max_running_jobs, 5);
        assert_eq!(c.server.listen.port(), 6000);
        assert_eq!(c.server.state_dir, std::path::PathBuf::from("/tmp/x"));
        unsafe {
            std::env::remove_var("MILVAULT_CLUSTERS__PROD__ADDRESS");
            std::env::remove_var("MILVAULT_SERVER__MAX_RUNNING_JOBS");
            std::env::remove_var("MILVAULT_ENDPOINT");
        }
        let missing = Config::load(
            Some(&dir.path().join("nope.toml")),
            &FlagOverrides::default(),
        );
        assert!(
            missing
                .expect_err("missing file")
                .to_string()
                .contains("does not exist")
        );
    }

    #[test]
    fn staging_inside_insert_log_is_rejected() {
        let text = SAMPLE.replace(
            "management =",
            "staging_prefix = \"insert_log/x\"\nmanagement =",
        );
        assert!(Config::from_toml(&text).is_err());
    }
}
