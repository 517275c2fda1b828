//! Faults of a four-validator consortium run as separate `custos node run` processes, written by
//! `custos devnet --init-only`: a validator killed with SIGKILL, two of four down, one paused with
//! SIGSTOP, and a stream of transactions across all nodes while one is killed and restarted.
//! Real processes, real sled files, real gRPC and libp2p sockets on loopback.
//!
//! Every wait is bounded ([`PATIENCE`]) and every call to a node too (a paused node answers
//! nothing); one consortium runs at a time. When a scenario fails, the tail of each validator's
//! log is printed with the error.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use custos_client::Client;
use custos_client::verify::{genesis_validators, parse_signed_header, verify_header_chain};
use custos_crypto::{Hash, PartyKeys};
use custos_proto::ledger::v1 as pb;
use custos_types::model::Organisation;
use custos_types::tx::RegisterParty;
use custos_types::{
    EntryKind, Genesis, LedgerEntry, Nonce, PartyId, Role, SignedTransaction, TransactionBody,
    TxKind,
};

use crate::custos;

/// How long any wait of a scenario may take.
const PATIENCE: Duration = Duration::from_secs(60);
/// How long one call to a node may take (a paused node never answers).
const CALL: Duration = Duration::from_secs(5);
/// A short idle interval, so that heights pass quickly.
const IDLE_BLOCK_MS: u64 = 250;
/// Logs kept by each validator: what the scenarios print when they fail.
const LOG: &str = "warn,custos=info,custos_consensus=info,arc_malachitebft_network=error,arc_malachitebft_discovery=error,arc_malachitebft_app_channel=off,arc_malachitebft_engine=error";

/// Consortia run one at a time: four validator processes already keep two cores busy.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Awaits `future` for at most `limit`.
async fn within<T>(
    limit: Duration,
    what: &str,
    future: impl std::future::Future<Output = T>,
) -> anyhow::Result<T> {
    tokio::time::timeout(limit, future)
        .await
        .map_err(|_| anyhow!("{what}: no answer within {limit:?}"))
}

/// A patient registration by a fresh key (nonce 0): independent of every other transaction.
fn registration(genesis: &Genesis) -> SignedTransaction {
    let keys = PartyKeys::generate(&mut rand::rngs::OsRng);
    let body = TransactionBody {
        chain_id: genesis.chain_id.clone(),
        nonce: Nonce(0),
        kind: TxKind::RegisterParty(RegisterParty {
            party: PartyId(keys.public()),
            role: Role::Patient,
            encryption_key: keys.encryption_public(),
            organisation: Organisation::default(),
        }),
    };
    SignedTransaction::sign(&body, &keys.identity)
}

/// One validator process.
struct Validator {
    config: PathBuf,
    log: PathBuf,
    endpoint: String,
    child: Option<Child>,
    client: Option<Client>,
}

/// A devnet of validator processes. See the module docs.
pub(crate) struct Devnet {
    genesis: Genesis,
    nodes: Vec<Validator>,
    dir: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for Devnet {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                // SIGKILL ends a paused process too.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

impl Devnet {
    /// `custos devnet --validators n --init-only`, then every validator started.
    pub(crate) async fn start(n: usize) -> anyhow::Result<Self> {
        let turn = ONE_AT_A_TIME.lock().await;
        let dir = tempfile::tempdir()?;
        let out = custos()
            .args(["devnet", "--validators", &n.to_string(), "--dir"])
            .arg(dir.path())
            .arg("--init-only")
            .output()?;
        ensure!(
            out.status.success(),
            "custos devnet failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let genesis = custos_node::load_genesis(&dir.path().join("genesis.json"))?;
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let node_dir = dir.path().join(format!("validator-{i}"));
            let config = node_dir.join("node.toml");
            std::fs::OpenOptions::new()
                .append(true)
                .open(&config)?
                .write_all(format!("idle_block_ms = {IDLE_BLOCK_MS}\n").as_bytes())?;
            let listen = custos_node::NodeConfig::load(&config)?.listen;
            nodes.push(Validator {
                config,
                log: node_dir.join("node.log"),
                endpoint: format!("http://{listen}"),
                child: None,
                client: None,
            });
        }
        let mut net = Devnet {
            genesis,
            nodes,
            dir,
            _turn: turn,
        };
        for i in 0..n {
            net.start_node(i).await?;
        }
        Ok(net)
    }

    fn len(&self) -> usize {
        self.nodes.len()
    }

    /// The folder `custos devnet` wrote: genesis, key files, one folder per validator.
    pub(crate) fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Validator `i`'s gRPC endpoint, `http://127.0.0.1:PORT`.
    pub(crate) fn endpoint(&self, i: usize) -> &str {
        &self.nodes[i].endpoint
    }

    /// Starts validator `i` (again: same config, ports and data folder) and connects to it.
    async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        ensure!(node.child.is_none(), "validator {i} is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        let mut child = custos()
            .args(["node", "run", "--config"])
            .arg(&node.config)
            .env("CUSTOS_LOG", LOG)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .context("spawning custos node run")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        node.child = Some(child);
        // The first line says where it listens; the rest is drained so it never blocks.
        let (first, listening) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = first.send(lines.next());
            for _ in lines {}
        });
        let line = within(PATIENCE, "waiting for the listening line", listening)
            .await?
            .map_err(|_| anyhow!("validator {i} exited before listening"))?
            .ok_or_else(|| anyhow!("validator {i} exited before listening"))??;
        ensure!(
            line.starts_with("custos node listening on "),
            "validator {i} said `{line}` first"
        );
        let client = within(CALL, "connecting", Client::connect(&node.endpoint)).await??;
        node.client = Some(client);
        Ok(())
    }

    /// Kills validator `i` with SIGKILL.
    fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        let mut child = node
            .child
            .take()
            .ok_or_else(|| anyhow!("validator {i} is not running"))?;
        node.client = None;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Sends `signal` (STOP, CONT) to validator `i`'s process.
    fn signal(&self, i: usize, signal: &str) -> anyhow::Result<()> {
        let pid = self.nodes[i]
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("validator {i} is not running"))?
            .id();
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()?;
        ensure!(status.success(), "kill -{signal} {pid} failed");
        Ok(())
    }

    fn client(&self, i: usize) -> anyhow::Result<&Client> {
        self.nodes[i]
            .client
            .as_ref()
            .ok_or_else(|| anyhow!("validator {i} is not running"))
    }

    /// The committed height of validator `i`.
    async fn height(&self, i: usize) -> anyhow::Result<u64> {
        let what = format!("status of validator {i}");
        Ok(within(CALL, &what, self.client(i)?.status()).await??.height)
    }

    /// The highest committed height among `which`.
    async fn highest(&self, which: &[usize]) -> anyhow::Result<u64> {
        let mut highest = 0;
        for &i in which {
            highest = highest.max(self.height(i).await?);
        }
        Ok(highest)
    }

    /// Waits until each of `which` has committed `height`.
    async fn wait_for_height(&self, which: &[usize], height: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + PATIENCE;
        for &i in which {
            loop {
                // A node busy catching up may miss one status call: only the deadline fails.
                let now = self.height(i).await.unwrap_or(0);
                if now >= height {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "validator {i} is at height {now} and did not reach {height} within {PATIENCE:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Submits `tx` to validator `i` and waits until it is finalized there.
    async fn submit(&self, i: usize, tx: &SignedTransaction) -> anyhow::Result<pb::SubmitResponse> {
        let what = format!("submitting to validator {i}");
        let response = within(
            Duration::from_secs(40),
            &what,
            self.client(i)?.submit_signed(tx, true),
        )
        .await??;
        ensure!(
            response.status == pb::TxStatus::Finalized as i32,
            "{what}: status {} ({})",
            response.status,
            response.reason
        );
        Ok(response)
    }

    /// Where validator `i` has transaction `id`: (height, entry index) if finalized.
    async fn located(&self, i: usize, id: &[u8]) -> anyhow::Result<Option<(u64, u64)>> {
        let status = within(
            CALL,
            "reading a transaction's status",
            self.client(i)?
                .ledger()
                .get_tx_status(pb::GetTxStatusRequest { tx_id: id.to_vec() }),
        )
        .await??
        .into_inner();
        Ok((status.status == pb::TxStatus::Finalized as i32)
            .then_some((status.height, status.entry_index)))
    }

    /// Every signed header validator `i` serves.
    async fn headers(&self, i: usize) -> anyhow::Result<Vec<pb::SignedHeader>> {
        Ok(within(PATIENCE, "reading headers", self.client(i)?.headers()).await??)
    }

    /// The blocks validator `i` serves at heights `1..=to`, read by the devnet's auditor (who
    /// sees every entry).
    async fn blocks(&self, i: usize, to: u64) -> anyhow::Result<Vec<pb::Block>> {
        let client = self.client(i)?;
        let auditor = custos_node::load_keys(&self.dir.path().join("auditor.key"))?;
        let mut blocks = Vec::with_capacity(to as usize);
        for height in 1..=to {
            let block = within(CALL, "reading a block", client.block(&auditor, height)).await??;
            blocks.push(block);
        }
        Ok(blocks)
    }

    /// Checks that `which` hold one chain: each serves headers that the light client verifies
    /// from the genesis alone, and their hashes agree at every height they share. Returns the
    /// height they share.
    async fn assert_one_chain(&self, which: &[usize]) -> anyhow::Result<u64> {
        let trusted = genesis_validators(&self.genesis)?;
        let mut chains: Vec<Vec<Hash>> = Vec::new();
        for &i in which {
            let headers = self.headers(i).await?;
            verify_header_chain(&self.genesis, &trusted, &headers)
                .with_context(|| format!("validator {i}'s chain does not verify"))?;
            chains.push(
                headers
                    .iter()
                    .map(|s| Ok(parse_signed_header(s)?.0.hash()))
                    .collect::<anyhow::Result<_>>()?,
            );
        }
        let common = chains.iter().map(Vec::len).min().unwrap_or(0);
        for h in 0..common {
            for (chain, &i) in chains.iter().zip(which) {
                ensure!(
                    chain[h] == chains[0][h],
                    "at height {}: validator {i} has header {}, validator {} has {}",
                    h + 1,
                    chain[h].short(),
                    which[0],
                    chains[0][h].short()
                );
            }
        }
        Ok(common as u64)
    }

    /// Ends a scenario: on failure, prints the tail of every validator's log and panics.
    fn finish(self, result: anyhow::Result<()>) {
        if let Err(e) = result {
            for (i, node) in self.nodes.iter().enumerate() {
                let text = std::fs::read_to_string(&node.log).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!(
                    "--- validator {i} ({}):\n{}",
                    node.log.display(),
                    tail.join("\n")
                );
            }
            panic!("{e:?}");
        }
    }
}

/// The header hashes of `headers`.
fn hashes(headers: &[pb::SignedHeader]) -> anyhow::Result<Vec<Hash>> {
    headers
        .iter()
        .map(|s| Ok(parse_signed_header(s)?.0.hash()))
        .collect()
}

const ALL: [usize; 4] = [0, 1, 2, 3];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_validator_killed_with_sigkill_leaves_three_that_keep_finalizing_and_it_catches_up() {
    let mut net = Devnet::start(4).await.unwrap();
    let result = async {
        let live = [0, 1, 2];
        net.wait_for_height(&ALL, 3).await?;
        net.kill(3)?;
        // What the killed one had: its store must still hold it after the restart.
        let live_before = net.highest(&live).await?;

        // Transactions sent to each live validator are finalized without it.
        let mut finalized = Vec::new();
        for i in live {
            finalized.push(net.submit(i, &registration(&net.genesis)).await?);
        }
        // Heights pass, including the killed validator's turns to propose.
        let target = net.highest(&live).await? + 4;
        net.wait_for_height(&live, target).await?;
        let before_restart = hashes(&net.headers(0).await?)?;
        ensure!(before_restart.len() as u64 >= live_before + 4);

        // Restarted, it has its own blocks at once, then catches up from its peers.
        net.start_node(3).await?;
        let from_store = net.height(3).await?;
        ensure!(
            from_store >= 3,
            "restarted at height {from_store}: blocks lost"
        );
        let target = net.highest(&live).await? + 2;
        net.wait_for_height(&ALL, target).await?;
        let common = net.assert_one_chain(&ALL).await?;
        ensure!(common >= target);
        let after = hashes(&net.headers(3).await?)?;
        ensure!(
            after[..before_restart.len()] == before_restart[..],
            "the restarted validator's chain differs from the one finalized without it"
        );
        for tx in &finalized {
            ensure!(
                net.located(3, &tx.tx_id).await? == Some((tx.height, tx.entry_index)),
                "the restarted validator does not have a transaction where it was finalized"
            );
        }
        Ok(())
    }
    .await;
    net.finish(result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_of_four_down_nothing_is_finalized_and_once_one_returns_nothing_is_lost() {
    let mut net = Devnet::start(4).await.unwrap();
    let result = async {
        let live = [0, 1];
        net.wait_for_height(&ALL, 3).await?;
        net.kill(2)?;
        net.kill(3)?;
        // Let what was in flight before the kills land; nothing can follow it.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let stalled = net.highest(&live).await?;
        let before = hashes(&net.headers(0).await?)?;

        // A transaction is admitted and stays pending.
        let tx = registration(&net.genesis);
        let pending =
            within(CALL, "submitting", net.client(0)?.submit_signed(&tx, false)).await??;
        ensure!(pending.status == pb::TxStatus::Pending as i32);
        let watch_until = Instant::now() + Duration::from_secs(8);
        while Instant::now() < watch_until {
            let now = net.highest(&live).await?;
            ensure!(
                now <= stalled,
                "two of four validators finalized height {now} (stalled at {stalled})"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        for i in live {
            ensure!(
                net.located(i, &pending.tx_id).await?.is_none(),
                "validator {i} finalized a transaction with two of four validators"
            );
        }

        // One returns: the chain goes on, the pending transaction is finalized.
        net.start_node(2).await?;
        let three = [0, 1, 2];
        let deadline = Instant::now() + PATIENCE;
        let (height, index) = loop {
            if let Some(at) = net.located(0, &pending.tx_id).await? {
                break at;
            }
            ensure!(
                Instant::now() < deadline,
                "the pending transaction was not finalized within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        ensure!(height > stalled);
        net.wait_for_height(&three, height + 1).await?;

        // Nothing lost: the headers finalized before the stall are unchanged, everywhere.
        net.start_node(3).await?;
        let target = net.highest(&three).await? + 1;
        net.wait_for_height(&ALL, target).await?;
        net.assert_one_chain(&ALL).await?;
        for i in ALL {
            let now = hashes(&net.headers(i).await?)?;
            ensure!(
                now[..before.len()] == before[..],
                "validator {i}: a header finalized before the stall changed"
            );
            ensure!(
                net.located(i, &pending.tx_id).await? == Some((height, index)),
                "validator {i} does not have the transaction where it was finalized"
            );
        }
        Ok(())
    }
    .await;
    net.finish(result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validator_paused_with_sigstop_rejoins_after_sigcont_and_converges() {
    let net = Devnet::start(4).await.unwrap();
    let result = async {
        let live = [0, 1, 2];
        net.wait_for_height(&ALL, 3).await?;
        let paused_at = net.height(3).await?;
        net.signal(3, "STOP")?;

        // Cut off, it misses blocks and a transaction.
        let tx = net.submit(1, &registration(&net.genesis)).await?;
        let target = net.highest(&live).await?.max(paused_at) + 5;
        net.wait_for_height(&live, target).await?;

        net.signal(3, "CONT")?;
        let target = net.highest(&live).await? + 2;
        net.wait_for_height(&ALL, target).await?;
        let common = net.assert_one_chain(&ALL).await?;
        ensure!(common >= target);
        ensure!(
            net.located(3, &tx.tx_id).await? == Some((tx.height, tx.entry_index)),
            "the paused validator does not have the transaction finalized while it was cut off"
        );
        Ok(())
    }
    .await;
    net.finish(result);
}

/// Transaction id → (height, entry index) where it was finalized.
type Located = BTreeMap<Vec<u8>, (u64, u64)>;

/// Submits `tx` until some validator reports it finalized, starting at validator `first` and
/// moving on to the next one whenever a validator fails to answer (it may be down). Returns
/// where it was finalized and how many attempts it took.
async fn submit_until_finalized(
    endpoints: &[String],
    first: usize,
    tx: &SignedTransaction,
    deadline: Instant,
) -> anyhow::Result<((u64, u64), usize)> {
    let id = tx.id().to_vec();
    let mut node = first;
    for attempt in 1.. {
        ensure!(
            Instant::now() < deadline,
            "transaction {} not finalized after {attempt} attempts",
            hex::encode(&id)
        );
        let endpoint = &endpoints[node];
        if let Ok(Ok(client)) = within(CALL, "connecting", Client::connect(endpoint)).await {
            match within(
                Duration::from_secs(40),
                "submitting",
                client.submit_signed(tx, true),
            )
            .await
            {
                Ok(Ok(r)) if r.status == pb::TxStatus::Finalized as i32 => {
                    return Ok(((r.height, r.entry_index), attempt));
                }
                // Refused (already pending, or its nonce already used because it is final),
                // or the node went down: ask where it is.
                _ => {
                    let status = within(
                        CALL,
                        "reading a transaction's status",
                        client
                            .ledger()
                            .get_tx_status(pb::GetTxStatusRequest { tx_id: id.clone() }),
                    )
                    .await;
                    if let Ok(Ok(s)) = status {
                        let s = s.into_inner();
                        if s.status == pb::TxStatus::Finalized as i32 {
                            return Ok(((s.height, s.entry_index), attempt));
                        }
                    }
                }
            }
        }
        node = (node + 1) % endpoints.len();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unreachable!("the loop returns or fails")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_sent_across_all_nodes_while_one_is_killed_and_restarted_are_each_finalized_exactly_once()
 {
    const N: usize = 60;
    let mut net = Devnet::start(4).await.unwrap();
    let result = async {
        net.wait_for_height(&ALL, 2).await?;
        let txs: Vec<SignedTransaction> = (0..N).map(|_| registration(&net.genesis)).collect();
        let endpoints: Vec<String> = net.nodes.iter().map(|n| n.endpoint.clone()).collect();
        let deadline = Instant::now() + Duration::from_secs(120);
        // Transaction id → where a writer was told it is final.
        let reported: Arc<Mutex<Located>> = Arc::default();
        let attempts: Arc<Mutex<usize>> = Arc::default();
        let mut writers = Vec::new();
        for w in 0..net.len() {
            let mine: Vec<(usize, SignedTransaction)> = txs
                .iter()
                .cloned()
                .enumerate()
                .filter(|(j, _)| j % net.len() == w)
                .collect();
            let (endpoints, reported, attempts) =
                (endpoints.clone(), reported.clone(), attempts.clone());
            writers.push(tokio::spawn(async move {
                for (j, tx) in mine {
                    // Round robin: transaction j goes to validator j mod 4 first.
                    let (at, tries) =
                        submit_until_finalized(&endpoints, j % endpoints.len(), &tx, deadline)
                            .await?;
                    let id = tx.id().to_vec();
                    let mut reported = reported.lock().map_err(|_| anyhow!("poisoned"))?;
                    ensure!(
                        reported.insert(id, at).is_none(),
                        "transaction {j} reported twice"
                    );
                    *attempts.lock().map_err(|_| anyhow!("poisoned"))? += tries;
                }
                anyhow::Ok(())
            }));
        }
        let count = || reported.lock().map(|r| r.len()).unwrap_or(0);
        let wait_count = |n: usize| async move {
            while count() < n {
                ensure!(
                    Instant::now() < deadline,
                    "only {} of {n} finalized",
                    count()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::Ok(())
        };
        wait_count(N / 4).await?;
        net.kill(3)?;
        wait_count(N / 2).await?;
        net.start_node(3).await?;
        for w in writers {
            within(Duration::from_secs(150), "a writer", w).await???;
        }
        let reported = reported.lock().map_err(|_| anyhow!("poisoned"))?.clone();
        ensure!(reported.len() == N);

        // Every node: each transaction once in the chain, where it was reported; nothing else.
        let target = net.highest(&[0, 1, 2]).await? + 1;
        net.wait_for_height(&ALL, target).await?;
        let common = net.assert_one_chain(&ALL).await?;
        let ours: BTreeSet<&Vec<u8>> = reported.keys().collect();
        for i in ALL {
            let mut seen: BTreeMap<Vec<u8>, Vec<(u64, u64)>> = BTreeMap::new();
            for block in net.blocks(i, common).await? {
                for (k, bytes) in block.entries.iter().enumerate() {
                    let entry = LedgerEntry::from_bytes(bytes)?;
                    if let EntryKind::Transaction(tx) = entry.kind {
                        seen.entry(tx.id().to_vec())
                            .or_default()
                            .push((entry.height.0, block.first_entry_index + k as u64));
                    }
                }
            }
            for (id, places) in &seen {
                ensure!(
                    ours.contains(id),
                    "validator {i}: a transaction nobody sent"
                );
                ensure!(
                    places.len() == 1 && Some(&places[0]) == reported.get(id),
                    "validator {i}: transaction {} at {places:?}, reported at {:?}",
                    hex::encode(id),
                    reported.get(id)
                );
            }
            ensure!(
                seen.len() == N,
                "validator {i} holds {} of {N} transactions",
                seen.len()
            );
            for (id, at) in &reported {
                ensure!(net.located(i, id).await? == Some(*at), "validator {i}");
            }
        }
        eprintln!(
            "{N} transactions finalized once each, in {} submissions",
            *attempts.lock().map_err(|_| anyhow!("poisoned"))?
        );
        Ok(())
    }
    .await;
    net.finish(result);
}
