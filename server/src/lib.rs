//! # milvault-server
//!
//! Backs up Milvus clusters into object storage and restores them, served over gRPC.
//!
//! ## Layout
//! - `config` — the one typed configuration struct (file < env < flags).
//! - `error` — the one error enum, its stable reasons, and its single mapping to gRPC.
//! - `storage` — OpenDAL stores: streaming, hashed copies.
//! - `repository` — the backup layout and manifest contract.
//! - `selection` — backup names and collection filters.
//! - `poll` — the one way to wait for Milvus's background work.
//! - `milvus` — the Milvus client (typed domain methods), version gates, GC pause.
//! - `rbac` — users, roles and grants out of and into Milvus.
//! - `rows` — what a backup holds, row by row (exact counts, deep verify, row insert,
//!   Parquet export), read with `milvault-binlog`.
//! - `jobs` — background jobs, their typed reporting context, locks and journal.
//! - `backup`, `restore` (a folder: plan, collection, import, rows, staging), `delete`,
//!   `verify`, `export` — the kinds of job; each prepares its submission from its request.
//! - `api` — the tonic edge: thin handlers; `app` — shared state and name resolution;
//!   `server` — wiring and `run`.
//! - `telemetry` — logs and OpenTelemetry traces.
//!
//! The public surface is what the binary and the tests need: [`Config`], [`App`],
//! [`run`], [`serve`], [`telemetry`], and the error types.

mod api;
pub mod app;
mod backup;
mod catalog;
mod cleanup;
pub mod config;
mod delete;
pub mod error;
mod export;
mod incremental;
mod jobs;
mod milvus;
mod page;
mod poll;
mod prune;
mod rbac;
mod repository;
mod restore;
mod rows;
mod s3copy;
mod selection;
mod server;
mod storage;
pub mod telemetry;
mod verify;

pub use app::App;
pub use config::Config;
pub use error::{Error, Result};
pub use server::{run, serve};
