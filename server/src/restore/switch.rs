//! The last step of a restore, once every collection is complete and checked: a
//! collection built under a temporary name takes the place of the one it replaces
//! (aliases dropped, old collection dropped, rename, aliases back), and the backed-up
//! aliases are created, left, moved or skipped as validation decided.
//!
//! Before the old collection is touched, the job journals the rename it is about to
//! finish (`rename_to`): a crash in between is finished at start-up, never undone.

use milvault_proto::milvault::v1::CollectionReport;

use super::{AliasAction, Checked, Side, Target};
use crate::error::{Error, Result};
use crate::milvus::types::Created;

impl Side<'_> {
    /// Puts target `idx` in place and applies its alias decisions.
    pub(super) async fn switch(
        &self,
        idx: usize,
        target: &Target,
        checked: &Checked,
        resource: usize,
        report: &mut CollectionReport,
    ) -> Result<()> {
        let (client, ctx) = (self.client, self.ctx);
        let (db, name) = (target.database.as_str(), target.collection.as_str());
        let build = checked.build[idx].as_str();
        let mut old_aliases = Vec::new();
        if checked.replaces[idx] {
            ctx.phase(
                super::JobPhase::Switching,
                format!("{db}.{build} takes the place of {db}.{name}"),
            )
            .await;
            ctx.update_resource(resource, |r| r.rename_to = name.to_owned())
                .await;
            old_aliases = client.list_aliases(db, name).await?;
            for alias in &old_aliases {
                client.drop_alias(db, alias).await?;
            }
            client.drop_collection(db, name).await?;
            client.rename_collection(db, build, name).await?;
            for alias in &old_aliases {
                client.create_alias(db, name, alias).await?;
            }
            report
                .warnings
                .push(format!("replaced the existing collection {db}.{name}"));
        }
        ctx.update_resource(resource, |r| r.kept = true).await;
        for step in &checked.aliases[idx] {
            match &step.action {
                AliasAction::Create => {
                    if client.create_alias(db, name, &step.alias).await? == Created::Existed {
                        return Err(Error::AliasExists {
                            cluster: self.job.cluster.name.clone(),
                            database: db.to_owned(),
                            alias: step.alias.clone(),
                            owner: None,
                        });
                    }
                }
                AliasAction::Keep => {
                    if !old_aliases.contains(&step.alias) {
                        client.create_alias(db, name, &step.alias).await?;
                    }
                }
                AliasAction::Leave { owner } => report.warnings.push(format!(
                    "alias {} still points at {db}.{owner} (the collection this copy was taken from); pass move_aliases (--move-aliases) to move it to the restored copy",
                    step.alias
                )),
                AliasAction::Move { from } => {
                    client.alter_alias(db, name, &step.alias).await?;
                    report.warnings.push(format!(
                        "moved alias {} from {db}.{from} to {db}.{name}",
                        step.alias
                    ));
                }
                AliasAction::Skip => {}
            }
        }
        if checked.aliases[idx]
            .iter()
            .any(|s| s.action == AliasAction::Skip)
        {
            report
                .warnings
                .push("aliases were not restored (skip_aliases)".into());
        }
        Ok(())
    }
}
