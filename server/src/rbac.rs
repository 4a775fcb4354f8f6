//! Users, roles and grants.
//!
//! Read with the select RPCs every Milvus has (`SelectUser`, `SelectRole`, and
//! `SelectGrant` per role and database), so the same path works from 2.2 up. Milvus
//! never returns passwords through them: restored users that did not exist get a
//! random password, and the job report lists them as needing a reset by an
//! administrator. Roles, users and grants that already exist are left as they are.

use std::collections::BTreeSet;

use milvault_proto::milvault::v1::{RbacBackup, RbacReport, RbacRole, RbacUser};
use rand::Rng;

use crate::error::Result;
use crate::milvus::MilvusClient;
use crate::milvus::types::Created;

/// Reads every user, role and grant (grants in each of `databases`).
pub(crate) async fn export(client: &MilvusClient, databases: &[String]) -> Result<RbacBackup> {
    let mut out = RbacBackup {
        passwords_missing: true,
        ..Default::default()
    };
    for u in client.select_users().await? {
        let mut roles = u.roles;
        roles.sort();
        out.users.push(RbacUser {
            name: u.name,
            roles,
            password: String::new(),
        });
    }
    let mut seen = BTreeSet::new();
    for role in client.select_roles().await? {
        out.roles.push(RbacRole { name: role.clone() });
        for db in databases {
            for grant in client.select_grants(&role, db).await? {
                let key = (
                    grant.role.clone(),
                    grant.object_type.clone(),
                    grant.object_name.clone(),
                    grant.privilege.clone(),
                    grant.database.clone(),
                );
                if seen.insert(key) {
                    out.grants.push(grant);
                }
            }
        }
    }
    out.users.sort_by(|a, b| a.name.cmp(&b.name));
    out.roles.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn random_password() -> String {
    let mut rng = rand::rng();
    let chars = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    (0..20)
        .map(|_| chars[rng.random_range(0..chars.len())] as char)
        .collect()
}

/// Recreates roles, users (new ones with a random password), user-role bindings and
/// grants. `map_db` turns a backed-up database name into the target's.
pub(crate) async fn import(
    client: &MilvusClient,
    rbac: &RbacBackup,
    map_db: impl Fn(&str) -> String,
) -> Result<RbacReport> {
    let mut report = RbacReport::default();
    for role in &rbac.roles {
        if client.create_role(&role.name).await? == Created::New {
            report.roles += 1;
        }
    }
    let existing: BTreeSet<String> = client.list_users().await?.into_iter().collect();
    for user in &rbac.users {
        if !existing.contains(&user.name)
            && client.create_user(&user.name, &random_password()).await? == Created::New
        {
            report.users += 1;
            report.users_needing_password_reset.push(user.name.clone());
        }
        for role in &user.roles {
            client.add_user_to_role(&user.name, role).await?;
        }
    }
    for g in &rbac.grants {
        if client.grant(g, &map_db(&g.database)).await? == Created::New {
            report.grants += 1;
        }
    }
    Ok(report)
}
