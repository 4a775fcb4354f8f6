//! Everything that speaks to Milvus: the gRPC client, version feature gates, the
//! management HTTP (GC pause) and schema conversions. Nothing else in the server
//! touches Milvus's wire types directly except the backup and restore plans.

pub mod client;
pub mod convert;
pub mod features;
pub mod management;

pub use client::MilvusClient;
pub use features::{Features, GcPause, Version};
