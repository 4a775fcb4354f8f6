//! Printing results as tables or JSON (the API's proto3 JSON mapping).

use milvault_sdk::pb;

use crate::Format;

fn json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("milvault: cannot print JSON: {e}"),
    }
}

fn state_name(state: i32) -> String {
    pb::JobState::try_from(state)
        .map(|s| s.as_str_name().trim_start_matches("JOB_STATE_").to_owned())
        .unwrap_or_else(|_| state.to_string())
}

fn kind_name(kind: i32) -> String {
    pb::JobKind::try_from(kind)
        .map(|s| s.as_str_name().trim_start_matches("JOB_KIND_").to_owned())
        .unwrap_or_else(|_| kind.to_string())
}

fn time(t: &Option<pbjson_types::Timestamp>) -> String {
    t.map(|t| t.seconds.to_string()).unwrap_or_default()
}

/// Human-readable byte count.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A job was started and not waited for.
pub(crate) fn job_started(job: &pb::Job, format: Format) {
    match format {
        Format::Json => json(job),
        Format::Table => println!("{}", job.id),
    }
}

/// One job, in full.
pub(crate) fn job(job: &pb::Job, format: Format) {
    if format == Format::Json {
        return json(job);
    }
    let p = job.progress.clone().unwrap_or_default();
    println!("job        {}", job.id);
    println!("kind       {}", kind_name(job.kind));
    println!("state      {}", state_name(job.state));
    println!("phase      {}", milvault_sdk::phase_text(job));
    println!("backup     {}", job.backup);
    if !job.cluster.is_empty() {
        println!("cluster    {}", job.cluster);
    }
    println!("repository {}", job.repository);
    println!(
        "progress   {} / {}, {} / {} files, {} / {} collections",
        bytes(p.bytes_done),
        bytes(p.bytes_total),
        p.files_done,
        p.files_total,
        p.collections_done,
        p.collections_total
    );
    if let Some(e) = &job.error {
        println!("error      {} {}: {}", e.code, e.reason, e.message);
    }
    for w in &job.warnings {
        println!("warning    {w}");
    }
    if let Some(r) = &job.report {
        if let Some(rb) = &r.rbac {
            println!(
                "rbac       {} users, {} roles, {} grants created",
                rb.users, rb.roles, rb.grants
            );
            if !rb.users_needing_password_reset.is_empty() {
                println!(
                    "           passwords to reset: {}",
                    rb.users_needing_password_reset.join(", ")
                );
            }
        }
        for c in &r.collections {
            let method = pb::RestoreMethod::try_from(c.method)
                .map(|m| {
                    m.as_str_name()
                        .trim_start_matches("RESTORE_METHOD_")
                        .to_owned()
                })
                .unwrap_or_default();
            let target = if c.target_collection.is_empty() {
                String::new()
            } else {
                format!(" -> {}.{}", c.target_database, c.target_collection)
            };
            let method = if method == "UNSPECIFIED" {
                String::new()
            } else {
                format!(" [{method}]")
            };
            println!(
                "collection {}.{}{target}{method}: {} rows, {}",
                c.database,
                c.collection,
                c.rows,
                bytes(c.size_bytes)
            );
            for w in &c.warnings {
                println!("           warning: {w}");
            }
            for o in &c.outputs {
                println!("           wrote {o}");
            }
        }
    }
}

/// Many jobs, one line each.
pub(crate) fn jobs(jobs: &[pb::Job], format: Format) {
    if format == Format::Json {
        return json(&jobs.to_vec());
    }
    println!(
        "{:<36}  {:<8}  {:<10}  {:<20}  {:>12}",
        "ID", "KIND", "STATE", "BACKUP", "CREATED"
    );
    for j in jobs {
        println!(
            "{:<36}  {:<8}  {:<10}  {:<20}  {:>12}",
            j.id,
            kind_name(j.kind),
            state_name(j.state),
            j.backup,
            time(&j.create_time)
        );
    }
}

fn backup_state(state: i32) -> String {
    pb::BackupState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("BACKUP_STATE_")
                .to_owned()
        })
        .unwrap_or_default()
}

/// Many backups, one line each.
pub(crate) fn backups(backups: &[pb::Backup], format: Format) {
    if format == Format::Json {
        return json(&backups.to_vec());
    }
    println!(
        "{:<30}  {:<11}  {:<8}  {:>6}  {:>10}  {:>12}  {:<20}",
        "NAME", "STATE", "MILVUS", "COLLS", "SIZE", "ROWS", "BASE / AGE"
    );
    for b in backups {
        let s = b.summary.unwrap_or_default();
        let complete = b.state == pb::BackupState::Complete as i32;
        let extra = if complete {
            b.base.clone()
        } else if b.age_seconds > 0 {
            format!("started {} ago", age(b.age_seconds))
        } else {
            "age unknown".to_owned()
        };
        println!(
            "{:<30}  {:<11}  {:<8}  {:>6}  {:>10}  {:>12}  {:<20}",
            b.name,
            backup_state(b.state),
            b.milvus_version,
            s.collection_count,
            if complete {
                bytes(s.size_bytes)
            } else {
                String::new()
            },
            if complete {
                s.row_count.to_string()
            } else {
                String::new()
            },
            extra
        );
    }
}

/// A duration in seconds, in its largest sensible unit.
fn age(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// One backup and what it holds.
pub(crate) fn backup(b: &pb::Backup, format: Format) {
    if format == Format::Json {
        return json(b);
    }
    println!("backup     {}", b.name);
    println!("repository {}", b.repository);
    println!("state      {}", backup_state(b.state));
    if b.state != pb::BackupState::Complete as i32 && b.age_seconds > 0 {
        println!(
            "started    {} ago by job {} (cluster {})",
            age(b.age_seconds),
            b.job_id,
            b.cluster
        );
    }
    let Some(m) = &b.manifest else { return };
    if let Some(src) = &m.source {
        println!(
            "source     cluster {} ({}), Milvus {}",
            src.cluster, src.address, src.milvus_version
        );
    }
    let s = m.summary.unwrap_or_default();
    println!(
        "contents   {} databases, {} collections, {} live rows ({} inserted), {} in {} files",
        s.database_count,
        s.collection_count,
        s.row_count,
        s.inserted_rows,
        bytes(s.size_bytes),
        s.file_count
    );
    if !m.base.is_empty() || s.referenced_files > 0 {
        let holders: Vec<&str> = m.references.iter().map(|r| r.name.as_str()).collect();
        println!(
            "increment  on {}: copied {} in {} files, referenced {} in {} files of {}",
            if m.base.is_empty() { "-" } else { &m.base },
            bytes(s.copied_bytes),
            s.copied_files,
            bytes(s.referenced_bytes),
            s.referenced_files,
            holders.join(", ")
        );
    } else {
        println!(
            "copied     {} in {} files (full backup)",
            bytes(s.copied_bytes),
            s.copied_files
        );
    }
    let dbs: Vec<&str> = m.databases.iter().map(|d| d.name.as_str()).collect();
    println!("databases  {}", dbs.join(", "));
    if let Some(r) = &m.rbac {
        println!(
            "rbac       {} users, {} roles, {} grants{}",
            r.users.len(),
            r.roles.len(),
            r.grants.len(),
            if r.passwords_missing {
                " (passwords not exportable from this Milvus)"
            } else {
                ""
            }
        );
    }
    for w in &m.warnings {
        println!("warning    {w}");
    }
    for c in &m.collections {
        let rows = if c.rows_counted {
            format!("{} live rows of {} inserted", c.live_rows, c.row_count)
        } else {
            format!("{} rows before deletes", c.row_count)
        };
        println!(
            "\n{}.{}  ({rows}, {}, {} segments{})",
            c.database,
            c.name,
            bytes(c.size_bytes),
            c.segments.len(),
            if c.loaded { ", loaded" } else { "" }
        );
        if let Some(check) = &c.row_check {
            println!("  checked    {}", check.detail);
        }
        if let Some(schema) = &c.schema {
            for f in &schema.fields {
                let ty = pb::DataType::try_from(f.data_type)
                    .map(|t| t.as_str_name().trim_start_matches("DATA_TYPE_").to_owned())
                    .unwrap_or_default();
                let params: Vec<String> = f
                    .type_params
                    .iter()
                    .map(|kv| format!("{}={}", kv.key, kv.value))
                    .collect();
                println!(
                    "  field {:>4} {:<20} {:<14} {}{}{}",
                    f.field_id,
                    f.name,
                    ty,
                    if f.is_primary_key { "primary " } else { "" },
                    if f.auto_id { "auto_id " } else { "" },
                    params.join(" ")
                );
            }
        }
        let parts: Vec<&str> = c.partitions.iter().map(|p| p.name.as_str()).collect();
        println!("  partitions {}", parts.join(", "));
        for i in &c.indexes {
            let params: Vec<String> = i
                .params
                .iter()
                .map(|kv| format!("{}={}", kv.key, kv.value))
                .collect();
            println!(
                "  index {} on {}: {}",
                i.index_name,
                i.field_name,
                params.join(" ")
            );
        }
        if !c.aliases.is_empty() {
            println!("  aliases {}", c.aliases.join(", "));
        }
        let props: Vec<String> = c
            .properties
            .iter()
            .map(|kv| format!("{}={}", kv.key, kv.value))
            .collect();
        println!(
            "  shards {}, properties {}",
            c.shards_num,
            if props.is_empty() {
                "none".into()
            } else {
                props.join(" ")
            }
        );
    }
}

/// The server's configuration, secrets left out by the server.
pub(crate) fn server_info(info: &pb::GetServerInfoResponse, format: Format) {
    if format == Format::Json {
        return json(info);
    }
    println!("milvault-server {}", info.version);
    for c in &info.clusters {
        let scheme = c.storage.as_ref().map(|s| s.scheme.as_str()).unwrap_or("");
        println!("cluster    {:<16} {} (storage {scheme})", c.name, c.address);
    }
    for r in &info.repositories {
        let scheme = r.storage.as_ref().map(|s| s.scheme.as_str()).unwrap_or("");
        let root = r
            .storage
            .as_ref()
            .and_then(|s| s.options.get("root"))
            .cloned()
            .unwrap_or_default();
        println!("repository {:<16} {scheme} {root}", r.name);
    }
}
