//! Offline verification of an audit bundle (`custos.audit.v1.AuditBundle`, format version 2):
//! the header chain from the genesis with every certificate under the validator set its
//! predecessor named, and every entry of the exported blocks, none missing, none added, none
//! changed, in order.
//!
//! Entries are checked with an RFC 6962 compact range ([`Frontier`]) seeded from the certified
//! root before the range: appending the entries of each block must give exactly that block's
//! certified log size and root. That proves each entry's inclusion at its index (as an inclusion
//! proof would) and, beyond that, that the range is complete.

use custos_crypto::Hash;
use custos_ledger::merkle::leaf_hash;
use custos_ledger::{BlockHeader, CommitCertificate, Frontier, ValidatorSet};
use custos_proto::audit::v1 as audit_pb;
use custos_types::{EntryKind, Genesis, LedgerEntry};

use crate::verify::genesis_validators;

/// The bundle format this verifier reads.
pub const BUNDLE_VERSION: u32 = 2;

/// Why a bundle does not verify; each variant names the part that is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// The bundle is of another format version.
    #[error(
        "bundle format version {0} is not supported: this verifier reads version {BUNDLE_VERSION} (docs/spec/audit-bundle.md); export the bundle again with a current node"
    )]
    Version(u32),
    /// The bundle is for another chain.
    #[error("chain: the bundle is for `{bundle}`, the genesis for `{genesis}`")]
    Chain {
        /// The bundle's chain id.
        bundle: String,
        /// The genesis's.
        genesis: String,
    },
    /// The genesis is unusable.
    #[error("genesis: {0}")]
    Genesis(String),
    /// The exported range is malformed.
    #[error("range: {0}")]
    Range(String),
    /// A header, its certificate or its link to the previous one is wrong.
    #[error("header {height}: {reason}")]
    Header {
        /// Its height (its position in the bundle when the height itself is wrong).
        height: u64,
        /// What is wrong.
        reason: String,
    },
    /// The compact range before the exported blocks does not match the certified root.
    #[error("frontier: {0}")]
    Frontier(String),
    /// A block's entries do not match its certified header.
    #[error("block {height}: {reason}")]
    Block {
        /// The block.
        height: u64,
        /// What is wrong.
        reason: String,
    },
    /// An entry is malformed or in the wrong block.
    #[error("entry at log index {index} (block {height}): {reason}")]
    Entry {
        /// Its log index.
        index: u64,
        /// Its block.
        height: u64,
        /// What is wrong.
        reason: String,
    },
}

/// What a verified bundle holds.
#[derive(Clone, Debug)]
pub struct VerifiedBundle {
    /// The chain.
    pub chain_id: String,
    /// First exported block.
    pub from_height: u64,
    /// Last exported block.
    pub to_height: u64,
    /// Log index of the first exported entry.
    pub first_index: u64,
    /// Every exported entry, decoded, with its log index, in log order.
    pub entries: Vec<(u64, LedgerEntry)>,
    /// The last header (certified, linked back to the genesis).
    pub tip: BlockHeader,
    /// Headers checked.
    pub headers: usize,
    /// Validator-set changes followed after the genesis set.
    pub set_changes: usize,
}

impl VerifiedBundle {
    /// Number of exported decisions.
    pub fn decisions(&self) -> usize {
        self.entries
            .iter()
            .filter(|(_, e)| matches!(e.kind, EntryKind::Decision(_)))
            .count()
    }
}

fn header_error(height: u64, reason: impl ToString) -> BundleError {
    BundleError::Header {
        height,
        reason: reason.to_string(),
    }
}

/// Verifies a decoded bundle against `genesis` alone.
pub fn verify_bundle(
    genesis: &Genesis,
    bundle: &audit_pb::AuditBundle,
) -> Result<VerifiedBundle, BundleError> {
    if bundle.version != BUNDLE_VERSION {
        return Err(BundleError::Version(bundle.version));
    }
    if bundle.chain_id != genesis.chain_id.as_str() {
        return Err(BundleError::Chain {
            bundle: bundle.chain_id.clone(),
            genesis: genesis.chain_id.to_string(),
        });
    }
    let (from, to) = (bundle.from_height, bundle.to_height);
    if from == 0 || from > to {
        return Err(BundleError::Range(format!(
            "expected 1 <= from_height <= to_height, got {from}..={to}"
        )));
    }
    if bundle.headers.len() as u64 != to {
        return Err(BundleError::Range(format!(
            "expected headers 1..={to} ({to} headers), got {}",
            bundle.headers.len()
        )));
    }
    let genesis_set =
        genesis_validators(genesis).map_err(|e| BundleError::Genesis(e.to_string()))?;
    let headers = verify_headers(genesis.chain_id.as_str(), &genesis_set, &bundle.headers)?;

    // Seed the compact range from the certified root just before the exported blocks.
    let (start_size, start_root) = match from {
        1 => (0, Hash::ZERO),
        _ => {
            let before = &headers[(from - 2) as usize].0;
            (before.log_size, before.log_root)
        }
    };
    let roots = bundle
        .frontier
        .iter()
        .enumerate()
        .map(|(i, h)| {
            Hash::from_slice(h).map_err(|e| BundleError::Frontier(format!("root {i}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut frontier = Frontier::from_roots(start_size, &roots, &start_root)
        .map_err(|e| BundleError::Frontier(format!("{e} (the log root of header {})", from - 1)))?;

    if bundle.blocks.len() as u64 != to - from + 1 {
        return Err(BundleError::Range(format!(
            "expected the entries of blocks {from}..={to} ({} blocks), got {} blocks",
            to - from + 1,
            bundle.blocks.len()
        )));
    }
    let mut entries = Vec::new();
    for (block, height) in bundle.blocks.iter().zip(from..) {
        if block.height != height {
            return Err(BundleError::Block {
                height,
                reason: format!("expected block {height} here, found block {}", block.height),
            });
        }
        let (header, _) = &headers[(height - 1) as usize];
        let before = frontier.size();
        // The certified root decides first: any changed byte shows as a root mismatch.
        for bytes in &block.entries {
            frontier.push(leaf_hash(bytes));
        }
        if frontier.size() != header.log_size {
            return Err(BundleError::Block {
                height,
                reason: format!(
                    "holds {} entries (log {before}..{}), its certified header says the log \
                     grows to {}: an entry was removed or added",
                    block.entries.len(),
                    frontier.size(),
                    header.log_size
                ),
            });
        }
        if frontier.root() != header.log_root {
            return Err(BundleError::Block {
                height,
                reason: format!(
                    "its entries (log {before}..{}) lead to log root {}, its certified header \
                     says {}: an entry was changed or reordered",
                    frontier.size(),
                    frontier.root().short(),
                    header.log_root.short()
                ),
            });
        }
        let mut transactions = 0u64;
        for (bytes, index) in block.entries.iter().zip(before..) {
            let entry = LedgerEntry::from_bytes(bytes).map_err(|e| BundleError::Entry {
                index,
                height,
                reason: e.to_string(),
            })?;
            if entry.height.0 != height {
                return Err(BundleError::Entry {
                    index,
                    height,
                    reason: format!("the entry says it is in block {}", entry.height.0),
                });
            }
            transactions += u64::from(matches!(entry.kind, EntryKind::Transaction(_)));
            entries.push((index, entry));
        }
        if transactions != u64::from(header.tx_count) {
            return Err(BundleError::Block {
                height,
                reason: format!(
                    "holds {transactions} transactions, its certified header says {}",
                    header.tx_count
                ),
            });
        }
    }
    let set_changes = headers
        .windows(2)
        .filter(|w| w[0].1.hash() != w[1].1.hash())
        .count()
        + usize::from(headers.first().is_some_and(|(_, s)| *s != genesis_set));
    let tip = headers
        .last()
        .map(|(h, _)| h.clone())
        .ok_or_else(|| BundleError::Range("no headers".into()))?;
    Ok(VerifiedBundle {
        chain_id: bundle.chain_id.clone(),
        from_height: from,
        to_height: to,
        first_index: start_size,
        entries,
        tip,
        headers: headers.len(),
        set_changes,
    })
}

/// Checks headers 1..=n: heights, links, growing log, each certificate under the set the
/// previous header named (the genesis set for height 1). A header without a validator set is
/// signed by the same set as its predecessor.
fn verify_headers(
    chain_id: &str,
    genesis_set: &ValidatorSet,
    signed: &[custos_proto::ledger::v1::SignedHeader],
) -> Result<Vec<(BlockHeader, ValidatorSet)>, BundleError> {
    let mut out: Vec<(BlockHeader, ValidatorSet)> = Vec::with_capacity(signed.len());
    let mut expected_set = genesis_set.hash();
    let mut current: Option<ValidatorSet> = None;
    let mut prev = Hash::ZERO;
    let mut prev_size = 0u64;
    for (i, s) in signed.iter().enumerate() {
        let height = i as u64 + 1;
        let header = s
            .header
            .as_ref()
            .ok_or_else(|| header_error(height, "missing"))?;
        let header = BlockHeader::try_from(header).map_err(|e| header_error(height, e))?;
        if header.height != height {
            return Err(header_error(
                height,
                format!("expected height {height}, found {}", header.height),
            ));
        }
        let cert = s
            .certificate
            .as_ref()
            .ok_or_else(|| header_error(height, "no commit certificate (stripped)"))?;
        let cert = CommitCertificate::try_from(cert)
            .map_err(|e| header_error(height, format!("commit certificate: {e}")))?;
        if let Some(set) = &s.validator_set {
            current = Some(ValidatorSet::try_from(set).map_err(|e| header_error(height, e))?);
        }
        let set = current
            .clone()
            .ok_or_else(|| header_error(height, "no validator set"))?;
        if set.hash() != expected_set {
            return Err(header_error(
                height,
                "signed by a validator set that the previous header (or the genesis) did not name",
            ));
        }
        if header.prev_hash != prev {
            return Err(header_error(
                height,
                format!(
                    "does not link to header {}: prev_hash {} != {}",
                    height - 1,
                    header.prev_hash.short(),
                    prev.short()
                ),
            ));
        }
        if header.log_size < prev_size {
            return Err(header_error(
                height,
                format!("the log shrinks from {prev_size} to {}", header.log_size),
            ));
        }
        prev = custos_ledger::verify::verify_signed_header(chain_id, &header, &cert, &set)
            .map_err(|e| header_error(height, e))?;
        prev_size = header.log_size;
        expected_set = header.next_validators_hash;
        out.push((header, set));
    }
    Ok(out)
}
