//! Cells of the compatibility matrix on real servers (Milvus C = 2.2.16, A = 2.3.5)
//! that the data round trips (`milvus_22.rs`) leave out:
//! - users, roles and grants between 2.2.16 and 2.3.5 both ways, by the select calls
//!   (neither version has `BackupRBAC`): new users get a password to reset, a second
//!   restore finds everything there and changes nothing;
//! - 2.3 → 2.2 "schema permitting": a collection with a COSINE index (2.3+) is refused
//!   by a 2.2 target with `FAILED_PRECONDITION` naming it, and nothing is created.

use milvault_sdk::{Client, pb};
use milvault_tests::fixtures::{Fixture, seed};
use milvault_tests::harness::{TestEnv, TestServer, assert_succeeded, run_job, unique};
use milvault_tests::milvus_data::{DataClient, Field, dt};

fn small(name: &str, metric: &str) -> Fixture {
    Fixture {
        name: name.to_owned(),
        fields: vec![
            Field::new("pk", dt::INT64).primary(),
            Field::new("v", dt::FLOAT_VECTOR).param("dim", 4),
        ],
        batches: vec![("_default".into(), 50)],
        partitions: Vec::new(),
        deletes: Vec::new(),
        deleted: 0,
        indexes: vec![(
            "v".into(),
            "v_idx".into(),
            vec![
                ("index_type".into(), "IVF_FLAT".into()),
                ("metric_type".into(), metric.into()),
                ("params".into(), r#"{"nlist":8}"#.into()),
            ],
        )],
        shards: 1,
        load: false,
    }
}

async fn backup(c: &Client, cluster: &str, coll: &str, rbac: bool) -> anyhow::Result<String> {
    let name = unique("compat");
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: name.clone(),
            cluster: cluster.into(),
            repository: "local".into(),
            collections: vec![format!("default.{coll}")],
            include_rbac: rbac,
            ..Default::default()
        })
        .await?;
    assert_succeeded(&run_job(c, job).await?);
    Ok(name)
}

async fn restore(c: &Client, backup: &str, cluster: &str, suffix: &str) -> anyhow::Result<pb::Job> {
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: backup.into(),
            cluster: cluster.into(),
            repository: "local".into(),
            suffix: suffix.into(),
            restore_rbac: true,
            ..Default::default()
        })
        .await?;
    run_job(c, job).await
}

/// A role with two grants and a user holding it, on `m`.
async fn seed_rbac(m: &DataClient, role: &str, user: &str) -> anyhow::Result<()> {
    m.create_role(role).await?;
    m.create_user(user, "Secret-123").await?;
    m.add_user_to_role(user, role).await?;
    m.grant(role, "Collection", "*", "Query", "default").await?;
    m.grant(role, "Global", "*", "DescribeCollection", "default")
        .await?;
    Ok(())
}

/// A request as root (some 2.3 RBAC calls need credentials even with auth off).
fn as_root<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert(
        "authorization",
        tonic::metadata::MetadataValue::from_static("cm9vdDpNaWx2dXM="),
    );
    r
}

/// Whether `name` is one this test makes: `<r|u>_<a|c>_<hex>`.
fn made_here(name: &str, kind: &str) -> bool {
    let mut parts = name.splitn(3, '_');
    parts.next() == Some(kind)
        && matches!(parts.next(), Some("a" | "c"))
        && parts
            .next()
            .is_some_and(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Removes the roles (grants first) and users this test makes on `m`, this run's and
/// any a failed earlier run left: Milvus caps roles (`proxy.maxRoleNum`, 10 by
/// default), so leftovers on the shared services would fail every RBAC test.
async fn drop_made_here(m: &DataClient) -> anyhow::Result<()> {
    use milvault_proto::milvus::milvus as mpb;
    let mut raw = m.raw();
    let roles = raw
        .select_role(as_root(mpb::SelectRoleRequest::default()))
        .await?
        .into_inner()
        .results;
    for role in roles.into_iter().filter_map(|r| r.role).map(|r| r.name) {
        if !made_here(&role, "r") {
            continue;
        }
        let grants = raw
            .select_grant(as_root(mpb::SelectGrantRequest {
                entity: Some(mpb::GrantEntity {
                    role: Some(mpb::RoleEntity {
                        name: role.clone(),
                        ..Default::default()
                    }),
                    db_name: "default".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }))
            .await?
            .into_inner()
            .entities;
        for g in grants {
            raw.operate_privilege(as_root(mpb::OperatePrivilegeRequest {
                entity: Some(g),
                r#type: mpb::OperatePrivilegeType::Revoke as i32,
                ..Default::default()
            }))
            .await?;
        }
        let st = raw
            .drop_role(as_root(mpb::DropRoleRequest {
                role_name: role.clone(),
                ..Default::default()
            }))
            .await?
            .into_inner();
        anyhow::ensure!(
            st.code == 0 && st.error_code == 0,
            "DropRole {role}: {}",
            st.reason
        );
    }
    let users = raw
        .list_cred_users(as_root(mpb::ListCredUsersRequest::default()))
        .await?
        .into_inner()
        .usernames;
    for user in users.into_iter().filter(|u| made_here(u, "u")) {
        raw.delete_credential(as_root(mpb::DeleteCredentialRequest {
            username: user,
            ..Default::default()
        }))
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_roles_and_grants_move_between_real_2_2_and_2_3() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let cc = DataClient::connect(&env.c_addr).await?;
    let server = TestServer::start(&env).await?;
    let c = server.client().await?;
    drop_made_here(&a).await?;
    drop_made_here(&cc).await?;

    for (from, to, src, dst) in [("c", "a", &cc, &a), ("a", "c", &a, &cc)] {
        let id = unique(from);
        let (role, user, coll) = (format!("r_{id}"), format!("u_{id}"), format!("k_{id}"));
        seed(src, "default", &small(&coll, "L2"), 3).await?;
        seed_rbac(src, &role, &user).await?;
        let name = backup(&c, from, &coll, true).await?;
        let m = c
            .get_backup(pb::GetBackupRequest {
                name: name.clone(),
                repository: "local".into(),
            })
            .await?
            .manifest
            .expect("manifest");
        let rbac = m.rbac.expect("rbac");
        assert_eq!(rbac.method, pb::RbacExportMethod::Select as i32, "{from}");
        assert!(rbac.passwords_missing, "{from}");
        assert!(
            rbac.users
                .iter()
                .any(|u| u.name == user && u.roles == [role.clone()] && !u.has_password),
            "{from}: {:?}",
            rbac.users.iter().find(|u| u.name == user)
        );

        let r = restore(&c, &name, to, "_r1").await?;
        assert_succeeded(&r);
        let report = r.report.and_then(|rep| rep.rbac).expect("rbac report");
        assert!(
            report.users_needing_password_reset.contains(&user),
            "{from} -> {to}: {report:?}"
        );
        assert_eq!(dst.user_roles(&user).await?, Some(vec![role.clone()]));
        assert_eq!(
            dst.grants(&role, "default").await?,
            src.grants(&role, "default").await?,
            "{from} -> {to}"
        );
        assert_eq!(dst.grants(&role, "default").await?.len(), 2);

        // Again: everything exists, nothing is created, the user is kept.
        let again = restore(&c, &name, to, "_r2").await?;
        assert_succeeded(&again);
        let report = again.report.and_then(|rep| rep.rbac).expect("rbac report");
        assert!(report.users_kept.contains(&user), "{report:?}");
        assert!(!report.users_needing_password_reset.contains(&user));
        assert_eq!((report.roles, report.grants), (0, 0), "{report:?}");
        assert_eq!(dst.user_roles(&user).await?, Some(vec![role.clone()]));
        for m in [src, dst] {
            for suffix in ["", "_r1", "_r2"] {
                m.drop_collection_if_exists("default", &format!("{coll}{suffix}"))
                    .await?;
            }
        }
    }
    drop_made_here(&a).await?;
    drop_made_here(&cc).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cosine_index_from_2_3_is_refused_by_a_real_2_2() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let cc = DataClient::connect(&env.c_addr).await?;
    let server = TestServer::start(&env).await?;
    let c = server.client().await?;
    let coll = unique("cos");
    seed(&a, "default", &small(&coll, "COSINE"), 5).await?;
    let name = backup(&c, "a", &coll, false).await?;
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: name,
            cluster: "c".into(),
            repository: "local".into(),
            ..Default::default()
        })
        .await?;
    let r = run_job(&c, job).await?;
    let err = r.error.expect("2.2 cannot hold COSINE");
    assert_eq!(err.code, "FAILED_PRECONDITION", "{err:?}");
    assert_eq!(err.reason, "UNSUPPORTED", "{err:?}");
    assert!(err.message.contains("COSINE"), "{}", err.message);
    assert!(
        !cc.has_collection("default", &coll).await?,
        "created on 2.2"
    );
    a.drop_collection_if_exists("default", &coll).await?;
    Ok(())
}
