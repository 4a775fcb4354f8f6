//! The test process's `tracing` output in a buffer, so tests can read what the
//! in-process server logged (and wait for a line with a deadline).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// Everything logged since [`capture`] was called.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// The text so far.
    pub fn text(&self) -> String {
        let buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf).into_owned()
    }

    /// Waits until the logs contain `needle`; false when `timeout` passes first.
    pub async fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.text().contains(needle) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A writer appending to the shared buffer.
pub struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut buf = self.0.lock().unwrap_or_else(|p| p.into_inner());
        buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Logs {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter(self.0.clone())
    }
}

/// Installs the server's own subscriber ([`milvault_server::telemetry`], with its
/// filters) at `filter` (e.g. `debug`), writing into a buffer (once per test
/// process; nextest runs every test in its own).
pub fn capture(filter: &str) -> Logs {
    let logs = Logs::default();
    let mut config = milvault_server::config::TelemetryConfig::default();
    config.log_filter = filter.to_owned();
    if let Ok(guard) = milvault_server::telemetry::init_with_writer(&config, logs.clone(), false) {
        // Kept for the life of the test process: the subscriber is global.
        std::mem::forget(guard);
    }
    logs
}
