//! The Python example client (`examples/python/custos_client.py`), written from `proto/` and
//! `docs/spec/` alone, against a real four-validator devnet: it registers a patient, has the
//! hospital register a record, grants, requests, reads the decision, fetches it from the audit
//! API and verifies its inclusion proof and its header's commit certificate. Against a genesis
//! that names other validators, the same answers must fail its verification.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bft::Devnet;

/// A Python with the pinned `examples/python/requirements.txt`, in a venv under the target dir.
/// Fails the test (never skips it) when PyPI cannot be reached.
fn client_python() -> PathBuf {
    let requirements = repo().join("examples/python/requirements.txt");
    let pins = std::fs::read_to_string(&requirements).expect("requirements.txt");
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-client-venv");
    let python = venv.join("bin").join("python");
    let ready = venv.join("installed.txt");
    if std::fs::read_to_string(&ready).is_ok_and(|done| done == pins) {
        return python;
    }
    let run = |cmd: &mut Command, what: &str| {
        let out = cmd.output().unwrap_or_else(|e| {
            panic!("{what}: cannot run: {e} (Python 3 with venv and pip is required)")
        });
        assert!(
            out.status.success(),
            "{what} failed; the Python client needs its pinned packages from PyPI:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
            ])
            .arg(&requirements),
        "pip install -r examples/python/requirements.txt",
    );
    std::fs::write(&ready, pins).expect("mark the venv ready");
    python
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn run_client(python: &Path, endpoint: &str, dir: &Path) -> std::process::Output {
    Command::new(python)
        .arg(repo().join("examples/python/custos_client.py"))
        .args(["--endpoint", endpoint.trim_start_matches("http://")])
        .arg("--devnet-dir")
        .arg(dir)
        .output()
        .expect("run the Python client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_verifies_its_decision_against_the_genesis_on_a_real_devnet() {
    let python = client_python();
    let net = Devnet::start(4).await.unwrap();

    let out = run_client(&python, net.endpoint(2), net.dir());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert!(last.starts_with("verified: decision "), "{stdout}");
    assert!(last.contains("granted=True"), "{stdout}");
    // Four equal validators: a certificate needs at least three of them.
    assert!(
        last.contains("certified by 3 of 4 validators")
            || last.contains("certified by 4 of 4 validators"),
        "{stdout}"
    );

    // The same node's answers, checked against a genesis that names other validators, do not
    // verify: the client trusts the genesis, not the node.
    let forged = tempfile::tempdir().unwrap();
    for file in ["hospital.key", "insurer.key"] {
        std::fs::copy(net.dir().join(file), forged.path().join(file)).unwrap();
    }
    let mut genesis: serde_json::Value =
        serde_json::from_slice(&std::fs::read(net.dir().join("genesis.json")).unwrap()).unwrap();
    let other = custos_crypto::PartyKeys::generate(&mut rand::rngs::OsRng);
    genesis["validators"][0]["public_key"] = serde_json::Value::String(other.public().to_hex());
    std::fs::write(
        forged.path().join("genesis.json"),
        serde_json::to_vec_pretty(&genesis).unwrap(),
    )
    .unwrap();
    let out = run_client(&python, net.endpoint(1), forged.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("VERIFICATION FAILED: the served validator set is not the genesis set"),
        "{stderr}"
    );
}
