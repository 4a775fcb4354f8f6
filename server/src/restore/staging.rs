//! Where a restore puts backup files in the target cluster's storage so that Milvus
//! can import them: the staging layout, next to the repository layout.
//!
//! ```text
//! <cluster storage root>/<staging_prefix>/<job id>/<group>/
//!     insert_log/<collection>/<partition>/<group>/<segment>/<field>/<log>
//!     delta_log/<collection>/<partition>/<group>/<segment>/<log>
//! ```
//! One group is one import: a batch of segments of one partition (its first segment's
//! id names it), or a single segment. The import is given the two group directories,
//! whose children are segment directories: that form is read the same way by Milvus
//! 2.2 through 2.6 (2.2/2.3 list it recursively and take the segment id from each
//! key; 2.4+ takes each child as one segment), so one import carries many segments.
//! The prefix is never Milvus's own `insert_log/` etc. (its GC would collect unknown
//! files there). Local storage needs absolute paths, object storage bucket keys.

use milvault_proto::milvault::v1::{BackupFile, SegmentBackup};

use crate::app::Cluster;

/// The staging area of one restore job.
#[derive(Clone, Debug)]
pub(crate) struct Staging {
    /// `<staging_prefix>/<job id>/`, relative to the cluster's storage root.
    root: String,
    /// The cluster's storage root (absolute on local storage, a bucket prefix on S3).
    storage_root: String,
}

/// Where one import's segments are staged.
#[derive(Clone, Debug)]
pub(crate) struct StagedGroup {
    /// `<root><group>/`: everything of the import, removed after it.
    pub(crate) dir: String,
    /// The insert-log group directory (store key).
    pub(crate) insert_dir: String,
    /// The delta-log group directory (store key).
    pub(crate) delta_dir: String,
}

impl Staging {
    /// The staging area of job `job_id` in `cluster`.
    pub(crate) fn for_job(cluster: &Cluster, job_id: &str) -> Self {
        Self {
            root: format!(
                "{}/{}/",
                cluster.config.staging_prefix.trim_matches('/'),
                job_id
            ),
            storage_root: cluster.config.storage.root(),
        }
    }

    /// The staging area under `root` (a resumed restore keeps the one of the run it
    /// continues).
    pub(crate) fn at(cluster: &Cluster, root: &str) -> Self {
        Self {
            root: format!("{}/", root.trim_end_matches('/')),
            storage_root: cluster.config.storage.root(),
        }
    }

    /// The job's whole staging prefix (store key).
    pub(crate) fn root(&self) -> &str {
        &self.root
    }

    /// Where segment `seg` of collection `collection_id` is staged alone.
    pub(crate) fn segment(&self, collection_id: i64, seg: &SegmentBackup) -> StagedGroup {
        self.group(collection_id, seg.partition_id, seg.segment_id)
    }

    /// Where the segments of one import into partition `partition_id` are staged;
    /// `group` (the first segment's id) names it within the job.
    pub(crate) fn group(&self, collection_id: i64, partition_id: i64, group: i64) -> StagedGroup {
        let dir = format!("{}{group}/", self.root);
        let tail = format!("{collection_id}/{partition_id}/{group}/");
        StagedGroup {
            insert_dir: format!("{dir}insert_log/{tail}"),
            delta_dir: format!("{dir}delta_log/{tail}"),
            dir,
        }
    }

    /// The path Milvus is given for a staged directory.
    pub(crate) fn import_path(&self, dir: &str) -> String {
        if self.storage_root.is_empty() {
            dir.to_owned()
        } else {
            format!("{}/{dir}", self.storage_root)
        }
    }
}

impl StagedGroup {
    /// The staged key of one of the segment's insert (`delta = false`) or delta logs:
    /// its source key `kind/c/p/s/rest` becomes `<group dir><s>/rest`.
    pub(crate) fn key_of(&self, seg: &SegmentBackup, file: &BackupFile, delta: bool) -> String {
        let (kind, dir) = if delta {
            ("delta_log/", &self.delta_dir)
        } else {
            ("insert_log/", &self.insert_dir)
        };
        let rest = file
            .source_key
            .strip_prefix(kind)
            .and_then(|r| r.splitn(4, '/').nth(3))
            .unwrap_or("");
        format!("{dir}{}/{rest}", seg.segment_id)
    }

    /// The two directories an import is given, as Milvus reads them.
    pub(crate) fn import_paths(&self, staging: &Staging) -> Vec<String> {
        vec![
            staging.import_path(&self.insert_dir),
            staging.import_path(&self.delta_dir),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn cluster(scheme: &str, root: &str) -> Cluster {
        let config = Config::from_toml(&format!(
            "[clusters.c]\naddress = \"http://x:1\"\nstorage = {{ scheme = \"{scheme}\", root = \"{root}\", bucket = \"b\", region = \"r\" }}"
        ))
        .expect("config");
        let config = config.clusters["c"].clone();
        Cluster {
            name: "c".into(),
            store: crate::storage::Store::new("c", &config.storage).expect("store"),
            config,
        }
    }

    #[test]
    fn layout_keys_and_import_paths() {
        let seg = SegmentBackup {
            segment_id: 7,
            partition_id: 3,
            ..Default::default()
        };
        let st = Staging::for_job(&cluster("fs", "/data/milvus/"), "job1");
        let s = st.segment(9, &seg);
        assert_eq!(s.insert_dir, "milvault-staging/job1/7/insert_log/9/3/7/");
        // A batch: segments 7 and 8 under group 7, each its own child directory.
        let b = st.group(9, 3, 7);
        let eight = SegmentBackup {
            segment_id: 8,
            partition_id: 3,
            ..Default::default()
        };
        let f8 = BackupFile {
            source_key: "insert_log/9/3/8/101/60".into(),
            ..Default::default()
        };
        assert_eq!(
            b.key_of(&eight, &f8, false),
            "milvault-staging/job1/7/insert_log/9/3/7/8/101/60"
        );
        let f = BackupFile {
            source_key: "insert_log/9/3/7/101/55".into(),
            ..Default::default()
        };
        assert_eq!(
            s.key_of(&seg, &f, false),
            "milvault-staging/job1/7/insert_log/9/3/7/7/101/55"
        );
        let d = BackupFile {
            source_key: "delta_log/9/3/7/56".into(),
            ..Default::default()
        };
        assert_eq!(
            s.key_of(&seg, &d, true),
            "milvault-staging/job1/7/delta_log/9/3/7/7/56"
        );
        assert_eq!(
            s.import_paths(&st)[0],
            "/data/milvus/milvault-staging/job1/7/insert_log/9/3/7/"
        );
        let s3 = Staging::for_job(&cluster("s3", "/files/"), "j");
        assert_eq!(
            s3.import_path("milvault-staging/j/1/delta_log/"),
            "files/milvault-staging/j/1/delta_log/"
        );
    }
}
