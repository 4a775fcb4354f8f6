//! Removing what a job created, and nothing else.
//!
//! Jobs journal every resource before they create it (`JobCtx::hold`): a collection
//! built by a restore, a staging prefix, a backup folder not yet sealed. A failed or
//! cancelled job releases what it has not kept; at start-up the server releases what
//! interrupted jobs held, so `kill -9` at any moment leaves no debris. A collection
//! that existed before the job is never among them: restores that replace one build
//! the replacement under a temporary name and switch only when it is complete, and a
//! switch the crash interrupted is finished rather than undone (`rename_to`).
//!
//! When Milvus itself was the cause of the failure (killed, restarting), the
//! collections the job created can only be dropped once it answers again: the
//! cleanup waits for it, up to `[timeouts] cleanup_secs`, so the job ends with its
//! debris gone rather than recorded as left behind.

use std::collections::BTreeMap;

use milvault_proto::milvault::v1::{Job, JobKind, JobResource, ResourceKind};

use crate::app::{App, Cluster};
use crate::error::Result;
use crate::milvus::MilvusClient;
use crate::repository::Repository;

/// Releases every resource of `resources` the job did not keep; returns what was done
/// (one sentence each, including what could not be done).
pub(crate) async fn release(app: &App, resources: &[JobResource]) -> Vec<String> {
    let mut notes = Vec::new();
    let mut clients: BTreeMap<String, Option<MilvusClient>> = BTreeMap::new();
    for r in resources.iter().filter(|r| !r.kept) {
        match r.kind() {
            ResourceKind::Collection => {
                let client = match clients.get(&r.cluster) {
                    Some(c) => c.clone(),
                    None => {
                        let c = match app.cluster(&r.cluster) {
                            Ok(cluster) => reconnect(app, cluster)
                                .await
                                .map_err(|e| {
                                    notes.push(format!(
                                        "could not reach cluster {:?} to clean up: {e}",
                                        r.cluster
                                    ))
                                })
                                .ok(),
                            Err(e) => {
                                notes.push(format!("cluster {:?}: {e}", r.cluster));
                                None
                            }
                        };
                        clients.insert(r.cluster.clone(), c.clone());
                        c
                    }
                };
                if let Some(client) = client {
                    notes.push(collection(&client, r).await);
                }
            }
            ResourceKind::Staging => match app.cluster(&r.cluster) {
                Ok(cluster) => notes.push(match cluster.store.delete_prefix(&r.path).await {
                    Ok(()) => format!(
                        "removed staged files under {} of cluster {}",
                        r.path, r.cluster
                    ),
                    Err(e) => format!("could not remove staged files under {}: {e}", r.path),
                }),
                Err(e) => notes.push(format!("cluster {:?}: {e}", r.cluster)),
            },
            ResourceKind::Backup => match app.repository(&r.repository) {
                Ok(repo) => notes.push(backup(repo, r).await),
                Err(e) => notes.push(format!("repository {:?}: {e}", r.repository)),
            },
            ResourceKind::GcPause | ResourceKind::Unspecified => {}
        }
    }
    notes
}

/// A client of `cluster` that answers, waiting for a Milvus that is down or restarting
/// (unreachable, or answering "not ready") up to `[timeouts] cleanup_secs`.
async fn reconnect(app: &App, cluster: &Cluster) -> Result<MilvusClient> {
    let schedule = app.config.timeouts.cleanup();
    let what = format!("cluster {:?} answering again for the cleanup", cluster.name);
    // Never cancelled: a cleanup is not abandoned.
    let never = tokio_util::sync::CancellationToken::new();
    crate::poll::until(&what, &schedule, &never, || async {
        let answered = match MilvusClient::connect(
            &cluster.name,
            &cluster.config,
            &app.config.timeouts,
        )
        .await
        {
            Ok(client) => client.list_databases().await.map(|_| client),
            Err(e) => Err(e),
        };
        match answered {
            Ok(client) => Ok(Some(client)),
            Err(e) if e.is_retryable() => {
                tracing::info!(cluster = %cluster.name, error = %e, "waiting for Milvus to clean up");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    })
    .await
}

/// Drops a collection the job created, or finishes an interrupted switch.
async fn collection(client: &MilvusClient, r: &JobResource) -> String {
    let (db, name) = (r.database.as_str(), r.name.as_str());
    let exists = |n: &str| {
        let n = n.to_owned();
        async move { client.has_collection(db, &n).await }
    };
    match exists(name).await {
        Ok(false) => return format!("{db}.{name} was already gone"),
        Err(e) => return format!("could not check {db}.{name}: {e}"),
        Ok(true) => {}
    }
    if !r.rename_to.is_empty() {
        // The switch had started: the replacement is complete. If the old collection
        // is already gone, finish the rename; else the switch never touched it.
        match exists(&r.rename_to).await {
            Ok(false) => {
                return match client.rename_collection(db, name, &r.rename_to).await {
                    Ok(()) => format!(
                        "finished the interrupted switch: {db}.{name} renamed to {}",
                        r.rename_to
                    ),
                    Err(e) => format!(
                        "could not rename {db}.{name} to {}: {e}; it holds the complete restore",
                        r.rename_to
                    ),
                };
            }
            Err(e) => return format!("could not check {db}.{}: {e}", r.rename_to),
            Ok(true) => {}
        }
    }
    match client.drop_collection(db, name).await {
        Ok(()) => format!("dropped {db}.{name}, which this job had created"),
        Err(e) => format!("could not drop {db}.{name}: {e}"),
    }
}

/// Removes a backup's folder unless its manifest was written (then it is complete).
async fn backup(repo: &Repository, r: &JobResource) -> String {
    match repo.read_manifest(&r.name).await {
        Ok(Some(_)) => format!("backup {:?} has its manifest: kept", r.name),
        _ => match repo.store().delete_prefix(&r.path).await {
            Ok(()) => format!("removed the unfinished backup folder {}", r.path),
            Err(e) => format!("could not remove {}: {e}", r.path),
        },
    }
}

/// Whether an interrupted backup job in fact finished: its manifest was written
/// (with the job's id) before the server stopped.
pub(crate) async fn backup_was_sealed(app: &App, job: &Job) -> bool {
    if job.kind() != JobKind::Backup {
        return false;
    }
    let Ok(repo) = app.repository(&job.repository) else {
        return false;
    };
    matches!(repo.read_manifest(&job.backup).await, Ok(Some(m)) if m.id == job.id)
}
