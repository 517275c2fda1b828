//! Keeps the verifiable log: RFC 6962 Merkle trees, proofs, block headers and commit certificates.
//!
//! The ledger is a generic verifiable log: it knows nothing of consent. Every entry is a leaf of
//! an append-only Merkle tree hashed as in RFC 6962; each block header commits to the log size
//! and root, the previous header and the application's state root, and a commit certificate of
//! more than 2/3 of the voting power signs the header hash.

pub mod merkle;
