//! RFC 6962 Merkle tree (being written).
