//! The read policy: who may see which log entry, decision, consent and record.
//!
//! One rule, applied by every read (the audit API, the raw ledger, access and consent reads,
//! block streams): an auditor sees everything; anyone else sees what concerns them. What
//! concerns a party is written here once, per item:
//!
//! - a decision: its requester, the record's patient, and the custodian of the record (or of an
//!   aggregate request's cohort);
//! - a record: its owner and custodian, and the requester of a granted request for it;
//! - a consent: its patient, grantee and whoever granted it, and the patient's delegates;
//! - a transaction: its author and the parties its kind names or touches (a grant's patient and
//!   grantee, a request's record holders, an erasure's record holders, …); governance concerns
//!   every party, as it changes the consortium everyone relies on and names no patient.
//!
//! Headers, certificates, validator sets and consistency proofs are public and not covered here.

use std::collections::BTreeSet;

use crate::decision::Decision;
use crate::entry::{EntryKind, LedgerEntry};
use crate::ids::{ConsentId, PartyId, RecordId, RequestId};
use crate::model::Role;
use crate::tx::{SignedTransaction, TxKind};

/// Who reads, as the ledger knows them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Reader {
    /// The reader's key (a signed read's author).
    pub party: PartyId,
    /// Its registered role.
    pub role: Role,
}

impl Reader {
    /// Whether the reader sees everything (an auditor).
    pub fn sees_everything(&self) -> bool {
        self.role == Role::Auditor
    }

    /// Whether the reader may see an item that concerns `concerned`.
    pub fn may_see(&self, concerned: &Concerned, ledger: &impl Facts) -> bool {
        self.sees_everything()
            || concerned.everyone
            || concerned.parties.contains(&self.party)
            || concerned
                .patient
                .is_some_and(|p| ledger.acts_for(&p, &self.party))
    }
}

/// The parties an item concerns.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Concerned {
    /// Parties it concerns.
    pub parties: BTreeSet<PartyId>,
    /// A patient whose current delegates it also concerns.
    pub patient: Option<PartyId>,
    /// Whether it concerns every party.
    pub everyone: bool,
}

impl Concerned {
    fn of(parties: impl IntoIterator<Item = PartyId>) -> Self {
        Concerned {
            parties: parties.into_iter().collect(),
            ..Default::default()
        }
    }

    fn add(&mut self, parties: impl IntoIterator<Item = PartyId>) {
        self.parties.extend(parties);
    }
}

/// The parties of a decided request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct RequestParties {
    /// Who asked.
    pub requester: PartyId,
    /// The record's owner (none for an aggregate request or an unknown record).
    pub patient: Option<PartyId>,
    /// The custodian holding the record, or the aggregate request's cohort.
    pub custodian: Option<PartyId>,
}

impl RequestParties {
    fn all(self) -> impl Iterator<Item = PartyId> {
        [Some(self.requester), self.patient, self.custodian]
            .into_iter()
            .flatten()
    }
}

/// What the policy needs to know of the ledger's state.
pub trait Facts {
    /// A registered record's owner and custodian.
    fn record_holders(&self, record: &RecordId) -> Option<(PartyId, PartyId)>;
    /// A consent's patient and grantee.
    fn consent_parties(&self, consent: &ConsentId) -> Option<(PartyId, PartyId)>;
    /// A decided request's parties.
    fn request_parties(&self, request: &RequestId) -> Option<RequestParties>;
    /// Whether `party` is a current delegate of `patient`.
    fn acts_for(&self, patient: &PartyId, party: &PartyId) -> bool;
}

/// Whom a decision concerns.
pub fn decision(d: &Decision, ledger: &impl Facts) -> Concerned {
    let mut concerned = Concerned::of([d.requester]);
    concerned.add(d.patient);
    match ledger.record_holders(&d.record_id) {
        Some((owner, custodian)) => concerned.add([owner, custodian]),
        None => concerned.add(
            ledger
                .request_parties(&d.request_id)
                .and_then(|r| r.custodian),
        ),
    }
    concerned
}

/// Whom a record concerns: its owner and custodian.
pub fn record(owner: PartyId, custodian: PartyId) -> Concerned {
    Concerned::of([owner, custodian])
}

/// Whom a consent concerns: its patient (and their delegates), grantee and granter.
pub fn consent(patient: PartyId, grantee: PartyId, granted_by: PartyId) -> Concerned {
    Concerned {
        patient: Some(patient),
        ..Concerned::of([patient, grantee, granted_by])
    }
}

/// Whom a transaction concerns.
pub fn transaction(tx: &SignedTransaction, ledger: &impl Facts) -> Concerned {
    let mut concerned = Concerned::of([tx.author()]);
    let holders = |record: &RecordId| {
        ledger
            .record_holders(record)
            .map(|(owner, custodian)| [owner, custodian])
            .into_iter()
            .flatten()
    };
    let request = |request: &RequestId| {
        ledger
            .request_parties(request)
            .into_iter()
            .flat_map(|r| r.all())
    };
    match &tx.body().kind {
        TxKind::RegisterParty(p) => concerned.add([p.party]),
        TxKind::RegisterRecord(r) => concerned.add([r.owner]),
        TxKind::GrantConsent(c) => {
            concerned.add([c.patient, c.grantee]);
            concerned.patient = Some(c.patient);
        }
        TxKind::RevokeConsent(id) => {
            if let Some((patient, grantee)) = ledger.consent_parties(id) {
                concerned.add([patient, grantee]);
                concerned.patient = Some(patient);
            }
        }
        TxKind::RegisterDelegate(d) => concerned.add([d.delegate]),
        TxKind::RequestAccess(r) => {
            concerned.add(holders(&r.record_id));
            concerned.add(request(&RequestId(tx.id().0)));
        }
        TxKind::ConfirmRelease(c) => concerned.add(request(&c.request_id)),
        TxKind::EraseRecord(e) => concerned.add(holders(&e.record_id)),
        TxKind::ReportRefusal(r) => {
            concerned.add([r.requester]);
            concerned.add(request(&r.request_id));
        }
        TxKind::Governance(_) => concerned.everyone = true,
    }
    concerned
}

/// Whom a log entry concerns.
pub fn entry(entry: &LedgerEntry, ledger: &impl Facts) -> Concerned {
    match &entry.kind {
        EntryKind::Transaction(tx) => transaction(tx, ledger),
        EntryKind::Decision(d) => decision(d, ledger),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use custos_crypto::{Hash, SecretKey, SigningKeyPair};

    use super::*;
    use crate::ids::{ChainId, Height, Nonce, Timestamp};
    use crate::model::AccessMode;
    use crate::tx::{EraseRecord, TransactionBody};
    use crate::{DecisionReason, Purpose};

    fn key(seed: u8) -> SigningKeyPair {
        SigningKeyPair::from_secret(&SecretKey::from_slice(&[seed; 32]).expect("32 bytes"))
    }

    fn id(seed: u8) -> PartyId {
        PartyId(key(seed).public())
    }

    /// The ledger facts of the tests: one record of patient 1 held by custodian 2, one request
    /// for it by partner 3, and patient 1's delegate 5.
    #[derive(Default)]
    struct Ledger {
        records: BTreeMap<RecordId, (PartyId, PartyId)>,
        requests: BTreeMap<RequestId, RequestParties>,
        delegates: BTreeSet<(PartyId, PartyId)>,
    }

    impl Facts for Ledger {
        fn record_holders(&self, record: &RecordId) -> Option<(PartyId, PartyId)> {
            self.records.get(record).copied()
        }
        fn consent_parties(&self, _: &ConsentId) -> Option<(PartyId, PartyId)> {
            None
        }
        fn request_parties(&self, request: &RequestId) -> Option<RequestParties> {
            self.requests.get(request).copied()
        }
        fn acts_for(&self, patient: &PartyId, party: &PartyId) -> bool {
            self.delegates.contains(&(*patient, *party))
        }
    }

    const RECORD: RecordId = RecordId(Hash([9; 32]));
    const REQUEST: RequestId = RequestId(Hash([8; 32]));

    fn ledger() -> Ledger {
        let mut l = Ledger::default();
        l.records.insert(RECORD, (id(1), id(2)));
        l.requests.insert(
            REQUEST,
            RequestParties {
                requester: id(3),
                patient: Some(id(1)),
                custodian: Some(id(2)),
            },
        );
        l.delegates.insert((id(1), id(5)));
        l
    }

    fn reader(seed: u8, role: Role) -> Reader {
        Reader {
            party: id(seed),
            role,
        }
    }

    fn the_decision() -> Decision {
        Decision {
            request_id: REQUEST,
            requester: id(3),
            record_id: RECORD,
            patient: Some(id(1)),
            purpose: Purpose::parse("TREAT").expect("a purpose"),
            mode: AccessMode::Raw,
            reason: DecisionReason::NoConsent,
            consent_id: None,
            break_glass: false,
            height: Height(1),
            time: Timestamp(1),
            cohort: None,
        }
    }

    #[test]
    fn a_decision_concerns_its_requester_patient_and_custodian_only() {
        let l = ledger();
        let d = decision(&the_decision(), &l);
        assert!(reader(1, Role::Patient).may_see(&d, &l));
        assert!(reader(2, Role::Custodian).may_see(&d, &l));
        assert!(reader(3, Role::Partner).may_see(&d, &l));
        assert!(reader(6, Role::Auditor).may_see(&d, &l));
        assert!(!reader(4, Role::Patient).may_see(&d, &l), "another patient");
        assert!(!reader(7, Role::Partner).may_see(&d, &l), "another partner");
        assert!(
            !reader(8, Role::Custodian).may_see(&d, &l),
            "another custodian"
        );
    }

    #[test]
    fn an_erasure_concerns_the_records_custodian_and_owner() {
        let l = ledger();
        let body = TransactionBody {
            chain_id: ChainId::parse("custos-test").expect("a chain id"),
            nonce: Nonce(0),
            kind: TxKind::EraseRecord(EraseRecord {
                record_id: RECORD,
                legal_grounds: false,
            }),
        };
        let tx = SignedTransaction::sign(&body, &key(1));
        let erasure = transaction(&tx, &l);
        assert!(reader(2, Role::Custodian).may_see(&erasure, &l));
        assert!(reader(1, Role::Patient).may_see(&erasure, &l));
        assert!(!reader(3, Role::Partner).may_see(&erasure, &l));
    }

    #[test]
    fn a_consent_concerns_the_patients_delegates_too() {
        let l = ledger();
        let c = consent(id(1), id(3), id(1));
        assert!(reader(5, Role::Patient).may_see(&c, &l), "a delegate");
        assert!(reader(3, Role::Partner).may_see(&c, &l), "the grantee");
        assert!(!reader(7, Role::Partner).may_see(&c, &l));
        let r = record(id(1), id(2));
        assert!(
            !reader(5, Role::Patient).may_see(&r, &l),
            "delegates act on consents"
        );
    }
}
