//! Users, roles and grants: the select RPCs every Milvus has (2.2+) and the calls that
//! recreate them, and `BackupRBAC`/`RestoreRBAC` (2.4.10+), which carry password hashes
//! and privilege groups. "Already exists" comes back as [`Created::Existed`].
//!
//! The wire's `RBACMeta` becomes the manifest's [`RbacBackup`] here and nowhere else;
//! a password hash is moved, never formatted into a message or a log.

use base64::Engine;
use milvault_proto::milvault::v1::{
    RbacBackup, RbacExportMethod, RbacGrant, RbacPrivilegeGroup, RbacRole, RbacUser,
};
use milvault_proto::milvus::common::Status;
use milvault_proto::milvus::milvus as pb;

use super::client::{HasStatus, MilvusClient};
use super::status;
use super::types::{Created, UserRoles};
use crate::error::{Error, MilvusError, Result};

impl HasStatus for pb::BackupRbacMetaResponse {
    fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }
}

/// A grant as the manifest keeps it; `db` when the server leaves the database empty.
fn grant_from_wire(g: pb::GrantEntity, role: Option<&str>, db: &str) -> RbacGrant {
    RbacGrant {
        role: match role {
            Some(r) => r.to_owned(),
            None => g.role.map(|r| r.name).unwrap_or_default(),
        },
        object_type: g.object.map(|o| o.name).unwrap_or_default(),
        object_name: g.object_name,
        privilege: g
            .grantor
            .as_ref()
            .and_then(|gr| gr.privilege.as_ref())
            .map(|p| p.name.clone())
            .unwrap_or_default(),
        database: if g.db_name.is_empty() {
            db.to_owned()
        } else {
            g.db_name
        },
        grantor: g
            .grantor
            .and_then(|gr| gr.user)
            .map(|u| u.name)
            .unwrap_or_default(),
    }
}

fn grant_to_wire(g: &RbacGrant, db: &str) -> pb::GrantEntity {
    pb::GrantEntity {
        role: Some(pb::RoleEntity {
            name: g.role.clone(),
            ..Default::default()
        }),
        object: Some(pb::ObjectEntity {
            name: g.object_type.clone(),
        }),
        object_name: g.object_name.clone(),
        grantor: Some(pb::GrantorEntity {
            user: (!g.grantor.is_empty()).then(|| pb::UserEntity {
                name: g.grantor.clone(),
            }),
            privilege: Some(pb::PrivilegeEntity {
                name: g.privilege.clone(),
            }),
        }),
        db_name: db.to_owned(),
    }
}

/// `BackupRBAC` and `RestoreRBAC` need root-level privileges (`PrivilegeBackupRBAC` /
/// `PrivilegeRestoreRBAC` on Global); Milvus's privilege interceptor answers any other
/// user with gRPC `PermissionDenied`. Said as what to do, not as a bare refusal.
fn needs_root(e: Error, op: &str) -> Error {
    match e {
        Error::Milvus(MilvusError {
            grpc: tonic::Code::PermissionDenied,
            cluster,
            reason,
            ..
        }) => Error::Unsupported {
            message: format!(
                "{op} needs root-level privileges on cluster {cluster:?} (Milvus said: {reason}); configure the root user for this cluster, grant {op} on Global to the configured user, or run without RBAC"
            ),
            metadata: vec![("cluster", cluster), ("operation", op.to_owned())],
        },
        other => other,
    }
}

impl MilvusClient {
    /// Every user with its roles.
    pub(crate) async fn select_users(&self) -> Result<Vec<UserRoles>> {
        let req = pb::SelectUserRequest {
            include_role_info: true,
            ..Default::default()
        };
        let r = self
            .call("SelectUser", "", req, |c, r| Box::pin(c.select_user(r)))
            .await?;
        Ok(r.results
            .into_iter()
            .map(|u| UserRoles {
                name: u.user.map(|u| u.name).unwrap_or_default(),
                roles: u.roles.into_iter().map(|r| r.name).collect(),
            })
            .collect())
    }

    /// Every role name.
    pub(crate) async fn select_roles(&self) -> Result<Vec<String>> {
        let req = pb::SelectRoleRequest::default();
        let r = self
            .call("SelectRole", "", req, |c, r| Box::pin(c.select_role(r)))
            .await?;
        Ok(r.results
            .into_iter()
            .filter_map(|r| r.role.map(|r| r.name))
            .collect())
    }

    /// The grants of `role` in database `db` (the database is filled in when the
    /// server leaves it empty).
    pub(crate) async fn select_grants(&self, role: &str, db: &str) -> Result<Vec<RbacGrant>> {
        let req = pb::SelectGrantRequest {
            entity: Some(pb::GrantEntity {
                role: Some(pb::RoleEntity {
                    name: role.to_owned(),
                    ..Default::default()
                }),
                db_name: db.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let r = self
            .call("SelectGrant", db, req, |c, r| Box::pin(c.select_grant(r)))
            .await?;
        Ok(r.entities
            .into_iter()
            .map(|g| grant_from_wire(g, Some(role), db))
            .collect())
    }

    /// `BackupRBAC` (2.4.10+): every user but `root` with its password hash and roles,
    /// every role but `admin` and `public`, the grants of those roles in every
    /// database, and the custom privilege groups (2.4.16+).
    pub(crate) async fn backup_rbac(&self) -> Result<RbacBackup> {
        let req = pb::BackupRbacMetaRequest::default();
        let r = self
            .call("BackupRBAC", "", req, |c, r| Box::pin(c.backup_rbac(r)))
            .await
            .map_err(|e| needs_root(e, "BackupRBAC"))?;
        let meta = r.rbac_meta.unwrap_or_default();
        Ok(RbacBackup {
            users: meta
                .users
                .into_iter()
                .map(|u| {
                    let mut roles: Vec<String> = u.roles.into_iter().map(|r| r.name).collect();
                    roles.sort();
                    RbacUser {
                        name: u.user,
                        roles,
                        has_password: !u.password.is_empty(),
                        password: u.password,
                    }
                })
                .collect(),
            roles: meta
                .roles
                .into_iter()
                .map(|r| RbacRole {
                    name: r.name,
                    description: r.description,
                })
                .collect(),
            grants: meta
                .grants
                .into_iter()
                .map(|g| grant_from_wire(g, None, ""))
                .collect(),
            passwords_missing: false,
            privilege_groups: meta
                .privilege_groups
                .into_iter()
                .map(|g| RbacPrivilegeGroup {
                    name: g.group_name,
                    privileges: g.privileges.into_iter().map(|p| p.name).collect(),
                })
                .collect(),
            method: RbacExportMethod::BackupRbac as i32,
        })
    }

    /// `RestoreRBAC` (2.4.10+) of exactly `meta`, grants in the database `map_db`
    /// names. Milvus refuses the whole call when any role, group or user in it exists
    /// already, or when it is empty: the caller sends only what is missing.
    pub(crate) async fn restore_rbac(
        &self,
        meta: &RbacBackup,
        map_db: impl Fn(&str) -> String,
    ) -> Result<()> {
        let req = pb::RestoreRbacMetaRequest {
            rbac_meta: Some(pb::RbacMeta {
                users: meta
                    .users
                    .iter()
                    .map(|u| pb::UserInfo {
                        user: u.name.clone(),
                        password: u.password.clone(),
                        roles: u
                            .roles
                            .iter()
                            .map(|r| pb::RoleEntity {
                                name: r.clone(),
                                ..Default::default()
                            })
                            .collect(),
                    })
                    .collect(),
                roles: meta
                    .roles
                    .iter()
                    .map(|r| pb::RoleEntity {
                        name: r.name.clone(),
                        description: r.description.clone(),
                    })
                    .collect(),
                grants: meta
                    .grants
                    .iter()
                    .map(|g| grant_to_wire(g, &map_db(&g.database)))
                    .collect(),
                privilege_groups: meta
                    .privilege_groups
                    .iter()
                    .map(|g| pb::PrivilegeGroupInfo {
                        group_name: g.name.clone(),
                        privileges: g
                            .privileges
                            .iter()
                            .map(|p| pb::PrivilegeEntity { name: p.clone() })
                            .collect(),
                    })
                    .collect(),
            }),
            ..Default::default()
        };
        self.call("RestoreRBAC", "", req, |c, r| Box::pin(c.restore_rbac(r)))
            .await
            .map_err(|e| needs_root(e, "RestoreRBAC"))?;
        Ok(())
    }

    /// Creates a role.
    pub(crate) async fn create_role(&self, name: &str) -> Result<Created> {
        let req = pb::CreateRoleRequest {
            entity: Some(pb::RoleEntity {
                name: name.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        };
        status::created(
            self.call("CreateRole", "", req, |c, r| Box::pin(c.create_role(r)))
                .await,
        )
    }

    /// Names of every user that has a password.
    pub(crate) async fn list_users(&self) -> Result<Vec<String>> {
        let req = pb::ListCredUsersRequest::default();
        Ok(self
            .call("ListCredUsers", "", req, |c, r| {
                Box::pin(c.list_cred_users(r))
            })
            .await?
            .usernames)
    }

    /// Creates a user with `password` (plain text; sent base64-encoded as the API
    /// wants).
    pub(crate) async fn create_user(&self, name: &str, password: &str) -> Result<Created> {
        let req = pb::CreateCredentialRequest {
            username: name.to_owned(),
            password: base64::engine::general_purpose::STANDARD.encode(password),
            ..Default::default()
        };
        status::created(
            self.call("CreateCredential", "", req, |c, r| {
                Box::pin(c.create_credential(r))
            })
            .await,
        )
    }

    /// Gives `user` the role `role`.
    pub(crate) async fn add_user_to_role(&self, user: &str, role: &str) -> Result<Created> {
        let req = pb::OperateUserRoleRequest {
            username: user.to_owned(),
            role_name: role.to_owned(),
            r#type: pb::OperateUserRoleType::AddUserToRole as i32,
            ..Default::default()
        };
        status::created(
            self.call("OperateUserRole", "", req, |c, r| {
                Box::pin(c.operate_user_role(r))
            })
            .await,
        )
    }

    /// Grants one privilege, in database `db`.
    pub(crate) async fn grant(&self, g: &RbacGrant, db: &str) -> Result<Created> {
        // The grantor is the caller: the server fills it in.
        let mut entity = grant_to_wire(g, db);
        if let Some(gr) = entity.grantor.as_mut() {
            gr.user = None;
        }
        let req = pb::OperatePrivilegeRequest {
            entity: Some(entity),
            r#type: pb::OperatePrivilegeType::Grant as i32,
            ..Default::default()
        };
        status::created(
            self.call("OperatePrivilege", db, req, |c, r| {
                Box::pin(c.operate_privilege(r))
            })
            .await,
        )
    }
}
