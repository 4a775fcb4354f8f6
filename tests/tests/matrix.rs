//! The compatibility matrix: a backup from each Milvus minor version 2.2 … 2.6 restored
//! into each of them, 25 cells, against the behavioural fake (`fake_milvus`: real
//! segment files in the version's layout, imports that read them and apply the
//! version's delete rule, the version's refusals). The README's "Compatibility" section
//! names this file for every cell; the cells 2.2/2.3 × 2.2/2.3 also run against real
//! Milvus 2.2.16 and 2.3.5 (`milvus_22.rs`, `round_trip.rs`).
//!
//! Two tests, both looping over every pair:
//! - data: each source holds what its version writes — a data segment with a delete in
//!   its delete log, a key deleted and written again in a later segment, and on 2.4+
//!   an L0 (delete-only) segment for every partition, written in storage v2 on 2.6 —
//!   and every target must end with exactly the source's live keys;
//! - schema: each source (2.3+) holds a collection with one element of its own
//!   version (array field, sparse vector, nullable field, int8 vector); an older target
//!   must refuse the restore with `FAILED_PRECONDITION` naming it and create nothing,
//!   any other target must restore it.

use std::collections::BTreeMap;

use milvault_proto::milvus::common::KeyValuePair;
use milvault_proto::milvus::milvus as mpb;
use milvault_proto::milvus::milvus::milvus_service_client::MilvusServiceClient;
use milvault_proto::milvus::schema::{self as ms, DataType};
use milvault_sdk::{Client, pb};
use milvault_tests::fake_milvus::{ALL_PARTITIONS, CollectionSpec, FakeMilvus, Pk, SegmentSpec};
use milvault_tests::harness::{Minimal, MinimalCluster, TestServer, assert_succeeded, run_job};
use prost::Message;

/// One version per minor: the newest patch each gate in `features.rs` distinguishes
/// (2.4.18: RBAC with built-in groups; 2.5.8: `segments/describe`; 2.6.8: GC tickets).
const VERSIONS: [(&str, &str); 5] = [
    ("m22", "v2.2.16"),
    ("m23", "v2.3.5"),
    ("m24", "v2.4.18"),
    ("m25", "v2.5.8"),
    ("m26", "v2.6.8"),
];

/// Minor version of a fake (`v2.4.18` → 4).
fn minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .expect("a version v2.N.x")
}

/// The fakes and a server with one source and one target cluster per version
/// (`src_m22`, `dst_m22`, ...), REST served so 2.5.8+ describe their segments.
struct World {
    sources: Vec<FakeMilvus>,
    targets: Vec<FakeMilvus>,
    server: TestServer,
}

async fn world() -> anyhow::Result<World> {
    let mut sources = Vec::new();
    let mut targets = Vec::new();
    let mut clusters = Vec::new();
    for (name, version) in VERSIONS {
        for (prefix, list) in [("src", &mut sources), ("dst", &mut targets)] {
            let fake = FakeMilvus::new(version);
            let address = fake.serve().await?;
            let management = fake.serve_management().await?;
            let rest = fake.serve_rest().await?;
            clusters.push(MinimalCluster {
                name: format!("{prefix}_{name}"),
                address,
                management: Some(management),
                root: fake.root().to_path_buf(),
                extra: format!("rest = \"{rest}\"\n"),
            });
            list.push(fake);
        }
    }
    let server = TestServer::start_minimal(
        &Minimal {
            clusters,
            ..Default::default()
        },
        vec![],
    )
    .await?;
    Ok(World {
        sources,
        targets,
        server,
    })
}

async fn backup(c: &Client, name: &str, cluster: &str, only: &str) -> anyhow::Result<pb::Job> {
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: name.into(),
            cluster: cluster.into(),
            collections: vec![format!("default.{only}")],
            ..Default::default()
        })
        .await?;
    run_job(c, job).await
}

async fn restore(
    c: &Client,
    backup: &str,
    cluster: &str,
    from: &str,
    to: &str,
) -> anyhow::Result<pb::Job> {
    let job = c
        .restore_backup(pb::RestoreBackupRequest {
            backup: backup.into(),
            cluster: cluster.into(),
            renames: [(from.to_string(), to.to_string())].into_iter().collect(),
            ..Default::default()
        })
        .await?;
    run_job(c, job).await
}

/// Live keys of a collection (keys only: imports into 2.2/2.3 and row inserts give
/// rows new timestamps).
fn keys(fake: &FakeMilvus, collection: &str) -> Vec<Pk> {
    fake.live_keys(collection)
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// What a source of `version` holds in `c1`.
async fn seed_data(fake: &FakeMilvus, version: &str) -> anyhow::Result<()> {
    let v2 = minor(version) >= 6;
    let layout = |s: SegmentSpec| if v2 { s.storage_v2() } else { s };
    fake.add_collection(CollectionSpec::new("c1"))?;
    // Keys 0..10; key 3 deleted at 2000 in the segment's own delete log.
    let rows: Vec<(i64, u64)> = (0..10).map(|i| (i, 1000 + i as u64)).collect();
    fake.add_segment(
        "c1",
        "_default",
        layout(SegmentSpec::ints(&rows).with_deletes(&[(3, 2000)])),
    )
    .await?;
    // Key 3 written again after its delete (an upsert), and a new key 10: on 2.2 a
    // binlog import would drop the new row of key 3 with the old delete.
    fake.add_segment(
        "c1",
        "_default",
        layout(SegmentSpec::ints(&[(3, 2500), (10, 2600)])),
    )
    .await?;
    if minor(version) >= 4 {
        // Key 5 deleted by an L0 segment of every partition; key 7 "deleted" before
        // it was written (stays).
        fake.add_segment(
            "c1",
            ALL_PARTITIONS,
            SegmentSpec::l0(&[(5, 3000), (7, 500)]),
        )
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_version_pair_restores_the_sources_live_rows() -> anyhow::Result<()> {
    let w = world().await?;
    let c = w.server.client().await?;
    let mut want = BTreeMap::new();
    for ((name, version), src) in VERSIONS.iter().zip(&w.sources) {
        seed_data(src, version).await?;
        let live = keys(src, "c1");
        let expected = if minor(version) >= 4 { 10 } else { 11 };
        assert_eq!(live.len(), expected, "{version}: the fake's own count");
        let b = backup(&c, &format!("data_{name}"), &format!("src_{name}"), "c1").await?;
        assert_succeeded(&b);
        want.insert(*name, live);
    }
    let mut cells = Vec::new();
    for (from, from_version) in VERSIONS {
        for ((to, to_version), dst) in VERSIONS.iter().zip(&w.targets) {
            let target = format!("c1_{from}");
            let r = restore(
                &c,
                &format!("data_{from}"),
                &format!("dst_{to}"),
                "c1",
                &target,
            )
            .await?;
            assert!(
                milvault_sdk::job_succeeded(&r),
                "{from_version} -> {to_version}: {:?}",
                r.error
            );
            assert_eq!(
                keys(dst, &target),
                want[from],
                "{from_version} -> {to_version}: live keys differ"
            );
            let method = r
                .report
                .as_ref()
                .and_then(|rep| rep.collections.first())
                .map(|col| col.method)
                .unwrap_or_default();
            // Storage-v2 segments import only into 2.6; older targets get rows.
            let by_rows = minor(from_version) >= 6 && minor(to_version) < 6;
            if by_rows {
                assert_eq!(
                    method,
                    pb::RestoreMethod::RowInsert as i32,
                    "{from_version} -> {to_version}"
                );
            }
            cells.push(format!("{from_version}->{to_version}"));
        }
    }
    assert_eq!(cells.len(), 25);
    Ok(())
}

/// A collection `c2` holding one element that needs the source's version, created
/// through the fake's own `CreateCollection`; `None` for 2.2 (nothing older to refuse
/// it). Returns the field name a refusal must name and the first minor that holds it.
async fn seed_schema(fake: &FakeMilvus, version: &str) -> anyhow::Result<Option<&'static str>> {
    let field = |name: &str, t: DataType| ms::FieldSchema {
        name: name.into(),
        data_type: t as i32,
        ..Default::default()
    };
    let dim = |f: ms::FieldSchema| ms::FieldSchema {
        type_params: vec![KeyValuePair {
            key: "dim".into(),
            value: "4".into(),
        }],
        ..f
    };
    let (extra, named) = match minor(version) {
        3 => (
            ms::FieldSchema {
                element_type: DataType::Int64 as i32,
                type_params: vec![KeyValuePair {
                    key: "max_capacity".into(),
                    value: "4".into(),
                }],
                ..field("arr", DataType::Array)
            },
            "arr",
        ),
        4 => (field("sv", DataType::SparseFloatVector), "sv"),
        5 => (
            ms::FieldSchema {
                nullable: true,
                ..field("n", DataType::Int64)
            },
            "n",
        ),
        // A struct field (2.6.0), beside an `Int8Vector` field (2.6.0) below.
        6 => (field("", DataType::None), "st"),
        _ => return Ok(None),
    };
    let mut fields = vec![
        ms::FieldSchema {
            is_primary_key: true,
            ..field("pk", DataType::Int64)
        },
        dim(field("v", DataType::FloatVector)),
    ];
    let mut struct_array_fields = Vec::new();
    if named == "st" {
        fields.push(dim(field("i8v", DataType::Int8Vector)));
        struct_array_fields.push(ms::StructArrayFieldSchema {
            name: "st".into(),
            fields: vec![ms::FieldSchema {
                element_type: DataType::Int64 as i32,
                type_params: vec![KeyValuePair {
                    key: "max_capacity".into(),
                    value: "4".into(),
                }],
                ..field("st_n", DataType::Array)
            }],
            ..Default::default()
        });
    } else {
        fields.push(extra);
    }
    let schema = ms::CollectionSchema {
        name: "c2".into(),
        fields,
        struct_array_fields,
        ..Default::default()
    };
    let url = fake.grpc_url().expect("served");
    let ch = tonic::transport::Endpoint::from_shared(url)?
        .connect()
        .await?;
    let st = MilvusServiceClient::new(ch)
        .create_collection(mpb::CreateCollectionRequest {
            collection_name: "c2".into(),
            schema: schema.encode_to_vec(),
            shards_num: 1,
            ..Default::default()
        })
        .await?
        .into_inner();
    anyhow::ensure!(st.code == 0 && st.error_code == 0, "{version}: {st:?}");
    Ok(Some(named))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_targets_refuse_what_they_cannot_hold_and_create_nothing() -> anyhow::Result<()> {
    let w = world().await?;
    let c = w.server.client().await?;
    let mut named = BTreeMap::new();
    for ((name, version), src) in VERSIONS.iter().zip(&w.sources) {
        if let Some(field) = seed_schema(src, version).await? {
            let b = backup(&c, &format!("schema_{name}"), &format!("src_{name}"), "c2").await?;
            assert!(milvault_sdk::job_succeeded(&b), "{version}: {:?}", b.error);
            named.insert(*name, field);
        }
    }
    assert_eq!(named.len(), 4);
    for (from, from_version) in VERSIONS {
        let Some(field) = named.get(from) else {
            continue;
        };
        for ((to, to_version), dst) in VERSIONS.iter().zip(&w.targets) {
            let target = format!("c2_{from}");
            let creates = |f: &FakeMilvus| {
                f.recorded()
                    .calls
                    .iter()
                    .filter(|c| *c == "CreateCollection")
                    .count()
            };
            let before = creates(dst);
            let r = restore(
                &c,
                &format!("schema_{from}"),
                &format!("dst_{to}"),
                "c2",
                &target,
            )
            .await?;
            let cell = format!("{from_version} -> {to_version}");
            if minor(to_version) >= minor(from_version) {
                assert!(milvault_sdk::job_succeeded(&r), "{cell}: {:?}", r.error);
                assert!(dst.has_collection("default", &target), "{cell}");
                continue;
            }
            let err = r.error.clone().unwrap_or_default();
            assert_eq!(err.code, "FAILED_PRECONDITION", "{cell}: {err:?}");
            assert_eq!(err.reason, "UNSUPPORTED", "{cell}: {err:?}");
            assert!(
                err.message.contains(&format!("{field:?}")),
                "{cell}: the refusal names the field: {}",
                err.message
            );
            assert!(!dst.has_collection("default", &target), "{cell}: created");
            assert_eq!(creates(dst), before, "{cell}: nothing may be created");
        }
    }
    Ok(())
}
