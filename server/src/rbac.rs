//! Users, roles and grants.
//!
//! Read with the select RPCs every Milvus has (`SelectUser`, `SelectRole`, and
//! `SelectGrant` per role and database), so the same path works from 2.2 up. Milvus
//! never returns passwords through them: restored users that did not exist get a
//! random password, and the job report lists them as needing a reset by an
//! administrator. Roles, users and grants that already exist are left as they are.

use std::collections::BTreeSet;

use milvault_proto::milvault::v1::{RbacBackup, RbacGrant, RbacReport, RbacRole, RbacUser};
use milvault_proto::milvus::milvus as pb;
use rand::Rng;

use crate::error::{Error, Result};
use crate::milvus::MilvusClient;

/// Reads every user, role and grant (grants in each of `databases`).
pub async fn export(client: &MilvusClient, databases: &[String]) -> Result<RbacBackup> {
    let users = client
        .call(
            "SelectUser",
            "",
            pb::SelectUserRequest {
                include_role_info: true,
                ..Default::default()
            },
            |c, r| Box::pin(c.select_user(r)),
        )
        .await?;
    let roles = client
        .call(
            "SelectRole",
            "",
            pb::SelectRoleRequest {
                include_user_info: false,
                ..Default::default()
            },
            |c, r| Box::pin(c.select_role(r)),
        )
        .await?;
    let mut out = RbacBackup {
        passwords_missing: true,
        ..Default::default()
    };
    for u in users.results {
        let name = u.user.map(|u| u.name).unwrap_or_default();
        let mut roles: Vec<String> = u.roles.into_iter().map(|r| r.name).collect();
        roles.sort();
        out.users.push(RbacUser {
            name,
            roles,
            password: String::new(),
        });
    }
    let mut seen = BTreeSet::new();
    for r in roles.results {
        let role = r.role.map(|r| r.name).unwrap_or_default();
        out.roles.push(RbacRole { name: role.clone() });
        for db in databases {
            let req = pb::SelectGrantRequest {
                entity: Some(pb::GrantEntity {
                    role: Some(pb::RoleEntity {
                        name: role.clone(),
                        ..Default::default()
                    }),
                    db_name: db.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let grants = client
                .call("SelectGrant", db, req, |c, r| Box::pin(c.select_grant(r)))
                .await?;
            for g in grants.entities {
                let grant = RbacGrant {
                    role: role.clone(),
                    object_type: g.object.map(|o| o.name).unwrap_or_default(),
                    object_name: g.object_name,
                    privilege: g
                        .grantor
                        .as_ref()
                        .and_then(|gr| gr.privilege.as_ref())
                        .map(|p| p.name.clone())
                        .unwrap_or_default(),
                    database: if g.db_name.is_empty() {
                        db.clone()
                    } else {
                        g.db_name
                    },
                    grantor: g
                        .grantor
                        .and_then(|gr| gr.user)
                        .map(|u| u.name)
                        .unwrap_or_default(),
                };
                let key = format!(
                    "{}|{}|{}|{}|{}",
                    grant.role,
                    grant.object_type,
                    grant.object_name,
                    grant.privilege,
                    grant.database
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

fn already(e: &Error) -> bool {
    matches!(e, Error::Milvus { message, .. } if message.to_lowercase().contains("exist"))
}

fn random_password() -> String {
    let mut rng = rand::rng();
    (0..20)
        .map(|_| {
            let chars = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
            chars[rng.random_range(0..chars.len())] as char
        })
        .collect()
}

/// Recreates roles, users (new ones with a random password), user-role bindings and
/// grants. `map_db` turns a backed-up database name into the target's.
pub async fn import(
    client: &MilvusClient,
    rbac: &RbacBackup,
    map_db: impl Fn(&str) -> String,
) -> Result<RbacReport> {
    let mut report = RbacReport::default();
    for role in &rbac.roles {
        let req = pb::CreateRoleRequest {
            entity: Some(pb::RoleEntity {
                name: role.name.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        match client
            .call("CreateRole", "", req, |c, r| Box::pin(c.create_role(r)))
            .await
        {
            Ok(_) => report.roles += 1,
            Err(e) if already(&e) => {}
            Err(e) => return Err(e),
        }
    }
    let existing: BTreeSet<String> = client
        .call(
            "ListCredUsers",
            "",
            pb::ListCredUsersRequest::default(),
            |c, r| Box::pin(c.list_cred_users(r)),
        )
        .await?
        .usernames
        .into_iter()
        .collect();
    for user in &rbac.users {
        if !existing.contains(&user.name) {
            // The API convention: the password travels base64-encoded.
            use base64::Engine;
            let password = base64::engine::general_purpose::STANDARD.encode(random_password());
            let req = pb::CreateCredentialRequest {
                username: user.name.clone(),
                password,
                ..Default::default()
            };
            client
                .call("CreateCredential", "", req, |c, r| {
                    Box::pin(c.create_credential(r))
                })
                .await?;
            report.users += 1;
            report.users_needing_password_reset.push(user.name.clone());
        }
        for role in &user.roles {
            let req = pb::OperateUserRoleRequest {
                username: user.name.clone(),
                role_name: role.clone(),
                r#type: pb::OperateUserRoleType::AddUserToRole as i32,
                ..Default::default()
            };
            match client
                .call("OperateUserRole", "", req, |c, r| {
                    Box::pin(c.operate_user_role(r))
                })
                .await
            {
                Ok(_) => {}
                Err(e) if already(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
    for g in &rbac.grants {
        let db = map_db(&g.database);
        let req = pb::OperatePrivilegeRequest {
            entity: Some(pb::GrantEntity {
                role: Some(pb::RoleEntity {
                    name: g.role.clone(),
                    ..Default::default()
                }),
                object: Some(pb::ObjectEntity {
                    name: g.object_type.clone(),
                }),
                object_name: g.object_name.clone(),
                grantor: Some(pb::GrantorEntity {
                    user: None,
                    privilege: Some(pb::PrivilegeEntity {
                        name: g.privilege.clone(),
                    }),
                }),
                db_name: db.clone(),
            }),
            r#type: pb::OperatePrivilegeType::Grant as i32,
            ..Default::default()
        };
        match client
            .call("OperatePrivilege", &db, req, |c, r| {
                Box::pin(c.operate_privilege(r))
            })
            .await
        {
            Ok(_) => report.grants += 1,
            Err(e) if already(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}
