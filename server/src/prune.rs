//! Removes abandoned incomplete backups by itself, where a repository asks for it.
//!
//! A backup whose server died before the manifest was written, and whose journal the
//! start-up recovery cannot reach (another server's, or a state folder lost), stays
//! as an incomplete folder: listed with its age, removable with `backup delete`.
//! With `prune_incomplete_after_secs` set, this task deletes such a folder once it is
//! older than that, through the ordinary delete job (same locks, same order of
//! removal, a job record of what was removed), so a prune is never a second, hidden
//! way of deleting. A folder being written by a job of this server is never touched;
//! the age of one with no start record is counted from when this server first saw it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use milvault_proto::milvault::v1::DeleteBackupRequest;

use crate::app::App;
use crate::catalog::{self, Entry};
use crate::delete::DeleteJob;
use crate::repository::age_seconds;

/// Shortest pause between two scans of a repository.
const MIN_INTERVAL: Duration = Duration::from_secs(10);
/// Longest pause between two scans.
const MAX_INTERVAL: Duration = Duration::from_secs(300);

/// Scans every repository that has `prune_incomplete_after_secs`, for as long as the
/// server runs.
pub(crate) async fn run(app: Arc<App>) {
    let limits: BTreeMap<String, u64> = app
        .config
        .repositories
        .iter()
        .filter_map(|(name, r)| r.prune_incomplete_after_secs.map(|s| (name.clone(), s)))
        .collect();
    let Some(shortest) = limits.values().min().copied() else {
        return;
    };
    let interval = Duration::from_secs(shortest / 4).clamp(MIN_INTERVAL, MAX_INTERVAL);
    let mut first_seen: BTreeMap<(String, String), Instant> = BTreeMap::new();
    loop {
        for (repository, &limit) in &limits {
            prune_once(&app, repository, limit, &mut first_seen).await;
        }
        tokio::time::sleep(interval).await;
    }
}

/// One scan of one repository: submits a delete job for each incomplete backup older
/// than `limit` seconds that no job of this server is writing.
async fn prune_once(
    app: &Arc<App>,
    repository: &str,
    limit: u64,
    first_seen: &mut BTreeMap<(String, String), Instant>,
) {
    let Ok(repo) = app.repository(repository) else {
        return;
    };
    let listing = match catalog::fresh(repo).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(repository, error = %e, "prune: the repository could not be listed");
            return;
        }
    };
    first_seen.retain(|(r, name), _| {
        r != repository || matches!(listing.entries.get(name), Some(Entry::Incomplete(_)))
    });
    for (name, entry) in &listing.entries {
        // Only a folder whose manifest is surely absent: one whose manifest could not
        // be read (`Entry::Unreadable`) is damaged, not abandoned, and left to a person.
        let Entry::Incomplete(started) = entry else {
            continue;
        };
        if app.jobs.backup_in_progress(repository, name) {
            continue;
        }
        let age = match started.as_ref().and_then(|s| s.start_time) {
            Some(t) => u64::try_from(age_seconds(t)).unwrap_or(0),
            None => first_seen
                .entry((repository.to_owned(), name.clone()))
                .or_insert_with(Instant::now)
                .elapsed()
                .as_secs(),
        };
        if age < limit {
            continue;
        }
        let request = DeleteBackupRequest {
            name: name.clone(),
            repository: repository.to_owned(),
        };
        let submitted = match DeleteJob::prepare(app, request).await {
            Ok(s) => app.jobs.submit(s).await,
            Err(e) => Err(e),
        };
        match submitted {
            Ok(job) => tracing::info!(
                repository,
                backup = %name,
                age_seconds = age,
                job = %job.id,
                "prune: deleting an abandoned incomplete backup"
            ),
            // A job took the name meanwhile (a conflict), or it is gone: next scan.
            Err(e) => {
                tracing::debug!(repository, backup = %name, error = %e, "prune: not deleted now")
            }
        }
    }
}
