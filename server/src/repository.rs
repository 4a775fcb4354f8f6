//! The backup repository layout and the manifest contract.
//!
//! ```text
//! <repository root>/backups/<backup name>/
//!     manifest.json   written LAST: its presence means the backup is complete
//!     files/...       byte copies of the cluster's binlogs, keyed by their path
//!                     relative to the cluster's storage root
//! ```
//! The manifest is `milvault.v1.BackupManifest` in proto3 JSON. Readers reject a
//! `format_version` they do not know instead of guessing.

use milvault_proto::milvault::v1::{
    Backup, BackupFile, BackupManifest, BackupState, SegmentBackup,
};

use crate::error::{Error, Result};
use crate::storage::{Copied, Store};

/// The manifest format this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

const BACKUPS_DIR: &str = "backups/";
const MANIFEST: &str = "manifest.json";

/// A repository: a [`Store`] plus the layout rules.
#[derive(Clone, Debug)]
pub(crate) struct Repository {
    name: String,
    store: Store,
}

impl Repository {
    /// Wraps a store as the repository called `name`.
    pub(crate) fn new(name: impl Into<String>, store: Store) -> Self {
        Self {
            name: name.into(),
            store,
        }
    }

    /// Configured name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The underlying storage.
    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Directory of one backup (`backups/<name>/`).
    pub(crate) fn backup_dir(backup: &str) -> String {
        format!("{BACKUPS_DIR}{backup}/")
    }

    /// Key of one backup's manifest.
    pub(crate) fn manifest_key(backup: &str) -> String {
        format!("{BACKUPS_DIR}{backup}/{MANIFEST}")
    }

    /// Repository-relative key of a copied file, from its key relative to the
    /// cluster's storage root.
    pub(crate) fn file_key(backup: &str, source_key: &str) -> String {
        format!("{BACKUPS_DIR}{backup}/files/{source_key}")
    }

    /// Turns "not found" on a file the manifest of `backup` lists into
    /// [`Error::FileMissing`]: the backup is damaged, which is data loss, not an outage.
    fn missing_is_data_loss(&self, backup: &str, path: &str, e: Error) -> Error {
        match e {
            Error::Storage(s) if s.kind == opendal::ErrorKind::NotFound => Error::FileMissing {
                storage: self.store.name().to_owned(),
                backup: backup.to_owned(),
                path: path.to_owned(),
            },
            other => other,
        }
    }

    /// Copies one file of `backup` to `dst_key` of `dst`, checking its bytes against
    /// the manifest's size and SHA-256 as they pass.
    pub(crate) async fn copy_file_to(
        &self,
        backup: &str,
        file: &BackupFile,
        dst: &Store,
        dst_key: &str,
    ) -> Result<Copied> {
        let want = Copied {
            size: file.size_bytes,
            sha256: file.sha256.clone(),
        };
        self.store
            .copy_to(&file.path, dst, dst_key, Some(&want))
            .await
            .map_err(|e| self.missing_is_data_loss(backup, &file.path, e))
    }

    /// Reads one file of `backup` through and returns its size and SHA-256.
    pub(crate) async fn hash_file(&self, backup: &str, path: &str) -> Result<Copied> {
        self.store
            .hash(path)
            .await
            .map_err(|e| self.missing_is_data_loss(backup, path, e))
    }

    /// Whether anything exists under the backup's directory.
    pub(crate) async fn backup_exists(&self, backup: &str) -> Result<bool> {
        Ok(!self
            .store
            .list_children(&Self::backup_dir(backup))
            .await?
            .is_empty())
    }

    /// Reads and validates a manifest; `None` when the backup has none.
    pub(crate) async fn read_manifest(&self, backup: &str) -> Result<Option<BackupManifest>> {
        let Some(bytes) = self.store.read_small(&Self::manifest_key(backup)).await? else {
            return Ok(None);
        };
        decode_manifest(backup, &bytes).map(Some)
    }

    /// Reads the manifest of a backup that must be complete.
    pub(crate) async fn load_complete(&self, backup: &str) -> Result<BackupManifest> {
        match self.read_manifest(backup).await? {
            Some(m) => Ok(m),
            None if self.backup_exists(backup).await? => Err(Error::BackupIncomplete {
                name: backup.to_owned(),
                repository: self.name.clone(),
            }),
            None => Err(Error::BackupNotFound {
                name: backup.to_owned(),
                repository: self.name.clone(),
            }),
        }
    }

    /// Seals a backup by writing its manifest. Call after every file is in place.
    pub(crate) async fn write_manifest(&self, manifest: &BackupManifest) -> Result<()> {
        let bytes = encode_manifest(manifest)?;
        self.store
            .write_small(&Self::manifest_key(&manifest.name), bytes)
            .await
    }

    /// Names of every backup directory, sorted.
    pub(crate) async fn backup_names(&self) -> Result<Vec<String>> {
        let children = self.store.list_children(BACKUPS_DIR).await?;
        Ok(children
            .into_iter()
            .filter_map(|p| {
                let rest = p.strip_prefix(BACKUPS_DIR)?.strip_suffix('/')?;
                (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_owned())
            })
            .collect())
    }

    /// The listing view of one backup. `in_progress` says whether a running job owns it.
    pub(crate) async fn describe(
        &self,
        backup: &str,
        in_progress: bool,
        with_manifest: bool,
    ) -> Result<Backup> {
        let mut view = Backup {
            name: backup.to_owned(),
            repository: self.name.clone(),
            ..Default::default()
        };
        match self.read_manifest(backup).await {
            Ok(Some(m)) => {
                view.state = BackupState::Complete as i32;
                view.create_time = m.start_time;
                view.milvus_version = m
                    .source
                    .as_ref()
                    .map(|s| s.milvus_version.clone())
                    .unwrap_or_default();
                view.summary = m.summary;
                if with_manifest {
                    view.manifest = Some(m);
                }
            }
            Ok(None) => {
                view.state = if in_progress {
                    BackupState::InProgress
                } else {
                    BackupState::Incomplete
                } as i32;
            }
            Err(e) => {
                tracing::warn!(backup, error = %e, "unreadable manifest; listing the backup as incomplete");
                view.state = BackupState::Incomplete as i32;
            }
        }
        Ok(view)
    }
}

/// Every file of one segment: insert, delta, then stats logs.
pub(crate) fn segment_files(s: &SegmentBackup) -> impl Iterator<Item = &BackupFile> {
    s.insert_logs
        .iter()
        .chain(&s.delta_logs)
        .chain(&s.stats_logs)
}

/// Every file a manifest references.
pub(crate) fn manifest_files(m: &BackupManifest) -> impl Iterator<Item = &BackupFile> {
    m.collections
        .iter()
        .flat_map(|c| &c.segments)
        .flat_map(segment_files)
}

/// Serialises a manifest to its stored JSON form.
pub(crate) fn encode_manifest(manifest: &BackupManifest) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(manifest)
        .map_err(|e| Error::internal("the manifest could not be encoded", e))
}

/// Parses and validates a stored manifest.
pub(crate) fn decode_manifest(backup: &str, bytes: &[u8]) -> Result<BackupManifest> {
    let m: BackupManifest = serde_json::from_slice(bytes).map_err(|e| Error::Manifest {
        name: backup.to_owned(),
        message: format!("not a valid manifest: {e}"),
    })?;
    if m.format_version != FORMAT_VERSION {
        return Err(Error::Manifest {
            name: backup.to_owned(),
            message: format!(
                "format version {} is not supported by this milvault (it reads version {FORMAT_VERSION}); use a matching milvault release",
                m.format_version
            ),
        });
    }
    if m.name != backup {
        return Err(Error::Manifest {
            name: backup.to_owned(),
            message: format!(
                "manifest names backup {:?}, stored under {:?}",
                m.name, backup
            ),
        });
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use milvault_proto::milvault::v1::CollectionBackup;

    fn sample() -> BackupManifest {
        BackupManifest {
            format_version: FORMAT_VERSION,
            name: "b1".into(),
            collections: vec![CollectionBackup {
                name: "c".into(),
                database: "default".into(),
                segments: vec![SegmentBackup {
                    segment_id: 7,
                    insert_logs: vec![BackupFile {
                        path: "backups/b1/files/insert_log/1/2/7/100/9".into(),
                        size_bytes: 42,
                        sha256: "ab".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn manifest_round_trips_through_json() {
        let m = sample();
        let bytes = encode_manifest(&m).expect("encode");
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        assert!(text.contains("\"formatVersion\": 1"), "{text}");
        assert_eq!(decode_manifest("b1", &bytes).expect("decode"), m);
    }

    #[test]
    fn unknown_versions_and_garbage_are_rejected() {
        let mut m = sample();
        m.format_version = 2;
        let err = decode_manifest("b1", &encode_manifest(&m).expect("encode")).expect_err("v2");
        assert!(err.to_string().contains("format version 2"), "{err}");
        assert!(decode_manifest("b1", b"{not json").is_err());
        let err = decode_manifest("other", &encode_manifest(&sample()).expect("encode"))
            .expect_err("name");
        assert!(err.to_string().contains("stored under"), "{err}");
    }
}
