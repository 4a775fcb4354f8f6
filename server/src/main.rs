//! `milvault-server --config FILE`: loads the configuration (file < env < flags),
//! starts telemetry, and serves until SIGINT/SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use milvault_server::config::{Config, FlagOverrides};

/// Milvault server: backup and restore for Milvus, over gRPC.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// TOML configuration file.
    #[arg(long, short, env = "MILVAULT_CONFIG")]
    config: Option<PathBuf>,
    /// Listen address (overrides server.listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// State directory (overrides server.state_dir).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Log filter (overrides telemetry.log_filter), e.g. "info,milvault_server=debug".
    #[arg(long)]
    log_filter: Option<String>,
    /// Print the effective configuration (secrets redacted) and exit.
    #[arg(long)]
    print_config: bool,
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let flags = FlagOverrides {
        listen: args.listen,
        state_dir: args.state_dir,
        log_filter: args.log_filter,
    };
    let config = match Config::load(args.config.as_deref(), &flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("milvault-server: {e}");
            return ExitCode::from(2);
        }
    };
    if args.print_config {
        println!("{config:#?}");
        return ExitCode::SUCCESS;
    }
    let _telemetry = match milvault_server::telemetry::init(&config.telemetry) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("milvault-server: {e}");
            return ExitCode::from(2);
        }
    };
    match milvault_server::run(config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "milvault-server stopped");
            eprintln!("milvault-server: {e}");
            ExitCode::FAILURE
        }
    }
}
