//! Users, roles, grants and privilege groups out of one Milvus and into another.
//!
//! Two ways, chosen by the version gate [`Features::rbac_meta`]:
//! - **Milvus 2.4.10+**: `BackupRBAC` exports users *with their password hashes*,
//!   custom roles, their grants and (2.4.16+) custom privilege groups; the grants of
//!   the built-in `public` role, which it leaves out, are read with `SelectGrant`.
//!   A restore reads the target the same way first and sends one `RestoreRBAC` of
//!   only what is missing: Milvus refuses the whole call when any user, role or group
//!   in it exists already. Restored users log in with their old password.
//! - **Older servers** have no such calls: the select RPCs read users, roles and
//!   grants without passwords, and a restore creates what is missing one call at a
//!   time; a new user gets a random password and the report names it for a reset.
//!
//! What a target cannot hold is adapted and said in the report, never dropped in
//! silence: grants naming a custom privilege group become one grant per member
//! privilege where the target has no groups (< 2.4.16), and grants of a built-in group
//! the target does not know are left out with a warning. Users that exist on the
//! target keep the target's password; the backed-up roles are added to them.
//!
//! Password hashes stay in the manifest (a restore needs them) and leave the server
//! through no API answer: [`redact`] empties them in `GetBackup`, and nothing here
//! formats or logs one.

use std::collections::{BTreeMap, BTreeSet};

use milvault_proto::milvault::v1::{
    BackupManifest, RbacBackup, RbacExportMethod, RbacGrant, RbacPrivilegeGroup, RbacReport,
    RbacRole, RbacUser,
};
use rand::Rng;

use crate::error::Result;
use crate::milvus::MilvusClient;
use crate::milvus::features::Features;
use crate::milvus::types::Created;

/// Roles every Milvus has; never created, never exported by `BackupRBAC`.
const BUILTIN_ROLES: [&str; 2] = ["admin", "public"];

/// The role whose grants `BackupRBAC` leaves out although users rely on them.
const PUBLIC_ROLE: &str = "public";

/// Reads every user, role, grant (grants in each of `databases`) and privilege group.
pub(crate) async fn export(client: &MilvusClient, databases: &[String]) -> Result<RbacBackup> {
    let mut out = if client.features().rbac_meta() {
        let mut out = client.backup_rbac().await?;
        for db in databases {
            out.grants
                .extend(client.select_grants(PUBLIC_ROLE, db).await?);
        }
        out
    } else {
        export_selected(client, databases).await?
    };
    let mut seen = BTreeSet::new();
    out.grants
        .retain(|g| seen.insert(grant_key(g, &g.database)));
    out.users.sort_by(|a, b| a.name.cmp(&b.name));
    out.roles.sort_by(|a, b| a.name.cmp(&b.name));
    out.privilege_groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The select RPCs (every version): no passwords, no groups.
async fn export_selected(client: &MilvusClient, databases: &[String]) -> Result<RbacBackup> {
    let mut out = RbacBackup {
        passwords_missing: true,
        method: RbacExportMethod::Select as i32,
        ..Default::default()
    };
    for u in client.select_users().await? {
        let mut roles = u.roles;
        roles.sort();
        out.users.push(RbacUser {
            name: u.name,
            roles,
            ..Default::default()
        });
    }
    for role in client.select_roles().await? {
        for db in databases {
            out.grants.extend(client.select_grants(&role, db).await?);
        }
        out.roles.push(RbacRole {
            name: role,
            ..Default::default()
        });
    }
    Ok(out)
}

/// What identifies a grant: role, object type and name, privilege, database.
type GrantKey = (String, String, String, String, String);

fn grant_key(g: &RbacGrant, db: &str) -> GrantKey {
    (
        g.role.clone(),
        g.object_type.clone(),
        g.object_name.clone(),
        g.privilege.clone(),
        db.to_owned(),
    )
}

/// Removes every password hash from a manifest about to leave the server, keeping
/// `has_password` so a reader still sees which users carry one.
pub(crate) fn redact(manifest: &mut BackupManifest) {
    for u in manifest.rbac.iter_mut().flat_map(|r| r.users.iter_mut()) {
        u.has_password |= !u.password.is_empty();
        u.password.clear();
    }
}

fn random_password() -> String {
    let mut rng = rand::rng();
    let chars = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    (0..20)
        .map(|_| chars[rng.random_range(0..chars.len())] as char)
        .collect()
}

/// The grants a target of `target` can hold: custom groups expanded into their
/// privileges where it has no groups, built-in groups it does not know left out.
/// Each adaptation is one sentence in `warnings`.
fn grants_for(target: Features, rbac: &RbacBackup, warnings: &mut Vec<String>) -> Vec<RbacGrant> {
    let groups: BTreeMap<&str, &RbacPrivilegeGroup> = rbac
        .privilege_groups
        .iter()
        .map(|g| (g.name.as_str(), g))
        .collect();
    let mut out = Vec::new();
    let mut expanded = BTreeSet::new();
    for g in &rbac.grants {
        let privilege = g.privilege.as_str();
        if let (Some(group), false) = (groups.get(privilege), target.privilege_groups()) {
            if expanded.insert(privilege) {
                warnings.push(format!(
                    "privilege group {privilege:?}: the target Milvus has no privilege groups (2.4.16+), so its grants were given privilege by privilege ({})",
                    group.privileges.join(", ")
                ));
            }
            out.extend(group.privileges.iter().map(|p| RbacGrant {
                privilege: p.clone(),
                ..g.clone()
            }));
        } else {
            out.push(g.clone());
        }
    }
    let mut seen = BTreeSet::new();
    out.retain(|g| seen.insert(grant_key(g, &g.database)));
    out.retain(|g| {
        let unknown = target.knows_builtin_privilege_group(&g.privilege) == Some(false);
        if unknown {
            warnings.push(format!(
                "grant of {:?} to role {:?} on {} {:?} in database {:?} left out: the target Milvus does not know that built-in privilege group",
                g.privilege, g.role, g.object_type, g.object_name, g.database
            ));
        }
        !unknown
    });
    out
}

/// Recreates what `rbac` holds and the target lacks. `map_db` turns a backed-up
/// database name into the target's.
pub(crate) async fn import(
    client: &MilvusClient,
    rbac: &RbacBackup,
    map_db: impl Fn(&str) -> String,
) -> Result<RbacReport> {
    let mut report = RbacReport::default();
    let grants = grants_for(client.features(), rbac, &mut report.warnings);
    let existing_users: BTreeSet<String> = client.list_users().await?.into_iter().collect();
    // Users that exist keep their password; users without a hash in the backup cannot
    // go through `RestoreRBAC` (it stores the hash as given).
    let (kept, new): (Vec<&RbacUser>, Vec<&RbacUser>) = rbac
        .users
        .iter()
        .partition(|u| existing_users.contains(&u.name));
    report.users_kept = kept.iter().map(|u| u.name.clone()).collect();
    let meta_path = client.features().rbac_meta();
    let (hashed, plain): (Vec<&RbacUser>, Vec<&RbacUser>) = new
        .into_iter()
        .partition(|u| meta_path && !u.password.is_empty());

    if meta_path {
        restore_missing(client, rbac, &grants, &hashed, &map_db, &mut report).await?;
    } else {
        // Milvus answers a grant that exists with success (2.3.5, seen), so what is
        // there is read first: the report counts only what this restore added.
        let roles_there: BTreeSet<String> = client.select_roles().await?.into_iter().collect();
        let there = grants_there(client, &roles_there, &grants, &map_db).await?;
        for role in &rbac.roles {
            if client.create_role(&role.name).await? == Created::New {
                report.roles += 1;
            }
        }
        for g in &grants {
            let db = map_db(&g.database);
            if there.contains(&grant_key(g, &db)) {
                continue;
            }
            if client.grant(g, &db).await? == Created::New {
                report.grants += 1;
            }
        }
    }
    for user in &plain {
        if client.create_user(&user.name, &random_password()).await? == Created::New {
            report.users += 1;
            report.users_needing_password_reset.push(user.name.clone());
        }
    }
    // Roles of users created without `RestoreRBAC`, and backed-up roles of users that
    // existed (an existing binding succeeds).
    for user in plain.iter().chain(&kept) {
        for role in &user.roles {
            client.add_user_to_role(&user.name, role).await?;
        }
    }
    Ok(report)
}

/// The `RestoreRBAC` path: reads the target, sends one call of what is missing.
async fn restore_missing(
    client: &MilvusClient,
    rbac: &RbacBackup,
    grants: &[RbacGrant],
    users: &[&RbacUser],
    map_db: &impl Fn(&str) -> String,
    report: &mut RbacReport,
) -> Result<()> {
    let target = client.backup_rbac().await?;
    let roles_there: BTreeSet<String> = client.select_roles().await?.into_iter().collect();
    let mut missing = RbacBackup {
        roles: rbac
            .roles
            .iter()
            .filter(|r| !roles_there.contains(&r.name) && !BUILTIN_ROLES.contains(&r.name.as_str()))
            .cloned()
            .collect(),
        users: users.iter().map(|u| (*u).clone()).collect(),
        ..Default::default()
    };
    if client.features().privilege_groups() {
        let there: BTreeMap<&str, &RbacPrivilegeGroup> = target
            .privilege_groups
            .iter()
            .map(|g| (g.name.as_str(), g))
            .collect();
        for g in &rbac.privilege_groups {
            match there.get(g.name.as_str()) {
                None => missing.privilege_groups.push(g.clone()),
                Some(t) => {
                    let (a, b): (BTreeSet<&String>, BTreeSet<&String>) =
                        (t.privileges.iter().collect(), g.privileges.iter().collect());
                    if a != b {
                        report.warnings.push(format!(
                            "privilege group {:?} exists on the target with other privileges ({}; the backup has {}): kept as it is",
                            g.name,
                            t.privileges.join(", "),
                            g.privileges.join(", ")
                        ));
                    }
                }
            }
        }
    }
    // Grants that exist: the target's `BackupRBAC` has those of custom roles; the
    // others (`public`) are asked per database.
    let custom: BTreeSet<String> = target.roles.iter().map(|r| r.name.clone()).collect();
    let builtin: BTreeSet<String> = roles_there.difference(&custom).cloned().collect();
    let mut there: BTreeSet<GrantKey> = target
        .grants
        .iter()
        .map(|g| grant_key(g, &g.database))
        .collect();
    there.extend(grants_there(client, &builtin, grants, map_db).await?);
    missing.grants = grants
        .iter()
        .filter(|g| !there.contains(&grant_key(g, &map_db(&g.database))))
        .cloned()
        .collect();
    report.roles = count(missing.roles.len());
    report.privilege_groups = count(missing.privilege_groups.len());
    report.grants = count(missing.grants.len());
    report.users += count(missing.users.len());
    report.users_with_password = count(missing.users.len());
    let empty = missing.roles.is_empty()
        && missing.privilege_groups.is_empty()
        && missing.grants.is_empty()
        && missing.users.is_empty();
    if !empty {
        client.restore_rbac(&missing, map_db).await?;
    }
    Ok(())
}

/// The grants the target holds already for those of `grants` whose role is in
/// `roles` (one `SelectGrant` per role and target database).
async fn grants_there(
    client: &MilvusClient,
    roles: &BTreeSet<String>,
    grants: &[RbacGrant],
    map_db: &impl Fn(&str) -> String,
) -> Result<BTreeSet<GrantKey>> {
    let mut out = BTreeSet::new();
    let mut asked = BTreeSet::new();
    for g in grants {
        let db = map_db(&g.database);
        if roles.contains(&g.role) && asked.insert((g.role.clone(), db.clone())) {
            for have in client.select_grants(&g.role, &db).await? {
                out.insert(grant_key(&have, &have.database));
            }
        }
    }
    Ok(out)
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::milvus::features::Version;

    fn grant(role: &str, privilege: &str) -> RbacGrant {
        RbacGrant {
            role: role.into(),
            object_type: "Collection".into(),
            object_name: "*".into(),
            privilege: privilege.into(),
            database: "default".into(),
            grantor: "root".into(),
        }
    }

    fn backup() -> RbacBackup {
        RbacBackup {
            grants: vec![
                grant("r", "Query"),
                grant("r", "readers"),
                grant("r", "ClusterReadOnly"),
            ],
            privilege_groups: vec![RbacPrivilegeGroup {
                name: "readers".into(),
                privileges: vec!["Query".into(), "Search".into()],
            }],
            ..Default::default()
        }
    }

    fn privileges(grants: &[RbacGrant]) -> Vec<&str> {
        grants.iter().map(|g| g.privilege.as_str()).collect()
    }

    #[test]
    fn groups_are_kept_expanded_or_left_out_by_the_targets_version() {
        let at = |v: &str| Features::new(Version::parse(v).expect("version"));
        let mut w = Vec::new();
        let g = grants_for(at("v2.5.0"), &backup(), &mut w);
        assert_eq!(privileges(&g), ["Query", "readers", "ClusterReadOnly"]);
        assert!(w.is_empty(), "{w:?}");

        let g = grants_for(at("v2.4.10"), &backup(), &mut w);
        assert_eq!(privileges(&g), ["Query", "Search"]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("\"readers\"") && w[0].contains("Query, Search"));
        assert!(w[1].contains("\"ClusterReadOnly\""));

        let mut w = Vec::new();
        let g = grants_for(at("v2.3.5"), &backup(), &mut w);
        assert_eq!(privileges(&g), ["Query", "Search"]);
        assert_eq!(w.len(), 2, "{w:?}");
    }

    #[test]
    fn redaction_keeps_only_the_fact_of_a_password() {
        let mut m = BackupManifest {
            rbac: Some(RbacBackup {
                users: vec![
                    RbacUser {
                        name: "alice".into(),
                        password: "$2a$10$hash".into(),
                        has_password: true,
                        ..Default::default()
                    },
                    RbacUser {
                        name: "bob".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        redact(&mut m);
        let users = m.rbac.expect("rbac").users;
        assert!(users.iter().all(|u| u.password.is_empty()));
        assert_eq!(
            users.iter().map(|u| u.has_password).collect::<Vec<_>>(),
            [true, false]
        );
    }
}
