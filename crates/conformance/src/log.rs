//! Log entries and their leaf hashes; RFC 6962 roots, inclusion and consistency proofs, and
//! compact ranges.

use custos_client::cohort::cohort_root;
use custos_crypto::Hash;
use custos_ledger::merkle::{self, leaf_hash};
use custos_ledger::{Frontier, MerkleTree};
use custos_types::aggregate::Cohort;
use custos_types::model::AccessMode;
use custos_types::{
    ConsentId, Decision, DecisionReason, EntryKind, Height, LedgerEntry, Purpose, RecordId,
    RequestId, Timestamp,
};
use serde_json::{Value, json};

use crate::json::{self, hx};
use crate::signatures::flip;
use crate::transactions::{grant, id_of, party_id, raw_request, record, scope};
use crate::{TIME_MS, Vector};

const SPEC: &str = "log.md";

fn entry_vector(name: &str, entry: &LedgerEntry) -> Vector {
    let wire = entry.to_wire();
    let bytes = entry.to_bytes();
    let kind = match &wire.kind {
        Some(custos_proto::ledger::v1::ledger_entry::Kind::Transaction(tx)) => {
            json!({ "transaction": json::envelope(tx) })
        }
        Some(custos_proto::ledger::v1::ledger_entry::Kind::Decision(d)) => {
            json!({ "decision": json::decision(d) })
        }
        None => json!({}),
    };
    let mut fields = json!({ "version": wire.version, "height": wire.height });
    if let (Some(map), Value::Object(kind)) = (fields.as_object_mut(), kind) {
        map.extend(kind);
    }
    Vector::verdict(
        name,
        "ledger-entry",
        SPEC,
        LedgerEntry::from_bytes(&bytes),
        json!({ "fields": fields }),
        json!({ "entry": hx(&bytes), "leaf_hash": hx(leaf_hash(&bytes)) }),
    )
}

/// The decision of the raw request, granted under the grant vector's consent.
pub(crate) fn granted_decision(height: u64) -> Decision {
    Decision {
        request_id: RequestId(raw_request().id().0),
        requester: party_id("acme"),
        record_id: record(),
        patient: Some(party_id("alice")),
        purpose: Purpose::HPAYMT,
        mode: AccessMode::Raw,
        reason: DecisionReason::Consent,
        consent_id: Some(ConsentId(grant().id().0)),
        break_glass: false,
        height: Height(height),
        time: Timestamp(TIME_MS),
        cohort: None,
    }
}

fn entry_vectors() -> Vec<Vector> {
    let denied = Decision {
        request_id: RequestId(id_of("request/unknown-record")),
        requester: party_id("adco"),
        record_id: RecordId(id_of("record/unknown")),
        patient: None,
        purpose: Purpose::HMARKT,
        mode: AccessMode::Raw,
        reason: DecisionReason::UnknownRecord,
        consent_id: None,
        break_glass: false,
        height: Height(2),
        time: Timestamp(TIME_MS),
        cohort: None,
    };
    let mut members: Vec<RecordId> = (0..12)
        .map(|i| RecordId(id_of(&format!("record/cohort-{i}"))))
        .collect();
    members.sort();
    let aggregate = Decision {
        request_id: RequestId(id_of("request/aggregate")),
        requester: party_id("adco"),
        record_id: scope().cohort_id(),
        patient: None,
        purpose: Purpose::HMARKT,
        mode: AccessMode::Aggregate,
        reason: DecisionReason::Consent,
        consent_id: None,
        break_glass: false,
        height: Height(2),
        time: Timestamp(TIME_MS),
        cohort: Some(Cohort {
            root: cohort_root(&members),
            size: members.len() as u64,
        }),
    };
    let entry = |kind| LedgerEntry {
        height: Height(2),
        kind,
    };
    let mut version_1 = entry(EntryKind::Decision(granted_decision(2))).to_wire();
    version_1.version = 1;
    let version_1 = prost::Message::encode_to_vec(&version_1);
    vec![
        entry_vector(
            "log/entry-transaction",
            &entry(EntryKind::Transaction(raw_request())),
        ),
        entry_vector(
            "log/entry-decision-granted",
            &entry(EntryKind::Decision(granted_decision(2))),
        ),
        entry_vector(
            "log/entry-decision-denied",
            &entry(EntryKind::Decision(denied)),
        ),
        entry_vector(
            "log/entry-decision-aggregate",
            &entry(EntryKind::Decision(aggregate)),
        ),
        Vector::verdict(
            "log/neg-entry-version-1",
            "ledger-entry-bytes",
            SPEC,
            LedgerEntry::from_bytes(&version_1),
            json!({ "entry": hx(&version_1) }),
            json!({}),
        ),
    ]
}

/// The leaf data of the tree vectors: `"leaf 0"`, `"leaf 1"`, ….
fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}

fn tree(n: usize) -> MerkleTree {
    let mut tree = MerkleTree::new();
    for data in leaves(n) {
        tree.push(leaf_hash(&data));
    }
    tree
}

fn hexes(items: &[Hash]) -> Value {
    Value::Array(items.iter().map(hx).collect())
}

fn root_vector(n: usize) -> Vector {
    let data = leaves(n);
    Vector::valid(
        &format!("merkle/root-{n}"),
        "merkle-root",
        SPEC,
        json!({ "leaves": data.iter().map(hx).collect::<Vec<_>>() }),
        json!({ "root": hx(tree(n).root()) }),
    )
}

fn inclusion_vector(name: &str, index: u64, size: u64, path: Vec<Hash>) -> Vector {
    let data = &leaves(size as usize)[index as usize];
    let root = tree(size as usize).root();
    Vector::verdict(
        name,
        "inclusion-proof",
        SPEC,
        merkle::verify_inclusion(&leaf_hash(data), index, size, &path, &root),
        json!({
            "leaf": hx(data),
            "leaf_index": index,
            "tree_size": size,
            "path": hexes(&path),
            "root": hx(root),
        }),
        json!({}),
    )
}

fn consistency_vector(name: &str, size1: u64, size2: u64, path: Vec<Hash>) -> Vector {
    let t = tree(size2 as usize);
    let (root1, root2) = (t.root_at(size1).unwrap_or_default(), t.root());
    Vector::verdict(
        name,
        "consistency-proof",
        SPEC,
        merkle::verify_consistency(size1, size2, &root1, &root2, &path),
        json!({
            "size1": size1,
            "size2": size2,
            "root1": hx(root1),
            "root2": hx(root2),
            "path": hexes(&path),
        }),
        json!({}),
    )
}

fn proof_vectors() -> Vec<Vector> {
    let t = tree(7);
    let inclusion = |i| t.inclusion_proof(i, 7).unwrap_or_default();
    let consistency = |s| t.consistency_proof(s, 7).unwrap_or_default();
    let mut flipped = inclusion(3);
    if let Some(first) = flipped.first_mut() {
        *first = Hash::from_slice(&flip(first.as_bytes(), 0)).unwrap_or_default();
    }
    let mut short = inclusion(3);
    short.pop();
    let mut bad_consistency = consistency(3);
    if let Some(last) = bad_consistency.last_mut() {
        *last = Hash::from_slice(&flip(last.as_bytes(), 255)).unwrap_or_default();
    }
    let frontier = t.frontier(5).unwrap_or_default();
    let root5 = t.root_at(5).unwrap_or_default();
    let seeded = Frontier::from_roots(5, &frontier, &root5);
    let grown = seeded.clone().map(|mut f| {
        for data in &leaves(7)[5..] {
            f.push(leaf_hash(data));
        }
        (f.size(), f.root())
    });
    vec![
        root_vector(0),
        root_vector(1),
        root_vector(7),
        inclusion_vector("merkle/inclusion-3-of-7", 3, 7, inclusion(3)),
        inclusion_vector("merkle/inclusion-6-of-7", 6, 7, inclusion(6)),
        inclusion_vector("merkle/neg-inclusion-bit-flipped", 3, 7, flipped),
        inclusion_vector("merkle/neg-inclusion-short-path", 3, 7, short),
        consistency_vector("merkle/consistency-3-to-7", 3, 7, consistency(3)),
        consistency_vector("merkle/consistency-4-to-7", 4, 7, consistency(4)),
        consistency_vector("merkle/neg-consistency-bit-flipped", 3, 7, bad_consistency),
        Vector::verdict(
            "merkle/frontier-5-then-2",
            "frontier",
            SPEC,
            seeded,
            json!({
                "size": 5,
                "frontier": hexes(&frontier),
                "root": hx(root5),
                "appended": leaves(7)[5..].iter().map(hx).collect::<Vec<_>>(),
            }),
            json!({
                "size": grown.as_ref().map_or(0, |g| g.0),
                "root": hx(grown.map_or(Hash::ZERO, |g| g.1)),
            }),
        ),
    ]
}

pub(crate) fn vectors() -> Vec<Vector> {
    entry_vectors().into_iter().chain(proof_vectors()).collect()
}
