//! The collections the round-trip tests (and the demo) seed, one per concern:
//! every 2.3 scalar type with an INT64 key and several partitions (one empty) and
//! segments with deletes; a VARCHAR key with a binary vector; auto-ID keys; and an
//! empty collection. [`compare`] checks a restored collection against its source.

use anyhow::{Result, ensure};

use crate::milvus_data::{DataClient, Field, dt};

/// (field, index name, params) of one index.
pub type IndexSpec = (String, String, Vec<(String, String)>);

/// How a fixture collection is built.
#[derive(Clone, Debug)]
pub struct Fixture {
    pub name: String,
    pub fields: Vec<Field>,
    /// (partition, rows) batches; a flush follows each batch, so each is a segment.
    pub batches: Vec<(String, usize)>,
    /// Extra partitions to create (maybe left empty).
    pub partitions: Vec<String>,
    /// Deletes applied after the inserts.
    pub deletes: Vec<String>,
    /// How many rows those deletes remove.
    pub deleted: usize,
    /// (field, index name, params).
    pub indexes: Vec<IndexSpec>,
    pub shards: i32,
    pub load: bool,
}

fn idx(
    field: &str,
    name: &str,
    params: &[(&str, &str)],
) -> (String, String, Vec<(String, String)>) {
    (
        field.into(),
        name.into(),
        params
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
    )
}

/// The standard set, with names prefixed by `prefix`.
pub fn standard(prefix: &str) -> Vec<Fixture> {
    vec![
        Fixture {
            name: format!("{prefix}all_types"),
            fields: vec![
                Field::new("pk", dt::INT64).primary(),
                Field::new("b", dt::BOOL),
                Field::new("i8", dt::INT8),
                Field::new("i16", dt::INT16),
                Field::new("i32", dt::INT32),
                Field::new("i64", dt::INT64),
                Field::new("f", dt::FLOAT),
                Field::new("d", dt::DOUBLE),
                Field::new("s", dt::VARCHAR).param("max_length", 128),
                Field::new("j", dt::JSON),
                Field::new("v", dt::FLOAT_VECTOR).param("dim", 8),
            ],
            batches: vec![
                ("_default".into(), 500),
                ("p1".into(), 300),
                ("_default".into(), 200),
            ],
            partitions: vec!["p1".into(), "p_empty".into()],
            deletes: vec!["pk in [3, 5, 7, 600, 999]".into()],
            deleted: 5,
            indexes: vec![
                idx(
                    "v",
                    "v_ivf",
                    &[
                        ("index_type", "IVF_FLAT"),
                        ("metric_type", "L2"),
                        ("params", r#"{"nlist":16}"#),
                    ],
                ),
                idx("i64", "i64_sort", &[("index_type", "STL_SORT")]),
                idx("s", "s_trie", &[("index_type", "Trie")]),
            ],
            shards: 2,
            load: true,
        },
        Fixture {
            name: format!("{prefix}varchar_pk"),
            fields: vec![
                Field::new("pk", dt::VARCHAR)
                    .primary()
                    .param("max_length", 64),
                Field::new("n", dt::INT64),
                Field::new("bv", dt::BINARY_VECTOR).param("dim", 16),
            ],
            batches: vec![("_default".into(), 400)],
            partitions: vec![],
            deletes: vec![r#"pk in ["key-000010", "key-000011"]"#.into()],
            deleted: 2,
            indexes: vec![idx(
                "bv",
                "bv_idx",
                &[
                    ("index_type", "BIN_IVF_FLAT"),
                    ("metric_type", "HAMMING"),
                    ("params", r#"{"nlist":8}"#),
                ],
            )],
            shards: 1,
            load: true,
        },
        Fixture {
            name: format!("{prefix}auto_ids"),
            fields: vec![
                Field::new("pk", dt::INT64).primary().auto_id(),
                Field::new("tag", dt::VARCHAR).param("max_length", 32),
                Field::new("v", dt::FLOAT_VECTOR).param("dim", 4),
            ],
            batches: vec![("_default".into(), 300), ("_default".into(), 100)],
            partitions: vec![],
            deletes: vec![],
            deleted: 0,
            indexes: vec![idx(
                "v",
                "v_hnsw",
                &[
                    ("index_type", "HNSW"),
                    ("metric_type", "IP"),
                    ("params", r#"{"M":8,"efConstruction":64}"#),
                ],
            )],
            shards: 1,
            load: false,
        },
        Fixture {
            name: format!("{prefix}empty"),
            fields: vec![
                Field::new("pk", dt::INT64).primary(),
                Field::new("v", dt::FLOAT_VECTOR).param("dim", 4),
            ],
            batches: vec![],
            partitions: vec!["never_used".into()],
            deletes: vec![],
            deleted: 0,
            indexes: vec![idx(
                "v",
                "v_flat",
                &[("index_type", "FLAT"), ("metric_type", "L2")],
            )],
            shards: 1,
            load: true,
        },
    ]
}

impl Fixture {
    /// Rows the collection holds once seeded.
    pub fn expected_rows(&self) -> usize {
        self.batches.iter().map(|b| b.1).sum::<usize>() - self.deleted
    }
}

/// Creates and fills `fx` in `db` (dropping an older copy first).
pub async fn seed(c: &DataClient, db: &str, fx: &Fixture, seed: u64) -> Result<()> {
    c.drop_collection_if_exists(db, &fx.name).await?;
    // Auto-compaction off keeps several segments (and their delete logs) in place.
    c.create_collection(
        db,
        &fx.name,
        &fx.fields,
        fx.shards,
        &[("collection.autocompaction.enabled", "false")],
    )
    .await?;
    for p in &fx.partitions {
        c.create_partition(db, &fx.name, p).await?;
    }
    let mut start = 0i64;
    for (part, n) in &fx.batches {
        c.insert(db, &fx.name, part, &fx.fields, start, *n, seed)
            .await?;
        start += *n as i64;
        c.flush(db, &fx.name).await?;
    }
    for (field, name, params) in &fx.indexes {
        let p: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        c.create_index(db, &fx.name, field, name, &p).await?;
    }
    if fx.load {
        c.load(db, &fx.name).await?;
    }
    for d in &fx.deletes {
        c.delete(db, &fx.name, d).await?;
    }
    if !fx.deletes.is_empty() {
        c.flush(db, &fx.name).await?;
    }
    Ok(())
}

/// Schema lines that must match between source and restore: field id, name, type,
/// flags, params, description.
pub async fn schema_lines(c: &DataClient, db: &str, coll: &str) -> Result<Vec<String>> {
    let d = c.describe(db, coll).await?;
    let s = d.schema.unwrap_or_default();
    let mut props: Vec<String> = d
        .properties
        .iter()
        .map(|kv| format!("{}={}", kv.key, kv.value))
        .collect();
    props.sort();
    let mut out = vec![format!(
        "description={:?} shards={} consistency={} dynamic={} num_partitions={} properties={:?} aliases={:?}",
        s.description,
        d.shards_num,
        d.consistency_level,
        s.enable_dynamic_field,
        d.num_partitions,
        props,
        c.aliases(db, coll).await?
    )];
    for f in &s.fields {
        let mut params: Vec<String> = f
            .type_params
            .iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect();
        params.sort();
        out.push(format!(
            "{} {} type={} element={} pk={} auto={} partition_key={} dynamic={} default={:?} desc={:?} {}",
            f.field_id,
            f.name,
            f.data_type,
            f.element_type,
            f.is_primary_key,
            f.auto_id,
            f.is_partition_key,
            f.is_dynamic,
            f.default_value,
            f.description,
            params.join(",")
        ));
    }
    Ok(out)
}

/// Compares everything the round trip must keep; the error lists what differs.
/// `expect_loaded` is the source's load state when it was backed up.
pub async fn compare(
    src: &DataClient,
    src_db: &str,
    src_name: &str,
    dst: &DataClient,
    dst_db: &str,
    dst_name: &str,
    expect_loaded: bool,
) -> Result<()> {
    let (a, b) = (
        schema_lines(src, src_db, src_name).await?,
        schema_lines(dst, dst_db, dst_name).await?,
    );
    ensure!(
        a == b,
        "schema differs for {dst_name}:\nsource {a:#?}\nrestored {b:#?}"
    );
    let (a, b) = (
        src.partitions(src_db, src_name).await?,
        dst.partitions(dst_db, dst_name).await?,
    );
    ensure!(a == b, "partitions differ for {dst_name}: {a:?} vs {b:?}");
    let (a, b) = (
        src.indexes(src_db, src_name).await?,
        dst.indexes(dst_db, dst_name).await?,
    );
    ensure!(a == b, "indexes differ for {dst_name}: {a:?} vs {b:?}");
    use milvault_proto::milvus::common::LoadState;
    let state = dst.load_state(dst_db, dst_name).await?;
    let loaded = state == LoadState::Loaded as i32 || state == LoadState::Loading as i32;
    ensure!(
        loaded == expect_loaded,
        "{dst_name}: load state {state}, expected loaded={expect_loaded}"
    );
    // Rows can only be read from loaded collections.
    src.load(src_db, src_name).await?;
    dst.load(dst_db, dst_name).await?;
    let (a, b) = (
        src.dump(src_db, src_name).await?,
        dst.dump(dst_db, dst_name).await?,
    );
    if a != b {
        let missing: Vec<&String> = a.keys().filter(|k| !b.contains_key(*k)).take(5).collect();
        let extra: Vec<&String> = b.keys().filter(|k| !a.contains_key(*k)).take(5).collect();
        let changed: Vec<&String> = a
            .iter()
            .filter(|(k, v)| b.get(*k).is_some_and(|w| w != *v))
            .map(|(k, _)| k)
            .take(5)
            .collect();
        let first = changed
            .first()
            .map(|k| {
                format!(
                    "; first changed row: source {:?}, restored {:?}",
                    a[*k], b[*k]
                )
            })
            .unwrap_or_default();
        anyhow::bail!(
            "rows differ for {dst_name}: source {} rows, restored {}; missing {missing:?}, extra {extra:?}, changed {changed:?}{first}",
            a.len(),
            b.len()
        );
    }
    Ok(())
}
