//! The light client: checks headers, certificates and entry inclusion against the genesis
//! validator set, trusting no node.

use custos_crypto::Hash;
use custos_ledger::{BlockHeader, CommitCertificate, LedgerError, Validator, ValidatorSet};
use custos_proto::access::v1 as access_pb;
use custos_proto::ledger::v1 as ledger_pb;
use custos_types::{FieldError, Genesis, LedgerEntry};

/// Why something a node returned does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required part is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// The ledger checks failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The entry bytes are malformed.
    #[error("entry: {0}")]
    Entry(#[from] FieldError),
    /// The genesis is unusable.
    #[error("genesis: {0}")]
    Genesis(String),
    /// The proof is for another tree than the header commits to.
    #[error("proof is for tree size {proof}, header commits to {header}")]
    TreeSize {
        /// Size in the proof.
        proof: u64,
        /// Size in the header.
        header: u64,
    },
    /// The validator set the node sent is not the trusted one.
    #[error("the node's validator set differs from the genesis validator set")]
    ValidatorSet,
    /// The record ids are not the cohort the decision fixed.
    #[error(transparent)]
    Cohort(#[from] crate::cohort::CohortError),
}

/// The validator set a genesis file names.
pub fn genesis_validators(genesis: &Genesis) -> Result<ValidatorSet, VerifyError> {
    ValidatorSet::new(
        genesis
            .validators
            .iter()
            .map(|v| Validator {
                key: v.public_key.0,
                power: v.power,
            })
            .collect(),
    )
    .map_err(|e| VerifyError::Genesis(e.to_string()))
}

/// Decodes a signed header's header and certificate (nothing is verified yet).
pub fn parse_signed_header(
    signed: &ledger_pb::SignedHeader,
) -> Result<(BlockHeader, CommitCertificate), VerifyError> {
    let header = signed
        .header
        .as_ref()
        .ok_or(VerifyError::Missing("header"))?;
    let cert = signed
        .certificate
        .as_ref()
        .ok_or(VerifyError::Missing("certificate"))?;
    Ok((
        BlockHeader::try_from(header)?,
        CommitCertificate::try_from(cert)?,
    ))
}

/// Checks a signed header against the trusted set; returns the header.
pub fn verify_signed_header(
    genesis: &Genesis,
    trusted: &ValidatorSet,
    signed: &ledger_pb::SignedHeader,
) -> Result<BlockHeader, VerifyError> {
    let (header, cert) = parse_signed_header(signed)?;
    // The set a node sends is informational only; the trusted set decides.
    if let Some(sent) = &signed.validator_set {
        let sent = ValidatorSet::try_from(sent)?;
        if sent != *trusted {
            return Err(VerifyError::ValidatorSet);
        }
    }
    custos_ledger::verify::verify_signed_header(
        genesis.chain_id.as_str(),
        &header,
        &cert,
        trusted,
    )?;
    Ok(header)
}

/// An entry whose inclusion under a certified header verified.
#[derive(Clone, Debug)]
pub struct VerifiedEntry {
    /// Its log index.
    pub index: u64,
    /// The decoded entry.
    pub entry: LedgerEntry,
    /// The certified header it is included under.
    pub header: BlockHeader,
}

/// Checks a proven entry: the header's certificate under the trusted set, then the RFC 6962
/// inclusion of the entry bytes under the header's log root.
pub fn verify_proven_entry(
    genesis: &Genesis,
    trusted: &ValidatorSet,
    proven: &access_pb::ProvenEntry,
) -> Result<VerifiedEntry, VerifyError> {
    let header = verify_signed_header(
        genesis,
        trusted,
        proven
            .header
            .as_ref()
            .ok_or(VerifyError::Missing("header"))?,
    )?;
    let proof = proven
        .proof
        .as_ref()
        .ok_or(VerifyError::Missing("inclusion proof"))?;
    if proof.tree_size != header.log_size {
        return Err(VerifyError::TreeSize {
            proof: proof.tree_size,
            header: header.log_size,
        });
    }
    if proof.leaf_index != proven.index {
        return Err(VerifyError::Missing("matching leaf index"));
    }
    let path = proof
        .path
        .iter()
        .map(|h| Hash::from_slice(h))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| VerifyError::Missing("32-byte proof hashes"))?;
    custos_ledger::verify::verify_entry_inclusion(&proven.entry, proven.index, &path, &header)?;
    let entry = LedgerEntry::from_bytes(&proven.entry)?;
    Ok(VerifiedEntry {
        index: proven.index,
        entry,
        header,
    })
}

/// Checks a full run of signed headers from height 1, trusting only the genesis validator set:
/// each header's set must be the one its predecessor named. Returns the headers with the set that
/// signed each (to verify entries under any of them).
pub fn verify_header_chain(
    genesis: &Genesis,
    trusted: &ValidatorSet,
    headers: &[ledger_pb::SignedHeader],
) -> Result<Vec<(BlockHeader, ValidatorSet)>, VerifyError> {
    let mut chain = Vec::with_capacity(headers.len());
    for signed in headers {
        let (header, cert) = parse_signed_header(signed)?;
        let set = ValidatorSet::try_from(
            signed
                .validator_set
                .as_ref()
                .ok_or(VerifyError::Missing("validator set"))?,
        )?;
        chain.push((header, cert, set));
    }
    custos_ledger::verify::verify_header_chain(genesis.chain_id.as_str(), trusted, &chain)?;
    Ok(chain.into_iter().map(|(h, _, s)| (h, s)).collect())
}
