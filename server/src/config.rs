//! Server configuration: one typed struct, read from a TOML file, then environment
//! variables, then command-line flags (each overriding the one before).
//!
//! Environment keys are `MILVAULT_` + the dotted path with `__` between levels, e.g.
//! `MILVAULT_SERVER__LISTEN=0.0.0.0:50051` or
//! `MILVAULT_CLUSTERS__PROD__ADDRESS=http://milvus:19530`. Only the top-level sections
//! below are read from the environment, so unrelated `MILVAULT_*` variables (the CLI's
//! `MILVAULT_ENDPOINT`, say) are ignored.
//!
//! Values of secret keys (`password`, `token`, `auth_token`, storage options such as
//! `secret_access_key`) are taken from the environment as written, never parsed as
//! numbers or lists, so any password works in `MILVAULT_CLUSTERS__PROD__PASSWORD`.
//!
//! Secrets are never shown. Passwords and tokens are [`Secret`]s (`Debug` prints
//! `<redacted>`); storage options whose name looks secret are left out by
//! [`StorageConfig::redacted`]; credentials written inside a URL
//! (`http://user:pass@host`) are taken out of it when the configuration is loaded:
//! a cluster `address`'s become its `username`/`password`, a `management` or
//! `otlp_endpoint` URL's are kept aside and sent as HTTP basic authentication, so the
//! addresses the server shows, logs and writes into manifests carry none. Storage
//! options are passed to OpenDAL, which logs its endpoint as given: a storage URL
//! with credentials is refused (the scheme's key options carry them), and storage
//! URLs are shown with secret query parameters replaced ([`redact_url`]).

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
    /// How long to wait for Milvus's background work and how often to ask; the
    /// timeout and retries of every storage request.
    #[serde(default)]
    pub timeouts: TimeoutsConfig,
    /// How restores batch segments into imports, and how long an interrupted restore
    /// waits for a resume.
    #[serde(default)]
    pub restore: RestoreConfig,
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
    /// Serve over TLS (API, health and reflection alike) when set.
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
}

/// TLS for the service. The certificate, key and client CA are read again when
/// their files change (checked every `reload_check_secs`) or on SIGHUP, without
/// closing the listener; connections made before keep the certificate they began with.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain, the server's own certificate first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of that certificate.
    pub key_file: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate signed by
    /// one of them (mutual TLS).
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// How often to look for changed files, in seconds; 0 = only on SIGHUP.
    #[serde(default = "default_reload_check_secs")]
    pub reload_check_secs: u64,
}

fn default_reload_check_secs() -> u64 {
    10
}

/// A secret string: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

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
            tls: None,
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
    /// gRPC address, e.g. `http://127.0.0.1:19530`; `https://` speaks TLS (see
    /// `tls`). Credentials written into it (`http://user:pass@host:19530`) become
    /// `username` and `password` when the configuration is loaded.
    pub address: String,
    /// Management HTTP address (GC pause), e.g. `http://127.0.0.1:9091`.
    /// Credentials written into it are kept aside ([`ClusterConfig::management_url`]).
    #[serde(default)]
    pub management: Option<String>,
    /// Proxy REST address, for `segments/describe` (Milvus 2.5.8+: a backup copies
    /// exactly the files Milvus's metadata names). Default: `address` (Milvus serves
    /// REST on its gRPC port); unreachable means the backup lists storage instead.
    #[serde(default)]
    pub rest: Option<String>,
    /// User for Milvus authentication; sent whenever set (some 2.3 RPCs need it even
    /// with authentication off).
    #[serde(default)]
    pub username: Option<String>,
    /// Password of `username`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// A Milvus token instead of `username`/`password`: an API key, or
    /// `user:password`. Sent as Milvus expects either, `authorization: base64(token)`.
    #[serde(default)]
    pub token: Option<Secret>,
    /// TLS to Milvus (the address must be `https://`); without it an `https://`
    /// address is verified against the system's CA certificates.
    #[serde(default)]
    pub tls: Option<ClusterTlsConfig>,
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
    /// `user[:password]` taken out of `management` at load time (still URL-encoded).
    #[serde(skip)]
    management_userinfo: Option<Secret>,
}

/// TLS to one Milvus.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterTlsConfig {
    /// PEM CA certificates that sign Milvus's certificate (instead of the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Name to verify Milvus's certificate against, when it is not the address's host.
    #[serde(default)]
    pub server_name: Option<String>,
    /// PEM client certificate, for a Milvus that requires one (`tlsMode: 2`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

impl ClusterConfig {
    /// The management address with the credentials it was configured with, for the
    /// HTTP client only (HTTP basic authentication); never show it.
    pub fn management_url(&self) -> Option<String> {
        let base = self.management.as_deref()?;
        Some(match &self.management_userinfo {
            Some(u) => with_userinfo(base, u.expose()),
            None => base.to_owned(),
        })
    }
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
            .field("rest", &self.rest)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("token", &self.token)
            .field("tls", &self.tls)
            .field("storage", &self.storage)
            .field("staging_prefix", &self.staging_prefix)
            .field(
                "management_credentials",
                &self.management_userinfo.as_ref().map(|_| "<redacted>"),
            )
            .finish_non_exhaustive()
    }
}

/// One backup repository.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    /// Where backups are written.
    pub storage: StorageConfig,
    /// How old (seconds) a listing of the repository may be before it is read again
    /// from storage. Backups this server writes or deletes show at once; those of
    /// another server sharing the repository show within this time.
    #[serde(default = "default_listing_refresh_secs")]
    pub listing_refresh_secs: u64,
    /// Incomplete backups (no manifest, no job of this server writing them) older
    /// than this many seconds are removed by the server; absent: never. Set it well
    /// above the longest backup any server sharing the repository runs.
    #[serde(default)]
    pub prune_incomplete_after_secs: Option<u64>,
}

fn default_listing_refresh_secs() -> u64 {
    2
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

    /// Options for display: every secret-looking key removed, and credentials inside
    /// URL values (`endpoint = "http://user:pass@host"`) replaced.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .filter(|(k, _)| !is_secret_key(k))
            .map(|(k, v)| (k.clone(), redact_url(v)))
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

/// The parts of `scheme://[userinfo@]host…` a URL splits into: the text before the
/// user info, the user info, and the rest; `None` when there is no user info.
fn userinfo_parts(url: &str) -> Option<(&str, &str, &str)> {
    let start = url.find("://")? + 3;
    let after = &url[start..];
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let at = after[..end].rfind('@')?;
    Some((&url[..start], &after[..at], &after[at + 1..]))
}

/// `url` without its user info, and that user info (still URL-encoded).
fn take_userinfo(url: &str) -> (String, Option<String>) {
    match userinfo_parts(url) {
        Some((head, info, rest)) => (format!("{head}{rest}"), Some(info.to_owned())),
        None => (url.to_owned(), None),
    }
}

/// `url` with `userinfo` put in front of its host.
fn with_userinfo(url: &str, userinfo: &str) -> String {
    match url.find("://") {
        Some(i) => format!("{}{userinfo}@{}", &url[..i + 3], &url[i + 3..]),
        None => url.to_owned(),
    }
}

/// A value fit to show: when it is a URL, its user info and the values of
/// secret-looking query parameters (`?sig=…&token=…`) are replaced by `<redacted>`;
/// anything else is returned as it is.
pub fn redact_url(value: &str) -> String {
    if !value.contains("://") {
        return value.to_owned();
    }
    let mut out = match userinfo_parts(value) {
        Some((head, _, rest)) => format!("{head}<redacted>@{rest}"),
        None => value.to_owned(),
    };
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let (query, fragment) = match query.find('#') {
            Some(h) => query.split_at(h),
            None => (query, ""),
        };
        let query = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_secret_key(k) || k.eq_ignore_ascii_case("sig") => {
                    format!("{k}=<redacted>")
                }
                _ => pair.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("&");
        out = format!("{base}{query}{fragment}");
    }
    out
}

/// Decodes `%XX` escapes (user info in a URL is written that way).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let v = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(v as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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

/// Restores: how many segments one Milvus import carries, and what happens to a
/// restore the server's restart interrupted.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreConfig {
    /// Most segments one import task carries (the target's own limit applies too:
    /// 1,024 on Milvus 2.4+). Fewer, larger tasks: Milvus 2.2/2.3 spend seconds per
    /// task beyond its data (the flush it waits for), and run one task at a time.
    #[serde(default = "default_import_batch_segments")]
    pub import_batch_segments: usize,
    /// Most bytes one import task carries (a single larger segment still goes alone).
    /// Milvus 2.2/2.3 fail a task still running `importTaskExpiration` (900 s) after
    /// it started: lower this when their imports time out.
    #[serde(default = "default_import_batch_bytes")]
    pub import_batch_bytes: u64,
    /// Most bytes the first import of a collection carries; each next one may carry
    /// four times the previous, up to `import_batch_bytes`. The first import starts
    /// soon, and every later batch is staged while earlier ones import.
    #[serde(default = "default_import_first_batch_bytes")]
    pub import_first_batch_bytes: u64,
    /// How long (seconds) a restore the server's restart interrupted keeps the
    /// collections it created, so that `job resume` can continue it (imports the
    /// journal confirmed are not done again); `job cancel` gives up at once. When the
    /// time is up they are dropped. 0: interrupted restores are cleaned up at start-up.
    /// Keep it below the target's import-task retention (24 h on 2.2/2.3, 3 h on 2.4+):
    /// a resume asks Milvus about the imports that were running.
    #[serde(default = "default_resume_window_secs")]
    pub resume_window_secs: u64,
}

impl Default for RestoreConfig {
    fn default() -> Self {
        Self {
            import_batch_segments: default_import_batch_segments(),
            import_batch_bytes: default_import_batch_bytes(),
            import_first_batch_bytes: default_import_first_batch_bytes(),
            resume_window_secs: default_resume_window_secs(),
        }
    }
}

fn default_import_batch_segments() -> usize {
    1024
}
fn default_import_batch_bytes() -> u64 {
    2 << 30
}
fn default_import_first_batch_bytes() -> u64 {
    64 << 20
}
fn default_resume_window_secs() -> u64 {
    3 * 3600
}

/// Deadlines for waiting on Milvus, and the backoff between two questions; the timeout
/// of every storage request, and how failed ones are retried.
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
    /// One storage request that moves no data (stat, create a folder, rename).
    #[serde(default = "default_storage_op_secs")]
    pub storage_op_secs: u64,
    /// One step of a transfer or listing (opening a read or write, one chunk read or
    /// written, one listing page): a connection that stalls longer is dropped and the
    /// request retried, so a hung store cannot hang a job.
    #[serde(default = "default_storage_io_secs")]
    pub storage_io_secs: u64,
    /// Retries of one failed storage request (5xx answer, reset connection, timeout)
    /// before the job fails. Only the failed request is repeated: a read resumes at
    /// the byte it reached, a multipart upload resends the failed part.
    #[serde(default = "default_storage_retries")]
    pub storage_retries: usize,
    /// Pause before the first retry of a storage request, in milliseconds (object
    /// stores shed load in bursts: most retries succeed at once). Doubles per retry,
    /// with jitter, up to `storage_retry_max_ms`.
    #[serde(default = "default_storage_retry_first_ms")]
    pub storage_retry_first_ms: u64,
    /// Longest pause between two retries of a storage request, in milliseconds.
    #[serde(default = "default_storage_retry_max_ms")]
    pub storage_retry_max_ms: u64,
    /// How long a failed job's cleanup waits for a Milvus that does not answer (killed,
    /// restarting) before it gives up and records the collections it could not drop.
    #[serde(default = "default_cleanup_secs")]
    pub cleanup_secs: u64,
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
            storage_op_secs: default_storage_op_secs(),
            storage_io_secs: default_storage_io_secs(),
            storage_retries: default_storage_retries(),
            storage_retry_first_ms: default_storage_retry_first_ms(),
            storage_retry_max_ms: default_storage_retry_max_ms(),
            cleanup_secs: default_cleanup_secs(),
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
fn default_storage_op_secs() -> u64 {
    60
}
fn default_storage_io_secs() -> u64 {
    30
}
fn default_storage_retries() -> usize {
    10
}
fn default_storage_retry_first_ms() -> u64 {
    20
}
fn default_storage_retry_max_ms() -> u64 {
    2000
}
fn default_cleanup_secs() -> u64 {
    300
}

impl TimeoutsConfig {
    fn schedule(&self, deadline_secs: u64) -> crate::poll::Schedule {
        crate::poll::Schedule {
            deadline: Duration::from_secs(deadline_secs),
            first: Duration::from_millis(self.poll_first_ms),
            max: Duration::from_millis(self.poll_max_ms.max(self.poll_first_ms)),
        }
    }

    /// Waiting for a flush: asked every 250 ms at most (a flush of Milvus 2.3 ends
    /// about a second after it was asked; a doubling pause would see it up to a
    /// second and a half late, on every backup).
    pub(crate) fn flush(&self) -> crate::poll::Schedule {
        let mut s = self.schedule(self.flush_secs);
        s.max = s.max.min(Duration::from_millis(250));
        s
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

    /// Waiting for a cluster to answer again, to clean up after a failed job.
    pub(crate) fn cleanup(&self) -> crate::poll::Schedule {
        self.schedule(self.cleanup_secs)
    }

    /// Timeouts and retries of every storage request.
    pub(crate) fn storage(&self) -> crate::storage::Resilience {
        crate::storage::Resilience {
            op_timeout: Duration::from_secs(self.storage_op_secs),
            io_timeout: Duration::from_secs(self.storage_io_secs),
            retries: self.storage_retries,
            first_retry: Duration::from_millis(self.storage_retry_first_ms),
            max_retry: Duration::from_millis(
                self.storage_retry_max_ms.max(self.storage_retry_first_ms),
            ),
        }
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
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `tracing` filter, e.g. `info,milvault_server=debug`.
    #[serde(default = "default_log_filter")]
    pub log_filter: String,
    /// OTLP gRPC endpoint for traces (e.g. `http://127.0.0.1:4317`); off when unset.
    /// Credentials written into it (`https://user:token@collector:4317`) are taken
    /// out and sent as HTTP basic authentication.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// `user[:password]` taken out of `otlp_endpoint` at load time (URL-encoded).
    #[serde(skip)]
    otlp_userinfo: Option<Secret>,
}

impl TelemetryConfig {
    /// `(user, password)` for the OTLP collector, when its URL carried them.
    pub fn otlp_basic_auth(&self) -> Option<(String, String)> {
        let info = self.otlp_userinfo.as_ref()?.expose();
        let (user, pass) = info.split_once(':').unwrap_or((info, ""));
        Some((percent_decode(user), percent_decode(pass)))
    }
}

impl std::fmt::Debug for TelemetryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryConfig")
            .field("log_filter", &self.log_filter)
            .field(
                "otlp_endpoint",
                &self.otlp_endpoint.as_deref().map(redact_url),
            )
            .field(
                "otlp_credentials",
                &self.otlp_userinfo.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_filter: default_log_filter(),
            otlp_endpoint: None,
            otlp_userinfo: None,
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

const ENV_SECTIONS: [&str; 7] = [
    "server",
    "clusters",
    "repositories",
    "limits",
    "telemetry",
    "timeouts",
    "restore",
];

/// Whether a variable (after `MILVAULT_`, split at `__`, lowercased) belongs to a
/// configuration section.
fn is_config_key(key: &str) -> bool {
    let section = key.split('.').next().unwrap_or_default();
    key.contains('.') && ENV_SECTIONS.contains(&section)
}

/// Whether a dotted key names a secret, whose value is taken as written.
fn is_secret_path(key: &str) -> bool {
    is_secret_key(key.rsplit('.').next().unwrap_or_default())
}

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
        let env = Env::prefixed("MILVAULT_").split("__");
        // Keys keep the variable's case in the filter (figment lowercases later).
        fig = fig.merge(env.clone().filter(|k| {
            let k = k.as_str().to_ascii_lowercase();
            is_config_key(&k) && !is_secret_path(&k)
        }));
        // Secrets as written: figment would read `123456` as a number, `[x]` as a list.
        for (key, value) in env.iter() {
            if is_config_key(key.as_str()) && is_secret_path(key.as_str()) {
                fig = fig.merge(Serialized::default(key.as_str(), value));
            }
        }
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
        config.finish()
    }

    /// Parses a TOML document (no environment, no flags); for tests and tools.
    pub fn from_toml(text: &str) -> Result<Self> {
        let config: Config = Figment::new()
            .merge(Toml::string(text))
            .extract()
            .map_err(|e| Error::invalid("config", e.to_string()))?;
        config.finish()
    }

    /// Takes credentials out of URLs, then validates.
    fn finish(mut self) -> Result<Self> {
        self.take_url_credentials()?;
        self.validate()?;
        Ok(self)
    }

    /// Moves credentials written inside URLs out of them, so that no address the
    /// server shows, logs or records carries one.
    fn take_url_credentials(&mut self) -> Result<()> {
        for (name, c) in &mut self.clusters {
            let (address, info) = take_userinfo(&c.address);
            if let Some(info) = info {
                if c.username.is_some() || c.password.is_some() || c.token.is_some() {
                    return Err(Error::invalid(
                        "config",
                        format!(
                            "clusters.{name}.address carries credentials and username, password or token is set too: give them once"
                        ),
                    ));
                }
                let (user, pass) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info.as_str(), None),
                };
                c.username = Some(percent_decode(user));
                c.password = pass.map(|p| Secret(percent_decode(p)));
                c.address = address;
            }
            if let Some(m) = &c.management {
                let (management, info) = take_userinfo(m);
                c.management = Some(management);
                c.management_userinfo = info.map(Secret);
            }
        }
        if let Some(endpoint) = &self.telemetry.otlp_endpoint {
            let (endpoint, info) = take_userinfo(endpoint);
            self.telemetry.otlp_endpoint = Some(endpoint);
            self.telemetry.otlp_userinfo = info.map(Secret);
        }
        Ok(())
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<()> {
        for (name, c) in &self.clusters {
            if !(c.address.starts_with("http://") || c.address.starts_with("https://")) {
                return Err(Error::invalid(
                    "config",
                    format!(
                        "clusters.{name}.address must start with http:// or https://, got {:?}",
                        redact_url(&c.address)
                    ),
                ));
            }
            if c.token.is_some() && (c.username.is_some() || c.password.is_some()) {
                return Err(Error::invalid(
                    "config",
                    format!(
                        "clusters.{name}: token and username/password are alternatives; set one"
                    ),
                ));
            }
            if c.password.is_some() && c.username.is_none() {
                return Err(Error::invalid(
                    "config",
                    format!("clusters.{name}.password is set without a username"),
                ));
            }
            if let Some(tls) = &c.tls {
                if !c.address.starts_with("https://") {
                    return Err(Error::invalid(
                        "config",
                        format!("clusters.{name}.tls needs an https:// address"),
                    ));
                }
                if tls.cert_file.is_some() != tls.key_file.is_some() {
                    return Err(Error::invalid(
                        "config",
                        format!("clusters.{name}.tls: cert_file and key_file go together"),
                    ));
                }
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
        let storages = self
            .clusters
            .iter()
            .map(|(n, c)| (format!("clusters.{n}"), &c.storage))
            .chain(
                self.repositories
                    .iter()
                    .map(|(n, r)| (format!("repositories.{n}"), &r.storage)),
            );
        for (owner, storage) in storages {
            for (key, value) in &storage.options {
                if userinfo_parts(value).is_some() {
                    return Err(Error::invalid(
                        "config",
                        format!(
                            "{owner}.storage.{key} carries credentials inside its URL ({}): storage libraries log endpoints as they are; give them as the scheme's own options (access_key_id/secret_access_key, username/password, ...)",
                            redact_url(value)
                        ),
                    ));
                }
            }
        }
        if self.limits.copy_concurrency == 0 || self.limits.import_concurrency == 0 {
            return Err(Error::invalid("config", "limits must be at least 1"));
        }
        let r = &self.restore;
        if r.import_batch_segments == 0
            || r.import_batch_bytes == 0
            || r.import_first_batch_bytes == 0
        {
            return Err(Error::invalid(
                "config",
                "restore.import_batch_segments, import_batch_bytes and import_first_batch_bytes must be at least 1",
            ));
        }
        if self.timeouts.rpc_secs == 0 || self.timeouts.poll_first_ms == 0 {
            return Err(Error::invalid(
                "config",
                "timeouts.rpc_secs and timeouts.poll_first_ms must be at least 1",
            ));
        }
        let t = &self.timeouts;
        if t.storage_op_secs == 0 || t.storage_io_secs == 0 || t.storage_retry_first_ms == 0 {
            return Err(Error::invalid(
                "config",
                "timeouts.storage_op_secs, timeouts.storage_io_secs and timeouts.storage_retry_first_ms must be at least 1",
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
            std::env::set_var("MILVAULT_CLUSTERS__PROD__USERNAME", "u");
            std::env::set_var("MILVAULT_CLUSTERS__PROD__PASSWORD", "007");
            std::env::set_var("MILVAULT_SERVER__AUTH_TOKEN", "[not, a, list]");
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
        // Secrets come through as written.
        let prod = &c.clusters["prod"];
        assert_eq!(prod.password.as_ref().map(Secret::expose), Some("007"));
        assert_eq!(
            c.server.auth_token.as_ref().map(Secret::expose),
            Some("[not, a, list]")
        );
        unsafe {
            std::env::remove_var("MILVAULT_CLUSTERS__PROD__USERNAME");
            std::env::remove_var("MILVAULT_CLUSTERS__PROD__PASSWORD");
            std::env::remove_var("MILVAULT_SERVER__AUTH_TOKEN");
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
    fn credentials_in_urls_are_taken_out() {
        let text = r#"
[clusters.a]
address = "https://alice:p%40ss@milvus.example:19530"
management = "http://ops:mgmt-pw@milvus.example:9091/"
storage = { scheme = "s3", bucket = "b", endpoint = "http://minio:9000/?x-sig=1&token=tok-pw" }
[telemetry]
otlp_endpoint = "https://tenant:otlp-pw@collector:4317"
"#;
        let c = Config::from_toml(text).expect("parse");
        let a = &c.clusters["a"];
        assert_eq!(a.address, "https://milvus.example:19530");
        assert_eq!(a.username.as_deref(), Some("alice"));
        assert_eq!(a.password.as_ref().map(Secret::expose), Some("p@ss"));
        assert_eq!(a.management.as_deref(), Some("http://milvus.example:9091/"));
        assert_eq!(
            a.management_url().as_deref(),
            Some("http://ops:mgmt-pw@milvus.example:9091/")
        );
        assert_eq!(
            c.telemetry.otlp_endpoint.as_deref(),
            Some("https://collector:4317")
        );
        assert_eq!(
            c.telemetry.otlp_basic_auth(),
            Some(("tenant".to_owned(), "otlp-pw".to_owned()))
        );
        assert_eq!(
            a.storage.redacted()["endpoint"],
            "http://minio:9000/?x-sig=1&token=<redacted>"
        );
        let shown = format!("{c:?}");
        for secret in ["p@ss", "p%40ss", "mgmt-pw", "tok-pw", "otlp-pw"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        // Storage libraries log their endpoint verbatim: credentials there are refused.
        let in_storage = text.replace("http://minio:9000/", "http://minio:minio-pw@minio:9000/");
        let err = Config::from_toml(&in_storage).expect_err("credentials in a storage URL");
        assert!(
            err.to_string().contains("clusters.a.storage.endpoint"),
            "{err}"
        );
        assert!(!err.to_string().contains("minio-pw"), "{err}");
        assert_eq!(
            redact_url("http://minio:minio-pw@minio:9000/"),
            "http://<redacted>@minio:9000/"
        );
    }

    #[test]
    fn credentials_are_given_once() {
        let base = "[clusters.a]\nstorage = { scheme = \"fs\", root = \"/x\" }\n";
        let twice = format!("{base}address = \"http://u:p@h:1\"\nusername = \"v\"\n");
        assert!(Config::from_toml(&twice).is_err());
        let both = format!(
            "{base}address = \"http://h:1\"\nusername = \"u\"\npassword = \"p\"\ntoken = \"t\"\n"
        );
        let err = Config::from_toml(&both).expect_err("token and password");
        assert!(err.to_string().contains("alternatives"), "{err}");
        let token = format!("{base}address = \"http://h:1\"\ntoken = \"t\"\n");
        assert!(Config::from_toml(&token).is_ok());
        let tls_plain = format!("{base}address = \"http://h:1\"\ntls = {{ ca_file = \"/ca\" }}\n");
        assert!(Config::from_toml(&tls_plain).is_err());
        let half = format!("{base}address = \"https://h:1\"\ntls = {{ cert_file = \"/c\" }}\n");
        assert!(Config::from_toml(&half).is_err());
    }

    #[test]
    fn values_without_credentials_are_shown_as_they_are() {
        assert_eq!(redact_url("/var/lib/milvus"), "/var/lib/milvus");
        assert_eq!(redact_url("http://h:9000/a@b"), "http://h:9000/a@b");
        assert_eq!(redact_url("us-east-1"), "us-east-1");
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
