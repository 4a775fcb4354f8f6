//! Incremental backups against the real Milvus 2.3.5 (cluster `a`, local storage):
//! a second backup of unchanged collections copies no segment file and references
//! every one; after a compaction rewrote one collection's segments, only the new
//! segment files are copied and the untouched collection still points at the first
//! backup's copies; restore, deep verify and export of the incremental backup are
//! row-exact after both bases were deleted, and the deleted bases keep exactly the
//! files a later backup references.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Result, ensure};
use milvault_sdk::{Client, pb};
use milvault_tests::compaction::compact;
use milvault_tests::fixtures::{Fixture, compare, seed};
use milvault_tests::harness::{
    TestEnv, TestServer, assert_succeeded, cli, files_under, run_job, unique,
};
use milvault_tests::milvus_data::{DataClient, Field, dt};

/// `batches` flushed segments of `rows` rows (INT64 key, 32-d vectors), deletes in
/// the first segments, a FLAT index.
fn fixture(name: &str, batches: usize, rows: usize, deletes: usize) -> Fixture {
    Fixture {
        name: name.to_owned(),
        fields: vec![
            Field::new("pk", dt::INT64).primary(),
            Field::new("n", dt::INT32),
            Field::new("v", dt::FLOAT_VECTOR).param("dim", 32),
        ],
        batches: vec![("_default".into(), rows); batches],
        partitions: vec![],
        deletes: if deletes > 0 {
            vec![format!(
                "pk in [{}]",
                (0..deletes)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            )]
        } else {
            Vec::new()
        },
        deleted: deletes,
        indexes: vec![(
            "v".into(),
            "v_flat".into(),
            vec![
                ("index_type".into(), "FLAT".into()),
                ("metric_type".into(), "L2".into()),
            ],
        )],
        shards: 1,
        load: false,
    }
}

async fn backup(c: &Client, name: &str, collections: &[String], base: &str) -> Result<pb::Job> {
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: name.to_owned(),
            cluster: "a".into(),
            repository: "local".into(),
            collections: collections.to_vec(),
            base: base.to_owned(),
            ..Default::default()
        })
        .await?;
    run_job(c, job).await
}

async fn get(c: &Client, name: &str) -> Result<(pb::BackupManifest, pb::BackupSummary)> {
    let got = c
        .get_backup(pb::GetBackupRequest {
            name: name.to_owned(),
            repository: "local".into(),
        })
        .await?;
    Ok((
        got.manifest.unwrap_or_default(),
        got.summary.unwrap_or_default(),
    ))
}

/// Every segment file of a manifest: (collection, segment, path) -> referenced_from.
fn files(m: &pb::BackupManifest) -> BTreeMap<(String, i64, String), pb::BackupFile> {
    let mut out = BTreeMap::new();
    for c in &m.collections {
        for s in &c.segments {
            for f in s
                .insert_logs
                .iter()
                .chain(&s.delta_logs)
                .chain(&s.stats_logs)
            {
                out.insert((c.name.clone(), s.segment_id, f.path.clone()), f.clone());
            }
        }
    }
    out
}

fn segment_ids(m: &pb::BackupManifest, collection: &str) -> BTreeSet<i64> {
    m.collections
        .iter()
        .filter(|c| c.name == collection)
        .flat_map(|c| c.segments.iter().map(|s| s.segment_id))
        .collect()
}

fn folder_files(dir: &Path) -> BTreeSet<String> {
    files_under(dir)
        .iter()
        .filter_map(|p| p.strip_prefix(dir).ok())
        .map(|p| p.display().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn incremental_backups_copy_only_what_changed_and_restore_exactly() -> Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let still = unique("inc_still");
    let churn = unique("inc_churn");
    let fx_still = fixture(&still, 2, 2_000, 0);
    // Four small segments with deletes: a manual compaction merges them.
    let fx_churn = fixture(&churn, 4, 500, 300);
    seed(&a, "default", &fx_still, 1).await?;
    seed(&a, "default", &fx_churn, 2).await?;
    let colls = vec![still.clone(), churn.clone()];

    let server = TestServer::start(&env).await?;
    let c = server.client().await?;
    let (b1, b2, b3) = (unique("inc_full"), unique("inc_same"), unique("inc_comp"));

    // 1. Full backup: everything copied, nothing referenced.
    assert_succeeded(&backup(&c, &b1, &colls, "").await?);
    let (m1, s1) = get(&c, &b1).await?;
    ensure!(m1.base.is_empty() && m1.references.is_empty(), "{m1:?}");
    ensure!(s1.referenced_files == 0 && s1.copied_files > 0, "{s1:?}");
    let f1 = files(&m1);
    ensure!(
        f1.values().all(|f| f.referenced_from.is_empty()),
        "a full backup references nothing"
    );

    // 2. Unchanged data, `--base` by name: no segment file copied, all referenced.
    assert_succeeded(&backup(&c, &b2, &colls, &b1).await?);
    let (m2, s2) = get(&c, &b2).await?;
    assert_eq!(m2.base, b1);
    assert_eq!(
        m2.references
            .iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>(),
        vec![b1.clone()]
    );
    let f2 = files(&m2);
    assert_eq!(
        f2.keys().collect::<Vec<_>>(),
        f1.keys().collect::<Vec<_>>(),
        "the same segment files"
    );
    for (k, f) in &f2 {
        assert_eq!(
            f.referenced_from, b1,
            "{k:?} should be referenced from the base"
        );
        assert_eq!(f.sha256, f1[k].sha256, "{k:?}");
    }
    assert_eq!(s2.copied_files, 0, "{s2:?}");
    assert_eq!(s2.referenced_files, f1.len() as u64);
    let total: u64 = f1.values().map(|f| f.size_bytes).sum();
    assert_eq!(s2.referenced_bytes, total);
    assert!(
        s2.copied_bytes * 100 < total,
        "copied {} of {total}",
        s2.copied_bytes
    );
    // Counts were taken over from the base, and they are the same.
    for c2 in &m2.collections {
        let c1 = m1.collections.iter().find(|c| c.name == c2.name);
        assert_eq!(Some(c2.live_rows), c1.map(|c| c.live_rows), "{}", c2.name);
        assert!(c2.rows_counted, "{}", c2.name);
    }
    // Nothing of the second backup's folder is a segment file.
    let b2_dir = folder_files(&server.repo_dir.join("backups").join(&b2));
    ensure!(
        !b2_dir
            .iter()
            .any(|p| p.contains("insert_log") || p.contains("binlog")),
        "an incremental backup of unchanged data copied segment files: {b2_dir:?}"
    );

    // The CLI shows what was copied and what referenced.
    let out = cli(
        &server.endpoint,
        &["backup", "get", &b2, "--repository", "local"],
    )
    .await?;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        text.contains("increment") && text.contains(&format!("{} files", f1.len())),
        "{text}"
    );

    // 3. Compaction rewrites the churned collection; `--base latest` (= b2).
    let id = a.describe("default", &churn).await?.collection_id;
    // (2.3.5 leaves the plan count of its answer at 0; the segments below tell.)
    compact(&env.a_addr, id).await?;
    assert_succeeded(&backup(&c, &b3, &colls, "latest").await?);
    let (m3, s3) = get(&c, &b3).await?;
    assert_eq!(m3.base, b2, "latest is the newest complete backup");
    let old = segment_ids(&m2, &churn);
    let new = segment_ids(&m3, &churn);
    ensure!(old != new, "compaction changed no segment: {old:?}");
    let f3 = files(&m3);
    let mut copied = 0u64;
    for ((coll, seg, path), f) in &f3 {
        let fresh = *coll == churn && !old.contains(seg);
        if fresh {
            assert!(f.referenced_from.is_empty(), "{path}: a new file is copied");
            copied += 1;
        } else {
            // Referenced from the folder holding the bytes (b1), not the chain's b2.
            assert_eq!(f.referenced_from, b1, "{coll}/{seg}/{path}");
        }
    }
    ensure!(copied > 0, "no new segment file after the compaction");
    assert_eq!(
        s3.copied_files, copied,
        "only the new segment files are copied"
    );
    assert_eq!(s3.referenced_files, f3.len() as u64 - copied);
    ensure!(
        m3.references.iter().any(|r| r.name == b1),
        "{:?}",
        m3.references
    );

    // 4. Delete both bases: b3 still restores. The deleted bases are gone from the
    // listing; b1's folder keeps exactly the files b3 references.
    for name in [&b1, &b2] {
        let job = c
            .delete_backup(pb::DeleteBackupRequest {
                name: name.to_string(),
                repository: "local".into(),
            })
            .await?;
        assert_succeeded(&run_job(&c, job).await?);
    }
    let listed = c
        .list_backups(pb::ListBackupsRequest {
            repository: "local".into(),
            ..Default::default()
        })
        .await?;
    let names: Vec<_> = listed.iter().map(|b| b.name.clone()).collect();
    ensure!(
        names.contains(&b3) && !names.contains(&b1) && !names.contains(&b2),
        "{names:?}"
    );
    let kept: BTreeSet<String> = f3
        .values()
        .filter(|f| f.referenced_from == b1)
        .map(|f| f.path.clone())
        .collect();
    let b1_dir = server.repo_dir.join("backups").join(&b1);
    let left = folder_files(&b1_dir);
    for p in &kept {
        ensure!(
            left.iter()
                .any(|l| p.ends_with(l.as_str()) || l.ends_with(p.as_str())),
            "{p} was deleted with its base; left: {left:?}"
        );
    }
    let segment_files_left = left.iter().filter(|l| l.contains("log")).count();
    assert_eq!(
        segment_files_left,
        kept.len(),
        "the base keeps exactly the referenced files: {left:?}"
    );
    ensure!(
        !server.repo_dir.join("backups").join(&b2).exists()
            || folder_files(&server.repo_dir.join("backups").join(&b2)).is_empty(),
        "b2 referenced everything, so nothing of it stays"
    );

    // Deep verify of b3 reads through the references.
    let job = c
        .verify_backup(pb::VerifyBackupRequest {
            name: b3.clone(),
            repository: "local".into(),
            deep: true,
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    let report = done.report.unwrap_or_default();
    for coll in &report.collections {
        let want = m3
            .collections
            .iter()
            .find(|m| m.name == coll.collection)
            .map(|m| m.live_rows);
        assert_eq!(Some(coll.rows), want, "{}", coll.collection);
    }

    // Restore under a suffix: row for row equal to the source.
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: b3.clone(),
            repository: "local".into(),
            cluster: "a".into(),
            suffix: "_r".into(),
            ..Default::default()
        })
        .await?;
    assert_succeeded(&run_job(&c, job).await?);
    for name in &colls {
        compare(
            &a,
            "default",
            name,
            &a,
            "default",
            &format!("{name}_r"),
            false,
        )
        .await?;
    }
    assert_eq!(
        a.rows_json("default", &format!("{churn}_r")).await?.len(),
        fx_churn.expected_rows()
    );

    // Export through the references: every row of both collections.
    let out = tempfile::tempdir()?;
    let job = c
        .export_backup(pb::ExportBackupRequest {
            name: b3.clone(),
            repository: "local".into(),
            collections: colls.clone(),
            destination: out.path().display().to_string(),
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    let rows: i64 = done
        .report
        .unwrap_or_default()
        .collections
        .iter()
        .map(|c| c.rows)
        .sum();
    assert_eq!(
        rows as usize,
        fx_still.expected_rows() + fx_churn.expected_rows()
    );

    // 5. A file of the chain lost by hand: the next increment copies it again from
    // the source (with a warning) instead of pointing at bytes that are gone.
    let lost = f3
        .values()
        .find(|f| f.referenced_from == b1)
        .map(|f| f.path.clone())
        .expect("b3 references b1");
    std::fs::remove_file(server.repo_dir.join(&lost))?;
    let b4 = unique("inc_heal");
    let done = backup(&c, &b4, &colls, &b3).await?;
    assert_succeeded(&done);
    ensure!(
        done.warnings
            .iter()
            .any(|w| w.contains("missing") && w.contains(&lost)),
        "{:?}",
        done.warnings
    );
    let (m4, s4) = get(&c, &b4).await?;
    assert_eq!(s4.copied_files, 1, "only the lost file is copied: {s4:?}");
    let again = files(&m4)
        .into_values()
        .find(|f| {
            f.source_key
                == f3
                    .values()
                    .find(|g| g.path == lost)
                    .map(|g| g.source_key.clone())
                    .unwrap_or_default()
        })
        .expect("the lost file's source is in b4");
    assert!(again.referenced_from.is_empty(), "{again:?}");
    let job = c
        .verify_backup(pb::VerifyBackupRequest {
            name: b4.clone(),
            repository: "local".into(),
            deep: false,
        })
        .await?;
    assert_succeeded(&run_job(&c, job).await?);

    for name in &colls {
        a.drop_collection_if_exists("default", name).await?;
        a.drop_collection_if_exists("default", &format!("{name}_r"))
            .await?;
    }
    server.stop().await;
    Ok(())
}
