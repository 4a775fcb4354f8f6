//! Jobs: long work (backup, restore, delete) that outlives the RPC that started it.
//!
//! Each job has one `tokio::sync::watch` channel holding its latest full snapshot, so
//! `WatchJob` streams are cheap and a slow watcher just sees the newest state (the
//! tonic-health model). Every state or phase change is written to the [`Journal`];
//! progress is written at most every [`PERSIST_EVERY`]. At start-up, jobs the journal
//! shows as unfinished are marked failed with reason `SERVER_RESTARTED`, so none stays
//! `RUNNING` forever.
//!
//! Conflicting work is refused, not raced: a job declares [`Lock`]s (a backup name, a
//! restore target) and submission fails while another live job holds a clashing one.

pub mod journal;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use milvault_proto::milvault::v1::{Job, JobKind, JobState, job};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
pub use journal::Journal;

/// How often progress-only changes are journaled.
pub const PERSIST_EVERY: Duration = Duration::from_secs(2);

/// A resource a job uses; exclusive locks clash with any other lock on the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lock {
    /// What is locked, e.g. `backup:local/nightly`.
    pub key: String,
    /// Whether no other job may hold the key at all.
    pub exclusive: bool,
    /// Said to the caller whose job is refused.
    pub conflict_message: String,
}

struct Entry {
    tx: watch::Sender<Job>,
    cancel: CancellationToken,
    persist: Persister,
}

/// Writes one job's snapshots to the journal in order: every snapshot is stamped
/// when it is taken, and a write older than the last one written is dropped, so a
/// slow progress write can never overwrite a later terminal state.
#[derive(Clone)]
struct Persister {
    journal: Journal,
    clock: Arc<Mutex<u64>>,
    written: Arc<Mutex<u64>>,
}

impl Persister {
    fn new(journal: Journal) -> Self {
        Self {
            journal,
            clock: Arc::new(Mutex::new(0)),
            written: Arc::new(Mutex::new(0)),
        }
    }

    /// Takes the current snapshot with its stamp.
    fn stamp(&self, tx: &watch::Sender<Job>) -> (u64, Job) {
        let mut clock = lock(&self.clock);
        *clock += 1;
        (*clock, tx.borrow().clone())
    }

    async fn write(&self, (stamp, job): (u64, Job)) -> Result<()> {
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
        .map_err(|e| Error::Internal(format!("job journal write task: {e}")))?
    }
}

struct Inner {
    entries: Mutex<HashMap<String, Entry>>,
    locks: Mutex<Vec<(String, Lock)>>,
    journal: Journal,
    permits: Arc<Semaphore>,
}

/// The job registry; cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<Inner>,
}

/// The current time as a protobuf timestamp.
pub fn now() -> pbjson_types::Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    pbjson_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

/// Whether a state is final.
pub fn is_terminal(state: i32) -> bool {
    matches!(
        JobState::try_from(state),
        Ok(JobState::Succeeded | JobState::Failed | JobState::Cancelled)
    )
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked mid-update of plain data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What a new job is.
pub struct NewJob {
    /// Kind of work.
    pub kind: JobKind,
    /// The request, as recorded in the job.
    pub request: job::Request,
    /// Resolved backup, cluster and repository names.
    pub backup: String,
    /// Cluster name (empty for jobs that use none).
    pub cluster: String,
    /// Repository name.
    pub repository: String,
    /// Resources the job holds until it ends.
    pub locks: Vec<Lock>,
}

impl Jobs {
    /// Opens the journal and fails jobs a previous run left unfinished.
    pub fn open(journal: Journal, max_running: usize) -> Result<Self> {
        let mut entries = HashMap::new();
        for mut job in journal.load_all()? {
            if !is_terminal(job.state) {
                let state = JobState::try_from(job.state)
                    .map(|s| s.as_str_name())
                    .unwrap_or("UNKNOWN");
                let err = Error::Interrupted {
                    state: state.trim_start_matches("JOB_STATE_").to_lowercase(),
                };
                tracing::warn!(job = %job.id, "job was interrupted by a restart; marking it failed");
                job.state = JobState::Failed as i32;
                job.error = Some(err.to_job_error());
                job.end_time = Some(now());
                journal.put_blocking(&job)?;
            }
            let (tx, _) = watch::channel(job.clone());
            entries.insert(
                job.id.clone(),
                Entry {
                    tx,
                    cancel: CancellationToken::new(),
                    persist: Persister::new(journal.clone()),
                },
            );
        }
        Ok(Self {
            inner: Arc::new(Inner {
                entries: Mutex::new(entries),
                locks: Mutex::new(Vec::new()),
                journal,
                permits: Arc::new(Semaphore::new(max_running)),
            }),
        })
    }

    /// Whether a live job holds `key`.
    pub fn is_locked(&self, key: &str) -> bool {
        lock(&self.inner.locks).iter().any(|(_, l)| l.key == key)
    }

    /// Registers a job and starts it in the background; returns its first snapshot.
    pub async fn submit<F, Fut>(&self, new: NewJob, run: F) -> Result<Job>
    where
        F: FnOnce(JobCtx) -> Fut + Send + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        let id = uuid::Uuid::new_v4().to_string();
        {
            let mut held = lock(&self.inner.locks);
            for want in &new.locks {
                if held
                    .iter()
                    .any(|(_, h)| h.key == want.key && (h.exclusive || want.exclusive))
                {
                    return Err(Error::Conflict(want.conflict_message.clone()));
                }
            }
            held.extend(new.locks.iter().map(|l| (id.clone(), l.clone())));
        }
        let job = Job {
            id: id.clone(),
            kind: new.kind as i32,
            state: JobState::Queued as i32,
            phase: "queued".into(),
            create_time: Some(now()),
            request: Some(new.request),
            backup: new.backup,
            cluster: new.cluster,
            repository: new.repository,
            progress: Some(Default::default()),
            report: Some(Default::default()),
            ..Default::default()
        };
        if let Err(e) = self.inner.journal.put(job.clone()).await {
            self.release_locks(&id);
            return Err(e);
        }
        let (tx, _) = watch::channel(job.clone());
        let cancel = CancellationToken::new();
        let persist = Persister::new(self.inner.journal.clone());
        lock(&self.inner.entries).insert(
            id.clone(),
            Entry {
                tx: tx.clone(),
                cancel: cancel.clone(),
                persist: persist.clone(),
            },
        );

        let ctx = JobCtx {
            tx,
            cancel,
            persist,
            last_persist: Arc::new(Mutex::new(Instant::now())),
        };
        let this = self.clone();
        let span = tracing::info_span!("job", id = %id, kind = ?new.kind);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let outcome = this.drive(ctx.clone(), run).await;
                // Locks go before the terminal state is published: a caller that sees
                // the job end may start a job on the same resources at once.
                this.release_locks(&ctx.id());
                ctx.finish(outcome).await;
            },
            span,
        ));
        Ok(job)
    }

    async fn drive<F, Fut>(&self, ctx: JobCtx, run: F) -> Result<()>
    where
        F: FnOnce(JobCtx) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let permit = tokio::select! {
            p = self.inner.permits.clone().acquire_owned() => p.map_err(|e| Error::Internal(e.to_string()))?,
            _ = ctx.cancel.cancelled() => return Err(Error::Cancelled),
        };
        ctx.update_now(|j| {
            j.state = JobState::Running as i32;
            j.phase = "starting".into();
            j.start_time = Some(now());
        })
        .await;
        tracing::info!("job started");
        let out = tokio::select! {
            r = run(ctx.clone()) => r,
            // The run future notices cancellation at its own check points; this arm
            // only fires when it is stuck waiting on something that ignores it.
            _ = async { ctx.cancel.cancelled().await; tokio::time::sleep(Duration::from_secs(60)).await } => Err(Error::Cancelled),
        };
        drop(permit);
        out
    }

    fn release_locks(&self, id: &str) {
        lock(&self.inner.locks).retain(|(owner, _)| owner != id);
    }

    /// The latest snapshot of a job.
    pub fn get(&self, id: &str) -> Result<Job> {
        lock(&self.inner.entries)
            .get(id)
            .map(|e| e.tx.borrow().clone())
            .ok_or_else(|| Error::JobNotFound(id.to_owned()))
    }

    /// Every job, newest first.
    pub fn list(&self) -> Vec<Job> {
        let mut jobs: Vec<Job> = lock(&self.inner.entries)
            .values()
            .map(|e| e.tx.borrow().clone())
            .collect();
        jobs.sort_by(|a, b| {
            let key = |j: &Job| {
                j.create_time
                    .map(|t| (t.seconds, t.nanos))
                    .unwrap_or_default()
            };
            key(b).cmp(&key(a)).then_with(|| a.id.cmp(&b.id))
        });
        jobs
    }

    /// A receiver that sees every later snapshot of the job.
    pub fn watch(&self, id: &str) -> Result<watch::Receiver<Job>> {
        lock(&self.inner.entries)
            .get(id)
            .map(|e| e.tx.subscribe())
            .ok_or_else(|| Error::JobNotFound(id.to_owned()))
    }

    /// Asks a job to stop; terminal jobs are returned unchanged.
    pub async fn cancel(&self, id: &str) -> Result<Job> {
        let (tx, token, persist) = {
            let entries = lock(&self.inner.entries);
            let e = entries
                .get(id)
                .ok_or_else(|| Error::JobNotFound(id.to_owned()))?;
            (e.tx.clone(), e.cancel.clone(), e.persist.clone())
        };
        if !is_terminal(tx.borrow().state) {
            token.cancel();
            tx.send_modify(|j| {
                if !is_terminal(j.state) {
                    j.state = JobState::Cancelling as i32;
                }
            });
            persist.write(persist.stamp(&tx)).await?;
        }
        let job = tx.borrow().clone();
        Ok(job)
    }
}

/// What a running job uses to report itself.
#[derive(Clone)]
pub struct JobCtx {
    tx: watch::Sender<Job>,
    cancel: CancellationToken,
    persist: Persister,
    last_persist: Arc<Mutex<Instant>>,
}

impl JobCtx {
    /// The job's id.
    pub fn id(&self) -> String {
        self.tx.borrow().id.clone()
    }

    /// A copy of the current snapshot.
    pub fn snapshot(&self) -> Job {
        self.tx.borrow().clone()
    }

    /// Changes the snapshot; journals it if the last write is older than
    /// [`PERSIST_EVERY`].
    pub fn update(&self, f: impl FnOnce(&mut Job)) {
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
    pub async fn update_now(&self, f: impl FnOnce(&mut Job)) {
        self.tx.send_modify(f);
        *lock(&self.last_persist) = Instant::now();
        if let Err(e) = self.persist.write(self.persist.stamp(&self.tx)).await {
            tracing::warn!(error = %e, "could not journal job state");
        }
    }

    /// Counts one file of `bytes` as done, overall and for collection `collection`
    /// (an index into `progress.collections`); returns whether that collection's files
    /// are now all done.
    pub fn file_done(&self, collection: Option<usize>, bytes: u64) -> bool {
        let mut finished = false;
        self.update(|j| {
            if let Some(p) = j.progress.as_mut() {
                p.bytes_done += bytes;
                p.files_done += 1;
                if let Some(cp) = collection.and_then(|i| p.collections.get_mut(i)) {
                    cp.bytes_done += bytes;
                    cp.files_done += 1;
                    finished = cp.files_done == cp.files_total;
                }
            }
        });
        finished
    }

    /// Sets the phase (journaled).
    pub async fn phase(&self, phase: &str) {
        tracing::info!(phase, "job phase");
        let phase = phase.to_owned();
        self.update_now(|j| j.phase = phase).await;
    }

    /// Records a warning (journaled).
    pub async fn warn(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(%message, "job warning");
        self.update_now(|j| j.warnings.push(message)).await;
    }

    /// Fails with [`Error::Cancelled`] once cancellation was asked.
    pub fn check_cancelled(&self) -> Result<()> {
        if self.cancel.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }

    async fn finish(&self, outcome: Result<()>) {
        match &outcome {
            Ok(()) => tracing::info!("job succeeded"),
            Err(e) => tracing::warn!(error = %e, "job ended with an error"),
        }
        self.update_now(|j| {
            j.end_time = Some(now());
            match outcome {
                Ok(()) => {
                    j.state = JobState::Succeeded as i32;
                    j.phase = "done".into();
                }
                Err(Error::Cancelled) => {
                    j.state = JobState::Cancelled as i32;
                    j.phase = "cancelled".into();
                    j.error = Some(Error::Cancelled.to_job_error());
                }
                Err(e) => {
                    j.state = JobState::Failed as i32;
                    j.phase = "failed".into();
                    j.error = Some(e.to_job_error());
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use milvault_proto::milvault::v1::DeleteBackupSpec;

    fn new_job(lock_key: &str) -> NewJob {
        NewJob {
            kind: JobKind::Delete,
            request: job::Request::DeleteBackup(DeleteBackupSpec::default()),
            backup: "b".into(),
            cluster: String::new(),
            repository: "r".into(),
            locks: vec![Lock {
                key: lock_key.into(),
                exclusive: true,
                conflict_message: "busy".into(),
            }],
        }
    }

    async fn wait_terminal(jobs: &Jobs, id: &str) -> Job {
        let mut rx = jobs.watch(id).expect("watch");
        loop {
            let j = rx.borrow_and_update().clone();
            if is_terminal(j.state) {
                return j;
            }
            rx.changed().await.expect("changed");
        }
    }

    #[tokio::test]
    async fn jobs_run_conflict_fail_and_survive_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let jobs = Jobs::open(Journal::open(dir.path()).expect("journal"), 2).expect("jobs");
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let first = jobs
            .submit(new_job("k"), |_ctx| async move {
                let _ = release_rx.await;
                Ok(())
            })
            .await
            .expect("submit");
        let clash = jobs
            .submit(new_job("k"), |_ctx| async { Ok(()) })
            .await
            .expect_err("conflict");
        assert_eq!(clash.reason(), "JOB_CONFLICT");
        let failing = jobs
            .submit(new_job("other"), |_ctx| async {
                Err(Error::MilvusUnavailable {
                    address: "http://a:1".into(),
                    detail: "refused".into(),
                })
            })
            .await
            .expect("submit");
        let failed = wait_terminal(&jobs, &failing.id).await;
        assert_eq!(failed.state, JobState::Failed as i32);
        assert_eq!(failed.error.expect("error").code, "UNAVAILABLE");
        let _ = release_tx.send(());
        let done = wait_terminal(&jobs, &first.id).await;
        assert_eq!(done.state, JobState::Succeeded as i32);
        assert_eq!(jobs.list().len(), 2);

        // A job journaled as running is failed on the next open.
        let mut stuck = done.clone();
        stuck.id = "stuck".into();
        stuck.state = JobState::Running as i32;
        drop(jobs);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let journal = Journal::open(dir.path()).expect("journal");
        journal.put_blocking(&stuck).expect("put");
        drop(journal);
        let reopened = Jobs::open(Journal::open(dir.path()).expect("journal"), 1).expect("jobs");
        let j = reopened.get("stuck").expect("get");
        assert_eq!(j.state, JobState::Failed as i32);
        assert_eq!(j.error.expect("error").reason, "SERVER_RESTARTED");
    }

    #[tokio::test]
    async fn an_older_snapshot_never_overwrites_a_newer_one() {
        let dir = tempfile::tempdir().expect("tmp");
        let journal = Journal::open(dir.path()).expect("journal");
        let persist = Persister::new(journal.clone());
        let (tx, _) = watch::channel(Job {
            id: "j".into(),
            state: JobState::Running as i32,
            ..Default::default()
        });
        let older = persist.stamp(&tx);
        tx.send_modify(|j| j.state = JobState::Succeeded as i32);
        let newer = persist.stamp(&tx);
        persist.write(newer).await.expect("write");
        persist.write(older).await.expect("write");
        let stored = journal.load_all().expect("load");
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].state, JobState::Succeeded as i32);
    }

    #[tokio::test]
    async fn cancel_stops_a_queued_job() {
        let dir = tempfile::tempdir().expect("tmp");
        let jobs = Jobs::open(Journal::open(dir.path()).expect("journal"), 1).expect("jobs");
        let (_keep, rx) = tokio::sync::oneshot::channel::<()>();
        let _blocker = jobs
            .submit(new_job("a"), |_ctx| async move {
                let _ = rx.await;
                Ok(())
            })
            .await
            .expect("submit");
        let queued = jobs
            .submit(new_job("b"), |_ctx| async { Ok(()) })
            .await
            .expect("submit");
        jobs.cancel(&queued.id).await.expect("cancel");
        let end = wait_terminal(&jobs, &queued.id).await;
        assert_eq!(end.state, JobState::Cancelled as i32);
    }
}
