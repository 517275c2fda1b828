//! Cohort ids and roots, and the digests a vault confirms on the ledger before a release.

use custos_client::cohort::cohort_root;
use custos_crypto::{Hash, sha256, sha256_parts};
use custos_types::RecordId;
use custos_types::aggregate::{COHORT_ID_DOMAIN, cohort_id};
use serde_json::json;

use crate::json::hx;
use crate::transactions::{id_of, party_id, raw_request, record, scope};
use crate::{Vector, party};

const SPEC: &str = "ids.md";

/// Domain of a raw record release's digest, with its terminating zero byte.
pub(crate) const RELEASE_TAG: &[u8] = b"custos/vault/release/v1\0";
/// Domain of the digest of a predicate released as false.
pub(crate) const PREDICATE_FALSE_TAG: &[u8] = b"custos/predicate-false/v1";
/// Domain of an aggregate release's digest.
pub(crate) const AGGREGATE_RELEASE_TAG: &[u8] = b"custos/aggregate-release/v1";

/// The wrapped key of the release vector: recipient, recipient X25519 key, HPKE encapsulated key
/// (32 bytes) and sealed data key (48 bytes).
pub(crate) fn wrapped_key_parts() -> ([u8; 32], [u8; 32], [u8; 32], Vec<u8>) {
    let sealed = [
        id_of("release/sealed-key").0.to_vec(),
        id_of("release/sealed-key-tail").0[..16].to_vec(),
    ]
    .concat();
    (
        *party("acme").public().as_bytes(),
        id_of("x25519/acme").0,
        id_of("release/encapsulated-key").0,
        sealed,
    )
}

/// The ciphertext digest the release vector names.
pub(crate) fn ciphertext_digest() -> Hash {
    id_of("ciphertext/lab-1")
}

fn record_release_preimage() -> Vec<u8> {
    let (recipient, recipient_key, encapsulated, sealed) = wrapped_key_parts();
    [
        RELEASE_TAG,
        raw_request().id().0.as_bytes(),
        record().0.as_bytes(),
        &recipient,
        &recipient_key,
        &encapsulated,
        &sealed,
        ciphertext_digest().as_bytes(),
    ]
    .concat()
}

/// The digest of the raw release of the vectors' record to acme.
pub(crate) fn record_release_digest() -> Hash {
    sha256(&record_release_preimage())
}

/// The text an aggregate release digest covers, as the vault writes it.
pub(crate) fn released_text(aggregate: &str, count: u64, value: Option<f64>) -> String {
    format!(
        "{aggregate};count={count};value={}",
        value.map_or("none".to_string(), |v| format!("{v:?}"))
    )
}

pub(crate) fn vectors() -> Vec<Vector> {
    let scope = scope();
    let cohort = cohort_id(&scope.custodian, &scope.category);
    let mut ids: Vec<RecordId> = (0..5)
        .map(|i| RecordId(id_of(&format!("record/cohort-{i}"))))
        .collect();
    ids.sort();
    let request = raw_request().id();
    let (recipient, recipient_key, encapsulated, sealed) = wrapped_key_parts();
    let predicate = crate::queries::adult_non_smoker();
    let false_preimage = [
        PREDICATE_FALSE_TAG,
        request.0.as_bytes(),
        sha256(&predicate).as_bytes(),
    ]
    .concat();
    let result_digest = id_of("aggregate/encrypted-result");
    let released = released_text("mean", 14, Some(28.5));
    let aggregate_preimage = [
        AGGREGATE_RELEASE_TAG,
        request.0.as_bytes(),
        result_digest.as_bytes(),
        released.as_bytes(),
    ]
    .concat();
    vec![
        Vector::valid(
            "id/cohort",
            "cohort-id",
            SPEC,
            json!({
                "custodian": hx(scope.custodian.0.as_bytes()),
                "category": scope.category.as_str(),
            }),
            json!({
                "bytes": hx([COHORT_ID_DOMAIN, scope.custodian.0.as_bytes(), scope.category.as_str().as_bytes()].concat()),
                "cohort_id": hx(cohort.0),
            }),
        ),
        Vector::valid(
            "id/cohort-root",
            "cohort-root",
            SPEC,
            json!({ "record_ids": ids.iter().map(|r| hx(r.0)).collect::<Vec<_>>() }),
            json!({ "root": hx(cohort_root(&ids)), "size": ids.len() }),
        ),
        Vector::valid(
            "id/cohort-root-empty",
            "cohort-root",
            SPEC,
            json!({ "record_ids": [] }),
            json!({ "root": hx(cohort_root(&[])), "size": 0 }),
        ),
        Vector::valid(
            "id/release-record",
            "digest",
            SPEC,
            json!({
                "parts": [
                    { "name": "domain", "text": String::from_utf8_lossy(RELEASE_TAG) },
                    { "name": "request_id", "hex": hx(request.0) },
                    { "name": "record_id", "hex": hx(record().0) },
                    { "name": "recipient", "hex": hx(recipient) },
                    { "name": "recipient_key", "hex": hx(recipient_key) },
                    { "name": "encapsulated_key", "hex": hx(encapsulated) },
                    { "name": "sealed_key", "hex": hx(&sealed) },
                    { "name": "ciphertext_digest", "hex": hx(ciphertext_digest()) },
                ],
            }),
            json!({
                "bytes": hx(record_release_preimage()),
                "digest": hx(record_release_digest()),
            }),
        ),
        Vector::valid(
            "id/release-predicate-false",
            "digest",
            SPEC,
            json!({
                "parts": [
                    { "name": "domain", "text": String::from_utf8_lossy(PREDICATE_FALSE_TAG) },
                    { "name": "request_id", "hex": hx(request.0) },
                    { "name": "predicate_digest", "sha256_of_hex": hx(predicate) },
                ],
            }),
            json!({
                "bytes": hx(&false_preimage),
                "digest": hx(sha256_parts(&[&false_preimage])),
            }),
        ),
        Vector::valid(
            "id/release-aggregate",
            "digest",
            SPEC,
            json!({
                "parts": [
                    { "name": "domain", "text": String::from_utf8_lossy(AGGREGATE_RELEASE_TAG) },
                    { "name": "request_id", "hex": hx(request.0) },
                    { "name": "result_digest", "hex": hx(result_digest) },
                    { "name": "released", "text": released },
                ],
                "aggregate": "mean",
                "count": 14,
                "value": 28.5,
            }),
            json!({
                "bytes": hx(&aggregate_preimage),
                "digest": hx(sha256(&aggregate_preimage)),
            }),
        ),
        Vector::valid(
            "id/release-aggregate-count",
            "digest",
            SPEC,
            json!({
                "parts": [
                    { "name": "domain", "text": String::from_utf8_lossy(AGGREGATE_RELEASE_TAG) },
                    { "name": "request_id", "hex": hx(request.0) },
                    { "name": "result_digest", "hex": hx(result_digest) },
                    { "name": "released", "text": released_text("count", 40, None) },
                ],
                "aggregate": "count",
                "count": 40,
                "value": null,
            }),
            json!({
                "bytes": hx([AGGREGATE_RELEASE_TAG, request.0.as_bytes(), result_digest.as_bytes(), released_text("count", 40, None).as_bytes()].concat()),
                "digest": hx(sha256_parts(&[AGGREGATE_RELEASE_TAG, request.0.as_bytes(), result_digest.as_bytes(), released_text("count", 40, None).as_bytes()])),
            }),
        ),
    ]
    .into_iter()
    .chain(std::iter::once(party_id_vector()))
    .collect()
}

/// A party id is the key itself: no hashing (pins that the id is not derived).
fn party_id_vector() -> Vector {
    let alice = party_id("alice");
    Vector::valid(
        "id/party",
        "party-id",
        SPEC,
        json!({ "seed": hx(crate::seed("alice")) }),
        json!({ "party_id": hx(alice.0.as_bytes()) }),
    )
}
