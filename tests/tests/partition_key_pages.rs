//! A partition-key collection larger than one page of the row copy (4,000 rows) is
//! restored into Milvus 2.3 completely: the copy pages by primary key, and every row
//! comes back with its values.

use milvault_sdk::pb;
use milvault_tests::fixtures::compare;
use milvault_tests::harness::{TestEnv, TestServer, assert_succeeded, run_job, unique};
use milvault_tests::milvus_data::{CollOpts, DataClient, Field, dt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_key_rows_are_copied_across_pages() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let b = DataClient::connect(&env.b_addr).await?;
    let name = unique("pkpages");
    let fields = vec![
        Field::new("pk", dt::VARCHAR)
            .primary()
            .param("max_length", 32),
        Field::new("tenant", dt::INT64).partition_key(),
        Field::new("v", dt::FLOAT_VECTOR).param("dim", 8),
    ];
    let opts = CollOpts {
        shards: 2,
        num_partitions: 8,
        ..Default::default()
    };
    a.create_collection_with("default", &name, &fields, &opts)
        .await?;
    for start in [0i64, 5000, 10000] {
        a.insert("default", &name, "", &fields, start, 3000, 21)
            .await?;
        a.flush("default", &name).await?;
    }
    a.create_index(
        "default",
        &name,
        "v",
        "v_flat",
        &[("index_type", "FLAT"), ("metric_type", "L2")],
    )
    .await?;
    a.load("default", &name).await?;
    a.delete("default", &name, r#"pk in ["key-000001", "key-005001"]"#)
        .await?;
    a.flush("default", &name).await?;

    let server = TestServer::start(&env).await?;
    let c = server.client().await?;
    let backup = unique("bkpk");
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: backup.clone(),
            cluster: "a".into(),
            repository: "local".into(),
            collections: vec![name.clone()],
            include_rbac: false,
            ..Default::default()
        })
        .await?;
    assert_succeeded(&run_job(&c, job).await?);
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup,
            cluster: "b".into(),
            repository: "local".into(),
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    let report = done.report.expect("report");
    assert_eq!(
        report.collections[0].method,
        pb::RestoreMethod::RowInsert as i32
    );
    assert_eq!(report.collections[0].rows, 8998);
    compare(&a, "default", &name, &b, "default", &name, true).await?;
    assert_eq!(b.dump("default", &name).await?.len(), 8998);
    server.stop().await;
    Ok(())
}
