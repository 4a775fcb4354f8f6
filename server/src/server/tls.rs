//! TLS for the service: the listener's connections go through a rustls handshake
//! before tonic sees them, with the `rustls::ServerConfig` of the moment.
//!
//! The certificate, key and client CA are read again when their files change (a
//! small polling task compares their contents every `reload_check_secs`) or on
//! SIGHUP. A good new set replaces the configuration that later handshakes use; the
//! listener stays open and established connections keep theirs. A bad set (missing
//! file, key that does not match, half-written PEM) is logged and the previous one
//! stays in use, so a certificate rotation never takes the service down.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::RootCertStore;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use crate::config::ServerTlsConfig;
use crate::error::{Error, Result};

/// A client that connects but does not finish its handshake is dropped after this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for tonic to take them.
const ACCEPTED_BACKLOG: usize = 64;

/// The contents of the TLS files, to notice a change and to build from.
#[derive(PartialEq, Eq)]
struct Files {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

async fn read(path: &Path) -> Result<Vec<u8>> {
    tokio::fs::read(path)
        .await
        .map_err(|e| Error::invalid("server.tls", format!("cannot read {}: {e}", path.display())))
}

fn bad(what: &str, path: &Path, e: impl std::fmt::Display) -> Error {
    Error::invalid("server.tls", format!("{what} in {}: {e}", path.display()))
}

impl Files {
    async fn read(config: &ServerTlsConfig) -> Result<Self> {
        Ok(Self {
            cert: read(&config.cert_file).await?,
            key: read(&config.key_file).await?,
            client_ca: match &config.client_ca_file {
                Some(p) => Some(read(p).await?),
                None => None,
            },
        })
    }

    /// A rustls configuration from these files: HTTP/2 only (gRPC), TLS 1.2 and
    /// 1.3, client certificates required and verified when a client CA is given.
    fn build(&self, config: &ServerTlsConfig) -> Result<Arc<rustls::ServerConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = CertificateDer::pem_slice_iter(&self.cert)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| bad("unreadable certificate", &config.cert_file, e))?;
        if certs.is_empty() {
            return Err(bad("no certificate", &config.cert_file, "empty"));
        }
        let key = PrivateKeyDer::from_pem_slice(&self.key)
            .map_err(|e| bad("unreadable private key", &config.key_file, e))?;
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::internal("TLS protocol versions", e))?;
        let builder = match (&self.client_ca, &config.client_ca_file) {
            (Some(pem), Some(path)) => {
                let mut roots = RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(pem) {
                    let cert = cert.map_err(|e| bad("unreadable CA certificate", path, e))?;
                    roots
                        .add(cert)
                        .map_err(|e| bad("unusable CA certificate", path, e))?;
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .build()
                        .map_err(|e| bad("unusable client CA", path, e))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut server = builder.with_single_cert(certs, key).map_err(|e| {
            bad(
                "certificate and key do not go together",
                &config.key_file,
                e,
            )
        })?;
        server.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(server))
    }
}

/// The rustls configuration in force, and how to renew it.
pub(crate) struct TlsState {
    config: ServerTlsConfig,
    current: RwLock<Arc<rustls::ServerConfig>>,
    /// The files last looked at (loaded or refused), so one change is acted on once.
    seen: Mutex<Files>,
}

impl TlsState {
    /// Reads and checks the files; an error here stops the server from starting.
    pub(crate) async fn load(config: &ServerTlsConfig) -> Result<Arc<Self>> {
        let files = Files::read(config).await?;
        let current = files.build(config)?;
        Ok(Arc::new(Self {
            config: config.clone(),
            current: RwLock::new(current),
            seen: Mutex::new(files),
        }))
    }

    fn current(&self) -> Arc<rustls::ServerConfig> {
        match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reloads when the files changed since last looked at, or always when `force`.
    async fn check(&self, force: bool) {
        let files = match Files::read(&self.config).await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "TLS files not reloaded; the previous certificate stays in use");
                return;
            }
        };
        {
            let mut seen = match self.seen.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            if !force && *seen == files {
                return;
            }
            let built = files.build(&self.config);
            *seen = files;
            match built {
                Ok(new) => {
                    match self.current.write() {
                        Ok(mut c) => *c = new,
                        Err(poisoned) => *poisoned.into_inner() = new,
                    }
                    tracing::info!(
                        cert_file = %self.config.cert_file.display(),
                        "TLS certificate reloaded"
                    );
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "TLS files not reloaded; the previous certificate stays in use"
                ),
            }
        }
    }
}

/// Aborts a background task when dropped (the server's tasks end with it).
pub(crate) struct AbortOnDrop(pub(crate) JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Watches the files every `reload_check_secs` and, when `sighup`, reloads on
/// SIGHUP too.
pub(crate) fn spawn_reloader(state: Arc<TlsState>, sighup: bool) -> AbortOnDrop {
    // Watched before returning: a SIGHUP right after start must not kill the process.
    let mut hangup = hangups(sighup);
    AbortOnDrop(tokio::spawn(async move {
        let mut tick = (state.config.reload_check_secs > 0).then(|| {
            let mut t = tokio::time::interval(Duration::from_secs(state.config.reload_check_secs));
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            tokio::select! {
                _ = async {
                    match &mut tick {
                        Some(t) => { t.tick().await; }
                        None => std::future::pending::<()>().await,
                    }
                } => state.check(false).await,
                Some(()) = next_hangup(&mut hangup) => {
                    tracing::info!("SIGHUP: reloading the TLS certificate");
                    state.check(true).await;
                }
            }
        }
    }))
}

/// Without TLS there is nothing to reload: SIGHUP is noted in the log instead of
/// ending the process (its default action).
pub(crate) fn spawn_hangup_notice() -> AbortOnDrop {
    let mut hangup = hangups(true);
    AbortOnDrop(tokio::spawn(async move {
        while next_hangup(&mut hangup).await.is_some() {
            tracing::info!("SIGHUP: nothing to reload (no [server.tls])");
        }
    }))
}

#[cfg(unix)]
type Hangups = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangups = Option<()>;

#[cfg(unix)]
fn hangups(enabled: bool) -> Hangups {
    use tokio::signal::unix::{SignalKind, signal};
    if !enabled {
        return None;
    }
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "SIGHUP cannot be watched; TLS files are still checked for changes");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangups(_enabled: bool) -> Hangups {
    None
}

#[cfg(unix)]
async fn next_hangup(h: &mut Hangups) -> Option<()> {
    match h {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_h: &mut Hangups) -> Option<()> {
    std::future::pending().await
}

/// The listener's connections after their TLS handshake, as tonic's incoming
/// stream. Handshakes run in their own tasks, so a slow client holds up nobody.
pub(crate) fn incoming(
    listener: TcpListener,
    state: Arc<TlsState>,
) -> (
    ReceiverStream<std::io::Result<TlsStream<TcpStream>>>,
    AbortOnDrop,
) {
    let (tx, rx) = mpsc::channel(ACCEPTED_BACKLOG);
    let task = tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, go on.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                return;
            }
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(state.current());
            let tx = tx.clone();
            tokio::spawn(handshake(acceptor, tcp, peer, tx));
        }
    });
    (ReceiverStream::new(rx), AbortOnDrop(task))
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    tx: mpsc::Sender<std::io::Result<TlsStream<TcpStream>>>,
) {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => {
            let _ = tx.send(Ok(stream)).await;
        }
        // Probes, port scans and clients without the right certificate land here.
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
    }
}
