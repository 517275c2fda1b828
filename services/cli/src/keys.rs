//! `custos keys`: key files written 0600, never overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use custos_crypto::PartyKeys;
use serde_json::json;

use crate::output::Output;

#[derive(Subcommand, Debug)]
pub(crate) enum KeysCommand {
    /// Generates an Ed25519 identity and an X25519 encryption key into a new file (mode 0600).
    Generate {
        /// File to create; an existing file is never overwritten.
        #[arg(long, env = "CUSTOS_KEY_OUT")]
        out: PathBuf,
    },
    /// Shows the public keys of a key file.
    Show {
        /// The key file.
        #[arg(long, env = "CUSTOS_KEY")]
        key: PathBuf,
    },
}

/// Writes `keys` to a new file readable only by its owner.
pub(crate) fn write_key_file(path: &Path, keys: &PartyKeys) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} already exists; refusing to overwrite a key file",
                path.display()
            )
        } else {
            anyhow::anyhow!("cannot create {}: {e}", path.display())
        }
    })?;
    let text = serde_json::to_string_pretty(&keys.to_file())?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

pub(crate) fn run(cmd: KeysCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        KeysCommand::Generate { out: path } => {
            let keys = PartyKeys::generate(&mut rand::rngs::OsRng);
            write_key_file(&path, &keys)?;
            let public = keys.public().to_hex();
            let enc = hex::encode(keys.encryption_public());
            out.result(
                || {
                    format!(
                        "wrote {} (mode 0600)\nidentity:   {public}\nencryption: {enc}",
                        path.display()
                    )
                },
                json!({ "file": path, "public_key": public, "encryption_public_key": enc }),
            );
        }
        KeysCommand::Show { key } => {
            let keys = custos_node::load_keys(&key)?;
            let public = keys.public().to_hex();
            let enc = hex::encode(keys.encryption_public());
            out.result(
                || format!("identity:   {public}\nencryption: {enc}"),
                json!({ "public_key": public, "encryption_public_key": enc }),
            );
        }
    }
    Ok(())
}
