//! Signing contexts: every Ed25519 signature in Custos is made over `context ‖ payload`, where the
//! context names the purpose and its format version (`docs/spec/signatures.md`).
//!
//! A signature made for one purpose therefore never verifies for another: a signed read is not a
//! transaction, a vote is not a read. The contexts are ASCII, fixed, and prefix-free (no context is
//! a prefix of another; [`ALL`] is checked for it), so `context ‖ payload` has one reading.

/// A transaction: the author and every co-signer sign `TRANSACTION ‖ body bytes`.
pub const TRANSACTION: &[u8] = b"custos/transaction/v2";
/// A signed read: the author signs `SIGNED_READ ‖ body bytes`.
pub const SIGNED_READ: &[u8] = b"custos/signed-read/v2";
/// A precommit for a value: `COMMIT ‖ chain ‖ height ‖ round ‖ header hash` (the ledger's commit
/// certificate).
pub const COMMIT: &[u8] = b"custos/commit/v1";
/// A precommit for nil.
pub const PRECOMMIT_NIL: &[u8] = b"custos/precommit-nil/v1";
/// A prevote.
pub const PREVOTE: &[u8] = b"custos/prevote/v1";
/// A proposal.
pub const PROPOSAL: &[u8] = b"custos/proposal/v1";
/// A proposal's streamed parts.
pub const PROPOSAL_PARTS: &[u8] = b"custos/proposal-parts/v1";

/// Every signing context, for the prefix-freedom check and the specification's table.
pub const ALL: &[&[u8]] = &[
    TRANSACTION,
    SIGNED_READ,
    COMMIT,
    PRECOMMIT_NIL,
    PREVOTE,
    PROPOSAL,
    PROPOSAL_PARTS,
];

/// Domain of a transaction id: `tx_id = SHA-256(TX_ID ‖ body bytes)`. The body names its author,
/// so two authors never share a transaction, request or consent id.
pub const TX_ID: &[u8] = b"custos/tx-id/v2";

/// `context ‖ payload`: the exact bytes an Ed25519 signature covers.
pub fn message(context: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(context.len() + payload.len());
    out.extend_from_slice(context);
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_prefix_free_ascii() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(a.is_ascii() && a.starts_with(b"custos/"));
            for (j, b) in ALL.iter().enumerate() {
                if i != j {
                    assert!(!b.starts_with(a), "{:?} is a prefix of {:?}", a, b);
                }
            }
        }
        for a in ALL {
            assert!(!TX_ID.starts_with(a) && !a.starts_with(TX_ID));
        }
    }
}
