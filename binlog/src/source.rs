//! Where file bytes come from: an async ranged-read trait, so memory stays bounded.
//!
//! The server feeds bytes from object storage (OpenDAL); tests feed `Bytes` or local files.
//! Readers in this crate only ever ask for the ranges they decode next (a header, one event
//! payload, one Parquet footer or row group), never for a whole file at once, and every
//! read is checked against the declared length so a short object turns into a precise
//! "truncated at offset N" error instead of garbage.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::FutureExt;
use futures::future::BoxFuture;
use parquet::arrow::arrow_reader::ArrowReaderOptions;
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};

use crate::error::{Error, Result};

/// A file that can be read by byte ranges.
///
/// `name` is used in every error message; give the object key or path.
pub trait ByteSource: Send + Sync {
    /// The name errors use for this file.
    fn name(&self) -> &str;
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// True when the file has no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Read exactly `range` (callers never ask beyond `len()`).
    fn read(&self, range: Range<u64>) -> BoxFuture<'_, io::Result<Bytes>>;
}

/// In-memory bytes with a name.
#[derive(Debug, Clone)]
pub struct MemSource {
    name: String,
    data: Bytes,
}

impl MemSource {
    /// Wrap bytes (a `Vec<u8>`, `Bytes`, `&'static [u8]`, ...) under a name.
    pub fn new(name: impl Into<String>, data: impl Into<Bytes>) -> Self {
        MemSource {
            name: name.into(),
            data: data.into(),
        }
    }
}

impl ByteSource for MemSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u64 {
        self.data.len() as u64
    }
    fn read(&self, range: Range<u64>) -> BoxFuture<'_, io::Result<Bytes>> {
        let r = if range.start <= range.end && range.end <= self.data.len() as u64 {
            Ok(self.data.slice(range.start as usize..range.end as usize))
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("range {range:?} beyond {} bytes", self.data.len()),
            ))
        };
        futures::future::ready(r).boxed()
    }
}

/// A local file, read with positional reads on the blocking thread pool.
#[derive(Debug, Clone)]
pub struct FileSource {
    name: String,
    file: Arc<std::fs::File>,
    len: u64,
}

impl FileSource {
    /// Open `path`; its display form is the name used in errors.
    pub fn open(path: impl AsRef<Path>) -> io::Result<Self> {
        let path: PathBuf = path.as_ref().to_owned();
        let file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        Ok(FileSource {
            name: path.display().to_string(),
            file: Arc::new(file),
            len,
        })
    }
}

impl ByteSource for FileSource {
    fn name(&self) -> &str {
        &self.name
    }
    fn len(&self) -> u64 {
        self.len
    }
    fn read(&self, range: Range<u64>) -> BoxFuture<'_, io::Result<Bytes>> {
        let file = Arc::clone(&self.file);
        async move {
            let len = usize::try_from(range.end.saturating_sub(range.start))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            let read = move || -> io::Result<Bytes> {
                let mut buf = vec![0u8; len];
                read_exact_at(&file, &mut buf, range.start)?;
                Ok(Bytes::from(buf))
            };
            match tokio::runtime::Handle::try_current() {
                Ok(_) => tokio::task::spawn_blocking(read)
                    .await
                    .map_err(io::Error::other)?,
                Err(_) => read(),
            }
        }
        .boxed()
    }
}

#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(windows)]
fn read_exact_at(file: &std::fs::File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        let n = file.seek_read(buf, offset)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf = &mut buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// Read `range` of `src`, turning short objects and I/O failures into errors that name
/// the file and offset.
pub(crate) async fn read_checked(src: &dyn ByteSource, range: Range<u64>) -> Result<Bytes> {
    let len = src.len();
    if range.end > len {
        return Err(Error::corrupt(
            src.name(),
            len,
            format!(
                "truncated: need bytes {}..{} but the file ends at {len}",
                range.start, range.end
            ),
        ));
    }
    let want = range.end - range.start;
    let bytes = src.read(range.clone()).await.map_err(|source| Error::Io {
        file: src.name().to_owned(),
        offset: range.start,
        len: want,
        source,
    })?;
    if bytes.len() as u64 != want {
        return Err(Error::corrupt(
            src.name(),
            range.start + bytes.len() as u64,
            format!("short read: asked {want} bytes, got {}", bytes.len()),
        ));
    }
    Ok(bytes)
}

/// A window `[start, start+len)` of a source, seen as a Parquet file by the async reader.
///
/// v1 event payloads are complete Parquet files embedded in the envelope; storage-v2 files
/// are bare Parquet (window = whole file). Either way the reader fetches the footer and
/// then one row group at a time through here.
pub(crate) struct ParquetWindow {
    src: Arc<dyn ByteSource>,
    start: u64,
    len: u64,
}

impl ParquetWindow {
    pub(crate) fn new(src: Arc<dyn ByteSource>, start: u64, len: u64) -> Self {
        ParquetWindow { src, start, len }
    }
}

impl AsyncFileReader for ParquetWindow {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            if range.end > self.len || range.start > range.end {
                return Err(parquet::errors::ParquetError::EOF(format!(
                    "range {range:?} outside the {}-byte payload",
                    self.len
                )));
            }
            let abs = self.start + range.start..self.start + range.end;
            read_checked(self.src.as_ref(), abs)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let len = self.len;
            let reader = ParquetMetaDataReader::new().with_arrow_reader_options(options);
            let md = reader.load_and_finish(self, len).await?;
            Ok(Arc::new(md))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mem_and_file_sources_read_ranges() {
        let data: Vec<u8> = (0..=255u8).collect();
        let mem = MemSource::new("mem", data.clone());
        assert_eq!(
            &read_checked(&mem, 10..20).await.unwrap()[..],
            &data[10..20]
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, &data).unwrap();
        let f = FileSource::open(&p).unwrap();
        assert_eq!(f.len(), 256);
        assert_eq!(&read_checked(&f, 250..256).await.unwrap()[..], &data[250..]);
        let err = read_checked(&f, 250..257).await.unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        assert!(err.contains(&p.display().to_string()), "{err}");
    }
}
