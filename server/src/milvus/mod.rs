//! Everything that speaks to Milvus: the gRPC client and its domain methods, version
//! feature gates, the management HTTP (GC pause) and schema conversions. No Milvus
//! wire type leaves this module: callers use the types in [`types`] and the manifest's
//! own types.

mod client;
pub(crate) mod columns;
mod convert;
mod data;
pub(crate) mod features;
pub(crate) mod management;
mod meta;
mod rbac;
pub(crate) mod rest;
pub(crate) mod schema_rules;
mod status;
pub(crate) mod types;

pub(crate) use client::MilvusClient;
pub(crate) use data::PkField;
pub(crate) use features::GcPause;
