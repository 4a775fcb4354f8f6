//! The backup repository layout and the manifest contract.
//!
//! ```text
//! <repository root>/backups/<backup name>/
//!     started.json    written FIRST (BackupStart): who writes it and since when
//!     files/...       byte copies of the cluster's binlogs, keyed by their path
//!                     relative to the cluster's storage root
//!     manifest.json   written LAST: its presence means the backup is complete
//!     retained.json   only after a delete that had to keep files later backups
//!                     reference (RetainedFiles); such a folder is not a backup
//! <repository root>/catalog/<backup name>/<backup id>.json
//!                     the manifest without its collections, written after it:
//!                     what a listing needs, found by one LIST of `catalog/`
//! ```
//! Manifests and markers are proto3 JSON. Readers reject a `format_version` they do
//! not know instead of guessing, and a manifest whose file paths leave the backup's
//! own folder for anything but a backup it names in `references`.

use milvault_proto::milvault::v1::{
    Backup, BackupFile, BackupManifest, BackupStart, BackupState, RetainedFiles, SegmentBackup,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::storage::{Copied, Store};

/// The manifest format this build writes and reads.
pub(crate) const FORMAT_VERSION: u32 = 1;

const BACKUPS_DIR: &str = "backups/";
const CATALOG_DIR: &str = "catalog/";
const MANIFEST: &str = "manifest.json";
const STARTED: &str = "started.json";
const RETAINED: &str = "retained.json";

/// A repository: a [`Store`] plus the layout rules.
#[derive(Clone, Debug)]
pub(crate) struct Repository {
    name: String,
    store: Store,
    /// The listing kept in memory, shared by every clone.
    catalog: std::sync::Arc<crate::catalog::Catalog>,
}

impl Repository {
    /// Wraps a store as the repository called `name`.
    #[cfg(test)]
    pub(crate) fn new(name: impl Into<String>, store: Store) -> Self {
        Self::with_listing_refresh(name, store, std::time::Duration::from_secs(2))
    }

    /// As [`Repository::new`], with listings re-read from storage after `max_age`.
    pub(crate) fn with_listing_refresh(
        name: impl Into<String>,
        store: Store,
        max_age: std::time::Duration,
    ) -> Self {
        Self {
            name: name.into(),
            store,
            catalog: std::sync::Arc::new(crate::catalog::Catalog::new(max_age)),
        }
    }

    /// The in-memory listing.
    pub(crate) fn catalog(&self) -> &crate::catalog::Catalog {
        &self.catalog
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

    /// The backup whose folder holds a repository key (`backups/<name>/...`).
    pub(crate) fn backup_of_key(key: &str) -> Option<&str> {
        let (name, _) = key.strip_prefix(BACKUPS_DIR)?.split_once('/')?;
        (!name.is_empty()).then_some(name)
    }

    /// Key of the catalog entry of one backup.
    fn catalog_key(backup: &str, id: &str) -> String {
        format!("{CATALOG_DIR}{backup}/{id}.json")
    }

    /// Reads a small proto3-JSON object; `None` when absent.
    async fn read_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let Some(bytes) = self.store.read_small(key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Manifest {
                name: Self::backup_of_key(key).unwrap_or_default().to_owned(),
                message: format!("{key} is not valid: {e}"),
            })
    }

    async fn write_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(value)
            .map_err(|e| Error::internal("a repository marker could not be encoded", e))?;
        self.store.write_small(key, bytes).await
    }

    /// Records who writes a backup and since when, before its first file.
    pub(crate) async fn write_started(&self, backup: &str, start: &BackupStart) -> Result<()> {
        self.write_json(&format!("{}{STARTED}", Self::backup_dir(backup)), start)
            .await
    }

    /// The start record of a backup, when it has one.
    pub(crate) async fn read_started(&self, backup: &str) -> Result<Option<BackupStart>> {
        self.read_json(&format!("{}{STARTED}", Self::backup_dir(backup)))
            .await
    }

    /// Marks a deleted backup's folder as holding only files later backups reference.
    pub(crate) async fn write_retained(&self, backup: &str, r: &RetainedFiles) -> Result<()> {
        self.write_json(&format!("{}{RETAINED}", Self::backup_dir(backup)), r)
            .await
    }

    /// The retained-files marker of a folder, when it has one.
    pub(crate) async fn read_retained(&self, backup: &str) -> Result<Option<RetainedFiles>> {
        self.read_json(&format!("{}{RETAINED}", Self::backup_dir(backup)))
            .await
    }

    /// Writes the catalog entry of a complete backup (after its manifest).
    pub(crate) async fn write_catalog_entry(&self, manifest: &BackupManifest) -> Result<()> {
        let entry = catalog_entry(manifest);
        self.store
            .write_small(
                &Self::catalog_key(&manifest.name, &manifest.id),
                encode_manifest(&entry)?,
            )
            .await
    }

    /// Reads one catalog entry.
    pub(crate) async fn read_catalog_entry(
        &self,
        backup: &str,
        id: &str,
    ) -> Result<Option<BackupManifest>> {
        let Some(bytes) = self
            .store
            .read_small(&Self::catalog_key(backup, id))
            .await?
        else {
            return Ok(None);
        };
        decode_manifest(backup, &bytes).map(Some)
    }

    /// Removes every catalog entry of a backup name.
    pub(crate) async fn delete_catalog_entries(&self, backup: &str) -> Result<()> {
        self.store
            .delete_prefix(&format!("{CATALOG_DIR}{backup}/"))
            .await
    }

    /// Every catalog entry as (backup name, backup id), by one recursive listing.
    pub(crate) async fn catalog_ids(&self) -> Result<Vec<(String, String)>> {
        Ok(self
            .store
            .list_recursive(CATALOG_DIR)
            .await?
            .into_iter()
            .filter_map(|o| {
                let rest = o.key.strip_prefix(CATALOG_DIR)?;
                let (name, file) = rest.split_once('/')?;
                let id = file.strip_suffix(".json")?;
                (!name.is_empty() && !id.is_empty() && !id.contains('/'))
                    .then(|| (name.to_owned(), id.to_owned()))
            })
            .collect())
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
                view = complete_view(self.name(), &m);
                if with_manifest {
                    view.manifest = Some(m);
                }
            }
            Ok(None) => {
                let started = self.read_started(backup).await.ok().flatten();
                view = incomplete_view(self.name(), backup, in_progress, started.as_ref());
            }
            Err(e) => {
                tracing::warn!(backup, error = %e, "unreadable manifest; listing the backup as incomplete");
                view.state = BackupState::Incomplete as i32;
            }
        }
        Ok(view)
    }
}

/// The listing view of a complete backup, from its manifest or catalog entry.
pub(crate) fn complete_view(repository: &str, m: &BackupManifest) -> Backup {
    let source = m.source.clone().unwrap_or_default();
    Backup {
        name: m.name.clone(),
        repository: repository.to_owned(),
        state: BackupState::Complete as i32,
        create_time: m.start_time,
        milvus_version: source.milvus_version,
        summary: m.summary,
        manifest: None,
        base: m.base.clone(),
        cluster: source.cluster,
        age_seconds: 0,
        job_id: String::new(),
    }
}

/// The listing view of a backup without a manifest.
pub(crate) fn incomplete_view(
    repository: &str,
    backup: &str,
    in_progress: bool,
    started: Option<&BackupStart>,
) -> Backup {
    let state = if in_progress {
        BackupState::InProgress
    } else {
        BackupState::Incomplete
    };
    let mut view = Backup {
        name: backup.to_owned(),
        repository: repository.to_owned(),
        state: state as i32,
        ..Default::default()
    };
    if let Some(s) = started {
        view.create_time = s.start_time;
        view.cluster = s.cluster.clone();
        view.base = s.base.clone();
        view.job_id = s.job_id.clone();
        view.age_seconds = s.start_time.map(age_seconds).unwrap_or_default();
    }
    view
}

/// Whole seconds from `t` to now (0 for a time in the future).
pub(crate) fn age_seconds(t: pbjson_types::Timestamp) -> i64 {
    let now = crate::jobs::now();
    (now.seconds - t.seconds).max(0)
}

/// The manifest without what a listing does not need.
pub(crate) fn catalog_entry(m: &BackupManifest) -> BackupManifest {
    BackupManifest {
        collections: Vec::new(),
        databases: Vec::new(),
        rbac: None,
        ..m.clone()
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
    check_paths(&m)?;
    Ok(m)
}

/// Every file path of a manifest must be a plain key under `files/` of the backup's
/// own folder or of a backup it names in `references`: a damaged or hostile manifest
/// must not make a restore read (or a delete keep) anything else.
fn check_paths(m: &BackupManifest) -> Result<()> {
    let bad = |path: &str, why: &str| Error::Manifest {
        name: m.name.clone(),
        message: format!("file path {path:?} {why}"),
    };
    for f in manifest_files(m) {
        let path = f.path.as_str();
        if path.is_empty() || path.starts_with('/') || path.contains('\\') {
            return Err(bad(path, "is empty or absolute"));
        }
        if path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(bad(path, "has an empty, '.' or '..' component"));
        }
        let owner = Repository::backup_of_key(path)
            .ok_or_else(|| bad(path, "is not under backups/<name>/files/"))?;
        if !path[BACKUPS_DIR.len() + owner.len()..].starts_with("/files/") {
            return Err(bad(path, "is not under backups/<name>/files/"));
        }
        if owner != m.name && !m.references.iter().any(|r| r.name == owner) {
            return Err(bad(
                path,
                "points into a backup the manifest does not reference",
            ));
        }
        if f.referenced_from.is_empty() != (owner == m.name) {
            return Err(bad(
                path,
                "disagrees with the backup its referenced_from names",
            ));
        }
    }
    Ok(())
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

    fn with_path(path: &str, from: &str) -> BackupManifest {
        let mut m = sample();
        let f = &mut m.collections[0].segments[0].insert_logs[0];
        f.path = path.into();
        f.referenced_from = from.into();
        m
    }

    #[test]
    fn paths_outside_the_backup_and_its_references_are_refused() {
        for (path, from, want) in [
            ("/etc/passwd", "", "absolute"),
            ("backups/b1/files/../../x", "", "'..'"),
            ("backups/b1//files/x", "", "empty"),
            ("backups/b1/manifest.json", "", "not under"),
            ("elsewhere/x", "", "not under"),
            ("backups/b0/files/insert_log/1", "b0", "does not reference"),
            ("backups/b1/files/insert_log/1", "b0", "disagrees"),
        ] {
            let m = with_path(path, from);
            let err = decode_manifest("b1", &encode_manifest(&m).expect("encode")).expect_err(path);
            assert!(err.to_string().contains(want), "{path}: {err}");
        }
        let mut m = with_path("backups/b0/files/insert_log/1", "b0");
        m.references
            .push(milvault_proto::milvault::v1::BackupReference {
                name: "b0".into(),
                id: "x".into(),
            });
        decode_manifest("b1", &encode_manifest(&m).expect("encode")).expect("a referenced base");
    }
}
