//! The actors' story through the `custos` binary alone, against a node process, ending in an
//! auditor's offline verification that catches a tampered log.

use std::path::Path;
use std::process::Output;

use crate::{custos, start_node};

fn run(args: &[&str], node: &str, key: Option<&Path>) -> Output {
    let mut cmd = custos();
    cmd.arg("--json").args(args).env("CUSTOS_NODE", node);
    if let Some(k) = key {
        cmd.env("CUSTOS_KEY", k);
    }
    cmd.output().unwrap()
}

fn ok_json(out: Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn keygen(dir: &Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(format!("{name}.key"));
    let out = custos()
        .args(["--json", "keys", "generate", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    let v = ok_json(out);
    (path, v["public_key"].as_str().unwrap().to_string())
}

#[test]
fn actors_use_the_cli_end_to_end_and_a_tampered_saved_log_fails_offline_verification() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (hospital, _) = keygen(d, "hospital");
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
    let init = custos()
        .args(["node", "init", "--dir"])
        .arg(&node_dir)
        .args(["--party", &parties])
        .output()
        .unwrap();
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let (mut child, node) = start_node(&node_dir.join("node.toml"));
    let genesis = node_dir.join("genesis.json");

    // The node may take a moment to accept connections.
    let mut registered = None;
    for _ in 0..200 {
        let out = run(&["patient", "register"], &node, Some(&alice));
        if out.status.success() {
            registered = Some(out);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    ok_json(registered.expect("patient register never succeeded"));

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
    child.kill().unwrap();
    child.wait().unwrap();

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
