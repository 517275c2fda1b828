//! Aggregate decisions: the cohort an aggregate request includes, fixed at decision time.
//!
//! An aggregate request names a custodian and a category ([`AggregateScope`]). Its cohort is
//! every non-erased record of that category held by that custodian whose owner has a consent to
//! the requester that is in force at the block time (not revoked, within its period), covers the
//! purpose (descendants included), allows mode aggregate and whose scope covers the record. The
//! decision commits to the cohort by [`Cohort`] (RFC 6962 root over the sorted ids, and the
//! count) and grants iff the count reaches the consortium's `min_cohort_size`; the state keeps
//! the ids so that nodes can serve them and workers and vaults can check them against the root.
//!
//! Work per decision: one range scan of the `(custodian, category)` index — O(log S + R) for R
//! such records in a state of S items — plus, once per distinct owner among them, a scan of that
//! owner's consents — O(C) for C consents in all — and an RFC 6962 root over the members. So
//! its cost is linear in the custodian's records of the category, never in the whole state.

use std::collections::BTreeMap;

use custos_crypto::Hash;
use custos_ledger::merkle;
use custos_types::tx::RequestAccess;
use custos_types::{
    AccessMode, AggregateScope, Cohort, Consent, Decision, DecisionReason, PartyId, Purpose,
    RecordId, RequestId, Role, SignedTransaction, Timestamp,
};

use crate::error::TxError;
use crate::machine::{BlockContext, Plan, StateMachine};
use crate::state::{CohortState, RequestState, StateKey, StateValue};

/// The cohort of record ids sorted ascending: their RFC 6962 root (leaf data: the 32 id bytes)
/// and their number. The caller keeps them sorted; the state machine produces them so.
pub fn cohort_of(sorted: &[RecordId]) -> Cohort {
    let leaves: Vec<Hash> = sorted
        .iter()
        .map(|id| merkle::leaf_hash(id.0.as_bytes()))
        .collect();
    Cohort {
        root: merkle::root_of(&leaves),
        size: sorted.len() as u64,
    }
}

impl StateMachine {
    /// The cohort an aggregate request's decision fixed (none for other requests, and for
    /// aggregate requests denied before their cohort was computed).
    pub fn cohort(&self, request: &RequestId) -> Option<&CohortState> {
        match self.kv.get(&StateKey::Cohort(*request)) {
            Some(StateValue::Cohort(c)) => Some(c),
            _ => None,
        }
    }

    /// Plans an aggregate request: a malformed scope or one naming no custodian refuses the
    /// transaction; otherwise the decision is logged, granted or denied.
    pub(crate) fn plan_aggregate(
        &self,
        tx: &SignedTransaction,
        r: &RequestAccess,
        ctx: BlockContext,
        plan: &mut Plan,
    ) -> Result<(), TxError> {
        let scope = r
            .aggregate_scope()
            .map_err(|e| TxError::Field(e.within("request_access")))?
            .ok_or_else(|| TxError::Invalid {
                field: "request_access.mode",
                reason: format!("expected aggregate, got {}", r.mode),
            })?;
        match self.party(&scope.custodian) {
            Some(p) if p.role == Role::Custodian => {}
            Some(p) => {
                return Err(TxError::Invalid {
                    field: "request_access.query.custodian",
                    reason: format!(
                        "expected a custodian, got {} who is a {}",
                        scope.custodian.short(),
                        p.role
                    ),
                });
            }
            None => {
                return Err(TxError::UnknownParty {
                    field: "request_access.query.custodian",
                    party: scope.custodian,
                });
            }
        }
        let requester = tx.author();
        let request_id = RequestId(tx.id().0);
        let role = self.party(&requester).map(|p| p.role);
        let (reason, cohort) = if matches!(
            role,
            Some(Role::Auditor) | Some(Role::ValidatorOperator) | None
        ) {
            (DecisionReason::NotAuthorized, None)
        } else {
            let records = self.cohort_records(requester, r.purpose, &scope, ctx.time);
            let cohort = cohort_of(&records);
            let k = u64::from(self.parameters().min_cohort_size);
            let reason = if cohort.size > 0 && cohort.size >= k {
                DecisionReason::Consent
            } else {
                DecisionReason::CohortTooSmall
            };
            plan.writes.push((
                StateKey::Cohort(request_id),
                StateValue::Cohort(CohortState {
                    custodian: scope.custodian,
                    category: scope.category,
                    records,
                }),
            ));
            (reason, Some(cohort))
        };
        let decision = Decision {
            request_id,
            requester,
            record_id: r.record_id,
            // Many patients or none: the members are in the cohort, not here.
            patient: None,
            purpose: r.purpose,
            mode: AccessMode::Aggregate,
            reason,
            // A cohort relies on one consent per member; the cohort itself is the evidence.
            consent_id: None,
            break_glass: false,
            height: ctx.height,
            time: ctx.time,
            cohort,
        };
        plan.writes.push((
            StateKey::Request(request_id),
            StateValue::Request(RequestState {
                requester,
                record_id: r.record_id,
                purpose: r.purpose,
                mode: AccessMode::Aggregate,
                granted: decision.granted(),
                decided: ctx.height,
                released: None,
            }),
        ));
        plan.decision = Some(decision);
        Ok(())
    }

    /// The cohort's record ids, ascending (the index's order within one custodian and category).
    fn cohort_records(
        &self,
        requester: PartyId,
        purpose: Purpose,
        scope: &AggregateScope,
        time: Timestamp,
    ) -> Vec<RecordId> {
        let from = StateKey::CustodianRecord(
            scope.custodian,
            scope.category.clone(),
            RecordId(Hash([0u8; 32])),
        );
        let to = StateKey::CustodianRecord(
            scope.custodian,
            scope.category.clone(),
            RecordId(Hash([0xff; 32])),
        );
        // Each owner's usable consents, looked up once however many records they have.
        let mut usable: BTreeMap<PartyId, Vec<&Consent>> = BTreeMap::new();
        let mut members = Vec::new();
        for (key, _) in self.kv.range(from, to) {
            let StateKey::CustodianRecord(_, _, id) = key else {
                continue;
            };
            let Some(record) = self.record(id) else {
                continue;
            };
            if record.erased.is_some() {
                continue;
            }
            let consents = usable.entry(record.owner).or_insert_with(|| {
                self.aggregate_consents(&record.owner, requester, purpose, time)
            });
            if consents
                .iter()
                .any(|c| c.scope.covers(id, &record.category))
            {
                members.push(*id);
            }
        }
        members
    }

    /// `owner`'s consents to `requester` in force at `time` that cover `purpose` in mode
    /// aggregate (scopes are checked per record).
    fn aggregate_consents(
        &self,
        owner: &PartyId,
        requester: PartyId,
        purpose: Purpose,
        time: Timestamp,
    ) -> Vec<&Consent> {
        self.consents_of(owner)
            .into_iter()
            .filter(|(_, state)| state.revoked.is_none())
            .map(|(_, state)| &state.consent)
            .filter(|c| {
                c.grantee == requester
                    && c.period.not_before.is_none_or(|t| t <= time)
                    && c.period.expires.is_none_or(|t| time < t)
                    && c.covers_purpose(purpose)
                    && c.modes.contains(&AccessMode::Aggregate)
            })
            .collect()
    }
}
