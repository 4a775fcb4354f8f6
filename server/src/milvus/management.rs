//! Pausing Milvus's garbage collector while a backup copies files, over the
//! management HTTP port (9091).
//!
//! Best effort by design: where the server has no working endpoint (2.2, 2.3) the
//! backup copies promptly from one segment listing and verifies every file instead;
//! the job says so in a warning. A pause is renewed while the backup runs and always
//! resumed at the end (or expires by itself if we die).

use std::time::Duration;

use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;

use super::features::GcPause;

/// How long one pause lasts; renewed at half-time.
const PAUSE_SECS: u64 = 600;

/// A held GC pause.
pub(crate) struct GcPauseGuard {
    base: String,
    /// The ticket of the pause in force (2.6.8+): every pause call makes a separate
    /// pause record with its own ticket, so a renewal swaps in the new ticket and
    /// releases the old one; a ticket is never dropped without its resume.
    ticket: Arc<Mutex<Option<String>>>,
    renewer: Option<JoinHandle<()>>,
    http: reqwest::Client,
}

fn pause_url(base: &str, mode: GcPause, collection_id: i64) -> String {
    match mode {
        GcPause::Ticketed => format!(
            "{base}/management/datacoord/garbage_collection/pause?pause_seconds={PAUSE_SECS}&collection_id={collection_id}"
        ),
        _ => format!(
            "{base}/management/datacoord/garbage_collection/pause?pause_seconds={PAUSE_SECS}"
        ),
    }
}

fn resume_url(base: &str, ticket: Option<&str>) -> String {
    match ticket {
        Some(t) => format!("{base}/management/datacoord/garbage_collection/resume?ticket={t}"),
        None => format!("{base}/management/datacoord/garbage_collection/resume"),
    }
}

async fn pause_once(http: &reqwest::Client, url: &str) -> Result<Option<String>, String> {
    let resp = http.get(url).send().await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("HTTP {status}: {}", body.trim()));
    }
    let ticket = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("ticket").and_then(|t| t.as_str()).map(str::to_owned));
    Ok(ticket)
}

async fn resume_once(http: &reqwest::Client, url: &str) {
    if let Err(e) = http
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
    {
        tracing::warn!(error = %e, %url, "resuming GC failed; the pause will expire by itself");
    }
}

fn lock(m: &Mutex<Option<String>>) -> std::sync::MutexGuard<'_, Option<String>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl GcPauseGuard {
    /// Pauses GC (for `collection_id` where the server pauses per collection).
    /// `Err` carries a sentence for the job's warnings.
    pub(crate) async fn pause(
        management: Option<&str>,
        mode: GcPause,
        collection_id: i64,
    ) -> Result<Self, String> {
        let Some(base) = management.map(|m| m.trim_end_matches('/').to_owned()) else {
            return Err("no management address configured for the cluster: garbage collection was not paused; files were copied from one segment listing taken right after the flush, sizes checked".into());
        };
        if mode == GcPause::Unavailable {
            return Err("this Milvus version has no working GC-pause endpoint: garbage collection was not paused; files were copied from one segment listing taken right after the flush, sizes checked".into());
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let url = pause_url(&base, mode, collection_id);
        let first = pause_once(&http, &url).await.map_err(|e| {
            format!(
                "pausing garbage collection at {base} failed ({e}); continuing without the pause"
            )
        })?;
        let ticket = Arc::new(Mutex::new(first));
        let (renew_http, renew_ticket, renew_base) = (http.clone(), ticket.clone(), base.clone());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(PAUSE_SECS / 2)).await;
                match pause_once(&renew_http, &url).await {
                    Ok(new) => {
                        let old = std::mem::replace(&mut *lock(&renew_ticket), new);
                        // The old pause record is released once the new one holds.
                        if let Some(old) = old {
                            resume_once(&renew_http, &resume_url(&renew_base, Some(&old))).await;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "renewing the GC pause failed"),
                }
            }
        });
        Ok(Self {
            base,
            ticket,
            renewer: Some(renewer),
            http,
        })
    }

    /// Resumes GC. Failures are logged: the pause expires by itself.
    pub(crate) async fn resume(mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
        let ticket = lock(&self.ticket).take();
        resume_once(&self.http, &resume_url(&self.base, ticket.as_deref())).await;
    }
}

impl Drop for GcPauseGuard {
    fn drop(&mut self) {
        if let Some(r) = self.renewer.take() {
            r.abort();
        }
    }
}
