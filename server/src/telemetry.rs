//! Logs and traces: `tracing` to stderr, and to an OpenTelemetry OTLP collector when
//! `telemetry.otlp_endpoint` is set (spans per job and per RPC then show where a
//! backup spends its time). Credentials that were written into the OTLP URL are
//! sent as HTTP basic authentication (`authorization: Basic …`), never logged.

use base64::Engine;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use tracing_subscriber::EnvFilter;
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

/// Installs the global subscriber. Call once, from the binary.
pub fn init(config: &TelemetryConfig) -> Result<TelemetryGuard> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| Error::invalid("telemetry.log_filter", e.to_string()))?;
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
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
