//! Object storage through OpenDAL: one [`Store`] per configured storage (a cluster's
//! binlog storage or a backup repository), built from a scheme and its options, so
//! every OpenDAL backend works by configuration alone.
//!
//! `Store` adds what every caller needs: a name for error messages, errors with the
//! operation and path, and streaming copy with SHA-256 computed as bytes pass (memory
//! stays bounded by one chunk per copy in flight, whatever the file size).
//!
//! Object stores fail a share of requests in normal operation (503 "slow down",
//! connections reset, stalls), so every request has a timeout and is retried by itself
//! ([`Resilience`], from `[timeouts]`): OpenDAL's `TimeoutLayer` under its `RetryLayer`,
//! so each attempt is timed on its own. A read that breaks resumes at the byte it
//! reached and a multipart upload resends only the failed part: a fault costs one
//! request, not the file. Retries start fast and are capped, because object-store
//! faults are short; a store that stays down still fails the job within about
//! `storage_retries` × `storage_retry_max_ms`. Writes to local folders are not
//! retried: a local write error repeats (disk full) and a repeated partial write
//! would duplicate bytes. A copy that fails removes what it wrote (and aborts a
//! multipart upload), and a full disk or quota is its own error (`STORAGE_FULL`).

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use milvault_binlog::ByteSource;
use opendal::layers::{RetryEvent, RetryInterceptor, RetryLayer, TimeoutLayer};
use opendal::{ErrorKind, Operator};
use sha2::{Digest, Sha256};

use crate::config::StorageConfig;
use crate::error::{Error, Result, StorageError};

/// A named OpenDAL operator.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    name: String,
    /// Every request timed and retried.
    op: Operator,
    /// For writers: `op`, or without retries where a repeated write is unsafe.
    writer_op: Operator,
    config: StorageConfig,
}

/// How storage requests are timed and retried (`[timeouts]` `storage_*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Resilience {
    /// Limit of one request that moves no data (stat, create a folder, rename).
    pub(crate) op_timeout: Duration,
    /// Limit of one transfer step (open, one chunk, one listing page, close).
    pub(crate) io_timeout: Duration,
    /// Retries of one failed request.
    pub(crate) retries: usize,
    /// Pause before the first retry; doubles per retry, with jitter.
    pub(crate) first_retry: Duration,
    /// Longest pause between two retries.
    pub(crate) max_retry: Duration,
}

impl Default for Resilience {
    fn default() -> Self {
        crate::config::TimeoutsConfig::default().storage()
    }
}

/// Schemes whose writer must not be retried: a failed local write (disk full, I/O
/// error) does not heal by repeating, and a write repeated after a partial one would
/// append its bytes twice.
const UNRETRIED_WRITES: [&str; 1] = ["fs"];

/// Logs each retry once, with the store's name (OpenDAL's default logs through `log`).
struct LogRetry {
    store: String,
}

impl RetryInterceptor for LogRetry {
    fn intercept(&self, event: RetryEvent<'_>) {
        tracing::debug!(
            store = %self.store,
            op = ?event.op,
            attempt = event.attempt,
            after_ms = event.retry_after.as_millis() as u64,
            error = %event.err,
            "retrying a storage request"
        );
    }
}

/// One object found by a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Object {
    /// Key relative to the store's root.
    pub(crate) key: String,
    /// Size in bytes.
    pub(crate) size: u64,
    /// What the store says identifies these bytes without reading them: its ETag, or
    /// `mtime:<time>` where it keeps no checksum (local folders); empty when neither.
    pub(crate) fingerprint: String,
}

/// What a copy wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Copied {
    /// Bytes copied.
    pub(crate) size: u64,
    /// Lower-case hex SHA-256 of the bytes.
    pub(crate) sha256: String,
}

impl Store {
    /// Builds the operator for `config` with the default timeouts and retries; `name`
    /// appears in error messages. For tests: the server builds its stores with
    /// [`Store::open`] and the configured `[timeouts]`.
    #[cfg(test)]
    pub(crate) fn new(name: impl Into<String>, config: &StorageConfig) -> Result<Self> {
        Self::open(name, config, &Resilience::default())
    }

    /// Builds the operator for `config`, every request timed and retried as
    /// `resilience` says; `name` appears in error messages.
    pub(crate) fn open(
        name: impl Into<String>,
        config: &StorageConfig,
        resilience: &Resilience,
    ) -> Result<Self> {
        opendal::init_default_registry();
        let name = name.into();
        let options: Vec<(String, String)> = config
            .options
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // Timeout under retry: each attempt gets its own deadline.
        let timed = Operator::via_iter(config.scheme.as_str(), options)
            .map_err(|e| Error::StorageConfig {
                owner: name.clone(),
                message: e.to_string(),
            })?
            .layer(
                TimeoutLayer::new()
                    .with_timeout(resilience.op_timeout)
                    .with_io_timeout(resilience.io_timeout),
            );
        let op = timed.clone().layer(
            RetryLayer::new()
                .with_min_delay(resilience.first_retry)
                .with_max_delay(resilience.max_retry)
                .with_factor(2.0)
                .with_jitter()
                .with_max_times(resilience.retries)
                .with_notify(LogRetry {
                    store: name.clone(),
                }),
        );
        let writer_op = if UNRETRIED_WRITES.contains(&config.scheme.as_str()) {
            timed
        } else {
            op.clone()
        };
        Ok(Self {
            name,
            op,
            writer_op,
            config: config.clone(),
        })
    }

    /// The name used in messages.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The configuration this store was built from.
    pub(crate) fn config(&self) -> &StorageConfig {
        &self.config
    }

    fn err(&self, operation: &'static str, path: &str, e: opendal::Error) -> Error {
        StorageError::new(&self.name, operation, path, e).into()
    }

    /// Lists every object under `prefix` (which should end with `/`), recursively,
    /// sorted by key. Directories are not returned.
    pub(crate) async fn list_recursive(&self, prefix: &str) -> Result<Vec<Object>> {
        let mut lister = match self.op.lister_with(prefix).recursive(true).await {
            Ok(l) => l,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err("list", prefix, e)),
        };
        let mut out = Vec::new();
        while let Some(entry) = lister
            .try_next()
            .await
            .map_err(|e| self.err("list", prefix, e))?
        {
            if entry.metadata().is_dir() || entry.path().ends_with('/') {
                continue;
            }
            let listed = entry.metadata();
            let (size, fingerprint) =
                if listed.content_length() == 0 || fingerprint(listed).is_empty() {
                    // Some stores (local folders) list names only.
                    let meta = self
                        .op
                        .stat(entry.path())
                        .await
                        .map_err(|e| self.err("stat", entry.path(), e))?;
                    (meta.content_length(), fingerprint(&meta))
                } else {
                    (listed.content_length(), fingerprint(listed))
                };
            out.push(Object {
                key: entry.path().to_owned(),
                size,
                fingerprint,
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Immediate children names under `prefix` (directories end with `/`).
    pub(crate) async fn list_children(&self, prefix: &str) -> Result<Vec<String>> {
        let entries = match self.op.list(prefix).await {
            Ok(e) => e,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(self.err("list", prefix, e)),
        };
        let mut names: Vec<String> = entries
            .into_iter()
            .filter(|e| e.path() != prefix)
            .map(|e| e.path().to_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Whether the object exists.
    #[cfg(test)]
    pub(crate) async fn exists(&self, key: &str) -> Result<bool> {
        self.op
            .exists(key)
            .await
            .map_err(|e| self.err("stat", key, e))
    }

    /// Reads a small object whole (manifests, markers).
    pub(crate) async fn read_small(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self.op.read(key).await {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.err("read", key, e)),
        }
    }

    /// Writes a small object whole.
    pub(crate) async fn write_small(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        self.writer_op
            .write(key, bytes)
            .await
            .map(|_| ())
            .map_err(|e| self.err("write", key, e))
    }

    /// Deletes one object (missing is fine).
    pub(crate) async fn delete(&self, key: &str) -> Result<()> {
        self.op
            .delete(key)
            .await
            .map_err(|e| self.err("delete", key, e))
    }

    /// Deletes everything under `prefix`.
    pub(crate) async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        match self.op.delete_with(prefix).recursive(true).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.err("delete", prefix, e)),
        }
    }

    /// Streams `src_key` of `self` into `dst_key` of `dst`, hashing as bytes pass.
    /// When `expect` is given, the bytes must match it, or the destination is removed
    /// and [`Error::Corrupt`] returned. A copy that fails leaves nothing at `dst_key`
    /// (a multipart upload is aborted, what was written is deleted).
    pub(crate) async fn copy_to(
        &self,
        src_key: &str,
        dst: &Store,
        dst_key: &str,
        expect: Option<&Copied>,
    ) -> Result<Copied> {
        let reader = self
            .op
            .reader(src_key)
            .await
            .map_err(|e| self.err("read", src_key, e))?;
        let mut stream = reader
            .into_bytes_stream(..)
            .await
            .map_err(|e| self.err("read", src_key, e))?;
        let mut writer = dst
            .writer_op
            .writer(dst_key)
            .await
            .map_err(|e| dst.err("write", dst_key, e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let pumped: Result<()> = async {
            while let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|e| self.err("read", src_key, from_io(e)))?
            {
                hasher.update(&chunk);
                size += chunk.len() as u64;
                writer
                    .write(chunk)
                    .await
                    .map_err(|e| dst.err("write", dst_key, e))?;
            }
            writer
                .close()
                .await
                .map(|_| ())
                .map_err(|e| dst.err("write", dst_key, e))
        }
        .await;
        if let Err(e) = pumped {
            // Best effort: the error that stopped the copy is what the caller needs.
            let _ = writer.abort().await;
            if let Err(d) = dst.delete(dst_key).await {
                tracing::warn!(store = %dst.name, key = dst_key, error = %d, "could not remove a partly written file");
            }
            return Err(e);
        }
        let copied = Copied {
            size,
            sha256: hex::encode(hasher.finalize()),
        };
        if let Some(want) = expect.filter(|want| *want != &copied) {
            // Never leave bytes that do not match the manifest where Milvus could read them.
            let _ = dst.delete(dst_key).await;
            return Err(Error::Corrupt {
                path: src_key.to_owned(),
                message: format!(
                    "expected {} bytes with SHA-256 {}, read {} bytes with SHA-256 {}",
                    want.size, want.sha256, copied.size, copied.sha256
                ),
            });
        }
        Ok(copied)
    }

    /// The object `key` (of `len` bytes) as a ranged-read source for the segment-file
    /// reader. Read errors carry the OpenDAL error inside the I/O error, so its kind
    /// survives (see [`crate::rows`]).
    pub(crate) fn byte_source(&self, key: &str, len: u64) -> Arc<dyn ByteSource> {
        Arc::new(StoreFile {
            op: self.op.clone(),
            key: key.to_owned(),
            len,
            whole: (self.config.scheme != "fs" && len <= WHOLE_READ_MAX)
                .then(tokio::sync::OnceCell::new),
        })
    }

    /// A writer for `key` that Parquet's async writer can drive.
    pub(crate) async fn parquet_writer(
        &self,
        key: &str,
    ) -> Result<tokio_util::compat::Compat<opendal::FuturesAsyncWriter>> {
        use tokio_util::compat::FuturesAsyncWriteCompatExt;
        let w = self
            .writer_op
            .writer(key)
            .await
            .map_err(|e| self.err("write", key, e))?;
        Ok(w.into_futures_async_write().compat_write())
    }

    /// Reads an object through and returns its size and SHA-256, keeping no bytes.
    pub(crate) async fn hash(&self, key: &str) -> Result<Copied> {
        let reader = self
            .op
            .reader(key)
            .await
            .map_err(|e| self.err("read", key, e))?;
        let mut stream = reader
            .into_bytes_stream(..)
            .await
            .map_err(|e| self.err("read", key, e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| self.err("read", key, from_io(e)))?
        {
            hasher.update(&chunk);
            size += chunk.len() as u64;
        }
        Ok(Copied {
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

/// Objects up to this size on object stores are read whole by the segment-file
/// reader: decoding one takes several ranged reads (header, Parquet footer, columns),
/// each a request with its latency; one GET of a small file is cheaper (measured on
/// an S3 repository: counting a 1 GiB backup's rows took 45 s by ranges).
const WHOLE_READ_MAX: u64 = 8 * 1024 * 1024;

/// One object read by byte ranges (or read whole once, when small and remote).
struct StoreFile {
    op: Operator,
    key: String,
    len: u64,
    whole: Option<tokio::sync::OnceCell<Bytes>>,
}

impl ByteSource for StoreFile {
    fn name(&self) -> &str {
        &self.key
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn read(&self, range: Range<u64>) -> BoxFuture<'_, std::io::Result<Bytes>> {
        Box::pin(async move {
            if let Some(cell) = &self.whole {
                let all = cell
                    .get_or_try_init(|| async {
                        self.op
                            .read(&self.key)
                            .await
                            .map(|b| b.to_bytes())
                            .map_err(std::io::Error::other)
                    })
                    .await?;
                let (start, end) = (range.start as usize, range.end as usize);
                return all
                    .get(start..end)
                    .map(|b| all.slice_ref(b))
                    .ok_or_else(|| {
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("{}: bytes {start}..{end} of {}", self.key, all.len()),
                        )
                    });
            }
            self.op
                .read_with(&self.key)
                .range(range)
                .await
                .map(|b| b.to_bytes())
                .map_err(std::io::Error::other)
        })
    }
}

/// The OpenDAL error inside an I/O error from a byte stream (so its kind and
/// retry status are kept), or an `Unexpected` one wrapping it.
/// A store's identity of an object's bytes: its ETag, else its modification time.
fn fingerprint(meta: &opendal::Metadata) -> String {
    if let Some(etag) = meta.etag() {
        return etag.trim_matches('"').to_owned();
    }
    meta.last_modified()
        .map(|t| format!("mtime:{t}"))
        .unwrap_or_default()
}

fn from_io(e: std::io::Error) -> opendal::Error {
    match e.into_inner() {
        Some(inner) => match inner.downcast::<opendal::Error>() {
            Ok(dal) => *dal,
            Err(other) => opendal::Error::new(ErrorKind::Unexpected, "read stream failed")
                .set_source(std::io::Error::other(other)),
        },
        None => opendal::Error::new(ErrorKind::Unexpected, "read stream failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn fs_store(dir: &std::path::Path) -> Store {
        let mut options = BTreeMap::new();
        options.insert("root".to_owned(), dir.display().to_string());
        Store::new(
            "t",
            &StorageConfig {
                scheme: "fs".into(),
                options,
            },
        )
        .expect("store")
    }

    #[tokio::test]
    async fn copy_hashes_and_lists() {
        let a = tempfile::tempdir().expect("tmp");
        let b = tempfile::tempdir().expect("tmp");
        let src = fs_store(a.path());
        let dst = fs_store(b.path());
        src.write_small("x/1/f", b"hello".to_vec())
            .await
            .expect("write");
        src.write_small("x/12/f", b"other".to_vec())
            .await
            .expect("write");
        let listed = src.list_recursive("x/1/").await.expect("list");
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!((listed[0].key.as_str(), listed[0].size), ("x/1/f", 5));
        assert!(
            listed[0].fingerprint.starts_with("mtime:"),
            "a local file is fingerprinted by its modification time: {listed:?}"
        );
        let c = src.copy_to("x/1/f", &dst, "y/f", None).await.expect("copy");
        assert_eq!(c.size, 5);
        assert_eq!(
            c.sha256,
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(
            dst.read_small("y/f").await.expect("read"),
            Some(b"hello".to_vec())
        );
        let wrong = Copied {
            size: 5,
            sha256: "00".into(),
        };
        let err = src
            .copy_to("x/1/f", &dst, "y/g", Some(&wrong))
            .await
            .expect_err("corrupt");
        assert!(matches!(err, Error::Corrupt { .. }));
        assert!(!dst.exists("y/g").await.expect("stat"));
        assert!(
            src.list_recursive("nothing/")
                .await
                .expect("list")
                .is_empty()
        );
    }
}
