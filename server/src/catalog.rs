//! What a listing of a repository shows, kept in memory and kept true.
//!
//! Listing by reading every manifest costs one GET per backup per call: hundreds per
//! page on S3. Instead each complete backup has a small catalog entry (its manifest
//! without collections) under `catalog/<name>/<id>.json`, written after the manifest,
//! and a listing is two LISTs (`catalog/` and `backups/`) plus a read of what is new
//! since the last one. Entries never change once written (a name reused after a
//! delete gets a new id), so what was read once is kept.
//!
//! Calls are served from memory. A snapshot older than the repository's
//! `listing_refresh_secs` is refreshed in the background while callers keep the one
//! they have (only the very first call waits). What this server writes or deletes
//! updates the snapshot at once; what another server sharing the repository does
//! shows within the refresh time. Storage stays the truth: a backup whose catalog
//! entry is missing (written by an older milvault, or a crash between the two
//! writes) is found by its manifest and its entry written again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use milvault_proto::milvault::v1::{BackupManifest, BackupStart};

use crate::error::Result;
use crate::repository::Repository;

/// Reads at once during a refresh.
const READ_CONCURRENCY: usize = 16;

/// A folder under `backups/` as a listing sees it.
#[derive(Clone, Debug)]
pub(crate) enum Entry {
    /// Complete: its catalog entry (the manifest without collections).
    Complete(Arc<BackupManifest>),
    /// No manifest: being written, or abandoned. The start record when it has one.
    Incomplete(Option<BackupStart>),
    /// A deleted backup's folder kept for files later backups reference: not listed.
    Retained,
    /// A manifest that could not be read (damaged, or a storage error): listed as
    /// incomplete, but never taken for abandoned (pruning leaves it to a person).
    Unreadable,
}

impl Entry {
    /// The start record of an incomplete backup, when it has one.
    pub(crate) fn started(&self) -> Option<&BackupStart> {
        match self {
            Entry::Incomplete(s) => s.as_ref(),
            _ => None,
        }
    }
}

/// The repository's backups at one moment, by name.
#[derive(Clone, Debug, Default)]
pub(crate) struct Snapshot {
    /// Every backup folder.
    pub(crate) entries: BTreeMap<String, Entry>,
}

impl Snapshot {
    /// Complete backups' catalog entries.
    pub(crate) fn complete(&self) -> impl Iterator<Item = &BackupManifest> {
        self.entries.values().filter_map(|e| match e {
            Entry::Complete(m) => Some(m.as_ref()),
            _ => None,
        })
    }
}

struct Held {
    snapshot: Arc<Snapshot>,
    taken: Instant,
}

/// The in-memory listing of one repository, shared by every clone of it.
pub(crate) struct Catalog {
    held: std::sync::RwLock<Option<Held>>,
    /// Serialises refreshes.
    refresh: tokio::sync::Mutex<()>,
    /// A background refresh is running.
    refreshing: AtomicBool,
    max_age: Duration,
    /// Changes this server made, with when: a refresh whose listing began before a
    /// change may not see it, so the change is applied again to what it stores.
    notes: std::sync::Mutex<Vec<(Instant, String, Option<Entry>)>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("max_age", &self.max_age)
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// An empty catalog whose snapshots count as fresh for `max_age`.
    pub(crate) fn new(max_age: Duration) -> Self {
        Self {
            held: std::sync::RwLock::new(None),
            refresh: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
            max_age,
            notes: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn current(&self) -> Option<(Arc<Snapshot>, Instant)> {
        let held = self.held.read().unwrap_or_else(|p| p.into_inner());
        held.as_ref().map(|h| (h.snapshot.clone(), h.taken))
    }

    /// Applies a change this server made, so listings show it at once.
    pub(crate) fn note(&self, name: &str, entry: Option<Entry>) {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).push((
            Instant::now(),
            name.to_owned(),
            entry.clone(),
        ));
        let mut held = self.held.write().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = held.as_mut() {
            apply(Arc::make_mut(&mut h.snapshot), name, entry);
        }
    }

    /// Keeps a listing that began at `listed_from`, with the changes noted since.
    fn store(&self, mut snapshot: Snapshot, listed_from: Instant) -> Arc<Snapshot> {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        // Older changes were in storage before the listing began.
        notes.retain(|(at, _, _)| *at >= listed_from);
        for (_, name, entry) in notes.iter() {
            apply(&mut snapshot, name, entry.clone());
        }
        let snapshot = Arc::new(snapshot);
        let mut held = self.held.write().unwrap_or_else(|p| p.into_inner());
        *held = Some(Held {
            snapshot: snapshot.clone(),
            taken: listed_from,
        });
        snapshot
    }
}

fn apply(snapshot: &mut Snapshot, name: &str, entry: Option<Entry>) {
    match entry {
        Some(e) => {
            snapshot.entries.insert(name.to_owned(), e);
        }
        None => {
            snapshot.entries.remove(name);
        }
    }
}

/// The repository's listing: from memory, refreshed in the background when older than
/// the refresh time; read from storage only by the first call.
pub(crate) async fn snapshot(repository: &Repository) -> Result<Arc<Snapshot>> {
    let catalog = repository.catalog();
    if let Some((snapshot, taken)) = catalog.current() {
        if taken.elapsed() > catalog.max_age && !catalog.refreshing.swap(true, Ordering::AcqRel) {
            let repository = repository.clone();
            tokio::spawn(async move {
                if let Err(e) = refresh(&repository).await {
                    tracing::warn!(repository = repository.name(), error = %e, "listing refresh failed; serving the previous listing");
                }
                repository
                    .catalog()
                    .refreshing
                    .store(false, Ordering::Release);
            });
        }
        return Ok(snapshot);
    }
    refresh(repository).await
}

/// A listing read from storage now (for jobs that must not act on a stale one:
/// deletes, `--base latest`, pruning).
pub(crate) async fn fresh(repository: &Repository) -> Result<Arc<Snapshot>> {
    refresh(repository).await
}

async fn refresh(repository: &Repository) -> Result<Arc<Snapshot>> {
    let catalog = repository.catalog();
    let _serial = catalog.refresh.lock().await;
    let listed_from = Instant::now();
    let previous = catalog.current().map(|(s, _)| s).unwrap_or_default();
    let ids = repository.catalog_ids().await?;
    let names = repository.backup_names().await?;
    let mut catalogued: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, id) in ids {
        catalogued.entry(name).or_default().push(id);
    }
    let work: Vec<(String, Option<Entry>, Vec<String>)> = names
        .into_iter()
        .map(|name| {
            let previous = previous.entries.get(&name).cloned();
            let ids = catalogued.remove(&name).unwrap_or_default();
            (name, previous, ids)
        })
        .collect();
    let entries: BTreeMap<String, Entry> = futures::stream::iter(work)
        .map(|(name, previous, ids)| {
            let repository = repository.clone();
            async move {
                let entry = read_entry(&repository, &name, previous, &ids).await?;
                Ok::<_, crate::error::Error>((name, entry))
            }
        })
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(catalog.store(Snapshot { entries }, listed_from))
}

/// What one backup folder is, reusing what an earlier refresh read when it cannot
/// have changed.
async fn read_entry(
    repository: &Repository,
    name: &str,
    previous: Option<Entry>,
    ids: &[String],
) -> Result<Entry> {
    match (&previous, ids) {
        (Some(Entry::Complete(m)), [id]) if m.id == *id => return Ok(Entry::Complete(m.clone())),
        (Some(Entry::Retained), []) => return Ok(Entry::Retained),
        _ => {}
    }
    if let [id] = ids
        && let Some(m) = repository.read_catalog_entry(name, id).await?
    {
        return Ok(Entry::Complete(Arc::new(m)));
    }
    // No entry, or several (a crash between a delete and a reuse of the name): the
    // manifest decides, and the entry is written again.
    match repository.read_manifest(name).await {
        Ok(Some(m)) => {
            if let Err(e) = repository.delete_catalog_entries(name).await {
                tracing::warn!(backup = name, error = %e, "could not remove stale catalog entries");
            }
            if let Err(e) = repository.write_catalog_entry(&m).await {
                tracing::warn!(backup = name, error = %e, "could not write the catalog entry");
            }
            Ok(Entry::Complete(Arc::new(crate::repository::catalog_entry(
                &m,
            ))))
        }
        Ok(None) => {
            if repository.read_retained(name).await?.is_some() {
                return Ok(Entry::Retained);
            }
            let started = match previous {
                Some(Entry::Incomplete(Some(s))) => Some(s),
                _ => repository.read_started(name).await.ok().flatten(),
            };
            Ok(Entry::Incomplete(started))
        }
        Err(e) => {
            tracing::warn!(backup = name, error = %e, "unreadable manifest; listing the backup as incomplete");
            Ok(Entry::Unreadable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_keeps_the_changes_noted_after_its_listing_began() {
        let catalog = Catalog::new(Duration::from_secs(2));
        let before = Instant::now();
        // Noted before the listing began: storage already had it, the listing decides.
        catalog.note("gone-before", Some(Entry::Incomplete(None)));
        let listed_from = Instant::now();
        // A delete and a new backup while the listing ran.
        catalog.note("deleted", None);
        catalog.note("new", Some(Entry::Incomplete(None)));
        let mut listed = Snapshot::default();
        listed.entries.insert(
            "deleted".into(),
            Entry::Complete(Arc::new(BackupManifest::default())),
        );
        listed.entries.insert("kept".into(), Entry::Retained);
        let stored = catalog.store(listed, listed_from);
        let names: Vec<&str> = stored.entries.keys().map(String::as_str).collect();
        assert_eq!(names, vec!["kept", "new"]);
        // The next refresh, begun later, forgets those notes: its listing has them.
        let stored = catalog.store(Snapshot::default(), Instant::now());
        assert!(stored.entries.is_empty());
        assert!(before <= listed_from);
    }
}
