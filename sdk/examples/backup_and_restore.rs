//! Backs up one collection and restores it under a new name, printing progress.
//!
//! ```sh
//! cargo run -p milvault-sdk --example backup_and_restore -- http://127.0.0.1:50051 my_collection
//! ```

use milvault_sdk::{Client, pb};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let endpoint = args
        .next()
        .unwrap_or_else(|| "http://127.0.0.1:50051".into());
    let collection = args
        .next()
        .ok_or("usage: backup_and_restore ENDPOINT COLLECTION")?;
    let client = Client::connect(&endpoint).await?;

    let name = format!("example-{collection}");
    let job = client
        .create_backup(pb::CreateBackupRequest {
            name: name.clone(),
            collections: vec![collection.clone()],
            ..Default::default()
        })
        .await?;
    let done = client
        .wait_job(&job.id, |j| {
            let p = j.progress.clone().unwrap_or_default();
            println!(
                "{}: {} / {} bytes",
                milvault_sdk::phase_text(j),
                p.bytes_done,
                p.bytes_total
            );
        })
        .await?;
    if !milvault_sdk::job_succeeded(&done) {
        return Err(format!("backup failed: {:?}", done.error).into());
    }

    let mut renames = std::collections::HashMap::new();
    renames.insert(collection.clone(), format!("{collection}_restored"));
    let job = client
        .restore_backup(pb::RestoreBackupRequest {
            backup: name,
            renames,
            ..Default::default()
        })
        .await?;
    let done = client.wait_job(&job.id, |_| {}).await?;
    println!("restore ended in state {:?}", done.state());
    Ok(())
}
