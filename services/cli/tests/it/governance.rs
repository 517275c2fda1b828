//! Consortium changes through the CLI: one proposal file, co-signed offline, submitted once.

use std::path::Path;

use custos_client::Client;

use crate::{custos, eventually, start_node, succeeded};

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
