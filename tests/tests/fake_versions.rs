//! Milvus versions that cannot run here (2.2 before `Connect`, 2.4, 2.6), checked against
//! an in-process fake `MilvusService` that behaves like them: segments are real files in
//! the version's layout, imports read the staged files and apply the version's delete
//! rule, GC pauses and refusals follow the version. Two kinds of test:
//! - the server against a fake: version gates, GC pause style, import options and paths,
//!   row checks that catch a fake answering wrongly;
//! - the fake itself (its behaviour table and its import), so that a passing server
//!   test means something.

use milvault_proto::milvus::common::{ImportState, KeyValuePair};
use milvault_proto::milvus::milvus as mpb;
use milvault_proto::milvus::milvus::milvus_service_client::MilvusServiceClient;
use milvault_sdk::{Client, pb};
use milvault_tests::fake_milvus::{
    ALL_PARTITIONS, Behaviour, CollectionSpec, DeleteRule, DeltaEncoding, FakeMilvus, Fault,
    GcPauseMode, HttpPort, Pk, PkType, SegmentSpec,
};
use milvault_tests::harness::{Minimal, MinimalCluster, TestServer, assert_succeeded, run_job};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;

// ------------------------------------------------------------------------- helpers

/// A fake of `version` serving gRPC and management HTTP.
async fn started(version: &str) -> anyhow::Result<FakeMilvus> {
    let fake = FakeMilvus::new(version);
    fake.serve().await?;
    fake.serve_management().await?;
    Ok(fake)
}

fn cluster(name: &str, fake: &FakeMilvus) -> MinimalCluster {
    MinimalCluster {
        name: name.into(),
        address: fake.grpc_url().expect("served"),
        management: fake.management_url(),
        root: fake.root().to_path_buf(),
        extra: String::new(),
    }
}

/// A milvault-server with one cluster per fake.
async fn server(fakes: &[(&str, &FakeMilvus)]) -> anyhow::Result<TestServer> {
    let config = Minimal {
        clusters: fakes.iter().map(|(n, f)| cluster(n, f)).collect(),
        ..Default::default()
    };
    TestServer::start_minimal(&config, vec![]).await
}

/// Ten rows (keys 0..10 at timestamps 1000..1010) and a delete of key 3 at 2000: 9 live.
fn ten_rows() -> SegmentSpec {
    let rows: Vec<(i64, u64)> = (0..10).map(|i| (i, 1000 + i as u64)).collect();
    SegmentSpec::ints(&rows).with_deletes(&[(3, 2000)])
}

/// A fake of `version` holding `c1` with one segment of [`ten_rows`], and a server.
struct Setup {
    fake: FakeMilvus,
    server: TestServer,
    segment: i64,
}

async fn setup(version: &str, spec: CollectionSpec) -> anyhow::Result<Setup> {
    let fake = started(version).await?;
    fake.add_collection(spec)?;
    let segment = fake.add_segment("c1", "_default", ten_rows()).await?;
    let server = server(&[("fake", &fake)]).await?;
    Ok(Setup {
        fake,
        server,
        segment,
    })
}

async fn backup(c: &Client, name: &str, cluster: &str) -> anyhow::Result<pb::Job> {
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: name.into(),
            cluster: cluster.into(),
            ..Default::default()
        })
        .await?;
    run_job(c, job).await
}

async fn restore(c: &Client, req: pb::RestoreBackupRequest) -> anyhow::Result<pb::Job> {
    let job = c.restore_backup(req).await?;
    run_job(c, job).await
}

fn renamed(backup: &str, cluster: &str) -> pb::RestoreBackupRequest {
    pb::RestoreBackupRequest {
        backup: backup.into(),
        cluster: cluster.into(),
        renames: [("c1".to_string(), "c1r".to_string())]
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

async fn backup_and_restore(s: &Setup) -> anyhow::Result<(pb::Job, pb::Job)> {
    let c = s.server.client().await?;
    let b = backup(&c, "b1", "").await?;
    assert_succeeded(&b);
    let r = restore(&c, renamed("b1", "")).await?;
    assert_succeeded(&r);
    Ok((b, r))
}

fn options(imp: &mpb::ImportRequest) -> Vec<(String, String)> {
    imp.options
        .iter()
        .map(|kv| (kv.key.clone(), kv.value.clone()))
        .collect()
}

async fn milvus(fake: &FakeMilvus) -> anyhow::Result<MilvusServiceClient<Channel>> {
    let url = fake.grpc_url().expect("served");
    let ch = tonic::transport::Endpoint::from_shared(url)?
        .connect()
        .await?;
    Ok(MilvusServiceClient::new(ch))
}

/// How a direct import into the fake ended.
#[derive(Debug, PartialEq, Eq)]
enum Imported {
    /// The RPC refused it: `(merr code, error_code, reason)`.
    Refused(i32, i32, String),
    /// The task completed with this row count.
    Completed(i64),
    /// The task failed with this reason.
    Failed(String),
}

async fn import(
    fake: &FakeMilvus,
    collection: &str,
    partition: &str,
    files: Vec<String>,
    opts: &[(&str, &str)],
) -> anyhow::Result<Imported> {
    let mut m = milvus(fake).await?;
    let resp = m
        .import(mpb::ImportRequest {
            collection_name: collection.into(),
            partition_name: partition.into(),
            files,
            options: opts
                .iter()
                .map(|(k, v)| KeyValuePair {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let st = resp.status.unwrap_or_default();
    if st.code != 0 || st.error_code != 0 {
        return Ok(Imported::Refused(st.code, st.error_code, st.reason));
    }
    let task = resp.tasks[0];
    let mut seen = Vec::new();
    for _ in 0..20 {
        let st = m
            .get_import_state(mpb::GetImportStateRequest { task })
            .await?
            .into_inner();
        seen.push(st.state);
        match ImportState::try_from(st.state) {
            Ok(ImportState::ImportCompleted) => return Ok(Imported::Completed(st.row_count)),
            Ok(ImportState::ImportFailed) => {
                let reason = st
                    .infos
                    .iter()
                    .find(|kv| kv.key == "failed_reason")
                    .map(|kv| kv.value.clone())
                    .unwrap_or_default();
                return Ok(Imported::Failed(reason));
            }
            _ => {}
        }
    }
    anyhow::bail!("import task {task} never ended: {seen:?}")
}

/// The insert and delete group directories of a partition in the fake's own layout
/// (their children are segment directories, as staged imports are).
fn partition_dirs(fake: &FakeMilvus, coll: &str, partition: &str) -> Vec<String> {
    let c = fake.collection_id(coll).expect("collection");
    let p = fake.partition_id(coll, partition).expect("partition");
    vec![
        format!("{}/insert_log/{c}/{p}/", fake.root().display()),
        format!("{}/delta_log/{c}/{p}/", fake.root().display()),
    ]
}

async fn http(method: &str, url: &str, body: &str) -> anyhow::Result<(u16, String)> {
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut sock = tokio::net::TcpStream::connect(host).await?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    sock.write_all(req.as_bytes()).await?;
    let mut out = String::new();
    sock.read_to_string(&mut out).await?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

// ------------------------------------------------------ the server against a fake

#[tokio::test]
async fn milvus_2_4_pauses_gc_globally_and_skips_the_disk_quota_on_import() -> anyhow::Result<()> {
    let s = setup("v2.4.10", CollectionSpec::new("c1")).await?;
    let (backup, _) = backup_and_restore(&s).await?;
    assert!(backup.warnings.is_empty(), "{:?}", backup.warnings);
    let rec = s.fake.recorded();
    assert_eq!(
        rec.http,
        vec![
            "/management/datacoord/garbage_collection/pause?pause_seconds=600".to_string(),
            "/management/datacoord/garbage_collection/resume".to_string()
        ]
    );
    assert!(s.fake.active_gc_pauses().is_empty(), "GC left paused");
    assert_eq!(rec.imports.len(), 1);
    let imp = &rec.imports[0];
    assert_eq!(imp.collection_name, "c1r");
    assert_eq!(imp.partition_name, "_default");
    let opts = options(imp);
    assert!(opts.contains(&("backup".into(), "true".into())), "{opts:?}");
    assert!(
        opts.contains(&("skip_disk_quota_check".into(), "true".into())),
        "{opts:?}"
    );
    // Local storage: absolute directory paths, insert then delta, group dir = segment.
    assert_eq!(imp.files.len(), 2);
    let root = s.fake.root().display().to_string();
    let seg = format!("/{}/", s.segment);
    assert!(
        imp.files[0].starts_with(&root)
            && imp.files[0].contains("/insert_log/")
            && imp.files[0].ends_with(&seg),
        "{:?}",
        imp.files
    );
    assert!(
        imp.files[1].contains("/delta_log/") && imp.files[1].ends_with(&seg),
        "{:?}",
        imp.files
    );
    // The fake read the staged files: 10 rows, key 3 deleted.
    assert_eq!(s.fake.live_rows("c1r"), Some(9));
    assert_eq!(s.fake.live_keys("c1r"), s.fake.live_keys("c1"));
    // Staged files are gone afterwards.
    assert!(
        !s.fake
            .root()
            .join("milvault-staging")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    );
    Ok(())
}

#[tokio::test]
async fn milvus_2_6_8_pauses_gc_per_collection_with_a_ticket() -> anyhow::Result<()> {
    let s = setup("v2.6.8", CollectionSpec::new("c1")).await?;
    backup_and_restore(&s).await?;
    let rec = s.fake.recorded();
    assert_eq!(rec.http.len(), 2, "{:?}", rec.http);
    let cid = s.fake.collection_id("c1").expect("c1");
    assert_eq!(
        rec.http[0],
        format!(
            "/management/datacoord/garbage_collection/pause?pause_seconds=600&collection_id={cid}"
        )
    );
    let answer: serde_json::Value = serde_json::from_str(&rec.exchanges[0].body)?;
    let ticket = answer["ticket"].as_str().expect("a ticket");
    assert_eq!(
        rec.http[1],
        format!("/management/datacoord/garbage_collection/resume?ticket={ticket}")
    );
    assert!(s.fake.active_gc_pauses().is_empty(), "GC left paused");
    // 2.6 imports write storage v2; the rows are the same.
    assert_eq!(s.fake.live_rows("c1r"), Some(9));
    Ok(())
}

#[tokio::test]
async fn milvus_2_4_imports_partition_key_collections_directly() -> anyhow::Result<()> {
    let fake = started("v2.4.10").await?;
    fake.add_collection(CollectionSpec {
        partition_key: true,
        ..CollectionSpec::new("c1")
    })?;
    fake.add_segment("c1", "_default_0", ten_rows()).await?;
    fake.add_segment("c1", "_default_1", SegmentSpec::ints(&[(20, 5), (21, 6)]))
        .await?;
    let server = server(&[("fake", &fake)]).await?;
    let c = server.client().await?;
    let b = backup(&c, "b1", "").await?;
    assert_succeeded(&b);
    let r = restore(&c, renamed("b1", "")).await?;
    assert_succeeded(&r);
    let rec = fake.recorded();
    // One collection created (no temporary twin), binlogs imported into it.
    assert_eq!(rec.creates.len(), 1);
    assert_eq!(rec.creates[0].collection_name, "c1r");
    assert_eq!(rec.creates[0].num_partitions, 2);
    assert_eq!(rec.imports.len(), 2);
    let report = r.report.expect("report");
    assert_eq!(
        report.collections[0].method,
        pb::RestoreMethod::BinlogImport as i32
    );
    assert_eq!(
        fake.live_rows_by_partition("c1r"),
        vec![("_default_0".to_string(), 9), ("_default_1".to_string(), 2)]
    );
    Ok(())
}

#[tokio::test]
async fn milvus_2_2_without_connect_falls_back_and_uses_describe_for_aliases() -> anyhow::Result<()>
{
    let s = setup("v2.2.8", CollectionSpec::new("c1")).await?;
    let (backup, _) = backup_and_restore(&s).await?;
    let rec = s.fake.recorded();
    assert!(
        rec.calls.contains(&"GetVersion".to_string()),
        "{:?}",
        rec.calls
    );
    assert!(
        !rec.calls.contains(&"ListAliases".to_string()),
        "2.2 has no ListAliases: {:?}",
        rec.calls
    );
    assert!(
        rec.http.is_empty(),
        "no GC pause endpoint on 2.2: {:?}",
        rec.http
    );
    assert!(
        backup.warnings.iter().any(|w| w.contains("GC-pause")),
        "{:?}",
        backup.warnings
    );
    let opts: Vec<&str> = rec.imports[0]
        .options
        .iter()
        .map(|kv| kv.key.as_str())
        .collect();
    assert_eq!(opts, vec!["backup"]);
    assert_eq!(s.fake.live_rows("c1r"), Some(9));
    Ok(())
}

/// L0 delete segments (2.4+) are backed up and their deletes reach every target:
/// 2.4 by `l0_import` after the data, 2.3 and 2.2 by delete logs folded per segment
/// (2.2 with the live rows of deleted-and-rewritten keys inserted after its import).
#[tokio::test]
async fn l0_deletes_reach_every_version() -> anyhow::Result<()> {
    let src = started("v2.4.10").await?;
    src.add_collection(CollectionSpec::new("c1"))?;
    src.add_segment("c1", "_default", ten_rows()).await?;
    // Key 5 deleted at 3000 (after its row), key 7 deleted at 500 (before its row).
    src.add_segment(
        "c1",
        ALL_PARTITIONS,
        SegmentSpec::l0(&[(5, 3000), (7, 500)]),
    )
    .await?;
    // Keys only: 2.2/2.3 imports give rows new timestamps.
    let keys = |f: &FakeMilvus| -> Vec<String> {
        f.live_keys("c1")
            .iter()
            .map(|(k, _)| format!("{k:?}"))
            .collect()
    };
    let want = keys(&src);
    assert_eq!(src.live_rows("c1"), Some(8));
    let targets = [
        ("t24", started("v2.4.10").await?),
        ("t23", started("v2.3.5").await?),
        ("t22", started("v2.2.16").await?),
    ];
    let mut fakes: Vec<(&str, &FakeMilvus)> = vec![("src", &src)];
    fakes.extend(targets.iter().map(|(n, f)| (*n, f)));
    let server = server(&fakes).await?;
    let c = server.client().await?;
    let b = backup(&c, "b1", "src").await?;
    assert_succeeded(&b);
    let m = c
        .get_backup(pb::GetBackupRequest {
            name: "b1".into(),
            repository: String::new(),
        })
        .await?
        .manifest
        .expect("manifest");
    let coll = &m.collections[0];
    assert!(
        coll.segments
            .iter()
            .any(|s| s.level == 1 && s.partition_id == -1)
    );
    assert_eq!(coll.live_rows, 8);
    for (name, fake) in &targets {
        let r = restore(
            &c,
            pb::RestoreBackupRequest {
                backup: "b1".into(),
                cluster: (*name).into(),
                ..Default::default()
            },
        )
        .await?;
        assert_succeeded(&r);
        assert_eq!(keys(fake), want, "{name}");
        let l0_imports = fake
            .recorded()
            .imports
            .iter()
            .filter(|i| options(i).contains(&("l0_import".into(), "true".into())))
            .count();
        assert_eq!(l0_imports, usize::from(*name == "t24"), "{name}");
    }
    Ok(())
}

/// Milvus 2.4.0–2.4.6 do not report segment levels: an L0 segment looks like a legacy
/// segment of partition -1 without insert logs. The backup recognises it and carries
/// its deletes through the restore.
#[tokio::test]
async fn unreported_l0_segments_of_2_4_6_round_trip() -> anyhow::Result<()> {
    let s = setup("v2.4.6", CollectionSpec::new("c1")).await?;
    s.fake
        .add_segment("c1", ALL_PARTITIONS, SegmentSpec::l0(&[(4, 3000)]))
        .await?;
    assert_eq!(s.fake.live_rows("c1"), Some(8));
    let c = s.server.client().await?;
    let b = backup(&c, "b1", "").await?;
    assert_succeeded(&b);
    let r = restore(&c, renamed("b1", "")).await?;
    assert_succeeded(&r);
    assert_eq!(s.fake.live_keys("c1r"), s.fake.live_keys("c1"));
    Ok(())
}

/// Storage-v2 segments (2.6): backed up and restored exactly, with the storage_version import option.
#[tokio::test]
async fn storage_v2_segments_round_trip() -> anyhow::Result<()> {
    let fake = started("v2.6.8").await?;
    fake.add_collection(CollectionSpec::new("c1"))?;
    fake.add_segment("c1", "_default", ten_rows().storage_v2())
        .await?;
    let server = server(&[("fake", &fake)]).await?;
    let c = server.client().await?;
    let b = backup(&c, "b1", "").await?;
    assert_succeeded(&b);
    assert!(fake.active_gc_pauses().is_empty(), "GC left paused");
    let r = restore(&c, renamed("b1", "")).await?;
    assert_succeeded(&r);
    assert_eq!(fake.live_keys("c1r"), fake.live_keys("c1"));
    let imp = &fake.recorded().imports[0];
    assert!(
        options(imp).contains(&("storage_version".into(), "2".into())),
        "{:?}",
        imp.options
    );
    Ok(())
}

#[tokio::test]
async fn a_wrong_import_row_count_fails_the_restore_with_row_count_mismatch() -> anyhow::Result<()>
{
    let s = setup("v2.3.5", CollectionSpec::new("c1")).await?;
    let c = s.server.client().await?;
    assert_succeeded(&backup(&c, "b1", "").await?);
    // The import writes the right rows but reports one fewer.
    s.fake.inject(Fault::ImportRowsOffBy(-1));
    let r = restore(&c, renamed("b1", "")).await?;
    let err = r.error.expect("the restore must fail");
    assert_eq!(err.reason, "ROW_COUNT_MISMATCH", "{err:?}");
    assert_eq!(err.code, "DATA_LOSS", "{err:?}");
    // The half-restored collection was dropped again.
    assert!(!s.fake.has_collection("", "c1r"));
    Ok(())
}

#[tokio::test]
async fn the_disk_quota_option_is_honoured_from_2_4_only() -> anyhow::Result<()> {
    for (version, passes) in [("v2.4.10", true), ("v2.3.5", false)] {
        let s = setup(version, CollectionSpec::new("c1")).await?;
        let c = s.server.client().await?;
        assert_succeeded(&backup(&c, "b1", "").await?);
        s.fake.inject(Fault::DiskQuotaExceeded);
        let r = restore(&c, renamed("b1", "")).await?;
        if passes {
            assert_succeeded(&r);
        } else {
            let err = r.error.expect("refused by the quota");
            assert!(err.message.contains("disk quota"), "{version}: {err:?}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn milvus_2_3_restores_partition_key_collections_by_row_insert() -> anyhow::Result<()> {
    let fake = started("v2.3.5").await?;
    fake.add_collection(CollectionSpec {
        partition_key: true,
        dynamic: true,
        ..CollectionSpec::new("c1")
    })?;
    fake.add_segment("c1", "_default_0", ten_rows()).await?;
    fake.add_segment("c1", "_default_1", SegmentSpec::ints(&[(20, 5), (21, 6)]))
        .await?;
    let server = server(&[("fake", &fake)]).await?;
    let c = server.client().await?;
    assert_succeeded(&backup(&c, "b1", "").await?);
    let r = restore(&c, renamed("b1", "")).await?;
    assert_succeeded(&r);
    let report = r.report.expect("report");
    assert_eq!(
        report.collections[0].method,
        pb::RestoreMethod::RowInsert as i32
    );
    let rec = fake.recorded();
    assert!(
        rec.imports.is_empty(),
        "2.3 cannot import into a partition-key collection"
    );
    assert_eq!(rec.inserts.iter().sum::<i64>(), 11);
    let keys: Vec<Pk> = fake.live_keys("c1r").into_iter().map(|(k, _)| k).collect();
    let want: Vec<Pk> = fake.live_keys("c1").into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, want);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loaded_sources_are_counted_the_versions_way() -> anyhow::Result<()> {
    for version in ["v2.2.16", "v2.3.5"] {
        let s = setup(
            version,
            CollectionSpec {
                loaded: true,
                indexed: true,
                ..CollectionSpec::new("c1")
            },
        )
        .await?;
        let c = s.server.client().await?;
        let b = backup(&c, "b1", "").await?;
        assert_succeeded(&b);
        let queries = s.fake.recorded().queries;
        let count_star = queries
            .iter()
            .any(|q| q.output_fields.iter().any(|f| f == "count(*)"));
        if version == "v2.2.16" {
            assert!(!count_star, "2.2 has no count(*): {queries:?}");
            assert!(
                queries.iter().all(|q| q.expr.starts_with("pk ")),
                "{queries:?}"
            );
        } else {
            assert!(count_star, "{queries:?}");
        }
        let got = c
            .get_backup(pb::GetBackupRequest {
                name: "b1".into(),
                repository: String::new(),
            })
            .await?;
        let m = got.manifest.expect("manifest");
        assert_eq!(m.collections[0].live_rows, 9, "{version}");
        // The restored collection is loaded again, and serves the same rows.
        let r = restore(&c, renamed("b1", "")).await?;
        assert_succeeded(&r);
        assert_eq!(s.fake.live_rows("c1r"), Some(9), "{version}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn varchar_keys_round_trip_with_several_logs_per_field() -> anyhow::Result<()> {
    for version in ["v2.2.16", "v2.5.0"] {
        let fake = started(version).await?;
        fake.add_collection(CollectionSpec {
            pk: PkType::VarChar,
            loaded: true,
            indexed: true,
            dynamic: true,
            ..CollectionSpec::new("c1")
        })?;
        let key = |i: usize| Pk::VarChar(format!("key-{i:03}"));
        let rows: Vec<(Pk, u64)> = (0..25).map(|i| (key(i), 100 + i as u64)).collect();
        fake.add_segment(
            "c1",
            "_default",
            SegmentSpec {
                rows_per_log: 10,
                ..SegmentSpec::keys(rows)
                    .with_key_deletes(vec![(key(4), 500), (Pk::VarChar("gone".into()), 50)])
            },
        )
        .await?;
        assert_eq!(fake.live_rows("c1"), Some(24));
        let server = server(&[("fake", &fake)]).await?;
        let c = server.client().await?;
        assert_succeeded(&backup(&c, "b1", "").await?);
        assert_succeeded(&restore(&c, renamed("b1", "")).await?);
        assert_eq!(
            fake.live_keys("c1r").len(),
            24,
            "{version}: {:?}",
            fake.live_keys("c1r")
        );
        let keys = |n: &str| -> Vec<Pk> { fake.live_keys(n).into_iter().map(|(k, _)| k).collect() };
        assert_eq!(keys("c1r"), keys("c1"), "{version}");
    }
    Ok(())
}

/// An upsert inside one segment (key 7 at ts 10, deleted at 20, written again at 30)
/// has one live row. 2.2's import drops both rows of key 7: a restore into 2.2 must
/// either hold the row or fail loudly, never succeed one row short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upserted_key_restored_into_2_2_is_exact_or_fails_loudly() -> anyhow::Result<()> {
    let source = started("v2.3.5").await?;
    let target = started("v2.2.16").await?;
    source.add_collection(CollectionSpec::new("c1"))?;
    source
        .add_segment(
            "c1",
            "_default",
            SegmentSpec::ints(&[(1, 5), (7, 10), (2, 15), (7, 30)]).with_deletes(&[(7, 20)]),
        )
        .await?;
    let server = server(&[("src", &source), ("dst", &target)]).await?;
    let c = server.client().await?;
    assert_succeeded(&backup(&c, "b1", "src").await?);
    let r = restore(&c, renamed("b1", "dst")).await?;
    if milvault_sdk::job_succeeded(&r) {
        assert_eq!(target.live_rows("c1r"), Some(3), "a row was lost silently");
    } else {
        let err = r.error.expect("error");
        assert_eq!(err.reason, "ROW_COUNT_MISMATCH", "{err:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_roles_and_grants_move_between_versions() -> anyhow::Result<()> {
    let source = started("v2.2.16").await?;
    let target = started("v2.4.10").await?;
    source.add_collection(CollectionSpec::new("c1"))?;
    source.add_segment("c1", "_default", ten_rows()).await?;
    source.add_user("alice", "secret", &["reader"]);
    source.add_grant("reader", "Collection", "c1", "Query", "default");
    // The role exists on the target already: "already exists" is not a failure.
    target.add_user("bob", "x", &["reader"]);
    let server = server(&[("src", &source), ("dst", &target)]).await?;
    let c = server.client().await?;
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: "b1".into(),
            cluster: "src".into(),
            include_rbac: true,
            ..Default::default()
        })
        .await?;
    assert_succeeded(&run_job(&c, job).await?);
    let r = restore(
        &c,
        pb::RestoreBackupRequest {
            restore_rbac: true,
            ..renamed("b1", "dst")
        },
    )
    .await?;
    assert_succeeded(&r);
    assert!(target.users().contains(&"alice".to_string()));
    assert!(target.roles().contains(&"reader".to_string()));
    assert!(
        target.grants().contains(&(
            "reader".into(),
            "Collection".into(),
            "c1".into(),
            "Query".into(),
            "default".into()
        )),
        "{:?}",
        target.grants()
    );
    Ok(())
}

// -------------------------------------------------------------- the fake itself

/// The behaviour table's import rule on one upserted key: 2.2 loses it, 2.3 keeps it.
#[test]
fn the_2_2_import_rule_drops_an_upserted_key_and_2_3_keeps_it() {
    let rows = vec![(Pk::Int64(7), 10), (Pk::Int64(7), 30)];
    let deletes = vec![(Pk::Int64(7), 20)];
    let v22 = Behaviour::of("v2.2.16");
    let v23 = Behaviour::of("v2.3.5");
    assert_eq!(v22.import_delete_rule, DeleteRule::PkOnly);
    assert_eq!(v23.import_delete_rule, DeleteRule::Timestamp);
    assert!(v22.import_delete_rule.survivors(&rows, &deletes).is_empty());
    assert_eq!(
        v23.import_delete_rule.survivors(&rows, &deletes),
        vec![(Pk::Int64(7), 30)]
    );
}

/// The same through the fake's own `Import`: real files written, read back, ruled.
#[tokio::test]
async fn the_fakes_import_applies_each_versions_delete_rule_to_real_files() -> anyhow::Result<()> {
    for (version, rows) in [("v2.2.16", 1), ("v2.3.5", 2), ("v2.4.10", 2)] {
        let fake = FakeMilvus::new(version);
        fake.serve().await?;
        fake.add_collection(CollectionSpec::new("c1"))?;
        fake.add_collection(CollectionSpec::new("t"))?;
        fake.add_segment(
            "c1",
            "_default",
            SegmentSpec::ints(&[(1, 5), (7, 10), (7, 30)]).with_deletes(&[(7, 20)]),
        )
        .await?;
        let got = import(
            &fake,
            "t",
            "_default",
            partition_dirs(&fake, "c1", "_default"),
            &[("backup", "true")],
        )
        .await?;
        assert_eq!(got, Imported::Completed(rows), "{version}");
        assert_eq!(fake.live_rows("t"), Some(rows), "{version}");
        assert_eq!(fake.stored_rows("t"), Some(rows), "{version}");
    }
    Ok(())
}

#[tokio::test]
async fn the_fakes_import_refuses_what_each_version_refuses() -> anyhow::Result<()> {
    // Without a partition name, in each version's words.
    for (version, words) in [
        ("v2.3.5", "partition name not specified when backup"),
        ("v2.4.10", "partition not specified"),
    ] {
        let fake = FakeMilvus::new(version);
        fake.serve().await?;
        fake.add_collection(CollectionSpec::new("c1"))?;
        fake.add_segment("c1", "_default", ten_rows()).await?;
        let dirs = partition_dirs(&fake, "c1", "_default");
        match import(&fake, "c1", "", dirs, &[("backup", "true")]).await? {
            Imported::Refused(_, _, reason) => assert_eq!(reason, words, "{version}"),
            other => panic!("{version}: {other:?}"),
        }
    }

    // A relative path on local storage: 2.3 completes with 0 rows, 2.4 refuses.
    for (version, want_zero) in [("v2.3.5", true), ("v2.4.10", false)] {
        let fake = FakeMilvus::new(version);
        fake.serve().await?;
        fake.add_collection(CollectionSpec::new("c1"))?;
        fake.add_segment("c1", "_default", ten_rows()).await?;
        let rel = vec!["insert_log/1/2/".to_string(), "delta_log/1/2/".to_string()];
        let got = import(&fake, "c1", "_default", rel, &[("backup", "true")]).await?;
        if want_zero {
            assert_eq!(got, Imported::Completed(0), "{version}");
        } else {
            assert!(
                matches!(&got, Imported::Refused(2100, _, r) if r.starts_with("no binlog to import")),
                "{version}: {got:?}"
            );
        }
    }

    // A segment directory instead of its group: 2.3 lists recursively and copes, 2.4
    // takes every field directory for a segment and fails.
    for (version, ok) in [("v2.3.5", true), ("v2.4.10", false)] {
        let fake = FakeMilvus::new(version);
        fake.serve().await?;
        fake.add_collection(CollectionSpec::new("c1"))?;
        fake.add_collection(CollectionSpec::new("t"))?;
        let sid = fake.add_segment("c1", "_default", ten_rows()).await?;
        let dirs: Vec<String> = partition_dirs(&fake, "c1", "_default")
            .into_iter()
            .map(|d| format!("{d}{sid}/"))
            .collect();
        let got = import(&fake, "t", "_default", dirs, &[("backup", "true")]).await?;
        if ok {
            assert_eq!(got, Imported::Completed(9), "{version}");
        } else {
            assert!(
                matches!(&got, Imported::Failed(r) if r.contains("no binlog for")),
                "{version}: {got:?}"
            );
        }
    }

    // Partition-key collections: 2.3's binlog adapter wants one partition; 2.4 imports.
    for (version, ok) in [("v2.3.5", false), ("v2.4.10", true)] {
        let fake = FakeMilvus::new(version);
        fake.serve().await?;
        fake.add_collection(CollectionSpec {
            partition_key: true,
            ..CollectionSpec::new("c1")
        })?;
        fake.add_collection(CollectionSpec {
            partition_key: true,
            ..CollectionSpec::new("t")
        })?;
        fake.add_segment("c1", "_default_0", ten_rows()).await?;
        let dirs = partition_dirs(&fake, "c1", "_default_0");
        let got = import(&fake, "t", "_default_0", dirs, &[("backup", "true")]).await?;
        if ok {
            assert_eq!(got, Imported::Completed(9), "{version}");
        } else {
            assert_eq!(
                got,
                Imported::Failed(
                    "failed to create binlog adapter, error: target partition must be only one"
                        .into()
                ),
                "{version}"
            );
        }
    }
    Ok(())
}

/// A target version, the files and options of an import, and `Ok(rows)` or
/// `Err(words of the failure)`.
type Case<'a> = (
    &'a str,
    &'a Vec<String>,
    &'a Vec<(&'a str, &'a str)>,
    Result<i64, &'a str>,
);

#[tokio::test]
async fn storage_v2_and_new_delete_logs_import_only_where_the_version_reads_them()
-> anyhow::Result<()> {
    let source = FakeMilvus::new("v2.6.8");
    source.add_collection(CollectionSpec::new("v2"))?;
    source.add_collection(CollectionSpec::new("parquet_deletes"))?;
    source.add_collection(CollectionSpec::new("multi_field"))?;
    source
        .add_segment("v2", "_default", ten_rows().storage_v2())
        .await?;
    source
        .add_segment(
            "parquet_deletes",
            "_default",
            SegmentSpec {
                delta_encoding: Some(DeltaEncoding::V2Parquet),
                ..ten_rows()
            },
        )
        .await?;
    source
        .add_segment(
            "multi_field",
            "_default",
            SegmentSpec {
                delta_encoding: Some(DeltaEncoding::V1MultiField),
                ..ten_rows()
            },
        )
        .await?;
    let v2 = partition_dirs(&source, "v2", "_default");
    let parquet = partition_dirs(&source, "parquet_deletes", "_default");
    let multi = partition_dirs(&source, "multi_field", "_default");
    let backup = vec![("backup", "true")];
    let v2_opts = vec![("backup", "true"), ("storage_version", "2")];
    // (target version, files, options, Ok(rows) or Err(words of the failure))
    let cases: Vec<Case<'_>> = vec![
        // Before 2.6 the option is ignored and column groups read as v1 binlogs: no
        // Timestamp field directory (its verify runs before any file is read).
        (
            "v2.4.10",
            &v2,
            &v2_opts,
            Err("no binlog for Timestamp field"),
        ),
        ("v2.6.8", &v2, &backup, Err("no binlog for Timestamp field")),
        ("v2.6.8", &v2, &v2_opts, Ok(9)),
        // A bare Parquet delete log read by the v1 reader.
        ("v2.4.10", &parquet, &backup, Err("parse magic number")),
        ("v2.6.8", &parquet, &backup, Ok(9)),
        // MULTI_FIELD delete logs: 2.3 reads varchar payloads only.
        ("v2.3.5", &multi, &backup, Err("not a varchar")),
        ("v2.4.10", &multi, &backup, Ok(9)),
    ];
    for (version, files, opts, want) in cases {
        let fake = FakeMilvus::new(version);
        fake.serve().await?;
        fake.add_collection(CollectionSpec::new("t"))?;
        let got = import(&fake, "t", "_default", files.clone(), opts).await?;
        match want {
            Ok(n) => assert_eq!(got, Imported::Completed(n), "{version} {opts:?}"),
            Err(words) => assert!(
                matches!(&got, Imported::Failed(r) if r.contains(words)),
                "{version} {opts:?}: {got:?}"
            ),
        }
    }
    Ok(())
}

#[tokio::test]
async fn l0_import_applies_deletes_on_2_4_and_is_refused_elsewhere() -> anyhow::Result<()> {
    let fake = FakeMilvus::new("v2.4.10");
    fake.serve().await?;
    fake.add_collection(CollectionSpec::new("c1"))?;
    fake.add_collection(CollectionSpec {
        partitions: vec!["_default".into(), "p2".into()],
        ..CollectionSpec::new("t")
    })?;
    fake.add_segment("c1", "_default", ten_rows()).await?;
    fake.add_segment("c1", ALL_PARTITIONS, SegmentSpec::l0(&[(5, 3000), (6, 10)]))
        .await?;
    let data = partition_dirs(&fake, "c1", "_default");
    assert_eq!(
        import(&fake, "t", "_default", data.clone(), &[("backup", "true")]).await?,
        Imported::Completed(9)
    );
    assert_eq!(
        import(&fake, "t", "p2", data, &[("backup", "true")]).await?,
        Imported::Completed(9)
    );
    let cid = fake.collection_id("c1").expect("c1");
    let l0 = vec![format!("{}/delta_log/{cid}/-1/", fake.root().display())];
    fake.set_loaded("t", true)?;
    assert!(matches!(
        import(&fake, "t", "", l0.clone(), &[("l0_import", "true")]).await?,
        Imported::Refused(_, _, r) if r == "for l0 import, collection cannot be loaded, please release it first"
    ));
    fake.set_loaded("t", false)?;
    // Key 5 (ts 1005) is deleted at 3000 in every partition; key 6 (ts 1006) survives a
    // delete at 10: the timestamp rule.
    assert_eq!(
        import(&fake, "t", "", l0.clone(), &[("l0_import", "true")]).await?,
        Imported::Completed(2)
    );
    assert_eq!(fake.live_rows("t"), Some(16));
    assert_eq!(fake.stored_rows("t"), Some(18));

    let old = FakeMilvus::new("v2.3.5");
    old.serve().await?;
    old.add_collection(CollectionSpec::new("t"))?;
    assert!(matches!(
        import(&old, "t", "", l0, &[("l0_import", "true")]).await?,
        Imported::Refused(..)
    ));
    Ok(())
}

#[tokio::test]
async fn the_fakes_statuses_and_rpcs_follow_the_version() -> anyhow::Result<()> {
    let v228 = FakeMilvus::new("v2.2.8");
    v228.serve().await?;
    let mut m = milvus(&v228).await?;
    let e = m
        .connect(mpb::ConnectRequest::default())
        .await
        .expect_err("2.2.8 has no Connect");
    assert_eq!(e.code(), tonic::Code::Unimplemented);
    let e = m
        .list_aliases(mpb::ListAliasesRequest::default())
        .await
        .expect_err("2.2 has no ListAliases");
    assert_eq!(e.code(), tonic::Code::Unimplemented);
    let e = m
        .alloc_timestamp(mpb::AllocTimestampRequest::default())
        .await
        .expect_err("AllocTimestamp is 2.2.13+");
    assert_eq!(e.code(), tonic::Code::Unimplemented);

    for (version, code, error_code) in [("v2.2.16", 0, 25), ("v2.3.5", 700, 25)] {
        let fake = FakeMilvus::new(version);
        fake.serve().await?;
        fake.add_collection(CollectionSpec::new("c1"))?;
        let mut m = milvus(&fake).await?;
        let st = m
            .describe_index(mpb::DescribeIndexRequest {
                collection_name: "c1".into(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .status
            .unwrap_or_default();
        assert_eq!((st.code, st.error_code), (code, error_code), "{version}");
        let st = m
            .create_role(mpb::CreateRoleRequest {
                entity: Some(mpb::RoleEntity {
                    name: "admin".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await?
            .into_inner();
        assert_eq!(st.error_code, 35, "{version}");
        if version == "v2.2.16" {
            assert!(st.reason.contains("has existed"), "{}", st.reason);
        } else {
            assert_eq!(st.code, 65535);
            assert_eq!(st.reason, "role [name:\"admin\"] already exists");
        }
        let q = m
            .query(mpb::QueryRequest {
                collection_name: "c1".into(),
                output_fields: vec!["count(*)".into()],
                ..Default::default()
            })
            .await?
            .into_inner()
            .status
            .unwrap_or_default();
        // Not loaded: both refuse; 2.3 with merr 101.
        assert_ne!(q.error_code, 0, "{version}");
        if version == "v2.3.5" {
            assert_eq!(q.code, 101);
        }
    }

    let v2216 = FakeMilvus::new("v2.2.16");
    v2216.serve().await?;
    v2216.add_collection(CollectionSpec {
        loaded: true,
        indexed: true,
        dynamic: true,
        ..CollectionSpec::new("c1")
    })?;
    let mut m = milvus(&v2216).await?;
    let q = m
        .query(mpb::QueryRequest {
            collection_name: "c1".into(),
            output_fields: vec!["count(*)".into()],
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!(
        q.status.unwrap_or_default().reason,
        "query expression is empty"
    );
    let d = m
        .describe_collection(mpb::DescribeCollectionRequest {
            collection_name: "c1".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let fields: Vec<String> = d
        .schema
        .expect("schema")
        .fields
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(fields, vec!["pk", "k", "v"], "2.2.16 hides $meta");
    Ok(())
}

#[tokio::test]
async fn rbac_meta_export_exists_from_2_4_10_and_restore_refuses_what_exists() -> anyhow::Result<()>
{
    let old = FakeMilvus::new("v2.4.9");
    old.serve().await?;
    let e = milvus(&old)
        .await?
        .backup_rbac(mpb::BackupRbacMetaRequest::default())
        .await
        .expect_err("BackupRBAC is 2.4.10+");
    assert_eq!(e.code(), tonic::Code::Unimplemented);

    let src = FakeMilvus::new("v2.4.10");
    src.serve().await?;
    src.add_user("alice", "pw", &["reader"]);
    src.add_grant("reader", "Collection", "*", "Query", "default");
    let meta = milvus(&src)
        .await?
        .backup_rbac(mpb::BackupRbacMetaRequest::default())
        .await?
        .into_inner()
        .rbac_meta
        .expect("meta");
    // root and the built-in roles are not exported; the password is a stored hash.
    let users: Vec<&str> = meta.users.iter().map(|u| u.user.as_str()).collect();
    assert_eq!(users, vec!["alice"]);
    assert_ne!(meta.users[0].password, "pw");
    let roles: Vec<&str> = meta.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(roles, vec!["reader"]);
    assert_eq!(meta.grants.len(), 1);

    let dst = FakeMilvus::new("v2.5.0");
    dst.serve().await?;
    let mut m = milvus(&dst).await?;
    let st = m
        .restore_rbac(mpb::RestoreRbacMetaRequest {
            rbac_meta: Some(meta.clone()),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_eq!((st.code, st.error_code), (0, 0), "{st:?}");
    assert!(dst.users().contains(&"alice".to_string()));
    // Everything exists now: the whole call is refused.
    let st = m
        .restore_rbac(mpb::RestoreRbacMetaRequest {
            rbac_meta: Some(meta),
            ..Default::default()
        })
        .await?
        .into_inner();
    assert_ne!(st.error_code, 0);
    assert!(st.reason.contains("already exists"), "{}", st.reason);
    Ok(())
}

#[tokio::test]
async fn gc_pause_and_segment_describe_answer_per_version() -> anyhow::Result<()> {
    let base = "/management/datacoord/garbage_collection";
    for (version, mode) in [
        ("v2.3.5", GcPauseMode::None),
        ("v2.4.10", GcPauseMode::Global),
        ("v2.6.8", GcPauseMode::Ticketed),
    ] {
        let fake = FakeMilvus::new(version);
        assert_eq!(fake.behaviour().gc_pause, mode);
        let url = fake.serve_management().await?;
        let (st, body) = http("GET", &format!("{url}{base}/pause?pause_seconds=60"), "").await?;
        match mode {
            GcPauseMode::None => assert_eq!(st, 404, "{version}"),
            GcPauseMode::Global => {
                assert_eq!((st, body.as_str()), (200, r#"{"msg":"OK"}"#));
                assert_eq!(fake.active_gc_pauses().len(), 1);
                let (st, _) = http("GET", &format!("{url}{base}/resume"), "").await?;
                assert_eq!(st, 200);
                assert!(fake.active_gc_pauses().is_empty());
            }
            GcPauseMode::Ticketed => {
                let v: serde_json::Value = serde_json::from_str(&body)?;
                let t1 = v["ticket"].as_str().expect("ticket").to_owned();
                let (_, body2) = http(
                    "GET",
                    &format!("{url}{base}/pause?pause_seconds=60&collection_id=7"),
                    "",
                )
                .await?;
                let v2: serde_json::Value = serde_json::from_str(&body2)?;
                assert_ne!(v2["ticket"].as_str(), Some(t1.as_str()), "tickets differ");
                assert_eq!(fake.active_gc_pauses().len(), 2);
                let (st, body) = http("GET", &format!("{url}{base}/resume"), "").await?;
                assert_eq!(st, 500);
                assert!(
                    body.contains("strconv.ParseInt: parsing \\\"\\\": invalid syntax"),
                    "{body}"
                );
                let (st, _) = http("GET", &format!("{url}{base}/resume?ticket={t1}"), "").await?;
                assert_eq!(st, 200);
                assert_eq!(fake.active_gc_pauses().len(), 1);
            }
        }
    }

    for (version, exists) in [("v2.5.7", false), ("v2.5.8", true)] {
        let fake = FakeMilvus::new(version);
        let cid = fake.add_collection(CollectionSpec::new("c1"))?;
        let sid = fake.add_segment("c1", "_default", ten_rows()).await?;
        let url = fake.serve_rest().await?;
        assert_eq!(fake.rest_url(), Some(url.clone()));
        let body = format!(r#"{{"dbName":"default","collectionId":{cid},"segmentIds":[{sid}]}}"#);
        let (st, answer) = http(
            "POST",
            &format!("{url}/v2/vectordb/segments/describe"),
            &body,
        )
        .await?;
        if !exists {
            assert_eq!(st, 404, "{version}");
            continue;
        }
        assert_eq!(st, 200);
        let v: serde_json::Value = serde_json::from_str(&answer)?;
        assert_eq!(v["code"], 0);
        let info = &v["data"]["segmentInfos"][0];
        assert_eq!(info["segmentID"].as_i64(), Some(sid));
        assert_eq!(info["numRows"].as_i64(), Some(10));
        let fields: Vec<i64> = info["insertLogs"]
            .as_array()
            .expect("insert logs")
            .iter()
            .filter_map(|l| l["fieldID"].as_i64())
            .collect();
        assert_eq!(fields, vec![0, 1, 100, 101, 102]);
        assert_eq!(
            info["deltaLogs"][0]["logIDs"].as_array().map(Vec::len),
            Some(1)
        );
        let exchanges = fake.recorded().exchanges;
        assert_eq!(exchanges.last().map(|e| e.port), Some(HttpPort::Rest));
    }
    Ok(())
}

#[tokio::test]
async fn segments_are_listed_with_the_fields_each_version_reports() -> anyhow::Result<()> {
    for (version, level, storage) in [("v2.4.6", 0, 0), ("v2.4.7", 2, 0), ("v2.6.8", 2, 2)] {
        let fake = FakeMilvus::new(version);
        fake.serve().await?;
        fake.add_collection(CollectionSpec::new("c1"))?;
        let spec = if storage == 2 {
            ten_rows().storage_v2()
        } else {
            ten_rows()
        };
        fake.add_segment("c1", "_default", spec).await?;
        let mut m = milvus(&fake).await?;
        let infos = m
            .get_persistent_segment_info(mpb::GetPersistentSegmentInfoRequest {
                collection_name: "c1".into(),
                ..Default::default()
            })
            .await?
            .into_inner()
            .infos;
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].num_rows, 10);
        assert_eq!(infos[0].state, 4, "Flushed");
        assert_eq!(infos[0].level, level, "{version}");
        assert_eq!(infos[0].storage_version, storage, "{version}");
    }
    Ok(())
}

// ------------------------------------------- RBAC export and exact segment files

/// A backup of `cluster` with users, roles and grants.
async fn backup_rbac(c: &Client, name: &str, cluster: &str) -> anyhow::Result<pb::Job> {
    let job = c
        .create_backup(pb::CreateBackupRequest {
            name: name.into(),
            cluster: cluster.into(),
            include_rbac: true,
            ..Default::default()
        })
        .await?;
    run_job(c, job).await
}

/// A restore of `backup` into `cluster` (c1 as `collection`) with users, roles and grants.
async fn restore_rbac(
    c: &Client,
    backup: &str,
    cluster: &str,
    collection: &str,
) -> anyhow::Result<pb::Job> {
    restore(
        c,
        pb::RestoreBackupRequest {
            restore_rbac: true,
            renames: [("c1".to_string(), collection.to_string())]
                .into_iter()
                .collect(),
            ..renamed(backup, cluster)
        },
    )
    .await
}

/// The RBAC report of a finished restore.
fn rbac_report(job: &pb::Job) -> pb::RbacReport {
    job.report
        .as_ref()
        .and_then(|r| r.rbac.clone())
        .expect("an RBAC report")
}

/// How often the fake was sent `rpc`.
fn calls(fake: &FakeMilvus, rpc: &str) -> usize {
    fake.recorded().calls.iter().filter(|c| *c == rpc).count()
}

/// The privileges granted to `role` on the fake, sorted.
fn privileges_of(fake: &FakeMilvus, role: &str) -> Vec<String> {
    let mut out: Vec<String> = fake
        .grants()
        .into_iter()
        .filter(|g| g.0 == role)
        .map(|g| g.3)
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_rbac_keeps_password_hashes_unseen_and_restores_only_what_the_target_lacks()
-> anyhow::Result<()> {
    let logs = milvault_tests::logs::capture("debug");
    let src = started("v2.4.16").await?;
    src.add_collection(CollectionSpec::new("c1"))?;
    src.add_segment("c1", "_default", ten_rows()).await?;
    src.add_user("alice", "alice-pw", &["reader"]);
    src.add_user("bob", "bob-at-source", &["writer"]);
    src.add_privilege_group("readers", &["Query", "Search"]);
    src.add_grant("reader", "Collection", "*", "readers", "default");
    src.add_grant("writer", "Collection", "*", "Insert", "default");
    // `BackupRBAC` leaves the grants of `public` out; they are read with SelectGrant.
    src.add_grant("public", "Collection", "c1", "Query", "default");
    // The target has bob and his role already: a `RestoreRBAC` naming either would be
    // refused as a whole.
    let dst = started("v2.5.0").await?;
    dst.add_user("bob", "bob-at-target", &["writer"]);
    let hashes = [
        src.password_hash("alice").expect("alice"),
        src.password_hash("bob").expect("bob"),
    ];
    let server = server(&[("src", &src), ("dst", &dst)]).await?;
    let c = server.client().await?;

    let b = backup_rbac(&c, "b1", "src").await?;
    assert_succeeded(&b);
    assert_eq!(calls(&src, "BackupRBAC"), 1);
    let m = c
        .get_backup(pb::GetBackupRequest {
            name: "b1".into(),
            ..Default::default()
        })
        .await?
        .manifest
        .expect("manifest");
    let rbac = m.rbac.expect("rbac");
    assert_eq!(rbac.method, pb::RbacExportMethod::BackupRbac as i32);
    assert!(!rbac.passwords_missing);
    let users: Vec<(&str, bool, &str)> = rbac
        .users
        .iter()
        .map(|u| (u.name.as_str(), u.has_password, u.password.as_str()))
        .collect();
    assert_eq!(
        users,
        [("alice", true, ""), ("bob", true, "")],
        "root left out, hashes redacted"
    );
    assert_eq!(
        rbac.privilege_groups
            .iter()
            .map(|g| (g.name.as_str(), g.privileges.clone()))
            .collect::<Vec<_>>(),
        [("readers", vec!["Query".to_string(), "Search".to_string()])]
    );
    assert!(
        rbac.grants
            .iter()
            .any(|g| g.role == "public" && g.privilege == "Query")
    );
    // The repository keeps the hashes (a restore needs them) ...
    let on_disk = std::fs::read_to_string(server.repo_dir.join("backups/b1/manifest.json"))?;
    assert!(hashes.iter().all(|h| on_disk.contains(h.as_str())));

    let r = restore_rbac(&c, "b1", "dst", "c1r").await?;
    assert_succeeded(&r);
    let report = rbac_report(&r);
    assert_eq!(report.users_with_password, 1, "{report:?}");
    assert_eq!(report.users_kept, ["bob"], "{report:?}");
    assert!(report.users_needing_password_reset.is_empty(), "{report:?}");
    assert_eq!(
        (report.roles, report.privilege_groups),
        (1, 1),
        "{report:?}"
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(calls(&dst, "RestoreRBAC"), 1);
    // alice logs in with her old password; bob keeps the target's.
    assert!(dst.logs_in("alice", "alice-pw"));
    assert!(dst.logs_in("bob", "bob-at-target"));
    assert_eq!(dst.user_roles("alice"), ["reader"]);
    assert_eq!(
        dst.privilege_groups(),
        [(
            "readers".to_string(),
            vec!["Query".to_string(), "Search".to_string()]
        )]
    );
    assert_eq!(privileges_of(&dst, "reader"), ["readers"]);
    assert_eq!(privileges_of(&dst, "writer"), ["Insert"]);
    assert_eq!(privileges_of(&dst, "public"), ["Query"]);

    // Everything exists now: a second restore sends no `RestoreRBAC` (the target
    // would refuse it) and keeps every user.
    let again = restore_rbac(&c, "b1", "dst", "c1r2").await?;
    assert_succeeded(&again);
    assert_eq!(calls(&dst, "RestoreRBAC"), 1, "nothing was missing");
    let report = rbac_report(&again);
    assert_eq!(report.users_kept, ["alice", "bob"], "{report:?}");
    assert_eq!((report.users, report.roles, report.grants), (0, 0, 0));

    // ... and no answer, job record or log line shows one.
    let mut answers = vec![
        format!(
            "{:?}",
            c.get_job(pb::GetJobRequest { id: b.id.clone() }).await?
        ),
        format!(
            "{:?}",
            c.get_job(pb::GetJobRequest { id: r.id.clone() }).await?
        ),
        format!("{:?}", c.list_jobs(pb::ListJobsRequest::default()).await?),
        format!(
            "{:?}",
            c.list_backups(pb::ListBackupsRequest::default()).await?
        ),
    ];
    answers.push(format!(
        "{:?}",
        c.get_backup(pb::GetBackupRequest {
            name: "b1".into(),
            ..Default::default()
        })
        .await?
    ));
    answers.push(logs.text());
    for (i, text) in answers.iter().enumerate() {
        for h in &hashes {
            assert!(
                !text.contains(h.as_str()),
                "answer {i} shows a password hash"
            );
        }
    }
    // The capture works (else the search above proves nothing).
    assert!(
        logs.text().contains("connected to Milvus"),
        "nothing logged"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_export_uses_backup_rbac_from_2_4_10_and_the_select_calls_before() -> anyhow::Result<()>
{
    for (version, meta) in [("v2.4.9", false), ("v2.4.10", true), ("v2.3.5", false)] {
        let src = started(version).await?;
        src.add_collection(CollectionSpec::new("c1"))?;
        src.add_segment("c1", "_default", ten_rows()).await?;
        src.add_user("alice", "alice-pw", &["reader"]);
        src.add_grant("reader", "Collection", "*", "Query", "default");
        let server = server(&[("src", &src)]).await?;
        let c = server.client().await?;
        let b = backup_rbac(&c, "b1", "src").await?;
        // A wrong gate calls BackupRBAC where it is Unimplemented: the backup fails.
        assert_succeeded(&b);
        assert_eq!(calls(&src, "BackupRBAC"), usize::from(meta), "{version}");
        let rbac = c
            .get_backup(pb::GetBackupRequest {
                name: "b1".into(),
                ..Default::default()
            })
            .await?
            .manifest
            .and_then(|m| m.rbac)
            .expect("rbac");
        let method = if meta {
            pb::RbacExportMethod::BackupRbac
        } else {
            pb::RbacExportMethod::Select
        };
        assert_eq!(rbac.method, method as i32, "{version}");
        assert_eq!(rbac.passwords_missing, !meta, "{version}");
        let alice = rbac
            .users
            .iter()
            .find(|u| u.name == "alice")
            .expect("alice");
        assert_eq!(alice.has_password, meta, "{version}");
        assert_eq!(alice.roles, ["reader"]);
        assert!(
            rbac.grants
                .iter()
                .any(|g| g.role == "reader" && g.privilege == "Query")
        );
        assert_eq!(
            b.warnings
                .iter()
                .any(|w| w.contains("cannot export passwords")),
            !meta,
            "{version}: {:?}",
            b.warnings
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privilege_groups_and_built_in_groups_follow_the_targets_version() -> anyhow::Result<()> {
    let src = started("v2.5.0").await?;
    src.add_collection(CollectionSpec::new("c1"))?;
    src.add_segment("c1", "_default", ten_rows()).await?;
    src.add_user("alice", "alice-pw", &["reader"]);
    src.add_privilege_group("readers", &["Query", "Search"]);
    src.add_grant("reader", "Collection", "*", "readers", "default");
    src.add_grant("reader", "Global", "*", "ReadOnly", "default");
    src.add_grant("reader", "Global", "*", "ClusterReadOnly", "default");
    let targets = [
        ("v2.4.9", "t249"),
        ("v2.4.10", "t2410"),
        ("v2.4.16", "t2416"),
        ("v2.4.18", "t2418"),
    ];
    let mut fakes = Vec::new();
    for (v, _) in targets {
        fakes.push(started(v).await?);
    }
    let mut clusters = vec![("src", &src)];
    clusters.extend(targets.iter().map(|t| t.1).zip(fakes.iter()));
    let server = server(&clusters).await?;
    let c = server.client().await?;
    assert_succeeded(&backup_rbac(&c, "b1", "src").await?);

    for ((version, name), dst) in targets.iter().zip(&fakes) {
        let r = restore_rbac(&c, "b1", name, "c1r").await?;
        // A wrong gate sends what the version refuses (RestoreRBAC before 2.4.10,
        // groups before 2.4.16, a built-in group it does not know): the job fails.
        assert_succeeded(&r);
        let report = rbac_report(&r);
        let (groups, expected, password, warnings): (&[&str], &[&str], bool, usize) = match *version
        {
            // No RestoreRBAC: a new password; groups expanded; neither built-in
            // group known.
            "v2.4.9" => (&[], &["Query", "Search"], false, 3),
            // ReadOnly known, ClusterReadOnly (2.4.18) not; no custom groups.
            "v2.4.10" => (&[], &["Query", "ReadOnly", "Search"], true, 2),
            "v2.4.16" => (&["readers"], &["ReadOnly", "readers"], true, 1),
            _ => (
                &["readers"],
                &["ClusterReadOnly", "ReadOnly", "readers"],
                true,
                0,
            ),
        };
        assert_eq!(privileges_of(dst, "reader"), expected, "{version}");
        let made: Vec<String> = dst.privilege_groups().into_iter().map(|g| g.0).collect();
        assert_eq!(made, groups, "{version}");
        assert_eq!(report.privilege_groups as usize, groups.len(), "{version}");
        assert_eq!(
            calls(dst, "RestoreRBAC"),
            usize::from(password),
            "{version}"
        );
        assert_eq!(dst.logs_in("alice", "alice-pw"), password, "{version}");
        assert_eq!(dst.user_roles("alice"), ["reader"], "{version}");
        if password {
            assert_eq!(report.users_with_password, 1, "{version}");
        } else {
            assert_eq!(report.users_needing_password_reset, ["alice"], "{version}");
        }
        assert_eq!(
            report.warnings.len(),
            warnings,
            "{version}: {:?}",
            report.warnings
        );
        // Each is among the job's own warnings too.
        for w in &report.warnings {
            assert!(
                r.warnings.iter().any(|jw| jw.ends_with(w.as_str())),
                "{version}: {w:?} not in {:?}",
                r.warnings
            );
        }
    }
    Ok(())
}

/// A server whose one cluster `fake` has its REST port configured (`rest`).
async fn server_with_rest(fake: &FakeMilvus) -> anyhow::Result<TestServer> {
    let url = match fake.rest_url() {
        Some(u) => u,
        None => fake.serve_rest().await?,
    };
    let mut cl = cluster("fake", fake);
    cl.extra = format!("rest = \"{url}\"\n");
    TestServer::start_minimal(
        &Minimal {
            clusters: vec![cl],
            ..Default::default()
        },
        vec![],
    )
    .await
}

/// The REST exchanges the fake answered.
fn rest_exchanges(fake: &FakeMilvus) -> Vec<milvault_tests::fake_milvus::HttpExchange> {
    fake.recorded()
        .exchanges
        .into_iter()
        .filter(|e| e.port == HttpPort::Rest)
        .collect()
}

/// The files (relative to the fake's root) of a segment's field folder.
fn field_files(fake: &FakeMilvus, segment: i64, field: i64) -> anyhow::Result<Vec<String>> {
    let c = fake.collection_id("c1").expect("c1");
    let p = fake.partition_id("c1", "_default").expect("partition");
    let dir = format!("insert_log/{c}/{p}/{segment}/{field}");
    let mut out = Vec::new();
    for e in std::fs::read_dir(fake.path(&dir))? {
        out.push(format!("{dir}/{}", e?.file_name().to_string_lossy()));
    }
    out.sort();
    Ok(out)
}

/// Puts a copy of one of field 100's insert logs beside it under a log id Milvus's
/// metadata does not name: what a retried write leaves behind. Returns its key.
fn drop_orphan(fake: &FakeMilvus, segment: i64) -> anyhow::Result<String> {
    let first = field_files(fake, segment, 100)?
        .into_iter()
        .next()
        .expect("a log of field 100");
    let orphan = format!(
        "{}/987654321",
        first.rsplit_once('/').map(|(d, _)| d).unwrap_or_default()
    );
    std::fs::copy(fake.path(&first), fake.path(&orphan))?;
    Ok(orphan)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_files_come_from_segments_describe_from_2_5_8_and_from_a_listing_before()
-> anyhow::Result<()> {
    for (version, described) in [("v2.5.7", false), ("v2.5.8", true), ("v2.6.8", true)] {
        let s = setup(version, CollectionSpec::new("c1")).await?;
        let orphan = drop_orphan(&s.fake, s.segment)?;
        let server = server_with_rest(&s.fake).await?;
        let c = server.client().await?;
        let b = backup(&c, "b1", "fake").await?;
        let rest = rest_exchanges(&s.fake);
        if !described {
            // No call to a route this version lacks; the listing finds the orphan and
            // refuses to guess which of field 100's files are the segment's.
            assert!(rest.is_empty(), "{version}: {rest:?}");
            let err = b.error.expect("the orphan fails a listed backup");
            assert_eq!(err.reason, "SEGMENT_FILES_INCONSISTENT", "{err:?}");
            continue;
        }
        assert_succeeded(&b);
        // One call naming the collection and its flushed segment.
        assert_eq!(rest.len(), 1, "{version}: {rest:?}");
        assert_eq!(rest[0].target, "/v2/vectordb/segments/describe");
        let body: serde_json::Value = serde_json::from_str(&rest[0].request_body)?;
        let cid = s.fake.collection_id("c1").expect("c1");
        assert_eq!(body["dbName"], "default");
        assert_eq!(body["collectionID"].as_i64(), Some(cid), "{body}");
        assert_eq!(body["segmentIDs"], serde_json::json!([s.segment]), "{body}");
        let m = c
            .get_backup(pb::GetBackupRequest {
                name: "b1".into(),
                ..Default::default()
            })
            .await?
            .manifest
            .expect("manifest");
        let seg = &m.collections[0].segments[0];
        assert_eq!(
            seg.files_source,
            pb::SegmentFilesSource::Describe as i32,
            "{version}"
        );
        // Exactly the files the fake wrote for the segment: the orphan is left.
        let mut copied: Vec<String> = seg
            .insert_logs
            .iter()
            .chain(&seg.delta_logs)
            .map(|f| f.source_key.clone())
            .collect();
        copied.sort();
        let mut wrote = Vec::new();
        for field in [0, 1, 100, 101, 102] {
            wrote.extend(field_files(&s.fake, s.segment, field)?);
        }
        wrote.retain(|k| *k != orphan);
        assert_eq!(seg.delta_logs.len(), 1, "{version}");
        assert_eq!(
            copied
                .iter()
                .filter(|k| k.starts_with("insert_log/"))
                .cloned()
                .collect::<Vec<_>>(),
            wrote,
            "{version}"
        );
        assert!(!copied.contains(&orphan));
        assert!(
            b.warnings.iter().all(|w| !w.contains("segments/describe")),
            "{:?}",
            b.warnings
        );
        // And the backup restores exactly (9 live rows: the delete applied).
        let r = restore(&c, renamed("b1", "fake")).await?;
        assert_succeeded(&r);
        assert_eq!(s.fake.live_rows("c1r"), Some(9), "{version}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_segments_describe_names_and_storage_lacks_fails_the_backup() -> anyhow::Result<()> {
    let s = setup("v2.5.8", CollectionSpec::new("c1")).await?;
    // The delete log goes missing: a listing would back up a segment whose delete is
    // lost; Milvus's record names it, so the backup fails naming the key.
    let c = s.fake.collection_id("c1").expect("c1");
    let p = s.fake.partition_id("c1", "_default").expect("partition");
    let dir = format!("delta_log/{c}/{p}/{}", s.segment);
    let gone = std::fs::read_dir(s.fake.path(&dir))?
        .next()
        .expect("a delete log")?
        .file_name()
        .to_string_lossy()
        .into_owned();
    std::fs::remove_file(s.fake.path(&format!("{dir}/{gone}")))?;
    let server = server_with_rest(&s.fake).await?;
    let client = server.client().await?;
    let b = backup(&client, "b1", "fake").await?;
    let err = b.error.expect("a described file is missing");
    assert_eq!(err.reason, "SEGMENT_FILES_INCONSISTENT", "{err:?}");
    assert!(
        err.message.contains(&format!("{dir}/{gone}")),
        "{}",
        err.message
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_rest_api_on_2_5_8_means_a_listing_and_a_warning() -> anyhow::Result<()> {
    let s = setup("v2.5.8", CollectionSpec::new("c1")).await?;
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let mut cl = cluster("fake", &s.fake);
    cl.extra = format!("rest = \"http://{closed}\"\n");
    let server = TestServer::start_minimal(
        &Minimal {
            clusters: vec![cl],
            ..Default::default()
        },
        vec![],
    )
    .await?;
    let c = server.client().await?;
    let b = backup(&c, "b1", "fake").await?;
    assert_succeeded(&b);
    assert!(
        b.warnings
            .iter()
            .any(|w| w.contains("segments/describe failed")),
        "{:?}",
        b.warnings
    );
    let m = c
        .get_backup(pb::GetBackupRequest {
            name: "b1".into(),
            ..Default::default()
        })
        .await?
        .manifest
        .expect("manifest");
    assert_eq!(
        m.collections[0].segments[0].files_source,
        pb::SegmentFilesSource::Listing as i32
    );
    Ok(())
}
