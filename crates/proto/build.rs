//! Generates the wire types from `proto/custos` with a pure-Rust parser (no `protoc`).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "custos/ledger/v1/envelope.proto",
        "custos/ledger/v1/proof.proto",
        "custos/ledger/v1/transaction.proto",
        "custos/ledger/v1/ledger.proto",
        "custos/consent/v1/consent.proto",
        "custos/access/v1/access.proto",
        "custos/vault/v1/vault.proto",
        "custos/compute/v1/compute.proto",
        "custos/audit/v1/audit.proto",
    ];
    for file in &files {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let fds = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("custos_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .server_mod_attribute(".", "#[cfg(feature = \"rpc\")]")
        .client_mod_attribute(".", "#[cfg(feature = \"rpc\")]")
        // Undecodable requests are INVALID_ARGUMENT, not tonic-prost's INTERNAL.
        .codec_path("crate::codec::WireCodec")
        .compile_fds(fds)?;
    Ok(())
}
