//! Access decisions: computed by the state machine for every request, granted or denied.

use std::fmt;

use custos_proto::access::v1 as pb;
use serde::{Deserialize, Serialize};

use crate::aggregate::Cohort;
use crate::error::{FieldError, Within};
use crate::ids::{ConsentId, Height, PartyId, RecordId, RequestId, Timestamp};
use crate::model::AccessMode;
use crate::purpose::Purpose;

/// Why a request was granted or denied.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionReason {
    /// Granted: a consent covers the request.
    Consent,
    /// Granted: the requester owns the record.
    Owner,
    /// Granted without consent for emergency treatment, flagged for review.
    BreakGlass,
    /// Denied: no consent for this requester and record.
    NoConsent,
    /// Denied: the consent was revoked.
    Revoked,
    /// Denied: the consent has expired.
    Expired,
    /// Denied: the consent is not yet in force.
    NotYetValid,
    /// Denied: the consent does not cover the purpose.
    PurposeNotCovered,
    /// Denied: the consent does not cover the access mode.
    ModeNotCovered,
    /// Denied: no such record.
    UnknownRecord,
    /// Denied: the record was erased.
    Erased,
    /// Denied: the requester's role may not access records.
    NotAuthorized,
    /// Denied: break-glass purpose, but the consortium has break-glass disabled.
    BreakGlassDisabled,
    /// Denied: break-glass purpose without a justification.
    JustificationRequired,
    /// Denied by the custodian's vault: the fetch was signed by someone other than the requester.
    VaultNotRequester,
    /// Denied by the custodian's vault: the decision's certificate or proof did not verify.
    VaultUnverified,
    /// Denied by the custodian's vault: no finalized decision when the fetch came.
    VaultNotFinalized,
    /// Denied by the custodian's vault for another reason (mode, age, recipient key, owner).
    VaultRefused,
    /// Denied: the aggregate cohort is smaller than the consortium's minimum (empty included).
    CohortTooSmall,
    /// Denied by the custodian's vault: the record's stored key or ciphertext is damaged
    /// (missing, truncated or altered), found before anything was released.
    VaultDamaged,
}

impl DecisionReason {
    /// Whether this reason grants access.
    pub fn is_grant(self) -> bool {
        matches!(
            self,
            DecisionReason::Consent | DecisionReason::Owner | DecisionReason::BreakGlass
        )
    }

    /// Whether a custodian's vault decided this (through a reported refusal), not the consent
    /// rules.
    pub fn is_vault_refusal(self) -> bool {
        matches!(
            self,
            DecisionReason::VaultNotRequester
                | DecisionReason::VaultUnverified
                | DecisionReason::VaultNotFinalized
                | DecisionReason::VaultRefused
                | DecisionReason::VaultDamaged
        )
    }

    /// The snake_case code, e.g. `no_consent`.
    pub fn code(self) -> &'static str {
        match self {
            DecisionReason::Consent => "consent",
            DecisionReason::Owner => "owner",
            DecisionReason::BreakGlass => "break_glass",
            DecisionReason::NoConsent => "no_consent",
            DecisionReason::Revoked => "revoked",
            DecisionReason::Expired => "expired",
            DecisionReason::NotYetValid => "not_yet_valid",
            DecisionReason::PurposeNotCovered => "purpose_not_covered",
            DecisionReason::ModeNotCovered => "mode_not_covered",
            DecisionReason::UnknownRecord => "unknown_record",
            DecisionReason::Erased => "erased",
            DecisionReason::NotAuthorized => "not_authorized",
            DecisionReason::BreakGlassDisabled => "break_glass_disabled",
            DecisionReason::JustificationRequired => "justification_required",
            DecisionReason::VaultNotRequester => "vault_not_requester",
            DecisionReason::VaultUnverified => "vault_unverified",
            DecisionReason::VaultNotFinalized => "vault_not_finalized",
            DecisionReason::VaultRefused => "vault_refused",
            DecisionReason::VaultDamaged => "vault_damaged",
            DecisionReason::CohortTooSmall => "cohort_too_small",
        }
    }

    /// The wire enum value.
    pub fn to_wire(self) -> i32 {
        use pb::DecisionReason as W;
        (match self {
            DecisionReason::Consent => W::Consent,
            DecisionReason::Owner => W::Owner,
            DecisionReason::BreakGlass => W::BreakGlass,
            DecisionReason::NoConsent => W::NoConsent,
            DecisionReason::Revoked => W::Revoked,
            DecisionReason::Expired => W::Expired,
            DecisionReason::NotYetValid => W::NotYetValid,
            DecisionReason::PurposeNotCovered => W::PurposeNotCovered,
            DecisionReason::ModeNotCovered => W::ModeNotCovered,
            DecisionReason::UnknownRecord => W::UnknownRecord,
            DecisionReason::Erased => W::Erased,
            DecisionReason::NotAuthorized => W::NotAuthorized,
            DecisionReason::BreakGlassDisabled => W::BreakGlassDisabled,
            DecisionReason::JustificationRequired => W::JustificationRequired,
            DecisionReason::VaultNotRequester => W::VaultNotRequester,
            DecisionReason::VaultUnverified => W::VaultUnverified,
            DecisionReason::VaultNotFinalized => W::VaultNotFinalized,
            DecisionReason::VaultRefused => W::VaultRefused,
            DecisionReason::VaultDamaged => W::VaultDamaged,
            DecisionReason::CohortTooSmall => W::CohortTooSmall,
        }) as i32
    }

    /// Parses the wire enum value found in `field`.
    pub fn from_wire(value: i32, field: &str) -> Result<Self, FieldError> {
        use pb::DecisionReason as W;
        let wire = W::try_from(value)
            .map_err(|_| FieldError::new(field, format!("unknown decision reason {value}")))?;
        Ok(match wire {
            W::Unspecified => return Err(FieldError::new(field, "decision reason is unspecified")),
            W::Consent => DecisionReason::Consent,
            W::Owner => DecisionReason::Owner,
            W::BreakGlass => DecisionReason::BreakGlass,
            W::NoConsent => DecisionReason::NoConsent,
            W::Revoked => DecisionReason::Revoked,
            W::Expired => DecisionReason::Expired,
            W::NotYetValid => DecisionReason::NotYetValid,
            W::PurposeNotCovered => DecisionReason::PurposeNotCovered,
            W::ModeNotCovered => DecisionReason::ModeNotCovered,
            W::UnknownRecord => DecisionReason::UnknownRecord,
            W::Erased => DecisionReason::Erased,
            W::NotAuthorized => DecisionReason::NotAuthorized,
            W::BreakGlassDisabled => DecisionReason::BreakGlassDisabled,
            W::JustificationRequired => DecisionReason::JustificationRequired,
            W::VaultNotRequester => DecisionReason::VaultNotRequester,
            W::VaultUnverified => DecisionReason::VaultUnverified,
            W::VaultNotFinalized => DecisionReason::VaultNotFinalized,
            W::VaultRefused => DecisionReason::VaultRefused,
            W::VaultDamaged => DecisionReason::VaultDamaged,
            W::CohortTooSmall => DecisionReason::CohortTooSmall,
        })
    }
}

impl fmt::Display for DecisionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// The ledger's decision on one access request.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Decision {
    /// The request decided.
    pub request_id: RequestId,
    /// Who asked.
    pub requester: PartyId,
    /// For which record.
    pub record_id: RecordId,
    /// The record's owner, if the record is known.
    pub patient: Option<PartyId>,
    /// Why.
    pub purpose: Purpose,
    /// How.
    pub mode: AccessMode,
    /// The outcome; grants iff [`DecisionReason::is_grant`].
    pub reason: DecisionReason,
    /// The consent relied on, or the closest one that failed.
    pub consent_id: Option<ConsentId>,
    /// Whether this is an emergency access without consent.
    pub break_glass: bool,
    /// Block height of the decision.
    pub height: Height,
    /// Block time of the decision.
    pub time: Timestamp,
    /// Aggregate requests only: the record set the decision includes, present on every
    /// aggregate decision that reached the cohort (reasons consent and cohort_too_small).
    pub cohort: Option<Cohort>,
}

impl Decision {
    /// Whether access was granted.
    pub fn granted(&self) -> bool {
        self.reason.is_grant()
    }
}

impl From<&Decision> for pb::AccessDecision {
    fn from(d: &Decision) -> Self {
        pb::AccessDecision {
            request_id: d.request_id.to_vec(),
            requester: d.requester.to_vec(),
            record_id: d.record_id.to_vec(),
            patient: d.patient.map_or(vec![], |p| p.to_vec()),
            purpose: d.purpose.code().to_string(),
            mode: d.mode.to_wire(),
            granted: d.granted(),
            reason: d.reason.to_wire(),
            consent_id: d.consent_id.map_or(vec![], |c| c.to_vec()),
            break_glass: d.break_glass,
            height: d.height.0,
            time_ms: d.time.0,
            cohort: d.cohort.as_ref().map(pb::Cohort::from),
        }
    }
}

impl TryFrom<pb::AccessDecision> for Decision {
    type Error = FieldError;
    fn try_from(w: pb::AccessDecision) -> Result<Self, FieldError> {
        let reason = DecisionReason::from_wire(w.reason, "reason")?;
        if reason.is_grant() != w.granted {
            return Err(FieldError::new(
                "granted",
                format!("contradicts reason {reason}"),
            ));
        }
        let mode = crate::model::AccessMode::from_wire(w.mode, "mode")?;
        let cohort = match w.cohort {
            Some(c) => Some(Cohort::try_from(c).within("cohort")?),
            None => None,
        };
        // Only aggregate decisions carry a cohort, and those that reached it always do.
        let needs_cohort = mode == AccessMode::Aggregate
            && matches!(
                reason,
                DecisionReason::Consent | DecisionReason::CohortTooSmall
            );
        if cohort.is_some() != needs_cohort {
            return Err(FieldError::new(
                "cohort",
                format!(
                    "a {mode} decision with reason {reason} {} a cohort",
                    if needs_cohort { "needs" } else { "carries no" }
                ),
            ));
        }
        Ok(Decision {
            request_id: RequestId::from_field(&w.request_id, "request_id")?,
            requester: PartyId::from_field(&w.requester, "requester")?,
            record_id: RecordId::from_field(&w.record_id, "record_id")?,
            patient: if w.patient.is_empty() {
                None
            } else {
                Some(PartyId::from_field(&w.patient, "patient")?)
            },
            purpose: Purpose::parse(&w.purpose)
                .map_err(|e| FieldError::new("purpose", e.to_string()))?,
            mode,
            reason,
            consent_id: if w.consent_id.is_empty() {
                None
            } else {
                Some(ConsentId::from_field(&w.consent_id, "consent_id")?)
            },
            break_glass: w.break_glass,
            height: Height(w.height),
            time: Timestamp(w.time_ms),
            cohort,
        })
    }
}
