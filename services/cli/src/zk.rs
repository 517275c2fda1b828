//! `custos zk`: the predicate circuit's keys as identified artifacts, and the registered
//! verifying key in snarkjs' format for anyone to check a proof with.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use custos_circuits::{KeyId, VerifyingKeyArtifact, snarkjs};
use custos_client::Client;
use custos_vault_service::predicate::CIRCUIT;
use serde_json::json;

use crate::output::Output;

/// Zero-knowledge key commands.
#[derive(Subcommand, Debug)]
pub(crate) enum ZkCommand {
    /// Runs the Groth16 setup of the predicate circuit: writes `predicate.pk` (for vaults) and
    /// `predicate.vk` (for partners) and prints the verifying key id to register through
    /// governance. Whoever runs it could forge proofs; a consortium runs a ceremony instead.
    Setup {
        /// Folder to write the two artifacts into (created; existing files are not replaced).
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes the verifying key governance registered for the predicate circuit as snarkjs
    /// `verification_key.json`, so that `snarkjs groth16 verify verification_key.json
    /// public.json proof.json` checks the files `custos vault prove --out` writes. The artifact
    /// must hash to the key id registered on the ledger.
    ExportVk {
        /// The verifying key artifact (`custos zk setup`).
        #[arg(long, env = "CUSTOS_VERIFYING_KEY")]
        verifying_key: PathBuf,
        /// The JSON file to write (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// gRPC endpoint of a node (to read the registered key id).
        #[arg(long, env = "CUSTOS_NODE", default_value = "http://127.0.0.1:7420")]
        node: String,
    },
}

/// The verifying key governance registered for the predicate circuit, loaded from `path` (which
/// must hash to it), and its id.
pub(crate) async fn registered_verifying_key(
    node: &Client,
    path: &Path,
) -> anyhow::Result<(KeyId, VerifyingKeyArtifact)> {
    let registered = node
        .consent()
        .get_verifying_key(custos_proto::consent::v1::GetVerifyingKeyRequest {
            circuit: CIRCUIT.into(),
        })
        .await
        .map_err(|s| anyhow::anyhow!("the ledger: {}", s.message()))?
        .into_inner()
        .key_hash;
    let registered: [u8; 32] = registered
        .try_into()
        .map_err(|_| anyhow::anyhow!("the ledger answered a malformed key hash"))?;
    let id = KeyId(registered);
    let vk = VerifyingKeyArtifact::load_file(path, &id)
        .map_err(|e| anyhow::anyhow!("--verifying-key: {e}"))?;
    Ok((id, vk))
}

/// Writes `value` as pretty JSON to a new file (never replacing one).
pub(crate) fn write_new_json(path: &Path, value: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                anyhow::anyhow!(
                    "{} already exists; refusing to overwrite it",
                    path.display()
                )
            } else {
                anyhow::anyhow!("cannot create {}: {e}", path.display())
            }
        })?;
    let text = serde_json::to_string_pretty(value)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

pub(crate) async fn run(cmd: ZkCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        ZkCommand::Setup { out: dir } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let (pk_path, vk_path) = (dir.join("predicate.pk"), dir.join("predicate.vk"));
            for path in [&pk_path, &vk_path] {
                anyhow::ensure!(
                    !path.exists(),
                    "{} already exists; refusing to overwrite it",
                    path.display()
                );
            }
            let (pk, vk) = custos_circuits::setup(&mut rand::rngs::OsRng)?;
            pk.save(&pk_path)?;
            vk.save(&vk_path)?;
            let id = vk.id().to_hex();
            out.result(
                || {
                    format!(
                        "wrote {} (proving key, for vaults) and {} (verifying key, for partners)\n\
                         verifying key id {id}\nregister it: custos governance propose \
                         register-verifying-key --circuit {} --hash {id} …",
                        pk_path.display(),
                        vk_path.display(),
                        CIRCUIT
                    )
                },
                json!({
                    "proving_key": pk_path,
                    "verifying_key": vk_path,
                    "verifying_key_id": id,
                    "circuit": CIRCUIT,
                }),
            );
        }
        ZkCommand::ExportVk {
            verifying_key,
            out: path,
            node,
        } => {
            let node = Client::connect(&node).await?;
            let (id, vk) = registered_verifying_key(&node, &verifying_key).await?;
            write_new_json(&path, &snarkjs::verification_key_json(&vk))?;
            out.result(
                || {
                    format!(
                        "wrote {} (snarkjs Groth16 verifying key of {CIRCUIT}, registered key \
                         id {})\ncheck a proof: snarkjs groth16 verify {} public.json proof.json",
                        path.display(),
                        id.to_hex(),
                        path.display()
                    )
                },
                json!({
                    "file": path,
                    "verifying_key_id": id.to_hex(),
                    "circuit": CIRCUIT,
                }),
            );
        }
    }
    Ok(())
}
