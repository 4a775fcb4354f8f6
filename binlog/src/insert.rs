//! One v1 insert log (one field, one flush chunk) as a stream of Arrow arrays.
//!
//! Reads the descriptor, then each insert event's Parquet payload in batches; memory is
//! one payload row group (Milvus writes one per event). [`InsertLog::row_count`] reads
//! only event headers and Parquet footers.

use std::sync::Arc;

use arrow_array::ArrayRef;

use crate::convert::to_logical;
use crate::error::{Error, Result};
use crate::payload::{DEFAULT_BATCH_ROWS, PayloadStream, metadata};
use crate::source::ByteSource;
use crate::v1::{BinlogFile, Descriptor, Event, EventType};

/// A v1 insert log opened for reading.
pub struct InsertLog {
    file: BinlogFile,
    batch_rows: usize,
    current: Option<(PayloadStream, u64)>,
}

fn expect_insert(name: &str, e: &Event) -> Result<()> {
    if e.header.event_type != EventType::Insert {
        return Err(Error::corrupt(
            name,
            e.offset + 8,
            format!("{:?} event in an insert log", e.header.event_type),
        ));
    }
    Ok(())
}

impl InsertLog {
    /// Open the file and parse its descriptor.
    pub async fn open(src: Arc<dyn ByteSource>) -> Result<InsertLog> {
        Ok(InsertLog {
            file: BinlogFile::open(src).await?,
            batch_rows: DEFAULT_BATCH_ROWS,
            current: None,
        })
    }

    /// Rows per returned array (default 8192).
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// The descriptor: ids, payload type, extras.
    pub fn descriptor(&self) -> &Descriptor {
        self.file.descriptor()
    }

    /// The next chunk of the column in the form of [`crate::convert`], or `None` at the end.
    pub async fn next_array(&mut self) -> Result<Option<ArrayRef>> {
        loop {
            if let Some((stream, offset)) = self.current.as_mut() {
                if let Some(batch) = stream.next().await? {
                    let name = self.file.source().name().to_owned();
                    if batch.num_columns() != 1 {
                        return Err(Error::corrupt(
                            &name,
                            *offset,
                            format!(
                                "insert payload has {} columns, expected 1",
                                batch.num_columns()
                            ),
                        ));
                    }
                    let col = batch.column(0).clone();
                    let dt = self.file.descriptor().payload_type;
                    return to_logical(dt, col, &name, *offset).map(Some);
                }
                self.current = None;
            }
            let Some(event) = self.file.next_event().await? else {
                return Ok(None);
            };
            expect_insert(self.file.source().name(), &event)?;
            let stream = PayloadStream::open(
                self.file.source().clone(),
                event.payload_offset,
                event.payload_len,
                self.batch_rows,
            )
            .await?;
            self.current = Some((stream, event.payload_offset));
        }
    }

    /// Rows in the file, from event headers and Parquet footers only.
    pub async fn row_count(src: Arc<dyn ByteSource>) -> Result<u64> {
        let mut file = BinlogFile::open(src).await?;
        let mut rows = 0u64;
        while let Some(e) = file.next_event().await? {
            expect_insert(file.source().name(), &e)?;
            let md = metadata(file.source().clone(), e.payload_offset, e.payload_len).await?;
            let n = md.file_metadata().num_rows();
            rows += u64::try_from(n).map_err(|_| {
                Error::corrupt(
                    file.source().name(),
                    e.payload_offset,
                    format!("negative row count {n}"),
                )
            })?;
        }
        Ok(rows)
    }
}
