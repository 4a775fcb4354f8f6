//! Users, roles and grants: the select RPCs every version has, the create/operate calls
//! with each version's "already exists" answers, `BackupRBAC`/`RestoreRBAC` (2.4.10+)
//! and custom privilege groups (2.4.16+).
//!
//! What each version refuses, as the real one does (`MILVUS-24-26.md` d.1–d.2; rootcoord
//! `meta_table.go` `CheckIfRBACRestorable`, `kv_catalog.go` `BackupRBAC`):
//! - `BackupRBAC` leaves out `root`, the roles `admin` and `public` and their grants,
//!   and gives each user's stored password hash, never the password;
//! - `RestoreRBAC` refuses the whole call when it is empty, when a role, privilege group
//!   or user in it exists, when a grant names a privilege that is neither built in nor
//!   a group existing after the call, or when a user names a role that will not exist;
//!   it stores the hash as given, so the user logs in with the old password;
//! - before 2.4.16 `RBACMeta` has no `privilege_groups` field: groups sent are dropped
//!   (an unknown field), so grants naming them fail the privilege check;
//! - `OperatePrivilege` refuses a privilege name that is not built in (for the
//!   version: built-in groups from 2.4.10 and 2.4.18) or a custom group
//!   ("not found the privilege name[...]"; the per-object-type check is not modelled).

use std::collections::BTreeSet;

use base64::Engine;
use milvault_proto::milvus::common::{ErrorCode, ObjectPrivilege, Status};
use milvault_proto::milvus::milvus as pb;
use tonic::{Request, Response, Status as GrpcStatus};

use super::FakeMilvus;
use super::behaviour::Behaviour;
use super::grpc::{Answer, done, failed, ok, success, unimplemented};
use super::model::{self, Grant, Model};

type R<T> = Result<Response<T>, GrpcStatus>;

impl Answer for pb::ListPrivilegeGroupsResponse {
    fn set_status(&mut self, s: Status) {
        self.status = Some(s);
    }
}

/// Whether `name` is a privilege or built-in privilege group this version knows
/// (`util.IsPrivilegeNameDefined`: `Privilege<name>` or `PrivilegeGroup<name>` in
/// `common.proto`'s `ObjectPrivilege`).
fn builtin(b: &Behaviour, name: &str) -> bool {
    if ObjectPrivilege::from_str_name(&format!("Privilege{name}")).is_some() {
        return true;
    }
    match ObjectPrivilege::from_str_name(&format!("PrivilegeGroup{name}")) {
        // ReadOnly, ReadWrite, Admin (53–55): 2.4.10; the cluster, database and
        // collection groups (60–68): 2.4.18.
        Some(p) if (p as i32) < 60 => b.rbac_meta,
        Some(_) => b.at_least(2, 4, 18),
        None => false,
    }
}

/// Whether a grant may name `privilege` on this server now.
fn grantable(b: &Behaviour, m: &Model, privilege: &str) -> bool {
    privilege == "*"
        || builtin(b, privilege)
        || (b.privilege_groups && m.rbac.groups.contains_key(privilege))
}

fn grant_to_wire(g: &Grant) -> pb::GrantEntity {
    pb::GrantEntity {
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
    }
}

fn group_to_wire(name: &str, privileges: &BTreeSet<String>) -> pb::PrivilegeGroupInfo {
    pb::PrivilegeGroupInfo {
        group_name: name.to_owned(),
        privileges: privileges
            .iter()
            .map(|p| pb::PrivilegeEntity { name: p.clone() })
            .collect(),
    }
}

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
        if !grantable(&b, &m, &privilege) {
            return failed(b.status(
                65535,
                ErrorCode::OperatePrivilegeFailure,
                format!("not found the privilege name[{privilege}]"),
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
            .map(grant_to_wire)
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
                .map(grant_to_wire)
                .collect(),
            // The field exists from 2.4.16; custom groups only.
            privilege_groups: if self.behaviour.privilege_groups {
                m.rbac
                    .groups
                    .iter()
                    .map(|(n, p)| group_to_wire(n, p))
                    .collect()
            } else {
                Vec::new()
            },
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
        let mut meta = r.into_inner().rbac_meta.unwrap_or_default();
        if !b.privilege_groups {
            // Field 4 is unknown to this version: dropped while decoding.
            meta.privilege_groups.clear();
        }
        if meta.users.is_empty()
            && meta.roles.is_empty()
            && meta.grants.is_empty()
            && meta.privilege_groups.is_empty()
        {
            return failed(b.unexpected("rbac meta is empty"));
        }
        let mut m = self.lock();
        // CheckIfRBACRestorable, in its order: roles, groups, grants, users.
        for role in &meta.roles {
            if m.rbac.roles.contains(&role.name) {
                return failed(b.unexpected(format!("role [{}] already exists", role.name)));
            }
        }
        for g in &meta.privilege_groups {
            if m.rbac.groups.contains_key(&g.group_name) {
                return failed(
                    b.unexpected(format!("privilege group [{}] already exists", g.group_name)),
                );
            }
        }
        for g in &meta.grants {
            let name = g
                .grantor
                .as_ref()
                .and_then(|gr| gr.privilege.as_ref())
                .map(|p| p.name.as_str())
                .unwrap_or_default();
            let new_group = meta.privilege_groups.iter().any(|p| p.group_name == name);
            if !new_group && !grantable(&b, &m, name) {
                return failed(b.unexpected(format!("privilege [{name}] does not exist")));
            }
        }
        for u in &meta.users {
            if m.rbac.users.contains_key(&u.user) {
                return failed(b.unexpected(format!("user [{}] already exists", u.user)));
            }
            for r in &u.roles {
                if !m.rbac.roles.contains(&r.name) && !meta.roles.iter().any(|n| n.name == r.name) {
                    return failed(b.unexpected(format!("role [{}] does not exist", r.name)));
                }
            }
        }
        for role in meta.roles {
            m.rbac.roles.insert(role.name);
        }
        for g in meta.privilege_groups {
            m.rbac.groups.insert(
                g.group_name,
                g.privileges.into_iter().map(|p| p.name).collect(),
            );
        }
        for u in meta.users {
            for r in &u.roles {
                m.rbac.user_roles.insert((u.user.clone(), r.name.clone()));
            }
            // The hash as given (`AlterCredential{EncryptedPassword}`).
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

    pub(super) async fn create_privilege_group_rpc(
        &self,
        r: Request<pb::CreatePrivilegeGroupRequest>,
    ) -> R<Status> {
        self.record("CreatePrivilegeGroup");
        let b = self.behaviour.clone();
        if !b.privilege_groups {
            return Err(unimplemented("CreatePrivilegeGroup"));
        }
        let name = r.into_inner().group_name;
        if name.is_empty() {
            return failed(b.invalid("the privilege group name is empty"));
        }
        let mut m = self.lock();
        if m.rbac.groups.contains_key(&name) {
            return failed(b.invalid(format!("privilege group name [{name}] is defined by users")));
        }
        if builtin(&b, &name) {
            return failed(b.invalid(format!(
                "privilege group name [{name}] is defined by built in privileges or privilege groups in system"
            )));
        }
        m.rbac.groups.insert(name, BTreeSet::new());
        success()
    }

    pub(super) async fn drop_privilege_group_rpc(
        &self,
        r: Request<pb::DropPrivilegeGroupRequest>,
    ) -> R<Status> {
        self.record("DropPrivilegeGroup");
        let b = self.behaviour.clone();
        if !b.privilege_groups {
            return Err(unimplemented("DropPrivilegeGroup"));
        }
        let name = r.into_inner().group_name;
        let mut m = self.lock();
        if !m.rbac.groups.contains_key(&name) {
            return failed(b.invalid("the privilege group is not a custom privilege group"));
        }
        if let Some(g) = m.rbac.grants.iter().find(|g| g.privilege == name) {
            return failed(b.unexpected(format!(
                "privilege group [{name}] is used by role [{}], Use REVOKE API to revoke it first",
                g.role
            )));
        }
        m.rbac.groups.remove(&name);
        success()
    }

    pub(super) async fn list_privilege_groups_rpc(
        &self,
        _r: Request<pb::ListPrivilegeGroupsRequest>,
    ) -> R<pb::ListPrivilegeGroupsResponse> {
        self.record("ListPrivilegeGroups");
        if !self.behaviour.privilege_groups {
            return Err(unimplemented("ListPrivilegeGroups"));
        }
        let m = self.lock();
        done(pb::ListPrivilegeGroupsResponse {
            status: ok(),
            privilege_groups: m
                .rbac
                .groups
                .iter()
                .map(|(n, p)| group_to_wire(n, p))
                .collect(),
        })
    }

    pub(super) async fn operate_privilege_group_rpc(
        &self,
        r: Request<pb::OperatePrivilegeGroupRequest>,
    ) -> R<Status> {
        self.record("OperatePrivilegeGroup");
        let b = self.behaviour.clone();
        if !b.privilege_groups {
            return Err(unimplemented("OperatePrivilegeGroup"));
        }
        let req = r.into_inner();
        let mut m = self.lock();
        if !m.rbac.groups.contains_key(&req.group_name) {
            return failed(b.invalid(format!(
                "there is no privilege group name [{}] defined in system to operate",
                req.group_name
            )));
        }
        if req.privileges.is_empty() {
            return failed(b.invalid("privileges is empty when alter the privilege group"));
        }
        for p in &req.privileges {
            if !builtin(&b, &p.name) && !m.rbac.groups.contains_key(&p.name) {
                return failed(b.invalid(format!(
                    "there is no privilege name or privilege group name [{}] defined in system to operate",
                    p.name
                )));
            }
        }
        let add = req.r#type == pb::OperatePrivilegeGroupType::AddPrivilegesToGroup as i32;
        if let Some(set) = m.rbac.groups.get_mut(&req.group_name) {
            for p in req.privileges {
                if add {
                    set.insert(p.name);
                } else {
                    set.remove(&p.name);
                }
            }
        }
        success()
    }
}

/// What tests read and set beyond the common helpers in `mod.rs`.
impl FakeMilvus {
    /// The password hash stored for `user`, as `BackupRBAC` gives it out.
    pub fn password_hash(&self, user: &str) -> Option<String> {
        self.lock().rbac.users.get(user).cloned()
    }

    /// Whether `user` logs in with `password`: the stored hash is that password's.
    pub fn logs_in(&self, user: &str, password: &str) -> bool {
        self.password_hash(user).as_deref() == Some(model::hash_password(password).as_str())
    }

    /// The roles bound to `user`.
    pub fn user_roles(&self, user: &str) -> Vec<String> {
        self.lock()
            .rbac
            .user_roles
            .iter()
            .filter(|(u, _)| u == user)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Creates (or replaces) the custom privilege group `name` (a 2.4.16+ state; the
    /// fake does not refuse it on older versions, so tests set up only what the
    /// version can hold).
    pub fn add_privilege_group(&self, name: &str, privileges: &[&str]) {
        self.lock().rbac.groups.insert(
            name.to_owned(),
            privileges.iter().map(|p| (*p).to_owned()).collect(),
        );
    }

    /// Custom privilege groups with their privileges.
    pub fn privilege_groups(&self) -> Vec<(String, Vec<String>)> {
        self.lock()
            .rbac
            .groups
            .iter()
            .map(|(n, p)| (n.clone(), p.iter().cloned().collect()))
            .collect()
    }
}
