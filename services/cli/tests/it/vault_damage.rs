//! A damaged vault through the `custos` binary: `custos vault scrub` names a flipped byte's
//! record and chunk and exits non-zero, `custos vault run` refuses to start without a keyring
//! shard and names the record; neither deletes anything, and both pass again once the files
//! are restored.

use std::path::Path;
use std::process::{Child, Output};
use std::time::{Duration, Instant};

use crate::vault::{PASSPHRASE, run, start_vault};
use crate::{custos, init_and_start_node, keygen, ok_json, succeeded, until_ok};

fn scrub(data: &Path, json: bool) -> Output {
    let mut command = custos();
    if json {
        command.arg("--json");
    }
    command
        .args(["vault", "scrub", "--data"])
        .arg(data)
        .env("CUSTOS_VAULT_PASSPHRASE", PASSPHRASE)
        .output()
        .unwrap()
}

/// Waits (at most a minute) for a process that must exit by itself; kills it otherwise.
fn exited(mut child: Child) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the process did not exit");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn scrub_names_a_flipped_chunk_and_the_vault_refuses_to_start_without_a_keyring_shard() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (hospital, _) = keygen(d, "hospital");
    let (insurer, _) = keygen(d, "insurer");
    let (alice, alice_pk) = keygen(d, "alice");
    let parties = format!(
        "custodian:st-mary:{}:member,partner:acme:{}:member",
        hospital.display(),
        insurer.display()
    );
    let (mut node_child, node, genesis) = init_and_start_node(&d.join("node"), &parties, &[]);
    until_ok(|| run(&["patient", "register"], &node, "", &alice));
    let sealed = d.join("hospital.sealed");
    succeeded(
        custos()
            .args(["vault", "seal-key", "--key"])
            .arg(&hospital)
            .arg("--out")
            .arg(&sealed)
            .env("CUSTOS_VAULT_PASSPHRASE", PASSPHRASE)
            .output()
            .unwrap(),
    );
    let data = d.join("vault");
    let (mut vault_child, vault) = start_vault(&node, &genesis, &sealed, &data, None);
    let file = d.join("imaging.bin");
    std::fs::write(
        &file,
        (0..200_000u32).map(|i| (i * 13) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let put = ok_json(run(
            &[
                "vault",
                "put",
                "--owner",
                &alice_pk,
                "--category",
                "imaging",
                "--file",
                file.to_str().unwrap(),
            ],
            &node,
            &vault,
            &sealed,
        ));
        ids.push(put["record_id"].as_str().unwrap().to_string());
    }
    vault_child.kill().unwrap();
    vault_child.wait().unwrap();

    // A sound vault scrubs clean: both records, every chunk (4 each) read.
    let clean = ok_json(scrub(&data, true));
    assert_eq!(clean["clean"], true);
    assert_eq!(clean["records_checked"], 2);
    assert_eq!(clean["chunks_checked"], 8);

    // One byte flipped inside chunk 1 of the first record.
    let chunks = data.join("chunks").join(&ids[0]);
    let original = std::fs::read(&chunks).unwrap();
    let mut flipped = original.clone();
    flipped[65_536 + 16 + 777] ^= 0x01;
    std::fs::write(&chunks, &flipped).unwrap();
    let found = scrub(&data, true);
    assert!(!found.status.success(), "damage means a non-zero exit");
    let report: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    assert_eq!(report["clean"], false);
    assert_eq!(report["records_checked"], 2);
    let damaged = report["damaged"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{report}");
    assert_eq!(damaged[0]["record_id"], ids[0].as_str());
    assert_eq!(damaged[0]["part"], "chunk");
    assert_eq!(damaged[0]["chunk"], 1);
    let stderr = String::from_utf8_lossy(&found.stderr);
    assert!(stderr.contains("1 damaged record(s)"), "{stderr}");
    assert!(stderr.contains("scrub: 2/2 records"), "progress: {stderr}");
    let human = scrub(&data, false);
    assert!(!human.status.success());
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains(&format!("record {}: chunk 1:", ids[0])),
        "{text}"
    );
    assert_eq!(
        std::fs::read(&chunks).unwrap(),
        flipped,
        "nothing repaired or deleted"
    );
    std::fs::write(&chunks, &original).unwrap();

    // The keyring shard of the second record moved away: the vault does not start.
    let shard = data
        .join("keyring")
        .join(format!("{}.sealed", &ids[1][..2]));
    let saved = d.join("saved.sealed");
    std::fs::rename(&shard, &saved).unwrap();
    let mut command = custos();
    command
        .args(["vault", "run", "--listen", "127.0.0.1:0", "--node", &node])
        .arg("--genesis")
        .arg(&genesis)
        .arg("--key")
        .arg(&sealed)
        .arg("--data")
        .arg(&data)
        .env("CUSTOS_VAULT_PASSPHRASE", PASSPHRASE)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let refused = exited(command.spawn().unwrap());
    assert!(!refused.status.success(), "the vault must not start");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains(&ids[1]), "{stderr}");
    assert!(stderr.contains("storage key"), "{stderr}");
    assert!(stderr.contains("changed nothing"), "{stderr}");
    let second = data.join("chunks").join(&ids[1]);
    assert!(second.exists(), "the record's ciphertext is kept");
    let found = scrub(&data, true);
    assert!(!found.status.success());
    let report: serde_json::Value = serde_json::from_slice(&found.stdout).unwrap();
    // Every record whose key the shard held (ids[0] too, if its id shares the first byte).
    let mut keyed: Vec<&str> = ids
        .iter()
        .filter(|id| id[..2] == ids[1][..2])
        .map(|id| id.as_str())
        .collect();
    keyed.sort();
    let damaged = report["damaged"].as_array().unwrap();
    let named: Vec<&str> = damaged
        .iter()
        .map(|d| d["record_id"].as_str().unwrap())
        .collect();
    assert_eq!(named, keyed, "{report}");
    assert!(
        damaged.iter().all(|d| d["part"] == "storage_key"),
        "{report}"
    );

    // Restored, the vault is whole again.
    std::fs::rename(&saved, &shard).unwrap();
    let clean = ok_json(scrub(&data, true));
    assert_eq!(clean["clean"], true);
    let (mut vault_child, vault) = start_vault(&node, &genesis, &sealed, &data, None);
    let listed = ok_json(run(&["vault", "list"], &node, &vault, &sealed));
    assert_eq!(listed.as_array().unwrap().len(), 2);
    vault_child.kill().unwrap();
    vault_child.wait().unwrap();
    node_child.kill().unwrap();
    node_child.wait().unwrap();
}
