//! Issue 4: a whole Milvus 2.3.5 deployment survives backup and restore — databases,
//! complete schemas, settings, partitions, indexes, aliases, load state, data with
//! upserts/deletes/growing rows, partition keys, and users/roles/grants — into another
//! Milvus, and into the same one under mapped databases. What cannot come back exactly
//! is named in the job report.

use milvault_sdk::pb;
use milvault_tests::complete;
use milvault_tests::fixtures::compare;
use milvault_tests::harness::{TestEnv, TestServer, assert_succeeded, run_job, unique};
use milvault_tests::milvus_data::DataClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_whole_deployment_round_trips() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let b = DataClient::connect(&env.b_addr).await?;
    let id = unique("x").trim_start_matches("x_").to_owned();
    let dep = complete::seed(&a, &id).await?;
    let server = TestServer::start(&env).await?;
    let c = server.client().await?;

    // Back up both databases (filter by database) with RBAC.
    let name = unique("all");
    let filter = format!("{}.*,{}.*", dep.dbs[0], dep.dbs[1]);
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: name.clone(),
            cluster: "a".into(),
            repository: "s3".into(),
            collections: vec![filter],
            include_rbac: true,
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    assert!(
        done.warnings.iter().any(|w| w.contains("passwords")),
        "{:?}",
        done.warnings
    );
    let backup = c
        .get_backup(pb::GetBackupRequest {
            name: name.clone(),
            repository: "s3".into(),
        })
        .await?;
    let m = backup.manifest.expect("manifest");
    assert_eq!(m.collections.len(), dep.items.len());
    assert_eq!(m.databases.len(), 2);
    let rbac = m.rbac.expect("rbac");
    assert!(rbac.roles.iter().any(|r| r.name == dep.role));
    assert!(
        rbac.users
            .iter()
            .any(|u| u.name == dep.user && u.roles.contains(&dep.role))
    );
    assert!(
        rbac.grants.iter().filter(|g| g.role == dep.role).count() >= 3,
        "{:?}",
        rbac.grants
    );
    // Rows inserted without a flush before the backup are in it.
    let upserted = m
        .collections
        .iter()
        .find(|x| x.name == "upserted")
        .expect("upserted");
    assert!(upserted.row_count >= 340, "{}", upserted.row_count);

    // Into Milvus B with RBAC.
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: name.clone(),
            cluster: "b".into(),
            repository: "s3".into(),
            restore_rbac: true,
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    let report = done.report.expect("report");
    let pkey = report
        .collections
        .iter()
        .find(|r| r.collection == "pkey")
        .expect("pkey report");
    assert_eq!(pkey.method, pb::RestoreMethod::RowInsert as i32);
    assert!(
        pkey.warnings.iter().any(|w| w.contains("partition-key")),
        "{:?}",
        pkey.warnings
    );
    assert!(
        report
            .collections
            .iter()
            .filter(|r| r.collection != "pkey")
            .all(|r| r.method == pb::RestoreMethod::BinlogImport as i32)
    );
    let rr = report.rbac.expect("rbac report");
    // Other test binaries create users on A meanwhile: only this deployment's count.
    let ours: Vec<&String> = rr
        .users_needing_password_reset
        .iter()
        .filter(|u| **u == dep.user)
        .collect();
    assert_eq!(
        ours,
        vec![&dep.user],
        "{:?}",
        rr.users_needing_password_reset
    );
    for it in &dep.items {
        compare(&a, &it.db, &it.name, &b, &it.db, &it.name, it.loaded).await?;
        assert_eq!(
            b.dump(&it.db, &it.name).await?.len(),
            it.rows,
            "{}.{}",
            it.db,
            it.name
        );
    }
    assert_eq!(b.user_roles(&dep.user).await?, Some(vec![dep.role.clone()]));
    for db in ["default", dep.dbs[0].as_str()] {
        assert_eq!(
            a.grants(&dep.role, db).await?,
            b.grants(&dep.role, db).await?,
            "grants in {db}"
        );
    }
    assert!(!b.grants(&dep.role, "default").await?.is_empty());

    // Into Milvus A itself, databases mapped to new ones (created), loads skipped.
    let (m1, m2) = (format!("m1_{id}"), format!("m2_{id}"));
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: name.clone(),
            cluster: "a".into(),
            repository: "s3".into(),
            database_map: [
                (dep.dbs[0].clone(), m1.clone()),
                (dep.dbs[1].clone(), m2.clone()),
            ]
            .into_iter()
            .collect(),
            skip_load: true,
            collections: vec![format!("{}.*", dep.dbs[0]), format!("{}.same", dep.dbs[1])],
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    // The aliases of d1.aliased already exist in d1 only, so the mapped restore succeeds.
    assert_succeeded(&done);
    for it in &dep.items {
        let target = if it.db == dep.dbs[0] { &m1 } else { &m2 };
        compare(&a, &it.db, &it.name, &a, target, &it.name, false).await?;
    }
    // The two "same" collections stayed apart.
    assert_ne!(
        a.dump(&m1, "same").await?.len(),
        a.dump(&m2, "same").await?.len()
    );

    // Into Milvus A under a suffix (every collection but the aliased one, whose aliases
    // already exist there and would conflict, as the next step shows).
    let plain: Vec<String> = dep
        .items
        .iter()
        .filter(|it| it.name != "aliased")
        .map(|it| format!("{}.{}", it.db, it.name))
        .collect();
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: name.clone(),
            cluster: "a".into(),
            repository: "s3".into(),
            collections: plain,
            suffix: "_sfx".into(),
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    for it in dep.items.iter().filter(|it| it.name != "aliased") {
        compare(
            &a,
            &it.db,
            &it.name,
            &a,
            &it.db,
            &format!("{}_sfx", it.name),
            it.loaded,
        )
        .await?;
    }

    // A renamed copy of the aliased collection next to it: the aliases stay with the
    // collection the backup was taken from, and the report says so (moving them takes
    // --move-aliases; an alias held by any other collection is refused, shown with the
    // fake in tests/tests/safety.rs).
    let before = a.aliases(&dep.dbs[0], "aliased").await?;
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: name.clone(),
            cluster: "a".into(),
            repository: "s3".into(),
            collections: vec![format!("{}.aliased", dep.dbs[0])],
            renames: [(
                format!("{}.aliased", dep.dbs[0]),
                "aliased_again".to_string(),
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        })
        .await?;
    let done = run_job(&c, job).await?;
    assert_succeeded(&done);
    let warnings: Vec<String> = done
        .warnings
        .iter()
        .chain(
            done.report
                .iter()
                .flat_map(|r| r.collections.iter().flat_map(|c| c.warnings.iter())),
        )
        .cloned()
        .collect();
    let warnings = warnings.join("\n");
    assert!(
        warnings.contains(&dep.aliases[0]) || warnings.contains(&dep.aliases[1]),
        "{warnings}"
    );
    assert_eq!(a.aliases(&dep.dbs[0], "aliased").await?, before);
    assert!(a.aliases(&dep.dbs[0], "aliased_again").await?.is_empty());
    // (The schema lines include the aliases, so the rows are compared here.)
    let (src, copy) = (
        a.dump(&dep.dbs[0], "aliased").await?,
        a.dump(&dep.dbs[0], "aliased_again").await?,
    );
    assert!(!src.is_empty());
    assert_eq!(src, copy, "the renamed copy holds the same rows");
    a.drop_collection_if_exists(&dep.dbs[0], "aliased_again")
        .await?;
    server.stop().await;
    Ok(())
}
