//! Resuming a restore the server's restart interrupted (`ResumeJob`).
//!
//! At start-up an interrupted restore is not cleaned up at once: what it created is
//! kept until `[restore] resume_window_secs` after the restart (`resumable_until`),
//! then removed as any interrupted job's (`cleanup.rs`). Within the window
//! `ResumeJob` starts a new job that holds what the old one created (its resources
//! and its journaled imports, `resumed_from`/`resumed_by` link the two), builds on its
//! collections, and imports only the segments whose import was not confirmed
//! (`import.rs`: imports left running are waited for and checked, failed ones done
//! again). `CancelJob` on a kept restore gives the resume up and cleans up at once.
//!
//! A restore is kept only when building on it is sound: none of its collections had
//! started taking the place of another or been put in place (the start-up cleanup
//! finishes such switches), and no rows were being re-inserted (a Milvus 2.2 import's
//! survivors), whose count an interruption loses. Who ends the window, a resume or
//! the timer, is decided atomically (`Jobs::claim`).

use std::sync::Arc;
use std::time::Duration;

use milvault_proto::milvault::v1::{Job, JobKind, JobResource, JobState, ResourceKind, job};

use super::{RestoreJob, Side, Target, temporary_prefix};
use crate::app::App;
use crate::error::{Error, Result};
use crate::jobs::now;

/// `resumed_by` while a resume is being submitted.
const RESUMING: &str = "(resuming)";

/// What a resumed restore inherits from the interrupted one.
#[derive(Clone, Debug)]
pub(crate) struct Resume {
    /// The interrupted job.
    pub(crate) from: String,
    /// Its staging prefix (store key).
    pub(crate) staging: String,
    /// Its collections, by index among the resources (the new job's copies keep the
    /// same indices).
    pub(crate) collections: Vec<(usize, JobResource)>,
}

impl Resume {
    /// The inherited collection built for target `t`: its resource index and name.
    pub(crate) fn owned(&self, t: &Target) -> Option<(usize, String)> {
        let tmp = temporary_prefix(&t.collection);
        self.collections
            .iter()
            .find(|(_, r)| {
                r.database == t.database && (r.name == t.collection || r.name.starts_with(&tmp))
            })
            .map(|(i, r)| (*i, r.name.clone()))
    }
}

/// Why `job` cannot be resumed now, or `None`.
fn why_not(job: &Job) -> Option<String> {
    let now = now().seconds;
    if job.kind() != JobKind::Restore {
        return Some(format!(
            "it is a {} job; only restores can be resumed",
            job.kind()
                .as_str_name()
                .trim_start_matches("JOB_KIND_")
                .to_lowercase()
        ));
    }
    if job.resumed_by == RESUMING {
        return Some("a resume of it is being started".into());
    }
    if !job.resumed_by.is_empty() {
        return Some(format!("it was resumed already, by job {}", job.resumed_by));
    }
    let restarted = job.state() == JobState::Failed
        && job
            .error
            .as_ref()
            .is_some_and(|e| e.reason == "SERVER_RESTARTED");
    if !restarted {
        return Some(format!(
            "it was not interrupted by a restart of the server (it is {})",
            job.state()
                .as_str_name()
                .trim_start_matches("JOB_STATE_")
                .to_lowercase()
        ));
    }
    match job.resumable_until {
        None => Some(
            "it was not kept for a resume (what it created was removed: the resume window is 0, it had started putting collections in place, or it was given up)"
                .into(),
        ),
        Some(t) if t.seconds <= now => Some(format!(
            "its resume window ended {} s ago",
            now - t.seconds
        )),
        Some(_) => None,
    }
}

/// Starts a job that continues the interrupted restore `id`.
pub(crate) async fn resume(app: &Arc<App>, id: &str) -> Result<Job> {
    let old = app.jobs.get(id)?;
    if let Some(message) = why_not(&old) {
        return Err(Error::NotResumable {
            id: id.to_owned(),
            message,
        });
    }
    let Some(job::Request::RestoreBackup(req)) = old.request.clone() else {
        return Err(Error::NotResumable {
            id: id.to_owned(),
            message: "the job does not carry its restore request".into(),
        });
    };
    let (won, old) = app
        .jobs
        .claim(id, |j| {
            if why_not(j).is_some() {
                return false;
            }
            j.resumed_by = RESUMING.into();
            true
        })
        .await?;
    if !won {
        return Err(Error::NotResumable {
            id: id.to_owned(),
            message: why_not(&old).unwrap_or_else(|| "another caller resumed it".into()),
        });
    }
    let inherited = Resume {
        from: old.id.clone(),
        staging: old
            .resources
            .iter()
            .find(|r| r.kind() == ResourceKind::Staging && !r.kept)
            .map(|r| r.path.clone())
            .unwrap_or_default(),
        collections: old
            .resources
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind() == ResourceKind::Collection && !r.kept)
            .map(|(i, r)| (i, r.clone()))
            .collect(),
    };
    let started = async {
        if inherited.staging.is_empty() {
            return Err(Error::NotResumable {
                id: id.to_owned(),
                message: "it had not started staging files".into(),
            });
        }
        let submission = RestoreJob::prepare_with(app, req, Some(inherited.clone())).await?;
        let (resources, imports) = (old.resources.clone(), old.imports.clone());
        app.jobs
            .submit_with(submission, |j| {
                j.resumed_from = inherited.from.clone();
                j.resources = resources;
                j.imports = imports;
            })
            .await
    }
    .await;
    match started {
        Ok(new) => {
            let by = new.id.clone();
            app.jobs
                .amend(id, |j| {
                    j.resumed_by = by.clone();
                    j.resumable_until = None;
                    j.cleanup.push(format!(
                        "resumed by job {by}, which holds what this job created"
                    ));
                })
                .await?;
            Ok(new)
        }
        Err(e) => {
            // Nothing started: the job stays resumable.
            app.jobs
                .amend(id, |j| {
                    if j.resumed_by == RESUMING {
                        j.resumed_by.clear();
                    }
                })
                .await?;
            Err(e)
        }
    }
}

/// Whether an interrupted job is a restore that can be kept for a resume: a restore,
/// a window configured, no switch started, no rows being re-inserted.
fn keepable(window_secs: u64, job: &Job) -> bool {
    window_secs > 0
        && job.kind() == JobKind::Restore
        && !job
            .resources
            .iter()
            .any(|r| r.kind() == ResourceKind::Collection && (r.kept || !r.rename_to.is_empty()))
        && !job.imports.iter().any(|i| i.inserting && !i.confirmed)
}

/// Keeps an interrupted restore for a resume when it can be (start-up recovery);
/// returns whether it was kept. Its window's end is watched by [`watch_windows`].
pub(crate) async fn keep(app: &App, job: &Job) -> bool {
    if !keepable(app.config.restore.resume_window_secs, job) {
        return false;
    }
    let secs = i64::try_from(app.config.restore.resume_window_secs).unwrap_or(i64::MAX);
    let mut until = now();
    until.seconds = until.seconds.saturating_add(secs);
    let kept = app
        .jobs
        .amend(&job.id, |j| {
            j.resumable_until = Some(until);
            j.cleanup.push(format!(
                "kept for a resume (job resume {}) for {secs} s; then what it created is removed",
                j.id
            ));
        })
        .await;
    if let Err(e) = kept {
        tracing::warn!(job = %job.id, error = %e, "could not keep an interrupted restore for a resume");
        return false;
    }
    true
}

/// Watches every kept restore's window: removes what it created once the window
/// ends (at once for windows that ended while the server was down), unless resumed.
/// A resume that was being started when the server stopped, and never journaled its
/// job, leaves the old job resumable again.
pub(crate) async fn watch_windows(app: &Arc<App>) {
    let jobs = app.jobs.list();
    for job in &jobs {
        if job.resumed_by == RESUMING && !jobs.iter().any(|j| j.resumed_from == job.id) {
            let _ = app
                .jobs
                .amend(&job.id, |j| {
                    if j.resumed_by == RESUMING {
                        j.resumed_by.clear();
                    }
                })
                .await;
        }
    }
    for job in app.jobs.list() {
        let Some(until) = job.resumable_until else {
            continue;
        };
        if !job.resumed_by.is_empty() {
            continue;
        }
        let app = app.clone();
        tokio::spawn(async move {
            let left = until.seconds.saturating_sub(now().seconds);
            if left > 0 {
                tokio::time::sleep(Duration::from_secs(u64::try_from(left).unwrap_or(0))).await;
            }
            end(&app, &job.id, "the resume window ended").await;
        });
    }
}

/// Gives up the resume of a kept restore now (`CancelJob`); `None` when `id` is not
/// kept for a resume (then it is cancelled as any job).
pub(crate) async fn give_up(app: &App, id: &str) -> Result<Option<Job>> {
    let job = app.jobs.get(id)?;
    if job.resumable_until.is_none() || !job.resumed_by.is_empty() {
        return Ok(None);
    }
    Ok(end(app, id, "the resume was given up (CancelJob)").await)
}

/// Ends a kept restore's window and removes what it created, unless a resume won.
async fn end(app: &App, id: &str, why: &str) -> Option<Job> {
    let claimed = app
        .jobs
        .claim(id, |j| {
            if j.resumed_by.is_empty() && j.resumable_until.is_some() {
                j.resumable_until = None;
                j.cleanup
                    .push(format!("{why}: removing what the job created"));
                true
            } else {
                false
            }
        })
        .await;
    let job = match claimed {
        Ok((true, job)) => job,
        Ok((false, job)) => return Some(job),
        Err(e) => {
            tracing::warn!(job = %id, error = %e, "could not end a resume window");
            return None;
        }
    };
    tracing::info!(job = %id, %why, "removing what an interrupted restore created");
    let notes = crate::cleanup::release(app, &job.resources).await;
    if let Err(e) = app
        .jobs
        .amend(id, |j| {
            for r in &mut j.resources {
                r.kept = true;
            }
            j.cleanup.extend(notes);
        })
        .await
    {
        tracing::warn!(job = %id, error = %e, "could not record the cleanup of an interrupted restore");
    }
    app.jobs.get(id).ok()
}

impl Side<'_> {
    /// Whether an inherited import into `db.name` may have run without the journal
    /// knowing its task (interrupted between asking Milvus and recording the answer).
    pub(super) fn untrusted(&self, db: &str, name: &str) -> bool {
        self.ctx.imports().iter().any(|r| {
            r.database == db
                && r.collection == name
                && !r.confirmed
                && !r.abandoned
                && r.task_ids.is_empty()
        })
    }

    /// Marks every import into `db.name` abandoned (the collection was rebuilt).
    pub(super) async fn forget_imports(&self, db: &str, name: &str) {
        for (i, r) in self.ctx.imports().into_iter().enumerate() {
            if r.database == db && r.collection == name && !r.abandoned {
                self.ctx.update_import(i, |r| r.abandoned = true).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use milvault_proto::milvault::v1::{ImportRecord, JobError};

    use super::*;

    fn interrupted_restore() -> Job {
        let mut until = now();
        until.seconds += 600;
        Job {
            id: "j".into(),
            kind: JobKind::Restore as i32,
            state: JobState::Failed as i32,
            error: Some(JobError {
                reason: "SERVER_RESTARTED".into(),
                ..Default::default()
            }),
            resumable_until: Some(until),
            resources: vec![JobResource {
                kind: ResourceKind::Collection as i32,
                name: "c1_r".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn only_a_kept_restore_within_its_window_resumes_once() {
        assert_eq!(why_not(&interrupted_restore()), None);
        let mut backup = interrupted_restore();
        backup.kind = JobKind::Backup as i32;
        assert!(why_not(&backup).is_some_and(|m| m.contains("backup")));
        let mut resumed = interrupted_restore();
        resumed.resumed_by = "k".into();
        assert!(why_not(&resumed).is_some_and(|m| m.contains("job k")));
        let mut busy = interrupted_restore();
        busy.resumed_by = RESUMING.into();
        assert!(why_not(&busy).is_some());
        let mut failed = interrupted_restore();
        failed.error = Some(JobError {
            reason: "IMPORT_FAILED".into(),
            ..Default::default()
        });
        assert!(why_not(&failed).is_some_and(|m| m.contains("not interrupted")));
        let mut expired = interrupted_restore();
        expired.resumable_until = Some(now());
        assert!(why_not(&expired).is_some_and(|m| m.contains("window ended")));
        let mut dropped = interrupted_restore();
        dropped.resumable_until = None;
        assert!(why_not(&dropped).is_some_and(|m| m.contains("not kept")));
    }

    #[test]
    fn a_restore_is_kept_only_when_building_on_it_is_sound() {
        let job = interrupted_restore();
        assert!(keepable(60, &job));
        assert!(!keepable(0, &job), "no window configured");
        let mut switching = job.clone();
        switching.resources[0].rename_to = "c1".into();
        assert!(!keepable(60, &switching), "a switch had started");
        let mut switched = job.clone();
        switched.resources[0].kept = true;
        assert!(!keepable(60, &switched), "a collection was put in place");
        let mut inserting = job.clone();
        inserting.imports.push(ImportRecord {
            inserting: true,
            ..Default::default()
        });
        assert!(!keepable(60, &inserting), "rows were being re-inserted");
        let mut backup = job;
        backup.kind = JobKind::Backup as i32;
        assert!(!keepable(60, &backup));
    }

    #[test]
    fn inherited_collections_are_found_by_target_or_temporary_name() {
        let resume = Resume {
            from: "j".into(),
            staging: "s/j/".into(),
            collections: vec![
                (
                    1,
                    JobResource {
                        database: "default".into(),
                        name: "c1_mvtmp_abcd".into(),
                        ..Default::default()
                    },
                ),
                (
                    3,
                    JobResource {
                        database: "default".into(),
                        name: "c2".into(),
                        ..Default::default()
                    },
                ),
            ],
        };
        let t = |c: &str| Target {
            source: 0,
            database: "default".into(),
            collection: c.into(),
        };
        assert_eq!(resume.owned(&t("c1")), Some((1, "c1_mvtmp_abcd".into())));
        assert_eq!(resume.owned(&t("c2")), Some((3, "c2".into())));
        assert_eq!(resume.owned(&t("c3")), None);
        let other_db = Target {
            database: "db2".into(),
            ..t("c2")
        };
        assert_eq!(resume.owned(&other_db), None);
    }
}
