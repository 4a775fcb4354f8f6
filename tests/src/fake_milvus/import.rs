//! `Import`, `GetImportState` and `ListImportTasks`: what a version accepts, how it
//! reads the files (`files.rs`), the task states it walks through, and the segments a
//! completed import adds to its collection.

use std::collections::HashMap;

use milvault_binlog::write::tso_now;
use milvault_proto::milvus::common::{ErrorCode, ImportState};
use milvault_proto::milvus::milvus as pb;
use tonic::{Request, Response, Status as GrpcStatus};

use super::files::{self, ImportError, ImportTarget, SegmentAt};
use super::grpc::{done, failed, kv, now_secs, ok};
use super::model::{FileIds, Outcome, Seg, SegLevel, SegState, Task};
use super::{FakeMilvus, Fault};

type R<T> = Result<Response<T>, GrpcStatus>;

impl FakeMilvus {
    /// Starts an import task ending in `outcome`.
    pub(super) fn start_task(
        &self,
        collection_id: i64,
        outcome: Outcome,
        req: &pb::ImportRequest,
    ) -> R<pb::ImportResponse> {
        let id = self.alloc();
        let mut infos = vec![
            kv("collection", req.collection_name.clone()),
            kv("partition", req.partition_name.clone()),
            kv("files", req.files.join(",")),
        ];
        infos.extend(req.options.iter().cloned());
        let task = Task {
            id,
            collection_id,
            states: self.behaviour.import_states.clone(),
            polls: 0,
            outcome,
            applied: false,
            create_ts: now_secs() as i64,
            infos,
        };
        self.lock().tasks.insert(id, task);
        done(pb::ImportResponse {
            status: ok(),
            tasks: vec![id],
        })
    }

    /// Writes what a backup-mode import read into new segments of the target partition.
    fn write_imported(
        &self,
        collection_id: i64,
        partition_id: i64,
        target: &ImportTarget,
        read: Vec<files::ImportedSegment>,
    ) -> anyhow::Result<Vec<Seg>> {
        let b = &self.behaviour;
        let import_ts = tso_now();
        let root = self.root().to_path_buf();
        let mut out = Vec::new();
        for mut seg in read {
            if seg.rows.is_empty() {
                continue;
            }
            if !b.import_keeps_timestamps {
                files::restamp(&mut seg, import_ts);
            }
            let id = self.alloc();
            let at = SegmentAt {
                root: &root,
                collection: collection_id,
                partition: partition_id,
                segment: id,
            };
            let alloc = || self.alloc();
            let insert = files::write_insert(
                &at,
                &target.fields,
                &seg.chunks,
                b.import_writes_storage_version,
                &alloc,
            )?;
            out.push(Seg {
                id,
                partition_id,
                level: SegLevel::L1,
                storage_version: b.import_writes_storage_version,
                state: SegState::Flushed,
                rows: seg.rows,
                deletes: Vec::new(),
                files: Some(FileIds {
                    insert,
                    delta: Vec::new(),
                }),
            });
        }
        Ok(out)
    }

    pub(super) async fn import_rpc(&self, r: Request<pb::ImportRequest>) -> R<pb::ImportResponse> {
        self.record("Import");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let req = r.into_inner();
        let b = self.behaviour.clone();
        let opts: HashMap<String, String> = req
            .options
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        let is_true = |k: &str| opts.get(k).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let backup = is_true("backup");
        let l0 = is_true("l0_import") && b.l0_import;
        struct Snap {
            id: i64,
            loaded: bool,
            partition_key: bool,
            partition: Option<i64>,
            target: anyhow::Result<ImportTarget>,
        }
        let snap = {
            let mut m = self.lock();
            m.rec.imports.push(req.clone());
            let quota = m.disk_quota_exceeded();
            let c = match self.coll(&m, &db, &req.collection_name) {
                Ok(c) => c,
                Err(s) => return failed(s),
            };
            let skipped =
                b.skip_disk_quota_check && is_true("skip_disk_quota_check") && (backup || l0);
            if quota && !skipped {
                return failed(b.status(
                    9,
                    ErrorCode::DiskQuotaExhausted,
                    "disk quota exceeded, please allocate more resources",
                ));
            }
            Snap {
                id: c.id,
                loaded: c.loaded,
                partition_key: c.partition_key().is_some(),
                partition: c.partition_id(&req.partition_name),
                target: files::field_infos(&c.schema).map(|fields| ImportTarget {
                    fields,
                    pk_field: c.pk_field().map_or(100, |f| f.field_id),
                    pk_type: c.pk_type(),
                }),
            }
        };
        let target = match snap.target {
            Ok(t) => t,
            Err(e) => return failed(b.unexpected(e.to_string())),
        };
        if l0 {
            if snap.loaded {
                return failed(b.invalid(
                    "for l0 import, collection cannot be loaded, please release it first",
                ));
            }
            let pid = if req.partition_name.is_empty() {
                -1
            } else {
                match snap.partition {
                    Some(p) => p,
                    None => return failed(b.partition_not_found(&req.partition_name)),
                }
            };
            if req.files.is_empty() || req.files.len() > 2 {
                return failed(b.import_refused("too many input paths for binlog import"));
            }
            let outcome = match files::read_l0(&b, &req.files[0], target.pk_type).await {
                Err(e) => Outcome::Failed(e),
                Ok(deletes) => {
                    let id = self.alloc();
                    let mut ids = FileIds::default();
                    if !deletes.is_empty() {
                        let root = self.root().to_path_buf();
                        let at = SegmentAt {
                            root: &root,
                            collection: snap.id,
                            partition: pid,
                            segment: id,
                        };
                        let encoding = if b.import_writes_storage_version >= 2 {
                            milvault_binlog::DeltaEncoding::V2Parquet
                        } else {
                            milvault_binlog::DeltaEncoding::V1Json
                        };
                        match files::write_delta(&at, &deletes, encoding, &|| self.alloc()) {
                            Ok(log) => ids.delta.push(log),
                            Err(e) => return failed(b.unexpected(e.to_string())),
                        }
                    }
                    Outcome::L0(Seg {
                        id,
                        partition_id: pid,
                        level: SegLevel::L0,
                        storage_version: b.import_writes_storage_version,
                        state: SegState::Flushed,
                        rows: Vec::new(),
                        deletes,
                        files: Some(ids),
                    })
                }
            };
            return self.start_task(snap.id, outcome, &req);
        }
        if !backup {
            if is_true("l0_import") {
                // A version without L0 import takes this as a plain file import of a
                // directory, whose type it cannot tell [I].
                return failed(b.unexpected(format!(
                    "unsupported file type for import: {}",
                    req.files.first().cloned().unwrap_or_default()
                )));
            }
            return failed(b.unexpected(
                "the fake Milvus imports binlogs only (options backup=true or l0_import=true)",
            ));
        }
        if req.partition_name.is_empty() {
            return failed(if b.merr_codes {
                b.invalid(b.partition_required)
            } else {
                b.unexpected(b.partition_required)
            });
        }
        let Some(pid) = snap.partition else {
            return failed(b.partition_not_found(&req.partition_name));
        };
        if !b.import_paths.contains(&req.files.len()) {
            return failed(if req.files.len() > 2 && b.at_least(2, 4, 0) {
                b.import_refused("too many input paths for binlog import")
            } else {
                b.invalid(format!(
                    "a backup import takes {} to {} paths, got {}",
                    b.import_paths.start(),
                    b.import_paths.end(),
                    req.files.len()
                ))
            });
        }
        if snap.partition_key && !b.partition_key_binlog_import {
            return self.start_task(
                snap.id,
                Outcome::Failed(
                    "failed to create binlog adapter, error: target partition must be only one"
                        .into(),
                ),
                &req,
            );
        }
        let storage_v2 = b.storage_version_option
            && opts.get("storage_version").is_some_and(|v| v.trim() == "2");
        let segments = match files::list_backup(&b, &req.files) {
            Ok(s) => s,
            Err(ImportError::Refused(reason)) => return failed(b.import_refused(reason)),
            Err(ImportError::Failed(reason)) => {
                return self.start_task(snap.id, Outcome::Failed(reason), &req);
            }
        };
        if self.lock().faults.contains(&Fault::FailImports) {
            let reason = "failed to read binlog: injected by the test".to_owned();
            return self.start_task(snap.id, Outcome::Failed(reason), &req);
        }
        let outcome = match files::read_backup(&b, segments, &target, storage_v2).await {
            Err(reason) => Outcome::Failed(reason),
            Ok(read) => match self.write_imported(snap.id, pid, &target, read) {
                Ok(segs) => Outcome::Segments(segs),
                Err(e) => Outcome::Failed(e.to_string()),
            },
        };
        self.start_task(snap.id, outcome, &req)
    }

    pub(super) async fn get_import_state_rpc(
        &self,
        r: Request<pb::GetImportStateRequest>,
    ) -> R<pb::GetImportStateResponse> {
        self.record("GetImportState");
        let id = r.into_inner().task;
        let b = self.behaviour.clone();
        let mut m = self.lock();
        let fault = m.import_rows_fault();
        let held = m.faults.contains(&Fault::HoldImports);
        if held && m.tasks.contains_key(&id) {
            return done(pb::GetImportStateResponse {
                status: ok(),
                id,
                state: ImportState::ImportStarted as i32,
                ..Default::default()
            });
        }
        let Some(task) = m.tasks.get_mut(&id) else {
            return failed(b.unexpected(format!("import task id {id} doesn't exist")));
        };
        let step = task.polls;
        task.polls += 1;
        let mut resp = pb::GetImportStateResponse {
            status: ok(),
            id,
            collection_id: task.collection_id,
            create_ts: task.create_ts,
            infos: task.infos.clone(),
            ..Default::default()
        };
        if let Some(state) = task.states.get(step) {
            resp.state = *state as i32;
            let pct = (step + 1) * 90 / (task.states.len() + 1);
            resp.infos.push(kv("progress_percent", pct.to_string()));
            resp.infos.push(kv("failed_reason", ""));
            return done(resp);
        }
        let (outcome, apply) = (task.outcome.clone(), !task.applied);
        task.applied = true;
        let rows = task.rows();
        let collection_id = task.collection_id;
        match outcome {
            Outcome::Failed(reason) => {
                resp.state = ImportState::ImportFailed as i32;
                resp.infos.push(kv("failed_reason", reason));
                resp.infos.push(kv("progress_percent", "0"));
            }
            Outcome::Segments(segs) => {
                resp.state = ImportState::ImportCompleted as i32;
                resp.row_count = rows + fault;
                resp.segment_ids = segs.iter().map(|s| s.id).collect();
                resp.infos.push(kv("failed_reason", ""));
                resp.infos.push(kv("progress_percent", "100"));
                if apply && let Some(c) = m.collections.iter_mut().find(|c| c.id == collection_id) {
                    c.segments.extend(segs);
                }
            }
            Outcome::L0(seg) => {
                resp.state = ImportState::ImportCompleted as i32;
                resp.row_count = rows + fault;
                resp.segment_ids = vec![seg.id];
                resp.infos.push(kv("failed_reason", ""));
                resp.infos.push(kv("progress_percent", "100"));
                if apply && let Some(c) = m.collections.iter_mut().find(|c| c.id == collection_id) {
                    c.segments.push(seg);
                }
            }
        }
        done(resp)
    }

    pub(super) async fn list_import_tasks_rpc(
        &self,
        r: Request<pb::ListImportTasksRequest>,
    ) -> R<pb::ListImportTasksResponse> {
        self.record("ListImportTasks");
        let db = self.db_of(&r, &r.get_ref().db_name);
        let name = r.into_inner().collection_name;
        let m = self.lock();
        let wanted = m.find(&db, &name).map(|c| c.id);
        let tasks = m
            .tasks
            .values()
            .filter(|t| name.is_empty() || Some(t.collection_id) == wanted)
            .map(|t| pb::GetImportStateResponse {
                status: ok(),
                id: t.id,
                collection_id: t.collection_id,
                state: match (&t.outcome, t.polls > t.states.len()) {
                    (Outcome::Failed(_), true) => ImportState::ImportFailed as i32,
                    (_, true) => ImportState::ImportCompleted as i32,
                    _ => ImportState::ImportStarted as i32,
                },
                create_ts: t.create_ts,
                ..Default::default()
            })
            .collect();
        done(pb::ListImportTasksResponse {
            status: ok(),
            tasks,
        })
    }
}
