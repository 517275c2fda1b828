//! The independent Python checker (`examples/python/check_vectors.py`, written from docs/spec
//! alone) passes every checked-in vector and fails a copy with one bit flipped.
//!
//! It runs in a virtual environment under `target/` with a pinned PyNaCl. Without Python or
//! without the package index this test fails, loudly: the second implementation is part of the
//! conformance evidence, not an optional extra.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::pinned::workspace_root;

/// The PyNaCl requirement pinned in `examples/python/requirements.txt` (one pin for the example
/// client and the checker).
fn pynacl_pin(root: &Path) -> String {
    let requirements = std::fs::read_to_string(root.join("examples/python/requirements.txt"))
        .expect("read examples/python/requirements.txt");
    requirements
        .lines()
        .map(str::trim)
        .find(|l| l.to_ascii_lowercase().starts_with("pynacl=="))
        .expect("examples/python/requirements.txt pins PyNaCl")
        .to_string()
}

fn run(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    command
        .output()
        .unwrap_or_else(|e| panic!("could not run {shown}: {e}"))
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The venv's python, created and provisioned once per target directory.
fn venv_python(root: &Path) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let venv = target.join("conformance-venv");
    let python = venv.join("bin").join("python3");
    let pin = pynacl_pin(root);
    let marker = venv.join(format!(".installed-{pin}"));
    if !marker.exists() {
        let created = run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        assert!(
            created.status.success(),
            "python3 -m venv {} failed (Python 3.11 with venv is required):\n{}",
            venv.display(),
            text(&created)
        );
        let installed = run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--quiet",
            &pin,
        ]));
        assert!(
            installed.status.success(),
            "pip install {pin} failed; the Python conformance check needs it (is the package \
             index reachable?):\n{}",
            text(&installed)
        );
        std::fs::write(&marker, &pin).expect("write the venv marker");
    }
    python
}

#[test]
fn python_checker_passes_every_vector_and_fails_a_flipped_bit() {
    let root = workspace_root();
    let python = venv_python(&root);
    let checker = root.join("examples/python/check_vectors.py");
    // While the pinned test rewrites the checked-in file, check a fresh copy instead of a file
    // being written.
    let vectors = if std::env::var_os("CUSTOS_REGENERATE_VECTORS").is_some() {
        let fresh =
            std::env::temp_dir().join(format!("custos-vectors-fresh-{}.json", std::process::id()));
        std::fs::write(&fresh, custos_conformance::document_text()).expect("write the vectors");
        fresh
    } else {
        root.join(custos_conformance::VECTORS_PATH)
    };

    let passed = run(Command::new(&python).arg(&checker).arg(&vectors));
    let out = text(&passed);
    assert!(passed.status.success(), "the Python checker failed:\n{out}");
    let count = custos_conformance::vectors().len();
    assert!(
        out.contains(&format!("{count} passed, 0 failed")),
        "expected `{count} passed, 0 failed`:\n{out}"
    );

    // One bit of one vector's bytes flipped: the checker must fail on it.
    let doc = std::fs::read_to_string(&vectors).expect("read the vectors");
    let target = "\"header_hash\": \"";
    let at = doc.find(target).expect("a header hash") + target.len();
    let mut flipped = doc.into_bytes();
    let digit = char::from(flipped[at]).to_digit(16).expect("a hex digit") ^ 1;
    flipped[at] = char::from_digit(digit, 16).expect("a hex digit") as u8;
    let copy = std::env::temp_dir().join(format!(
        "custos-vectors-flipped-{}.json",
        std::process::id()
    ));
    std::fs::write(&copy, &flipped).expect("write the flipped copy");
    let failed = run(Command::new(&python).arg(&checker).arg(&copy));
    let _ = std::fs::remove_file(&copy);
    let out = text(&failed);
    assert!(
        !failed.status.success(),
        "the checker accepted a flipped bit:\n{out}"
    );
    assert!(
        out.contains(", 1 failed"),
        "expected exactly one failure:\n{out}"
    );

    // Its self-test flips one bit in a copy of every valid vector and expects each copy to fail.
    let valid = custos_conformance::vectors()
        .iter()
        .filter(|v| v.valid)
        .count();
    let selftest = run(Command::new(&python)
        .arg(&checker)
        .arg("--self-test")
        .arg(&vectors));
    if vectors.starts_with(std::env::temp_dir()) {
        let _ = std::fs::remove_file(&vectors);
    }
    let out = text(&selftest);
    assert!(
        selftest.status.success(),
        "the checker's self-test failed:\n{out}"
    );
    assert!(
        out.contains(&format!("{valid} mutants failed as they must, 0 survived")),
        "expected every one of the {valid} valid vectors to fail once mutated:\n{out}"
    );
}
