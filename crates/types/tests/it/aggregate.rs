//! Aggregate scopes and cohorts on the wire: the cohort id, the pinned encodings, and decisions
//! that carry a cohort exactly when they must.

use custos_crypto::{SecretKey, SigningKeyPair, sha256, sha256_parts};
use custos_proto::access::v1 as pb;
use custos_types::aggregate::COHORT_ID_DOMAIN;
use custos_types::{
    AccessMode, AggregateScope, Category, Cohort, Decision, DecisionReason, EntryKind, Height,
    LedgerEntry, PartyId, Purpose, RecordId, RequestId, Timestamp,
};

fn key(seed: u8) -> SigningKeyPair {
    SigningKeyPair::from_secret(&SecretKey::from_slice(&[seed; 32]).expect("32 bytes"))
}

fn scope() -> AggregateScope {
    AggregateScope {
        custodian: PartyId(key(1).public()),
        category: Category::parse("lab", "category").expect("category"),
        text: "COUNT WHERE age >= 40".into(),
    }
}

fn aggregate_decision(reason: DecisionReason, cohort: Option<Cohort>) -> Decision {
    Decision {
        request_id: RequestId(sha256(b"request")),
        requester: PartyId(key(2).public()),
        record_id: scope().cohort_id(),
        patient: None,
        purpose: Purpose::HRESCH,
        mode: AccessMode::Aggregate,
        reason,
        consent_id: None,
        break_glass: false,
        height: Height(3),
        time: Timestamp(1_750_000_000_000),
        cohort,
    }
}

fn cohort() -> Cohort {
    Cohort {
        root: sha256(b"cohort"),
        size: 12,
    }
}

#[test]
fn the_cohort_id_is_the_domain_separated_hash_of_custodian_and_category() {
    let s = scope();
    assert_eq!(
        s.cohort_id(),
        RecordId(sha256_parts(&[
            COHORT_ID_DOMAIN,
            s.custodian.0.as_bytes(),
            b"lab"
        ]))
    );
    let other = AggregateScope {
        category: Category::parse("imaging", "category").expect("category"),
        ..scope()
    };
    assert_ne!(other.cohort_id(), s.cohort_id());
    let text = AggregateScope {
        text: "SUM(weight)".into(),
        ..scope()
    };
    assert_eq!(
        text.cohort_id(),
        s.cohort_id(),
        "the text does not name the dataset"
    );
}

#[test]
fn the_aggregate_scope_and_cohort_decision_encodings_are_pinned() {
    let query = scope().to_query();
    assert_eq!(AggregateScope::from_query(&query), Ok(scope()));
    let entry = LedgerEntry {
        height: Height(3),
        kind: EntryKind::Decision(aggregate_decision(DecisionReason::Consent, Some(cohort()))),
    };
    let bytes = entry.to_bytes();
    assert_eq!(LedgerEntry::from_bytes(&bytes).as_ref(), Ok(&entry));
    assert_eq!(
        [
            sha256(&query).to_hex(),
            LedgerEntry::leaf_hash_of(&bytes).to_hex()
        ],
        [
            "575caccfeac70bea648dc6d9678b8106dbc364a59c0a84b77e9364ab7a48fdef",
            "4f833a6580aa46c3ef5af629632ccf3f10d0a2874fdd54e8dbf5dad9fc8f8477"
        ],
        "the AggregateScope or AccessDecision encoding changed: update these pins on purpose"
    );
}

#[test]
fn a_decision_carries_a_cohort_exactly_when_it_is_an_aggregate_that_reached_one() {
    let wire = |d: &Decision| pb::AccessDecision::from(d);
    for (reason, cohort, ok) in [
        (DecisionReason::Consent, Some(cohort()), true),
        (DecisionReason::CohortTooSmall, Some(cohort()), true),
        (DecisionReason::NotAuthorized, None, true),
        (DecisionReason::Consent, None, false),
        (DecisionReason::CohortTooSmall, None, false),
        (DecisionReason::NotAuthorized, Some(cohort()), false),
    ] {
        let d = aggregate_decision(reason, cohort);
        let back = Decision::try_from(wire(&d));
        if ok {
            assert_eq!(back, Ok(d));
        } else {
            assert_eq!(
                back.map_err(|e| e.field),
                Err("cohort".to_string()),
                "{reason}"
            );
        }
    }
    let raw = Decision {
        mode: AccessMode::Raw,
        ..aggregate_decision(DecisionReason::Consent, Some(cohort()))
    };
    assert_eq!(
        Decision::try_from(wire(&raw)).map_err(|e| e.field),
        Err("cohort".to_string())
    );
    let short_root = pb::AccessDecision {
        cohort: Some(pb::Cohort {
            root: vec![1; 31],
            size: 1,
        }),
        ..wire(&aggregate_decision(DecisionReason::Consent, Some(cohort())))
    };
    assert_eq!(
        Decision::try_from(short_root).map_err(|e| e.field),
        Err("cohort.root".to_string())
    );
}

#[test]
fn cohort_too_small_maps_to_its_wire_value() {
    let reason = DecisionReason::CohortTooSmall;
    assert_eq!(reason.to_wire(), 21);
    assert_eq!(reason.code(), "cohort_too_small");
    assert!(!reason.is_grant());
    assert_eq!(DecisionReason::from_wire(21, "reason"), Ok(reason));
}
