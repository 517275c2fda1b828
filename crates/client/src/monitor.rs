//! A transparency-log monitor: keeps a checkpoint of the last verified header (height, hash,
//! log size and root, next validator set) and, on each run, checks that the node's chain still
//! contains that header, that every new header is certified by the set its predecessor named
//! and links to it, and that the new log extends the checkpoint's (RFC 6962 consistency proof).
//! Anything else is a fork or a rewrite: an [`WatchError::Alarm`].

use custos_crypto::Hash;
use custos_ledger::merkle::verify_consistency;
use custos_ledger::{BlockHeader, ValidatorSet};
use custos_proto::ledger::v1 as ledger_pb;
use custos_types::{Genesis, Timestamp};
use serde::{Deserialize, Serialize};

use crate::verify::{genesis_validators, parse_signed_header};
use crate::{Client, ClientError};

/// Version of the checkpoint file format.
pub const CHECKPOINT_VERSION: u32 = 1;

/// The last verified state of the log, as a monitor keeps it between runs (JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version; [`CHECKPOINT_VERSION`].
    pub version: u32,
    /// The chain.
    pub chain_id: String,
    /// Height of the last verified header.
    pub height: u64,
    /// Its hash (hex).
    pub header_hash: String,
    /// The log size it commits to.
    pub log_size: u64,
    /// The log root it commits to (hex).
    pub log_root: String,
    /// Hash of the validator set that signs the next header (hex).
    pub next_validators_hash: String,
    /// When the monitor verified it (ms since the epoch).
    pub checked_at_ms: i64,
}

impl Checkpoint {
    fn of(header: &BlockHeader) -> Self {
        Checkpoint {
            version: CHECKPOINT_VERSION,
            chain_id: header.chain_id.clone(),
            height: header.height,
            header_hash: header.hash().to_hex(),
            log_size: header.log_size,
            log_root: header.log_root.to_hex(),
            next_validators_hash: header.next_validators_hash.to_hex(),
            checked_at_ms: Timestamp::now().0,
        }
    }

    fn hash(text: &str, field: &str) -> Result<Hash, WatchError> {
        Hash::from_hex(text).map_err(|e| WatchError::Checkpoint(format!("{field}: {e}")))
    }
}

/// Why a monitor run failed.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The node's chain or log contradicts the checkpoint or the genesis: a fork or a rewrite.
    #[error("ALARM: {0}")]
    Alarm(String),
    /// The checkpoint file is unusable.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The node could not be asked.
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// What one monitor run saw.
#[derive(Clone, Debug)]
pub struct WatchStep {
    /// The new checkpoint (the same as before when nothing was finalized).
    pub checkpoint: Checkpoint,
    /// New headers verified.
    pub new_headers: u64,
    /// Whether a consistency proof was checked (the log grew since a non-empty checkpoint).
    pub consistency_checked: bool,
}

fn alarm(text: impl Into<String>) -> WatchError {
    WatchError::Alarm(text.into())
}

/// Checks the node's chain against `genesis` and the previous `checkpoint` (none on the first
/// run: the whole chain is verified from the genesis) and returns the next checkpoint.
pub async fn watch_once(
    client: &Client,
    genesis: &Genesis,
    checkpoint: Option<&Checkpoint>,
) -> Result<WatchStep, WatchError> {
    let chain = genesis.chain_id.as_str();
    if client.chain_id().as_str() != chain {
        return Err(alarm(format!(
            "the node serves chain `{}`, the genesis is for `{chain}`",
            client.chain_id()
        )));
    }
    let genesis_set = genesis_validators(genesis).map_err(|e| alarm(format!("genesis: {e}")))?;
    let (start, mut expected_set, mut prev, old) = match checkpoint {
        None => (1, genesis_set.hash(), Hash::ZERO, None),
        Some(cp) => {
            if cp.version != CHECKPOINT_VERSION {
                return Err(WatchError::Checkpoint(format!(
                    "version: expected {CHECKPOINT_VERSION}, got {}",
                    cp.version
                )));
            }
            if cp.chain_id != chain {
                return Err(WatchError::Checkpoint(format!(
                    "chain_id: the checkpoint is for `{}`, the genesis for `{chain}`",
                    cp.chain_id
                )));
            }
            let header_hash = Checkpoint::hash(&cp.header_hash, "header_hash")?;
            (
                cp.height + 1,
                Checkpoint::hash(&cp.next_validators_hash, "next_validators_hash")?,
                header_hash,
                Some((cp, header_hash, Checkpoint::hash(&cp.log_root, "log_root")?)),
            )
        }
    };
    let tip = client.status().await?.height;
    if let Some((cp, header_hash, _)) = &old {
        if tip < cp.height {
            return Err(alarm(format!(
                "the node's chain ends at height {tip}, below the checkpoint's height {}: blocks \
                 were rolled back",
                cp.height
            )));
        }
        // The checkpoint's header must still be in the chain, byte for byte.
        let again = header(client, cp.height).await?;
        let (h, _) =
            parse_signed_header(&again).map_err(|e| alarm(format!("header {}: {e}", cp.height)))?;
        if h.hash() != *header_hash {
            return Err(alarm(format!(
                "header {} now hashes to {}, the checkpoint verified {}: the chain was rewritten \
                 (a fork)",
                cp.height,
                h.hash().short(),
                header_hash.short()
            )));
        }
    }
    let mut last: Option<BlockHeader> = None;
    for height in start..=tip {
        let signed = header(client, height).await?;
        let (h, cert) =
            parse_signed_header(&signed).map_err(|e| alarm(format!("header {height}: {e}")))?;
        let set = ValidatorSet::try_from(
            signed
                .validator_set
                .as_ref()
                .ok_or_else(|| alarm(format!("header {height}: no validator set")))?,
        )
        .map_err(|e| alarm(format!("header {height}: {e}")))?;
        if set.hash() != expected_set {
            return Err(alarm(format!(
                "header {height} is signed by a validator set its predecessor did not name"
            )));
        }
        if h.height != height || h.prev_hash != prev {
            return Err(alarm(format!(
                "header {height} does not link to header {}: a fork",
                height - 1
            )));
        }
        prev = custos_ledger::verify::verify_signed_header(chain, &h, &cert, &set)
            .map_err(|e| alarm(format!("header {height}: {e}")))?;
        expected_set = h.next_validators_hash;
        last = Some(h);
    }
    let new_headers = tip + 1 - start;
    let Some(last) = last else {
        // Nothing new: the checkpoint stands.
        let checkpoint = match checkpoint {
            Some(cp) => cp.clone(),
            None => {
                return Err(WatchError::Checkpoint(
                    "the node has no block yet; nothing to check".into(),
                ));
            }
        };
        return Ok(WatchStep {
            checkpoint,
            new_headers: 0,
            consistency_checked: false,
        });
    };
    let mut consistency_checked = false;
    if let Some((cp, _, old_root)) = &old {
        if last.log_size < cp.log_size {
            return Err(alarm(format!(
                "the log shrank from {} to {} entries: it was rewritten",
                cp.log_size, last.log_size
            )));
        }
        if cp.log_size > 0 && last.log_size > cp.log_size {
            let proof = client
                .ledger()
                .get_consistency_proof(ledger_pb::GetConsistencyProofRequest {
                    size1: cp.log_size,
                    size2: last.log_size,
                })
                .await
                .map_err(ClientError::from)?
                .into_inner()
                .proof
                .ok_or_else(|| alarm("the node sent no consistency proof"))?;
            let path = proof
                .path
                .iter()
                .map(|h| Hash::from_slice(h))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| alarm(format!("consistency proof: {e}")))?;
            verify_consistency(cp.log_size, last.log_size, old_root, &last.log_root, &path)
                .map_err(|e| {
                    alarm(format!(
                        "the log of {} entries (root {}) is not a prefix of the certified log of \
                         {} entries: {e}; the log was rewritten",
                        cp.log_size,
                        old_root.short(),
                        last.log_size
                    ))
                })?;
            consistency_checked = true;
        } else if last.log_size == cp.log_size && last.log_root != *old_root {
            return Err(alarm(format!(
                "the log of {} entries has root {} now, {} at the checkpoint: it was rewritten",
                cp.log_size,
                last.log_root.short(),
                old_root.short()
            )));
        }
    }
    Ok(WatchStep {
        checkpoint: Checkpoint::of(&last),
        new_headers,
        consistency_checked,
    })
}

async fn header(client: &Client, height: u64) -> Result<ledger_pb::SignedHeader, WatchError> {
    Ok(client
        .ledger()
        .get_header(ledger_pb::GetHeaderRequest { height })
        .await
        .map_err(ClientError::from)?
        .into_inner())
}
