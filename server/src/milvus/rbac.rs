//! Users, roles and grants: the select RPCs every Milvus has (2.2+) and the calls that
//! recreate them. "Already exists" comes back as [`Created::Existed`].

use base64::Engine;
use milvault_proto::milvault::v1::RbacGrant;
use milvault_proto::milvus::milvus as pb;

use super::client::MilvusClient;
use super::status;
use super::types::{Created, UserRoles};
use crate::error::Result;

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
            .map(|g| RbacGrant {
                role: role.to_owned(),
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
            })
            .collect())
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
                db_name: db.to_owned(),
            }),
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
