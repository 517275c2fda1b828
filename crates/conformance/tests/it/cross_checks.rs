//! The few vectors whose bytes the generator builds from the specification itself are checked
//! here against the product code that owns them (the predicate circuit's encoder, the vault's
//! release digest), and every "bytes → hash" vector against SHA-256.

use custos_circuits::{Predicate, Schema};
use custos_crypto::sha256;
use custos_proto::vault::v1 as vault_pb;
use custos_types::{RecordId, RequestId};
use serde_json::Value;

fn vector(name: &str) -> Value {
    let doc = custos_conformance::document();
    doc["vectors"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["name"] == name).cloned())
        .unwrap_or_else(|| panic!("no vector {name}"))
}

fn bytes(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("hex")
}

#[test]
fn predicate_vectors_are_the_circuits_canonical_encoding() {
    for name in [
        "query/predicate-adult-non-smoker",
        "query/predicate-set",
        "query/predicate-true",
    ] {
        let v = vector(name);
        let text = v["inputs"]["text"].as_str().expect("text");
        let predicate = Predicate::parse(text, &Schema::default()).expect("the circuit parses it");
        assert_eq!(
            bytes(&v["outputs"]["bytes"]),
            predicate.to_canonical_bytes().to_vec(),
            "{name}"
        );
        assert_eq!(
            bytes(&v["outputs"]["digest"]),
            predicate.digest().to_vec(),
            "{name}"
        );
    }
    let refused = vector("query/neg-predicate-non-canonical-set");
    assert!(Predicate::from_canonical_bytes(&bytes(&refused["inputs"]["bytes"])).is_err());
}

#[test]
fn the_record_release_vector_is_the_vaults_release_digest() {
    let v = vector("id/release-record");
    let parts: Vec<Value> = v["inputs"]["parts"].as_array().expect("parts").clone();
    let part = |name: &str| {
        bytes(
            &parts
                .iter()
                .find(|p| p["name"] == name)
                .unwrap_or_else(|| panic!("part {name}"))["hex"],
        )
    };
    let wrapped = custos_vault::wrap::WrappedKey::from_wire(&vault_pb::WrappedKey {
        recipient: part("recipient"),
        recipient_key: part("recipient_key"),
        encapsulated_key: part("encapsulated_key"),
        ciphertext: part("sealed_key"),
    })
    .expect("a well-formed wrapped key");
    let digest = custos_vault::release_digest(
        &RequestId::from_field(&part("request_id"), "request_id").expect("id"),
        &RecordId::from_field(&part("record_id"), "record_id").expect("id"),
        &wrapped,
        &custos_crypto::Hash::from_slice(&part("ciphertext_digest")).expect("digest"),
    );
    assert_eq!(bytes(&v["outputs"]["digest"]), digest.0.to_vec());
}

#[test]
fn every_bytes_and_hash_pair_is_sha256() {
    let doc = custos_conformance::document();
    let mut checked = 0;
    for v in doc["vectors"].as_array().expect("vectors") {
        let out = &v["outputs"];
        // An aggregate scope's cohort id hashes the custodian and category, not the scope bytes.
        let keys: &[&str] = if v["kind"] == "cohort-id" {
            &["cohort_id"]
        } else {
            &["digest", "hash", "header_hash"]
        };
        for key in keys {
            if let (Some(b), Some(h)) = (out["bytes"].as_str(), out[*key].as_str()) {
                assert_eq!(
                    hex::encode(sha256(&hex::decode(b).expect("hex")).0),
                    h,
                    "{}",
                    v["name"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "only {checked} byte/hash pairs");
}
