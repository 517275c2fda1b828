//! `custos zk`: the predicate circuit's keys as identified artifacts.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
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
}

pub(crate) fn run(cmd: ZkCommand, out: &Output) -> anyhow::Result<()> {
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
                        custos_vault_service::predicate::CIRCUIT
                    )
                },
                json!({
                    "proving_key": pk_path,
                    "verifying_key": vk_path,
                    "verifying_key_id": id,
                    "circuit": custos_vault_service::predicate::CIRCUIT,
                }),
            );
        }
    }
    Ok(())
}
