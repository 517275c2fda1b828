//! A fixed cast, its genesis, and a small driver that applies transactions block by block.
//!
//! The cast: three member organisations that vote in governance (the custodians `hospital` and
//! `clinic`, the partner `insurer`), an `auditor` and a partner `advertiser` that are not members,
//! three patients who register themselves in block 1 (`alice`, `bob`, and `dave`, who acts as
//! alice's delegate where a test needs one), and `mallory`, who is never registered. In block 2
//! the hospital registers alice's `lab` and `imaging` records and bob's `lab` record. Tests start
//! in block 3.

use std::collections::BTreeSet;

use custos_consent::{BlockContext, StateMachine, TxError};
use custos_crypto::{Hash, SecretKey, SigningKeyPair, sha256};
use custos_types::genesis::{GenesisParty, GenesisValidator};
use custos_types::tx::{
    EraseRecord, Governance, RegisterDelegate, RegisterParty, RegisterRecord, RequestAccess,
};
use custos_types::{
    AccessMode, Category, ChainId, Consent, ConsentId, ConsentPeriod, Decision, EntryKind, Genesis,
    Height, Nonce, Organisation, Parameters, PartyId, Purpose, RecordId, RequestId, Role, Scope,
    SignedTransaction, Timestamp, TransactionBody, TxKind,
};

/// The chain every test runs on.
pub(crate) const CHAIN: &str = "custos-test";
/// Genesis time; block `h` is at `T0 + h·BLOCK_MS` unless a test moves the clock on.
pub(crate) const T0: i64 = 1_700_000_000_000;
/// Time between blocks.
pub(crate) const BLOCK_MS: i64 = 1_000;

/// The key pair derived from the secret `[seed; 32]`.
pub(crate) fn key(seed: u8) -> SigningKeyPair {
    SigningKeyPair::from_secret(&SecretKey::from_slice(&[seed; 32]).expect("32-byte secret"))
}

/// The party a key pair signs as.
pub(crate) fn party(key: &SigningKeyPair) -> PartyId {
    PartyId(key.public())
}

/// The X25519 key a party registers (its value does not matter to the state machine).
pub(crate) fn encryption_key(key: &SigningKeyPair) -> [u8; 32] {
    sha256(key.public().as_bytes()).0
}

/// A purpose by its HL7 code.
pub(crate) fn purpose(code: &str) -> Purpose {
    Purpose::parse(code).expect("valid purpose code")
}

/// A category by name.
pub(crate) fn category(name: &str) -> Category {
    Category::parse(name, "category").expect("valid category")
}

/// A record id derived from a name.
pub(crate) fn record(name: &str) -> RecordId {
    RecordId(sha256(name.as_bytes()))
}

/// A digest derived from a name (ciphertexts, justifications, releases).
pub(crate) fn digest(name: &str) -> Hash {
    sha256(name.as_bytes())
}

/// An organisation identifier.
pub(crate) fn organisation(name: &str) -> Organisation {
    Organisation::parse(name, "organisation").expect("valid organisation")
}

/// The chain id.
pub(crate) fn chain() -> ChainId {
    ChainId::parse(CHAIN).expect("valid chain id")
}

/// The ledger of the module docs at the start of block 3, and its cast.
pub(crate) fn scene() -> (Ledger, Cast) {
    (Ledger::new(), Cast::new())
}

/// The fixed cast of key pairs.
pub(crate) struct Cast {
    pub(crate) hospital: SigningKeyPair,
    pub(crate) clinic: SigningKeyPair,
    pub(crate) insurer: SigningKeyPair,
    pub(crate) auditor: SigningKeyPair,
    pub(crate) advertiser: SigningKeyPair,
    pub(crate) alice: SigningKeyPair,
    pub(crate) bob: SigningKeyPair,
    pub(crate) dave: SigningKeyPair,
    pub(crate) mallory: SigningKeyPair,
    pub(crate) validator: SigningKeyPair,
}

impl Cast {
    pub(crate) fn new() -> Self {
        Cast {
            hospital: key(1),
            clinic: key(2),
            insurer: key(3),
            auditor: key(4),
            advertiser: key(5),
            alice: key(10),
            bob: key(11),
            dave: key(12),
            mallory: key(66),
            validator: key(90),
        }
    }
}

/// Alice's lab record.
pub(crate) fn alice_lab() -> RecordId {
    record("alice-lab")
}
/// Alice's imaging record.
pub(crate) fn alice_imaging() -> RecordId {
    record("alice-imaging")
}
/// Bob's lab record.
pub(crate) fn bob_lab() -> RecordId {
    record("bob-lab")
}

fn genesis_party(key: &SigningKeyPair, role: Role, org: &str, member: bool) -> GenesisParty {
    GenesisParty {
        public_key: party(key),
        role,
        encryption_key: encryption_key(key),
        organisation: organisation(org),
        member,
    }
}

/// The genesis of the test chain: break-glass disabled, three member organisations.
pub(crate) fn genesis(cast: &Cast) -> Genesis {
    Genesis {
        chain_id: chain(),
        genesis_time_ms: T0,
        parameters: Parameters::default(),
        validators: vec![GenesisValidator {
            public_key: party(&cast.validator),
            power: 1,
            address: String::new(),
        }],
        parties: vec![
            genesis_party(&cast.hospital, Role::Custodian, "st-mary-hospital", true),
            genesis_party(&cast.clinic, Role::Custodian, "north-clinic", true),
            genesis_party(&cast.insurer, Role::Partner, "acme-insurance", true),
            genesis_party(&cast.auditor, Role::Auditor, "health-regulator", false),
            genesis_party(&cast.advertiser, Role::Partner, "ad-network", false),
        ],
    }
}

/// A consent of `patient` to `grantee` over all the patient's records, for the given purposes
/// and modes, with no time bounds. Tests adjust the fields they are about.
pub(crate) fn consent(
    patient: PartyId,
    grantee: PartyId,
    purposes: &[&str],
    modes: &[AccessMode],
) -> Consent {
    Consent {
        patient,
        grantee,
        scope: Scope::AllRecords,
        purposes: purposes.iter().map(|p| purpose(p)).collect(),
        modes: modes.iter().copied().collect(),
        period: ConsentPeriod::default(),
    }
}

/// A scope listing records.
pub(crate) fn records_scope(records: &[RecordId]) -> Scope {
    Scope::Some {
        records: records.iter().copied().collect(),
        categories: BTreeSet::new(),
    }
}

/// A scope listing categories.
pub(crate) fn categories_scope(categories: &[&str]) -> Scope {
    Scope::Some {
        records: BTreeSet::new(),
        categories: categories.iter().map(|c| category(c)).collect(),
    }
}

/// A request without justification or query.
pub(crate) fn access(record_id: RecordId, purpose_code: &str, mode: AccessMode) -> RequestAccess {
    RequestAccess {
        record_id,
        purpose: purpose(purpose_code),
        mode,
        justification_digest: None,
        query: vec![],
    }
}

/// Registers a patient (no organisation).
pub(crate) fn register_patient(key: &SigningKeyPair) -> TxKind {
    TxKind::RegisterParty(RegisterParty {
        party: party(key),
        role: Role::Patient,
        encryption_key: encryption_key(key),
        organisation: Organisation::default(),
    })
}

/// Registers a record held by its author.
pub(crate) fn register_record(id: RecordId, owner: PartyId, category_name: &str) -> TxKind {
    TxKind::RegisterRecord(RegisterRecord {
        record_id: id,
        owner,
        category: category(category_name),
        ciphertext_digest: sha256(id.0.as_bytes()),
        attribute_commitment: None,
    })
}

/// Lets `delegate` act for the author until `expires`.
pub(crate) fn delegate(delegate: PartyId, expires: Option<Timestamp>) -> TxKind {
    TxKind::RegisterDelegate(RegisterDelegate {
        delegate,
        expires,
        revoke: false,
    })
}

/// Ends the author's delegation to `delegate`.
pub(crate) fn undelegate(delegate: PartyId) -> TxKind {
    TxKind::RegisterDelegate(RegisterDelegate {
        delegate,
        expires: None,
        revoke: true,
    })
}

/// Erases a record.
pub(crate) fn erase(record_id: RecordId, legal_grounds: bool) -> TxKind {
    TxKind::EraseRecord(EraseRecord {
        record_id,
        legal_grounds,
    })
}

/// Sets the consortium parameters.
pub(crate) fn set_parameters(parameters: Parameters) -> TxKind {
    TxKind::Governance(Governance::SetParameters(parameters))
}

/// Parameters with break-glass switched on or off.
pub(crate) fn break_glass(enabled: bool) -> Parameters {
    Parameters {
        break_glass_enabled: enabled,
        ..Parameters::default()
    }
}

/// Signs `kind` for `chain` with an explicit nonce.
pub(crate) fn sign(
    chain: &ChainId,
    nonce: u64,
    kind: TxKind,
    key: &SigningKeyPair,
) -> SignedTransaction {
    SignedTransaction::sign(
        &TransactionBody {
            chain_id: chain.clone(),
            nonce: Nonce(nonce),
            kind,
        },
        key,
    )
}

/// The decision of a request's entries: exactly `[Transaction(tx), Decision(d)]`.
pub(crate) fn decision_of(tx: &SignedTransaction, entries: &[EntryKind]) -> Decision {
    match entries {
        [EntryKind::Transaction(t), EntryKind::Decision(d)] => {
            assert_eq!(t, tx, "the transaction entry comes first");
            assert_eq!(
                d.request_id,
                RequestId(tx.id().0),
                "the request id is the tx id"
            );
            d.clone()
        }
        other => panic!("expected a transaction then a decision, got {other:?}"),
    }
}

/// A state machine driven block by block: transactions are applied at the current block's
/// height and time; [`Ledger::next_block`] commits (takes the changes) and moves on.
pub(crate) struct Ledger {
    pub(crate) sm: StateMachine,
    height: u64,
    time: i64,
}

impl Ledger {
    /// The chain right after genesis (height 0, nothing applied).
    pub(crate) fn at_genesis() -> Self {
        let sm = StateMachine::genesis(&genesis(&Cast::new())).expect("valid genesis");
        Ledger {
            sm,
            height: 0,
            time: T0,
        }
    }

    /// The chain with the patients and records of the module docs, at the start of block 3.
    pub(crate) fn new() -> Self {
        let c = Cast::new();
        let mut l = Ledger::at_genesis();
        l.next_block();
        for k in [&c.alice, &c.bob, &c.dave] {
            l.apply(k, register_patient(k));
        }
        l.next_block();
        l.apply(
            &c.hospital,
            register_record(alice_lab(), party(&c.alice), "lab"),
        );
        l.apply(
            &c.hospital,
            register_record(alice_imaging(), party(&c.alice), "imaging"),
        );
        l.apply(
            &c.hospital,
            register_record(bob_lab(), party(&c.bob), "lab"),
        );
        l.next_block();
        l
    }

    /// The current block.
    pub(crate) fn ctx(&self) -> BlockContext {
        BlockContext {
            height: Height(self.height),
            time: Timestamp(self.time),
        }
    }

    /// The current block time.
    pub(crate) fn now(&self) -> Timestamp {
        Timestamp(self.time)
    }

    /// Commits the current block and starts the next one, `BLOCK_MS` later.
    pub(crate) fn next_block(&mut self) {
        let at = self.time + BLOCK_MS;
        self.next_block_at(Timestamp(at));
    }

    /// Commits the current block and starts the next one at `time` (not before the current).
    pub(crate) fn next_block_at(&mut self, time: Timestamp) {
        assert!(time.0 >= self.time, "block time goes forward");
        let _ = self.sm.take_changes();
        self.height += 1;
        self.time = time.0;
        self.sm.begin_block(self.ctx());
    }

    /// `kind` signed by `key` with its next nonce.
    pub(crate) fn tx(&self, key: &SigningKeyPair, kind: TxKind) -> SignedTransaction {
        sign(&chain(), self.sm.next_nonce(&party(key)), kind, key)
    }

    /// Applies a transaction that must be accepted; returns its entries.
    pub(crate) fn apply_signed(&mut self, tx: &SignedTransaction) -> Vec<EntryKind> {
        let ctx = self.ctx();
        assert_eq!(
            self.sm.check_tx(tx, ctx),
            Ok(()),
            "check_tx accepts {}",
            tx.body().kind.name()
        );
        match self.sm.apply_tx(tx, ctx) {
            Ok(entries) => entries,
            Err(e) => panic!("{} refused: {e}", tx.body().kind.name()),
        }
    }

    /// Signs and applies a transaction that must be accepted; returns its entries.
    pub(crate) fn apply(&mut self, key: &SigningKeyPair, kind: TxKind) -> Vec<EntryKind> {
        let tx = self.tx(key, kind);
        let entries = self.apply_signed(&tx);
        assert_eq!(
            entries,
            vec![EntryKind::Transaction(tx)],
            "a non-request adds its tx only"
        );
        entries
    }

    /// Applies a transaction that must be refused, checking that `check_tx` refuses it alike and
    /// that nothing changed: not the root, not the items, not the pending changes.
    pub(crate) fn refuse_signed(&mut self, tx: &SignedTransaction) -> TxError {
        let ctx = self.ctx();
        let before = self.sm.clone();
        let checked = self.sm.check_tx(tx, ctx);
        let err = match self.sm.apply_tx(tx, ctx) {
            Ok(entries) => panic!("{} was accepted: {entries:?}", tx.body().kind.name()),
            Err(e) => e,
        };
        assert_eq!(checked, Err(err.clone()), "check_tx refuses it alike");
        assert_eq!(
            self.sm.root(),
            before.root(),
            "a refused tx leaves the root unchanged"
        );
        assert_eq!(
            self.sm.items(),
            before.items(),
            "a refused tx leaves the items unchanged"
        );
        assert_eq!(
            self.sm.clone().take_changes(),
            before.clone().take_changes(),
            "a refused tx leaves the block's changes unchanged"
        );
        err
    }

    /// Signs and applies a transaction that must be refused (see [`Ledger::refuse_signed`]).
    pub(crate) fn refuse(&mut self, key: &SigningKeyPair, kind: TxKind) -> TxError {
        let tx = self.tx(key, kind);
        self.refuse_signed(&tx)
    }

    /// Grants a consent signed by `key`; returns its id (the grant's tx id).
    pub(crate) fn grant(&mut self, key: &SigningKeyPair, consent: Consent) -> ConsentId {
        let tx = self.tx(key, TxKind::GrantConsent(consent));
        self.apply_signed(&tx);
        ConsentId(tx.id().0)
    }

    /// Revokes a consent, signed by `key`.
    pub(crate) fn revoke(&mut self, key: &SigningKeyPair, id: ConsentId) {
        self.apply(key, TxKind::RevokeConsent(id));
    }

    /// Makes a request signed by `key`; returns the decision the ledger computed.
    pub(crate) fn request(&mut self, key: &SigningKeyPair, request: RequestAccess) -> Decision {
        let tx = self.tx(key, TxKind::RequestAccess(request));
        let entries = self.apply_signed(&tx);
        decision_of(&tx, &entries)
    }

    /// Shorthand for [`Ledger::request`] without justification.
    pub(crate) fn ask(
        &mut self,
        key: &SigningKeyPair,
        record_id: RecordId,
        purpose_code: &str,
        mode: AccessMode,
    ) -> Decision {
        self.request(key, access(record_id, purpose_code, mode))
    }
}
