//! The transparency-dev/merkle RFC 6962 proof vectors (testdata/rfc6962, see ORIGIN.md there).
//!
//! Each JSON file is one case: `wantErr: false` must verify, `wantErr: true` must be refused.
//! The reference verifier takes hashes as byte strings of any length, ours takes `Hash`, so:
//! - a leaf or proof hash that is not 32 bytes cannot be passed in at all: the case is refused
//!   at parsing (the reference refuses such a leaf hash too, and such a proof hash can never
//!   hash to the root);
//! - a root is only ever compared, never hashed, so a root that is not 32 bytes is passed as a
//!   stand-in digest (equal byte strings give equal stand-ins, and no real root equals one).
//!   One `wantErr: false` case, sizes-are-equal-one-and-proof-is-empty, has 12-byte roots.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use custos_crypto::{Hash, sha256_parts};
use custos_ledger::merkle::{verify_consistency, verify_inclusion};
use serde_json::Value;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/rfc6962")
}

/// Every `.json` file under `dir`, in a stable order.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The base64 bytes of a field; null or missing reads as empty (the cases leave some unset).
fn bytes_field(case: &Value, name: &str) -> Result<Vec<u8>, String> {
    match case.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => STANDARD
            .decode(text)
            .map_err(|e| format!("{name} is not base64: {e}")),
        Some(other) => Err(format!("{name} is not a string: {other}")),
    }
}

fn u64_field(case: &Value, name: &str) -> Result<u64, String> {
    case.get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| format!("{name} is not a u64"))
}

/// A hash that is hashed further: anything but 32 bytes is refused.
fn hash_field(case: &Value, name: &str) -> Result<Hash, String> {
    let bytes = bytes_field(case, name)?;
    Hash::from_slice(&bytes).map_err(|e| format!("{name}: {e}"))
}

/// A root, which is only compared: anything but 32 bytes becomes a stand-in digest.
fn root_field(case: &Value, name: &str) -> Result<Hash, String> {
    let bytes = bytes_field(case, name)?;
    Ok(Hash::from_slice(&bytes).unwrap_or_else(|_| {
        sha256_parts(&[b"custos test stand-in for a non-32-byte root:", &bytes])
    }))
}

/// The proof; null or missing is the empty proof.
fn proof_field(case: &Value) -> Result<Vec<Hash>, String> {
    match case.get("proof") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let text = item
                    .as_str()
                    .ok_or_else(|| format!("proof[{i}] is not a string"))?;
                let bytes = STANDARD
                    .decode(text)
                    .map_err(|e| format!("proof[{i}] is not base64: {e}"))?;
                Hash::from_slice(&bytes).map_err(|e| format!("proof[{i}]: {e}"))
            })
            .collect(),
        Some(other) => Err(format!("proof is not an array: {other}")),
    }
}

/// `Ok` if the case verifies, `Err(why)` if it is refused, at parsing or by the verifier.
fn run_inclusion(case: &Value) -> Result<(), String> {
    let index = u64_field(case, "leafIdx")?;
    let size = u64_field(case, "treeSize")?;
    let root = root_field(case, "root")?;
    let leaf = hash_field(case, "leafHash")?;
    let proof = proof_field(case)?;
    verify_inclusion(&leaf, index, size, &proof, &root).map_err(|e| e.to_string())
}

fn run_consistency(case: &Value) -> Result<(), String> {
    let size1 = u64_field(case, "size1")?;
    let size2 = u64_field(case, "size2")?;
    let root1 = root_field(case, "root1")?;
    let root2 = root_field(case, "root2")?;
    let proof = proof_field(case)?;
    verify_consistency(size1, size2, &root1, &root2, &proof).map_err(|e| e.to_string())
}

/// Runs every case under `kind/`, returning how many ran and a line per wrong outcome.
fn check_all(kind: &str, run: fn(&Value) -> Result<(), String>) -> (usize, Vec<String>) {
    let files = json_files(&vectors_dir().join(kind));
    let mut failures = Vec::new();
    for file in &files {
        let name = file
            .strip_prefix(vectors_dir())
            .unwrap_or(file)
            .display()
            .to_string();
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {name}: {e}"));
        let case: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {name}: {e}"));
        let Some(want_err) = case.get("wantErr").and_then(Value::as_bool) else {
            failures.push(format!("{name}: no boolean wantErr"));
            continue;
        };
        match (run(&case), want_err) {
            (Ok(()), false) | (Err(_), true) => {}
            (Ok(()), true) => failures.push(format!("{name}: expected an error, got Ok")),
            (Err(why), false) => failures.push(format!("{name}: expected Ok, got: {why}")),
        }
    }
    (files.len(), failures)
}

#[test]
fn every_inclusion_vector_gives_its_expected_result() {
    let (checked, failures) = check_all("inclusion", run_inclusion);
    assert!(
        checked > 0,
        "no inclusion vectors found under {}",
        vectors_dir().display()
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_consistency_vector_gives_its_expected_result() {
    let (checked, failures) = check_all("consistency", run_consistency);
    assert!(
        checked > 0,
        "no consistency vectors found under {}",
        vectors_dir().display()
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The stand-in rule must stay the exception: it lets exactly one case that must verify
/// through, and a larger count would mean the vectors changed under us.
#[test]
fn only_one_case_that_must_verify_has_roots_that_are_not_32_bytes() {
    let mut must_verify = 0;
    let mut with_stand_ins = Vec::new();
    for kind in ["inclusion", "consistency"] {
        for file in json_files(&vectors_dir().join(kind)) {
            let case: Value = serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
            if case.get("wantErr") != Some(&Value::Bool(false)) {
                continue;
            }
            must_verify += 1;
            let odd_root = ["root", "root1", "root2"].iter().any(|name| {
                case.get(*name).is_some() && bytes_field(&case, name).map(|b| b.len()) != Ok(32)
            });
            if odd_root {
                let name = file
                    .strip_prefix(vectors_dir())
                    .unwrap()
                    .display()
                    .to_string();
                with_stand_ins.push(name);
            }
        }
    }
    assert!(must_verify >= 10, "only {must_verify} cases must verify");
    assert_eq!(
        with_stand_ins,
        ["consistency/additional/sizes-are-equal-one-and-proof-is-empty.json"]
    );
}
