//! One collection's restore: (replace) → create database, collection and partitions
//! → data → indexes → aliases → load.

use std::collections::{BTreeMap, BTreeSet};

use milvault_proto::milvault::v1::{
    CollectionReport, CollectionSchema, JobPhase, JobResource, ResourceKind, RestoreMethod,
};

use super::{Owned, Side, Target, Task};
use crate::error::{Error, Result};
use crate::milvus::types::NewCollection;
use crate::selection::DEFAULT_DB;

/// Field names and ids, sorted, for comparing a created collection with the backup.
fn field_ids(s: &CollectionSchema) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = s
        .fields
        .iter()
        .map(|f| (f.name.clone(), f.field_id))
        .collect();
    v.sort();
    v
}

/// A restore must hold exactly the backup's live rows, per partition and in all: a
/// failed, partial or empty import, or deletes applied wrongly, fail it here.
fn check_rows(task: Task<'_>, restored: &BTreeMap<i64, i64>) -> Result<()> {
    let src = task.src;
    if !src.rows_counted {
        // A manifest written before milvault counted rows: nothing to compare with.
        return Ok(());
    }
    let target = format!("{}.{}", task.target.database, task.target.collection);
    let total: i64 = restored.values().sum();
    if total != src.live_rows {
        return Err(Error::RowsMismatch {
            collection: target,
            message: format!(
                "the restore holds {total} rows, the backup holds {} live rows",
                src.live_rows
            ),
        });
    }
    for p in &src.partitions {
        let got = restored.get(&p.partition_id).copied().unwrap_or(0);
        if got != p.live_rows {
            return Err(Error::RowsMismatch {
                collection: target,
                message: format!(
                    "partition {:?}: the restore holds {got} rows, the backup holds {} live rows",
                    p.name, p.live_rows
                ),
            });
        }
    }
    Ok(())
}

impl Side<'_> {
    /// Restores one collection under `build` (its own name, or a temporary one when
    /// it replaces a collection); returns its report and the index of the job
    /// resource that holds it. `owned`: the collection an interrupted run of this
    /// restore created (ResumeJob), built on where its imports can be trusted.
    pub(super) async fn restore_collection(
        &self,
        task: Task<'_>,
        build: &str,
        owned: Option<Owned>,
    ) -> Result<(CollectionReport, usize)> {
        let (client, ctx) = (self.client, self.ctx);
        let (src, idx) = (task.src, task.idx);
        let final_name = task.target.collection.clone();
        let built = Target {
            source: task.target.source,
            database: task.target.database.clone(),
            collection: build.to_owned(),
        };
        let task = Task {
            target: &built,
            ..task
        };
        let t = task.target;
        let (db, name) = (t.database.as_str(), t.collection.as_str());
        ctx.phase(JobPhase::Creating, format!("{db}.{name}")).await;
        ctx.collection_phase(idx, JobPhase::Creating);
        let mut report = CollectionReport {
            database: src.database.clone(),
            collection: src.name.clone(),
            target_database: db.to_owned(),
            target_collection: final_name,
            size_bytes: src.size_bytes,
            ..Default::default()
        };
        if let Some(ttl) = src
            .properties
            .iter()
            .find(|kv| kv.key == "collection.ttl.seconds")
            .and_then(|kv| kv.value.parse::<i64>().ok())
            .filter(|ttl| *ttl > 0)
            && client.features().import_keeps_row_timestamps()
        {
            let age = self
                .job
                .manifest
                .end_time
                .map(|t| crate::jobs::now().seconds - t.seconds)
                .unwrap_or(0);
            if age > ttl {
                report.warnings.push(format!(
                    "the collection's TTL is {ttl} s and the backup is {age} s old: Milvus {} keeps the rows' original timestamps, so the restored rows expire at once; remove or raise collection.ttl.seconds",
                    client.version_text()
                ));
            }
        }
        if db != DEFAULT_DB && !client.list_databases().await?.iter().any(|d| d == db) {
            client.create_database(db).await?;
        }
        let schema = src.schema.as_ref().ok_or_else(|| Error::Manifest {
            name: self.job.manifest.name.clone(),
            message: format!("collection {}.{} has no schema", src.database, src.name),
        })?;
        let partition_key = schema.fields.iter().any(|f| f.is_partition_key);
        let storage_v2 = src
            .segments
            .iter()
            .any(|s| s.storage_version >= crate::rows::STORAGE_V2);
        let row_insert = (partition_key && !client.features().binlog_import_into_partition_key())
            || (storage_v2 && !client.features().imports_storage_v2());
        let mut exists = owned.is_some_and(|o| o.here);
        if exists && (row_insert || self.untrusted(db, name)) {
            // Rows inserted, or an import Milvus may have run unrecorded: what the
            // interrupted run put in cannot be told apart, so it starts again.
            client.drop_collection(db, name).await?;
            self.forget_imports(db, name).await;
            report.warnings.push(format!(
                "the interrupted restore's {db}.{name} was rebuilt: what it held could not be told apart"
            ));
            exists = false;
        }
        let resource = match owned {
            Some(o) => o.resource,
            // Journaled before it exists: a failure, a cancel or a crash drops it again.
            None => {
                ctx.hold(JobResource {
                    kind: ResourceKind::Collection as i32,
                    cluster: self.job.cluster.name.clone(),
                    database: db.to_owned(),
                    name: name.to_owned(),
                    ..Default::default()
                })
                .await
            }
        };
        if !exists {
            client
                .create_collection(&NewCollection {
                    database: db,
                    name,
                    schema,
                    raw_schema: &src.milvus_schema,
                    shards_num: src.shards_num,
                    consistency_level: src.consistency_level(),
                    properties: &src.properties,
                    num_partitions: if partition_key { src.num_partitions } else { 0 },
                })
                .await?;
        }

        // Binlogs are matched to fields by id: the new collection must have the same ids.
        let got = field_ids(&client.describe_collection(db, name).await?.schema);
        let want = field_ids(schema);
        if got != want {
            return Err(Error::unsupported(
                format!(
                    "the target assigned different field ids to {db}.{name} ({got:?}, backup has {want:?}); binlogs cannot be imported into it"
                ),
                db,
                name,
                client.cluster(),
            ));
        }
        let mut partition_names = BTreeMap::new();
        let existing_parts: BTreeSet<String> = client
            .show_partitions(db, name)
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect();
        for p in &src.partitions {
            if !partition_key && !existing_parts.contains(&p.name) {
                client.create_partition(db, name, &p.name).await?;
            }
            partition_names.insert(p.partition_id, p.name.clone());
        }

        if self.job.request.meta_only {
            report.method = RestoreMethod::MetaOnly as i32;
        } else {
            let restored = if row_insert {
                ctx.collection_method(idx, RestoreMethod::RowInsert);
                report.method = RestoreMethod::RowInsert as i32;
                report.warnings.push(if storage_v2 && !client.features().imports_storage_v2() {
                    format!(
                        "Milvus {} cannot import storage-v2 segments: the live rows were read from the backup and inserted",
                        client.version_text()
                    )
                } else {
                    format!(
                        "Milvus {} cannot import binlogs into a partition-key collection: the live rows were read from the backup and inserted",
                        client.version_text()
                    )
                });
                if schema.fields.iter().any(|f| f.is_primary_key && f.auto_id) {
                    report
                        .warnings
                        .push("auto-id primary keys were reassigned by the row insert".into());
                }
                self.restore_rows(task, schema, &partition_names).await?
            } else {
                ctx.collection_method(idx, RestoreMethod::BinlogImport);
                ctx.collection_phase(idx, JobPhase::Importing);
                ctx.phase(JobPhase::Importing, format!("{db}.{name}")).await;
                report.method = RestoreMethod::BinlogImport as i32;
                let imported = self.import_all(task, t, &partition_names).await?;
                report.import_tasks = imported.tasks;
                report.segments_resumed = imported.resumed;
                imported.rows
            };
            report.rows = restored.values().sum();
            ctx.collection_phase(idx, JobPhase::Checking);
            check_rows(task, &restored)?;
        }

        if !self.job.request.skip_indexes {
            ctx.collection_phase(idx, JobPhase::Indexing);
            // An inherited collection may have its indexes already.
            let have: BTreeSet<String> = if exists {
                client
                    .describe_indexes(db, name)
                    .await?
                    .into_iter()
                    .map(|i| i.index_name)
                    .collect()
            } else {
                BTreeSet::new()
            };
            for index in src.indexes.iter().filter(|i| !have.contains(&i.index_name)) {
                client.create_index(db, name, index).await?;
            }
        } else if !src.indexes.is_empty() {
            report
                .warnings
                .push("indexes were not built (skip_indexes)".into());
        }

        if src.loaded && !self.job.request.skip_load {
            ctx.collection_phase(idx, JobPhase::Loading);
            if let Err(e) = client.load(db, name).await {
                report.warnings.push(format!(
                    "the collection was loaded at backup time but loading it failed: {e}"
                ));
            }
        }
        Ok((report, resource))
    }
}
