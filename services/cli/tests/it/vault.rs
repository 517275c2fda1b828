//! The vault through the `custos` binary alone: a node process and a vault process, the
//! custodian's put / list / rotate-key / erase, the insurer's fetch of the one record it was
//! granted (decrypted to a file) and its refusal for another, the patient's fetch of their own.

use std::path::Path;
use std::process::{Child, Output};

use crate::{
    custos, init_and_start_node, keygen, ok_json, refused, spawn_listening, succeeded, until_ok,
};

pub(crate) const PASSPHRASE: &str = "correct horse battery staple, twice over";

/// `custos --json …` with the node, vault, key and passphrase in the environment.
pub(crate) fn run(args: &[&str], node: &str, vault: &str, key: &Path) -> Output {
    custos()
        .arg("--json")
        .args(args)
        .env("CUSTOS_NODE", node)
        .env("CUSTOS_VAULT", vault)
        .env("CUSTOS_KEY", key)
        .env("CUSTOS_VAULT_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap()
}

/// Starts `custos vault run` on a free loopback port; returns the child and its endpoint.
pub(crate) fn start_vault(
    node: &str,
    genesis: &Path,
    sealed: &Path,
    data: &Path,
    proving_key: Option<&Path>,
) -> (Child, String) {
    let mut command = custos();
    command.args(["vault", "run", "--listen", "127.0.0.1:0", "--node", node]);
    if let Some(pk) = proving_key {
        command.arg("--proving-key").arg(pk);
    }
    command
        .arg("--genesis")
        .arg(genesis)
        .arg("--key")
        .arg(sealed)
        .arg("--data")
        .arg(data)
        .env("CUSTOS_VAULT_PASSPHRASE", PASSPHRASE);
    let (child, addr) = spawn_listening(command, "vault");
    (child, format!("http://{addr}"))
}

#[test]
fn custodian_insurer_and_patient_use_the_vault_through_the_cli() {
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
    let (mut node_child, node, genesis) = init_and_start_node(&node_dir, &parties, &[]);
    until_ok(|| run(&["patient", "register"], &node, "", &alice));

    // The vault refuses a plain key file: private keys stay sealed at rest.
    let plain = custos()
        .args(["vault", "run", "--listen", "127.0.0.1:0", "--node", &node])
        .arg("--genesis")
        .arg(&genesis)
        .arg("--key")
        .arg(&hospital)
        .arg("--data")
        .arg(d.join("vault"))
        .env("CUSTOS_VAULT_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap();
    assert!(!plain.status.success());
    assert!(String::from_utf8_lossy(&plain.stderr).contains("is not sealed"));
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
    // The predicate circuit's keys; the consortium registers the verifying key (2 of the 2
    // members: the hospital proposes, the insurer co-signs).
    let zk = ok_json(
        custos()
            .args(["--json", "zk", "setup", "--out"])
            .arg(d.join("zk"))
            .output()
            .unwrap(),
    );
    let key_id = zk["verifying_key_id"].as_str().unwrap().to_string();
    let proposal = d.join("vk.tx");
    let p = proposal.to_str().unwrap();
    let governance = |args: &[&str]| {
        succeeded(custos().args(args).output().unwrap());
    };
    governance(&[
        "governance",
        "propose",
        "--node",
        &node,
        "--key",
        hospital.to_str().unwrap(),
        "--out",
        p,
        "register-verifying-key",
        "--circuit",
        "predicate-8x8",
        "--hash",
        &key_id,
    ]);
    governance(&[
        "governance",
        "cosign",
        p,
        "--key",
        insurer.to_str().unwrap(),
    ]);
    governance(&["governance", "submit", p, "--node", &node]);
    let (mut vault_child, vault) = start_vault(
        &node,
        &genesis,
        &sealed,
        &d.join("vault"),
        Some(&d.join("zk").join("predicate.pk")),
    );

    // The custodian puts two of alice's records (a FHIR resource and a multi-chunk file).
    let lab = d.join("lab.json");
    std::fs::write(
        &lab,
        br#"{"resourceType":"Observation","status":"final","code":{"text":"HbA1c"},"valueQuantity":{"value":6.9,"unit":"%"}}"#,
    )
    .unwrap();
    let imaging = d.join("imaging.bin");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&imaging, &big).unwrap();
    let put = |file: &Path, category: &str| -> String {
        let v = ok_json(run(
            &[
                "vault",
                "put",
                "--owner",
                &alice_pk,
                "--category",
                category,
                "--file",
                file.to_str().unwrap(),
                "--attr",
                "age=42",
                "--attr",
                "smoker=no",
            ],
            &node,
            &vault,
            &sealed,
        ));
        v["record_id"].as_str().unwrap().to_string()
    };
    let lab_id = put(&lab, "lab");
    let imaging_id = put(&imaging, "imaging");
    let listed = ok_json(run(&["vault", "list"], &node, &vault, &sealed));
    assert_eq!(listed.as_array().unwrap().len(), 2);

    // Alice consents to the insurer's payment purpose for her lab records only.
    ok_json(run(
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
        &vault,
        &alice,
    ));
    let request = |record: &str| -> serde_json::Value {
        ok_json(run(
            &[
                "partner",
                "request",
                "--record",
                record,
                "--purpose",
                "HPAYMT",
            ],
            &node,
            &vault,
            &insurer,
        ))
    };
    let fetch = |request_id: &str, out: &Path| -> Output {
        run(
            &[
                "vault",
                "fetch",
                "--request",
                request_id,
                "--out",
                out.to_str().unwrap(),
            ],
            &node,
            &vault,
            &insurer,
        )
    };

    // The granted record decrypts to the original bytes.
    let granted = request(&lab_id);
    assert_eq!(granted["granted"], true);
    let got = d.join("got-lab.json");
    ok_json(fetch(granted["request_id"].as_str().unwrap(), &got));
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&lab).unwrap());

    // The other record: the ledger denies the request and the vault refuses the fetch.
    let denied = request(&imaging_id);
    assert_eq!(denied["granted"], false);
    let nothing = d.join("got-imaging.bin");
    let why = refused(fetch(denied["request_id"].as_str().unwrap(), &nothing));
    assert!(why.contains("no_consent"), "{why}");
    assert!(!nothing.exists(), "no partial plaintext is written");

    // Bad input: a clear message naming the flag, non-zero exit.
    let why = refused(fetch("not-hex", &nothing));
    assert!(why.contains("--request"), "{why}");

    // Alice fetches her own imaging record.
    let own = d.join("own-imaging.bin");
    ok_json(run(
        &[
            "vault",
            "fetch-own",
            "--record",
            &imaging_id,
            "--out",
            own.to_str().unwrap(),
        ],
        &node,
        &vault,
        &alice,
    ));
    assert_eq!(std::fs::read(&own).unwrap(), big);

    // Rotating the custodian's key keeps the granted record readable by its grantee.
    ok_json(run(&["vault", "rotate-key"], &node, &vault, &sealed));
    let again = request(&lab_id);
    let got_again = d.join("got-lab-again.json");
    ok_json(fetch(again["request_id"].as_str().unwrap(), &got_again));
    assert_eq!(
        std::fs::read(&got_again).unwrap(),
        std::fs::read(&lab).unwrap()
    );

    // Alice erases the lab record: later requests are denied `erased`.
    ok_json(run(
        &["vault", "erase", "--record", &lab_id],
        &node,
        &vault,
        &alice,
    ));
    let after = request(&lab_id);
    assert_eq!(after["granted"], false);
    assert_eq!(after["reason"], "erased");
    let listed = ok_json(run(&["vault", "list"], &node, &vault, &sealed));
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // Predicate proofs: a checkup with all eight attributes; alice lets the insurer ask
    // predicates about it; the insurer learns one verified bit.
    let checkup = d.join("checkup.json");
    std::fs::write(
        &checkup,
        br#"{"resourceType":"Bundle","type":"collection"}"#,
    )
    .unwrap();
    let mut put_args = vec![
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
        "smoker=0",
        "bmi_x10=245",
        "systolic_bp=118",
        "hba1c_x10=54",
        "cholesterol=180",
        "sex=2",
        "postcode_region=1017",
    ] {
        put_args.extend(["--attr", attr]);
    }
    let checkup_id = ok_json(run(&put_args, &node, &vault, &sealed))["record_id"]
        .as_str()
        .unwrap()
        .to_string();
    let vk = d.join("zk").join("predicate.vk");
    let prove = |predicate: &str| {
        run(
            &[
                "vault",
                "prove",
                "--record",
                &checkup_id,
                "--purpose",
                "HPAYMT",
                "--predicate",
                predicate,
                "--verifying-key",
                vk.to_str().unwrap(),
            ],
            &node,
            &vault,
            &insurer,
        )
    };
    // Without a predicate-mode consent the ledger denies: nothing is learned.
    let why = refused(prove("age>=18 && smoker=0 && bmi_x10<300"));
    assert!(why.contains("denied by the ledger"), "{why}");
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
            &checkup_id,
        ],
        &node,
        &vault,
        &alice,
    ));
    let answer = ok_json(prove("age>=18 && smoker=0 && bmi_x10<300"));
    assert_eq!(answer["holds"], true);
    assert_eq!(answer["verifying_key_id"], key_id.as_str());
    let answer = ok_json(prove("age>=65"));
    assert_eq!(answer["holds"], false);
    let why = refused(prove("weight>=3"));
    assert!(why.contains("--predicate"), "{why}");

    vault_child.kill().unwrap();
    vault_child.wait().unwrap();
    node_child.kill().unwrap();
    node_child.wait().unwrap();
}

/// Starts `custos compute run` for `vault`; returns the child and its endpoint.
fn start_compute(vault: &str) -> (Child, String) {
    let mut command = custos();
    command.args([
        "compute",
        "run",
        "--listen",
        "127.0.0.1:0",
        "--vault",
        vault,
    ]);
    spawn_listening(command, "compute worker")
}

#[test]
fn an_advertiser_runs_an_aggregate_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (hospital, hospital_pk) = keygen(d, "hospital");
    let (advertiser, advertiser_pk) = keygen(d, "advertiser");
    let (auditor, _) = keygen(d, "auditor");
    let node_dir = d.join("node");
    let parties = format!(
        "custodian:st-mary:{}:member,partner:adco:{}:member,auditor:regulator:{}",
        hospital.display(),
        advertiser.display(),
        auditor.display()
    );
    let (mut node_child, node, genesis) = init_and_start_node(&node_dir, &parties, &[]);
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
    let (mut vault_child, vault) = start_vault(&node, &genesis, &sealed, &d.join("vault"), None);
    // Eleven patients register, consent to aggregates for research, and get a lab record with
    // the aggregate schema's attributes; ages 35, 40, …, 85.
    let file = d.join("obs.json");
    std::fs::write(&file, br#"{"resourceType":"Observation"}"#).unwrap();
    for i in 0..11 {
        let (patient, patient_pk) = keygen(d, &format!("patient{i}"));
        until_ok(|| run(&["patient", "register"], &node, "", &patient));
        ok_json(run(
            &[
                "patient",
                "grant",
                "--grantee",
                &advertiser_pk,
                "--purpose",
                "HRESCH",
                "--mode",
                "aggregate",
                "--category",
                "lab",
            ],
            &node,
            "",
            &patient,
        ));
        let attrs = [
            format!("age={}", 35 + 5 * i),
            format!("bmi_x10={}", 240 + i),
            "hba1c_x10=60".to_string(),
            "diabetes=0".to_string(),
            "smoker=0".to_string(),
            "sex=female".to_string(),
        ];
        let mut args = vec![
            "vault",
            "put",
            "--owner",
            &patient_pk,
            "--category",
            "lab",
            "--file",
            file.to_str().unwrap(),
        ];
        for a in &attrs {
            args.extend(["--attr", a]);
        }
        ok_json(run(&args, &node, &vault, &sealed));
    }
    let (mut compute_child, compute) = start_compute(&vault);
    let query = |q: &str| {
        custos()
            .args([
                "--json",
                "compute",
                "query",
                "--custodian",
                &hospital_pk,
                "--category",
                "lab",
                "--purpose",
                "HRESCH",
                "--compute",
                &compute,
                q,
            ])
            .env("CUSTOS_NODE", &node)
            .env("CUSTOS_VAULT", &vault)
            .env("CUSTOS_KEY", &advertiser)
            .output()
            .unwrap()
    };
    let explain = ok_json(
        custos()
            .args(["--json", "compute", "explain", "--compute", &compute])
            .arg("MEAN bmi WHERE age >= 40")
            .output()
            .unwrap(),
    );
    assert_eq!(explain["bootstrapped"], false, "{explain}");
    let v = ok_json(query("MEAN bmi WHERE age >= 40"));
    assert_eq!(v["count"], 10, "{v}");
    assert_eq!(v["cohort_size"], 11, "{v}");
    let mean = v["value"].as_f64().unwrap();
    assert!((mean - 24.55).abs() < 1e-9, "{mean}");
    assert!(v["release_height"].as_u64().unwrap() > 0);
    // Fewer than k = 10 matching: refused by the vault, and the refusal is logged.
    let narrow = refused(query("COUNT WHERE age >= 80"));
    assert!(narrow.contains("cohort_too_small"), "{narrow}");
    assert!(narrow.contains("logged on the ledger"), "{narrow}");
    // Bad input: named, non-zero exit, nothing released.
    let bad = refused(query("COUNT WHERE height > 1"));
    assert!(bad.contains("unknown attribute"), "{bad}");
    let bad = refused(
        custos()
            .args([
                "compute",
                "query",
                "--custodian",
                &hospital_pk,
                "--category",
                "Not A Category",
            ])
            .args(["--purpose", "HRESCH", "--compute", &compute, "COUNT"])
            .env("CUSTOS_NODE", &node)
            .env("CUSTOS_KEY", &advertiser)
            .output()
            .unwrap(),
    );
    assert!(bad.contains("--category"), "{bad}");
    for child in [&mut compute_child, &mut vault_child, &mut node_child] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn put_refuses_unknown_attributes_and_unencodable_values_and_says_what_it_registered() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (hospital, _) = keygen(d, "hospital");
    let (alice, alice_pk) = keygen(d, "alice");
    let parties = format!("custodian:st-mary:{}:member", hospital.display());
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
    let (mut vault_child, vault) = start_vault(&node, &genesis, &sealed, &d.join("vault"), None);
    let file = d.join("obs.json");
    std::fs::write(&file, br#"{"resourceType":"Observation"}"#).unwrap();
    let put = |attrs: &[&str], json: bool| {
        let mut args = vec![
            "vault",
            "put",
            "--owner",
            &alice_pk,
            "--category",
            "lab",
            "--file",
            file.to_str().unwrap(),
        ];
        for a in attrs {
            args.extend(["--attr", a]);
        }
        let mut command = custos();
        if json {
            command.arg("--json");
        }
        command
            .args(&args)
            .env("CUSTOS_NODE", &node)
            .env("CUSTOS_VAULT", &vault)
            .env("CUSTOS_KEY", &sealed)
            .env("CUSTOS_VAULT_PASSPHRASE", PASSPHRASE)
            .output()
            .unwrap()
    };

    // Each refusal names the attribute and what it expected; nothing is stored.
    for (attrs, says) in [
        (&["age=42", "weight=80"][..], "unknown attribute `weight`"),
        (
            &["age=200"][..],
            "`age`: expected a whole number in 0..=127, got 200",
        ),
        (
            &["age=-1"][..],
            "`age`: expected a whole number in 0..=127, got -1",
        ),
        (
            &["sex=robot"][..],
            "`sex`: expected one of 0 (not_known), 1 (male), 2 (female)",
        ),
        (&["sex=3"][..], "`sex`: expected one of"),
        (
            &["smoker=maybe"][..],
            "`smoker`: expected 0 (no) or 1 (yes)",
        ),
        (
            &["diabetes=2"][..],
            "`diabetes`: expected 0 (no) or 1 (yes), got 2",
        ),
        (&["bmi_x10=28.4"][..], "`bmi_x10`: expected a whole number"),
        (&["age=42", "age=43"][..], "`age` appears more than once"),
        (&["age"][..], "expected name=value"),
    ] {
        let why = refused(put(attrs, false));
        assert!(why.contains("--attr"), "{attrs:?}: {why}");
        assert!(why.contains(says), "{attrs:?}: {why}");
    }
    let listed = ok_json(run(&["vault", "list"], &node, &vault, &sealed));
    assert!(listed.as_array().unwrap().is_empty(), "nothing was stored");

    // The aggregate attributes alone: a row, no commitment, and the output says which
    // attributes a commitment would still need.
    let aggregate_only = [
        "age=52",
        "bmi_x10=284",
        "hba1c_x10=68",
        "diabetes=yes",
        "smoker=0",
        "sex=female",
    ];
    let v = ok_json(put(&aggregate_only, true));
    assert_eq!(v["aggregate_row"], true);
    assert_eq!(v["attribute_commitment"], serde_json::Value::Null);
    assert_eq!(
        v["commitment_missing"],
        serde_json::json!(["systolic_bp", "cholesterol", "postcode_region"])
    );
    assert_eq!(v["aggregate_missing"], serde_json::json!([]));
    assert_eq!(v["attributes"]["sex"], 2);
    assert_eq!(v["attributes"]["diabetes"], 1);

    // All of them: a commitment on the ledger, and a row.
    let mut all = aggregate_only.to_vec();
    all.extend(["systolic_bp=141", "cholesterol=240", "postcode_region=1017"]);
    let human = succeeded(put(&all, false));
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("attribute commitment registered on the ledger: "),
        "{human}"
    );
    assert!(
        human.contains("aggregate row added to the vault's encrypted table"),
        "{human}"
    );
    let v = ok_json(put(&all, true));
    let commitment = v["attribute_commitment"].as_str().unwrap();
    assert_eq!(commitment.len(), 64);
    assert_eq!(v["commitment_missing"], serde_json::json!([]));

    // No attributes: stored and registered, and the output says what it lacks.
    let human = succeeded(put(&[], false));
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("no attribute commitment (missing age, smoker, bmi_x10"),
        "{human}"
    );
    assert!(
        human.contains("no aggregate row (missing age, smoker, bmi_x10, hba1c_x10, sex, diabetes)"),
        "{human}"
    );
    let listed = ok_json(run(&["vault", "list"], &node, &vault, &sealed));
    assert_eq!(listed.as_array().unwrap().len(), 4);

    vault_child.kill().unwrap();
    vault_child.wait().unwrap();
    node_child.kill().unwrap();
    node_child.wait().unwrap();
}
