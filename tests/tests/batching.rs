//! Restore imports in batches, against the behaving fake Milvus of every version
//! (which reads the staged group directories the way that version lists them): one
//! import per partition by default, more when `[restore] import_batch_segments`
//! bounds them, and the rows exact either way (deletes folded on 2.2, per segment
//! on 2.3+).

use milvault_sdk::pb;
use milvault_tests::fake_milvus::{CollectionSpec, FakeMilvus, SegmentSpec};
use milvault_tests::harness::{Minimal, MinimalCluster, TestServer, assert_succeeded, run_job};

/// A served fake of `version` whose `c1` holds five segments in `p1` and two in
/// `_default`, each of 10 rows with one deleted (and one key re-inserted later, so
/// 2.2's key-only delete rule matters).
async fn fake(version: &str) -> anyhow::Result<FakeMilvus> {
    let fake = FakeMilvus::new(version);
    fake.serve().await?;
    fake.serve_management().await?;
    let mut spec = CollectionSpec::new("c1");
    spec.partitions = vec!["_default".into(), "p1".into()];
    fake.add_collection(spec)?;
    for (n, partition) in (0..7).zip(["p1", "p1", "p1", "p1", "p1", "_default", "_default"]) {
        let rows: Vec<(i64, u64)> = (0..10).map(|i| (n * 100 + i, 1000 + i as u64)).collect();
        fake.add_segment(
            "c1",
            partition,
            SegmentSpec::ints(&rows).with_deletes(&[(n * 100 + 3, 2000)]),
        )
        .await?;
    }
    Ok(fake)
}

async fn restored(fake: &FakeMilvus, server_extra: &str) -> anyhow::Result<pb::CollectionReport> {
    let config = Minimal {
        clusters: vec![MinimalCluster {
            name: "fake".into(),
            address: fake.grpc_url().expect("served"),
            management: fake.management_url(),
            root: fake.root().to_path_buf(),
            extra: String::new(),
        }],
        server_extra: server_extra.into(),
    };
    let server = TestServer::start_minimal(&config, vec![]).await?;
    let c = server.client().await?;
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: "b1".into(),
            ..Default::default()
        })
        .await?;
    assert_succeeded(&run_job(&c, job).await?);
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: "b1".into(),
            suffix: "_r".into(),
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    server.stop().await;
    Ok(done.report.expect("report").collections[0].clone())
}

fn imports_into(fake: &FakeMilvus, collection: &str) -> usize {
    fake.recorded()
        .imports
        .iter()
        .filter(|r| r.collection_name == collection)
        .count()
}

#[tokio::test]
async fn one_import_per_partition_and_exact_rows_on_every_version() -> anyhow::Result<()> {
    for version in ["v2.2.16", "v2.3.5", "v2.4.10", "v2.5.10", "v2.6.8"] {
        let fake = fake(version).await?;
        let report = restored(&fake, "").await?;
        assert_eq!(report.import_tasks, 2, "{version}: {report:?}");
        assert_eq!(imports_into(&fake, "c1_r"), 2, "{version}");
        assert_eq!(fake.live_rows("c1_r"), Some(7 * 9), "{version}");
        assert_eq!(
            fake.live_rows_by_partition("c1_r"),
            fake.live_rows_by_partition("c1"),
            "{version}"
        );
        assert_eq!(report.rows, 7 * 9, "{version}");
    }
    Ok(())
}

#[tokio::test]
async fn batches_respect_the_configured_segment_bound() -> anyhow::Result<()> {
    for version in ["v2.3.5", "v2.4.10"] {
        let fake = fake(version).await?;
        let report = restored(&fake, "[restore]\nimport_batch_segments = 2\n").await?;
        // p1: 2 + 2 + 1, _default: 2.
        assert_eq!(report.import_tasks, 4, "{version}: {report:?}");
        assert_eq!(imports_into(&fake, "c1_r"), 4, "{version}");
        assert_eq!(fake.live_rows("c1_r"), Some(7 * 9), "{version}");
        // Bytes bound the batches too: a tiny first batch, growing from there.
        let fake = self::fake(version).await?;
        let report = restored(
            &fake,
            "[restore]\nimport_first_batch_bytes = 1\nimport_batch_bytes = 1\n",
        )
        .await?;
        assert_eq!(report.import_tasks, 7, "{version}: {report:?}");
        assert_eq!(fake.live_rows("c1_r"), Some(7 * 9), "{version}");
    }
    Ok(())
}
