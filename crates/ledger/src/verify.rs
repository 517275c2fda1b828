//! Offline checks an auditor runs without trusting any node: header chains, certificates and
//! entry inclusion.

use custos_crypto::Hash;

use crate::LedgerError;
use crate::certificate::{CommitCertificate, ValidatorSet};
use crate::header::BlockHeader;
use crate::merkle;

/// Checks one header: the chain it names and its certificate under `set`. Returns its hash.
pub fn verify_signed_header(
    chain_id: &str,
    header: &BlockHeader,
    certificate: &CommitCertificate,
    set: &ValidatorSet,
) -> Result<Hash, LedgerError> {
    if header.chain_id != chain_id {
        return Err(LedgerError::Chain(format!(
            "header at height {} is for chain `{}`, expected `{chain_id}`",
            header.height, header.chain_id
        )));
    }
    certificate.verify(header, set)?;
    Ok(header.hash())
}

/// Checks a run of consecutive headers from height 1, each with the validator set that signed
/// it: each set is the one the previous header named (`next_validators_hash`; the genesis set for
/// height 1), each certificate carries more than 2/3 of its set's power, and each header links
/// to the previous one. Validator-set changes are followed this way, trusting only the genesis.
pub fn verify_header_chain(
    chain_id: &str,
    genesis: &ValidatorSet,
    headers: &[(BlockHeader, CommitCertificate, ValidatorSet)],
) -> Result<(), LedgerError> {
    let mut prefix = VerifiedPrefix::genesis(genesis);
    for (header, cert, set) in headers {
        prefix = prefix.extend(chain_id, header, cert, set)?;
    }
    Ok(())
}

/// The end of a header chain verified from the genesis: what the next header must link to.
/// Verifying a growing chain header by header from here costs each header once.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifiedPrefix {
    /// Height of the last verified header (0: none yet).
    pub height: u64,
    /// Its hash (zero before the first header).
    pub hash: Hash,
    /// Its log size.
    pub log_size: u64,
    /// Its log root (zero before the first header).
    pub log_root: Hash,
    /// The validator set it names for the next height.
    pub next_validators: Hash,
}

impl VerifiedPrefix {
    /// The empty prefix: the first header must be signed by `genesis`.
    pub fn genesis(genesis: &ValidatorSet) -> Self {
        VerifiedPrefix {
            height: 0,
            hash: Hash::ZERO,
            log_size: 0,
            log_root: Hash::ZERO,
            next_validators: genesis.hash(),
        }
    }

    /// Checks `header` (signed under `set` with `certificate`) as the next one: its height, its
    /// link to this prefix, a log that does not shrink, the set this prefix named and the
    /// certificate. Returns the longer prefix.
    pub fn extend(
        &self,
        chain_id: &str,
        header: &BlockHeader,
        certificate: &CommitCertificate,
        set: &ValidatorSet,
    ) -> Result<Self, LedgerError> {
        let expected_height = self.height + 1;
        if header.height != expected_height {
            return Err(LedgerError::Chain(format!(
                "expected height {expected_height}, found {}",
                header.height
            )));
        }
        if header.prev_hash != self.hash {
            return Err(LedgerError::Chain(format!(
                "header {} does not link to header {}: prev_hash {} != {}",
                header.height,
                self.height,
                header.prev_hash.short(),
                self.hash.short()
            )));
        }
        if header.log_size < self.log_size {
            return Err(LedgerError::Chain(format!(
                "log shrinks at height {}: {} < {}",
                header.height, header.log_size, self.log_size
            )));
        }
        if set.hash() != self.next_validators {
            return Err(LedgerError::Chain(format!(
                "header {} comes with a validator set the previous header did not name",
                header.height
            )));
        }
        let hash = verify_signed_header(chain_id, header, certificate, set)?;
        Ok(VerifiedPrefix {
            height: header.height,
            hash,
            log_size: header.log_size,
            log_root: header.log_root,
            next_validators: header.next_validators_hash,
        })
    }
}

/// Checks that `entry` (its serialized bytes) is leaf `index` of the log committed in `header`.
pub fn verify_entry_inclusion(
    entry: &[u8],
    index: u64,
    proof: &[Hash],
    header: &BlockHeader,
) -> Result<(), LedgerError> {
    let leaf = merkle::leaf_hash(entry);
    merkle::verify_inclusion(&leaf, index, header.log_size, proof, &header.log_root)?;
    Ok(())
}
