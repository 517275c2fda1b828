//! The pinned snarkjs CLI for tests: installed from npm under the target directory once, and
//! `snarkjs groth16 verify` run on a folder. Shared by the circuits' and the CLI's tests
//! (`#[path]`-included; `CARGO_TARGET_TMPDIR` is the same folder for both).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

/// The snarkjs release the tests verify with.
pub(crate) const SNARKJS: &str = "snarkjs@0.7.5";

/// Installs the pinned snarkjs under the target directory once, and returns its CLI script.
/// Fails the test (never skips it) when npm cannot install it.
pub(crate) fn snarkjs_cli() -> &'static Path {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        let prefix = Path::new(env!("CARGO_TARGET_TMPDIR")).join("snarkjs-0.7.5");
        let package = prefix.join("node_modules/snarkjs");
        let cli = package.join("build/cli.cjs");
        let installed = std::fs::read_to_string(package.join("package.json"))
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            .is_some_and(|json| json["version"] == "0.7.5");
        if !(installed && cli.exists()) {
            std::fs::create_dir_all(&prefix).unwrap();
            let out = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg(SNARKJS)
                .output()
                .unwrap_or_else(|e| panic!("cannot run npm to install {SNARKJS}: {e}"));
            assert!(
                out.status.success() && cli.exists(),
                "npm could not install {SNARKJS} into {} (no network?); this test needs it.\n\
                 stdout: {}\nstderr: {}",
                prefix.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        cli
    })
}

/// Runs `snarkjs groth16 verify verification_key.json public.json proof.json` in `dir`;
/// returns (success, output).
pub(crate) fn snarkjs_verify(dir: &Path) -> (bool, String) {
    let out = Command::new("node")
        .arg(snarkjs_cli())
        .args([
            "groth16",
            "verify",
            "verification_key.json",
            "public.json",
            "proof.json",
        ])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && text.contains("OK"), text)
}
