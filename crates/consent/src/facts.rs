//! The state's answers to the read policy ([`custos_types::policy`]).

use custos_types::policy::{Facts, RequestParties};
use custos_types::{ConsentId, PartyId, RecordId, RequestId, Timestamp};

use crate::machine::StateMachine;

/// The state at `now`, as the read policy asks about it.
pub struct StateFacts<'a> {
    /// The state.
    pub machine: &'a StateMachine,
    /// The time delegations are judged at.
    pub now: Timestamp,
}

impl Facts for StateFacts<'_> {
    fn record_holders(&self, record: &RecordId) -> Option<(PartyId, PartyId)> {
        self.machine.record(record).map(|r| (r.owner, r.custodian))
    }

    fn consent_parties(&self, consent: &ConsentId) -> Option<(PartyId, PartyId)> {
        self.machine
            .consent(consent)
            .map(|c| (c.consent.patient, c.consent.grantee))
    }

    fn request_parties(&self, request: &RequestId) -> Option<RequestParties> {
        let state = self.machine.request(request)?;
        let holders = self.record_holders(&state.record_id);
        Some(RequestParties {
            requester: state.requester,
            patient: holders.map(|(owner, _)| owner),
            custodian: holders
                .map(|(_, custodian)| custodian)
                .or_else(|| self.machine.cohort(request).map(|c| c.custodian)),
        })
    }

    fn acts_for(&self, patient: &PartyId, party: &PartyId) -> bool {
        self.machine.is_delegate(patient, party, self.now)
    }
}
