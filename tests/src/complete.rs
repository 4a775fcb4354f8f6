//! A whole Milvus 2.3 deployment in miniature, one collection per concern: two
//! databases holding a collection of the same name, a dynamic schema, ARRAY fields of
//! every element type, default values, collection settings and properties, aliases,
//! a partition key, upserts and rows still in growing segments, many index types,
//! and users, roles and grants.

use anyhow::Result;
use milvault_proto::milvus::schema::value_field::Data as V;

use crate::milvus_data::{CollOpts, DataClient, Field, dt, dynamic_column};

/// One collection of the set.
pub struct Item {
    pub db: String,
    pub name: String,
    pub loaded: bool,
    pub rows: usize,
}

/// Names used by one seeded deployment.
pub struct Deployment {
    pub dbs: [String; 2],
    pub items: Vec<Item>,
    pub aliases: Vec<String>,
    pub role: String,
    pub user: String,
}

fn vector(dim: usize) -> Field {
    Field::new("v", dt::FLOAT_VECTOR).param("dim", dim)
}

async fn index(
    c: &DataClient,
    db: &str,
    coll: &str,
    field: &str,
    name: &str,
    params: &[(&str, &str)],
) -> Result<()> {
    c.create_index(db, coll, field, name, params).await
}

/// Seeds the deployment into `c`, names suffixed with `id`.
pub async fn seed(c: &DataClient, id: &str) -> Result<Deployment> {
    let dbs = [format!("d1_{id}"), format!("d2_{id}")];
    for db in &dbs {
        c.create_database(db).await?;
    }
    let d1 = dbs[0].as_str();
    let mut items = Vec::new();

    // The same collection name in both databases, different contents.
    for (i, db) in dbs.iter().enumerate() {
        let fields = vec![
            Field::new("pk", dt::INT64).primary(),
            Field::new("s", dt::VARCHAR).param("max_length", 64),
            vector(4),
        ];
        c.create_collection(db, "same", &fields, 1, &[]).await?;
        let n = 100 + 50 * i;
        c.insert(db, "same", "", &fields, 0, n, 11 + i as u64)
            .await?;
        c.flush(db, "same").await?;
        index(
            c,
            db,
            "same",
            "v",
            "v_flat",
            &[("index_type", "FLAT"), ("metric_type", "L2")],
        )
        .await?;
        items.push(Item {
            db: db.clone(),
            name: "same".into(),
            loaded: false,
            rows: n,
        });
    }

    // Dynamic field: rows carry extra keys in $meta.
    {
        let fields = vec![Field::new("pk", dt::INT64).primary(), vector(4)];
        let opts = CollOpts {
            shards: 1,
            dynamic: true,
            ..Default::default()
        };
        c.create_collection_with(d1, "dyn", &fields, &opts).await?;
        let mut cols: Vec<_> = fields
            .iter()
            .map(|f| crate::milvus_data::column(f, 0, 200, 3))
            .collect();
        cols.push(dynamic_column(0, 200));
        c.insert_columns(d1, "dyn", "", cols, 200).await?;
        c.flush(d1, "dyn").await?;
        index(
            c,
            d1,
            "dyn",
            "v",
            "v_ivf",
            &[
                ("index_type", "IVF_FLAT"),
                ("metric_type", "COSINE"),
                ("params", r#"{"nlist":4}"#),
            ],
        )
        .await?;
        c.load(d1, "dyn").await?;
        items.push(Item {
            db: d1.into(),
            name: "dyn".into(),
            loaded: true,
            rows: 200,
        });
    }

    // ARRAY of every element type 2.3 accepts.
    {
        let mut fields = vec![Field::new("pk", dt::INT64).primary()];
        for (name, t) in [
            ("a_bool", dt::BOOL),
            ("a_i8", dt::INT8),
            ("a_i16", dt::INT16),
            ("a_i32", dt::INT32),
            ("a_i64", dt::INT64),
            ("a_f", dt::FLOAT),
            ("a_d", dt::DOUBLE),
            ("a_s", dt::VARCHAR),
        ] {
            fields.push(Field::array(name, t, 5));
        }
        fields.push(vector(8));
        c.create_collection(d1, "arrays", &fields, 1, &[]).await?;
        c.insert(d1, "arrays", "", &fields, 0, 150, 5).await?;
        c.flush(d1, "arrays").await?;
        index(
            c,
            d1,
            "arrays",
            "v",
            "v_sq8",
            &[
                ("index_type", "IVF_SQ8"),
                ("metric_type", "L2"),
                ("params", r#"{"nlist":8}"#),
            ],
        )
        .await?;
        items.push(Item {
            db: d1.into(),
            name: "arrays".into(),
            loaded: false,
            rows: 150,
        });
    }

    // Default values on every type that has one, settings and properties.
    {
        let fields = vec![
            Field::new("pk", dt::INT64).primary(),
            Field::new("b", dt::BOOL).default_value(V::BoolData(true)),
            Field::new("i8", dt::INT8).default_value(V::IntData(-8)),
            Field::new("i16", dt::INT16).default_value(V::IntData(1600)),
            Field::new("i32", dt::INT32).default_value(V::IntData(-32000)),
            Field::new("i64", dt::INT64).default_value(V::LongData(1 << 40)),
            Field::new("f", dt::FLOAT).default_value(V::FloatData(1.5)),
            Field::new("d", dt::DOUBLE).default_value(V::DoubleData(-2.25)),
            Field::new("s", dt::VARCHAR)
                .param("max_length", 64)
                .default_value(V::StringData("dflt".into())),
            vector(8),
        ];
        let opts = CollOpts {
            shards: 3,
            consistency: 2,
            properties: vec![("collection.ttl.seconds".into(), "864000".into())],
            ..Default::default()
        };
        c.create_collection_with(d1, "defaults", &fields, &opts)
            .await?;
        // Full columns always: a 2.3.5 proxy dies on an insert that omits a default-valued column.
        c.insert(d1, "defaults", "", &fields, 0, 120, 8).await?;
        c.flush(d1, "defaults").await?;
        index(
            c,
            d1,
            "defaults",
            "v",
            "v_pq",
            &[
                ("index_type", "IVF_PQ"),
                ("metric_type", "L2"),
                ("params", r#"{"nlist":8,"m":4,"nbits":8}"#),
            ],
        )
        .await?;
        items.push(Item {
            db: d1.into(),
            name: "defaults".into(),
            loaded: false,
            rows: 120,
        });
    }

    // Aliases, Eventually consistency, binary vectors.
    let aliases = vec![format!("al1_{id}"), format!("al2_{id}")];
    {
        let fields = vec![
            Field::new("pk", dt::VARCHAR)
                .primary()
                .param("max_length", 32),
            Field::new("bv", dt::BINARY_VECTOR).param("dim", 32),
        ];
        let opts = CollOpts {
            shards: 1,
            consistency: 3,
            ..Default::default()
        };
        c.create_collection_with(d1, "aliased", &fields, &opts)
            .await?;
        c.insert(d1, "aliased", "", &fields, 0, 80, 2).await?;
        c.flush(d1, "aliased").await?;
        index(
            c,
            d1,
            "aliased",
            "bv",
            "bv_flat",
            &[("index_type", "BIN_FLAT"), ("metric_type", "JACCARD")],
        )
        .await?;
        for a in &aliases {
            c.create_alias(d1, "aliased", a).await?;
        }
        c.load(d1, "aliased").await?;
        items.push(Item {
            db: d1.into(),
            name: "aliased".into(),
            loaded: true,
            rows: 80,
        });
    }

    // Partition key: binlog import cannot go in on 2.3.
    {
        let fields = vec![
            Field::new("pk", dt::INT64).primary(),
            Field::new("tenant", dt::VARCHAR)
                .param("max_length", 64)
                .partition_key(),
            vector(4),
        ];
        // Dynamic too: the row copy must carry the $meta keys.
        let opts = CollOpts {
            shards: 1,
            num_partitions: 4,
            dynamic: true,
            ..Default::default()
        };
        c.create_collection_with(d1, "pkey", &fields, &opts).await?;
        for (start, n) in [(0i64, 300usize), (300, 100)] {
            let mut cols: Vec<_> = fields
                .iter()
                .map(|f| crate::milvus_data::column(f, start, n, 4))
                .collect();
            cols.push(dynamic_column(start, n));
            c.insert_columns(d1, "pkey", "", cols, n).await?;
            c.flush(d1, "pkey").await?;
        }
        index(
            c,
            d1,
            "pkey",
            "v",
            "v_auto",
            &[("index_type", "AUTOINDEX"), ("metric_type", "L2")],
        )
        .await?;
        items.push(Item {
            db: d1.into(),
            name: "pkey".into(),
            loaded: false,
            rows: 400,
        });
    }

    // Upserts, deletes, and rows still growing when the backup starts.
    {
        let fields = vec![
            Field::new("pk", dt::INT64).primary(),
            Field::new("n", dt::INT64),
            vector(4),
        ];
        c.create_collection(
            d1,
            "upserted",
            &fields,
            1,
            &[("collection.autocompaction.enabled", "false")],
        )
        .await?;
        c.insert(d1, "upserted", "", &fields, 0, 300, 6).await?;
        c.flush(d1, "upserted").await?;
        index(
            c,
            d1,
            "upserted",
            "v",
            "v_hnsw",
            &[
                ("index_type", "HNSW"),
                ("metric_type", "L2"),
                ("params", r#"{"M":8,"efConstruction":32}"#),
            ],
        )
        .await?;
        c.load(d1, "upserted").await?;
        c.upsert(d1, "upserted", &fields, 100, 50, 99).await?;
        c.delete(d1, "upserted", "pk in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]")
            .await?;
        // Not flushed: the backup's own flush must capture these.
        c.insert(d1, "upserted", "", &fields, 300, 40, 6).await?;
        items.push(Item {
            db: d1.into(),
            name: "upserted".into(),
            loaded: true,
            rows: 330,
        });
    }

    // Users, roles and grants.
    let role = format!("role_{id}");
    let user = format!("user_{id}");
    c.create_role(&role).await?;
    c.create_user(&user, "Secret-123").await?;
    c.add_user_to_role(&user, &role).await?;
    c.grant(&role, "Collection", "*", "Query", "default")
        .await?;
    c.grant(&role, "Collection", "dyn", "Search", d1).await?;
    c.grant(&role, "Global", "*", "DescribeCollection", "default")
        .await?;

    Ok(Deployment {
        dbs,
        items,
        aliases,
        role,
        user,
    })
}

/// Every file a manifest references.
pub fn manifest_files(
    m: &milvault_sdk::pb::BackupManifest,
) -> impl Iterator<Item = &milvault_sdk::pb::BackupFile> {
    m.collections
        .iter()
        .flat_map(|c| &c.segments)
        .flat_map(|s| {
            s.insert_logs
                .iter()
                .chain(&s.delta_logs)
                .chain(&s.stats_logs)
        })
}
