//! Milvus 2.2.16 for real (Milvus C), beside 2.3.5 (A): 2.2 → 2.3, 2.3 → 2.2 and
//! 2.2 → 2.2 round trips row for row, with deletes made after the flush (2.2 keeps
//! them in memory for its sync period), rows still growing at backup time, and
//! re-inserted keys (2.2's import drops every row of a key in a delete log).

use milvault_sdk::pb;
use milvault_tests::fixtures::{Fixture, compare, seed};
use milvault_tests::harness::{TestEnv, TestServer, assert_succeeded, run_job, unique};
use milvault_tests::milvus_data::{DataClient, Field, dt};

fn fixture(name: &str) -> Fixture {
    Fixture {
        name: name.to_owned(),
        fields: vec![
            Field::new("pk", dt::INT64).primary(),
            Field::new("n", dt::INT32),
            Field::new("d", dt::DOUBLE),
            Field::new("s", dt::VARCHAR).param("max_length", 64),
            Field::new("j", dt::JSON),
            Field::new("v", dt::FLOAT_VECTOR).param("dim", 8),
        ],
        batches: vec![("_default".into(), 400), ("p1".into(), 300)],
        partitions: vec!["p1".into()],
        deletes: vec!["pk in [1, 2, 3, 401, 402]".into()],
        deleted: 5,
        indexes: vec![(
            "v".into(),
            "v_ivf".into(),
            vec![
                ("index_type".into(), "IVF_FLAT".into()),
                ("metric_type".into(), "L2".into()),
                ("params".into(), r#"{"nlist":8}"#.into()),
            ],
        )],
        shards: 1,
        load: true,
    }
}

/// Seeds `fx`, then re-inserts keys 10..19 (delete + insert, as 2.2 has no upsert) and
/// leaves 25 rows growing (no flush). Returns the rows the source serves.
async fn seed_with_upserts_and_growing(c: &DataClient, fx: &Fixture) -> anyhow::Result<usize> {
    seed(c, "default", fx, 7).await?;
    c.delete(
        "default",
        &fx.name,
        "pk in [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]",
    )
    .await?;
    c.insert("default", &fx.name, "_default", &fx.fields, 10, 10, 99)
        .await?;
    c.insert("default", &fx.name, "_default", &fx.fields, 1000, 25, 7)
        .await?;
    let served = c.dump("default", &fx.name).await?.len();
    assert_eq!(served, fx.expected_rows() + 25);
    Ok(served)
}

async fn backup(
    c: &milvault_sdk::Client,
    cluster: &str,
    coll: &str,
) -> anyhow::Result<(String, pb::BackupManifest)> {
    let name = unique("bk22");
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: name.clone(),
            cluster: cluster.into(),
            repository: "local".into(),
            collections: vec![coll.into()],
            include_rbac: false,
            ..Default::default()
        })
        .await?;
    let done = run_job(c, job).await?;
    assert_succeeded(&done);
    let m = c
        .get_backup(pb::GetBackupRequest {
            name: name.clone(),
            repository: "local".into(),
        })
        .await?
        .manifest
        .expect("manifest");
    Ok((name, m))
}

async fn restore(
    c: &milvault_sdk::Client,
    backup: &str,
    cluster: &str,
    suffix: &str,
) -> anyhow::Result<pb::Job> {
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: backup.into(),
            cluster: cluster.into(),
            repository: "local".into(),
            suffix: suffix.into(),
            ..Default::default()
        })
        .await?;
    let done = run_job(c, job).await?;
    assert_succeeded(&done);
    Ok(done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn milvus_2_2_backs_up_exactly_and_round_trips_with_2_3() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let cm = DataClient::connect(&env.c_addr).await?;
    let server = TestServer::start(&env).await?;
    let c = server.client().await?;

    // 2.2 → backup: exact although 2.2 buffers the deletes and the growing rows.
    let fx = fixture(&unique("from22"));
    let served = seed_with_upserts_and_growing(&cm, &fx).await?;
    let (name, m) = backup(&c, "c", &fx.name).await?;
    assert!(
        m.source
            .as_ref()
            .is_some_and(|s| s.milvus_version.contains("2.2.16"))
    );
    assert_eq!(
        m.collections[0].live_rows, served as i64,
        "{:?}",
        m.collections[0].row_check
    );

    // 2.2 → 2.3 and 2.2 → 2.2, row for row.
    restore(&c, &name, "a", "").await?;
    compare(&cm, "default", &fx.name, &a, "default", &fx.name, true).await?;
    restore(&c, &name, "c", "_r").await?;
    let back = format!("{}_r", fx.name);
    compare(&cm, "default", &fx.name, &cm, "default", &back, true).await?;

    // 2.3 → 2.2: keys upserted on 2.3 keep their newest row.
    let fx3 = fixture(&unique("from23"));
    let served3 = seed_with_upserts_and_growing(&a, &fx3).await?;
    a.upsert("default", &fx3.name, &fx3.fields, 100, 40, 1234)
        .await?;
    let (name3, m3) = backup(&c, "a", &fx3.name).await?;
    assert_eq!(m3.collections[0].live_rows, served3 as i64);
    restore(&c, &name3, "c", "").await?;
    compare(&a, "default", &fx3.name, &cm, "default", &fx3.name, true).await?;
    server.stop().await;
    Ok(())
}
