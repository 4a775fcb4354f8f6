//! Data calls: flush, segment listing, binlog import, and the query/insert pair that
//! copies rows. Each waits through [`crate::poll::until`] where Milvus works in the
//! background, so deadlines, backoff and cancellation are the same everywhere.

use milvault_proto::milvus::common::{self, ImportState, KeyValuePair};
use milvault_proto::milvus::milvus as pb;
use milvault_proto::milvus::schema::{FieldData, field_data, scalar_field};
use tokio_util::sync::CancellationToken;

use super::client::MilvusClient;
use super::features::FlushAllTs;
use super::status;
use super::types::{ImportProgress, ImportSpec, PkValue, SegmentInfo, SegmentLevel, SegmentState};
use crate::error::{Error, Result};

impl SegmentState {
    fn from_wire(v: i32) -> Self {
        match common::SegmentState::try_from(v) {
            Ok(common::SegmentState::Growing) => Self::Growing,
            Ok(common::SegmentState::Sealed) => Self::Sealed,
            Ok(common::SegmentState::Flushing) => Self::Flushing,
            Ok(common::SegmentState::Flushed) => Self::Flushed,
            Ok(common::SegmentState::Dropped) => Self::Dropped,
            Ok(common::SegmentState::Importing) => Self::Importing,
            _ => Self::Other(v),
        }
    }
}

impl SegmentLevel {
    fn from_wire(v: i32) -> Self {
        match common::SegmentLevel::try_from(v) {
            Ok(common::SegmentLevel::L0) => Self::L0,
            Ok(common::SegmentLevel::L1) => Self::L1,
            Ok(common::SegmentLevel::L2) => Self::L2,
            _ => Self::Legacy,
        }
    }

    /// The manifest's number for the level.
    pub(crate) fn as_i32(self) -> i32 {
        match self {
            Self::Legacy => common::SegmentLevel::Legacy as i32,
            Self::L0 => common::SegmentLevel::L0 as i32,
            Self::L1 => common::SegmentLevel::L1 as i32,
            Self::L2 => common::SegmentLevel::L2 as i32,
        }
    }
}

/// Longest pause between two questions about an import task.
const IMPORT_POLL_MAX: std::time::Duration = std::time::Duration::from_millis(250);

impl MilvusClient {
    /// Seals the collection's growing segments and waits until they are on storage;
    /// returns the flush timestamp (0 where the server does not report one).
    pub(crate) async fn flush_and_wait(
        &self,
        db: &str,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<u64> {
        let req = pb::FlushRequest {
            db_name: db.to_owned(),
            collection_names: vec![name.to_owned()],
            ..Default::default()
        };
        let r = self
            .call("Flush", db, req, |c, r| Box::pin(c.flush(r)))
            .await?;
        let segs = r
            .coll_seg_i_ds
            .get(name)
            .map(|l| l.data.clone())
            .unwrap_or_default();
        let flush_ts = r.coll_flush_ts.get(name).copied().unwrap_or(0);
        let what = format!("flushing {db}.{name}");
        crate::poll::until(&what, &self.timeouts.flush(), cancel, || {
            let req = pb::GetFlushStateRequest {
                segment_i_ds: segs.clone(),
                flush_ts,
                db_name: db.to_owned(),
                collection_name: name.to_owned(),
            };
            async move {
                let st = self
                    .call("GetFlushState", db, req, |c, r| {
                        Box::pin(c.get_flush_state(r))
                    })
                    .await?;
                Ok(st.flushed.then_some(flush_ts))
            }
        })
        .await
    }

    /// A timestamp to wait for with [`Self::wait_flush_all`], taken the way the
    /// version allows; `None` when it has no `GetFlushAllState`.
    pub(crate) async fn flush_all_timestamp(&self) -> Result<Option<u64>> {
        match self.features().flush_all_timestamp() {
            FlushAllTs::AllocTimestamp => Ok(Some(self.alloc_timestamp().await?)),
            FlushAllTs::FlushAll => {
                let r = self
                    .call("FlushAll", "", pb::FlushAllRequest::default(), |c, r| {
                        Box::pin(c.flush_all(r))
                    })
                    .await?;
                Ok(Some(r.flush_all_ts))
            }
            FlushAllTs::Unavailable => Ok(None),
        }
    }

    /// A fresh timestamp from Milvus's oracle (2.2.13+).
    async fn alloc_timestamp(&self) -> Result<u64> {
        let req = pb::AllocTimestampRequest::default();
        Ok(self
            .call("AllocTimestamp", "", req, |c, r| {
                Box::pin(c.alloc_timestamp(r))
            })
            .await?
            .timestamp)
    }

    /// Waits until every insert and delete before `ts`, in every collection, is in
    /// storage (`GetFlushAllState`; on 2.2 the only proof that buffered deletes of
    /// flushed segments were written).
    pub(crate) async fn wait_flush_all(&self, ts: u64, cancel: &CancellationToken) -> Result<()> {
        let what = "Milvus writing buffered deletes to storage (GetFlushAllState)";
        crate::poll::until(what, &self.timeouts.flush_all(), cancel, || async {
            let req = pb::GetFlushAllStateRequest {
                flush_all_ts: ts,
                ..Default::default()
            };
            let r = self
                .call("GetFlushAllState", "", req, |c, r| {
                    Box::pin(c.get_flush_all_state(r))
                })
                .await?;
            Ok(r.flushed.then_some(()))
        })
        .await
    }

    /// Segments that hold data on storage, as Milvus knows them now. A segment Milvus
    /// reports as not found (it is being compacted or dropped) makes the listing be
    /// taken again, until the listing deadline.
    pub(crate) async fn persistent_segments(
        &self,
        db: &str,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<Vec<SegmentInfo>> {
        let what = format!("listing the segments of {db}.{name}");
        let infos = crate::poll::until(&what, &self.timeouts.settle(), cancel, || async {
            let req = pb::GetPersistentSegmentInfoRequest {
                db_name: db.to_owned(),
                collection_name: name.to_owned(),
                ..Default::default()
            };
            let r = self
                .call("GetPersistentSegmentInfo", db, req, |c, r| {
                    Box::pin(c.get_persistent_segment_info(r))
                })
                .await;
            Ok(status::found(r)?.map(|r| r.infos))
        })
        .await?;
        Ok(infos
            .into_iter()
            .map(|s| SegmentInfo {
                id: s.segment_id,
                partition_id: s.partition_id,
                num_rows: s.num_rows,
                state: SegmentState::from_wire(s.state),
                level: SegmentLevel::from_wire(s.level),
                storage_version: s.storage_version,
            })
            .collect())
    }

    /// The segment list once no segment is between sealed and flushed: a sealed or
    /// flushing segment holds rows a backup must have, so it is waited for.
    pub(crate) async fn settled_segments(
        &self,
        db: &str,
        name: &str,
        cancel: &CancellationToken,
    ) -> Result<Vec<SegmentInfo>> {
        let what = format!("waiting for the sealed segments of {db}.{name} to flush");
        crate::poll::until(&what, &self.timeouts.settle(), cancel, || async {
            let segments = self.persistent_segments(db, name, cancel).await?;
            let in_between = segments
                .iter()
                .any(|s| matches!(s.state, SegmentState::Sealed | SegmentState::Flushing));
            Ok((!in_between).then_some(segments))
        })
        .await
    }

    /// Starts a binlog import in backup mode; returns the task ids.
    pub(crate) async fn import_binlogs(&self, spec: &ImportSpec<'_>) -> Result<Vec<i64>> {
        let mode = if spec.l0 { "l0_import" } else { "backup" };
        let mut options = vec![KeyValuePair {
            key: mode.into(),
            value: "true".into(),
        }];
        if spec.storage_version > 0 && self.features().storage_version_option() {
            options.push(KeyValuePair {
                key: "storage_version".into(),
                value: spec.storage_version.to_string(),
            });
        }
        if self.features().import_skips_disk_quota() {
            options.push(KeyValuePair {
                key: "skip_disk_quota_check".into(),
                value: "true".into(),
            });
        }
        let req = pb::ImportRequest {
            db_name: spec.database.to_owned(),
            collection_name: spec.collection.to_owned(),
            partition_name: spec.partition.to_owned(),
            files: spec.paths.clone(),
            options,
            ..Default::default()
        };
        Ok(self
            .call("Import", spec.database, req, |c, r| Box::pin(c.import(r)))
            .await?
            .tasks)
    }

    /// Where an import task is.
    pub(crate) async fn import_progress(&self, task: i64) -> Result<ImportProgress> {
        let req = pb::GetImportStateRequest { task };
        let st = self
            .call("GetImportState", "", req, |c, r| {
                Box::pin(c.get_import_state(r))
            })
            .await?;
        Ok(match ImportState::try_from(st.state) {
            Ok(ImportState::ImportCompleted) => ImportProgress::Completed { rows: st.row_count },
            Ok(ImportState::ImportFailed | ImportState::ImportFailedAndCleaned) => {
                ImportProgress::Failed {
                    reason: st
                        .infos
                        .iter()
                        .find(|kv| kv.key == "failed_reason")
                        .map(|kv| kv.value.clone())
                        .unwrap_or_default(),
                }
            }
            _ => ImportProgress::Running,
        })
    }

    /// Waits for an import task to end; `Completed` or `Failed`.
    pub(crate) async fn wait_import(
        &self,
        task: i64,
        cancel: &CancellationToken,
    ) -> Result<ImportProgress> {
        let what = format!("import task {task}");
        // The restore's next step (the next queued import, the next collection) waits
        // for this answer: a long pause is time lost per import, and the question is
        // a cheap read of the coordinator's metadata.
        let mut schedule = self.timeouts.import();
        schedule.max = schedule.max.min(IMPORT_POLL_MAX);
        schedule.first = schedule.first.min(schedule.max);
        crate::poll::until(&what, &schedule, cancel, || async {
            let p = self.import_progress(task).await?;
            Ok((p != ImportProgress::Running).then_some(p))
        })
        .await
    }

    /// The primary keys of up to `limit` rows with a key above `after`, from a
    /// loaded collection.
    async fn query_page(
        &self,
        db: &str,
        coll: &str,
        pk: &PkField<'_>,
        after: Option<&PkValue>,
        fields: &[String],
        limit: usize,
    ) -> Result<Vec<PkValue>> {
        let expr = match after {
            None if pk.is_varchar => format!("{} != \"\"", pk.name),
            None => format!("{} >= {}", pk.name, i64::MIN + 1),
            Some(v) => format!("{} > {}", pk.name, literal(v)),
        };
        let req = pb::QueryRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            expr,
            output_fields: fields.to_vec(),
            query_params: vec![KeyValuePair {
                key: "limit".into(),
                value: limit.to_string(),
            }],
            // Strong: every row written before the call is seen.
            consistency_level: common::ConsistencyLevel::Strong as i32,
            ..Default::default()
        };
        let cols = self
            .call("Query", db, req, |c, r| Box::pin(c.query(r)))
            .await?
            .fields_data;
        let pk_col = cols
            .iter()
            .find(|c| c.field_name == pk.name)
            .ok_or_else(|| {
                Error::internal(
                    "a query did not return the primary key",
                    format!("query on {db}.{coll} returned no column {}", pk.name),
                )
            })?;
        pk_values(pk_col)
    }

    /// The row count Milvus keeps for a collection's flushed segments (rows before
    /// deletes): what can be checked without loading it.
    pub(crate) async fn flushed_rows(&self, db: &str, coll: &str) -> Result<i64> {
        let req = pb::GetCollectionStatisticsRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            ..Default::default()
        };
        let r = self
            .call("GetCollectionStatistics", db, req, |c, r| {
                Box::pin(c.get_collection_statistics(r))
            })
            .await?;
        let text = r
            .stats
            .iter()
            .find(|kv| kv.key == "row_count")
            .map(|kv| kv.value.clone())
            .unwrap_or_default();
        text.parse().map_err(|_| {
            Error::internal(
                "GetCollectionStatistics answered without a row count",
                format!("{db}.{coll}: {text:?}"),
            )
        })
    }

    /// Live rows of a loaded collection by paging through its primary keys (Milvus
    /// 2.2 has no `count(*)`).
    pub(crate) async fn count_by_keys(
        &self,
        db: &str,
        coll: &str,
        pk: &PkField<'_>,
        cancel: &CancellationToken,
    ) -> Result<i64> {
        const PAGE: usize = 16_000;
        let mut last: Option<PkValue> = None;
        let mut n = 0i64;
        loop {
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let keys = self
                .query_page(db, coll, pk, last.as_ref(), &[pk.name.to_owned()], PAGE)
                .await?;
            let Some(max) = keys.iter().max().cloned() else {
                return Ok(n);
            };
            if last.as_ref().is_some_and(|l| &max <= l) {
                return Err(Error::internal(
                    "paging through primary keys did not advance",
                    format!("{db}.{coll}"),
                ));
            }
            n += keys.len() as i64;
            if keys.len() < PAGE {
                return Ok(n);
            }
            last = Some(max);
        }
    }

    /// `count(*)` of a loaded collection (2.3+).
    pub(crate) async fn count_rows(&self, db: &str, coll: &str) -> Result<i64> {
        let req = pb::QueryRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            expr: String::new(),
            output_fields: vec!["count(*)".into()],
            consistency_level: common::ConsistencyLevel::Strong as i32,
            ..Default::default()
        };
        let cols = self
            .call("Query", db, req, |c, r| Box::pin(c.query(r)))
            .await?
            .fields_data;
        match cols.first().and_then(|c| c.field.as_ref()) {
            Some(field_data::Field::Scalars(s)) => match &s.data {
                Some(scalar_field::Data::LongData(a)) => Ok(a.data.first().copied().unwrap_or(0)),
                _ => Err(Error::internal(
                    "count(*) answered with an unexpected type",
                    format!("{db}.{coll}"),
                )),
            },
            _ => Err(Error::internal(
                "count(*) answered nothing",
                format!("{db}.{coll}"),
            )),
        }
    }
}

/// The primary-key field a row page is ordered by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PkField<'a> {
    /// Field name.
    pub(crate) name: &'a str,
    /// VarChar key (else Int64).
    pub(crate) is_varchar: bool,
}

/// Renders a primary key for an expression: numbers as is, strings quoted.
fn literal(pk: &PkValue) -> String {
    match pk {
        PkValue::Int(i) => i.to_string(),
        PkValue::Str(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
    }
}

fn pk_values(col: &FieldData) -> Result<Vec<PkValue>> {
    match &col.field {
        Some(field_data::Field::Scalars(s)) => match &s.data {
            Some(scalar_field::Data::LongData(a)) => {
                Ok(a.data.iter().map(|v| PkValue::Int(*v)).collect())
            }
            Some(scalar_field::Data::StringData(a)) => {
                Ok(a.data.iter().cloned().map(PkValue::Str).collect())
            }
            _ => Err(Error::internal(
                "primary key column of an unexpected type",
                col.field_name.clone(),
            )),
        },
        _ => Err(Error::internal(
            "primary key column missing",
            col.field_name.clone(),
        )),
    }
}
