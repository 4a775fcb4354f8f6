//! The server's shared state: configuration, built storages, and the job registry,
//! plus name resolution ("which cluster/repository does this request mean?").

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{ClusterConfig, Config};
use crate::error::{Error, Result};
use crate::jobs::Jobs;
use crate::repository::Repository;
use crate::storage::Store;

/// One configured cluster with its binlog storage opened.
#[derive(Clone, Debug)]
pub(crate) struct Cluster {
    /// Configured name.
    pub(crate) name: String,
    /// Its configuration.
    pub(crate) config: ClusterConfig,
    /// Where it keeps binlogs.
    pub(crate) store: Store,
}

/// Everything handlers and jobs share.
pub struct App {
    /// The configuration the server runs with.
    pub config: Config,
    /// Clusters by name.
    pub(crate) clusters: BTreeMap<String, Cluster>,
    /// Repositories by name.
    pub(crate) repositories: BTreeMap<String, Repository>,
    /// Job registry.
    pub(crate) jobs: Jobs,
    /// Issues and checks page tokens.
    pub(crate) pager: crate::page::Pager,
}

fn known<T>(m: &BTreeMap<String, T>) -> String {
    if m.is_empty() {
        "(none)".to_owned()
    } else {
        m.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

/// Finishes what a previous run of the server left unfinished: a backup whose
/// manifest was written is marked succeeded (the manifest decides); a restore that
/// can be resumed is kept for `[restore] resume_window_secs` (`restore/resume.rs`);
/// every other interrupted job has its resources released, and the job records what
/// was done.
pub async fn recover(app: Arc<App>) {
    for job in app.jobs.take_interrupted() {
        let result = if crate::cleanup::backup_was_sealed(&app, &job).await {
            app.jobs
                .amend(&job.id, |j| {
                    j.state = milvault_proto::milvault::v1::JobState::Succeeded as i32;
                    j.phase = milvault_proto::milvault::v1::JobPhase::Done as i32;
                    j.error = None;
                    j.cleanup.push(
                        "the server stopped after the manifest was written: the backup is complete"
                            .into(),
                    );
                })
                .await
        } else if crate::restore::resume::keep(&app, &job).await {
            // Kept for a resume; `watch_windows` removes it when the window ends.
            Ok(())
        } else {
            let notes = crate::cleanup::release(&app, &job.resources).await;
            app.jobs
                .amend(&job.id, |j| {
                    for r in &mut j.resources {
                        r.kept = true;
                    }
                    j.cleanup.extend(notes);
                })
                .await
        };
        if let Err(e) = result {
            tracing::warn!(job = %job.id, error = %e, "could not record the cleanup of an interrupted job");
        }
    }
    crate::restore::resume::watch_windows(&app).await;
}

impl App {
    /// Builds storages and opens the job journal.
    pub fn new(config: Config) -> Result<Arc<Self>> {
        let resilience = config.timeouts.storage();
        let mut clusters = BTreeMap::new();
        for (name, c) in &config.clusters {
            let store = Store::open(format!("cluster {name}"), &c.storage, &resilience)?;
            clusters.insert(
                name.clone(),
                Cluster {
                    name: name.clone(),
                    config: c.clone(),
                    store,
                },
            );
        }
        let mut repositories = BTreeMap::new();
        for (name, r) in &config.repositories {
            let store = Store::open(format!("repository {name}"), &r.storage, &resilience)?;
            repositories.insert(
                name.clone(),
                Repository::with_listing_refresh(
                    name.clone(),
                    store,
                    std::time::Duration::from_secs(r.listing_refresh_secs),
                ),
            );
        }
        let jobs = Jobs::open(&config.server.state_dir, config.server.max_running_jobs)?;
        Ok(Arc::new(Self {
            config,
            clusters,
            repositories,
            jobs,
            pager: crate::page::Pager::new(),
        }))
    }

    /// The cluster a request means: the named one, or the only one configured.
    pub(crate) fn cluster(&self, name: &str) -> Result<&Cluster> {
        resolve(&self.clusters, name)
            .map_err(|_| Error::UnknownCluster {
                name: name.to_owned(),
                known: known(&self.clusters),
            })
            .and_then(|c| {
                c.ok_or_else(|| Error::NameRequired {
                    what: "cluster",
                    known: known(&self.clusters),
                })
            })
    }

    /// The repository a request means: the named one, or the only one configured.
    pub(crate) fn repository(&self, name: &str) -> Result<&Repository> {
        resolve(&self.repositories, name)
            .map_err(|_| Error::UnknownRepository {
                name: name.to_owned(),
                known: known(&self.repositories),
            })
            .and_then(|r| {
                r.ok_or_else(|| Error::NameRequired {
                    what: "repository",
                    known: known(&self.repositories),
                })
            })
    }
}

/// `Err(())` = unknown name; `Ok(None)` = name needed; `Ok(Some)` = found.
fn resolve<'a, T>(
    m: &'a BTreeMap<String, T>,
    name: &str,
) -> std::result::Result<Option<&'a T>, ()> {
    if name.is_empty() && !m.is_empty() {
        return Ok(if m.len() == 1 {
            m.values().next()
        } else {
            None
        });
    }
    m.get(name).map(Some).ok_or(())
}
