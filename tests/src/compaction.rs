//! Manual compaction of a real Milvus, for tests that need segments rewritten (the
//! incremental-backup tests: after a compaction only the new files may be copied).
//!
//! Milvault itself never compacts, so these two RPCs are not in its Milvus proto
//! subset; the messages are declared here with upstream's names and field numbers
//! (milvus-proto `milvus.proto`: `ManualCompactionRequest`, `GetCompactionStateRequest`
//! and their responses, unchanged from v2.2 to v2.6) and sent on the same channel.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use milvault_proto::milvus::common::Status;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};

#[derive(Clone, PartialEq, prost::Message)]
struct ManualCompactionRequest {
    #[prost(int64, tag = "1")]
    collection_id: i64,
    #[prost(uint64, tag = "2")]
    timetravel: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct ManualCompactionResponse {
    #[prost(message, optional, tag = "1")]
    status: Option<Status>,
    #[prost(int64, tag = "2")]
    compaction_id: i64,
    #[prost(int32, tag = "3")]
    compaction_plan_count: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GetCompactionStateRequest {
    #[prost(int64, tag = "1")]
    compaction_id: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct GetCompactionStateResponse {
    #[prost(message, optional, tag = "1")]
    status: Option<Status>,
    /// `common.CompactionState`: 1 executing, 2 completed.
    #[prost(int32, tag = "2")]
    state: i32,
    #[prost(int64, tag = "3")]
    executing_plan_no: i64,
    #[prost(int64, tag = "4")]
    timeout_plan_no: i64,
    #[prost(int64, tag = "5")]
    completed_plan_no: i64,
    #[prost(int64, tag = "6")]
    failed_plan_no: i64,
}

const COMPLETED: i32 = 2;

async fn unary<Q, A>(channel: &Channel, method: &'static str, msg: Q) -> Result<A>
where
    Q: prost::Message + Send + Sync + 'static,
    A: prost::Message + Default + Send + Sync + 'static,
{
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.context("channel not ready")?;
    let path = PathAndQuery::from_static(method);
    let mut req = tonic::Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        "cm9vdDpNaWx2dXM=".parse().context("static header")?,
    );
    let answer = grpc
        .unary(req, path, tonic_prost::ProstCodec::default())
        .await
        .with_context(|| method.to_owned())?;
    Ok(answer.into_inner())
}

fn check(op: &str, status: Option<&Status>) -> Result<()> {
    match status {
        Some(s) if s.error_code != 0 || s.code != 0 => bail!("{op}: {} ({})", s.reason, s.code),
        _ => Ok(()),
    }
}

/// Compacts collection `collection_id` of the Milvus at `address` and waits until
/// every plan completed; returns the number of plans (0: nothing was compacted).
pub async fn compact(address: &str, collection_id: i64) -> Result<i32> {
    let channel = Endpoint::from_shared(address.to_owned())?
        .connect_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    let started: ManualCompactionResponse = unary(
        &channel,
        "/milvus.proto.milvus.MilvusService/ManualCompaction",
        ManualCompactionRequest {
            collection_id,
            timetravel: 0,
        },
    )
    .await?;
    check("ManualCompaction", started.status.as_ref())?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let state: GetCompactionStateResponse = unary(
            &channel,
            "/milvus.proto.milvus.MilvusService/GetCompactionState",
            GetCompactionStateRequest {
                compaction_id: started.compaction_id,
            },
        )
        .await?;
        check("GetCompactionState", state.status.as_ref())?;
        if state.failed_plan_no > 0 || state.timeout_plan_no > 0 {
            bail!("compaction {} failed: {state:?}", started.compaction_id);
        }
        if state.state == COMPLETED {
            return Ok(started.compaction_plan_count);
        }
        if Instant::now() > deadline {
            bail!(
                "compaction {} still running: {state:?}",
                started.compaction_id
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
