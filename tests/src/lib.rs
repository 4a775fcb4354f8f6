//! Test kit for Milvault's end-to-end tests and demo: talks to the real Milvus
//! instances `scripts/services.sh` starts, seeds fixture collections, runs an
//! in-process milvault-server, and drives the real CLI.

pub mod compaction;
pub mod complete;
pub mod fake_milvus;
pub mod fault_proxy;
pub mod fixtures;
pub mod harness;
pub mod logs;
pub mod milvus_data;
pub mod pki;
