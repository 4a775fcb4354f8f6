//! With `server.auth_token` set, BackupService calls need `authorization: Bearer
//! <token>`; health and reflection stay open for probes and discovery.

use milvault_sdk::{Client, SdkError};
use milvault_tests::harness::{Minimal, TestServer, cli};

#[tokio::test]
async fn the_api_needs_the_token_and_health_does_not() -> anyhow::Result<()> {
    let config = Minimal {
        server_extra: "auth_token = \"s3cret-token\"".into(),
        ..Default::default()
    };
    let server = TestServer::start_minimal(&config, vec![]).await?;
    let _ = server.client().await?;

    let anonymous = Client::connect(&server.endpoint).await?;
    match anonymous.server_info().await {
        Err(e @ SdkError::Status(_)) => {
            assert_eq!(e.code(), Some(tonic::Code::Unauthenticated));
            assert_eq!(e.reason().as_deref(), Some("UNAUTHENTICATED"));
        }
        other => panic!("expected UNAUTHENTICATED, got {other:?}"),
    }
    let wrong = Client::connect_with(&server.endpoint, Some("s3cret-tokem")).await?;
    assert!(wrong.server_info().await.is_err());
    let right = Client::connect_with(&server.endpoint, Some("s3cret-token")).await?;
    assert_eq!(right.server_info().await?.repositories.len(), 1);

    // The CLI passes --token through.
    let out = cli(
        &server.endpoint,
        &["--token", "s3cret-token", "backup", "list"],
    )
    .await?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&server.endpoint, &["backup", "list"]).await?;
    assert_eq!(out.status.code(), Some(2));

    // Health answers without a token (grpcurl from scripts/setup.sh).
    let grpcurl = std::env::var("MILVAULT_TEST_GRPCURL").unwrap_or_else(|_| "grpcurl".to_owned());
    let addr = server.endpoint.trim_start_matches("http://").to_owned();
    let out = tokio::process::Command::new(grpcurl)
        .args(["-plaintext", &addr, "grpc.health.v1.Health/Check"])
        .output()
        .await?;
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SERVING"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.stop().await;
    Ok(())
}
