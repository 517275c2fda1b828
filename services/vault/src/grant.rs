//! Invariant I1 at the vault: nothing is released unless a granted decision for exactly this
//! request, requester, record and raw mode is in a finalized block — checked here, by the vault,
//! against the genesis validator set with the light client (commit certificate, then RFC 6962
//! inclusion of the entry), never on a node's word.
//!
//! Only the proven entry counts: the decision the node sends beside it is ignored.

use custos_client::verify::verify_proven_entry;
use custos_ledger::ValidatorSet;
use custos_proto::access::v1 as access_pb;
use custos_types::{
    AccessMode, Decision, DecisionReason, EntryKind, Genesis, PartyId, RecordId, RequestId,
    Timestamp,
};

/// Why the vault refuses a release. Each has a stable code (the message's first word).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denial {
    /// The node has no finalized decision for the request.
    #[error("not_finalized: no finalized decision for request {0}")]
    NotFinalized(RequestId),
    /// The node's proof does not verify against the genesis.
    #[error(
        "unverified: the decision for request {request} does not verify against the genesis: {reason}"
    )]
    Unverified {
        /// The request.
        request: RequestId,
        /// What failed.
        reason: String,
    },
    /// The proven entry is not a decision, or is another request's.
    #[error("wrong_entry: the proven entry is not the decision on request {0}")]
    WrongEntry(RequestId),
    /// The read's signer did not make the request.
    #[error(
        "not_requester: the read is signed by {signer}; request {request} was made by {requester}"
    )]
    NotRequester {
        /// The request.
        request: RequestId,
        /// Who signed the read.
        signer: PartyId,
        /// Who made the request.
        requester: PartyId,
    },
    /// The ledger denied the request.
    #[error("{reason}: the ledger denied request {request} ({reason})")]
    NotGranted {
        /// The request.
        request: RequestId,
        /// The ledger's reason.
        reason: DecisionReason,
    },
    /// The request is not for the mode of what was asked (raw for records, predicate for
    /// proofs).
    #[error("wrong_mode: request {request} is for {mode:?} access, which does not release this")]
    WrongMode {
        /// The request.
        request: RequestId,
        /// Its mode.
        mode: AccessMode,
    },
    /// A patient's own fetch under a grant that is not the owner's.
    #[error("not_owner: request {request} was granted as `{reason}`, not to the record's owner")]
    NotOwner {
        /// The request.
        request: RequestId,
        /// The ledger's reason.
        reason: DecisionReason,
    },
    /// The decision is too old to act on.
    #[error(
        "stale: request {request} was decided at {decided} ms, more than {max_age_ms} ms ago; request access again"
    )]
    Stale {
        /// The request.
        request: RequestId,
        /// Block time of the decision.
        decided: i64,
        /// The vault's limit.
        max_age_ms: i64,
    },
    /// The record is not in this vault.
    #[error("unknown_record: record {0} is not in this vault")]
    UnknownRecord(RecordId),
    /// The ledger's owner of the record is not the vault's.
    #[error("owner_mismatch: the ledger's owner of record {0} is not the owner this vault holds")]
    OwnerMismatch(RecordId),
    /// The key to wrap to is not the requester's registered key.
    #[error(
        "wrong_recipient_key: the read names X25519 key {named}, {party}'s registered key is {registered}"
    )]
    RecipientKey {
        /// The requester.
        party: PartyId,
        /// The key the read names.
        named: String,
        /// The key on the ledger.
        registered: String,
    },
    /// The node's cohort pages do not verify against the proven decision.
    #[error(
        "unverified_cohort: the cohort of request {request} does not verify against its proven decision: {reason}"
    )]
    CohortUnverified {
        /// The request.
        request: RequestId,
        /// What failed.
        reason: String,
    },
    /// The request aggregates another custodian's records.
    #[error(
        "not_our_cohort: request {request} aggregates the records of custodian {custodian}, not this vault's"
    )]
    NotOurCohort {
        /// The request.
        request: RequestId,
        /// The custodian its scope names.
        custodian: PartyId,
    },
    /// The cohort, or the rows matching the query, number fewer than the vault's k.
    #[error(
        "cohort_too_small: request {request}: {got} records, this vault releases aggregates over at least {k_min}"
    )]
    BelowK {
        /// The request.
        request: RequestId,
        /// The vault's k.
        k_min: u64,
        /// How many there were.
        got: u64,
    },
    /// The worker's result is not the aggregate of the granted cohort (provenance check).
    #[error(
        "forged_result: the result for request {request} is not the aggregate of its cohort: {reason}"
    )]
    ForgedResult {
        /// The request.
        request: RequestId,
        /// What the check found.
        reason: String,
    },
    /// What the vault holds of the record is damaged (its key or ciphertext missing, truncated
    /// or altered): found before the release was confirmed, so nothing was released.
    #[error(
        "vault_damaged: request {request}: the vault's copy of the record is damaged, nothing was \
         released: {damage}"
    )]
    Damaged {
        /// The request.
        request: RequestId,
        /// What is damaged ([`custos_vault::Damage`]: record, part, reason).
        damage: String,
    },
    /// The ledger refused the release confirmation (e.g. already released).
    #[error(
        "not_confirmed: the ledger refused to confirm the release of request {request}: {reason}"
    )]
    NotConfirmed {
        /// The request.
        request: RequestId,
        /// The ledger's answer.
        reason: String,
    },
}

impl Denial {
    /// The reason the ledger records for this refusal, or `None` where the ledger already holds
    /// the outcome (its own denial, a refused confirmation) or the record is not this vault's.
    pub fn ledger_reason(&self) -> Option<DecisionReason> {
        match self {
            Denial::NotFinalized(_) => Some(DecisionReason::VaultNotFinalized),
            Denial::Unverified { .. } | Denial::WrongEntry(_) | Denial::CohortUnverified { .. } => {
                Some(DecisionReason::VaultUnverified)
            }
            Denial::NotOurCohort { .. } | Denial::BelowK { .. } | Denial::ForgedResult { .. } => {
                Some(DecisionReason::VaultRefused)
            }
            Denial::NotRequester { .. } => Some(DecisionReason::VaultNotRequester),
            Denial::Damaged { .. } => Some(DecisionReason::VaultDamaged),
            Denial::WrongMode { .. }
            | Denial::NotOwner { .. }
            | Denial::Stale { .. }
            | Denial::OwnerMismatch(_)
            | Denial::RecipientKey { .. } => Some(DecisionReason::VaultRefused),
            Denial::NotGranted { .. } | Denial::UnknownRecord(_) | Denial::NotConfirmed { .. } => {
                None
            }
        }
    }

    /// Whether the refusal is for damage to the vault's own copy of the record (logged where it
    /// is found, rate-limited, and answered DATA_LOSS), not a refusal of the requester.
    pub fn is_damage(&self) -> bool {
        matches!(self, Denial::Damaged { .. })
    }

    /// The stable code: `not_finalized`, `unverified`, `no_consent`, `revoked`, …
    pub fn code(&self) -> &'static str {
        match self {
            Denial::NotFinalized(_) => "not_finalized",
            Denial::Unverified { .. } => "unverified",
            Denial::WrongEntry(_) => "wrong_entry",
            Denial::NotRequester { .. } => "not_requester",
            Denial::NotGranted { reason, .. } => reason.code(),
            Denial::WrongMode { .. } => "wrong_mode",
            Denial::NotOwner { .. } => "not_owner",
            Denial::Stale { .. } => "stale",
            Denial::UnknownRecord(_) => "unknown_record",
            Denial::OwnerMismatch(_) => "owner_mismatch",
            Denial::RecipientKey { .. } => "wrong_recipient_key",
            Denial::NotConfirmed { .. } => "not_confirmed",
            Denial::CohortUnverified { .. } => "unverified_cohort",
            Denial::NotOurCohort { .. } => "not_our_cohort",
            Denial::BelowK { .. } => "cohort_too_small",
            Denial::ForgedResult { .. } => "forged_result",
            Denial::Damaged { .. } => "vault_damaged",
        }
    }
}

/// What a release requires of the decision.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReleaseKind {
    /// A grantee's fetch: any grant.
    Grantee,
    /// A patient's own fetch: the ledger must have granted it as `owner`.
    Owner,
    /// A predicate proof: the grant must be for predicate mode.
    Predicate,
    /// Ciphertexts of a cohort, and an aggregate over it: the grant must be for aggregate mode.
    Aggregate,
}

impl ReleaseKind {
    /// The access mode the decision must be for.
    pub fn mode(self) -> AccessMode {
        match self {
            ReleaseKind::Grantee | ReleaseKind::Owner => AccessMode::Raw,
            ReleaseKind::Predicate => AccessMode::Predicate,
            ReleaseKind::Aggregate => AccessMode::Aggregate,
        }
    }
}

/// The trust anchors and freshness limit a release is checked against.
#[derive(Clone, Copy, Debug)]
pub struct GrantCheck<'a> {
    /// The consortium's genesis.
    pub genesis: &'a Genesis,
    /// Its validator set: the only signers a certificate may count.
    pub trusted: &'a ValidatorSet,
    /// The vault's clock.
    pub now: Timestamp,
    /// How old (block time) a decision may be.
    pub max_age_ms: i64,
}

impl GrantCheck<'_> {
    /// Verifies the node's answer for `request`, read-signed by `signer`: finality and
    /// inclusion against the genesis validator set, then that the entry is the granted
    /// raw-mode decision on exactly this request by exactly this signer, decided no more than
    /// `max_age_ms` before `now`.
    pub fn verify(
        &self,
        request: RequestId,
        signer: PartyId,
        kind: ReleaseKind,
        answer: Option<&access_pb::DecisionResponse>,
    ) -> Result<Decision, Denial> {
        let proven = answer
            .and_then(|a| a.proven.as_ref())
            .ok_or(Denial::NotFinalized(request))?;
        let verified = verify_proven_entry(self.genesis, self.trusted, proven).map_err(|e| {
            Denial::Unverified {
                request,
                reason: e.to_string(),
            }
        })?;
        let EntryKind::Decision(decision) = verified.entry.kind else {
            return Err(Denial::WrongEntry(request));
        };
        if decision.request_id != request {
            return Err(Denial::WrongEntry(request));
        }
        if decision.requester != signer {
            return Err(Denial::NotRequester {
                request,
                signer,
                requester: decision.requester,
            });
        }
        if !decision.granted() {
            return Err(Denial::NotGranted {
                request,
                reason: decision.reason,
            });
        }
        if decision.mode != kind.mode() {
            return Err(Denial::WrongMode {
                request,
                mode: decision.mode,
            });
        }
        if kind == ReleaseKind::Owner && decision.reason != DecisionReason::Owner {
            return Err(Denial::NotOwner {
                request,
                reason: decision.reason,
            });
        }
        if self.now.0.saturating_sub(decision.time.0) > self.max_age_ms {
            return Err(Denial::Stale {
                request,
                decided: decision.time.0,
                max_age_ms: self.max_age_ms,
            });
        }
        Ok(decision)
    }
}
