//! Header hashes, validator-set hashes, commit sign bytes, commit certificates and the state root.

use custos_consent::state::{Kv, StateKey, StateValue};
use custos_crypto::{Hash, PublicKey, Signature, SigningKeyPair};
use custos_ledger::{BlockHeader, CommitCertificate, Validator, ValidatorSet, commit_message};
use custos_types::Parameters;
use serde_json::{Value, json};

use crate::json::{self, hx};
use crate::transactions::id_of;
use crate::{CHAIN_ID, SILENT_VALIDATOR, TIME_MS, Vector, party};

const SPEC: &str = "blocks.md";

/// The consortium's validators: four of power 1.
pub(crate) fn validators() -> Vec<SigningKeyPair> {
    [
        "validator-1",
        "validator-2",
        "validator-3",
        SILENT_VALIDATOR,
    ]
    .iter()
    .map(|n| party(n))
    .collect()
}

/// The validator set of [`validators`].
pub(crate) fn validator_set() -> ValidatorSet {
    let set = ValidatorSet::new(
        validators()
            .iter()
            .map(|k| Validator {
                key: k.public(),
                power: 1,
            })
            .collect(),
    );
    match set {
        Ok(set) => set,
        Err(e) => unreachable!("four distinct validators of power 1: {e}"),
    }
}

/// The example header: height 3 of the vectors' chain.
pub(crate) fn example_header() -> BlockHeader {
    BlockHeader {
        chain_id: CHAIN_ID.into(),
        height: 3,
        time_ms: TIME_MS,
        prev_hash: id_of("header/2"),
        log_size: 9,
        log_root: id_of("log-root/9"),
        state_root: id_of("state-root/3"),
        tx_count: 4,
        proposer: party("validator-2").public(),
        next_validators_hash: validator_set().hash(),
    }
}

fn certificate_json(cert: &CommitCertificate) -> Value {
    let w = cert.to_wire();
    json!({
        "height": w.height,
        "round": w.round,
        "header_hash": hx(&w.header_hash),
        "signatures": w.signatures.iter().map(|s| json!({
            "validator": hx(&s.validator),
            "signature": hx(&s.signature),
        })).collect::<Vec<_>>(),
    })
}

fn set_json(set: &ValidatorSet) -> Value {
    Value::Array(
        set.validators()
            .iter()
            .map(|v| json!({ "public_key": hx(v.key.as_bytes()), "power": v.power }))
            .collect(),
    )
}

fn certificate_vector(name: &str, header: &BlockHeader, cert: &CommitCertificate) -> Vector {
    let set = validator_set();
    Vector::verdict(
        name,
        "certificate",
        SPEC,
        cert.verify(header, &set),
        json!({
            "header": json::header(&header.to_wire()),
            "validators": set_json(&set),
            "certificate": certificate_json(cert),
        }),
        json!({
            "header_hash": hx(header.hash()),
            "commit_bytes": hx(commit_message(&header.chain_id, header.height, cert.round, &header.hash())),
        }),
    )
}

fn certificate_vectors() -> Vec<Vector> {
    let header = example_header();
    let keys = validators();
    let signers = |n: usize| keys.iter().take(n).collect::<Vec<_>>();
    let valid = CommitCertificate::sign(&header, 0, &signers(3));
    let mut duplicate = CommitCertificate::sign(&header, 0, &signers(2));
    if let Some(first) = duplicate.signatures.first().copied() {
        duplicate.signatures.push(first);
    }
    let mut unknown = CommitCertificate::sign(&header, 0, &signers(2));
    let outsider = party("auditor");
    let message = commit_message(&header.chain_id, header.height, 0, &header.hash());
    unknown
        .signatures
        .push((outsider.public(), outsider.sign(&message)));
    // Signed for round 1, presented as round 0.
    let mut wrong_round = CommitCertificate::sign(&header, 1, &signers(3));
    wrong_round.round = 0;
    vec![
        certificate_vector("certificate/valid", &header, &valid),
        certificate_vector(
            "certificate/neg-two-of-four",
            &header,
            &CommitCertificate::sign(&header, 0, &signers(2)),
        ),
        certificate_vector("certificate/neg-duplicate-signer", &header, &duplicate),
        certificate_vector("certificate/neg-unknown-signer", &header, &unknown),
        certificate_vector("certificate/neg-wrong-round", &header, &wrong_round),
        exactly_two_thirds(),
    ]
}

/// Three validators of power 1 and two signers: exactly 2/3, which is not more than 2/3.
fn exactly_two_thirds() -> Vector {
    let header = example_header();
    let keys = validators();
    let set = ValidatorSet::new(
        keys.iter()
            .take(3)
            .map(|k| Validator {
                key: k.public(),
                power: 1,
            })
            .collect(),
    );
    let cert = CommitCertificate::sign(&header, 0, &keys.iter().take(2).collect::<Vec<_>>());
    let verdict = set
        .as_ref()
        .map_err(ToString::to_string)
        .and_then(|s| cert.verify(&header, s).map_err(|e| e.to_string()));
    Vector::verdict(
        "certificate/neg-exactly-two-thirds",
        "certificate",
        SPEC,
        verdict,
        json!({
            "header": json::header(&header.to_wire()),
            "validators": set.as_ref().map_or(Value::Null, set_json),
            "certificate": certificate_json(&cert),
        }),
        json!({ "header_hash": hx(header.hash()) }),
    )
}

fn state_root_vector() -> Vector {
    let mut kv = Kv::default();
    kv.put(StateKey::Params, StateValue::Params(Parameters::default()));
    let items: Vec<Value> = kv
        .iter()
        .map(|(k, v)| json!({ "key": hx(k.to_bytes()), "value": hx(v.to_bytes()) }))
        .collect();
    Vector::valid(
        "state/root-parameters-only",
        "state-root",
        SPEC,
        json!({ "items": items }),
        json!({ "root": hx(kv.root()) }),
    )
}

pub(crate) fn vectors() -> Vec<Vector> {
    let header = example_header();
    let set = validator_set();
    let mut valset_bytes = b"custos/valset/v1".to_vec();
    for v in set.validators() {
        valset_bytes.extend_from_slice(v.key.as_bytes());
        valset_bytes.extend_from_slice(&v.power.to_be_bytes());
    }
    // The inputs list the validators in their given (unsorted) order.
    let given: Vec<Value> = validators()
        .iter()
        .rev()
        .map(|k| json!({ "public_key": hx(k.public().as_bytes()), "power": 1 }))
        .collect();
    let header_hash: Hash = id_of("header/7");
    let round = 2u32;
    let commit = commit_message(CHAIN_ID, 7, round, &header_hash);
    let signer = party("validator-1");
    let signature = signer.sign(&commit);
    let verified = PublicKey::from_slice(signer.public().as_bytes())
        .and_then(|k| k.verify(&commit, &Signature::from_slice(&signature.to_bytes())?));
    let mut out = vec![
        Vector::valid(
            "header/hash",
            "header",
            SPEC,
            json!({ "fields": json::header(&header.to_wire()) }),
            json!({
                "bytes": hx(header.canonical_bytes()),
                "header_hash": hx(header.hash()),
            }),
        ),
        Vector::valid(
            "valset/hash",
            "validator-set",
            SPEC,
            json!({ "validators": given }),
            json!({ "bytes": hx(&valset_bytes), "hash": hx(set.hash()) }),
        ),
        Vector::verdict(
            "commit/message",
            "commit-message",
            SPEC,
            verified,
            json!({
                "chain_id": CHAIN_ID,
                "height": 7,
                "round": round,
                "header_hash": hx(header_hash),
                "seed": hx(crate::seed("validator-1")),
            }),
            json!({
                "bytes": hx(&commit),
                "public_key": hx(signer.public().as_bytes()),
                "signature": hx(signature.to_bytes()),
            }),
        ),
    ];
    out.extend(certificate_vectors());
    out.push(state_root_vector());
    out
}
