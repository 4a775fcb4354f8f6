//! The `milvault` command as a user runs it: backup, list, get, restore under a new
//! name, failures with non-zero exits and the server's message.

use milvault_tests::fixtures::{compare, seed, standard};
use milvault_tests::harness::{TestEnv, TestServer, cli, unique};
use milvault_tests::milvus_data::DataClient;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_backs_up_lists_shows_and_restores_renamed() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let a = DataClient::connect(&env.a_addr).await?;
    let fx = standard(&format!("{}_", unique("cli"))).remove(1); // VARCHAR key, binary vectors
    seed(&a, "default", &fx, 9).await?;
    let server = TestServer::start(&env).await?;
    let ep = server.endpoint.clone();
    let name = unique("clibk");

    let out = cli(
        &ep,
        &[
            "backup",
            "create",
            &name,
            "--cluster",
            "a",
            "--repository",
            "local",
            "--collections",
            &fx.name,
        ],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("SUCCEEDED"), "{}", text(&out));

    let out = cli(&ep, &["backup", "list", "--repository", "local"]).await?;
    assert!(out.status.success(), "{}", text(&out));
    let listing = text(&out);
    let line = listing
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_default();
    assert!(
        line.contains("COMPLETE") && line.contains("v2.3.5"),
        "{listing}"
    );

    let out = cli(&ep, &["backup", "get", &name, "--repository", "local"]).await?;
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains(&format!("default.{}", fx.name))
            && shown.contains("BINARY_VECTOR")
            && shown.contains("bv_idx"),
        "{shown}"
    );

    let out = cli(
        &ep,
        &[
            "-o",
            "json",
            "backup",
            "get",
            &name,
            "--repository",
            "local",
        ],
    )
    .await?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json["manifest"]["formatVersion"], 1);

    let renamed = format!("{}_copy", fx.name);
    let rename = format!("{}={renamed}", fx.name);
    let out = cli(
        &ep,
        &[
            "restore",
            &name,
            "--cluster",
            "a",
            "--repository",
            "local",
            "--rename",
            &rename,
        ],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("BINLOG_IMPORT"), "{}", text(&out));
    compare(&a, "default", &fx.name, &a, "default", &renamed, fx.load).await?;

    // The same restore again: the target exists now; exit 1 with the job's error.
    let out = cli(
        &ep,
        &[
            "restore",
            &name,
            "--cluster",
            "a",
            "--repository",
            "local",
            "--rename",
            &rename,
        ],
    )
    .await?;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("COLLECTION_EXISTS"), "{}", text(&out));
    // ... and with --drop-existing it replaces it.
    let out = cli(
        &ep,
        &[
            "restore",
            &name,
            "--cluster",
            "a",
            "--repository",
            "local",
            "--rename",
            &rename,
            "--drop-existing",
        ],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out));
    compare(&a, "default", &fx.name, &a, "default", &renamed, fx.load).await?;

    // RPC errors exit 2 with the status.
    let out = cli(
        &ep,
        &["backup", "get", "no_such_backup", "--repository", "local"],
    )
    .await?;
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("NotFound"), "{}", text(&out));

    // --no-wait prints the job id; job get shows it.
    let out = cli(
        &ep,
        &[
            "backup",
            "delete",
            &name,
            "--repository",
            "local",
            "--no-wait",
        ],
    )
    .await?;
    assert!(out.status.success(), "{}", text(&out));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let out = cli(&ep, &["job", "watch", &id]).await?;
    assert!(
        out.status.success() && text(&out).contains("SUCCEEDED"),
        "{}",
        text(&out)
    );
    let out = cli(&ep, &["backup", "list", "--repository", "local"]).await?;
    assert!(!text(&out).contains(&name), "{}", text(&out));
    server.stop().await;
    Ok(())
}
