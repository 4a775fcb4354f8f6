//! Logs and traces: `tracing` to stderr, and to an OpenTelemetry OTLP collector when
//! `telemetry.otlp_endpoint` is set (spans per job and per RPC then show where a
//! backup spends its time). Credentials that were written into the OTLP URL are
//! sent as HTTP basic authentication (`authorization: Basic …`), never logged.
//!
//! Some libraries print credentials in their debug output (OpenDAL's signer,
//! `reqsign`, logs the storage secret key it loaded): those targets are held at
//! INFO whatever `log_filter` says ([`SECRET_TARGETS`]).

use base64::Engine;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use std::io::IsTerminal;

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::TelemetryConfig;
use crate::error::{Error, Result};

/// Keeps the trace pipeline alive; flushes spans when dropped.
pub struct TelemetryGuard {
    provider: Option<opentelemetry_sdk::trace::SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            let _ = p.shutdown();
        }
    }
}

/// Log targets whose debug and trace output carries secrets; held at INFO.
pub const SECRET_TARGETS: &[&str] = &["reqsign", "reqsign_core", "reqsign_aws_v4"];

/// Lets everything through except the debug and trace events of [`SECRET_TARGETS`].
fn secret_guard() -> Targets {
    SECRET_TARGETS
        .iter()
        .fold(Targets::new().with_default(Level::TRACE), |t, name| {
            t.with_target(*name, Level::INFO)
        })
}

/// Installs the global subscriber, logging to stderr. Call once, from the binary.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard> {
    init_with_writer(config, std::io::stderr, std::io::stderr().is_terminal())
}

/// Installs the global subscriber with logs going to `writer` (colours when
/// `ansi`); the same filters and trace export as [`init`]. Tests use it to read
/// what the server logs.
pub fn init_with_writer<W>(
    config: &TelemetryConfig,
    writer: W,
    ansi: bool,
) -> Result<TelemetryGuard>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| Error::invalid("telemetry.log_filter", e.to_string()))?;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(secret_guard())
        .with(fmt);
    let Some(endpoint) = &config.otlp_endpoint else {
        registry
            .try_init()
            .map_err(|e| Error::internal("telemetry could not start", e))?;
        return Ok(TelemetryGuard { provider: None });
    };
    let mut metadata = tonic::metadata::MetadataMap::new();
    if let Some((user, password)) = config.otlp_basic_auth() {
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let value = format!("Basic {basic}").parse().map_err(|_| {
            Error::invalid(
                "telemetry.otlp_endpoint",
                "its credentials cannot be sent as a header",
            )
        })?;
        metadata.insert("authorization", value);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .with_metadata(metadata)
        .build()
        .map_err(|e| Error::invalid("telemetry.otlp_endpoint", e.to_string()))?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("milvault-server")
                .build(),
        )
        .build();
    let tracer = provider.tracer("milvault-server");
    registry
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()
        .map_err(|e| Error::internal("telemetry could not start", e))?;
    Ok(TelemetryGuard {
        provider: Some(provider),
    })
}
