//! Block headers and their canonical, versioned hash.
//!
//! The header hash is SHA-256 over a fixed binary layout that any language can rebuild from the
//! `custos.ledger.v1.BlockHeader` fields (all integers big-endian):
//!
//! ```text
//! "custos/header/v1" ‖ u32 len(chain_id) ‖ chain_id ‖ u64 height ‖ i64 time_ms ‖ prev_hash[32]
//! ‖ u64 log_size ‖ log_root[32] ‖ state_root[32] ‖ u32 tx_count ‖ proposer[32]
//! ‖ next_validators_hash[32]
//! ```

use custos_crypto::{Hash, PublicKey, sha256};
use custos_proto::ledger::v1 as pb;

use crate::LedgerError;

/// Domain separator and version of the header encoding.
pub const HEADER_DOMAIN: &[u8] = b"custos/header/v1";

/// Largest chain id a header may name.
pub const MAX_CHAIN_ID_LEN: usize = 64;

/// The header of a finalized block.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BlockHeader {
    /// The chain.
    pub chain_id: String,
    /// Height; 1 for the first block.
    pub height: u64,
    /// Block time, milliseconds since the epoch.
    pub time_ms: i64,
    /// Hash of the previous header ([`Hash::ZERO`] at height 1).
    pub prev_hash: Hash,
    /// Log size after the block.
    pub log_size: u64,
    /// Log root after the block.
    pub log_root: Hash,
    /// Application state root after the block.
    pub state_root: Hash,
    /// Transactions in the block.
    pub tx_count: u32,
    /// Proposer.
    pub proposer: PublicKey,
    /// Hash of the validator set that signs the next block.
    pub next_validators_hash: Hash,
}

impl BlockHeader {
    /// The canonical encoding that is hashed.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_DOMAIN.len() + 4 + self.chain_id.len() + 220);
        out.extend_from_slice(HEADER_DOMAIN);
        out.extend_from_slice(&(self.chain_id.len() as u32).to_be_bytes());
        out.extend_from_slice(self.chain_id.as_bytes());
        out.extend_from_slice(&self.height.to_be_bytes());
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        out.extend_from_slice(self.prev_hash.as_bytes());
        out.extend_from_slice(&self.log_size.to_be_bytes());
        out.extend_from_slice(self.log_root.as_bytes());
        out.extend_from_slice(self.state_root.as_bytes());
        out.extend_from_slice(&self.tx_count.to_be_bytes());
        out.extend_from_slice(self.proposer.as_bytes());
        out.extend_from_slice(self.next_validators_hash.as_bytes());
        out
    }

    /// SHA-256 of the canonical encoding.
    pub fn hash(&self) -> Hash {
        sha256(&self.canonical_bytes())
    }

    /// The wire message.
    pub fn to_wire(&self) -> pb::BlockHeader {
        pb::BlockHeader {
            version: 1,
            chain_id: self.chain_id.clone(),
            height: self.height,
            time_ms: self.time_ms,
            prev_hash: self.prev_hash.0.to_vec(),
            log_size: self.log_size,
            log_root: self.log_root.0.to_vec(),
            state_root: self.state_root.0.to_vec(),
            tx_count: self.tx_count,
            proposer: self.proposer.as_bytes().to_vec(),
            next_validators_hash: self.next_validators_hash.0.to_vec(),
        }
    }
}

fn hash_field(bytes: &[u8], field: &'static str) -> Result<Hash, LedgerError> {
    Hash::from_slice(bytes).map_err(|e| LedgerError::Field {
        field,
        reason: e.to_string(),
    })
}

impl TryFrom<&pb::BlockHeader> for BlockHeader {
    type Error = LedgerError;
    fn try_from(w: &pb::BlockHeader) -> Result<Self, LedgerError> {
        if w.version != 1 {
            return Err(LedgerError::Field {
                field: "header.version",
                reason: format!("expected 1, got {}", w.version),
            });
        }
        if w.chain_id.is_empty() || w.chain_id.len() > MAX_CHAIN_ID_LEN {
            return Err(LedgerError::Field {
                field: "header.chain_id",
                reason: "expected 1 to 64 characters".into(),
            });
        }
        Ok(BlockHeader {
            chain_id: w.chain_id.clone(),
            height: w.height,
            time_ms: w.time_ms,
            prev_hash: hash_field(&w.prev_hash, "header.prev_hash")?,
            log_size: w.log_size,
            log_root: hash_field(&w.log_root, "header.log_root")?,
            state_root: hash_field(&w.state_root, "header.state_root")?,
            tx_count: w.tx_count,
            proposer: PublicKey::from_slice(&w.proposer).map_err(|e| LedgerError::Field {
                field: "header.proposer",
                reason: e.to_string(),
            })?,
            next_validators_hash: hash_field(
                &w.next_validators_hash,
                "header.next_validators_hash",
            )?,
        })
    }
}
