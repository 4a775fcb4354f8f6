//! The server speaks to any gRPC client: the real `grpcurl` discovers the service by
//! reflection, reads health, and calls an RPC.

use milvault_tests::harness::{TestEnv, TestServer};

fn grpcurl() -> String {
    std::env::var("MILVAULT_TEST_GRPCURL").unwrap_or_else(|_| "grpcurl".to_owned())
}

async fn run(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = tokio::process::Command::new(grpcurl())
        .args(args)
        .output()
        .await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

#[tokio::test]
async fn grpcurl_lists_services_and_reads_health() -> anyhow::Result<()> {
    let env = TestEnv::from_env()?;
    let server = TestServer::start(&env).await?;
    let _ = server.client().await?;
    let addr = server.endpoint.trim_start_matches("http://").to_owned();

    let (ok, text) = run(&["-plaintext", &addr, "list"]).await?;
    assert!(ok, "{text}");
    assert!(text.contains("milvault.v1.BackupService"), "{text}");
    assert!(text.contains("grpc.health.v1.Health"), "{text}");

    let (ok, text) = run(&["-plaintext", &addr, "grpc.health.v1.Health/Check"]).await?;
    assert!(ok, "{text}");
    assert!(text.contains("SERVING"), "{text}");

    let (ok, text) = run(&[
        "-plaintext",
        "-d",
        r#"{"service":"milvault.v1.BackupService"}"#,
        &addr,
        "grpc.health.v1.Health/Check",
    ])
    .await?;
    assert!(ok, "{text}");
    assert!(text.contains("SERVING"), "{text}");

    let (ok, text) = run(&[
        "-plaintext",
        &addr,
        "milvault.v1.BackupService/GetServerInfo",
    ])
    .await?;
    assert!(ok, "{text}");
    assert!(text.contains("\"name\": \"a\""), "{text}");
    assert!(!text.contains("minioadmin"), "secrets leaked: {text}");

    // Errors come back as statuses grpcurl can show.
    let (ok, text) = run(&[
        "-plaintext",
        "-d",
        r#"{"name":"bad name"}"#,
        &addr,
        "milvault.v1.BackupService/CreateBackup",
    ])
    .await?;
    assert!(!ok);
    assert!(text.contains("InvalidArgument"), "{text}");
    server.stop().await;
    Ok(())
}
