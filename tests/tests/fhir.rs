//! The FHIR exports (AuditEvent and Consent, R4) validate against the `fhir.resources` Python
//! models (R4B, which keeps R4's AuditEvent and Consent), and their codes are the ones the
//! design names: purposes of use from HL7 v3-ActReason, outcomes, actions and entities.
//!
//! The test installs `fhir.resources` (pinned) into a virtual environment under the target dir
//! the first time; if that fails, the test fails and says why.

// The helpers below are test code too: a failed step should stop the test where it failed.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use custos_proto::audit::v1 as audit_pb;
use custos_tests::story::audit_story;
use custos_tests::{NetOptions, TestNet, party};
use serde_json::Value;

const FHIR_RESOURCES: &str = "fhir.resources==8.3.0";

/// A Python with `fhir.resources` installed, in a virtual environment under the target dir.
fn fhir_python() -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fhir-venv");
    let python = venv.join("bin").join("python");
    let ready = venv.join("installed-8.3.0");
    if ready.exists() {
        return python;
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| {
            panic!("{what}: cannot run: {e} (Python 3 with venv and pip is required)")
        });
        assert!(
            out.status.success(),
            "{what} failed; the FHIR validation needs {FHIR_RESOURCES} from PyPI:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            FHIR_RESOURCES,
        ]),
        "pip install fhir.resources",
    );
    std::fs::write(&ready, "").expect("mark the venv ready");
    python
}

const VALIDATE: &str = r#"
import json, sys
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.consent import Consent
text = open(sys.argv[1]).read()
Bundle.model_validate_json(text)
kinds = {"AuditEvent": AuditEvent, "Consent": Consent}
n = 0
for entry in json.loads(text)["entry"]:
    resource = entry["resource"]
    kinds[resource["resourceType"]].model_validate(resource)
    n += 1
print(n)
"#;

/// Validates a FHIR Bundle with `fhir.resources`; returns how many resources it holds.
fn validate(python: &Path, dir: &Path, name: &str, json: &str) -> usize {
    let file = dir.join(name);
    std::fs::write(&file, json).unwrap();
    let script = dir.join("validate.py");
    std::fs::write(&script, VALIDATE).unwrap();
    let out = Command::new(python)
        .arg(&script)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fhir.resources refused {name}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn fhir_audit_events_and_consents_validate_with_fhir_resources_and_carry_the_right_codes() {
    let python = fhir_python();
    let options = NetOptions {
        break_glass: true,
        ..NetOptions::default()
    };
    let net = TestNet::start_with(2, options).await.unwrap();
    let story = audit_story(&net).await.unwrap();
    let dir = tempfile::tempdir().unwrap();

    let events = net
        .client
        .export_fhir_audit_events(&net.auditor, &audit_pb::AccessLogQuery::default())
        .await
        .unwrap();
    assert_eq!(
        validate(&python, dir.path(), "audit-events.json", &events),
        story.decisions.len()
    );
    let bundle: Value = serde_json::from_str(&events).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    let resources: Vec<&Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    for (event, decision) in resources.iter().zip(&story.decisions) {
        assert_eq!(event["resourceType"], "AuditEvent");
        assert_eq!(event["type"]["code"], "110110");
        assert_eq!(event["action"], "R");
        assert_eq!(event["outcome"], if decision.granted { "0" } else { "4" });
        let purpose = &event["agent"][0]["purposeOfUse"][0]["coding"][0];
        assert_eq!(
            purpose["system"],
            "http://terminology.hl7.org/CodeSystem/v3-ActReason"
        );
        assert_eq!(purpose["code"], decision.purpose.as_str());
        assert_eq!(event["agent"][0]["requestor"], true);
        assert_eq!(
            event["agent"][0]["who"]["identifier"]["value"],
            hex::encode(&decision.requester)
        );
        assert_eq!(
            event["entity"][0]["what"]["identifier"]["value"],
            hex::encode(&decision.record_id)
        );
        assert_eq!(event["entity"][1]["role"]["code"], "1", "the patient");
        assert!(event["recorded"].as_str().unwrap().ends_with('Z'));
    }
    let break_glass = resources
        .iter()
        .filter(|e| e["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT")
        .count();
    assert_eq!(break_glass, 1);

    let alice = &net.patients[0];
    let consents = net
        .client
        .export_fhir_consents(alice, party(alice), true)
        .await
        .unwrap();
    assert_eq!(validate(&python, dir.path(), "consents.json", &consents), 1);
    let consents: Value = serde_json::from_str(&consents).unwrap();
    let consent = &consents["entry"][0]["resource"];
    assert_eq!(consent["status"], "inactive", "the story revoked it");
    assert_eq!(
        consent["patient"]["identifier"]["value"],
        party(alice).to_hex()
    );
    assert_eq!(consent["provision"]["purpose"][0]["code"], "HPAYMT");
    assert_eq!(
        consent["provision"]["actor"][0]["reference"]["identifier"]["value"],
        party(&net.insurer).to_hex()
    );
    net.stop().await.unwrap();
}
