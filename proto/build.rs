//! Compiles every `.proto` of the project with `protox` (no `protoc` needed), then
//! generates prost messages, tonic clients/servers, and pbjson serde impls for
//! `milvault.v1` (the manifest is stored as proto3 JSON).

use std::path::{Path, PathBuf};

use prost_types::FileDescriptorSet;

fn protos_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            protos_under(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    let mut files = Vec::new();
    protos_under(&root.join("milvault"), &mut files)?;
    protos_under(&root.join("milvus"), &mut files)?;
    files.sort();
    let relative: Vec<PathBuf> = files
        .iter()
        .map(|f| f.strip_prefix(&root).map(Path::to_path_buf))
        .collect::<Result<_, _>>()?;
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }

    let fds: FileDescriptorSet = protox::compile(&relative, [&root])?;
    let encoded = prost::Message::encode_to_vec(&fds);
    std::fs::write(out_dir.join("milvault_descriptor.bin"), &encoded)?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // MilvusService has an RPC named `Connect`, which would clash with the generated
        // `connect` constructor: callers build a `Channel` and use `new` instead.
        .build_transport(false)
        // Default `Unimplemented` bodies: a test double of MilvusService implements only
        // the RPCs it needs (our own BackupService implements every method anyway).
        .generate_default_stubs(true)
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(fds)?;

    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .extern_path(".google.protobuf", "::pbjson_types")
        .build(&[".milvault.v1"])?;
    Ok(())
}
