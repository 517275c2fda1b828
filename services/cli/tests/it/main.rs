//! Process-level tests of the `custos` binary: real processes, real sockets, real sled files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bft;
mod cli;
mod crash;
mod flow;
mod governance;
mod vault;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `custos` binary under test.
pub(crate) fn custos() -> Command {
    Command::new(env!("CARGO_BIN_EXE_custos"))
}

/// Starts `custos node run` on a free loopback port and returns the child and its endpoint.
pub(crate) fn start_node(config: &Path) -> (Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = custos()
        .args(["node", "run", "--config"])
        .arg(config)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn custos node run");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let addr = line.trim().rsplit(' ').next().expect("address").to_string();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "unexpected first line: {line}"
    );
    (child, format!("http://{addr}"))
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
