//! Wiring: one tonic server on one port with the BackupService, `grpc.health.v1`
//! and server reflection, over TLS when `[server.tls]` is set (see `tls`). `serve`
//! takes a bound listener so tests can use port 0.

mod tls;

use std::future::Future;
use std::sync::Arc;

use milvault_proto::milvault::v1::FILE_DESCRIPTOR_SET;
use milvault_proto::milvault::v1::backup_service_server::BackupServiceServer;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;

use crate::api::Api;
use crate::app::App;
use crate::config::Config;
use crate::error::{Error, Reason, Result};

/// Largest request or response message, both ways.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Lets a request through when no token is configured or it carries the right one.
fn check_token(
    expected: Option<&str>,
    req: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    let Some(expected) = expected else {
        return Ok(req);
    };
    let given = req
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // Compare all bytes so timing does not tell how much of a guess was right.
    let same = given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(req)
    } else {
        Err(crate::error::status(
            tonic::Code::Unauthenticated,
            Reason::Unauthenticated,
            "missing or wrong bearer token (authorization: Bearer <token>)".to_owned(),
            Default::default(),
        ))
    }
}

/// Binds `config.server.listen` and serves until `shutdown` completes.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = config.server.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| Error::invalid("server.listen", format!("cannot listen on {addr}: {e}")))?;
    let app = App::new(config)?;
    serve_inner(app, listener, shutdown, true).await
}

/// Serves on an already bound listener: plain gRPC, or TLS when the app's
/// configuration has `[server.tls]` (its files are then also reloaded when they
/// change; SIGHUP is watched only by [`run`], the binary's entry point).
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_inner(app, listener, shutdown, false).await
}

async fn serve_inner(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    sighup: bool,
) -> Result<()> {
    let local = listener
        .local_addr()
        .map_err(|e| Error::internal("the listener has no address", e))?;
    // What a previous run left unfinished is cleaned up in the background.
    tokio::spawn(crate::app::recover(app.clone()));
    // Abandoned incomplete backups, where a repository asks for it.
    let pruner = tokio::spawn(crate::prune::run(app.clone()));
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<BackupServiceServer<Api>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::internal("reflection could not be set up", e))?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| Error::internal("reflection could not be set up", e))?;
    let expected = app
        .config
        .server
        .auth_token
        .as_ref()
        .map(|t| format!("Bearer {}", t.0));
    let tls_config = app.config.server.tls.clone();
    let tls = match &tls_config {
        Some(t) => Some(tls::TlsState::load(t).await?),
        None => None,
    };
    tracing::debug!(config = ?app.config, "configuration");
    let service = BackupServiceServer::new(Api::new(app))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let service = InterceptedService::new(service, move |req: tonic::Request<()>| {
        check_token(expected.as_deref(), req)
    });
    let router = tonic::transport::Server::builder()
        .trace_fn(|req| tracing::info_span!("rpc", path = %req.uri().path()))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(service);
    let served = match tls {
        None => {
            let _hangups = sighup.then(tls::spawn_hangup_notice);
            tracing::info!(%local, tls = false, "milvault-server listening");
            router
                .serve_with_incoming_shutdown(
                    TcpListenerStream::new(listener).map(|accepted| accepted.inspect(no_delay)),
                    shutdown,
                )
                .await
        }
        Some(state) => {
            let _reloader = tls::spawn_reloader(state.clone(), sighup);
            let (incoming, _acceptor) = tls::incoming(listener, state);
            tracing::info!(
                %local,
                tls = true,
                client_certificates = tls_config.as_ref().is_some_and(|t| t.client_ca_file.is_some()),
                "milvault-server listening"
            );
            router
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await
        }
    };
    // The pruner runs for as long as the server does (tests run several in one process).
    pruner.abort();
    served.map_err(|e| Error::internal("the gRPC server stopped", e))
}

/// Answers leave at once: without `TCP_NODELAY`, a small HTTP/2 frame waits for the
/// client's delayed ACK (about 40 ms per answer was measured). tonic's own setting
/// only reaches listeners tonic opens itself, and this server accepts its own.
fn no_delay(tcp: &tokio::net::TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY could not be set");
    }
}
