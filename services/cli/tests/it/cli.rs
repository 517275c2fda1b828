//! The CLI's contract: key files, clear errors and exit codes, JSON output.

use crate::{custos, ok_json, succeeded};

#[test]
fn key_files_are_written_0600_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.key");
    let out = custos()
        .args(["keys", "generate", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    succeeded(out);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let before = std::fs::read(&path).unwrap();
    let again = custos()
        .args(["keys", "generate", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn keys_show_prints_json_with_the_public_keys_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key");
    assert!(
        custos()
            .args(["keys", "generate", "--out"])
            .arg(&path)
            .status()
            .unwrap()
            .success()
    );
    let out = custos()
        .args(["--json", "keys", "show", "--key"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["public_key"].as_str().unwrap().len(), 64);
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(file["secret_key"].as_str().unwrap()));
}

#[test]
fn an_unknown_purpose_is_a_clear_error_with_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.key");
    assert!(
        custos()
            .args(["keys", "generate", "--out"])
            .arg(&path)
            .status()
            .unwrap()
            .success()
    );
    let out = custos()
        .args([
            "partner",
            "request",
            "--node",
            "http://127.0.0.1:9",
            "--key",
        ])
        .arg(&path)
        .args(["--record", &"ab".repeat(32), "--purpose", "PurposeOfUse"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--purpose") && err.contains("abstract"),
        "{err}"
    );
}

#[test]
fn flags_can_come_from_custos_environment_variables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("env.key");
    let out = custos()
        .args(["keys", "generate"])
        .env("CUSTOS_KEY_OUT", &path)
        .output()
        .unwrap();
    succeeded(out);
    assert!(path.exists());
}

#[test]
fn the_demo_tells_the_whole_story_and_exits_zero() {
    let v = ok_json(custos().args(["--json", "demo"]).output().unwrap());
    assert_eq!(v["decisions"], 5);
    assert_eq!(v["granted"], 2);
}
