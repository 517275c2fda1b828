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
    let mut expected_set = genesis.hash();
    let mut prev = Hash::ZERO;
    let mut prev_log_size = 0u64;
    for (i, (header, cert, set)) in headers.iter().enumerate() {
        let expected_height = i as u64 + 1;
        if header.height != expected_height {
            return Err(LedgerError::Chain(format!(
                "expected height {expected_height}, found {}",
                header.height
            )));
        }
        if header.prev_hash != prev {
            return Err(LedgerError::Chain(format!(
                "header {} does not link to header {}: prev_hash {} != {}",
                header.height,
                expected_height - 1,
                header.prev_hash.short(),
                prev.short()
            )));
        }
        if header.log_size < prev_log_size {
            return Err(LedgerError::Chain(format!(
                "log shrinks at height {}: {} < {prev_log_size}",
                header.height, header.log_size
            )));
        }
        if set.hash() != expected_set {
            return Err(LedgerError::Chain(format!(
                "header {} comes with a validator set the previous header did not name",
                header.height
            )));
        }
        prev = verify_signed_header(chain_id, header, cert, set)?;
        prev_log_size = header.log_size;
        expected_set = header.next_validators_hash;
    }
    Ok(())
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
