//! Copying rows from one collection into another through Query and Insert.
//!
//! Used to restore partition-key collections into Milvus < 2.4, which refuses binlog
//! imports into them ("target partition must be only one"): the segments are imported
//! into a temporary twin without the partition key (same field ids, so the binlogs
//! fit), then its rows are read in primary-key order, a batch at a time, and inserted
//! with full columns into the real collection, where Milvus routes each row by its key.
//! The number of rows copied must equal the twin's row count, or the copy fails.

use std::time::Duration;

use milvault_proto::milvault::v1::CollectionSchema;
use milvault_proto::milvus::common::KeyValuePair;
use milvault_proto::milvus::milvus as pb;
use milvault_proto::milvus::schema::{FieldData, field_data, scalar_field};

use crate::error::{Error, Result};
use crate::milvus::MilvusClient;

/// Rows read and written per batch (below 2.3's 16,384 query window).
const BATCH: usize = 4000;

/// Renders a primary key for an expression: numbers as is, strings quoted.
fn literal(pk: &PkValue) -> String {
    match pk {
        PkValue::Int(i) => i.to_string(),
        PkValue::Str(s) => format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PkValue {
    Int(i64),
    Str(String),
}

fn pk_values(col: &FieldData) -> Result<Vec<PkValue>> {
    match &col.field {
        Some(field_data::Field::Scalars(s)) => match &s.data {
            Some(scalar_field::Data::LongData(a)) => {
                Ok(a.data.iter().map(|v| PkValue::Int(*v)).collect())
            }
            Some(scalar_field::Data::StringData(a)) => {
                Ok(a.data.iter().cloned().map(PkValue::Str).collect())
            }
            _ => Err(Error::Internal(
                "primary key column of an unexpected type".into(),
            )),
        },
        _ => Err(Error::Internal("primary key column missing".into())),
    }
}

/// Counts a loaded collection's rows.
async fn count(client: &MilvusClient, db: &str, coll: &str) -> Result<i64> {
    let cols = client
        .query(pb::QueryRequest {
            db_name: db.to_owned(),
            collection_name: coll.to_owned(),
            expr: String::new(),
            output_fields: vec!["count(*)".into()],
            consistency_level: 0,
            ..Default::default()
        })
        .await?;
    match cols.first().and_then(|c| c.field.as_ref()) {
        Some(field_data::Field::Scalars(s)) => match &s.data {
            Some(scalar_field::Data::LongData(a)) => Ok(a.data.first().copied().unwrap_or(0)),
            _ => Err(Error::Internal(
                "count(*) answered with an unexpected type".into(),
            )),
        },
        _ => Err(Error::Internal("count(*) answered nothing".into())),
    }
}

/// Copies every row of loaded `from` into `to` (same database); returns the count.
pub async fn copy_rows(
    client: &MilvusClient,
    db: &str,
    from: &str,
    to: &str,
    schema: &CollectionSchema,
) -> Result<i64> {
    let pk = schema
        .fields
        .iter()
        .find(|f| f.is_primary_key)
        .ok_or_else(|| Error::Internal(format!("{from} has no primary key")))?;
    let outputs: Vec<String> = schema.fields.iter().map(|f| f.name.clone()).collect();
    let expected = count(client, db, from).await?;
    let mut last: Option<PkValue> = None;
    let mut copied = 0i64;
    loop {
        let expr = match &last {
            None if pk.data_type == 21 => format!("{} != \"\"", pk.name),
            None => format!("{} >= {}", pk.name, i64::MIN + 1),
            Some(v) => format!("{} > {}", pk.name, literal(v)),
        };
        let mut cols = client
            .query(pb::QueryRequest {
                db_name: db.to_owned(),
                collection_name: from.to_owned(),
                expr,
                output_fields: outputs.clone(),
                query_params: vec![KeyValuePair {
                    key: "limit".into(),
                    value: BATCH.to_string(),
                }],
                consistency_level: 0,
                ..Default::default()
            })
            .await?;
        let pk_col = cols
            .iter()
            .find(|c| c.field_name == pk.name)
            .ok_or_else(|| {
                Error::Internal(format!("query on {from} did not return the primary key"))
            })?;
        let keys = pk_values(pk_col)?;
        if keys.is_empty() {
            break;
        }
        let max = keys.iter().max().cloned();
        if last.is_some() && max <= last {
            return Err(Error::Internal(format!(
                "paging through {from} did not advance"
            )));
        }
        last = max;
        // Auto-id keys cannot be supplied on insert: Milvus assigns new ones.
        if pk.auto_id {
            cols.retain(|c| c.field_name != pk.name);
        }
        let n = keys.len();
        let inserted = client
            .insert(pb::InsertRequest {
                db_name: db.to_owned(),
                collection_name: to.to_owned(),
                fields_data: cols,
                num_rows: n as u32,
                ..Default::default()
            })
            .await?;
        if inserted != n as i64 {
            return Err(Error::Milvus {
                operation: "Insert".into(),
                message: format!("{to}: inserted {inserted} of {n} rows"),
            });
        }
        copied += inserted;
        if n < BATCH {
            break;
        }
    }
    if copied != expected {
        return Err(Error::Internal(format!(
            "copied {copied} rows from {from} but it holds {expected}; the copy is incomplete"
        )));
    }
    Ok(copied)
}

/// Loads a collection and waits.
pub async fn load(client: &MilvusClient, db: &str, coll: &str) -> Result<()> {
    client.load_collection(db, coll).await?;
    client.wait_loaded(db, coll, Duration::from_secs(600)).await
}
