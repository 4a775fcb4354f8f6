//! What a job holds while it runs, so conflicting work is refused, not raced.
//!
//! Keys are built only by the constructors here: a backup (written exclusively by a
//! backup or delete, read by restores, verifies and exports) and a restore target
//! collection (written by one restore at a time).

/// A resource a job uses; exclusive locks clash with any other lock on the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Lock {
    /// What is locked, e.g. `backup:local/nightly`.
    pub(crate) key: String,
    /// Whether no other job may hold the key at all.
    pub(crate) exclusive: bool,
    /// Said to the caller whose job is refused.
    pub(crate) conflict_message: String,
}

impl Lock {
    fn backup(repository: &str, name: &str, exclusive: bool) -> Self {
        Self {
            key: format!("backup:{repository}/{name}"),
            exclusive,
            conflict_message: format!(
                "another job is using backup {name:?} of repository {repository:?}; wait for it to finish"
            ),
        }
    }

    /// A job that writes or removes the backup (backup, delete).
    pub(crate) fn backup_writer(repository: &str, name: &str) -> Self {
        Self::backup(repository, name, true)
    }

    /// A job that reads the backup (restore, verify, export).
    pub(crate) fn backup_reader(repository: &str, name: &str) -> Self {
        Self::backup(repository, name, false)
    }

    /// A restore writing `database.collection` of `cluster`.
    pub(crate) fn restore_target(cluster: &str, database: &str, collection: &str) -> Self {
        Self {
            key: format!("target:{cluster}/{database}.{collection}"),
            exclusive: true,
            conflict_message: format!(
                "another restore is writing {database}.{collection} in cluster {cluster:?}"
            ),
        }
    }

    /// Whether two locks cannot be held at once.
    pub(crate) fn clashes_with(&self, other: &Lock) -> bool {
        self.key == other.key && (self.exclusive || other.exclusive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_share_writers_do_not() {
        let r1 = Lock::backup_reader("r", "b");
        let r2 = Lock::backup_reader("r", "b");
        let w = Lock::backup_writer("r", "b");
        assert!(!r1.clashes_with(&r2));
        assert!(r1.clashes_with(&w) && w.clashes_with(&r2));
        assert!(!w.clashes_with(&Lock::backup_writer("r", "c")));
        let t = Lock::restore_target("a", "db", "c");
        assert!(t.clashes_with(&Lock::restore_target("a", "db", "c")));
        assert!(!t.clashes_with(&Lock::restore_target("b", "db", "c")));
    }
}
