//! The restore job: plan the targets → check the target cluster (nothing is written
//! until every target passed) → per collection: create database, collection (same
//! field ids), partitions → stage each segment's files in the target's storage outside
//! Milvus's own directories → `Import` in backup mode (bounded parallel) → wait and
//! check row counts → indexes → aliases → load → remove the staged files.
//!
//! A collection this job created is dropped again when the job fails, so a failed
//! restore never leaves a half-filled collection that looks complete.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use milvault_proto::milvault::v1::{
    BackupManifest, CollectionBackup, CollectionProgress, CollectionReport, JobReport,
    RestoreBackupSpec, RestoreMethod, SegmentBackup,
};
use milvault_proto::milvus::common::{ImportState, KeyValuePair};
use milvault_proto::milvus::milvus as pb;
use prost::Message;

use crate::app::Cluster;
use crate::error::{Error, Result};
use crate::jobs::JobCtx;
use crate::milvus::{MilvusClient, convert};
use crate::repository::Repository;
use crate::selection::{DEFAULT_DB, Filter, validate_milvus_name};
use crate::storage::Copied;

/// Where one backed-up collection goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Index into the manifest's collections.
    pub source: usize,
    /// Target database.
    pub database: String,
    /// Target collection name.
    pub collection: String,
}

/// Decides every target from the request, before any work: filter, database map,
/// explicit renames, suffix. Fails on names Milvus would refuse, on renames of
/// collections the backup does not hold, and on two sources landing on one target.
pub fn plan_targets(manifest: &BackupManifest, spec: &RestoreBackupSpec) -> Result<Vec<Target>> {
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
        renames.insert(from, (to_db, to_name));
    }
    for (from, to) in &spec.database_map {
        validate_milvus_name("database map source", from)?;
        validate_milvus_name("database map target", to)?;
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

/// Everything a restore job needs.
pub struct RestoreJob {
    /// The request.
    pub spec: RestoreBackupSpec,
    /// The backup's manifest, read when the job was submitted.
    pub manifest: BackupManifest,
    /// Where each selected collection goes.
    pub targets: Vec<Target>,
    /// Target cluster.
    pub cluster: Cluster,
    /// Source repository.
    pub repository: Repository,
    /// Files staged at once.
    pub copy_concurrency: usize,
    /// Import tasks outstanding at once.
    pub import_concurrency: usize,
}

impl RestoreJob {
    /// Runs the job to the end.
    pub async fn run(self: Arc<Self>, ctx: JobCtx) -> Result<()> {
        ctx.phase("connecting").await;
        let client = MilvusClient::connect(&self.cluster.name, &self.cluster.config).await?;
        ctx.phase("validating").await;
        let existing = self.validate(&client).await?;
        ctx.update(|j| {
            if let Some(p) = j.progress.as_mut() {
                p.collections_total = self.targets.len() as u32;
                p.files_total = self
                    .targets
                    .iter()
                    .map(|t| file_count(&self.manifest.collections[t.source]))
                    .sum();
                p.bytes_total = self
                    .targets
                    .iter()
                    .map(|t| staged_bytes(&self.manifest.collections[t.source]))
                    .sum();
                p.collections = self
                    .targets
                    .iter()
                    .map(|t| CollectionProgress {
                        database: t.database.clone(),
                        collection: t.collection.clone(),
                        phase: "pending".into(),
                        files_total: file_count(&self.manifest.collections[t.source]),
                        bytes_total: staged_bytes(&self.manifest.collections[t.source]),
                        ..Default::default()
                    })
                    .collect();
            }
            j.report = Some(JobReport::default());
        });

        // A restore of everything recreates every database, also those that held no
        // collection; a filtered restore creates only the databases it writes into.
        if self.spec.collections.is_empty() && client.features().supports_databases() {
            let have: BTreeSet<String> = client.list_databases().await?.into_iter().collect();
            for db in &self.manifest.databases {
                let target = self.target_database(&db.name);
                if !have.contains(&target) {
                    client.create_database(&target).await?;
                }
            }
        }

        let staging_root = format!(
            "{}/{}/",
            self.cluster.config.staging_prefix.trim_matches('/'),
            ctx.id()
        );
        let mut created: Vec<(String, String)> = Vec::new();
        let result = async {
            for (n, t) in self.targets.iter().enumerate() {
                ctx.check_cancelled()?;
                let report = self
                    .restore_one(
                        &ctx,
                        &client,
                        n,
                        t,
                        existing.contains(&n),
                        &staging_root,
                        &mut created,
                    )
                    .await?;
                ctx.update(|j| {
                    if let Some(r) = j.report.as_mut() {
                        r.collections.push(report);
                    }
                    if let Some(p) = j.progress.as_mut() {
                        p.collections_done += 1;
                        if let Some(cp) = p.collections.get_mut(n) {
                            cp.phase = "done".into();
                        }
                    }
                });
            }
            if let Some(rbac) = self
                .manifest
                .rbac
                .as_ref()
                .filter(|_| self.spec.restore_rbac)
            {
                ctx.phase("restoring users, roles and grants").await;
                let report =
                    crate::rbac::import(&client, rbac, |db| self.target_database(db)).await?;
                if !report.users_needing_password_reset.is_empty() {
                    ctx.warn(format!(
                        "users created with a random password that an administrator must reset: {}",
                        report.users_needing_password_reset.join(", ")
                    ))
                    .await;
                }
                ctx.update(|j| {
                    if let Some(r) = j.report.as_mut() {
                        r.rbac = Some(report);
                    }
                });
            }
            Ok::<_, Error>(())
        }
        .await;

        if let Err(e) = self.cluster.store.delete_prefix(&staging_root).await {
            ctx.warn(format!(
                "could not remove staged files under {staging_root}: {e}"
            ))
            .await;
        }
        if let Err(e) = &result {
            for (db, coll) in created.iter().rev() {
                tracing::warn!(db, coll, error = %e, "dropping a collection this failed restore created");
                if let Err(drop_err) = client.drop_collection(db, coll).await {
                    ctx.warn(format!(
                        "could not drop partially restored {db}.{coll}: {drop_err}"
                    ))
                    .await;
                }
            }
        }
        result
    }

    /// The target database of a backed-up database (`database_map`, else the same).
    fn target_database(&self, db: &str) -> String {
        self.spec
            .database_map
            .get(db)
            .cloned()
            .unwrap_or_else(|| db.to_owned())
    }

    /// Checks every target before anything is written; returns the indexes of targets
    /// that exist and will be replaced.
    async fn validate(&self, client: &MilvusClient) -> Result<BTreeSet<usize>> {
        let features = client.features();
        let databases: BTreeSet<String> = client.list_databases().await?.into_iter().collect();
        let mut existing = BTreeSet::new();
        for (n, t) in self.targets.iter().enumerate() {
            let src = &self.manifest.collections[t.source];
            if t.database != DEFAULT_DB && !features.supports_databases() {
                return Err(Error::Unsupported(format!(
                    "target Milvus {} has no databases; cannot restore into database {:?} (map it to default with --db-map)",
                    client.version_text(),
                    t.database
                )));
            }
            if databases.contains(&t.database)
                && client.has_collection(&t.database, &t.collection).await?
            {
                if !self.spec.drop_existing {
                    return Err(Error::CollectionExists {
                        cluster: self.cluster.name.clone(),
                        database: t.database.clone(),
                        collection: t.collection.clone(),
                    });
                }
                existing.insert(n);
            }
            if features.supports_list_aliases() {
                for alias in &src.aliases {
                    match client.describe_alias(&t.database, alias).await? {
                        Some(owner) if owner != t.collection => {
                            return Err(Error::AliasExists {
                                cluster: self.cluster.name.clone(),
                                database: t.database.clone(),
                                alias: format!("{alias} (points at {owner})"),
                            });
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(existing)
    }

    #[allow(clippy::too_many_arguments)]
    async fn restore_one(
        &self,
        ctx: &JobCtx,
        client: &MilvusClient,
        n: usize,
        t: &Target,
        exists: bool,
        staging_root: &str,
        created: &mut Vec<(String, String)>,
    ) -> Result<CollectionReport> {
        let src = &self.manifest.collections[t.source];
        let (db, name) = (t.database.as_str(), t.collection.as_str());
        let set_phase = |phase: &str| {
            let phase = phase.to_owned();
            ctx.update(|j| {
                if let Some(cp) = j.progress.as_mut().and_then(|p| p.collections.get_mut(n)) {
                    cp.phase = phase;
                }
            });
        };
        ctx.phase(&format!("creating {db}.{name}")).await;
        set_phase("creating");
        let mut report = CollectionReport {
            database: src.database.clone(),
            collection: src.name.clone(),
            target_database: db.to_owned(),
            target_collection: name.to_owned(),
            size_bytes: src.size_bytes,
            ..Default::default()
        };
        if exists {
            for alias in client.list_aliases(db, name).await? {
                client.drop_alias(db, &alias).await?;
            }
            client.drop_collection(db, name).await?;
            report
                .warnings
                .push(format!("replaced the existing collection {db}.{name}"));
        }
        if db != DEFAULT_DB && !client.list_databases().await?.iter().any(|d| d == db) {
            client.create_database(db).await?;
        }
        let schema = src.schema.as_ref().ok_or_else(|| Error::Manifest {
            name: self.manifest.name.clone(),
            message: format!("collection {}.{} has no schema", src.database, src.name),
        })?;
        let partition_key = schema.fields.iter().any(|f| f.is_partition_key);
        let req = pb::CreateCollectionRequest {
            db_name: db.to_owned(),
            collection_name: name.to_owned(),
            schema: convert::schema_to(schema, name).encode_to_vec(),
            shards_num: src.shards_num,
            consistency_level: convert::consistency_to(src.consistency_level),
            properties: convert::kvs_to(&src.properties),
            num_partitions: if partition_key { src.num_partitions } else { 0 },
            ..Default::default()
        };
        client.create_collection(req).await?;
        created.push((db.to_owned(), name.to_owned()));

        // Binlogs are matched to fields by id: the new collection must have the same ids.
        let described = client.describe_collection(db, name).await?;
        let got = convert::field_ids(&convert::schema_from(&described.schema.unwrap_or_default()));
        let want = convert::field_ids(schema);
        if got != want {
            return Err(Error::Unsupported(format!(
                "the target assigned different field ids to {db}.{name} ({got:?}, backup has {want:?}); binlogs cannot be imported into it"
            )));
        }
        let mut partition_names = BTreeMap::new();
        let existing_parts: BTreeSet<String> = client
            .show_partitions(db, name)
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        for p in &src.partitions {
            if !partition_key && !existing_parts.contains(&p.name) {
                client.create_partition(db, name, &p.name).await?;
            }
            partition_names.insert(p.partition_id, p.name.clone());
        }

        let row_insert = partition_key && !client.features().binlog_import_into_partition_key();
        if self.spec.meta_only {
            report.method = RestoreMethod::MetaOnly as i32;
        } else if row_insert {
            set_phase("importing into a temporary twin");
            ctx.phase(&format!("importing {db}.{name} (row insert)"))
                .await;
            report.method = RestoreMethod::RowInsert as i32;
            report.warnings.push(format!(
                "Milvus {} cannot import binlogs into a partition-key collection: rows were imported into a temporary twin and inserted",
                client.version_text()
            ));
            if schema.fields.iter().any(|f| f.is_primary_key && f.auto_id) {
                report
                    .warnings
                    .push("auto-id primary keys were reassigned by the row insert".into());
            }
            let tmp = Target {
                source: t.source,
                database: db.to_owned(),
                collection: format!(
                    "{name}_milvault_tmp_{}",
                    ctx.id().replace('-', "").get(..8).unwrap_or("0")
                ),
            };
            let outcome = self
                .restore_via_twin(ctx, client, n, &tmp, src, schema, staging_root)
                .await;
            if let Err(e) = client.drop_collection(db, &tmp.collection).await {
                report.warnings.push(format!(
                    "could not drop the temporary collection {}: {e}",
                    tmp.collection
                ));
            }
            report.rows = outcome?;
            client
                .flush_and_wait(db, name, Duration::from_secs(600))
                .await?;
        } else {
            set_phase("importing");
            ctx.phase(&format!("importing {db}.{name}")).await;
            report.method = RestoreMethod::BinlogImport as i32;
            report.rows = self
                .import_all(ctx, client, n, t, src, &partition_names, staging_root)
                .await?;
        }

        if !self.spec.skip_indexes {
            set_phase("indexing");
            for idx in &src.indexes {
                client
                    .create_index(pb::CreateIndexRequest {
                        db_name: db.to_owned(),
                        collection_name: name.to_owned(),
                        field_name: idx.field_name.clone(),
                        extra_params: convert::kvs_to(&idx.params),
                        index_name: idx.index_name.clone(),
                        ..Default::default()
                    })
                    .await?;
            }
        } else if !src.indexes.is_empty() {
            report
                .warnings
                .push("indexes were not built (skip_indexes)".into());
        }

        for alias in &src.aliases {
            if let Err(e) = client.create_alias(db, name, alias).await {
                return Err(match e {
                    Error::Milvus { message, .. }
                        if message.contains("exist") || message.contains("alias") =>
                    {
                        Error::AliasExists {
                            cluster: self.cluster.name.clone(),
                            database: db.to_owned(),
                            alias: alias.clone(),
                        }
                    }
                    other => other,
                });
            }
        }

        if src.loaded && !self.spec.skip_load {
            set_phase("loading");
            if let Err(e) = client.load_collection(db, name).await {
                report.warnings.push(format!(
                    "the collection was loaded at backup time but loading it failed: {e}"
                ));
            }
        }
        Ok(report)
    }

    /// Imports every segment of `src` into `t`, each into its original partition
    /// (or `_default` when `partition_names` is empty); returns the rows imported.
    #[allow(clippy::too_many_arguments)]
    async fn import_all(
        &self,
        ctx: &JobCtx,
        client: &MilvusClient,
        n: usize,
        t: &Target,
        src: &CollectionBackup,
        partition_names: &BTreeMap<i64, String>,
        staging_root: &str,
    ) -> Result<i64> {
        // Collected first: a concrete Vec of futures keeps the job future `Send`
        // (a lazy `map` over borrowed segments trips rustc's lifetime inference).
        let mut imports = Vec::with_capacity(src.segments.len());
        for seg in &src.segments {
            let partition = if partition_names.is_empty() {
                "_default".to_owned()
            } else {
                partition_names
                    .get(&seg.partition_id)
                    .cloned()
                    .ok_or_else(|| Error::Manifest {
                        name: self.manifest.name.clone(),
                        message: format!(
                            "segment {} names unknown partition {}",
                            seg.segment_id, seg.partition_id
                        ),
                    })?
            };
            imports.push(async move {
                self.import_segment(ctx, client, n, t, src, seg, &partition, staging_root)
                    .await
            });
        }
        let rows: Vec<i64> = futures::stream::iter(imports)
            .buffer_unordered(self.import_concurrency)
            .try_collect()
            .await?;
        Ok(rows.iter().sum())
    }

    /// Restores a partition-key collection where binlogs cannot go in directly: into
    /// a twin without the partition key, then row by row into the real collection.
    #[allow(clippy::too_many_arguments)]
    async fn restore_via_twin(
        &self,
        ctx: &JobCtx,
        client: &MilvusClient,
        n: usize,
        tmp: &Target,
        src: &CollectionBackup,
        schema: &milvault_proto::milvault::v1::CollectionSchema,
        staging_root: &str,
    ) -> Result<i64> {
        let mut twin = schema.clone();
        for f in &mut twin.fields {
            f.is_partition_key = false;
        }
        client
            .create_collection(pb::CreateCollectionRequest {
                db_name: tmp.database.clone(),
                collection_name: tmp.collection.clone(),
                schema: convert::schema_to(&twin, &tmp.collection).encode_to_vec(),
                shards_num: src.shards_num,
                consistency_level: 0,
                ..Default::default()
            })
            .await?;
        self.import_all(ctx, client, n, tmp, src, &BTreeMap::new(), staging_root)
            .await?;
        for f in schema.fields.iter().filter(|f| f.data_type >= 100) {
            let params = match src.indexes.iter().find(|i| i.field_name == f.name) {
                Some(i) => convert::kvs_to(&i.params),
                None => {
                    let (index_type, metric) = if f.data_type == 100 {
                        ("BIN_FLAT", "HAMMING")
                    } else {
                        ("FLAT", "L2")
                    };
                    vec![
                        KeyValuePair {
                            key: "index_type".into(),
                            value: index_type.into(),
                        },
                        KeyValuePair {
                            key: "metric_type".into(),
                            value: metric.into(),
                        },
                    ]
                }
            };
            client
                .create_index(pb::CreateIndexRequest {
                    db_name: tmp.database.clone(),
                    collection_name: tmp.collection.clone(),
                    field_name: f.name.clone(),
                    extra_params: params,
                    ..Default::default()
                })
                .await?;
        }
        crate::row_copy::load(client, &tmp.database, &tmp.collection).await?;
        let target = &self.targets[n];
        crate::row_copy::copy_rows(
            client,
            &tmp.database,
            &tmp.collection,
            &target.collection,
            schema,
        )
        .await
    }

    /// Stages one segment's files, imports them in backup mode, waits, cleans up.
    #[allow(clippy::too_many_arguments)]
    async fn import_segment(
        &self,
        ctx: &JobCtx,
        client: &MilvusClient,
        n: usize,
        t: &Target,
        src: &CollectionBackup,
        seg: &SegmentBackup,
        partition: &str,
        staging_root: &str,
    ) -> Result<i64> {
        ctx.check_cancelled()?;
        let group = format!(
            "{}/{}/{}/",
            src.collection_id, seg.partition_id, seg.segment_id
        );
        let seg_stage = format!("{staging_root}{}/", seg.segment_id);
        let insert_dir = format!("{seg_stage}insert_log/{group}");
        let delta_dir = format!("{seg_stage}delta_log/{group}");
        let files: Vec<(String, String, Copied)> = seg
            .insert_logs
            .iter()
            .map(|f| (f, &insert_dir, "insert_log/"))
            .chain(seg.delta_logs.iter().map(|f| (f, &delta_dir, "delta_log/")))
            .map(|(f, dir, kind)| {
                // source_key is kind/c/p/s/rest; staged as dir(= kind/c/p/s/) + s/ + rest.
                let rest = f
                    .source_key
                    .strip_prefix(kind)
                    .and_then(|r| r.splitn(4, '/').nth(3))
                    .unwrap_or("");
                let staged = format!("{dir}{}/{rest}", seg.segment_id);
                (
                    f.path.clone(),
                    staged,
                    Copied {
                        size: f.size_bytes,
                        sha256: f.sha256.clone(),
                    },
                )
            })
            .collect();
        let repo = self.repository.store().clone();
        let dst = self.cluster.store.clone();
        futures::stream::iter(files.into_iter().map(|(from, to, want)| {
            let (repo, dst) = (repo.clone(), dst.clone());
            async move {
                ctx.check_cancelled()?;
                let c = repo.copy_to(&from, &dst, &to, Some(&want)).await?;
                ctx.file_done(Some(n), c.size);
                Ok::<_, Error>(())
            }
        }))
        .buffer_unordered(self.copy_concurrency)
        .try_collect::<Vec<()>>()
        .await?;

        let root = self.cluster.config.storage.root();
        let import_path = |dir: &str| {
            if root.is_empty() {
                dir.to_owned()
            } else {
                format!("{root}/{dir}")
            }
        };
        let mut options = vec![KeyValuePair {
            key: "backup".into(),
            value: "true".into(),
        }];
        if client.features().import_skips_disk_quota() {
            options.push(KeyValuePair {
                key: "skip_disk_quota_check".into(),
                value: "true".into(),
            });
        }
        let req = pb::ImportRequest {
            db_name: t.database.clone(),
            collection_name: t.collection.clone(),
            partition_name: partition.to_owned(),
            files: vec![import_path(&insert_dir), import_path(&delta_dir)],
            options,
            ..Default::default()
        };
        let tasks = client.import(req).await?;
        let mut rows = 0;
        let timeout = Duration::from_secs(self.cluster.config.import_timeout_secs);
        for task in tasks {
            rows += self.wait_import(ctx, client, t, seg, task, timeout).await?;
        }
        if let Err(e) = self.cluster.store.delete_prefix(&seg_stage).await {
            tracing::warn!(error = %e, "could not remove staged segment files; they go with the job's staging prefix");
        }
        Ok(rows)
    }

    async fn wait_import(
        &self,
        ctx: &JobCtx,
        client: &MilvusClient,
        t: &Target,
        seg: &SegmentBackup,
        task: i64,
        timeout: Duration,
    ) -> Result<i64> {
        let fail = |message: String| Error::ImportFailed {
            collection: format!("{}.{}", t.database, t.collection),
            segment: seg.segment_id,
            message,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            ctx.check_cancelled()?;
            let st = client.import_state(task).await?;
            let reason = || {
                st.infos
                    .iter()
                    .find(|kv| kv.key == "failed_reason")
                    .map(|kv| kv.value.clone())
                    .unwrap_or_default()
            };
            match ImportState::try_from(st.state) {
                Ok(ImportState::ImportCompleted) => {
                    if st.row_count > seg.num_rows {
                        return Err(fail(format!(
                            "Milvus imported {} rows, the segment holds {}",
                            st.row_count, seg.num_rows
                        )));
                    }
                    if st.row_count == 0 && seg.num_rows > 0 && seg.delta_logs.is_empty() {
                        return Err(fail(format!(
                            "Milvus reported success with 0 rows for a segment of {} rows (it could not read the staged files)",
                            seg.num_rows
                        )));
                    }
                    return Ok(st.row_count);
                }
                Ok(ImportState::ImportFailed | ImportState::ImportFailedAndCleaned) => {
                    return Err(fail(format!("task {task}: {}", reason())));
                }
                _ => {}
            }
            if tokio::time::Instant::now() > deadline {
                return Err(fail(format!(
                    "task {task} not finished after {}s",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Bytes a restore stages: insert and delta logs (stats logs are rebuilt by Milvus).
fn staged_bytes(c: &CollectionBackup) -> u64 {
    c.segments
        .iter()
        .flat_map(|s| s.insert_logs.iter().chain(&s.delta_logs))
        .map(|f| f.size_bytes)
        .sum()
}

/// Files a restore stages.
fn file_count(c: &CollectionBackup) -> u64 {
    c.segments
        .iter()
        .map(|s| (s.insert_logs.len() + s.delta_logs.len()) as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut spec = RestoreBackupSpec {
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
    fn refuses_bad_plans() {
        let mut spec = RestoreBackupSpec::default();
        spec.renames.insert("nope".into(), "x".into());
        assert_eq!(
            plan_targets(&manifest(), &spec)
                .expect_err("rename")
                .reason(),
            "INVALID_ARGUMENT"
        );
        let mut spec = RestoreBackupSpec::default();
        spec.renames.insert("a".into(), "b".into());
        assert!(
            plan_targets(&manifest(), &spec)
                .expect_err("clash")
                .to_string()
                .contains("two collections")
        );
        let spec = RestoreBackupSpec {
            collections: vec!["zzz".into()],
            ..Default::default()
        };
        assert_eq!(
            plan_targets(&manifest(), &spec)
                .expect_err("missing")
                .reason(),
            "COLLECTION_NOT_FOUND"
        );
        let spec = RestoreBackupSpec {
            suffix: "-x".into(),
            ..Default::default()
        };
        assert!(plan_targets(&manifest(), &spec).is_err());
    }
}
