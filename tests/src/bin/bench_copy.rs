//! `milvault-bench-copy`: measures Milvault's copy engine (streaming, SHA-256 while
//! copying, bounded parallelism — what a backup does per file) against `rclone copy`
//! of the same files in the same run, and prints the ratio.
//!
//! ```text
//! milvault-bench-copy [FILES] [BYTES_PER_FILE] [CONCURRENCY]   (defaults 400 1048576 16)
//! ```

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use futures::{StreamExt, TryStreamExt};
use milvault_server::config::StorageConfig;
use milvault_server::storage::Store;
use milvault_tests::milvus_data::Lcg;

fn fs_store(name: &str, dir: &std::path::Path) -> Result<Store> {
    let mut options = BTreeMap::new();
    options.insert("root".to_owned(), dir.display().to_string());
    Ok(Store::new(
        name,
        &StorageConfig {
            scheme: "fs".into(),
            options,
        },
    )?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let files = args.first().copied().unwrap_or(400);
    let size = args.get(1).copied().unwrap_or(1 << 20);
    let concurrency = args.get(2).copied().unwrap_or(16);
    let work = tempfile::tempdir()?;
    let (src, ours, theirs) = (
        work.path().join("src"),
        work.path().join("milvault"),
        work.path().join("rclone"),
    );

    // Files laid out like a Milvus bucket: insert_log/<coll>/<part>/<seg>/<field>/<log>.
    let mut rng = Lcg::new(1);
    for i in 0..files {
        let dir = src.join(format!("insert_log/1/2/{}/{}", i / 20, 100 + i % 5));
        std::fs::create_dir_all(&dir)?;
        let bytes: Vec<u8> = (0..size).map(|_| rng.next_u64() as u8).collect();
        std::fs::write(dir.join(format!("{}", 400_000 + i)), bytes)?;
    }
    let total = (files * size) as f64 / (1024.0 * 1024.0);
    println!("{files} files x {size} bytes = {total:.0} MiB, concurrency {concurrency}");

    let from = fs_store("src", &src)?;
    let to = fs_store("dst", &ours)?;
    let start = Instant::now();
    let listed = from.list_recursive("insert_log/").await?;
    ensure!(listed.len() == files, "listed {} files", listed.len());
    let copied: Vec<_> = futures::stream::iter(listed.into_iter().map(|o| {
        let (from, to) = (from.clone(), to.clone());
        async move { from.copy_to(&o.key, &to, &o.key, None).await }
    }))
    .buffer_unordered(concurrency)
    .try_collect()
    .await?;
    let ours_secs = start.elapsed().as_secs_f64();
    ensure!(copied.len() == files);

    let start = Instant::now();
    let status = std::process::Command::new("rclone")
        .arg("copy")
        .arg(&src)
        .arg(&theirs)
        .args([
            "--transfers",
            &concurrency.to_string(),
            "--checkers",
            &concurrency.to_string(),
        ])
        .status()
        .context("running rclone (installed by scripts/setup.sh)")?;
    let rclone_secs = start.elapsed().as_secs_f64();
    ensure!(status.success(), "rclone failed");

    println!(
        "milvault copy (with SHA-256): {ours_secs:.2} s, {:.0} MiB/s",
        total / ours_secs
    );
    println!(
        "rclone copy:                  {rclone_secs:.2} s, {:.0} MiB/s",
        total / rclone_secs
    );
    println!(
        "ratio milvault/rclone time:   {:.2}",
        ours_secs / rclone_secs
    );
    Ok(())
}
