//! Incremental backups: what a new backup can take from a base instead of copying.
//!
//! Milvus never rewrites a sealed segment's files: compaction writes new files under
//! new log ids and retires the old ones. So a file whose source key, size and store
//! fingerprint (ETag, or modification time where the store keeps no checksum) equal
//! those a complete base backup recorded holds the bytes the base copied, and the new
//! manifest can point at the base's copy. The base's own references are followed, so
//! a chain of incremental backups always points at the folder holding the bytes, and
//! the manifest names every such folder in `references` (checked on read, and kept by
//! deletes).
//!
//! Rows need not be counted again either when a collection's files are exactly the
//! base's: its counts are taken over, they describe the same bytes.

use std::collections::{BTreeMap, BTreeSet};

use milvault_proto::milvault::v1::{BackupFile, BackupManifest, BackupReference, CollectionBackup};

use crate::error::{Error, Result};
use crate::repository::{Repository, manifest_files, segment_files};
use crate::rows::count::{CollectionRows, SegmentRows};

/// The request value meaning "the newest complete backup of the same cluster".
pub(crate) const LATEST: &str = "latest";

/// A complete backup a new backup is incremental against.
#[derive(Debug)]
pub(crate) struct Base {
    /// The base's manifest.
    manifest: BackupManifest,
    /// Its files by source key.
    files: BTreeMap<String, BackupFile>,
    /// Ids of every backup whose folder holds one of its files, by name.
    holders: BTreeMap<String, String>,
}

impl Base {
    /// Indexes a base's manifest.
    pub(crate) fn new(manifest: BackupManifest) -> Self {
        let mut holders: BTreeMap<String, String> = manifest
            .references
            .iter()
            .map(|r| (r.name.clone(), r.id.clone()))
            .collect();
        holders.insert(manifest.name.clone(), manifest.id.clone());
        let files = manifest_files(&manifest)
            .map(|f| (f.source_key.clone(), f.clone()))
            .collect();
        Self {
            manifest,
            files,
            holders,
        }
    }

    /// Forgets the base's files the repository no longer holds as recorded (removed
    /// or cut short by hand, a lost object): the new backup copies them again from
    /// the source instead of pointing at bytes that are gone. One listing per folder
    /// holding the base's bytes; returns the paths forgotten.
    pub(crate) async fn keep_present(&mut self, repository: &Repository) -> Result<Vec<String>> {
        let mut present: BTreeMap<String, u64> = BTreeMap::new();
        for holder in self.holders.keys() {
            for o in repository
                .store()
                .list_recursive(&Repository::backup_dir(holder))
                .await?
            {
                present.insert(o.key, o.size);
            }
        }
        let mut gone = Vec::new();
        self.files.retain(|_, f| {
            let kept = present.get(&f.path) == Some(&f.size_bytes);
            if !kept {
                gone.push(f.path.clone());
            }
            kept
        });
        Ok(gone)
    }

    /// The base's name.
    pub(crate) fn name(&self) -> &str {
        &self.manifest.name
    }

    /// Names of every backup whose folder holds bytes the base points at: a job
    /// referencing them must keep them from being deleted while it runs.
    pub(crate) fn holders(&self) -> impl Iterator<Item = &str> {
        self.holders.keys().map(String::as_str)
    }

    /// The base's copy of a source file, when it holds the same bytes: same key, same
    /// size, and the same non-empty fingerprint.
    pub(crate) fn same_file(
        &self,
        source_key: &str,
        size: u64,
        fingerprint: &str,
    ) -> Option<&BackupFile> {
        let f = self.files.get(source_key)?;
        (!fingerprint.is_empty()
            && f.source_fingerprint == fingerprint
            && f.size_bytes == size
            && !f.sha256.is_empty())
        .then_some(f)
    }

    /// A file entry of the new backup pointing at the base's copy.
    pub(crate) fn reference(&self, found: &BackupFile) -> Result<BackupFile> {
        let holder = Repository::backup_of_key(&found.path).ok_or_else(|| Error::Manifest {
            name: self.manifest.name.clone(),
            message: format!("file path {:?} is not under backups/", found.path),
        })?;
        Ok(BackupFile {
            referenced_from: holder.to_owned(),
            ..found.clone()
        })
    }

    /// The `references` of a manifest whose files are `files`: every other backup
    /// whose folder holds one of them, with its id.
    pub(crate) fn references<'a>(
        &self,
        files: impl Iterator<Item = &'a BackupFile>,
    ) -> Vec<BackupReference> {
        let names: BTreeSet<&str> = files
            .filter(|f| !f.referenced_from.is_empty())
            .map(|f| f.referenced_from.as_str())
            .collect();
        names
            .into_iter()
            .map(|name| BackupReference {
                name: name.to_owned(),
                id: self.holders.get(name).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// The base's counted rows of a collection whose files are exactly the base's
    /// files of the same collection; `None` when anything differs.
    pub(crate) fn same_rows(&self, c: &CollectionBackup) -> Option<CollectionRows> {
        let old = self.manifest.collections.iter().find(|o| {
            o.collection_id == c.collection_id && o.database == c.database && o.name == c.name
        })?;
        if !old.rows_counted {
            return None;
        }
        let keys = |c: &CollectionBackup| -> BTreeSet<(i64, String)> {
            c.segments
                .iter()
                .flat_map(|s| segment_files(s).map(move |f| (s.segment_id, f.source_key.clone())))
                .collect()
        };
        if keys(old) != keys(c) || old.segments.len() != c.segments.len() {
            return None;
        }
        let by_id: BTreeMap<i64, SegmentRows> = old
            .segments
            .iter()
            .map(|s| {
                (
                    s.segment_id,
                    SegmentRows {
                        inserted: s.inserted_rows,
                        live: s.live_rows,
                    },
                )
            })
            .collect();
        let segments = c
            .segments
            .iter()
            .map(|s| by_id.get(&s.segment_id).copied())
            .collect::<Option<Vec<_>>>()?;
        Some(CollectionRows {
            segments,
            partitions: old
                .partitions
                .iter()
                .map(|p| (p.partition_id, p.live_rows))
                .collect(),
            inserted: old.segments.iter().map(|s| s.inserted_rows).sum(),
            live: old.live_rows,
        })
    }
}

/// Picks the newest complete backup of `cluster` among `manifests` (by start time,
/// then name).
pub(crate) fn latest_of<'a>(
    manifests: impl Iterator<Item = &'a BackupManifest>,
    cluster: &str,
) -> Option<&'a BackupManifest> {
    manifests
        .filter(|m| m.source.as_ref().is_some_and(|s| s.cluster == cluster))
        .max_by_key(|m| {
            let t = m.start_time.unwrap_or_default();
            (t.seconds, t.nanos, m.name.clone())
        })
}

#[cfg(test)]
mod tests {
    use milvault_proto::milvault::v1::{SegmentBackup, SourceInfo};

    use super::*;

    fn file(path: &str, key: &str, fp: &str) -> BackupFile {
        BackupFile {
            path: path.into(),
            source_key: key.into(),
            size_bytes: 10,
            sha256: "aa".into(),
            source_fingerprint: fp.into(),
            referenced_from: String::new(),
            ..Default::default()
        }
    }

    fn base() -> Base {
        let mut old = file("backups/a/files/k2", "k2", "e2");
        old.referenced_from = "a".into();
        Base::new(BackupManifest {
            name: "b".into(),
            id: "id-b".into(),
            references: vec![BackupReference {
                name: "a".into(),
                id: "id-a".into(),
            }],
            collections: vec![CollectionBackup {
                segments: vec![SegmentBackup {
                    insert_logs: vec![file("backups/b/files/k1", "k1", "e1"), old],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    #[test]
    fn only_the_same_key_size_and_fingerprint_is_referenced() {
        let b = base();
        assert!(b.same_file("k1", 10, "e1").is_some());
        assert!(b.same_file("k1", 11, "e1").is_none(), "size differs");
        assert!(
            b.same_file("k1", 10, "other").is_none(),
            "fingerprint differs"
        );
        assert!(
            b.same_file("k1", 10, "").is_none(),
            "no fingerprint, no reference"
        );
        assert!(b.same_file("k3", 10, "e1").is_none(), "unknown key");
    }

    #[test]
    fn references_point_at_the_folder_holding_the_bytes() {
        let b = base();
        let r1 = b
            .reference(b.same_file("k1", 10, "e1").expect("k1"))
            .expect("ref");
        let r2 = b
            .reference(b.same_file("k2", 10, "e2").expect("k2"))
            .expect("ref");
        assert_eq!(r1.referenced_from, "b");
        assert_eq!(
            r2.referenced_from, "a",
            "a chain points at the original copy"
        );
        let own = file("backups/c/files/k9", "k9", "e9");
        let refs = b.references([&r1, &r2, &own].into_iter());
        assert_eq!(
            refs,
            vec![
                BackupReference {
                    name: "a".into(),
                    id: "id-a".into()
                },
                BackupReference {
                    name: "b".into(),
                    id: "id-b".into()
                },
            ]
        );
        assert_eq!(b.holders().collect::<Vec<_>>(), vec!["a", "b"]);
    }

    #[test]
    fn latest_is_the_newest_of_the_same_cluster() {
        let m = |name: &str, cluster: &str, secs: i64| BackupManifest {
            name: name.into(),
            source: Some(SourceInfo {
                cluster: cluster.into(),
                ..Default::default()
            }),
            start_time: Some(pbjson_types::Timestamp {
                seconds: secs,
                nanos: 0,
            }),
            ..Default::default()
        };
        let all = [m("old", "x", 1), m("new", "x", 5), m("other", "y", 9)];
        assert_eq!(
            latest_of(all.iter(), "x").map(|m| m.name.as_str()),
            Some("new")
        );
        assert!(latest_of(all.iter(), "z").is_none());
    }
}
