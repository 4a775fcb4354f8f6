//! Row insert, for collections Milvus cannot take binlogs into: partition-key
//! collections on Milvus < 2.4 ("target partition must be only one").
//!
//! The segments are imported into a temporary twin without the partition key (same
//! field ids, so the binlogs fit), then its rows are read in primary-key order, a page
//! at a time, and inserted with full columns into the real collection, where Milvus
//! routes each row by its key. The number of rows copied must equal the twin's row
//! count, or the restore fails. The twin is dropped either way.

use std::collections::BTreeMap;

use milvault_proto::milvault::v1::{CollectionSchema, DataType, IndexBackup, JobPhase, KeyValue};

use super::{Side, Target, Task};
use crate::error::{Error, Result};
use crate::milvus::PkField;
use crate::milvus::types::NewCollection;

/// Rows read and written per page (below 2.3's 16,384 query window).
const PAGE: usize = 4000;

/// The index a twin's vector field needs to be loadable: the backed-up one, or a
/// brute-force index with the type's usual metric.
fn twin_index(
    schema_field: &milvault_proto::milvault::v1::FieldSchema,
    backed_up: &[IndexBackup],
) -> IndexBackup {
    if let Some(i) = backed_up.iter().find(|i| i.field_name == schema_field.name) {
        return i.clone();
    }
    let (index_type, metric) = if schema_field.data_type() == DataType::BinaryVector {
        ("BIN_FLAT", "HAMMING")
    } else {
        ("FLAT", "L2")
    };
    IndexBackup {
        field_name: schema_field.name.clone(),
        params: vec![
            KeyValue {
                key: "index_type".into(),
                value: index_type.into(),
            },
            KeyValue {
                key: "metric_type".into(),
                value: metric.into(),
            },
        ],
        ..Default::default()
    }
}

fn is_vector(t: DataType) -> bool {
    matches!(
        t,
        DataType::BinaryVector
            | DataType::FloatVector
            | DataType::Float16Vector
            | DataType::Bfloat16Vector
            | DataType::SparseFloatVector
    )
}

impl Side<'_> {
    /// Restores the task's rows by insert; returns the rows and the warnings to report
    /// (also when it fails: the twin's cleanup may warn).
    pub(super) async fn restore_rows(
        &self,
        task: Task<'_>,
        schema: &CollectionSchema,
    ) -> (Result<i64>, Vec<String>) {
        let t = task.target;
        let twin = Target {
            source: t.source,
            database: t.database.clone(),
            collection: format!(
                "{}_milvault_tmp_{}",
                t.collection,
                self.ctx.id().replace('-', "").get(..8).unwrap_or("0")
            ),
        };
        let outcome = self.via_twin(task, &twin, schema).await;
        let mut warnings = Vec::new();
        if let Err(e) = self
            .client
            .drop_collection(&twin.database, &twin.collection)
            .await
        {
            warnings.push(format!(
                "could not drop the temporary collection {}: {e}",
                twin.collection
            ));
        }
        let outcome = match outcome {
            Ok(rows) => self
                .client
                .flush_and_wait(&t.database, &t.collection, self.ctx.cancel_token())
                .await
                .map(|_| rows),
            Err(e) => Err(e),
        };
        (outcome, warnings)
    }

    async fn via_twin(
        &self,
        task: Task<'_>,
        twin: &Target,
        schema: &CollectionSchema,
    ) -> Result<i64> {
        let (client, ctx) = (self.client, self.ctx);
        let src = task.src;
        ctx.collection_phase(task.idx, JobPhase::Importing);
        ctx.phase(
            JobPhase::Importing,
            format!(
                "{}.{} (into a temporary twin)",
                twin.database, twin.collection
            ),
        )
        .await;
        let mut twin_schema = schema.clone();
        for f in &mut twin_schema.fields {
            f.is_partition_key = false;
        }
        client
            .create_collection(&NewCollection {
                database: &twin.database,
                name: &twin.collection,
                schema: &twin_schema,
                shards_num: src.shards_num,
                consistency_level: src.consistency_level(),
                properties: &[],
                num_partitions: 0,
            })
            .await?;
        self.import_all(task, twin, &BTreeMap::new()).await?;
        for f in schema.fields.iter().filter(|f| is_vector(f.data_type())) {
            client
                .create_index(
                    &twin.database,
                    &twin.collection,
                    &twin_index(f, &src.indexes),
                )
                .await?;
        }
        client
            .load_and_wait(&twin.database, &twin.collection, ctx.cancel_token())
            .await?;
        ctx.collection_phase(task.idx, JobPhase::Inserting);
        ctx.phase(
            JobPhase::Inserting,
            format!("{}.{}", task.target.database, task.target.collection),
        )
        .await;
        self.copy_rows(twin, &task.target.collection, schema).await
    }

    /// Copies every row of loaded `from` into `to` (same database); returns the count.
    async fn copy_rows(&self, from: &Target, to: &str, schema: &CollectionSchema) -> Result<i64> {
        let client = self.client;
        let db = &from.database;
        let pk = schema
            .fields
            .iter()
            .find(|f| f.is_primary_key)
            .ok_or_else(|| Error::Manifest {
                name: self.job.manifest.name.clone(),
                message: format!("the schema of {to} has no primary key"),
            })?;
        let pk_field = PkField {
            name: &pk.name,
            is_varchar: pk.data_type() == DataType::Varchar,
        };
        let outputs: Vec<String> = schema.fields.iter().map(|f| f.name.clone()).collect();
        let expected = client.count_rows(db, &from.collection).await?;
        let mut last = None;
        let mut copied = 0i64;
        loop {
            self.ctx.check_cancelled()?;
            let page = client
                .query_page(
                    db,
                    &from.collection,
                    &pk_field,
                    last.as_ref(),
                    &outputs,
                    PAGE,
                )
                .await?;
            let Some(max) = page.keys.iter().max().cloned() else {
                break;
            };
            if last.as_ref().is_some_and(|l| &max <= l) {
                return Err(Error::internal(
                    "paging through a collection did not advance",
                    format!("{db}.{}", from.collection),
                ));
            }
            last = Some(max);
            let n = page.keys.len();
            // Auto-id keys cannot be supplied on insert: Milvus assigns new ones.
            let drop = pk.auto_id.then_some(pk.name.as_str());
            let inserted = client.insert_page(db, to, page, drop).await?;
            if inserted != n as i64 {
                return Err(Error::internal(
                    "Milvus took fewer rows than were sent",
                    format!("{db}.{to}: inserted {inserted} of {n} rows"),
                ));
            }
            copied += inserted;
            if n < PAGE {
                break;
            }
        }
        if copied != expected {
            return Err(Error::ImportFailed {
                collection: format!("{db}.{to}"),
                segment: 0,
                message: format!(
                    "copied {copied} rows from the temporary twin {} but it holds {expected}; the copy is incomplete",
                    from.collection
                ),
            });
        }
        Ok(copied)
    }
}
