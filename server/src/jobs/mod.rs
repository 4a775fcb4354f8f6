//! Jobs: long work (backup, restore, verify, delete) that outlives the RPC that
//! started it.
//!
//! Each job has one `tokio::sync::watch` channel holding its latest full snapshot, so
//! `WatchJob` streams are cheap and a slow watcher just sees the newest state (the
//! tonic-health model). Jobs report through [`JobCtx`]; every state change is written
//! to the [`Journal`]. At start-up, jobs the journal shows as unfinished are marked
//! failed with reason `SERVER_RESTARTED`, so none stays `RUNNING` forever (a restore
//! among them may then be kept for a resume, `restore/resume.rs`).
//!
//! Conflicting work is refused, not raced: a job declares [`Lock`]s (a backup, a
//! restore target) and submission fails while another live job holds a clashing one.

mod ctx;
mod journal;
mod lock;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::future::BoxFuture;
use milvault_proto::milvault::v1::{Job, JobKind, JobPhase, JobState, job};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

pub(crate) use ctx::{CollectionPlan, JobCtx, now};
use ctx::{Persister, lock};
use journal::Journal;
pub(crate) use lock::Lock;

use crate::error::{Error, Result};

struct Entry {
    tx: watch::Sender<Job>,
    cancel: CancellationToken,
    persist: Persister,
}

struct Inner {
    entries: Mutex<HashMap<String, Entry>>,
    /// Jobs a previous run left unfinished, for the start-up cleanup.
    interrupted: Mutex<Vec<String>>,
    locks: Mutex<Vec<(String, Lock)>>,
    journal: Journal,
    permits: Arc<Semaphore>,
}

/// The job registry; cheap to clone.
#[derive(Clone)]
pub(crate) struct Jobs {
    inner: Arc<Inner>,
}

/// The work a job does once it runs.
pub(crate) type Run = Box<dyn FnOnce(JobCtx) -> BoxFuture<'static, Result<()>> + Send>;

/// A job ready to be submitted: what it is, and the work it does.
pub(crate) struct Submission {
    /// Kind of work.
    pub(crate) kind: JobKind,
    /// The request, with cluster and repository names resolved.
    pub(crate) request: job::Request,
    /// The backup the job works on.
    pub(crate) backup: String,
    /// Cluster name (empty for jobs that use none).
    pub(crate) cluster: String,
    /// Repository name.
    pub(crate) repository: String,
    /// Resources the job holds until it ends.
    pub(crate) locks: Vec<Lock>,
    /// The work.
    pub(crate) run: Run,
}

impl Jobs {
    /// Opens the journal in `state_dir` and fails jobs a previous run left unfinished.
    pub(crate) fn open(state_dir: &std::path::Path, max_running: usize) -> Result<Self> {
        let journal = Journal::open(state_dir)?;
        let mut entries = HashMap::new();
        let mut interrupted = Vec::new();
        for mut job in journal.load_all()? {
            if !job.state().is_terminal() {
                interrupted.push(job.id.clone());
                let state = job
                    .state()
                    .as_str_name()
                    .trim_start_matches("JOB_STATE_")
                    .to_lowercase();
                let err = Error::Interrupted { state };
                tracing::warn!(job = %job.id, "job was interrupted by a restart; marking it failed");
                job.state = JobState::Failed as i32;
                job.phase = JobPhase::Failed as i32;
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
                interrupted: Mutex::new(interrupted),
                locks: Mutex::new(Vec::new()),
                journal,
                permits: Arc::new(Semaphore::new(max_running)),
            }),
        })
    }

    /// The jobs a previous run left unfinished (each once).
    pub(crate) fn take_interrupted(&self) -> Vec<Job> {
        let ids = std::mem::take(&mut *lock(&self.inner.interrupted));
        ids.iter().filter_map(|id| self.get(id).ok()).collect()
    }

    /// Changes a job that is not running (start-up recovery) and journals it.
    pub(crate) async fn amend(&self, id: &str, f: impl FnOnce(&mut Job)) -> Result<()> {
        let (tx, persist) = {
            let entries = lock(&self.inner.entries);
            let e = entries
                .get(id)
                .ok_or_else(|| Error::JobNotFound { id: id.to_owned() })?;
            (e.tx.clone(), e.persist.clone())
        };
        tx.send_modify(f);
        persist.write(persist.stamp(&tx)).await
    }

    /// Changes a job that is not running when `f` says so (it returns whether it
    /// changed anything), atomically with every other change of the job, and
    /// journals it; returns the job as it is after. Two callers racing for the same
    /// change (a resume and the end of its window) see one of them win.
    pub(crate) async fn claim(
        &self,
        id: &str,
        f: impl FnOnce(&mut Job) -> bool,
    ) -> Result<(bool, Job)> {
        let (tx, persist) = {
            let entries = lock(&self.inner.entries);
            let e = entries
                .get(id)
                .ok_or_else(|| Error::JobNotFound { id: id.to_owned() })?;
            (e.tx.clone(), e.persist.clone())
        };
        let changed = tx.send_if_modified(f);
        if changed {
            persist.write(persist.stamp(&tx)).await?;
        }
        let job = tx.borrow().clone();
        Ok((changed, job))
    }

    /// Whether a live job writes the backup `name` of `repository`.
    pub(crate) fn backup_in_progress(&self, repository: &str, name: &str) -> bool {
        let key = Lock::backup_writer(repository, name).key;
        lock(&self.inner.locks)
            .iter()
            .any(|(_, l)| l.key == key && l.exclusive)
    }

    /// Registers a job and starts it in the background; returns its first snapshot.
    pub(crate) async fn submit(&self, new: Submission) -> Result<Job> {
        self.submit_with(new, |_| {}).await
    }

    /// [`Self::submit`], with the first snapshot completed by `prefill` before it is
    /// journaled (a resumed restore starts holding what the interrupted one created).
    pub(crate) async fn submit_with(
        &self,
        new: Submission,
        prefill: impl FnOnce(&mut Job),
    ) -> Result<Job> {
        let id = uuid::Uuid::new_v4().to_string();
        {
            let mut held = lock(&self.inner.locks);
            for want in &new.locks {
                if let Some((holder, _)) = held.iter().find(|(_, h)| h.clashes_with(want)) {
                    return Err(Error::Conflict {
                        resource: want.key.clone(),
                        job: holder.clone(),
                        message: format!("{} (job {holder})", want.conflict_message),
                    });
                }
            }
            held.extend(new.locks.iter().map(|l| (id.clone(), l.clone())));
        }
        let job = Job {
            id: id.clone(),
            kind: new.kind as i32,
            state: JobState::Queued as i32,
            phase: JobPhase::Queued as i32,
            create_time: Some(now()),
            request: Some(new.request),
            backup: new.backup,
            cluster: new.cluster,
            repository: new.repository,
            progress: Some(Default::default()),
            report: Some(Default::default()),
            ..Default::default()
        };
        let mut job = job;
        prefill(&mut job);
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
        let run = new.run;
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

    async fn drive(&self, ctx: JobCtx, run: Run) -> Result<()> {
        let permit = tokio::select! {
            p = self.inner.permits.clone().acquire_owned() => {
                p.map_err(|e| Error::internal("job slots closed", e))?
            }
            _ = ctx.cancel.cancelled() => return Err(Error::Cancelled),
        };
        ctx.start().await;
        tracing::info!("job started");
        // A cancelled job is never abandoned: it notices the cancel at its check
        // points (between files, inside copies, in every wait), runs its cleanup,
        // and only then ends `CANCELLED`.
        let out = run(ctx.clone()).await;
        drop(permit);
        out
    }

    fn release_locks(&self, id: &str) {
        lock(&self.inner.locks).retain(|(owner, _)| owner != id);
    }

    /// The latest snapshot of a job.
    pub(crate) fn get(&self, id: &str) -> Result<Job> {
        lock(&self.inner.entries)
            .get(id)
            .map(|e| e.tx.borrow().clone())
            .ok_or_else(|| Error::JobNotFound { id: id.to_owned() })
    }

    /// Every job, newest first.
    pub(crate) fn list(&self) -> Vec<Job> {
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
    pub(crate) fn watch(&self, id: &str) -> Result<watch::Receiver<Job>> {
        lock(&self.inner.entries)
            .get(id)
            .map(|e| e.tx.subscribe())
            .ok_or_else(|| Error::JobNotFound { id: id.to_owned() })
    }

    /// Asks a job to stop; terminal jobs are returned unchanged.
    pub(crate) async fn cancel(&self, id: &str) -> Result<Job> {
        let (tx, token, persist) = {
            let entries = lock(&self.inner.entries);
            let e = entries
                .get(id)
                .ok_or_else(|| Error::JobNotFound { id: id.to_owned() })?;
            (e.tx.clone(), e.cancel.clone(), e.persist.clone())
        };
        if !tx.borrow().state().is_terminal() {
            token.cancel();
            tx.send_modify(|j| {
                if !j.state().is_terminal() {
                    j.state = JobState::Cancelling as i32;
                }
            });
            persist.write(persist.stamp(&tx)).await?;
        }
        let job = tx.borrow().clone();
        Ok(job)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use milvault_proto::milvault::v1::DeleteBackupRequest;

    fn new_job<F, Fut>(lock_key: &str, run: F) -> Submission
    where
        F: FnOnce(JobCtx) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        Submission {
            kind: JobKind::Delete,
            request: job::Request::DeleteBackup(DeleteBackupRequest::default()),
            backup: "b".into(),
            cluster: String::new(),
            repository: "r".into(),
            locks: vec![Lock::backup_writer("r", lock_key)],
            run: Box::new(move |ctx| Box::pin(run(ctx))),
        }
    }

    async fn wait_terminal(jobs: &Jobs, id: &str) -> Job {
        let mut rx = jobs.watch(id).expect("watch");
        loop {
            let j = rx.borrow_and_update().clone();
            if j.state().is_terminal() {
                return j;
            }
            rx.changed().await.expect("changed");
        }
    }

    #[tokio::test]
    async fn jobs_run_conflict_fail_and_survive_restart() {
        let dir = tempfile::tempdir().expect("tmp");
        let jobs = Jobs::open(dir.path(), 2).expect("jobs");
        let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
        let first = jobs
            .submit(new_job("k", |_ctx| async move {
                let _ = release_rx.await;
                Ok(())
            }))
            .await
            .expect("submit");
        assert!(jobs.backup_in_progress("r", "k"));
        let clash = jobs
            .submit(new_job("k", |_ctx| async { Ok(()) }))
            .await
            .expect_err("conflict");
        assert_eq!(clash.reason().as_str(), "JOB_CONFLICT");
        // The refusal names the job in the way.
        assert_eq!(clash.metadata().get("job"), Some(&first.id));
        assert!(clash.to_string().contains(&first.id), "{clash}");
        let failing = jobs
            .submit(new_job("other", |_ctx| async {
                Err(Error::MilvusUnavailable {
                    cluster: "a".into(),
                    address: "http://a:1".into(),
                    op: "Connect",
                    detail: "refused".into(),
                })
            }))
            .await
            .expect("submit");
        let failed = wait_terminal(&jobs, &failing.id).await;
        assert_eq!(failed.state(), JobState::Failed);
        assert_eq!(failed.phase(), JobPhase::Failed);
        assert_eq!(failed.error.expect("error").code, "UNAVAILABLE");
        let _ = release_tx.send(());
        let done = wait_terminal(&jobs, &first.id).await;
        assert_eq!(done.state(), JobState::Succeeded);
        assert_eq!(jobs.list().len(), 2);

        // A job journaled as running is failed on the next open.
        let mut stuck = done.clone();
        stuck.id = "stuck".into();
        stuck.state = JobState::Running as i32;
        let journal = jobs.inner.journal.clone();
        journal.put_blocking(&stuck).expect("put");
        drop(journal);
        drop(jobs);
        let mut reopened = None;
        for _ in 0..100_000 {
            // The first registry's background tasks may still hold the file briefly.
            if let Ok(j) = Jobs::open(dir.path(), 1) {
                reopened = Some(j);
                break;
            }
            tokio::task::yield_now().await;
        }
        let reopened = reopened.expect("journal reopens once the old registry is gone");
        let j = reopened.get("stuck").expect("get");
        assert_eq!(j.state(), JobState::Failed);
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
        assert_eq!(stored[0].state(), JobState::Succeeded);
    }

    #[tokio::test]
    async fn cancel_stops_a_queued_job() {
        let dir = tempfile::tempdir().expect("tmp");
        let jobs = Jobs::open(dir.path(), 1).expect("jobs");
        let (_keep, rx) = tokio::sync::oneshot::channel::<()>();
        let _blocker = jobs
            .submit(new_job("a", |_ctx| async move {
                let _ = rx.await;
                Ok(())
            }))
            .await
            .expect("submit");
        let queued = jobs
            .submit(new_job("b", |_ctx| async { Ok(()) }))
            .await
            .expect("submit");
        jobs.cancel(&queued.id).await.expect("cancel");
        let end = wait_terminal(&jobs, &queued.id).await;
        assert_eq!(end.state(), JobState::Cancelled);
    }
}
