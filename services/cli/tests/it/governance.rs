//! Consortium changes through the CLI: one proposal file, co-signed offline, submitted once.

use std::path::Path;

use custos_client::Client;

use crate::{custos, eventually, keygen, ok_json, refused, start_node, succeeded};

fn run(args: &[&str]) -> std::process::Output {
    custos().args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_needs_two_thirds_of_the_members_and_then_takes_effect() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let init = run(&[
        "devnet",
        "--validators",
        "1",
        "--init-only",
        "--dir",
        d.to_str().unwrap(),
    ]);
    succeeded(init);
    let (mut child, node) = start_node(&d.join("validator-0").join("node.toml"));
    let client = eventually(std::time::Duration::from_secs(20), || async {
        Client::connect(&node).await.ok()
    })
    .await;
    let key = |name: &str| d.join(format!("{name}.key")).to_str().unwrap().to_string();
    let proposal = d.join("raise-k.tx");
    let p = proposal.to_str().unwrap();
    let propose = run(&[
        "governance",
        "propose",
        "--node",
        &node,
        "--key",
        &key("hospital"),
        "--out",
        p,
        "set-parameters",
        "--min-cohort-size",
        "25",
    ]);
    succeeded(propose);

    // One of three members is not enough: refused, nothing changes.
    let alone = run(&["governance", "submit", p, "--node", &node]);
    assert!(!alone.status.success());
    let err = String::from_utf8_lossy(&alone.stderr);
    assert!(
        err.contains("governance needs signatures of at least 2 of 3"),
        "{err}"
    );
    let params = client.status().await.unwrap().parameters.unwrap();
    assert_eq!(params.min_cohort_size, 10);

    // A non-member's co-signature does not count either.
    assert!(
        run(&["governance", "cosign", p, "--key", &key("auditor")])
            .status
            .success()
    );
    assert!(
        !run(&["governance", "submit", p, "--node", &node])
            .status
            .success()
    );

    // A second member co-signs: accepted, and the new k is in force.
    assert!(
        run(&["governance", "cosign", p, "--key", &key("insurer")])
            .status
            .success()
    );
    let submit = run(&["governance", "submit", p, "--node", &node]);
    succeeded(submit);
    let params = client.status().await.unwrap().parameters.unwrap();
    assert_eq!(params.min_cohort_size, 25);
    assert!(!params.break_glass_enabled);

    // A tampered proposal file is refused before anything is sent.
    let mut bytes = std::fs::read(&proposal).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let tampered = Path::new(d).join("tampered.tx");
    std::fs::write(&tampered, &bytes).unwrap();
    let bad = run(&[
        "governance",
        "cosign",
        tampered.to_str().unwrap(),
        "--key",
        &key("advertiser"),
    ]);
    assert!(!bad.status.success());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisation_joins_after_genesis_and_becomes_a_member() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    succeeded(run(&[
        "devnet",
        "--validators",
        "1",
        "--init-only",
        "--dir",
        d.to_str().unwrap(),
    ]));
    let (mut child, node) = start_node(&d.join("validator-0").join("node.toml"));
    let client = eventually(std::time::Duration::from_secs(20), || async {
        Client::connect(&node).await.ok()
    })
    .await;
    let key = |name: &str| d.join(format!("{name}.key")).to_str().unwrap().to_string();
    let (newco, newco_pk) = keygen(d, "newco");
    let newco = newco.to_str().unwrap().to_string();
    let party = |pk: &str| {
        let client = client.clone();
        let pk = hex::decode(pk).unwrap();
        async move {
            client
                .consent()
                .get_party(custos_proto::consent::v1::GetPartyRequest { party: pk })
                .await
                .map(|r| r.into_inner())
        }
    };
    let propose = |signer: &str, out: &str, change: &[&str]| {
        let mut args = vec![
            "--json",
            "governance",
            "propose",
            "--node",
            &node,
            "--key",
            signer,
            "--out",
            out,
        ];
        args.extend(change);
        custos().args(&args).output().unwrap()
    };

    // Bad input is refused naming the flag, and nothing is written.
    let join = d.join("join.tx");
    let j = join.to_str().unwrap();
    for (change, flag) in [
        (
            &[
                "add-organisation",
                "--role",
                "patient",
                "--organisation",
                "newco",
            ][..],
            "--role",
        ),
        (
            &[
                "add-organisation",
                "--role",
                "partner",
                "--organisation",
                "New Co",
            ][..],
            "--organisation",
        ),
    ] {
        let why = refused(propose(&newco, j, change));
        assert!(why.contains(flag), "{why}");
        assert!(!join.exists());
    }
    let why = refused(propose(
        &key("hospital"),
        j,
        &[
            "add-organisation",
            "--role",
            "partner",
            "--organisation",
            "st-mary",
        ],
    ));
    assert!(why.contains("already registered"), "{why}");

    // The organisation signs its own registration; 2 of the 3 members co-sign it.
    let proposed = ok_json(propose(
        &newco,
        j,
        &[
            "add-organisation",
            "--role",
            "partner",
            "--organisation",
            "newco-research",
        ],
    ));
    assert_eq!(proposed["kind"], "register_party");
    let cosigned = |file: &str, who: &str| {
        succeeded(run(&["governance", "cosign", file, "--key", &key(who)]));
    };
    cosigned(j, "hospital");
    // One member is not enough: refused, and the organisation is not registered.
    let err = refused(run(&["governance", "submit", j, "--node", &node]));
    assert!(
        err.contains("governance needs signatures of at least 2 of 3"),
        "{err}"
    );
    assert!(party(&newco_pk).await.is_err());
    cosigned(j, "insurer");
    let submitted = ok_json(
        custos()
            .args(["--json", "governance", "submit", j, "--node", &node])
            .output()
            .unwrap(),
    );
    assert_eq!(submitted["kind"], "register_party");
    let registered = party(&newco_pk).await.unwrap();
    assert_eq!(registered.organisation, "newco-research");
    assert_eq!(registered.role, custos_types::Role::Partner.to_wire());
    assert!(!registered.member);

    // A member proposes it as a member; with a second member's signature it is one.
    let member = d.join("member.tx");
    let m = member.to_str().unwrap();
    let why = refused(propose(
        &key("hospital"),
        m,
        &["set-member", "--party", &newco_pk, "--member", "perhaps"],
    ));
    assert!(why.contains("--member"), "{why}");
    succeeded(propose(
        &key("hospital"),
        m,
        &["set-member", "--party", &newco_pk, "--member", "true"],
    ));
    cosigned(m, "advertiser");
    succeeded(run(&["governance", "submit", m, "--node", &node]));
    assert!(party(&newco_pk).await.unwrap().member);

    // Four members now: the new one's signature counts towards the 2/3 (3 of 4).
    let raise = d.join("raise-k.tx");
    let r = raise.to_str().unwrap();
    succeeded(propose(
        &newco,
        r,
        &["set-parameters", "--min-cohort-size", "30"],
    ));
    cosigned(r, "hospital");
    let err = refused(run(&["governance", "submit", r, "--node", &node]));
    assert!(err.contains("at least 3 of 4"), "{err}");
    cosigned(r, "insurer");
    succeeded(run(&["governance", "submit", r, "--node", &node]));
    let params = client.status().await.unwrap().parameters.unwrap();
    assert_eq!(params.min_cohort_size, 30);

    child.kill().unwrap();
    child.wait().unwrap();
}
