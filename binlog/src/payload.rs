//! Parquet payloads (inside v1 events, or bare v2 files) read by ranged reads.
//!
//! The async Parquet reader fetches the footer, then one row group at a time, through a
//! window onto the file; so a payload is never held whole unless it is one row group.
//! The decoder is guarded against panics: a damaged payload must end as an error naming
//! the file and the payload's offset, whatever the Parquet code does with it.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use arrow_array::RecordBatch;
use futures::{FutureExt, StreamExt};
use parquet::arrow::async_reader::{AsyncFileReader, ParquetRecordBatchStream};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::metadata::ParquetMetaData;

use crate::error::{Error, Result};
use crate::source::{ByteSource, ParquetWindow, read_checked};

/// Default rows per decoded batch.
pub const DEFAULT_BATCH_ROWS: usize = 8192;

/// A stream of record batches from one Parquet payload.
pub(crate) struct PayloadStream {
    name: String,
    offset: u64,
    inner: ParquetRecordBatchStream<ParquetWindow>,
}

async fn check_magic(src: &dyn ByteSource, offset: u64, len: u64) -> Result<()> {
    if len < 12 {
        return Err(Error::corrupt(
            src.name(),
            offset,
            format!("Parquet payload of {len} bytes is too short"),
        ));
    }
    let head = read_checked(src, offset..offset + 4).await?;
    if &head[..] != b"PAR1" {
        return Err(Error::corrupt(
            src.name(),
            offset,
            "payload does not start with PAR1",
        ));
    }
    let tail = read_checked(src, offset + len - 4..offset + len).await?;
    if &tail[..] != b"PAR1" {
        return Err(Error::corrupt(
            src.name(),
            offset + len - 4,
            "payload does not end with PAR1",
        ));
    }
    Ok(())
}

fn panic_error(name: &str, offset: u64) -> Error {
    Error::corrupt(
        name,
        offset,
        "the Parquet decoder rejected the payload (panicked)",
    )
}

/// Footer of a payload (row counts, schema) without reading any data page.
pub(crate) async fn metadata(
    src: Arc<dyn ByteSource>,
    offset: u64,
    len: u64,
) -> Result<Arc<ParquetMetaData>> {
    check_magic(src.as_ref(), offset, len).await?;
    let name = src.name().to_owned();
    let mut window = ParquetWindow::new(src, offset, len);
    let fut = async move { window.get_metadata(None).await };
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => r.map_err(|e| Error::parquet(&name, offset, e)),
        Err(_) => Err(panic_error(&name, offset)),
    }
}

impl PayloadStream {
    /// Open the payload at `offset..offset+len` of `src`.
    pub(crate) async fn open(
        src: Arc<dyn ByteSource>,
        offset: u64,
        len: u64,
        batch_rows: usize,
    ) -> Result<PayloadStream> {
        Self::open_projected(src, offset, len, batch_rows, None).await
    }

    /// Open, decoding only the top-level columns `keep` picks from the file's schema.
    pub(crate) async fn open_projected(
        src: Arc<dyn ByteSource>,
        offset: u64,
        len: u64,
        batch_rows: usize,
        keep: Option<&(dyn Fn(&arrow_schema::Field) -> bool + Sync)>,
    ) -> Result<PayloadStream> {
        check_magic(src.as_ref(), offset, len).await?;
        let name = src.name().to_owned();
        let window = ParquetWindow::new(src, offset, len);
        let fut = async move {
            let b = ParquetRecordBatchStreamBuilder::new(window).await?;
            let b = match keep {
                Some(keep) => {
                    let roots: Vec<usize> = b
                        .schema()
                        .fields()
                        .iter()
                        .enumerate()
                        .filter(|(_, f)| keep(f))
                        .map(|(i, _)| i)
                        .collect();
                    let mask = ProjectionMask::roots(b.parquet_schema(), roots);
                    b.with_projection(mask)
                }
                None => b,
            };
            b.with_batch_size(batch_rows.max(1)).build()
        };
        let inner = match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(r) => r.map_err(|e| Error::parquet(&name, offset, e))?,
            Err(_) => return Err(panic_error(&name, offset)),
        };
        Ok(PayloadStream {
            name,
            offset,
            inner,
        })
    }

    /// The Arrow schema of the payload.
    pub(crate) fn schema(&self) -> arrow_schema::SchemaRef {
        self.inner.schema().clone()
    }

    /// Next batch, or `None` at the end of the payload.
    pub(crate) async fn next(&mut self) -> Result<Option<RecordBatch>> {
        let name = &self.name;
        let offset = self.offset;
        let fut = self.inner.next();
        match AssertUnwindSafe(fut).catch_unwind().await {
            Ok(Some(Ok(b))) => Ok(Some(b)),
            Ok(Some(Err(e))) => Err(Error::parquet(name, offset, e)),
            Ok(None) => Ok(None),
            Err(_) => Err(panic_error(name, offset)),
        }
    }
}
