//! Deep verification of one backed-up collection, without any Milvus: every delete log
//! and every insert log decodes, all fields of a segment hold the same number of rows,
//! the counts equal what the manifest says, and the live rows are recomputed.
//!
//! Damage is collected as [`Problem`]s naming the file or segment, so one run reports
//! all of it; only a failure to reach the repository ends the check early.

use std::collections::BTreeSet;

use milvault_binlog::segment::{TIMESTAMP_FIELD, column};
use milvault_binlog::{DeleteSet, read_delta_log};
use milvault_proto::milvault::v1::CollectionBackup;

use super::{Files, is_delete_only, pk_field};
use crate::error::{Error, Result};

/// One thing wrong with a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// The file (or segment) it is about.
    pub(crate) place: String,
    /// What is wrong.
    pub(crate) what: String,
}

/// What a deep check found in one collection.
#[derive(Clone, Debug, Default)]
pub(crate) struct Checked {
    /// Rows decoded from the insert logs.
    pub(crate) inserted: i64,
    /// Live rows recomputed.
    pub(crate) live: i64,
    /// Everything wrong.
    pub(crate) problems: Vec<Problem>,
}

/// Damage is a problem to report; anything else (the repository is unreachable) ends
/// the check.
fn as_problem(e: Error, place: &str) -> Result<Problem> {
    match e {
        Error::FileMissing { path, .. } => Ok(Problem {
            place: path,
            what: "missing from the repository".into(),
        }),
        Error::Corrupt { path, message } => Ok(Problem {
            place: if path.is_empty() {
                place.to_owned()
            } else {
                path
            },
            what: message,
        }),
        Error::SegmentFiles { message, .. } => Ok(Problem {
            place: place.to_owned(),
            what: message,
        }),
        other => Err(other),
    }
}

/// Checks one collection of a backup.
pub(crate) async fn check_collection(files: &Files<'_>, c: &CollectionBackup) -> Result<Checked> {
    let mut out = Checked::default();
    let pk = pk_field(c)?;
    let name = format!("{}.{}", c.database, c.name);
    let partitions: BTreeSet<i64> = c
        .segments
        .iter()
        .filter(|s| !is_delete_only(s))
        .map(|s| s.partition_id)
        .collect();
    for p in partitions {
        // Every delete log of the partition (and the all-partition ones), one by one,
        // so a damaged one is named and the rest still count.
        let mut deletes = DeleteSet::new();
        for seg in c
            .segments
            .iter()
            .filter(|s| s.partition_id == p || s.partition_id == super::ALL_PARTITIONS)
        {
            for f in &seg.delta_logs {
                match read_delta_log(files.source(f)).await {
                    Ok(log) => deletes.extend(log.entries),
                    Err(e) => out.problems.push(as_problem(files.error(e), &f.path)?),
                }
            }
        }
        for seg in c
            .segments
            .iter()
            .filter(|s| s.partition_id == p && !is_delete_only(s))
        {
            let place = format!("{name} segment {}", seg.segment_id);
            let segment = files.segment_of(c, seg);
            let fields_agree = match segment.check_row_counts().await {
                Ok(n) => Some(n),
                Err(e) => {
                    out.problems
                        .push(as_problem(files.segment_error(e, c, seg), &place)?);
                    None
                }
            };
            let Some(rows) = fields_agree else { continue };
            let rows = i64::try_from(rows).unwrap_or(i64::MAX);
            if rows != seg.num_rows {
                out.problems.push(Problem {
                    place: place.clone(),
                    what: format!(
                        "its files hold {rows} rows, the manifest says {}",
                        seg.num_rows
                    ),
                });
            }
            // Decode every column of every file; count live rows on the way.
            let (mut inserted, mut live) = (0i64, 0i64);
            let decoded = async {
                let mut reader = segment.batches(None).await?;
                while let Some(b) = reader.next_batch().await? {
                    inserted += b.num_rows() as i64;
                    if let (Some(pks), Some(tss)) = (column(&b, pk), column(&b, TIMESTAMP_FIELD)) {
                        let mask = deletes.live_mask(pks, tss)?;
                        live += mask.true_count() as i64;
                    }
                }
                Ok::<_, milvault_binlog::Error>(())
            }
            .await;
            if let Err(e) = decoded {
                out.problems
                    .push(as_problem(files.segment_error(e, c, seg), &place)?);
                continue;
            }
            if c.rows_counted && live != seg.live_rows {
                out.problems.push(Problem {
                    place: place.clone(),
                    what: format!(
                        "{live} live rows recomputed, the manifest says {}",
                        seg.live_rows
                    ),
                });
            }
            out.inserted += inserted;
            out.live += live;
        }
    }
    if c.rows_counted && out.problems.is_empty() && out.live != c.live_rows {
        out.problems.push(Problem {
            place: name,
            what: format!(
                "{} live rows recomputed, the manifest says {}",
                out.live, c.live_rows
            ),
        });
    }
    Ok(out)
}
