//! Invariant I9 at the vault: an erasure finalized on the ledger — by the patient or by the
//! custodian on legal grounds, through this vault or straight to a node — destroys the record
//! here too. The vault follows the chain's blocks and, for each `EraseRecord` of a record it
//! holds, checks the transaction's inclusion under a certified header itself (the node's stream
//! is only a hint: a node cannot make the vault erase what the ledger did not erase) and then
//! crypto-shreds the record. It reads the blocks as the custodian (a signed read): the node serves
//! it the entries that concern the records it holds, erasures among them.

use crate::aggregate::Aggregates;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use custos_client::Client;
use custos_client::verify::verify_proven_entry;
use custos_crypto::PartyKeys;
use custos_ledger::ValidatorSet;
use custos_proto::access::v1 as access_pb;
use custos_proto::ledger::v1 as ledger_pb;
use custos_types::{EntryKind, Genesis, LedgerEntry, TxKind};
use custos_vault::{Vault, VaultError, VaultStore};
use tokio::sync::watch;
use tokio_stream::StreamExt;
use tracing::{info, warn};

/// Name of the file, in the vault's folder, holding the next height to read.
pub const CURSOR_FILE: &str = "erasure-follow.height";

/// How long to wait before reconnecting after the node failed.
const RETRY: Duration = Duration::from_millis(500);

/// The node a vault follows and the custodian keys it reads the blocks with.
pub struct Source {
    /// gRPC endpoint of the node.
    pub node: String,
    /// The custodian's keys.
    pub keys: PartyKeys,
}

/// Follows the chain from the stored cursor until `stop` turns true.
pub async fn follow_erasures<S: VaultStore>(
    source: Source,
    vault: Arc<Vault<S>>,
    aggregates: Option<Arc<Aggregates>>,
    genesis: Genesis,
    trusted: ValidatorSet,
    data_dir: PathBuf,
    mut stop: watch::Receiver<bool>,
) {
    let cursor = data_dir.join(CURSOR_FILE);
    loop {
        if *stop.borrow() {
            return;
        }
        let run = follow_once(
            &source.node,
            &source.keys,
            &vault,
            aggregates.as_deref(),
            &genesis,
            &trusted,
            &cursor,
        );
        tokio::select! {
            result = run => {
                if let Err(e) = result {
                    warn!(target: "custos::vault", error = %e, "following the chain failed; retrying");
                }
            }
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn read_cursor(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1)
}

fn write_cursor(path: &Path, height: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, height.to_string())?;
    std::fs::rename(tmp, path)
}

async fn follow_once<S: VaultStore>(
    node: &str,
    keys: &PartyKeys,
    vault: &Vault<S>,
    aggregates: Option<&Aggregates>,
    genesis: &Genesis,
    trusted: &ValidatorSet,
    cursor: &Path,
) -> Result<(), String> {
    let client = Client::connect(node).await.map_err(|e| e.to_string())?;
    let from = read_cursor(cursor);
    let mut blocks = client
        .stream_blocks(keys, from)
        .await
        .map_err(|e| e.to_string())?;
    while let Some(block) = blocks.next().await {
        let block = block.map_err(|e| e.to_string())?;
        let Some(signed) = block.signed_header.clone() else {
            return Err("a streamed block has no header".into());
        };
        let (header, _) =
            custos_client::verify::parse_signed_header(&signed).map_err(|e| e.to_string())?;
        for (offset, bytes) in block.entries.iter().enumerate() {
            // Withheld entries (empty) concern other parties; they decode as nothing.
            let Ok(entry) = LedgerEntry::from_bytes(bytes) else {
                continue;
            };
            let EntryKind::Transaction(tx) = &entry.kind else {
                continue;
            };
            let TxKind::EraseRecord(erase) = &tx.body().kind else {
                continue;
            };
            match vault.meta(&erase.record_id) {
                Ok(_) => {}
                Err(VaultError::UnknownRecord(_)) => continue,
                Err(e) => return Err(e.to_string()),
            }
            let index = block.first_entry_index + offset as u64;
            let proof = client
                .ledger()
                .get_inclusion_proof(ledger_pb::GetInclusionProofRequest {
                    leaf_index: index,
                    tree_size: header.log_size,
                })
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            let proven = access_pb::ProvenEntry {
                index,
                entry: bytes.clone(),
                proof: proof.proof,
                header: Some(signed.clone()),
            };
            if let Err(e) = verify_proven_entry(genesis, trusted, &proven) {
                custos_client::refused!(record = %erase.record_id.short(), error = %e, "an erasure the node streamed does not verify; ignored");
                continue;
            }
            vault.erase(&erase.record_id).map_err(|e| e.to_string())?;
            if let Some(aggregates) = aggregates {
                aggregates
                    .erase(&erase.record_id)
                    .map_err(|e| e.to_string())?;
            }
            info!(
                target: "custos::vault",
                record = %erase.record_id.short(),
                by = %tx.author().short(),
                legal_grounds = erase.legal_grounds,
                height = header.height,
                "record erased after a finalized erasure on the ledger: storage key, wrapped keys and ciphertext destroyed"
            );
        }
        write_cursor(cursor, header.height + 1).map_err(|e| format!("cursor: {e}"))?;
    }
    Ok(())
}
