//! Checks an aggregate request's cohort: a compute worker or a vault trusts the ledger's proven
//! decision, which fixes the cohort by root and size, never a node's list of record ids alone.
//!
//! The cohort root is the RFC 6962 Merkle root (SHA-256, leaf `0x00 ‖ id`, node
//! `0x01 ‖ left ‖ right`, empty tree `SHA-256("")`) over the 32-byte record ids sorted ascending
//! bytewise; the size is their number.

use custos_crypto::Hash;
use custos_ledger::{ValidatorSet, merkle};
use custos_proto::access::v1 as access_pb;
use custos_types::tx::RequestAccess;
use custos_types::{
    AggregateScope, Decision, EntryKind, Genesis, RecordId, SignedTransaction, TxKind,
};

use crate::verify::{VerifyError, verify_proven_entry};

/// Most record ids [`crate::Client::cohort`] collects (32 MB of ids).
pub const MAX_COHORT_IDS: u64 = 1_000_000;

/// Why a list of record ids is not the cohort a decision fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CohortError {
    /// The decision fixes no cohort (not aggregate, or denied before the cohort).
    #[error("the decision of request {0} fixes no cohort")]
    NoCohort(String),
    /// The list has another number of ids than the decision's cohort.
    #[error("cohort size: expected {expected} ids, got {got}")]
    Size {
        /// The decision's size.
        expected: u64,
        /// The list's length.
        got: u64,
    },
    /// The ids are not strictly ascending (unsorted or repeated).
    #[error("cohort ids: expected strictly ascending ids, id {index} is not above id {}", .index - 1)]
    Order {
        /// The first id out of order.
        index: usize,
    },
    /// The ids hash to another root than the decision's.
    #[error("cohort root: expected {expected}, the ids hash to {got}")]
    Root {
        /// The decision's root.
        expected: String,
        /// The ids' root.
        got: String,
    },
    /// A record id is not 32 bytes.
    #[error("cohort ids: id {index} is {len} bytes, expected 32")]
    IdLength {
        /// Which id.
        index: usize,
        /// Its length.
        len: usize,
    },
}

/// The RFC 6962 root of record ids in the order given.
pub fn cohort_root(ids: &[RecordId]) -> Hash {
    let leaves: Vec<Hash> = ids
        .iter()
        .map(|id| merkle::leaf_hash(id.0.as_bytes()))
        .collect();
    merkle::root_of(&leaves)
}

/// Checks that `ids` are exactly the cohort `decision` fixed: strictly ascending, as many as its
/// size, hashing to its root.
pub fn verify_cohort(decision: &Decision, ids: &[RecordId]) -> Result<(), CohortError> {
    let cohort = decision
        .cohort
        .ok_or_else(|| CohortError::NoCohort(decision.request_id.short()))?;
    let got = ids.len() as u64;
    if got != cohort.size {
        return Err(CohortError::Size {
            expected: cohort.size,
            got,
        });
    }
    if let Some(i) = ids.windows(2).position(|w| w[0] >= w[1]) {
        return Err(CohortError::Order { index: i + 1 });
    }
    let root = cohort_root(ids);
    if root != cohort.root {
        return Err(CohortError::Root {
            expected: cohort.root.to_hex(),
            got: root.to_hex(),
        });
    }
    Ok(())
}

/// Parses the wire record ids of a `GetCohort` page.
pub fn parse_ids(ids: &[Vec<u8>]) -> Result<Vec<RecordId>, CohortError> {
    ids.iter()
        .enumerate()
        .map(|(index, id)| {
            Hash::from_slice(id)
                .map(RecordId)
                .map_err(|_| CohortError::IdLength {
                    index,
                    len: id.len(),
                })
        })
        .collect()
}

/// A cohort checked end to end: the decision proven under a certified header, the request that
/// it decided, and the ids that hash to its cohort.
#[derive(Clone, Debug)]
pub struct VerifiedCohort {
    /// The proven decision (granted or not: check [`Decision::granted`]).
    pub decision: Decision,
    /// The aggregate scope the requester signed (custodian, category, query text).
    pub scope: AggregateScope,
    /// The cohort's record ids, ascending.
    pub ids: Vec<RecordId>,
}

/// Checks a `GetCohort` answer (any page; its ids are ignored) with the full id list: the
/// decision's inclusion under a header certified by `trusted`, that the node's decision is the
/// proven one, that the request transaction is the decided request (its id is SHA-256 of its
/// body) with a valid aggregate scope, and that `ids` are the decision's cohort.
pub fn verify_cohort_response(
    genesis: &Genesis,
    trusted: &ValidatorSet,
    response: &access_pb::CohortResponse,
    ids: Vec<RecordId>,
) -> Result<VerifiedCohort, VerifyError> {
    let proven = response
        .proven
        .as_ref()
        .ok_or(VerifyError::Missing("proven decision"))?;
    let verified = verify_proven_entry(genesis, trusted, proven)?;
    let EntryKind::Decision(decision) = verified.entry.kind else {
        return Err(VerifyError::Missing("a decision in the proven entry"));
    };
    if response.decision.as_ref() != Some(&access_pb::AccessDecision::from(&decision)) {
        return Err(VerifyError::Missing("the proven decision in the response"));
    }
    let wire = response
        .request
        .clone()
        .ok_or(VerifyError::Missing("request transaction"))?;
    let tx = SignedTransaction::from_wire(wire)?;
    if tx.id().0 != decision.request_id.0 {
        return Err(VerifyError::Missing("the decided request transaction"));
    }
    let scope = match &tx.body().kind {
        TxKind::RequestAccess(r) => aggregate_scope(r)?,
        _ => return Err(VerifyError::Missing("an access request transaction")),
    };
    verify_cohort(&decision, &ids)?;
    Ok(VerifiedCohort {
        decision,
        scope,
        ids,
    })
}

fn aggregate_scope(r: &RequestAccess) -> Result<AggregateScope, VerifyError> {
    r.aggregate_scope()?
        .ok_or(VerifyError::Missing("an aggregate access request"))
}
