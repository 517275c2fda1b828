//! Process-level tests of the `custos` binary: real processes, real sockets, real sled files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bft;
mod cli;
mod crash;
mod flow;
mod governance;
mod python;
mod vault;
mod vault_damage;
mod zk;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `custos` binary under test.
pub(crate) fn custos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_custos"))
}

/// Spawns `command` (a server on `127.0.0.1:0`) and returns the child and the address it
/// announces on its first line, `<prefix> listening on ADDR …`.
pub(crate) fn spawn_listening(mut command: Command, prefix: &str) -> (Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {prefix}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let addr = line
        .strip_prefix(&format!("{prefix} listening on "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_string();
    (child, addr)
}

/// Starts `custos node run` on a free loopback port and returns the child and its endpoint.
pub(crate) fn start_node(config: &Path) -> (Child, String) {
    let mut command = custos();
    command
        .args(["node", "run", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0"]);
    let (child, addr) = spawn_listening(command, "custos node");
    assert!(addr.starts_with("127.0.0.1:"), "unexpected address: {addr}");
    (child, format!("http://{addr}"))
}

/// The output of a command that had to succeed; fails the test with its stderr otherwise.
pub(crate) fn succeeded(out: Output) -> Output {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The JSON a successful `custos --json …` printed; fails the test with its stderr otherwise.
pub(crate) fn ok_json(out: Output) -> serde_json::Value {
    serde_json::from_slice(&succeeded(out).stdout).unwrap()
}

/// The stderr of a command that had to fail (non-zero exit).
pub(crate) fn refused(out: Output) -> String {
    assert!(!out.status.success(), "expected a refusal");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// `custos keys generate` into `dir/name.key`; the file and its public key (hex).
pub(crate) fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(format!("{name}.key"));
    let out = custos()
        .args(["--json", "keys", "generate", "--out"])
        .arg(&path)
        .output()
        .unwrap();
    let v = ok_json(out);
    (path, v["public_key"].as_str().unwrap().to_string())
}

/// `custos node init --dir dir --party parties [extra…]`, then the node started; returns the
/// child, its endpoint and the genesis file.
pub(crate) fn init_and_start_node(
    dir: &Path,
    parties: &str,
    extra: &[&str],
) -> (Child, String, PathBuf) {
    succeeded(
        custos()
            .args(["node", "init", "--dir"])
            .arg(dir)
            .args(["--party", parties])
            .args(extra)
            .output()
            .unwrap(),
    );
    let (child, node) = start_node(&dir.join("node.toml"));
    (child, node, dir.join("genesis.json"))
}

/// Runs `attempt` until it succeeds, for at most 200 × 25 ms: a node just started may take a
/// moment to accept connections.
pub(crate) fn until_ok(mut attempt: impl FnMut() -> Output) -> Output {
    for _ in 0..200 {
        let out = attempt();
        if out.status.success() {
            return out;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    succeeded(attempt())
}

/// Polls `f` until it returns `Some`, for at most `limit`.
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
