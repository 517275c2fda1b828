//! An audit bundle of a three-block chain, verified by the product's offline verifier, and
//! bundles it refuses.

use custos_client::bundle::{BUNDLE_VERSION, verify_bundle};
use custos_crypto::Hash;
use custos_ledger::merkle::leaf_hash;
use custos_ledger::{BlockHeader, CommitCertificate, MerkleTree};
use custos_proto::audit::v1 as audit_pb;
use custos_proto::ledger::v1 as pb;
use custos_types::genesis::{GenesisParty, GenesisValidator};
use custos_types::model::Organisation;
use custos_types::tx::{ConfirmRelease, TxKind};
use custos_types::{EntryKind, Genesis, Height, LedgerEntry, Parameters, PartyId, RequestId, Role};
use prost::Message;
use serde_json::json;

use crate::blocks::{validator_set, validators};
use crate::json::hx;
use crate::signatures::flip;
use crate::transactions::{chain, id_of, party_id, raw_request, signed};
use crate::{CHAIN_ID, TIME_MS, Vector};

const SPEC: &str = "audit-bundle.md";

/// The genesis the bundle vectors verify against.
pub(crate) fn genesis() -> Genesis {
    let org = |name: &str| Organisation::parse(name, "organisation").unwrap_or_default();
    let member = |name: &str, role: Role, organisation: &str, member: bool| GenesisParty {
        public_key: party_id(name),
        role,
        encryption_key: id_of(&format!("x25519/{name}")).0,
        organisation: org(organisation),
        member,
    };
    Genesis {
        chain_id: chain(),
        genesis_time_ms: TIME_MS - 3_600_000,
        parameters: Parameters::default(),
        validators: validators()
            .iter()
            .enumerate()
            .map(|(i, k)| GenesisValidator {
                public_key: PartyId(k.public()),
                power: 1,
                address: format!("/ip4/127.0.0.1/tcp/2700{}", i + 1),
            })
            .collect(),
        parties: vec![
            member("hospital", Role::Custodian, "st-mary", true),
            member("clinic", Role::Custodian, "north-clinic", true),
            member("acme", Role::Partner, "acme-insurance", false),
            member("auditor", Role::Auditor, "regulator", false),
        ],
    }
}

/// The entries of blocks 1 to 3: a patient registers; a partner asks and is granted; the
/// custodian confirms the release.
fn blocks() -> Vec<Vec<LedgerEntry>> {
    let at = |h: u64, kind| LedgerEntry {
        height: Height(h),
        kind,
    };
    let register = signed(
        "alice",
        0,
        TxKind::RegisterParty(custos_types::tx::RegisterParty {
            party: party_id("alice"),
            role: Role::Patient,
            encryption_key: id_of("x25519/alice").0,
            organisation: Organisation::default(),
        }),
        &[],
    );
    let request = raw_request();
    let confirm = signed(
        "hospital",
        0,
        TxKind::ConfirmRelease(ConfirmRelease {
            request_id: RequestId(request.id().0),
            release_digest: crate::ids::record_release_digest(),
        }),
        &[],
    );
    vec![
        vec![at(1, EntryKind::Transaction(register))],
        vec![
            at(2, EntryKind::Transaction(request)),
            at(2, EntryKind::Decision(crate::log::granted_decision(2))),
        ],
        vec![at(3, EntryKind::Transaction(confirm))],
    ]
}

/// The bundle of blocks `from..=3`, each header certified by three of the four validators.
fn bundle(from: u64) -> audit_pb::AuditBundle {
    let keys = validators();
    let signers: Vec<_> = keys.iter().take(3).collect();
    let set = validator_set();
    let mut tree = MerkleTree::new();
    let mut prev = Hash::ZERO;
    let mut headers = Vec::new();
    let mut bundle_blocks = Vec::new();
    let mut frontier = Vec::new();
    for (i, entries) in blocks().iter().enumerate() {
        let height = i as u64 + 1;
        if height == from {
            frontier = tree.frontier(tree.len()).unwrap_or_default();
        }
        let bytes: Vec<Vec<u8>> = entries.iter().map(LedgerEntry::to_bytes).collect();
        for b in &bytes {
            tree.push(leaf_hash(b));
        }
        let header = BlockHeader {
            chain_id: CHAIN_ID.into(),
            height,
            time_ms: TIME_MS + height as i64 * 1000,
            prev_hash: prev,
            log_size: tree.len(),
            log_root: tree.root(),
            state_root: id_of(&format!("state-root/{height}")),
            tx_count: entries
                .iter()
                .filter(|e| matches!(e.kind, EntryKind::Transaction(_)))
                .count() as u32,
            proposer: keys[i % keys.len()].public(),
            next_validators_hash: set.hash(),
        };
        prev = header.hash();
        let cert = CommitCertificate::sign(&header, 0, &signers);
        headers.push(pb::SignedHeader {
            header: Some(header.to_wire()),
            certificate: Some(cert.to_wire()),
            validator_set: (height == 1).then(|| set.to_wire()),
        });
        if height >= from {
            bundle_blocks.push(audit_pb::BundleBlock {
                height,
                entries: bytes,
            });
        }
    }
    audit_pb::AuditBundle {
        version: BUNDLE_VERSION,
        chain_id: CHAIN_ID.into(),
        exported_at_ms: TIME_MS + 60_000,
        from_height: from,
        to_height: headers.len() as u64,
        headers,
        frontier: frontier.iter().map(|h| h.0.to_vec()).collect(),
        blocks: bundle_blocks,
    }
}

fn bundle_vector(name: &str, bundle: &audit_pb::AuditBundle) -> Vector {
    let genesis = genesis();
    let verdict = verify_bundle(&genesis, bundle);
    let outputs = match &verdict {
        Ok(v) => json!({
            "entries": v.entries.len(),
            "first_index": v.first_index,
            "decisions": v.decisions(),
            "tip_hash": hx(v.tip.hash()),
        }),
        Err(_) => json!({}),
    };
    Vector::verdict(
        name,
        "audit-bundle",
        SPEC,
        verdict,
        json!({
            "genesis": serde_json::to_value(&genesis).unwrap_or_default(),
            "bundle": hx(bundle.encode_to_vec()),
        }),
        outputs,
    )
}

pub(crate) fn vectors() -> Vec<Vector> {
    let good = bundle(2);
    let mut flipped = good.clone();
    if let Some(entry) = flipped.blocks.get_mut(0).and_then(|b| b.entries.get_mut(1)) {
        *entry = flip(entry, 8 * entry.len() - 2);
    }
    let mut removed = good.clone();
    if let Some(block) = removed.blocks.get_mut(0) {
        block.entries.pop();
    }
    let version_1 = audit_pb::AuditBundle {
        version: 1,
        ..good.clone()
    };
    vec![
        bundle_vector("bundle/two-blocks-from-2", &good),
        bundle_vector("bundle/whole-log", &bundle(1)),
        bundle_vector("bundle/neg-entry-bit-flipped", &flipped),
        bundle_vector("bundle/neg-entry-removed", &removed),
        bundle_vector("bundle/neg-version-1", &version_1),
    ]
}
