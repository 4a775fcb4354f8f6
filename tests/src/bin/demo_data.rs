//! `milvault-demo-data`: seeds demo collections into a Milvus and snapshots or
//! verifies their rows, for `scripts/demo.sh`.
//!
//! ```text
//! milvault-demo-data seed     ADDRESS PREFIX
//! milvault-demo-data drop     ADDRESS PREFIX
//! milvault-demo-data snapshot ADDRESS PREFIX FILE   # every row of every demo collection
//! milvault-demo-data verify   ADDRESS PREFIX FILE   # fails unless every row is back
//! ```

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use milvault_tests::fixtures::{seed, standard};
use milvault_tests::milvus_data::DataClient;

type Snapshot = BTreeMap<String, BTreeMap<String, String>>;

async fn dump_all(c: &DataClient, prefix: &str) -> Result<Snapshot> {
    let mut out = BTreeMap::new();
    for fx in standard(prefix) {
        c.load("default", &fx.name)
            .await
            .with_context(|| format!("loading {}", fx.name))?;
        out.insert(fx.name.clone(), c.dump("default", &fx.name).await?);
    }
    Ok(out)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, address, prefix) = match args.as_slice() {
        [cmd, address, prefix, ..] => (cmd.as_str(), address.as_str(), prefix.as_str()),
        _ => bail!("usage: milvault-demo-data seed|drop|snapshot|verify ADDRESS PREFIX [FILE]"),
    };
    let client = DataClient::connect(address).await?;
    match cmd {
        "seed" => {
            for fx in standard(prefix) {
                seed(&client, "default", &fx, 7).await?;
                let rows: usize = fx.batches.iter().map(|b| b.1).sum();
                println!(
                    "seeded {} ({} rows inserted, {} delete expressions)",
                    fx.name,
                    rows,
                    fx.deletes.len()
                );
            }
        }
        "drop" => {
            for fx in standard(prefix) {
                client
                    .drop_collection_if_exists("default", &fx.name)
                    .await?;
                println!("dropped {}", fx.name);
            }
        }
        "snapshot" => {
            let file = args.get(3).context("snapshot needs FILE")?;
            let snap = dump_all(&client, prefix).await?;
            for (name, rows) in &snap {
                println!("{name}: {} rows", rows.len());
            }
            std::fs::write(file, serde_json::to_vec(&snap)?)?;
        }
        "verify" => {
            let file = args.get(3).context("verify needs FILE")?;
            let want: Snapshot = serde_json::from_slice(&std::fs::read(file)?)?;
            let got = dump_all(&client, prefix).await?;
            let mut bad = 0;
            for (name, rows) in &want {
                let back = got.get(name).cloned().unwrap_or_default();
                let same = rows == &back;
                println!(
                    "{name}: {} rows before, {} rows after: {}",
                    rows.len(),
                    back.len(),
                    if same { "identical" } else { "DIFFERENT" }
                );
                if !same {
                    bad += 1;
                }
            }
            if bad > 0 {
                bail!("{bad} collections differ after restore");
            }
            println!("every row came back, bit for bit");
        }
        other => bail!("unknown command {other:?}"),
    }
    Ok(())
}
