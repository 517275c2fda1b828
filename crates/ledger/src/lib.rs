//! Keeps the verifiable log: RFC 6962 Merkle trees, proofs, block headers and commit certificates.
//!
//! The ledger is a generic verifiable log: it knows nothing of consent. Every entry is a leaf of
//! an append-only Merkle tree hashed as in RFC 6962; each block header commits to the log size
//! and root, the previous header and the application's state root, and a commit certificate of
//! more than 2/3 of the voting power signs the header hash.

pub mod certificate;
pub mod header;
pub mod merkle;
pub mod verify;

pub use certificate::{CommitCertificate, Validator, ValidatorSet, commit_message};
pub use header::BlockHeader;
pub use merkle::{Frontier, FrontierError, MerkleTree, ProofError};

/// Why the ledger refused a header, certificate, proof or field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    /// A wire field is malformed.
    #[error("{field}: {reason}")]
    Field {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A Merkle proof failed.
    #[error("merkle proof: {0}")]
    Proof(#[from] ProofError),
    /// A commit certificate failed.
    #[error("commit certificate: {0}")]
    Certificate(String),
    /// A validator set is malformed.
    #[error("validator set: {0}")]
    ValidatorSet(String),
    /// Headers do not form a chain.
    #[error("header chain: {0}")]
    Chain(String),
}
