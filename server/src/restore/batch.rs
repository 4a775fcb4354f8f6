//! How a collection's data segments are grouped into imports.
//!
//! One import (a Milvus 2.2/2.3 task, a 2.4+ job) carries the segments of one
//! partition and one storage version, staged side by side under one group directory
//! (`staging.rs`). Fewer, larger imports are faster: 2.2/2.3 run one task at a time per
//! DataNode and spend seconds per task beyond its data. Batches are bounded by the
//! target's own limit (`Features::max_segments_per_import`) and the configured segment
//! count and bytes (2.2/2.3 fail a task still running 900 s after it started). The
//! first batch is small so the first import starts soon; each next one may carry four
//! times the previous, so later batches are staged while earlier ones import.

/// The bounds of one collection's batches.
#[derive(Clone, Copy, Debug)]
pub(super) struct BatchLimits {
    /// Segments per import at most.
    pub(super) max_segments: usize,
    /// Bytes of the first import at most.
    pub(super) first_bytes: u64,
    /// Bytes of any import at most (a larger single segment goes alone).
    pub(super) max_bytes: u64,
}

/// One segment as the grouping sees it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Item {
    /// Partition it is imported into.
    pub(super) partition_id: i64,
    /// Its storage version (an import option on 2.6, so one per import).
    pub(super) storage_version: i64,
    /// Bytes staged for it.
    pub(super) bytes: u64,
}

/// Groups `items` into imports; returns the indices of each batch, items in their
/// original order within a batch, partitions in order of first appearance.
pub(super) fn group(items: &[Item], limits: BatchLimits) -> Vec<Vec<usize>> {
    let max_segments = limits.max_segments.max(1);
    let mut keys: Vec<(i64, i64)> = Vec::new();
    for it in items {
        let key = (it.partition_id, it.storage_version);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut cap = limits.first_bytes.min(limits.max_bytes).max(1);
    let mut out = Vec::new();
    for key in keys {
        let mut batch: Vec<usize> = Vec::new();
        let mut bytes = 0u64;
        for (i, it) in items.iter().enumerate() {
            if (it.partition_id, it.storage_version) != key {
                continue;
            }
            let full = batch.len() >= max_segments || bytes.saturating_add(it.bytes) > cap;
            if !batch.is_empty() && full {
                out.push(std::mem::take(&mut batch));
                bytes = 0;
                cap = cap.saturating_mul(4).min(limits.max_bytes.max(1));
            }
            batch.push(i);
            bytes = bytes.saturating_add(it.bytes);
        }
        if !batch.is_empty() {
            out.push(batch);
            cap = cap.saturating_mul(4).min(limits.max_bytes.max(1));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(partition_id: i64, bytes: u64) -> Item {
        Item {
            partition_id,
            storage_version: 0,
            bytes,
        }
    }

    #[test]
    fn one_batch_per_partition_when_small() {
        let items = [item(1, 10), item(2, 10), item(1, 10), item(2, 10)];
        let limits = BatchLimits {
            max_segments: 1024,
            first_bytes: 1000,
            max_bytes: 1000,
        };
        assert_eq!(group(&items, limits), vec![vec![0, 2], vec![1, 3]]);
    }

    #[test]
    fn batches_grow_from_the_first_and_respect_every_bound() {
        let items: Vec<Item> = (0..12).map(|_| item(1, 10)).collect();
        let limits = BatchLimits {
            max_segments: 100,
            first_bytes: 10,
            max_bytes: 60,
        };
        // 10 bytes, then 40, then 60 (capped), then the rest.
        let sizes: Vec<usize> = group(&items, limits).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 4, 6, 1]);
        let by_count = BatchLimits {
            max_segments: 5,
            first_bytes: 1 << 30,
            max_bytes: 1 << 30,
        };
        let sizes: Vec<usize> = group(&items, by_count).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![5, 5, 2]);
        // A segment larger than any batch goes alone; nothing is lost or repeated.
        let big = [item(1, 5), item(1, 500), item(1, 5)];
        let got = group(
            &big,
            BatchLimits {
                max_segments: 10,
                first_bytes: 100,
                max_bytes: 100,
            },
        );
        assert_eq!(got, vec![vec![0], vec![1], vec![2]]);
    }

    #[test]
    fn storage_versions_never_share_an_import() {
        let mut v2 = item(1, 1);
        v2.storage_version = 2;
        let items = [item(1, 1), v2, item(1, 1)];
        let limits = BatchLimits {
            max_segments: 10,
            first_bytes: 100,
            max_bytes: 100,
        };
        assert_eq!(group(&items, limits), vec![vec![0, 2], vec![1]]);
    }
}
