//! What a running job uses to report itself: a typed API over the job's snapshot.
//!
//! Jobs say what happened (a phase, totals, a file done, a warning, a report entry);
//! this file is the only place that turns that into the generated `Job` message, so
//! every job reports the same way and none edits the message by hand.
//!
//! Every snapshot change is published on the job's `watch` channel at once. Phase
//! changes, warnings and the end are journaled before the call returns; progress
//! alone at most every [`PERSIST_EVERY`], through a [`Persister`] that never lets an
//! older snapshot overwrite a newer one.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use milvault_proto::milvault::v1::{
    CollectionProgress, CollectionReport, ImportRecord, Job, JobPhase, JobResource, JobState,
    RbacReport, RestoreMethod,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::journal::Journal;
use crate::error::{Error, Result};

/// How often progress-only changes are journaled.
pub(crate) const PERSIST_EVERY: Duration = Duration::from_secs(2);

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of plain data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The current time as a protobuf timestamp.
pub(crate) fn now() -> pbjson_types::Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Writes one job's snapshots to the journal in order: every snapshot is stamped
/// when it is taken, and a write older than the last one written is dropped, so a
/// slow progress write can never overwrite a later terminal state.
#[derive(Clone)]
pub(super) struct Persister {
    journal: Journal,
    clock: Arc<Mutex<u64>>,
    written: Arc<Mutex<u64>>,
}

impl Persister {
    pub(super) fn new(journal: Journal) -> Self {
        Self {
            journal,
            clock: Arc::new(Mutex::new(0)),
            written: Arc::new(Mutex::new(0)),
        }
    }

    /// Takes the current snapshot with its stamp.
    pub(super) fn stamp(&self, tx: &watch::Sender<Job>) -> (u64, Job) {
        let mut clock = lock(&self.clock);
        *clock += 1;
        (*clock, tx.borrow().clone())
    }

    pub(super) async fn write(&self, (stamp, job): (u64, Job)) -> Result<()> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut written = lock(&this.written);
            if stamp > *written {
                this.journal.put_blocking(&job)?;
                *written = stamp;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::internal("job journal write task failed", e))?
    }
}

/// One collection a job will work on, with its share of the work.
#[derive(Clone, Debug, Default)]
pub(crate) struct CollectionPlan {
    /// Database.
    pub(crate) database: String,
    /// Collection name (the target's name, for restores).
    pub(crate) collection: String,
    /// Bytes to move.
    pub(crate) bytes: u64,
    /// Files to move.
    pub(crate) files: u64,
}

/// What a running job uses to report itself; cheap to clone.
#[derive(Clone)]
pub(crate) struct JobCtx {
    pub(super) tx: watch::Sender<Job>,
    pub(super) cancel: CancellationToken,
    pub(super) persist: Persister,
    pub(super) last_persist: Arc<Mutex<Instant>>,
}

impl JobCtx {
    /// The job's id.
    pub(crate) fn id(&self) -> String {
        self.tx.borrow().id.clone()
    }

    /// The token that fires when the job is cancelled; waits take it.
    pub(crate) fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Fails with [`Error::Cancelled`] once cancellation was asked.
    pub(crate) fn check_cancelled(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    /// The warnings recorded so far.
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.tx.borrow().warnings.clone()
    }

    /// Changes the snapshot; journals it if the last write is older than
    /// [`PERSIST_EVERY`].
    fn update(&self, f: impl FnOnce(&mut Job)) {
        self.tx.send_modify(f);
        let due = {
            let mut last = lock(&self.last_persist);
            if last.elapsed() >= PERSIST_EVERY {
                *last = Instant::now();
                true
            } else {
                false
            }
        };
        if due {
            let persist = self.persist.clone();
            let stamped = persist.stamp(&self.tx);
            tokio::spawn(async move {
                if let Err(e) = persist.write(stamped).await {
                    tracing::warn!(error = %e, "could not journal job progress");
                }
            });
        }
    }

    /// Changes the snapshot and journals it before returning.
    pub(super) async fn update_now(&self, f: impl FnOnce(&mut Job)) {
        self.tx.send_modify(f);
        *lock(&self.last_persist) = Instant::now();
        if let Err(e) = self.persist.write(self.persist.stamp(&self.tx)).await {
            tracing::warn!(error = %e, "could not journal job state");
        }
    }

    /// Sets the job's phase, with free text about it (journaled).
    pub(crate) async fn phase(&self, phase: JobPhase, detail: impl Into<String>) {
        let detail = detail.into();
        tracing::info!(phase = phase.as_str_name(), %detail, "job phase");
        self.update_now(|j| {
            j.phase = phase as i32;
            j.phase_detail = detail;
        })
        .await;
    }

    /// Declares the collections the job works on and their totals; the job's totals
    /// are their sums. Collections are then named by their index in `plan`.
    pub(crate) fn plan_collections(&self, plan: &[CollectionPlan]) {
        self.update(|j| {
            let p = j.progress.get_or_insert_with(Default::default);
            p.collections_total = u32::try_from(plan.len()).unwrap_or(u32::MAX);
            p.bytes_total = plan.iter().map(|c| c.bytes).sum();
            p.files_total = plan.iter().map(|c| c.files).sum();
            p.collections = plan
                .iter()
                .map(|c| CollectionProgress {
                    database: c.database.clone(),
                    collection: c.collection.clone(),
                    phase: JobPhase::Pending as i32,
                    bytes_total: c.bytes,
                    files_total: c.files,
                    ..Default::default()
                })
                .collect();
        });
    }

    /// Sets the totals of collection `idx` once they are known (and the job's).
    pub(crate) fn collection_totals(&self, idx: usize, bytes: u64, files: u64) {
        self.update(|j| {
            let p = j.progress.get_or_insert_with(Default::default);
            if let Some(c) = p.collections.get_mut(idx) {
                p.bytes_total = p.bytes_total - c.bytes_total + bytes;
                p.files_total = p.files_total - c.files_total + files;
                c.bytes_total = bytes;
                c.files_total = files;
            }
        });
    }

    /// Sets the job's totals when it works on files, not collections.
    pub(crate) fn plan_files(&self, files: u64, bytes: u64) {
        self.update(|j| {
            let p = j.progress.get_or_insert_with(Default::default);
            p.files_total = files;
            p.bytes_total = bytes;
        });
    }

    /// Sets the phase of collection `idx`.
    pub(crate) fn collection_phase(&self, idx: usize, phase: JobPhase) {
        self.update(|j| {
            if let Some(c) = j.progress.as_mut().and_then(|p| p.collections.get_mut(idx)) {
                c.phase = phase as i32;
            }
        });
    }

    /// Records how collection `idx` is restored.
    pub(crate) fn collection_method(&self, idx: usize, method: RestoreMethod) {
        self.update(|j| {
            if let Some(c) = j.progress.as_mut().and_then(|p| p.collections.get_mut(idx)) {
                c.method = method as i32;
            }
        });
    }

    /// Marks collection `idx` done.
    pub(crate) fn collection_done(&self, idx: usize) {
        self.update(|j| {
            let p = j.progress.get_or_insert_with(Default::default);
            if let Some(c) = p.collections.get_mut(idx)
                && c.phase != JobPhase::Done as i32
            {
                c.phase = JobPhase::Done as i32;
                p.collections_done += 1;
            }
        });
    }

    /// Counts one file of `bytes` as done, overall and for collection `collection`;
    /// returns whether that collection's files are now all done.
    pub(crate) fn file_done(&self, collection: Option<usize>, bytes: u64) -> bool {
        let mut finished = false;
        self.update(|j| {
            let p = j.progress.get_or_insert_with(Default::default);
            p.bytes_done += bytes;
            p.files_done += 1;
            if let Some(cp) = collection.and_then(|i| p.collections.get_mut(i)) {
                cp.bytes_done += bytes;
                cp.files_done += 1;
                finished = cp.files_done == cp.files_total;
            }
        });
        finished
    }

    /// Records a warning (journaled).
    pub(crate) async fn warn(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(%message, "job warning");
        self.update_now(|j| j.warnings.push(message)).await;
    }

    /// Adds one collection's outcome to the report (journaled).
    pub(crate) async fn report_collection(&self, entry: CollectionReport) {
        self.update_now(|j| {
            j.report
                .get_or_insert_with(Default::default)
                .collections
                .push(entry)
        })
        .await;
    }

    /// Sets the RBAC outcome of the report (journaled).
    pub(crate) async fn report_rbac(&self, rbac: RbacReport) {
        self.update_now(|j| j.report.get_or_insert_with(Default::default).rbac = Some(rbac))
            .await;
    }

    /// Records, before the job creates it, something the job will create or hold;
    /// returns its index for [`Self::update_resource`] (journaled).
    pub(crate) async fn hold(&self, resource: JobResource) -> usize {
        let mut idx = 0;
        self.update_now(|j| {
            idx = j.resources.len();
            j.resources.push(resource);
        })
        .await;
        idx
    }

    /// Changes a held resource (journaled).
    pub(crate) async fn update_resource(&self, idx: usize, f: impl FnOnce(&mut JobResource)) {
        self.update_now(|j| {
            if let Some(r) = j.resources.get_mut(idx) {
                f(r);
            }
        })
        .await;
    }

    /// Everything the job holds.
    pub(crate) fn resources(&self) -> Vec<JobResource> {
        self.tx.borrow().resources.clone()
    }

    /// Records, before Milvus is asked, an import about to start; returns its index
    /// for [`Self::update_import`] (journaled: a resume finds what was running).
    pub(crate) async fn import_started(&self, record: ImportRecord) -> usize {
        let mut idx = 0;
        self.update_now(|j| {
            idx = j.imports.len();
            j.imports.push(record);
        })
        .await;
        idx
    }

    /// Changes a recorded import: its task ids, its confirmation (journaled).
    pub(crate) async fn update_import(&self, idx: usize, f: impl FnOnce(&mut ImportRecord)) {
        self.update_now(|j| {
            if let Some(r) = j.imports.get_mut(idx) {
                f(r);
            }
        })
        .await;
    }

    /// The imports recorded so far (with those an interrupted run handed over).
    pub(crate) fn imports(&self) -> Vec<ImportRecord> {
        self.tx.borrow().imports.clone()
    }

    /// Records what a cleanup did (journaled).
    pub(crate) async fn cleaned(&self, notes: Vec<String>) {
        if notes.is_empty() {
            return;
        }
        for n in &notes {
            tracing::info!(cleanup = %n, "job cleanup");
        }
        self.update_now(|j| j.cleanup.extend(notes)).await;
    }

    /// Marks the job running.
    pub(super) async fn start(&self) {
        self.update_now(|j| {
            j.state = JobState::Running as i32;
            j.phase = JobPhase::Starting as i32;
            j.start_time = Some(now());
        })
        .await;
    }

    /// Publishes the terminal state.
    pub(super) async fn finish(&self, outcome: Result<()>) {
        match &outcome {
            Ok(()) => tracing::info!("job succeeded"),
            Err(e) => tracing::warn!(error = %e, "job ended with an error"),
        }
        self.update_now(|j| {
            j.end_time = Some(now());
            j.phase_detail.clear();
            match outcome {
                Ok(()) => {
                    j.state = JobState::Succeeded as i32;
                    j.phase = JobPhase::Done as i32;
                }
                Err(Error::Cancelled) => {
                    j.state = JobState::Cancelled as i32;
                    j.phase = JobPhase::Cancelled as i32;
                    j.error = Some(Error::Cancelled.to_job_error());
                }
                Err(e) => {
                    j.state = JobState::Failed as i32;
                    j.phase = JobPhase::Failed as i32;
                    j.error = Some(e.to_job_error());
                }
            }
        })
        .await;
    }
}
