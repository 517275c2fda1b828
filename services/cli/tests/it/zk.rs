//! Proofs anyone can verify: the registered verifying key (`custos zk export-vk`) and the
//! vault's proof (`custos vault prove --out`) in snarkjs' layout, checked by the pinned snarkjs.

use serde_json::Value;

use crate::vault::{PASSPHRASE, run, start_vault};
use crate::{custos, init_and_start_node, keygen, ok_json, refused, succeeded, until_ok};

#[path = "../../../../circuits/tests/support/snarkjs_cli.rs"]
mod snarkjs_cli;
use snarkjs_cli::snarkjs_verify;

#[test]
fn snarkjs_verifies_the_proof_the_cli_wrote_and_refuses_a_tampered_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (hospital, _) = keygen(d, "hospital");
    let (insurer, insurer_pk) = keygen(d, "insurer");
    let (alice, alice_pk) = keygen(d, "alice");
    let parties = format!(
        "custodian:st-mary:{}:member,partner:acme:{}:member",
        hospital.display(),
        insurer.display()
    );
    let (mut node_child, node, genesis) = init_and_start_node(&d.join("node"), &parties, &[]);
    until_ok(|| run(&["patient", "register"], &node, "", &alice));
    let sealed = d.join("hospital.sealed");
    ok_json(
        custos()
            .args(["--json", "vault", "seal-key", "--key"])
            .arg(&hospital)
            .arg("--out")
            .arg(&sealed)
            .env("CUSTOS_VAULT_PASSPHRASE", PASSPHRASE)
            .output()
            .unwrap(),
    );
    let zk = d.join("zk");
    let setup = ok_json(
        custos()
            .args(["--json", "zk", "setup", "--out"])
            .arg(&zk)
            .output()
            .unwrap(),
    );
    let key_id = setup["verifying_key_id"].as_str().unwrap().to_string();
    let vk = zk.join("predicate.vk");
    let vk = vk.to_str().unwrap();
    let export_to = d.join("exported.json");
    let export = || {
        custos()
            .args([
                "--json",
                "zk",
                "export-vk",
                "--node",
                &node,
                "--verifying-key",
                vk,
            ])
            .arg("--out")
            .arg(&export_to)
            .output()
            .unwrap()
    };
    // Before governance registers a key there is nothing to export.
    refused(export());
    assert!(!export_to.exists());
    let proposal = d.join("vk.tx");
    let p = proposal.to_str().unwrap();
    succeeded(
        custos()
            .args(["governance", "propose", "--node", &node, "--key"])
            .arg(&hospital)
            .args([
                "--out",
                p,
                "register-verifying-key",
                "--circuit",
                "predicate-8x8",
            ])
            .args(["--hash", &key_id])
            .output()
            .unwrap(),
    );
    succeeded(
        custos()
            .args(["governance", "cosign", p, "--key"])
            .arg(&insurer)
            .output()
            .unwrap(),
    );
    succeeded(
        custos()
            .args(["governance", "submit", p, "--node", &node])
            .output()
            .unwrap(),
    );
    let exported = ok_json(export());
    assert_eq!(exported["verifying_key_id"], key_id.as_str());
    // An artifact that is not the registered key is refused, naming the flag.
    let (_, other) = custos_circuits::setup(&mut rand::rngs::OsRng).unwrap();
    let other_vk = d.join("other.vk");
    other.save(&other_vk).unwrap();
    let why = refused(
        custos()
            .args(["zk", "export-vk", "--node", &node, "--verifying-key"])
            .arg(&other_vk)
            .arg("--out")
            .arg(d.join("other.json"))
            .output()
            .unwrap(),
    );
    assert!(why.contains("--verifying-key"), "{why}");

    let (mut vault_child, vault) = start_vault(
        &node,
        &genesis,
        &sealed,
        &d.join("vault"),
        Some(&zk.join("predicate.pk")),
    );
    let checkup = d.join("checkup.json");
    std::fs::write(
        &checkup,
        br#"{"resourceType":"Bundle","type":"collection"}"#,
    )
    .unwrap();
    let mut put = vec![
        "vault",
        "put",
        "--owner",
        &alice_pk,
        "--category",
        "checkup",
        "--file",
        checkup.to_str().unwrap(),
    ];
    for attr in [
        "age=42",
        "smoker=no",
        "bmi_x10=245",
        "systolic_bp=118",
        "hba1c_x10=54",
        "cholesterol=180",
        "sex=female",
        "postcode_region=1017",
    ] {
        put.extend(["--attr", attr]);
    }
    let put = ok_json(run(&put, &node, &vault, &sealed));
    assert_eq!(put["attribute_commitment"].as_str().unwrap().len(), 64);
    let record = put["record_id"].as_str().unwrap().to_string();
    ok_json(run(
        &[
            "patient",
            "grant",
            "--grantee",
            &insurer_pk,
            "--purpose",
            "HPAYMT",
            "--mode",
            "predicate",
            "--record",
            &record,
        ],
        &node,
        &vault,
        &alice,
    ));
    let out = d.join("proof");
    let prove = |predicate: &str, folder: &std::path::Path| {
        run(
            &[
                "vault",
                "prove",
                "--record",
                &record,
                "--purpose",
                "HPAYMT",
                "--predicate",
                predicate,
                "--verifying-key",
                vk,
                "--out",
                folder.to_str().unwrap(),
                "--with-verification-key",
            ],
            &node,
            &vault,
            &insurer,
        )
    };
    let answer = ok_json(prove("age>=18 && smoker=0 && bmi_x10<300", &out));
    assert_eq!(answer["holds"], true);
    assert_eq!(answer["files"].as_array().unwrap().len(), 3);
    let read = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(out.join(name)).unwrap()).unwrap()
    };
    // The JSON output carries what the files hold; the key is the one export-vk writes.
    assert_eq!(answer["proof"], read("proof.json"));
    assert_eq!(answer["public_inputs"], read("public.json"));
    assert_eq!(
        read("verification_key.json"),
        serde_json::from_slice::<Value>(&std::fs::read(&export_to).unwrap()).unwrap()
    );
    assert_eq!(read("proof.json")["protocol"], "groth16");

    let (ok, output) = snarkjs_verify(&out);
    assert!(ok, "snarkjs refused the proof the CLI wrote:\n{output}");
    // One public input changed (the predicate's first constant, or any other): refused.
    let honest = read("public.json");
    let mut tampered = honest.clone();
    let first = tampered[1].as_str().unwrap().parse::<u64>().unwrap_or(0);
    tampered[1] = Value::String((first + 1).to_string());
    std::fs::write(out.join("public.json"), tampered.to_string()).unwrap();
    let (ok, output) = snarkjs_verify(&out);
    assert!(!ok, "snarkjs accepted a tampered public input:\n{output}");
    std::fs::write(out.join("public.json"), honest.to_string()).unwrap();
    assert!(snarkjs_verify(&out).0);

    // The files are never replaced; a predicate that does not hold writes nothing.
    let why = refused(prove("age>=18", &out));
    assert!(why.contains("already exists"), "{why}");
    let none = d.join("no-proof");
    let answer = ok_json(prove("age>=65", &none));
    assert_eq!(answer["holds"], false);
    assert_eq!(answer["proof"], Value::Null);
    assert!(answer["files"].as_array().unwrap().is_empty());
    assert!(!none.join("proof.json").exists());

    vault_child.kill().unwrap();
    vault_child.wait().unwrap();
    node_child.kill().unwrap();
    node_child.wait().unwrap();
}
