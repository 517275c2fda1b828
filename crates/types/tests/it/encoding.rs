//! Pinned encodings. Every signed or persisted encoding is versioned; these digests change only
//! by an explicit decision to change the wire format (and its version).

use std::collections::BTreeSet;

use custos_crypto::{SecretKey, SigningKeyPair, sha256};
use custos_types::{
    AccessMode, Category, ChainId, Consent, ConsentPeriod, Decision, DecisionReason, EntryKind,
    Height, LedgerEntry, Nonce, PartyId, Purpose, RecordId, RequestId, Scope, SignedTransaction,
    Timestamp, TransactionBody, TxKind,
};

fn key(seed: u8) -> SigningKeyPair {
    SigningKeyPair::from_secret(&SecretKey::from_slice(&[seed; 32]).expect("32 bytes"))
}

fn grant() -> SignedTransaction {
    let body = TransactionBody {
        chain_id: ChainId::parse("custos-fixture").expect("chain"),
        nonce: Nonce(7),
        kind: TxKind::GrantConsent(Consent {
            patient: PartyId(key(1).public()),
            grantee: PartyId(key(2).public()),
            scope: Scope::Some {
                records: BTreeSet::from([RecordId(sha256(b"record"))]),
                categories: BTreeSet::from([Category::parse("lab", "c").expect("category")]),
            },
            purposes: BTreeSet::from([Purpose::HPAYMT, Purpose::TREAT]),
            modes: BTreeSet::from([AccessMode::Raw, AccessMode::Aggregate]),
            period: ConsentPeriod {
                not_before: Some(Timestamp(1_700_000_000_000)),
                expires: Some(Timestamp(1_800_000_000_000)),
            },
        }),
    };
    SignedTransaction::sign(&body, &key(1))
}

#[test]
fn the_transaction_body_encoding_is_pinned() {
    let tx = grant();
    assert_eq!(
        sha256(tx.body_bytes()).to_hex(),
        "6ebb9cd1a43d5b7e43f409c84b0d4b148ad3a6ad9766274861c541707ecfc5cc",
        "the TransactionBody encoding changed: bump its version and update this pin on purpose"
    );
}

#[test]
fn the_ledger_entry_encoding_is_pinned_and_round_trips() {
    let tx = grant();
    let decision = Decision {
        request_id: RequestId(sha256(b"request")),
        requester: PartyId(key(2).public()),
        record_id: RecordId(sha256(b"record")),
        patient: Some(PartyId(key(1).public())),
        purpose: Purpose::HPAYMT,
        mode: AccessMode::Raw,
        reason: DecisionReason::Consent,
        consent_id: Some(custos_types::ConsentId(tx.id().0)),
        break_glass: false,
        height: Height(3),
        time: Timestamp(1_750_000_000_000),
        cohort: None,
    };
    let entries = [
        LedgerEntry {
            height: Height(3),
            kind: EntryKind::Transaction(tx),
        },
        LedgerEntry {
            height: Height(3),
            kind: EntryKind::Decision(decision),
        },
    ];
    let mut digests = Vec::new();
    for entry in &entries {
        let bytes = entry.to_bytes();
        assert_eq!(&LedgerEntry::from_bytes(&bytes).expect("decodes"), entry);
        digests.push(LedgerEntry::leaf_hash_of(&bytes).to_hex());
    }
    assert_eq!(
        digests,
        [
            "4a017ad2e139886fc368f7bb4d544a00d7a0c96eba3599f2f56ef4432d551bc0",
            "3292fedb7221990f179fa0f110e5b82b5cb12a28a72308087588d6387f9b9fc0"
        ],
        "the LedgerEntry encoding changed: bump its version and update these pins on purpose"
    );
}
