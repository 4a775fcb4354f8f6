//! TLS, with certificates the test makes: the service over TLS (the SDK verifies
//! the server against a CA; without it the call fails), mutual TLS (no client
//! certificate, no call), the CLI's `--ca/--cert/--key`, health and reflection over
//! TLS with grpcurl, certificate files replaced while the server runs (new
//! connections get the new certificate; a bad file keeps the old one), SIGHUP on the
//! real binary, and TLS plus a token to Milvus (a small TLS Milvus stub that
//! requires a client certificate and records the `authorization` header).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use milvault_proto::milvus::common::{ServerInfo, Status};
use milvault_proto::milvus::milvus as mpb;
use milvault_proto::milvus::milvus::milvus_service_server::{MilvusService, MilvusServiceServer};
use milvault_sdk::{Client, ConnectOptions, pb};
use milvault_tests::harness::{
    Minimal, MinimalCluster, TestServer, cli, run_job, unique, workspace_bin,
};
use milvault_tests::pki::{Ca, Pair, write_atomic};
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Response};

/// Connects with `options` and makes one call.
async fn call(
    endpoint: &str,
    options: &ConnectOptions,
) -> Result<pb::GetServerInfoResponse, String> {
    let client = Client::connect_opts(endpoint, options)
        .await
        .map_err(|e| e.to_string())?;
    client.server_info().await.map_err(|e| e.to_string())
}

fn https(server: &TestServer) -> String {
    server.endpoint.replace("http://", "https://")
}

/// `[server]` lines for TLS with these files.
fn tls_lines(cert: &Path, key: &Path, client_ca: Option<&Path>, reload_secs: u64) -> String {
    format!(
        "tls = {{ cert_file = \"{}\", key_file = \"{}\", {}reload_check_secs = {reload_secs} }}",
        cert.display(),
        key.display(),
        client_ca
            .map(|c| format!("client_ca_file = \"{}\", ", c.display()))
            .unwrap_or_default()
    )
}

fn write(dir: &Path, name: &str, text: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    write_atomic(&path, text)?;
    Ok(path)
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn the_sdk_verifies_the_server_certificate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("milvault test CA")?;
    let (cert, key) = ca
        .server(&["localhost", "127.0.0.1"])?
        .write(dir.path(), "server")?;
    let ca_file = write(dir.path(), "ca.pem", &ca.pem())?;
    let config = Minimal {
        server_extra: tls_lines(&cert, &key, None, 10),
        ..Default::default()
    };
    let server = TestServer::start_minimal(&config, vec![dir]).await?;
    let ep = https(&server);

    let info = call(&ep, &ConnectOptions::new().ca_pem(ca.pem())).await;
    assert_eq!(info.map(|i| i.repositories.len()), Ok(1));
    call(&ep, &ConnectOptions::new().ca_file(&ca_file))
        .await
        .map_err(anyhow::Error::msg)?;

    // The system's CAs do not know ours; another CA is not ours either.
    let err = call(&ep, &ConnectOptions::new()).await.expect_err("no CA");
    assert!(err.contains("cannot connect"), "{err}");
    let other = Ca::new("someone else")?;
    assert!(
        call(&ep, &ConnectOptions::new().ca_pem(other.pem()))
            .await
            .is_err()
    );
    // Plain gRPC does not get through either, and TLS options refuse http://.
    assert!(
        call(&server.endpoint, &ConnectOptions::new())
            .await
            .is_err()
    );
    let err = call(&server.endpoint, &ConnectOptions::new().ca_pem(ca.pem()))
        .await
        .expect_err("http with a CA");
    assert!(err.contains("https://"), "{err}");

    // Health and reflection share the port, over TLS.
    let grpcurl = std::env::var("MILVAULT_TEST_GRPCURL").unwrap_or_else(|_| "grpcurl".to_owned());
    let addr = server.endpoint.trim_start_matches("http://").to_owned();
    let ca_arg = ca_file.display().to_string();
    for args in [
        vec!["-cacert", &ca_arg, &addr, "grpc.health.v1.Health/Check"],
        vec!["-cacert", &ca_arg, &addr, "list"],
    ] {
        let out = tokio::process::Command::new(&grpcurl)
            .args(&args)
            .output()
            .await?;
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        let shown = text(&out);
        assert!(
            shown.contains("SERVING") || shown.contains("milvault.v1.BackupService"),
            "{shown}"
        );
    }
    let out = tokio::process::Command::new(&grpcurl)
        .args([
            "-plaintext",
            "-connect-timeout",
            "3",
            &addr,
            "grpc.health.v1.Health/Check",
        ])
        .output()
        .await?;
    assert!(
        !out.status.success(),
        "plaintext health over TLS: {}",
        text(&out)
    );
    server.stop().await;
    Ok(())
}

#[tokio::test]
async fn a_server_name_other_than_the_host_is_verified() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = Ca::new("milvault test CA")?;
    let (cert, key) = ca
        .server(&["milvault.internal"])?
        .write(dir.path(), "server")?;
    let config = Minimal {
        server_extra: tls_lines(&cert, &key, None, 10),
        ..Default::default()
    };
    let server = TestServer::start_minimal(&config, vec![dir]).await?;
    let ep = https(&server);
    let trusting = ConnectOptions::new().ca_pem(ca.pem());
    assert!(
        call(&ep, &trusting).await.is_err(),
        "127.0.0.1 is not on the certificate"
    );
    call(&ep, &trusting.clone().server_name("milvault.internal"))
        .await
        .map_err(anyhow::Error::msg)?;
    server.stop().await;
    Ok(())
}

/// A server that requires client certificates signed by `client_ca`.
struct Mutual {
    server: TestServer,
    server_ca: Ca,
    client_ca: Ca,
    ca_file: PathBuf,
    client: (PathBuf, PathBuf),
}

async fn mutual() -> anyhow::Result<Mutual> {
    let dir = tempfile::tempdir()?;
    let server_ca = Ca::new("server CA")?;
    let client_ca = Ca::new("client CA")?;
    let (cert, key) = server_ca
        .server(&["localhost", "127.0.0.1"])?
        .write(dir.path(), "server")?;
    let client_ca_file = write(dir.path(), "client-ca.pem", &client_ca.pem())?;
    let ca_file = write(dir.path(), "ca.pem", &server_ca.pem())?;
    let client = client_ca
        .client("backup-operator")?
        .write(dir.path(), "client")?;
    let config = Minimal {
        server_extra: tls_lines(&cert, &key, Some(&client_ca_file), 10),
        ..Default::default()
    };
    let server = TestServer::start_minimal(&config, vec![dir]).await?;
    Ok(Mutual {
        server,
        server_ca,
        client_ca,
        ca_file,
        client,
    })
}

#[tokio::test]
async fn mutual_tls_needs_a_client_certificate_from_the_client_ca() -> anyhow::Result<()> {
    let m = mutual().await?;
    let ep = https(&m.server);
    let trusting = ConnectOptions::new().ca_pem(m.server_ca.pem());

    assert!(call(&ep, &trusting).await.is_err(), "no client certificate");
    let stranger = Ca::new("stranger")?.client("backup-operator")?;
    assert!(
        call(
            &ep,
            &trusting.clone().identity_pem(stranger.cert, stranger.key)
        )
        .await
        .is_err(),
        "a client certificate from another CA"
    );
    let own: Pair = m.client_ca.client("someone")?;
    call(&ep, &trusting.clone().identity_pem(own.cert, own.key))
        .await
        .map_err(anyhow::Error::msg)?;
    call(&ep, &trusting.identity_files(&m.client.0, &m.client.1))
        .await
        .map_err(anyhow::Error::msg)?;
    m.server.stop().await;
    Ok(())
}

#[tokio::test]
async fn the_cli_speaks_tls_with_ca_cert_and_key() -> anyhow::Result<()> {
    let m = mutual().await?;
    let ep = https(&m.server);
    let ca = m.ca_file.display().to_string();
    let cert = m.client.0.display().to_string();
    let key = m.client.1.display().to_string();

    let out = cli(
        &ep,
        &["--ca", &ca, "--cert", &cert, "--key", &key, "server-info"],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("local"), "{}", text(&out));

    // Without the client certificate the server refuses: exit 2 with the reason.
    let out = cli(&ep, &["--ca", &ca, "backup", "list"]).await?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // --cert needs --key.
    let out = cli(&ep, &["--ca", &ca, "--cert", &cert, "server-info"]).await?;
    assert!(!out.status.success(), "{}", text(&out));
    // TLS settings with an http:// endpoint are an error, not ignored.
    let out = cli(&m.server.endpoint, &["--ca", &ca, "server-info"]).await?;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("https://"), "{}", text(&out));

    // The same from MILVAULT_CA / MILVAULT_CERT / MILVAULT_KEY.
    let out = tokio::process::Command::new(workspace_bin("milvault"))
        .args(["--endpoint", &ep, "-o", "json", "server-info"])
        .env("MILVAULT_CA", &ca)
        .env("MILVAULT_CERT", &cert)
        .env("MILVAULT_KEY", &key)
        .output()
        .await?;
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["repositories"][0]["name"], "local");
    m.server.stop().await;
    Ok(())
}

/// Tries `options` until a call works or `timeout` passes; the error of the last try.
async fn until_accepted(
    endpoint: &str,
    options: &ConnectOptions,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match call(endpoint, options).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

#[tokio::test]
async fn replaced_certificate_files_are_served_to_new_connections() -> anyhow::Result<()> {
    let logs = milvault_tests::logs::capture("info,milvault_server=debug");
    let dir = tempfile::tempdir()?;
    let files = dir.path().to_owned();
    let first = Ca::new("first CA")?;
    let (cert, key) = first.server(&["127.0.0.1"])?.write(&files, "server")?;
    let config = Minimal {
        server_extra: tls_lines(&cert, &key, None, 1),
        ..Default::default()
    };
    let server = TestServer::start_minimal(&config, vec![dir]).await?;
    let ep = https(&server);
    let old_ca = ConnectOptions::new().ca_pem(first.pem());
    let established = Client::connect_opts(&ep, &old_ca).await?;
    established.server_info().await?;

    // A new certificate from a new CA, written over the same files.
    let second = Ca::new("second CA")?;
    second.server(&["127.0.0.1"])?.write(&files, "server")?;
    let new_ca = ConnectOptions::new().ca_pem(second.pem());
    until_accepted(&ep, &new_ca, Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("the new certificate was never served: {e}"))?;
    assert!(
        call(&ep, &old_ca).await.is_err(),
        "new connections still get the old certificate"
    );
    // The listener stayed up, and a connection made before keeps working.
    established.server_info().await?;
    assert!(
        logs.text().contains("TLS certificate reloaded"),
        "{}",
        logs.text()
    );

    // A broken key is refused; the certificate in use stays.
    write_atomic(
        &key,
        "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n",
    )?;
    assert!(
        logs.wait_for("TLS files not reloaded", Duration::from_secs(30))
            .await,
        "{}",
        logs.text()
    );
    call(&ep, &new_ca).await.map_err(anyhow::Error::msg)?;
    // ... until a good pair arrives.
    let third = Ca::new("third CA")?;
    third.server(&["127.0.0.1"])?.write(&files, "server")?;
    until_accepted(
        &ep,
        &ConnectOptions::new().ca_pem(third.pem()),
        Duration::from_secs(30),
    )
    .await
    .map_err(|e| anyhow::anyhow!("the third certificate was never served: {e}"))?;
    server.stop().await;
    Ok(())
}

/// Strips ANSI colour sequences from a log line.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn sighup_makes_the_binary_reload_its_certificate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = dir.path();
    let first = Ca::new("first CA")?;
    let (cert, key) = first.server(&["127.0.0.1"])?.write(files, "server")?;
    let config = files.join("milvault.toml");
    std::fs::create_dir_all(files.join("state"))?;
    std::fs::create_dir_all(files.join("repo"))?;
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n{}\n[repositories.local]\nstorage = {{ scheme = \"fs\", root = \"{}\" }}\n",
            files.join("state").display(),
            // Only SIGHUP reloads here.
            tls_lines(&cert, &key, None, 0),
            files.join("repo").display()
        ),
    )?;
    let bin = workspace_bin("milvault-server");
    anyhow::ensure!(
        bin.exists(),
        "{} not built: run `cargo build --workspace` first",
        bin.display()
    );
    let mut child = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(&config)
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stderr = child
        .stderr
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel::<String>();
    let log = Arc::new(Mutex::new(String::new()));
    let log_writer = log.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut addr_tx = Some(addr_tx);
        while let Ok(Some(line)) = lines.next_line().await {
            let line = plain(&line);
            if line.contains("milvault-server listening")
                && let Some(addr) = line
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix("local="))
                && let Some(tx) = addr_tx.take()
            {
                let _ = tx.send(addr.to_owned());
            }
            if let Ok(mut l) = log_writer.lock() {
                l.push_str(&line);
                l.push('\n');
            }
        }
    });
    let addr = tokio::time::timeout(Duration::from_secs(30), addr_rx)
        .await
        .map_err(|_| anyhow::anyhow!("the server did not say where it listens"))??;
    let ep = format!("https://{addr}");
    call(&ep, &ConnectOptions::new().ca_pem(first.pem()))
        .await
        .map_err(anyhow::Error::msg)?;

    let second = Ca::new("second CA")?;
    second.server(&["127.0.0.1"])?.write(files, "server")?;
    let new_ca = ConnectOptions::new().ca_pem(second.pem());
    assert!(
        call(&ep, &new_ca).await.is_err(),
        "reloaded without a SIGHUP"
    );
    let pid = child
        .id()
        .ok_or_else(|| anyhow::anyhow!("no pid"))?
        .to_string();
    let status = tokio::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .await?;
    assert!(status.success());
    until_accepted(&ep, &new_ca, Duration::from_secs(30))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "SIGHUP did not reload: {e}; log: {}",
                log.lock().map(|l| l.clone()).unwrap_or_default()
            )
        })?;
    assert!(child.try_wait()?.is_none(), "SIGHUP ended the server");
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await;
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    Ok(())
}

/// What the Milvus stub saw of one call.
#[derive(Clone, Debug)]
struct Seen {
    method: &'static str,
    authorization: Option<String>,
    client_certificate: bool,
}

/// A Milvus that answers Connect, GetVersion, ListDatabases and ShowCollections
/// (one empty database), and records each call.
#[derive(Clone, Default)]
struct StubMilvus {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl StubMilvus {
    fn record<T>(&self, method: &'static str, req: &Request<T>) {
        let seen = Seen {
            method,
            authorization: req
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            client_certificate: req.peer_certs().is_some_and(|c| !c.is_empty()),
        };
        if let Ok(mut s) = self.seen.lock() {
            s.push(seen);
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn ok() -> Option<Status> {
    Some(Status::default())
}

#[tonic::async_trait]
impl MilvusService for StubMilvus {
    async fn connect(
        &self,
        req: Request<mpb::ConnectRequest>,
    ) -> Result<Response<mpb::ConnectResponse>, tonic::Status> {
        self.record("Connect", &req);
        Ok(Response::new(mpb::ConnectResponse {
            status: ok(),
            server_info: Some(ServerInfo {
                build_tags: "v2.3.5".into(),
                ..Default::default()
            }),
            identifier: 1,
        }))
    }

    async fn get_version(
        &self,
        req: Request<mpb::GetVersionRequest>,
    ) -> Result<Response<mpb::GetVersionResponse>, tonic::Status> {
        self.record("GetVersion", &req);
        Ok(Response::new(mpb::GetVersionResponse {
            status: ok(),
            version: "v2.3.5".into(),
        }))
    }

    async fn list_databases(
        &self,
        req: Request<mpb::ListDatabasesRequest>,
    ) -> Result<Response<mpb::ListDatabasesResponse>, tonic::Status> {
        self.record("ListDatabases", &req);
        Ok(Response::new(mpb::ListDatabasesResponse {
            status: ok(),
            db_names: vec!["default".into()],
            ..Default::default()
        }))
    }

    async fn show_collections(
        &self,
        req: Request<mpb::ShowCollectionsRequest>,
    ) -> Result<Response<mpb::ShowCollectionsResponse>, tonic::Status> {
        self.record("ShowCollections", &req);
        Ok(Response::new(mpb::ShowCollectionsResponse {
            status: ok(),
            ..Default::default()
        }))
    }
}

/// Serves the stub over TLS with `server` as its certificate, requiring client
/// certificates signed by `client_ca`; returns its port.
async fn serve_stub(stub: StubMilvus, server: &Pair, client_ca: &Ca) -> anyhow::Result<u16> {
    // tonic's server TLS takes the process's default provider; this binary has two.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(&server.cert, &server.key))
        .client_ca_root(Certificate::from_pem(client_ca.pem()));
    let router = tonic::transport::Server::builder()
        .tls_config(tls)?
        .add_service(MilvusServiceServer::new(stub));
    tokio::spawn(async move {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        if let Err(e) = router.serve_with_incoming(incoming).await {
            eprintln!("stub Milvus stopped: {e}");
        }
    });
    Ok(port)
}

#[tokio::test]
async fn milvus_is_reached_over_tls_with_a_client_certificate_and_a_token() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = dir.path().to_owned();
    let milvus_ca = Ca::new("milvus CA")?;
    let client_ca = Ca::new("milvus client CA")?;
    let stub = StubMilvus::default();
    let port = serve_stub(
        stub.clone(),
        &milvus_ca.server(&["milvus.test"])?,
        &client_ca,
    )
    .await?;
    let ca_file = write(&files, "milvus-ca.pem", &milvus_ca.pem())?;
    let (cert, key) = client_ca
        .client("milvault")?
        .write(&files, "milvault-client")?;
    let storage = tempfile::tempdir()?;
    let cluster = |name: &str, extra: String| MinimalCluster {
        name: name.into(),
        address: format!("https://127.0.0.1:{port}"),
        management: None,
        root: storage.path().to_owned(),
        extra: format!("connect_timeout_secs = 5\n{extra}"),
    };
    let config = Minimal {
        clusters: vec![
            cluster(
                "secure",
                format!(
                    "token = \"api-key-0042\"\ntls = {{ ca_file = \"{}\", server_name = \"milvus.test\", cert_file = \"{}\", key_file = \"{}\" }}\n",
                    ca_file.display(),
                    cert.display(),
                    key.display()
                ),
            ),
            // The system's CAs do not know the stub's.
            cluster("no_ca", String::new()),
            // The right CA but no client certificate.
            cluster(
                "no_cert",
                format!(
                    "tls = {{ ca_file = \"{}\", server_name = \"milvus.test\" }}\n",
                    ca_file.display()
                ),
            ),
        ],
        ..Default::default()
    };
    let server = TestServer::start_minimal(&config, vec![dir, storage]).await?;
    let client = server.client().await?;

    let backup = |cluster: &str| pb::CreateBackupRequest {
        name: unique("tlsmilvus"),
        cluster: cluster.into(),
        repository: "local".into(),
        ..Default::default()
    };
    let request = backup("secure");
    let done = run_job(&client, client.create_backup(request.clone()).await?).await?;
    milvault_tests::harness::assert_succeeded(&done);
    let got = client
        .get_backup(pb::GetBackupRequest {
            name: request.name.clone(),
            repository: "local".into(),
        })
        .await?;
    let source = got
        .manifest
        .and_then(|m| m.source)
        .ok_or_else(|| anyhow::anyhow!("no manifest source"))?;
    assert_eq!(source.milvus_version, "v2.3.5");
    assert_eq!(source.address, format!("https://127.0.0.1:{port}"));

    let seen = stub.seen();
    assert!(seen.iter().any(|s| s.method == "Connect"), "{seen:?}");
    let expected = base64::engine::general_purpose::STANDARD.encode("api-key-0042");
    for s in &seen {
        assert_eq!(s.authorization.as_deref(), Some(expected.as_str()), "{s:?}");
        assert!(s.client_certificate, "{s:?}");
    }

    let calls_before = stub.seen().len();
    for name in ["no_ca", "no_cert"] {
        let done = run_job(&client, client.create_backup(backup(name)).await?).await?;
        assert_eq!(done.state(), pb::JobState::Failed, "{name}: {done:?}");
        let reason = done.error.as_ref().map(|e| e.reason.as_str());
        assert_eq!(
            reason,
            Some("MILVUS_UNAVAILABLE"),
            "{name}: {:?}",
            done.error
        );
    }
    assert_eq!(
        stub.seen().len(),
        calls_before,
        "a call got through without TLS trust"
    );
    server.stop().await;
    Ok(())
}
