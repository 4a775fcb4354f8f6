//! Users, roles and grants: the select RPCs every version has, the create/operate calls
//! with each version's "already exists" answers, and `BackupRBAC`/`RestoreRBAC` (2.4.10+).

use base64::Engine;
use milvault_proto::milvus::common::{ErrorCode, Status};
use milvault_proto::milvus::milvus as pb;
use tonic::{Request, Response, Status as GrpcStatus};

use super::FakeMilvus;
use super::grpc::{done, failed, ok, success, unimplemented};
use super::model::{self, Grant, Model};

type R<T> = Result<Response<T>, GrpcStatus>;

impl FakeMilvus {
    pub(super) async fn create_credential_rpc(
        &self,
        r: Request<pb::CreateCredentialRequest>,
    ) -> R<Status> {
        self.record("CreateCredential");
        let req = r.into_inner();
        let b = self.behaviour.clone();
        let Some(plain) = base64::engine::general_purpose::STANDARD
            .decode(&req.password)
            .ok()
            .and_then(|p| String::from_utf8(p).ok())
        else {
            return failed(b.status(
                1100,
                ErrorCode::CreateCredentialFailure,
                "decode password fail",
            ));
        };
        let mut m = self.lock();
        if m.rbac.users.contains_key(&req.username) {
            return failed(b.user_exists(&req.username));
        }
        m.rbac
            .users
            .insert(req.username, model::hash_password(&plain));
        success()
    }

    pub(super) async fn delete_credential_rpc(
        &self,
        r: Request<pb::DeleteCredentialRequest>,
    ) -> R<Status> {
        self.record("DeleteCredential");
        let name = r.into_inner().username;
        if name == "root" {
            return failed(self.behaviour.unexpected("user root cannot be deleted"));
        }
        let mut m = self.lock();
        m.rbac.users.remove(&name);
        m.rbac.user_roles.retain(|(u, _)| *u != name);
        success()
    }

    pub(super) async fn list_cred_users_rpc(
        &self,
        _r: Request<pb::ListCredUsersRequest>,
    ) -> R<pb::ListCredUsersResponse> {
        self.record("ListCredUsers");
        done(pb::ListCredUsersResponse {
            status: ok(),
            usernames: self.lock().rbac.users.keys().cloned().collect(),
        })
    }

    pub(super) async fn create_role_rpc(&self, r: Request<pb::CreateRoleRequest>) -> R<Status> {
        self.record("CreateRole");
        let name = r.into_inner().entity.map(|e| e.name).unwrap_or_default();
        let b = self.behaviour.clone();
        if name.is_empty() {
            return failed(b.invalid("the role name is empty"));
        }
        let mut m = self.lock();
        if m.rbac.roles.contains(&name) {
            return failed(b.role_exists(&name));
        }
        m.rbac.roles.insert(name);
        success()
    }

    pub(super) async fn drop_role_rpc(&self, r: Request<pb::DropRoleRequest>) -> R<Status> {
        self.record("DropRole");
        let name = r.into_inner().role_name;
        if name == "admin" || name == "public" {
            return failed(self.behaviour.unexpected(format!(
                "the role[{name}] is a default role, which can't be dropped"
            )));
        }
        let mut m = self.lock();
        m.rbac.roles.remove(&name);
        m.rbac.user_roles.retain(|(_, r)| *r != name);
        m.rbac.grants.retain(|g| g.role != name);
        success()
    }

    pub(super) async fn operate_user_role_rpc(
        &self,
        r: Request<pb::OperateUserRoleRequest>,
    ) -> R<Status> {
        self.record("OperateUserRole");
        let req = r.into_inner();
        let b = self.behaviour.clone();
        let mut m = self.lock();
        if !m.rbac.users.contains_key(&req.username) {
            return failed(b.status(
                65535,
                ErrorCode::OperateUserRoleFailure,
                format!(
                    "fail to check the username: user {} not found",
                    req.username
                ),
            ));
        }
        if !m.rbac.roles.contains(&req.role_name) {
            return failed(b.status(
                65535,
                ErrorCode::OperateUserRoleFailure,
                format!(
                    "fail to check the role name: role {} not found",
                    req.role_name
                ),
            ));
        }
        let pair = (req.username, req.role_name);
        if req.r#type == pb::OperateUserRoleType::AddUserToRole as i32 {
            // An existing binding succeeds (server status.rs, seen).
            m.rbac.user_roles.insert(pair);
        } else {
            m.rbac.user_roles.remove(&pair);
        }
        success()
    }

    pub(super) async fn select_role_rpc(
        &self,
        r: Request<pb::SelectRoleRequest>,
    ) -> R<pb::SelectRoleResponse> {
        self.record("SelectRole");
        let req = r.into_inner();
        let m = self.lock();
        let only = req.role.map(|r| r.name).filter(|n| !n.is_empty());
        let results = m
            .rbac
            .roles
            .iter()
            .filter(|r| only.as_ref().is_none_or(|o| o == *r))
            .map(|r| pb::RoleResult {
                role: Some(pb::RoleEntity {
                    name: r.clone(),
                    ..Default::default()
                }),
                users: if req.include_user_info {
                    m.rbac
                        .user_roles
                        .iter()
                        .filter(|(_, role)| role == r)
                        .map(|(u, _)| pb::UserEntity { name: u.clone() })
                        .collect()
                } else {
                    Vec::new()
                },
            })
            .collect();
        done(pb::SelectRoleResponse {
            status: ok(),
            results,
        })
    }

    pub(super) async fn select_user_rpc(
        &self,
        r: Request<pb::SelectUserRequest>,
    ) -> R<pb::SelectUserResponse> {
        self.record("SelectUser");
        let req = r.into_inner();
        let m = self.lock();
        let only = req.user.map(|u| u.name).filter(|n| !n.is_empty());
        let results = m
            .rbac
            .users
            .keys()
            .filter(|u| only.as_ref().is_none_or(|o| o == *u))
            .map(|u| pb::UserResult {
                user: Some(pb::UserEntity { name: u.clone() }),
                roles: if req.include_role_info {
                    m.rbac
                        .user_roles
                        .iter()
                        .filter(|(user, _)| user == u)
                        .map(|(_, r)| pb::RoleEntity {
                            name: r.clone(),
                            ..Default::default()
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                ..Default::default()
            })
            .collect();
        done(pb::SelectUserResponse {
            status: ok(),
            results,
        })
    }

    pub(super) async fn operate_privilege_rpc(
        &self,
        r: Request<pb::OperatePrivilegeRequest>,
    ) -> R<Status> {
        self.record("OperatePrivilege");
        let header_db = self.db_of(&r, "");
        let grantor = Self::user_of(&r);
        let req = r.into_inner();
        let b = self.behaviour.clone();
        let Some(e) = req.entity else {
            return failed(b.invalid("the grant entity is empty"));
        };
        let role = e.role.map(|r| r.name).unwrap_or_default();
        let privilege = e
            .grantor
            .as_ref()
            .and_then(|g| g.privilege.as_ref())
            .map(|p| p.name.clone())
            .unwrap_or_default();
        let mut m = self.lock();
        if !m.rbac.roles.contains(&role) {
            return failed(b.status(
                65535,
                ErrorCode::OperatePrivilegeFailure,
                "not found the role, maybe the role isn't existed or internal system error",
            ));
        }
        let grant = Grant {
            role,
            object: e.object.map(|o| o.name).unwrap_or_default(),
            object_name: e.object_name,
            privilege,
            db: if e.db_name.is_empty() {
                header_db
            } else {
                e.db_name
            },
            grantor,
        };
        if req.r#type == pb::OperatePrivilegeType::Grant as i32 {
            // The same grant again succeeds (server status.rs, seen).
            let exists = m.rbac.grants.iter().any(|g| {
                (&g.role, &g.object, &g.object_name, &g.privilege, &g.db)
                    == (
                        &grant.role,
                        &grant.object,
                        &grant.object_name,
                        &grant.privilege,
                        &grant.db,
                    )
            });
            if !exists {
                m.rbac.grants.insert(grant);
            }
        } else {
            m.rbac.grants.retain(|g| {
                (&g.role, &g.object, &g.object_name, &g.privilege, &g.db)
                    != (
                        &grant.role,
                        &grant.object,
                        &grant.object_name,
                        &grant.privilege,
                        &grant.db,
                    )
            });
        }
        success()
    }

    pub(super) async fn select_grant_rpc(
        &self,
        r: Request<pb::SelectGrantRequest>,
    ) -> R<pb::SelectGrantResponse> {
        self.record("SelectGrant");
        let header_db = self.db_of(&r, "");
        let req = r.into_inner();
        let b = self.behaviour.clone();
        let Some(e) = req.entity else {
            return failed(b.invalid("the grant entity is empty"));
        };
        let Some(role) = e.role.map(|r| r.name).filter(|n| !n.is_empty()) else {
            return failed(b.invalid("the role entity in the grant entity is invalid"));
        };
        let db = if e.db_name.is_empty() {
            header_db
        } else {
            e.db_name
        };
        let object = e.object.map(|o| o.name).unwrap_or_default();
        let m = self.lock();
        let entities = m
            .rbac
            .grants
            .iter()
            .filter(|g| g.role == role && (g.db == db || db == "*"))
            .filter(|g| object.is_empty() || g.object == object)
            .filter(|g| e.object_name.is_empty() || g.object_name == e.object_name)
            .map(|g| pb::GrantEntity {
                role: Some(pb::RoleEntity {
                    name: g.role.clone(),
                    ..Default::default()
                }),
                object: Some(pb::ObjectEntity {
                    name: g.object.clone(),
                }),
                object_name: g.object_name.clone(),
                grantor: Some(pb::GrantorEntity {
                    user: Some(pb::UserEntity {
                        name: g.grantor.clone(),
                    }),
                    privilege: Some(pb::PrivilegeEntity {
                        name: g.privilege.clone(),
                    }),
                }),
                db_name: g.db.clone(),
            })
            .collect();
        done(pb::SelectGrantResponse {
            status: ok(),
            entities,
        })
    }

    pub(super) async fn backup_rbac_rpc(
        &self,
        _r: Request<pb::BackupRbacMetaRequest>,
    ) -> R<pb::BackupRbacMetaResponse> {
        self.record("BackupRBAC");
        if !self.behaviour.rbac_meta {
            return Err(unimplemented("BackupRBAC"));
        }
        let m = self.lock();
        let custom = |r: &String| r != "admin" && r != "public";
        let meta = pb::RbacMeta {
            users: m
                .rbac
                .users
                .iter()
                .filter(|(u, _)| *u != "root")
                .map(|(u, pw)| pb::UserInfo {
                    user: u.clone(),
                    password: pw.clone(),
                    roles: m
                        .rbac
                        .user_roles
                        .iter()
                        .filter(|(user, _)| user == u)
                        .map(|(_, r)| pb::RoleEntity {
                            name: r.clone(),
                            ..Default::default()
                        })
                        .collect(),
                })
                .collect(),
            roles: m
                .rbac
                .roles
                .iter()
                .filter(|r| custom(r))
                .map(|r| pb::RoleEntity {
                    name: r.clone(),
                    ..Default::default()
                })
                .collect(),
            grants: m
                .rbac
                .grants
                .iter()
                .filter(|g| custom(&g.role))
                .map(|g| pb::GrantEntity {
                    role: Some(pb::RoleEntity {
                        name: g.role.clone(),
                        ..Default::default()
                    }),
                    object: Some(pb::ObjectEntity {
                        name: g.object.clone(),
                    }),
                    object_name: g.object_name.clone(),
                    grantor: Some(pb::GrantorEntity {
                        user: Some(pb::UserEntity {
                            name: g.grantor.clone(),
                        }),
                        privilege: Some(pb::PrivilegeEntity {
                            name: g.privilege.clone(),
                        }),
                    }),
                    db_name: g.db.clone(),
                })
                .collect(),
            privilege_groups: Vec::new(),
        };
        done(pb::BackupRbacMetaResponse {
            status: ok(),
            rbac_meta: Some(meta),
        })
    }

    pub(super) async fn restore_rbac_rpc(
        &self,
        r: Request<pb::RestoreRbacMetaRequest>,
    ) -> R<Status> {
        self.record("RestoreRBAC");
        let b = self.behaviour.clone();
        if !b.rbac_meta {
            return Err(unimplemented("RestoreRBAC"));
        }
        let meta = r.into_inner().rbac_meta.unwrap_or_default();
        if meta.users.is_empty() && meta.roles.is_empty() && meta.grants.is_empty() {
            return failed(b.unexpected("rbac meta is empty"));
        }
        let mut m = self.lock();
        // CheckIfRBACRestorable: nothing may exist already, every role named must exist
        // or be created by the same call (MILVUS-24-26.md d.2).
        for role in &meta.roles {
            if m.rbac.roles.contains(&role.name) {
                return failed(b.unexpected(format!("role [{}] already exists", role.name)));
            }
        }
        for u in &meta.users {
            if m.rbac.users.contains_key(&u.user) {
                return failed(b.unexpected(format!("user [{}] already exists", u.user)));
            }
        }
        let known = |name: &str, m: &Model| {
            m.rbac.roles.contains(name) || meta.roles.iter().any(|r| r.name == name)
        };
        for name in meta
            .users
            .iter()
            .flat_map(|u| u.roles.iter().map(|r| r.name.clone()))
            .chain(
                meta.grants
                    .iter()
                    .filter_map(|g| g.role.as_ref().map(|r| r.name.clone())),
            )
        {
            if !known(&name, &m) {
                return failed(b.unexpected(format!("role [{name}] does not exist")));
            }
        }
        for role in meta.roles {
            m.rbac.roles.insert(role.name);
        }
        for u in meta.users {
            for r in &u.roles {
                m.rbac.user_roles.insert((u.user.clone(), r.name.clone()));
            }
            m.rbac.users.insert(u.user, u.password);
        }
        for g in meta.grants {
            m.rbac.grants.insert(Grant {
                role: g.role.map(|r| r.name).unwrap_or_default(),
                object: g.object.map(|o| o.name).unwrap_or_default(),
                object_name: g.object_name,
                privilege: g
                    .grantor
                    .as_ref()
                    .and_then(|gr| gr.privilege.as_ref())
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                db: g.db_name,
                grantor: g
                    .grantor
                    .and_then(|gr| gr.user)
                    .map(|u| u.name)
                    .unwrap_or_else(|| "root".into()),
            });
        }
        success()
    }
}
