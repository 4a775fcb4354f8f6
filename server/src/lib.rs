//! # milvault-server
//!
//! Backs up Milvus clusters into object storage and restores them, served over gRPC.
//!
//! ## Layout
//! - [`config`] — the one typed configuration struct (file < env < flags).
//! - [`error`] — the one error enum and its single mapping to gRPC statuses.
//! - [`storage`] — OpenDAL stores: streaming, hashed copies.
//! - [`repository`] — the backup layout and manifest contract.
//! - [`selection`] — backup names and collection filters.
//! - [`milvus`] — the Milvus client, version gates, GC pause, schema conversion.
//! - [`rbac`] — users, roles and grants out of and into Milvus.
//! - [`jobs`] — background jobs, their watch channels and journal.
//! - [`backup`], [`restore`], [`delete`], [`verify`] — the kinds of job; [`row_copy`] —
//!   query-and-insert restore for partition-key collections on Milvus < 2.4.
//! - [`api`] — the tonic edge: validate, start or read, map errors.
//! - [`app`] — shared state and name resolution; [`server`] — wiring and `run`.
//! - [`telemetry`] — logs and OpenTelemetry traces.

pub mod api;
pub mod app;
pub mod backup;
pub mod config;
pub mod delete;
pub mod error;
pub mod jobs;
pub mod milvus;
pub mod rbac;
pub mod repository;
pub mod restore;
pub mod row_copy;
pub mod selection;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod verify;

pub use config::Config;
pub use error::{Error, Result};
pub use server::{run, serve};
