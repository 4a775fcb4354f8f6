//! Generated code, in one place, for every crate that speaks protobuf.
//!
//! * [`milvault::v1`] — our public `BackupService` API and the backup manifest
//!   (`package milvault.v1`). Messages also implement serde with the canonical proto3
//!   JSON mapping (pbjson), because the manifest is stored as JSON.
//! * [`milvus`] — the subset of Milvus's own API we speak, with upstream package
//!   names and field numbers (`/milvus.proto.milvus.MilvusService/<Method>`).
//!
//! Protos are compiled by `protox` (pure Rust), so no `protoc` is needed to build.
#![allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]

pub mod milvault {
    pub mod v1 {
        tonic::include_proto!("milvault.v1");
        include!(concat!(env!("OUT_DIR"), "/milvault.v1.serde.rs"));

        /// Encoded file descriptor set, for gRPC server reflection.
        pub const FILE_DESCRIPTOR_SET: &[u8] =
            include_bytes!(concat!(env!("OUT_DIR"), "/milvault_descriptor.bin"));
    }
}

pub mod milvus {
    pub mod common {
        tonic::include_proto!("milvus.proto.common");
    }
    pub mod schema {
        tonic::include_proto!("milvus.proto.schema");
    }
    pub mod msg {
        tonic::include_proto!("milvus.proto.msg");
    }
    pub mod milvus {
        tonic::include_proto!("milvus.proto.milvus");
    }
}

impl milvault::v1::JobState {
    /// Whether a job in this state has ended (succeeded, failed or was cancelled).
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}
