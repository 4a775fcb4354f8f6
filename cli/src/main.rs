//! `milvault`: the command line over the Milvault SDK. Argument parsing, progress
//! bars and output formatting only; every decision is the server's.

mod output;
mod progress;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use milvault_sdk::{Client, ConnectOptions, SdkError, pb};

/// Back up and restore Milvus through a milvault-server.
#[derive(Parser, Debug)]
#[command(name = "milvault", version, about)]
struct Cli {
    /// Server endpoint.
    #[arg(
        long,
        global = true,
        env = "MILVAULT_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    endpoint: String,
    /// Bearer token sent to the server.
    #[arg(long, global = true, env = "MILVAULT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// PEM file of the CA that signs the server's certificate (https:// endpoints;
    /// the system's CAs when not given).
    #[arg(long, global = true, env = "MILVAULT_CA", value_name = "FILE")]
    ca: Option<PathBuf>,
    /// PEM client certificate, for a server that requires one (with --key).
    #[arg(
        long,
        global = true,
        env = "MILVAULT_CERT",
        value_name = "FILE",
        requires = "key"
    )]
    cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(
        long,
        global = true,
        env = "MILVAULT_KEY",
        value_name = "FILE",
        requires = "cert"
    )]
    key: Option<PathBuf>,
    /// Name to verify the server's certificate for, when it is not the endpoint's host.
    #[arg(
        long,
        global = true,
        env = "MILVAULT_TLS_SERVER_NAME",
        value_name = "NAME"
    )]
    tls_server_name: Option<String>,
    /// Output format.
    #[arg(long, short, global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Human-readable tables.
    Table,
    /// JSON (the API's proto3 JSON form).
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, list, show and delete backups.
    #[command(subcommand)]
    Backup(BackupCmd),
    /// Restore a backup into a cluster.
    Restore(RestoreArgs),
    /// Inspect and follow jobs.
    #[command(subcommand)]
    Job(JobCmd),
    /// Show the server's version, clusters and repositories.
    ServerInfo,
}

#[derive(Args, Debug)]
struct WaitArgs {
    /// Print the job id and return at once instead of waiting.
    #[arg(long)]
    no_wait: bool,
}

#[derive(Subcommand, Debug)]
enum BackupCmd {
    /// Back up a cluster.
    Create {
        /// Backup name.
        name: String,
        /// Cluster (may be omitted when the server has one).
        #[arg(long, default_value = "")]
        cluster: String,
        /// Repository (may be omitted when the server has one).
        #[arg(long, default_value = "")]
        repository: String,
        /// Comma list of DB.COLLECTION patterns (* allowed); default everything.
        #[arg(long, default_value = "")]
        collections: String,
        /// Include users, roles and grants.
        #[arg(long)]
        rbac: bool,
        /// Incremental: reference the unchanged files of this backup instead of
        /// copying them ("latest": the newest complete backup of the cluster).
        #[arg(long, default_value = "")]
        base: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// List backups (incomplete ones with their age).
    List {
        /// Repository.
        #[arg(long, default_value = "")]
        repository: String,
    },
    /// Show what a backup holds.
    Get {
        /// Backup name.
        name: String,
        /// Repository.
        #[arg(long, default_value = "")]
        repository: String,
    },
    /// Re-read every file of a backup and check it against the manifest's SHA-256.
    Verify {
        /// Backup name.
        name: String,
        /// Repository.
        #[arg(long, default_value = "")]
        repository: String,
        /// Also decode every file without Milvus: fields agree, counts match the
        /// manifest, live rows recomputed per collection.
        #[arg(long)]
        deep: bool,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Write the live rows of a backup's collections as Parquet files.
    Export {
        /// Backup name.
        name: String,
        /// Repository.
        #[arg(long, default_value = "")]
        repository: String,
        /// Comma list of DB.COLLECTION patterns; default every collection.
        #[arg(long, default_value = "")]
        collections: String,
        /// An absolute directory on the server, or REPOSITORY:PREFIX.
        #[arg(long = "to")]
        destination: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Delete a backup.
    Delete {
        /// Backup name.
        name: String,
        /// Repository.
        #[arg(long, default_value = "")]
        repository: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

#[derive(Args, Debug)]
struct RestoreArgs {
    /// Backup name.
    name: String,
    /// Target cluster.
    #[arg(long, default_value = "")]
    cluster: String,
    /// Repository holding the backup.
    #[arg(long, default_value = "")]
    repository: String,
    /// Comma list of DB.COLLECTION patterns to restore; default everything.
    #[arg(long, default_value = "")]
    collections: String,
    /// Suffix appended to restored collection names.
    #[arg(long, default_value = "")]
    suffix: String,
    /// Rename SRC=DST (SRC is COLL or DB.COLL); repeatable.
    #[arg(long = "rename", value_parser = parse_pair)]
    renames: Vec<(String, String)>,
    /// Map database SRC to DST (created when missing); repeatable.
    #[arg(long = "db-map", value_parser = parse_pair)]
    db_map: Vec<(String, String)>,
    /// Replace target collections that exist.
    #[arg(long)]
    drop_existing: bool,
    /// Restore schemas, partitions, indexes and aliases only.
    #[arg(long)]
    meta_only: bool,
    /// Also restore users, roles and grants.
    #[arg(long)]
    rbac: bool,
    /// Do not load collections that were loaded at backup time.
    #[arg(long)]
    skip_load: bool,
    /// Do not build indexes.
    #[arg(long)]
    skip_indexes: bool,
    /// Move aliases held by the collection a renamed/suffixed copy was taken from to
    /// the restored copy once the restore succeeded (blue/green switch).
    #[arg(long)]
    move_aliases: bool,
    /// Restore no aliases.
    #[arg(long, conflicts_with = "move_aliases")]
    skip_aliases: bool,
    #[command(flatten)]
    wait: WaitArgs,
}

#[derive(Subcommand, Debug)]
enum JobCmd {
    /// List jobs, newest first.
    List,
    /// Show one job.
    Get {
        /// Job id.
        id: String,
    },
    /// Follow a job until it ends.
    Watch {
        /// Job id.
        id: String,
    },
    /// Ask a job to stop (for an interrupted restore kept for a resume: give the
    /// resume up and remove what it created).
    Cancel {
        /// Job id.
        id: String,
    },
    /// Continue a restore the server's restart interrupted, as a new job: segments
    /// whose import was confirmed are not imported again.
    Resume {
        /// The interrupted restore's job id.
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_owned(), b.to_owned())),
        _ => Err(format!("expected SRC=DST, got {s:?}")),
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Why the command failed: an RPC error (exit 2) or a failed job (exit 1).
enum Failure {
    Rpc(SdkError),
    Job,
}

impl From<SdkError> for Failure {
    fn from(e: SdkError) -> Self {
        Failure::Rpc(e)
    }
}

async fn follow(
    client: &Client,
    job: pb::Job,
    wait: &WaitArgs,
    format: Format,
) -> Result<(), Failure> {
    if wait.no_wait {
        output::job_started(&job, format);
        return Ok(());
    }
    let mut bar = progress::Progress::new(format);
    let done = client.wait_job(&job.id, |j| bar.update(j)).await?;
    bar.finish(&done);
    output::job(&done, format);
    if milvault_sdk::job_succeeded(&done) {
        Ok(())
    } else {
        Err(Failure::Job)
    }
}

/// Token and TLS settings from the global flags.
fn connect_options(cli: &Cli) -> ConnectOptions {
    let mut options = ConnectOptions::new();
    if let Some(t) = &cli.token {
        options = options.token(t.clone());
    }
    if let Some(ca) = &cli.ca {
        options = options.ca_file(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&cli.cert, &cli.key) {
        options = options.identity_files(cert.clone(), key.clone());
    }
    if let Some(name) = &cli.tls_server_name {
        options = options.server_name(name.clone());
    }
    options
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let client = Client::connect_opts(&cli.endpoint, &connect_options(&cli)).await?;
    let format = cli.output;
    match cli.command {
        Command::ServerInfo => output::server_info(&client.server_info().await?, format),
        Command::Backup(BackupCmd::Create {
            name,
            cluster,
            repository,
            collections,
            rbac,
            base,
            wait,
        }) => {
            let req = pb::CreateBackupRequest {
                name,
                cluster,
                repository,
                collections: split_list(&collections),
                include_rbac: rbac,
                base,
            };
            let job = client.create_backup(req).await?;
            return follow(&client, job, &wait, format).await;
        }
        Command::Backup(BackupCmd::List { repository }) => {
            let req = pb::ListBackupsRequest {
                repository,
                page_size: 1000,
                ..Default::default()
            };
            output::backups(&client.list_backups(req).await?, format)
        }
        Command::Backup(BackupCmd::Get { name, repository }) => {
            let req = pb::GetBackupRequest { name, repository };
            output::backup(&client.get_backup(req).await?, format)
        }
        Command::Backup(BackupCmd::Verify {
            name,
            repository,
            deep,
            wait,
        }) => {
            let job = client
                .verify_backup(pb::VerifyBackupRequest {
                    name,
                    repository,
                    deep,
                })
                .await?;
            return follow(&client, job, &wait, format).await;
        }
        Command::Backup(BackupCmd::Export {
            name,
            repository,
            collections,
            destination,
            wait,
        }) => {
            let req = pb::ExportBackupRequest {
                name,
                repository,
                collections: split_list(&collections),
                destination,
            };
            let job = client.export_backup(req).await?;
            return follow(&client, job, &wait, format).await;
        }
        Command::Backup(BackupCmd::Delete {
            name,
            repository,
            wait,
        }) => {
            let job = client
                .delete_backup(pb::DeleteBackupRequest { name, repository })
                .await?;
            return follow(&client, job, &wait, format).await;
        }
        Command::Restore(a) => {
            let req = pb::RestoreBackupRequest {
                backup: a.name,
                cluster: a.cluster,
                repository: a.repository,
                collections: split_list(&a.collections),
                suffix: a.suffix,
                renames: a.renames.into_iter().collect(),
                drop_existing: a.drop_existing,
                meta_only: a.meta_only,
                database_map: a.db_map.into_iter().collect(),
                restore_rbac: a.rbac,
                skip_load: a.skip_load,
                skip_indexes: a.skip_indexes,
                move_aliases: a.move_aliases,
                skip_aliases: a.skip_aliases,
            };
            let job = client.restore_backup(req).await?;
            return follow(&client, job, &a.wait, format).await;
        }
        Command::Job(JobCmd::List) => {
            let req = pb::ListJobsRequest {
                page_size: 1000,
                ..Default::default()
            };
            output::jobs(&client.list_jobs(req).await?, format)
        }
        Command::Job(JobCmd::Get { id }) => {
            output::job(&client.get_job(pb::GetJobRequest { id }).await?, format)
        }
        Command::Job(JobCmd::Watch { id }) => {
            let job = client.get_job(pb::GetJobRequest { id }).await?;
            return follow(&client, job, &WaitArgs { no_wait: false }, format).await;
        }
        Command::Job(JobCmd::Cancel { id }) => output::job(
            &client.cancel_job(pb::CancelJobRequest { id }).await?,
            format,
        ),
        Command::Job(JobCmd::Resume { id, wait }) => {
            let job = client.resume_job(pb::ResumeJobRequest { id }).await?;
            return follow(&client, job, &wait, format).await;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Job) => ExitCode::from(1),
        Err(Failure::Rpc(e)) => {
            eprintln!("milvault: {e}");
            ExitCode::from(2)
        }
    }
}
