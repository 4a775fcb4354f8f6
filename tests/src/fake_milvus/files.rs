//! Segment files on the fake's local storage: writing them in a version's layout with
//! `milvault-binlog`'s writers, and reading what an `Import` points at the way that
//! version lists and decodes it.
//!
//! Layout (keys under the storage root, `MILVUS-PROTOCOL.md` §3.1, `MILVUS-24-26.md` b.2):
//! - v1: `insert_log/<c>/<p>/<s>/<field>/<log>` for fields 0 (row id), 1 (timestamp) and
//!   every user field; `delta_log/<c>/<p>/<s>/<log>`;
//! - storage v2: `insert_log/<c>/<p>/<s>/<group>/<log>`, bare Parquet column groups
//!   (group 0: row id, timestamp and the scalars; one group per vector field, keyed by
//!   its field id);
//! - L0: only `delta_log/<c>/<p or -1>/<s>/<log>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use arrow_array::builder::{FixedSizeListBuilder, Float32Builder};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use arrow_schema::DataType as ArrowType;
use milvault_binlog::segment::column;
use milvault_binlog::v2::FieldSpec;
use milvault_binlog::write::{
    GroupColumn, InsertLogSpec, LogIds, write_column_group, write_delta_log, write_insert_log,
};
use milvault_binlog::{
    ByteSource, DataType, DeleteEntry, DeltaEncoding, FileSource, Pk, Segment, SegmentFiles,
    read_delta_log,
};
use milvault_proto::milvus::schema as ms;

use super::PkType;
use super::behaviour::{Behaviour, ImportListing};

/// A user field as the files need it.
#[derive(Clone, Debug)]
pub(super) struct FieldInfo {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) dtype: DataType,
    pub(super) is_pk: bool,
    pub(super) dim: usize,
}

/// The user fields of a schema (`$meta` included).
pub(super) fn field_infos(schema: &ms::CollectionSchema) -> anyhow::Result<Vec<FieldInfo>> {
    schema
        .fields
        .iter()
        .map(|f| {
            let dtype = DataType::from_code(f.data_type, &f.name, 0)
                .map_err(|e| anyhow::anyhow!("field {}: {e}", f.name))?;
            let dim = f
                .type_params
                .iter()
                .find(|kv| kv.key == "dim")
                .and_then(|kv| kv.value.parse().ok())
                .unwrap_or(0);
            Ok(FieldInfo {
                id: f.field_id,
                name: f.name.clone(),
                dtype,
                is_pk: f.is_primary_key,
                dim,
            })
        })
        .collect()
}

/// Where a segment's files go.
pub(super) struct SegmentAt<'a> {
    pub(super) root: &'a Path,
    pub(super) collection: i64,
    pub(super) partition: i64,
    pub(super) segment: i64,
}

/// One chunk of a segment's rows: field id → column (0 row id, 1 timestamp, user fields).
pub(super) type Columns = BTreeMap<i64, ArrayRef>;

fn key_int(pk: &Pk) -> i64 {
    match pk {
        Pk::Int64(v) => *v,
        Pk::VarChar(s) => s
            .bytes()
            .fold(0i64, |h, b| h.wrapping_mul(31).wrapping_add(b as i64)),
    }
}

fn key_text(pk: &Pk) -> String {
    match pk {
        Pk::Int64(v) => v.to_string(),
        Pk::VarChar(s) => s.clone(),
    }
}

/// Columns for rows given by key and timestamp; other fields are derived from the key.
pub(super) fn synth_columns(
    fields: &[FieldInfo],
    rows: &[(Pk, u64)],
    first_row_id: i64,
) -> anyhow::Result<Columns> {
    let mut out = Columns::new();
    out.insert(
        0,
        Arc::new(Int64Array::from_iter_values(
            (0..rows.len() as i64).map(|i| first_row_id + i),
        )),
    );
    out.insert(
        1,
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|(_, t)| *t as i64),
        )),
    );
    for f in fields {
        let col: ArrayRef = match f.dtype {
            DataType::Int64 if f.is_pk => Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(k, _)| key_int(k)),
            )),
            DataType::Int64 => Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|(k, _)| key_int(k).rem_euclid(1000)),
            )),
            DataType::VarChar | DataType::String => Arc::new(StringArray::from_iter_values(
                rows.iter().map(|(k, _)| key_text(k)),
            )),
            DataType::Bool => Arc::new(BooleanArray::from_iter(
                rows.iter().map(|(k, _)| Some(key_int(k) % 2 == 0)),
            )),
            DataType::Double => Arc::new(Float64Array::from_iter_values(
                rows.iter().map(|(k, _)| key_int(k) as f64),
            )),
            DataType::Json => {
                Arc::new(BinaryArray::from_iter_values(rows.iter().map(|(k, _)| {
                    format!("{{\"tag\":\"{}\"}}", key_text(k)).into_bytes()
                })))
            }
            DataType::FloatVector => {
                let dim = i32::try_from(f.dim.max(1))?;
                let mut b =
                    FixedSizeListBuilder::new(Float32Builder::new(), dim).with_field(Arc::new(
                        arrow_schema::Field::new_list_field(ArrowType::Float32, false),
                    ));
                for (k, _) in rows {
                    for j in 0..dim {
                        b.values().append_value(key_int(k) as f32 + j as f32 / 10.0);
                    }
                    b.append(true);
                }
                Arc::new(b.finish())
            }
            other => bail!(
                "the fake cannot make values of {other:?} (field {})",
                f.name
            ),
        };
        out.insert(f.id, col);
    }
    Ok(out)
}

fn type_of(fields: &[FieldInfo], id: i64) -> anyhow::Result<DataType> {
    match id {
        0 | 1 => Ok(DataType::Int64),
        _ => fields
            .iter()
            .find(|f| f.id == id)
            .map(|f| f.dtype)
            .with_context(|| format!("no field {id} in the schema")),
    }
}

fn ts_range(cols: &Columns) -> (u64, u64) {
    let Some(ts) = cols.get(&1).and_then(|a| a.as_primitive_opt::<Int64Type>()) else {
        return (1, 1);
    };
    let min = ts.values().iter().copied().min().unwrap_or(1).max(1) as u64;
    let max = ts.values().iter().copied().max().unwrap_or(1).max(1) as u64;
    (min, max)
}

fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// Writes a segment's insert logs, one file per field (v1) or column group (v2) for each
/// chunk; returns field (or group) id → log ids.
pub(super) fn write_insert(
    at: &SegmentAt<'_>,
    fields: &[FieldInfo],
    chunks: &[Columns],
    storage_version: i64,
    alloc: &dyn Fn() -> i64,
) -> anyhow::Result<BTreeMap<i64, Vec<i64>>> {
    let dir = at.root.join(format!(
        "insert_log/{}/{}/{}",
        at.collection, at.partition, at.segment
    ));
    let mut logs: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    if storage_version >= 2 {
        let mut groups: Vec<Vec<i64>> = vec![vec![0, 1]];
        for f in fields {
            if f.dtype.is_vector() {
                groups.push(vec![f.id]);
            } else {
                groups[0].push(f.id);
            }
        }
        for chunk in chunks {
            for g in &groups {
                // Group 0 holds the system fields; a vector group is keyed by its field.
                let gid = g[0];
                let mut cols = Vec::new();
                for id in g {
                    let Some(values) = chunk.get(id) else {
                        continue;
                    };
                    cols.push(GroupColumn {
                        field_id: *id,
                        name: match id {
                            0 => "RowID".to_owned(),
                            1 => "Timestamp".to_owned(),
                            _ => fields
                                .iter()
                                .find(|f| f.id == *id)
                                .map(|f| f.name.clone())
                                .unwrap_or_default(),
                        },
                        data_type: type_of(fields, *id)?,
                        nullable: false,
                        values: values.clone(),
                    });
                }
                let bytes = write_column_group(&cols, &groups)?;
                let log = alloc();
                write_file(&dir.join(format!("{gid}/{log}")), &bytes)?;
                logs.entry(gid).or_default().push(log);
            }
        }
        return Ok(logs);
    }
    for chunk in chunks {
        let (start_ts, end_ts) = ts_range(chunk);
        for (id, values) in chunk {
            let spec = InsertLogSpec {
                ids: LogIds::new(at.collection, at.partition, at.segment, *id),
                data_type: type_of(fields, *id)?,
                start_ts,
                end_ts,
                nullable: None,
            };
            let bytes = write_insert_log(&spec, values)?;
            let log = alloc();
            write_file(&dir.join(format!("{id}/{log}")), &bytes)?;
            logs.entry(*id).or_default().push(log);
        }
    }
    Ok(logs)
}

/// Writes one delete log; returns its log id.
pub(super) fn write_delta(
    at: &SegmentAt<'_>,
    deletes: &[(Pk, u64)],
    encoding: DeltaEncoding,
    alloc: &dyn Fn() -> i64,
) -> anyhow::Result<i64> {
    let entries: Vec<DeleteEntry> = deletes
        .iter()
        .map(|(pk, ts)| DeleteEntry {
            pk: pk.clone(),
            ts: *ts,
        })
        .collect();
    let bytes = write_delta_log(
        &LogIds::new(at.collection, at.partition, at.segment, -1),
        &entries,
        encoding,
    )?;
    let log = alloc();
    let path = at.root.join(format!(
        "delta_log/{}/{}/{}/{log}",
        at.collection, at.partition, at.segment
    ));
    write_file(&path, &bytes)?;
    Ok(log)
}

// ---------------------------------------------------------------------------------------
// Import: listing and reading.
// ---------------------------------------------------------------------------------------

/// Why an import could not go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ImportError {
    /// Refused by the RPC itself (2.4+ lists the paths while creating the job).
    Refused(String),
    /// The task fails with this reason.
    Failed(String),
}

/// The files of one segment an import found.
#[derive(Clone, Debug, Default)]
pub(super) struct SegFiles {
    /// Field (or group) id → `(log id, path)`.
    pub(super) insert: BTreeMap<i64, Vec<(i64, PathBuf)>>,
    /// Delete logs.
    pub(super) delta: Vec<PathBuf>,
}

/// Entries under a storage prefix: a path ending in `/` is a directory; otherwise every
/// entry of its parent whose path starts with it matches (object-storage prefix
/// semantics). Relative paths find nothing: local storage reads absolute paths only
/// (`MILVUS.md`, seen on 2.3.5).
fn under_prefix(prefix: &str, recursive: bool) -> Vec<PathBuf> {
    if !prefix.starts_with('/') {
        return Vec::new();
    }
    let roots: Vec<PathBuf> = if prefix.ends_with('/') {
        read_dir_sorted(Path::new(prefix))
    } else {
        let parent = Path::new(prefix).parent().unwrap_or(Path::new("/"));
        read_dir_sorted(parent)
            .into_iter()
            .filter(|p| p.to_string_lossy().starts_with(prefix))
            .collect()
    };
    if !recursive {
        return roots;
    }
    let mut out = Vec::new();
    for r in roots {
        walk(&r, &mut out);
    }
    out
}

fn read_dir_sorted(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        for c in read_dir_sorted(p) {
            walk(&c, out);
        }
    } else {
        out.push(p.to_path_buf());
    }
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn parent_name(p: &Path, up: usize) -> String {
    let mut cur = p;
    for _ in 0..up {
        cur = cur.parent().unwrap_or(cur);
    }
    name_of(cur)
}

/// Lists the segments of a backup-mode import the way the version does.
pub(super) fn list_backup(
    b: &Behaviour,
    paths: &[String],
) -> Result<Vec<(i64, SegFiles)>, ImportError> {
    let insert = paths.first().map(String::as_str).unwrap_or_default();
    let delta = paths.get(1).map(String::as_str).unwrap_or_default();
    let mut segs: BTreeMap<i64, SegFiles> = BTreeMap::new();
    match b.import_listing {
        ImportListing::Recursive => {
            for f in under_prefix(insert, true) {
                let parse = |s: String, what: &str| {
                    s.parse::<i64>().map_err(|_| {
                        ImportError::Failed(format!(
                            "failed to parse {what} id from insert log path {}",
                            f.display()
                        ))
                    })
                };
                let log = parse(name_of(&f), "log")?;
                let field = parse(parent_name(&f, 1), "field")?;
                let seg = parse(parent_name(&f, 2), "segment")?;
                segs.entry(seg)
                    .or_default()
                    .insert
                    .entry(field)
                    .or_default()
                    .push((log, f));
            }
            for f in under_prefix(delta, true) {
                let Ok(seg) = parent_name(&f, 1).parse::<i64>() else {
                    return Err(ImportError::Failed(format!(
                        "failed to parse segment id from delta log path {}",
                        f.display()
                    )));
                };
                if let Some(s) = segs.get_mut(&seg) {
                    s.delta.push(f);
                }
            }
        }
        ImportListing::SegmentChildren => {
            let children = under_prefix(insert, false);
            if children.is_empty() {
                return Err(ImportError::Refused(format!(
                    "no binlog to import, input={paths:?}"
                )));
            }
            let deltas = under_prefix(delta, false);
            for child in children {
                let Ok(seg) = name_of(&child).parse::<i64>() else {
                    return Err(ImportError::Failed(format!(
                        "failed to parse segment id from path {}",
                        child.display()
                    )));
                };
                let mut files = SegFiles::default();
                let mut all = Vec::new();
                walk(&child, &mut all);
                for f in all {
                    let parse = |s: String, what: &str| {
                        s.parse::<i64>().map_err(|_| {
                            ImportError::Failed(format!(
                                "failed to parse {what} id from binlog path {}",
                                f.display()
                            ))
                        })
                    };
                    let log = parse(name_of(&f), "log")?;
                    let field = parse(parent_name(&f, 1), "field")?;
                    files.insert.entry(field).or_default().push((log, f));
                }
                if let Some(d) = deltas.iter().find(|d| name_of(d) == name_of(&child)) {
                    walk(d, &mut files.delta);
                }
                segs.insert(seg, files);
            }
        }
    }
    for s in segs.values_mut() {
        for logs in s.insert.values_mut() {
            logs.sort();
        }
        s.delta.sort();
    }
    Ok(segs.into_iter().collect())
}

/// The collection an import writes into.
#[derive(Clone, Debug)]
pub(super) struct ImportTarget {
    /// User fields (`$meta` included).
    pub(super) fields: Vec<FieldInfo>,
    /// Primary key field id.
    pub(super) pk_field: i64,
    /// Primary key type.
    pub(super) pk_type: PkType,
}

/// One segment read by an import: its surviving rows, as columns and as keys.
#[derive(Clone, Debug)]
pub(super) struct ImportedSegment {
    /// Surviving rows as column chunks (target fields only).
    pub(super) chunks: Vec<Columns>,
    /// Surviving `(key, timestamp)`.
    pub(super) rows: Vec<(Pk, u64)>,
}

/// Milvus's v1 reader on a file without the v1 magic number (`readMagicNumber`).
fn magic_error(path: &Path, first4: &[u8]) -> String {
    let actual = first4
        .get(..4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .unwrap_or(0);
    format!(
        "failed to read binlog {}: parse magic number failed, expected: {}, actual: {actual}",
        path.display(),
        milvault_binlog::v1::MAGIC
    )
}

fn first4(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut buf = [0u8; 4];
    match std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut buf)) {
        Ok(()) => buf.to_vec(),
        Err(_) => Vec::new(),
    }
}

fn source(path: &Path) -> Result<Arc<dyn ByteSource>, String> {
    FileSource::open(path)
        .map(|s| Arc::new(s) as Arc<dyn ByteSource>)
        .map_err(|e| format!("failed to open {}: {e}", path.display()))
}

/// Reads every delete log of a list, refusing the encodings the version cannot read.
pub(super) async fn read_deltas(
    b: &Behaviour,
    files: &[PathBuf],
    pk_type: PkType,
) -> Result<Vec<(Pk, u64)>, String> {
    let mut out = Vec::new();
    for f in files {
        let head = first4(f);
        let log = read_delta_log(source(f)?)
            .await
            .map_err(|e| format!("failed to read delta log {}: {e}", f.display()))?;
        if !b.import_delta_encodings.contains(&log.encoding) {
            return Err(match log.encoding {
                // Read with the v1 reader: a bare Parquet file has no magic number.
                DeltaEncoding::V2Parquet => magic_error(f, &head),
                // 2.2/2.3 read the payload as VarChar only (`ReadVarchar`).
                _ => format!(
                    "failed to read delta log {}: the payload is not a varchar column",
                    f.display()
                ),
            });
        }
        for e in log.entries {
            let ok = matches!(
                (&e.pk, pk_type),
                (Pk::Int64(_), PkType::Int64) | (Pk::VarChar(_), PkType::VarChar)
            );
            if !ok {
                return Err(format!(
                    "the primary key type of delete log {} does not match the collection's",
                    f.display()
                ));
            }
            out.push((e.pk, e.ts));
        }
    }
    Ok(out)
}

/// Reads the segments of a backup-mode import: checks them as the version does, decodes
/// them with `milvault-binlog`, applies their own deletes with the version's rule.
pub(super) async fn read_backup(
    b: &Behaviour,
    segments: Vec<(i64, SegFiles)>,
    target: &ImportTarget,
    storage_v2: bool,
) -> Result<Vec<ImportedSegment>, String> {
    let mut out = Vec::new();
    for (seg_id, files) in segments {
        let wanted: Vec<i64> = [0, 1]
            .into_iter()
            .chain(target.fields.iter().map(|f| f.id))
            .collect();
        let count = |id: &i64| files.insert.get(id).map_or(0, Vec::len);
        match b.import_listing {
            ImportListing::Recursive => {
                // 2.2/2.3 binlog_adapter: every schema field and both system fields.
                for id in &wanted {
                    if count(id) == 0 {
                        return Err(format!("the field {id} has no binlog file"));
                    }
                }
                let n = count(&wanted[0]);
                if wanted.iter().any(|id| count(id) != n) {
                    return Err("binlog file count of each field must be equal".into());
                }
            }
            ImportListing::SegmentChildren if storage_v2 => {
                if count(&0) == 0 {
                    return Err("no binlog for system fields".into());
                }
                for f in target.fields.iter().filter(|f| f.dtype.is_vector()) {
                    if count(&f.id) == 0 {
                        return Err(format!("no binlog for field:{}", f.name));
                    }
                }
                let n = count(&0);
                if files.insert.values().any(|l| l.len() != n) {
                    return Err("misaligned binlog count".into());
                }
            }
            ImportListing::SegmentChildren => {
                if count(&0) == 0 {
                    return Err("no binlog for RowID field".into());
                }
                if count(&1) == 0 {
                    return Err("no binlog for Timestamp field".into());
                }
                for f in &target.fields {
                    if count(&f.id) == 0 {
                        return Err(format!("no binlog for field:{}", f.name));
                    }
                }
                let n = count(&0);
                if wanted.iter().any(|id| count(id) != n) {
                    return Err("misaligned binlog count".into());
                }
            }
        }
        let segment = if storage_v2 {
            let mut groups = BTreeMap::new();
            for (gid, logs) in &files.insert {
                let mut srcs = Vec::new();
                for (_, p) in logs {
                    srcs.push(source(p)?);
                }
                groups.insert(*gid, srcs);
            }
            let schema = target
                .fields
                .iter()
                .map(|f| FieldSpec {
                    field_id: f.id,
                    data_type: f.dtype,
                })
                .collect();
            Segment::new(
                format!("segment {seg_id}"),
                SegmentFiles::V2 { groups, schema },
            )
        } else {
            let mut fields = BTreeMap::new();
            for id in &wanted {
                let mut srcs = Vec::new();
                for (_, p) in files.insert.get(id).map(Vec::as_slice).unwrap_or_default() {
                    let head = first4(p);
                    if !milvault_binlog::v1::has_v1_magic(&head) {
                        return Err(magic_error(p, &head));
                    }
                    srcs.push(source(p)?);
                }
                fields.insert(*id, srcs);
            }
            Segment::new(format!("segment {seg_id}"), SegmentFiles::V1 { fields })
        };
        let deletes = read_deltas(b, &files.delta, target.pk_type).await?;
        let set = b.import_delete_rule.delete_set(&deletes);
        let mut reader = segment
            .batches(Some(&wanted))
            .await
            .map_err(|e| format!("failed to read segment {seg_id}: {e}"))?;
        let mut chunks = Vec::new();
        let mut rows = Vec::new();
        while let Some(batch) = reader
            .next_batch()
            .await
            .map_err(|e| format!("failed to read segment {seg_id}: {e}"))?
        {
            let live = set
                .filter_live(&batch, target.pk_field)
                .map_err(|e| format!("failed to apply deletes to segment {seg_id}: {e}"))?;
            if live.num_rows() == 0 {
                continue;
            }
            rows.extend(keys(&live, target.pk_field)?);
            chunks.push(columns_of(&live));
        }
        out.push(ImportedSegment { chunks, rows });
    }
    Ok(out)
}

fn columns_of(batch: &RecordBatch) -> Columns {
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .filter_map(|(f, a)| f.name().parse::<i64>().ok().map(|id| (id, a.clone())))
        .collect()
}

fn keys(batch: &RecordBatch, pk_field: i64) -> Result<Vec<(Pk, u64)>, String> {
    let (Some(pks), Some(ts)) = (column(batch, pk_field), column(batch, 1)) else {
        return Err("a segment batch lacks the key or timestamp column".into());
    };
    let ts = ts
        .as_primitive_opt::<Int64Type>()
        .ok_or("timestamps are not Int64")?;
    let keys: Vec<Pk> = match pks.data_type() {
        ArrowType::Int64 => pks
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|v| Pk::Int64(*v))
            .collect(),
        ArrowType::Utf8 => pks
            .as_string::<i32>()
            .iter()
            .map(|v| Pk::VarChar(v.unwrap_or_default().to_owned()))
            .collect(),
        other => return Err(format!("primary keys of type {other}")),
    };
    Ok(keys
        .into_iter()
        .zip(ts.values().iter().map(|t| *t as u64))
        .collect())
}

/// The deletes of an L0 import: every object under the path is a delete log (the L0
/// reader lists recursively, `MILVUS-24-26.md` a.4).
pub(super) async fn read_l0(
    b: &Behaviour,
    path: &str,
    pk_type: PkType,
) -> Result<Vec<(Pk, u64)>, String> {
    let files = under_prefix(path, true);
    read_deltas(b, &files, pk_type).await
}

/// Replaces the timestamps of imported rows (2.2/2.3 stamp them with the import time).
pub(super) fn restamp(seg: &mut ImportedSegment, ts: u64) {
    for chunk in &mut seg.chunks {
        let n = chunk.get(&1).map_or(0, |a| a.len());
        chunk.insert(
            1,
            Arc::new(Int64Array::from_iter_values(std::iter::repeat_n(
                ts as i64, n,
            ))),
        );
    }
    for row in &mut seg.rows {
        row.1 = ts;
    }
}
