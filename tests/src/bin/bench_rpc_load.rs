//! `bench_rpc_load`: ListBackups / GetJob latency under concurrent clients, for
//! `scripts/bench/run.sh` (run it while a backup job runs).
//!
//! ```text
//! bench_rpc_load ENDPOINT REPOSITORY JOB_ID [CLIENTS] [MAX_SECS] [THINK_MS]
//! ```
//! CLIENTS (default 64) tasks, each with its own connection (`milvault_sdk::Client`),
//! call `ListBackups` (one page of up to 1000) and `GetJob JOB_ID` in turn, pausing
//! THINK_MS (default 0: back to back, which measures throughput as much as latency:
//! with 64 clients a call then waits for the 63 others) after each pair, until a
//! `GetJob` answer shows the job ended or MAX_SECS (default 600) pass.
//! Prints one JSON line: per method the calls, errors, p50/p90/p99/max in
//! milliseconds, and the calls per second of all clients together.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use milvault_sdk::{Client, pb};

/// Latencies (µs) and errors of one method.
#[derive(Default)]
struct Samples {
    micros: Vec<u64>,
    errors: u64,
}

impl Samples {
    fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
    }

    fn summary(mut self, seconds: f64) -> serde_json::Value {
        self.micros.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.micros.is_empty() {
                return f64::NAN;
            }
            // Nearest rank.
            let rank = ((p / 100.0) * self.micros.len() as f64).ceil() as usize;
            self.micros[rank.clamp(1, self.micros.len()) - 1] as f64 / 1000.0
        };
        serde_json::json!({
            "calls": self.micros.len(),
            "errors": self.errors,
            "p50_ms": pct(50.0),
            "p90_ms": pct(90.0),
            "p99_ms": pct(99.0),
            "max_ms": self.micros.last().map(|m| *m as f64 / 1000.0),
            "calls_per_sec": self.micros.len() as f64 / seconds,
        })
    }
}

async fn client_loop(
    client: Client,
    repository: String,
    job: String,
    stop: Arc<AtomicBool>,
    deadline: Instant,
    think: Duration,
) -> (Samples, Samples) {
    let (mut list, mut get) = (Samples::default(), Samples::default());
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let t = Instant::now();
        let r = client
            .list_backups(pb::ListBackupsRequest {
                repository: repository.clone(),
                page_size: 1000,
                ..Default::default()
            })
            .await;
        match r {
            Ok(_) => list.micros.push(t.elapsed().as_micros() as u64),
            Err(_) => list.errors += 1,
        }
        let t = Instant::now();
        let r = client.get_job(pb::GetJobRequest { id: job.clone() }).await;
        match r {
            Ok(j) => {
                get.micros.push(t.elapsed().as_micros() as u64);
                if j.state().is_terminal() {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            Err(_) => get.errors += 1,
        }
        if !think.is_zero() {
            tokio::time::sleep(think).await;
        }
    }
    (list, get)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, repository, job, rest @ ..] = args.as_slice() else {
        bail!("usage: bench_rpc_load ENDPOINT REPOSITORY JOB_ID [CLIENTS] [MAX_SECS] [THINK_MS]");
    };
    let clients: usize = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(64);
    let max_secs: u64 = rest.get(1).map(|s| s.parse()).transpose()?.unwrap_or(600);
    let think_ms: u64 = rest.get(2).map(|s| s.parse()).transpose()?.unwrap_or(0);

    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(
            Client::connect(endpoint)
                .await
                .with_context(|| format!("connecting to {endpoint}"))?,
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(max_secs);
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|c| {
            tokio::spawn(client_loop(
                c,
                repository.clone(),
                job.clone(),
                stop.clone(),
                deadline,
                Duration::from_millis(think_ms),
            ))
        })
        .collect();
    let (mut list, mut get) = (Samples::default(), Samples::default());
    for t in tasks {
        let (l, g) = t.await?;
        list.merge(l);
        get.merge(g);
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "clients": clients,
            "think_ms": think_ms,
            "seconds": seconds,
            "job_ended": stop.load(Ordering::Relaxed),
            "list_backups": list.summary(seconds),
            "get_job": get.summary(seconds),
        })
    );
    Ok(())
}
