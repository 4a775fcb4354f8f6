//! The restore job: plan the targets → check the target cluster (nothing is written
//! until every target passed) → per collection (`collection.rs`): create database,
//! collection (same field ids), partitions → data by binlog import (`import.rs`) or row
//! insert (`rows.rs`) → indexes → aliases → load → remove the staged files
//! (`staging.rs`).
//!
//! A collection this job created is dropped again when the job fails, so a failed
//! restore never leaves a half-filled collection that looks complete.

mod batch;
mod collection;
mod import;
mod plan;
pub(crate) mod resume;
mod rows;
mod staging;
mod switch;

use std::collections::BTreeSet;
use std::sync::Arc;

use milvault_proto::milvault::v1::{
    BackupManifest, CollectionBackup, JobKind, JobPhase, JobResource, ResourceKind,
    RestoreBackupRequest, job,
};

use crate::app::{App, Cluster};
use crate::config::{LimitsConfig, RestoreConfig, TimeoutsConfig};
use crate::error::{Error, Result};
use crate::jobs::{CollectionPlan, JobCtx, Lock, Submission};
use crate::milvus::MilvusClient;
use crate::milvus::schema_rules;
use crate::repository::Repository;
use crate::selection::{DEFAULT_DB, validate_backup_name};

pub(crate) use plan::{Target, plan_targets};
use staging::Staging;

/// Everything a restore job needs.
pub(crate) struct RestoreJob {
    /// The request, names resolved.
    request: RestoreBackupRequest,
    /// The backup's manifest, read when the job was submitted.
    manifest: BackupManifest,
    /// Where each selected collection goes.
    targets: Vec<Target>,
    /// Target cluster.
    cluster: Cluster,
    /// Source repository.
    repository: Repository,
    /// Concurrency bounds.
    limits: LimitsConfig,
    /// How segments are batched into imports.
    restore: RestoreConfig,
    /// Deadlines for waiting on Milvus.
    timeouts: TimeoutsConfig,
    /// The server, for releasing what a failed job created.
    app: Arc<App>,
    /// Set when this job resumes an interrupted restore.
    resume: Option<resume::Resume>,
}

/// The target side of a running restore: what every step of it works with.
pub(crate) struct Side<'a> {
    job: &'a RestoreJob,
    ctx: &'a JobCtx,
    client: &'a MilvusClient,
    staging: Staging,
}

/// One collection being restored: its index in the job, target and backup.
#[derive(Clone, Copy)]
pub(crate) struct Task<'a> {
    idx: usize,
    target: &'a Target,
    src: &'a CollectionBackup,
}

impl RestoreJob {
    /// Checks a request and prepares the job: names, manifest, plan, locks.
    pub(crate) async fn prepare(app: &Arc<App>, req: RestoreBackupRequest) -> Result<Submission> {
        Self::prepare_with(app, req, None).await
    }

    /// [`Self::prepare`], for a new job or one that resumes an interrupted restore.
    async fn prepare_with(
        app: &Arc<App>,
        mut req: RestoreBackupRequest,
        resume: Option<resume::Resume>,
    ) -> Result<Submission> {
        validate_backup_name(&req.backup)?;
        let cluster = app.cluster(&req.cluster)?.clone();
        let repository = app.repository(&req.repository)?.clone();
        req.cluster = cluster.name.clone();
        req.repository = repository.name().to_owned();
        let manifest = repository.load_complete(&req.backup).await?;
        if req.restore_rbac && manifest.rbac.is_none() {
            return Err(Error::invalid(
                "restore_rbac",
                format!(
                    "backup {:?} holds no users, roles or grants (it was made without include_rbac)",
                    req.backup
                ),
            ));
        }
        let targets = plan_targets(&manifest, &req)?;
        let mut locks = vec![Lock::backup_reader(repository.name(), &req.backup)];
        locks.extend(
            targets
                .iter()
                .map(|t| Lock::restore_target(&cluster.name, &t.database, &t.collection)),
        );
        let job = Arc::new(RestoreJob {
            request: req.clone(),
            manifest,
            targets,
            cluster: cluster.clone(),
            repository: repository.clone(),
            limits: app.config.limits.clone(),
            restore: app.config.restore.clone(),
            timeouts: app.config.timeouts.clone(),
            app: app.clone(),
            resume,
        });
        Ok(Submission {
            kind: JobKind::Restore,
            backup: req.backup.clone(),
            cluster: cluster.name.clone(),
            repository: repository.name().to_owned(),
            request: job::Request::RestoreBackup(req),
            locks,
            run: Box::new(move |ctx| Box::pin(job.run(ctx))),
        })
    }

    /// Runs the job to the end.
    async fn run(self: Arc<Self>, ctx: JobCtx) -> Result<()> {
        ctx.phase(JobPhase::Connecting, &self.cluster.name).await;
        let client =
            MilvusClient::connect(&self.cluster.name, &self.cluster.config, &self.timeouts).await?;
        ctx.phase(JobPhase::Validating, "").await;
        let checked = self.validate(&client, &ctx.id()).await?;
        let plan: Vec<CollectionPlan> = self
            .targets
            .iter()
            .map(|t| {
                let src = &self.manifest.collections[t.source];
                CollectionPlan {
                    database: t.database.clone(),
                    collection: t.collection.clone(),
                    bytes: staged_bytes(src),
                    files: staged_files(src),
                }
            })
            .collect();
        ctx.plan_collections(&plan);

        let side = Side {
            job: &self,
            ctx: &ctx,
            client: &client,
            // A resumed restore stages where the interrupted one did: imports it left
            // running still read their files there.
            staging: match &self.resume {
                Some(r) => Staging::at(&self.cluster, &r.staging),
                None => Staging::for_job(&self.cluster, &ctx.id()),
            },
        };
        let result = side.restore_all(&checked).await;
        let staging = side.staging.root().to_owned();
        // Whatever happened, the staged files go; on failure or cancel, so does
        // everything else this job created (never what existed before it).
        if let Err(e) = &result {
            tracing::warn!(error = %e, "restore failed; removing what it created");
            ctx.phase(JobPhase::CleaningUp, "").await;
            let notes = crate::cleanup::release(&self.app, &ctx.resources()).await;
            ctx.cleaned(notes).await;
        } else if let Err(e) = self.cluster.store.delete_prefix(&staging).await {
            ctx.warn(format!(
                "could not remove staged files under {staging}: {e}"
            ))
            .await;
        }
        result
    }

    /// The target database of a backed-up database (`database_map`, else the same).
    fn target_database(&self, db: &str) -> String {
        self.request
            .database_map
            .get(db)
            .cloned()
            .unwrap_or_else(|| db.to_owned())
    }

    /// Checks every target before anything is written: what the target cannot hold,
    /// collections that exist, aliases; decides where each collection is built (a
    /// temporary name when it replaces one) and what happens to each alias.
    async fn validate(&self, client: &MilvusClient, job_id: &str) -> Result<Checked> {
        let features = client.features();
        let databases: BTreeSet<String> = client.list_databases().await?.into_iter().collect();
        // Everything a target cannot hold, for every collection, refused together.
        let mut cannot = Vec::new();
        for t in &self.targets {
            let src = &self.manifest.collections[t.source];
            if let Some(schema) = schema_rules::decode(&src.milvus_schema) {
                for item in schema_rules::refusals(features, &schema, &src.indexes) {
                    cannot.push(format!("{}.{}: {item}", src.database, src.name));
                }
            }
        }
        if !cannot.is_empty() {
            return Err(Error::Unsupported {
                message: format!(
                    "target Milvus {} cannot hold what the backup has, so nothing was restored: {}",
                    client.version_text(),
                    cannot.join("; ")
                ),
                metadata: vec![("cluster", self.cluster.name.clone())],
            });
        }
        let short: String = job_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect();
        let mut checked = Checked::default();
        for t in &self.targets {
            let src = &self.manifest.collections[t.source];
            if t.database != DEFAULT_DB && !features.supports_databases() {
                return Err(Error::unsupported(
                    format!(
                        "target Milvus {} has no databases; cannot restore into database {:?} (map it to default with --db-map)",
                        client.version_text(),
                        t.database
                    ),
                    &t.database,
                    &t.collection,
                    &self.cluster.name,
                ));
            }
            // A collection the interrupted run of a resumed restore created: built on,
            // under the name it was given.
            if let Some((resource, name)) = self.resume.as_ref().and_then(|r| r.owned(t)) {
                let here = databases.contains(&t.database)
                    && client.has_collection(&t.database, &name).await?;
                checked.replaces.push(name != t.collection);
                checked.build.push(name);
                checked.owned.push(Some(Owned { resource, here }));
            } else {
                checked.owned.push(None);
            }
            let owned = checked.owned.last().is_some_and(Option::is_some);
            let exists = databases.contains(&t.database)
                && client.has_collection(&t.database, &t.collection).await?;
            if owned {
                // Decided above.
            } else if exists && !self.request.drop_existing {
                return Err(Error::CollectionExists {
                    cluster: self.cluster.name.clone(),
                    database: t.database.clone(),
                    collection: t.collection.clone(),
                });
            } else {
                // A collection being replaced is built under a temporary name and takes
                // the old one's place only once it is complete.
                checked.build.push(if exists {
                    format!("{}{short}", temporary_prefix(&t.collection))
                } else {
                    t.collection.clone()
                });
                checked.replaces.push(exists);
            }
            let mut steps = Vec::new();
            for alias in &src.aliases {
                let action = if self.request.skip_aliases {
                    AliasAction::Skip
                } else if !(features.supports_list_aliases() && databases.contains(&t.database)) {
                    AliasAction::Create
                } else {
                    match client.describe_alias(&t.database, alias).await? {
                        None => AliasAction::Create,
                        Some(owner) if owner == t.collection => AliasAction::Keep,
                        // Held by the collection this one was copied from: a copy
                        // beside the original leaves it, or moves it when asked.
                        Some(owner) if owner == src.name && t.collection != src.name => {
                            if self.request.move_aliases {
                                AliasAction::Move { from: owner }
                            } else {
                                AliasAction::Leave { owner }
                            }
                        }
                        Some(owner) => {
                            return Err(Error::AliasExists {
                                cluster: self.cluster.name.clone(),
                                database: t.database.clone(),
                                alias: alias.clone(),
                                owner: Some(owner),
                            });
                        }
                    }
                };
                steps.push(AliasStep {
                    alias: alias.clone(),
                    action,
                });
            }
            checked.aliases.push(steps);
        }
        Ok(checked)
    }
}

/// What validation decided for every target (by index).
#[derive(Default)]
pub(crate) struct Checked {
    /// The name each collection is built under.
    build: Vec<String>,
    /// Whether it replaces an existing collection.
    replaces: Vec<bool>,
    /// What happens to each of its backed-up aliases.
    aliases: Vec<Vec<AliasStep>>,
    /// A collection the interrupted run of a resumed restore created for it.
    owned: Vec<Option<Owned>>,
}

/// A collection a resumed restore inherited.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owned {
    /// Its index among the job's resources.
    resource: usize,
    /// Whether it still exists.
    here: bool,
}

/// The start of the temporary name a collection replacing `name` is built under.
fn temporary_prefix(name: &str) -> String {
    let base: String = name.chars().take(200).collect();
    format!("{base}_mvtmp_")
}

/// One backed-up alias of a target.
#[derive(Clone, Debug)]
struct AliasStep {
    alias: String,
    action: AliasAction,
}

/// What a restore does with one alias, once everything else succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
enum AliasAction {
    /// Create it on the restored collection.
    Create,
    /// It already names the target (a replaced collection keeps it).
    Keep,
    /// Held by the collection the restore was copied from: left there (warning).
    Leave { owner: String },
    /// Held by that collection: moved to the restored copy (`move_aliases`).
    Move { from: String },
    /// Not restored (`skip_aliases`).
    Skip,
}

impl Side<'_> {
    /// Restores every target, then RBAC when asked, then switches replaced
    /// collections and aliases: everything that touches what existed before the job
    /// happens last, once all else succeeded.
    async fn restore_all(&self, checked: &Checked) -> Result<()> {
        // A restore of everything recreates every database, also those that held no
        // collection; a filtered restore creates only the databases it writes into.
        if self.job.request.collections.is_empty() && self.client.features().supports_databases() {
            let have: BTreeSet<String> = self.client.list_databases().await?.into_iter().collect();
            for db in &self.job.manifest.databases {
                let target = self.job.target_database(&db.name);
                if !have.contains(&target) {
                    self.client.create_database(&target).await?;
                }
            }
        }
        let staged = self.staging.root();
        if !self.ctx.resources().iter().any(|r| {
            r.kind() == ResourceKind::Staging
                && r.cluster == self.job.cluster.name
                && r.path == staged
        }) {
            self.ctx
                .hold(JobResource {
                    kind: ResourceKind::Staging as i32,
                    cluster: self.job.cluster.name.clone(),
                    path: staged.to_owned(),
                    ..Default::default()
                })
                .await;
        }
        let mut reports = Vec::with_capacity(self.job.targets.len());
        let mut held = Vec::with_capacity(self.job.targets.len());
        for (idx, target) in self.job.targets.iter().enumerate() {
            self.ctx.check_cancelled()?;
            let task = Task {
                idx,
                target,
                src: &self.job.manifest.collections[target.source],
            };
            let (report, resource) = self
                .restore_collection(task, &checked.build[idx], checked.owned[idx])
                .await?;
            reports.push(report);
            held.push(resource);
            self.ctx.collection_done(idx);
        }
        if let Some(rbac) = self
            .job
            .manifest
            .rbac
            .as_ref()
            .filter(|_| self.job.request.restore_rbac)
        {
            self.ctx.phase(JobPhase::RestoringRbac, "").await;
            let report =
                crate::rbac::import(self.client, rbac, |db| self.job.target_database(db)).await?;
            if !report.users_needing_password_reset.is_empty() {
                self.ctx
                    .warn(format!(
                        "users created with a random password that an administrator must reset: {}",
                        report.users_needing_password_reset.join(", ")
                    ))
                    .await;
            }
            // What could not go in as it was (privilege groups expanded or left out,
            // passwords kept): said where every job's warnings are, too.
            for w in &report.warnings {
                self.ctx.warn(format!("users and roles: {w}")).await;
            }
            self.ctx.report_rbac(report).await;
        }
        self.ctx.phase(JobPhase::Switching, "").await;
        for (idx, target) in self.job.targets.iter().enumerate() {
            self.ctx.check_cancelled()?;
            self.switch(idx, target, checked, held[idx], &mut reports[idx])
                .await?;
        }
        for report in reports {
            self.ctx.report_collection(report).await;
        }
        Ok(())
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
fn staged_files(c: &CollectionBackup) -> u64 {
    c.segments
        .iter()
        .map(|s| (s.insert_logs.len() + s.delta_logs.len()) as u64)
        .sum()
}
