//! The job journal: every job, as its protobuf bytes, in an embedded `redb` file in
//! the state directory. It is what lets a restarted server list old jobs and fail the
//! ones a crash interrupted, instead of forgetting them.

use std::path::Path;
use std::sync::Arc;

use milvault_proto::milvault::v1::Job;
use prost::Message;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::{Error, Result};

const JOBS: TableDefinition<&str, &[u8]> = TableDefinition::new("jobs");

/// Handle to the journal; cheap to clone.
#[derive(Clone)]
pub(crate) struct Journal {
    db: Arc<Database>,
}

fn internal(what: &'static str, e: impl std::fmt::Display) -> Error {
    Error::internal(what, e)
}

impl Journal {
    /// Opens (or creates) `<state_dir>/jobs.redb`.
    pub(crate) fn open(state_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(state_dir).map_err(|e| {
            Error::invalid(
                "server.state_dir",
                format!("cannot create {}: {e}", state_dir.display()),
            )
        })?;
        let path = state_dir.join("jobs.redb");
        let db = Database::create(&path).map_err(|e| {
            Error::invalid(
                "server.state_dir",
                format!("cannot open job journal {}: {e}", path.display()),
            )
        })?;
        let txn = db
            .begin_write()
            .map_err(|e| internal("job journal: open failed", e))?;
        txn.open_table(JOBS)
            .map_err(|e| internal("job journal: open failed", e))?;
        txn.commit()
            .map_err(|e| internal("job journal: open failed", e))?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Every journaled job.
    pub(crate) fn load_all(&self) -> Result<Vec<Job>> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| internal("job journal: read failed", e))?;
        let table = txn
            .open_table(JOBS)
            .map_err(|e| internal("job journal: read failed", e))?;
        let mut jobs = Vec::new();
        for item in table
            .iter()
            .map_err(|e| internal("job journal: read failed", e))?
        {
            let (key, value) = item.map_err(|e| internal("job journal: read failed", e))?;
            match Job::decode(value.value()) {
                Ok(job) => jobs.push(job),
                Err(e) => {
                    tracing::warn!(job = key.value(), error = %e, "skipping an unreadable journal entry")
                }
            }
        }
        Ok(jobs)
    }

    /// Writes one job (blocking; call from `spawn_blocking` on hot paths).
    pub(crate) fn put_blocking(&self, job: &Job) -> Result<()> {
        let txn = self
            .db
            .begin_write()
            .map_err(|e| internal("job journal: write failed", e))?;
        {
            let mut table = txn
                .open_table(JOBS)
                .map_err(|e| internal("job journal: write failed", e))?;
            table
                .insert(job.id.as_str(), job.encode_to_vec().as_slice())
                .map_err(|e| internal("job journal: write failed", e))?;
        }
        txn.commit()
            .map_err(|e| internal("job journal: write failed", e))
    }

    /// Writes one job without blocking the async runtime.
    pub(crate) async fn put(&self, job: Job) -> Result<()> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.put_blocking(&job))
            .await
            .map_err(|e| internal("job journal: write task failed", e))?
    }
}
