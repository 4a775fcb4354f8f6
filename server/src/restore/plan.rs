//! Restore planning: where each backed-up collection goes, decided from the request
//! before any work (filter, database map, explicit renames, suffix), with every name
//! checked against Milvus's rules.

use std::collections::{BTreeMap, BTreeSet};

use milvault_proto::milvault::v1::{BackupManifest, RestoreBackupRequest};

use crate::error::{Error, Result};
use crate::selection::{DEFAULT_DB, Filter, validate_milvus_name};

/// Where one backed-up collection goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// Index into the manifest's collections.
    pub(crate) source: usize,
    /// Target database.
    pub(crate) database: String,
    /// Target collection name.
    pub(crate) collection: String,
}

/// Decides every target from the request, before any work: filter, database map,
/// explicit renames, suffix. Fails on names Milvus would refuse, on renames of
/// collections the backup does not hold, and on two sources landing on one target.
pub(crate) fn plan_targets(
    manifest: &BackupManifest,
    spec: &RestoreBackupRequest,
) -> Result<Vec<Target>> {
    let filter = Filter::parse(&spec.collections)?;
    let key = |db: &str, c: &str| format!("{db}.{c}");
    let mut renames = BTreeMap::new();
    for (from, to) in &spec.renames {
        let from = if from.contains('.') {
            from.clone()
        } else {
            key(DEFAULT_DB, from)
        };
        let (to_db, to_name) = match to.split_once('.') {
            Some((d, c)) => (Some(d.to_owned()), c.to_owned()),
            None => (None, to.clone()),
        };
        validate_milvus_name("rename target", &to_name)?;
        if let Some(d) = &to_db {
            validate_milvus_name("rename target database", d)?;
        }
        if !manifest
            .collections
            .iter()
            .any(|c| key(&c.database, &c.name) == from)
        {
            return Err(Error::invalid(
                "rename",
                format!("{from:?} is not a collection of backup {:?}", manifest.name),
            ));
        }
        if !manifest
            .collections
            .iter()
            .any(|c| key(&c.database, &c.name) == from && filter.matches(&c.database, &c.name))
        {
            return Err(Error::invalid(
                "rename",
                format!("{from:?} is not among the collections this restore selects"),
            ));
        }
        renames.insert(from, (to_db, to_name));
    }
    for (from, to) in &spec.database_map {
        validate_milvus_name("database map source", from)?;
        validate_milvus_name("database map target", to)?;
        // A map must apply to something restored: a selected collection's database,
        // or (restoring everything) one of the backup's databases.
        let used = manifest
            .collections
            .iter()
            .any(|c| &c.database == from && filter.matches(&c.database, &c.name))
            || (filter.is_all() && manifest.databases.iter().any(|d| &d.name == from));
        if !used {
            return Err(Error::invalid(
                "database map",
                format!("database {from:?} is not among what this restore selects"),
            ));
        }
    }
    if !spec.suffix.is_empty()
        && !spec
            .suffix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::invalid(
            "suffix",
            format!("{:?} may hold only letters, digits and _", spec.suffix),
        ));
    }
    let mut targets = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, c) in manifest.collections.iter().enumerate() {
        if !filter.matches(&c.database, &c.name) {
            continue;
        }
        let mapped_db = spec
            .database_map
            .get(&c.database)
            .cloned()
            .unwrap_or_else(|| c.database.clone());
        let (database, collection) = match renames.get(&key(&c.database, &c.name)) {
            Some((db, name)) => (db.clone().unwrap_or(mapped_db), name.clone()),
            None => (mapped_db, format!("{}{}", c.name, spec.suffix)),
        };
        validate_milvus_name("target collection", &collection)?;
        if !seen.insert(key(&database, &collection)) {
            return Err(Error::invalid(
                "rename",
                format!("two collections would be restored into {database}.{collection}"),
            ));
        }
        targets.push(Target {
            source: i,
            database,
            collection,
        });
    }
    for (db, coll) in filter.exact_names() {
        if !manifest
            .collections
            .iter()
            .any(|c| c.database == db && c.name == coll)
        {
            return Err(Error::CollectionNotFound {
                place: format!("backup {:?}", manifest.name),
                database: db,
                collection: coll,
            });
        }
    }
    if targets.is_empty() && !manifest.collections.is_empty() {
        return Err(Error::invalid(
            "collection filter",
            "selects no collection of the backup",
        ));
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use milvault_proto::milvault::v1::CollectionBackup;

    fn manifest() -> BackupManifest {
        let c = |db: &str, n: &str| CollectionBackup {
            database: db.into(),
            name: n.into(),
            ..Default::default()
        };
        BackupManifest {
            name: "b".into(),
            collections: vec![c("default", "a"), c("default", "b"), c("db1", "a")],
            ..Default::default()
        }
    }

    #[test]
    fn plans_suffix_renames_and_db_map() {
        let mut spec = RestoreBackupRequest {
            suffix: "_r".into(),
            ..Default::default()
        };
        spec.renames.insert("b".into(), "bee".into());
        spec.database_map.insert("db1".into(), "db2".into());
        let t = plan_targets(&manifest(), &spec).expect("plan");
        let names: Vec<String> = t
            .iter()
            .map(|t| format!("{}.{}", t.database, t.collection))
            .collect();
        assert_eq!(names, vec!["default.a_r", "default.bee", "db2.a_r"]);
    }

    #[test]
    fn maps_and_renames_must_apply_to_what_is_selected() {
        let mut spec = RestoreBackupRequest {
            collections: vec!["db1.*".into()],
            ..Default::default()
        };
        spec.renames.insert("a".into(), "x".into());
        let err = plan_targets(&manifest(), &spec).expect_err("rename not selected");
        assert_eq!(err.reason().as_str(), "INVALID_ARGUMENT");
        let mut spec = RestoreBackupRequest {
            collections: vec!["db1.*".into()],
            ..Default::default()
        };
        spec.database_map.insert("default".into(), "d2".into());
        let err = plan_targets(&manifest(), &spec).expect_err("map not selected");
        assert_eq!(err.reason().as_str(), "INVALID_ARGUMENT");
        spec.database_map.clear();
        spec.database_map.insert("db1".into(), "d2".into());
        assert_eq!(plan_targets(&manifest(), &spec).expect("plan").len(), 1);
    }

    #[test]
    fn refuses_bad_plans() {
        let mut spec = RestoreBackupRequest::default();
        spec.renames.insert("nope".into(), "x".into());
        assert_eq!(
            plan_targets(&manifest(), &spec)
                .expect_err("rename")
                .reason()
                .as_str(),
            "INVALID_ARGUMENT"
        );
        let mut spec = RestoreBackupRequest::default();
        spec.renames.insert("a".into(), "b".into());
        assert!(
            plan_targets(&manifest(), &spec)
                .expect_err("clash")
                .to_string()
                .contains("two collections")
        );
        let spec = RestoreBackupRequest {
            collections: vec!["zzz".into()],
            ..Default::default()
        };
        assert_eq!(
            plan_targets(&manifest(), &spec)
                .expect_err("missing")
                .reason()
                .as_str(),
            "COLLECTION_NOT_FOUND"
        );
        let spec = RestoreBackupRequest {
            suffix: "-x".into(),
            ..Default::default()
        };
        assert!(plan_targets(&manifest(), &spec).is_err());
    }
}
