//! The actors' story through the `custos` binary alone, against a node process, ending with an
//! auditor's review (flags, accounting of disclosures, role limits) and offline verification of
//! a saved log and an exported bundle, each of which catches tampering.

use std::path::Path;
use std::process::Output;

use crate::{custos, init_and_start_node, keygen, ok_json, refused, until_ok};

fn run(args: &[&str], node: &str, key: Option<&Path>) -> Output {
    let mut cmd = custos();
    cmd.arg("--json").args(args).env("CUSTOS_NODE", node);
    if let Some(k) = key {
        cmd.env("CUSTOS_KEY", k);
    }
    cmd.output().unwrap()
}

#[test]
fn actors_use_the_cli_end_to_end_and_the_auditor_reviews_and_verifies_the_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (hospital, hospital_pk) = keygen(d, "hospital");
    let (insurer, insurer_pk) = keygen(d, "insurer");
    let (auditor, _) = keygen(d, "auditor");
    let (alice, alice_pk) = keygen(d, "alice");
    let node_dir = d.join("node");
    let parties = format!(
        "custodian:st-mary:{}:member,partner:acme:{}:member,auditor:regulator:{}",
        hospital.display(),
        insurer.display(),
        auditor.display()
    );
    let (mut child, node, genesis) = init_and_start_node(&node_dir, &parties, &["--break-glass"]);
    ok_json(until_ok(|| {
        run(&["patient", "register"], &node, Some(&alice))
    }));

    let record = ok_json(run(
        &[
            "custodian",
            "register-record",
            "--owner",
            &alice_pk,
            "--category",
            "lab",
        ],
        &node,
        Some(&hospital),
    ))["record_id"]
        .as_str()
        .unwrap()
        .to_string();
    let consent = ok_json(run(
        &[
            "patient",
            "grant",
            "--grantee",
            &insurer_pk,
            "--purpose",
            "HPAYMT",
            "--category",
            "lab",
        ],
        &node,
        Some(&alice),
    ))["consent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let granted = ok_json(run(
        &[
            "partner",
            "request",
            "--record",
            &record,
            "--purpose",
            "HPAYMT",
        ],
        &node,
        Some(&insurer),
    ));
    assert_eq!(granted["granted"], true);
    assert_eq!(granted["consent_id"], consent.as_str());
    let consents = ok_json(run(&["patient", "consents"], &node, Some(&alice)));
    assert_eq!(consents.as_array().unwrap().len(), 1);
    ok_json(run(
        &["patient", "revoke", "--consent", &consent],
        &node,
        Some(&alice),
    ));
    let denied = ok_json(run(
        &[
            "partner",
            "request",
            "--record",
            &record,
            "--purpose",
            "HPAYMT",
        ],
        &node,
        Some(&insurer),
    ));
    assert_eq!(
        (denied["granted"].clone(), denied["reason"].clone()),
        (false.into(), "revoked".into())
    );
    let history = ok_json(run(&["patient", "history"], &node, Some(&alice)));
    assert_eq!(history.as_array().unwrap().len(), 2);

    // The auditor saves the log, verified, and checks it again offline.
    let saved = d.join("log.bin");
    let log = ok_json(run(
        &[
            "audit",
            "log",
            "--genesis",
            genesis.to_str().unwrap(),
            "--save",
            saved.to_str().unwrap(),
        ],
        &node,
        Some(&auditor),
    ));
    assert_eq!(log["verified"], true);
    assert_eq!(log["entries"].as_array().unwrap().len(), 2);
    let denied_only = ok_json(run(
        &["audit", "log", "--decision", "denied"],
        &node,
        Some(&auditor),
    ));
    assert_eq!(denied_only["entries"].as_array().unwrap().len(), 1);
    let chain = ok_json(run(
        &[
            "audit",
            "verify-chain",
            "--genesis",
            genesis.to_str().unwrap(),
        ],
        &node,
        None,
    ));
    assert!(chain["verified_height"].as_u64().unwrap() >= 6);

    // An emergency: the hospital breaks the glass for alice's record, without her consent.
    let alice_s = alice_pk.as_str();
    let glass = ok_json(run(
        &[
            "partner",
            "request",
            "--record",
            &record,
            "--purpose",
            "ETREAT",
            "--justification",
            "unconscious patient in the emergency room",
        ],
        &node,
        Some(&hospital),
    ));
    assert_eq!(
        (glass["granted"].clone(), glass["break_glass"].clone()),
        (true.into(), true.into())
    );

    // What a compliance officer reviews: the break-glass access and the insurer's attempt after
    // the revocation; a spike of denials only once the threshold is one.
    let flags = ok_json(run(&["audit", "flags"], &node, Some(&auditor)));
    assert_eq!(flags["break_glass"].as_array().unwrap().len(), 1);
    assert_eq!(flags["break_glass"][0]["record_id"], record.as_str());
    assert_eq!(flags["break_glass"][0]["requester"], hospital_pk.as_str());
    assert_eq!(flags["after_revocation"].as_array().unwrap().len(), 1);
    assert_eq!(
        flags["after_revocation"][0]["requester"],
        insurer_pk.as_str()
    );
    assert_eq!(flags["denial_spikes"].as_array().unwrap().len(), 0);
    let spiky = ok_json(run(
        &["audit", "flags", "--denials", "1"],
        &node,
        Some(&auditor),
    ));
    assert_eq!(spiky["denial_spikes"][0]["requester"], insurer_pk.as_str());
    assert_eq!(spiky["denial_spikes"][0]["denials"], 1);

    // The accounting of disclosures for alice, verified against the genesis: the insurer's
    // access under her consent and the hospital's break-glass access; the denial is not a
    // disclosure. Alice gets the same for herself; the insurer sees only its own access.
    let g = genesis.to_str().unwrap();
    let by_auditor = ok_json(run(
        &["audit", "disclosures", "--patient", alice_s, "--genesis", g],
        &node,
        Some(&auditor),
    ));
    assert_eq!(by_auditor["verified"], true);
    assert_eq!(by_auditor["patient"], alice_s);
    let list = by_auditor["disclosures"].as_array().unwrap();
    let seen: Vec<(&str, &str, bool)> = list
        .iter()
        .map(|d| {
            (
                d["organisation"].as_str().unwrap(),
                d["purpose"].as_str().unwrap(),
                d["break_glass"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [("acme", "HPAYMT", false), ("st-mary", "ETREAT", true)]
    );
    assert!(list.iter().all(|d| d["record_id"] == record.as_str()));
    let by_alice = ok_json(run(
        &["audit", "disclosures", "--genesis", g],
        &node,
        Some(&alice),
    ));
    assert_eq!(by_alice["disclosures"], by_auditor["disclosures"]);
    let by_insurer = ok_json(run(
        &["audit", "disclosures", "--patient", alice_s],
        &node,
        Some(&insurer),
    ));
    assert_eq!(by_insurer["verified"], false);
    assert_eq!(by_insurer["disclosures"].as_array().unwrap().len(), 1);
    assert_eq!(by_insurer["disclosures"][0]["organisation"], "acme");
    let csv = run(
        &[
            "audit",
            "disclosures",
            "--patient",
            alice_s,
            "--format",
            "csv",
        ],
        &node,
        Some(&auditor),
    );
    assert!(csv.status.success());
    assert_eq!(String::from_utf8_lossy(&csv.stdout).lines().count(), 3);
    // Another patient's history, or another requester's, is refused, naming the field.
    let (bob, _) = keygen(d, "bob");
    ok_json(run(&["patient", "register"], &node, Some(&bob)));
    let why = refused(run(
        &["audit", "disclosures", "--patient", alice_s],
        &node,
        Some(&bob),
    ));
    assert!(why.contains("query.patient"), "{why}");
    let why = refused(run(
        &["audit", "log", "--requester", &hospital_pk],
        &node,
        Some(&insurer),
    ));
    assert!(why.contains("query.requester"), "{why}");

    // The auditor exports the whole log as a bundle and verifies it with no node running.
    let bundle_path = d.join("bundle.bin");
    let exported = ok_json(run(
        &["audit", "export", "--out", bundle_path.to_str().unwrap()],
        &node,
        Some(&auditor),
    ));
    let exported_entries = exported["entries"].as_u64().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let verify = |file: &Path| {
        custos()
            .args(["--json", "audit", "verify"])
            .arg(file)
            .arg("--genesis")
            .arg(&genesis)
            .output()
            .unwrap()
    };
    let verified = ok_json(verify(&bundle_path));
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["entries"].as_u64().unwrap(), exported_entries);
    assert_eq!(verified["decisions"], 3);
    assert_eq!(verified["to_height"], exported["to_height"]);
    // One bit of the record id flipped where the bundle first holds it (the registration's
    // entry), or the file cut short: refused with a non-zero exit, naming what is wrong.
    let bundle = std::fs::read(&bundle_path).unwrap();
    let marker = hex::decode(&record).unwrap();
    let at = bundle
        .windows(32)
        .position(|w| w == marker.as_slice())
        .expect("the record id is in the bundle");
    let mut tampered = bundle.clone();
    tampered[at] ^= 1;
    let tampered_path = d.join("tampered-bundle.bin");
    std::fs::write(&tampered_path, &tampered).unwrap();
    let why = refused(verify(&tampered_path));
    assert!(
        why.contains("does not verify") && why.contains("an entry was changed"),
        "{why}"
    );
    std::fs::write(&tampered_path, &bundle[..bundle.len() / 2]).unwrap();
    let why = refused(verify(&tampered_path));
    assert!(why.contains("is not an audit bundle"), "{why}");

    let offline = custos()
        .args(["--json", "audit", "verify-log"])
        .arg(&saved)
        .arg("--genesis")
        .arg(&genesis)
        .output()
        .unwrap();
    assert_eq!(ok_json(offline)["verified"], 2);

    // Flip one bit of the record id, first in the decision shown and then inside the proven
    // entry bytes: offline verification must fail each time, naming the entry.
    let bytes = std::fs::read(&saved).unwrap();
    let marker = hex::decode(&record).unwrap();
    let places: Vec<usize> = bytes
        .windows(32)
        .enumerate()
        .filter(|(_, w)| *w == marker.as_slice())
        .map(|(i, _)| i)
        .collect();
    assert!(
        places.len() >= 2,
        "the record id appears in the decision and in the entry"
    );
    for (at, expect) in [
        (places[0], "differs from the proven one"),
        (places[1], "merkle proof"),
    ] {
        let mut tampered_bytes = bytes.clone();
        tampered_bytes[at] ^= 1;
        let tampered = d.join("tampered.bin");
        std::fs::write(&tampered, &tampered_bytes).unwrap();
        let out = custos()
            .args(["audit", "verify-log"])
            .arg(&tampered)
            .arg("--genesis")
            .arg(&genesis)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("entry 0") && err.contains(expect), "{err}");
    }
}
