//! Wiring: one tonic server on one port with the BackupService, `grpc.health.v1`
//! and server reflection. `serve` takes a bound listener so tests can use port 0.

use std::future::Future;
use std::sync::Arc;

use milvault_proto::milvault::v1::FILE_DESCRIPTOR_SET;
use milvault_proto::milvault::v1::backup_service_server::BackupServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::api::Api;
use crate::app::App;
use crate::config::Config;
use crate::error::{Error, Result};

/// Largest request or response message, both ways.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

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
    serve(app, listener, shutdown).await
}

/// Serves on an already bound listener.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let local = listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<BackupServiceServer<Api>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    let service = BackupServiceServer::new(Api::new(app))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    tracing::info!(%local, "milvault-server listening");
    tonic::transport::Server::builder()
        .trace_fn(|req| tracing::info_span!("rpc", path = %req.uri().path()))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .map_err(|e| Error::Internal(format!("server: {e}")))
}
