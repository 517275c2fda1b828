//! BFT consortium figures, each beside a baseline measured in the same run: finalized
//! transactions per second with four in-process validators (Malachite over libp2p, real gRPC
//! and libp2p sockets on loopback, every signature checked), submit→finalized latency at an
//! offered 1,000 tx/s, value-sync catch-up of a validator that joins with an empty store, and
//! light-client verification time per header.
//!
//! Run: `cargo bench -p custos-node --bench bft` (add `-- --quick` for a short run).
//!
//! All validators, the submitters and the light client share one process and this host's cores
//! (and whatever else runs on it: the load average is printed): the figures are what the whole
//! consortium does on one host, not what one validator does on a machine of its own.
//!
//! The catch-up chain is certified like a consensus-built one but made directly: the node's own
//! `LedgerCore` builds each (empty) block and three of the four validator keys sign its commit
//! certificate, exactly the certificate Malachite's precommits form. Building 10,000 blocks live
//! would take longer than the whole bench may (the live rate is printed as the baseline).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custos_client::Client;
use custos_crypto::{PartyKeys, SigningKeyPair, sha256};
use custos_ledger::CommitCertificate;
use custos_node::{NodeConfig, RunningNode};
use custos_proto::ledger::v1 as pb;
use custos_types::genesis::{GenesisParty, GenesisValidator};
use custos_types::model::Organisation;
use custos_types::tx::RegisterParty;
use custos_types::{
    ChainId, Genesis, Nonce, Parameters, PartyId, Role, SignedTransaction, Timestamp,
    TransactionBody, TxKind,
};

const CHAIN: &str = "custos-bench-bft";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// CPU seconds this process has used (user + system, all threads; Linux, 100 ticks a second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 3, utime field 14, stime field 15.
    (ticks(11) + ticks(12)) / 100.0
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// A free loopback port (see [`custos_consensus::reserve_loopback_port`]); never the same one
/// twice, as the bench releases each at once.
fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().expect("lock");
    for _ in 0..1000 {
        let port = custos_consensus::reserve_loopback_port()
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no free port")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy");
        }
    }
}

/// One validator of a consortium: its key and settings, and the node while it runs.
struct Member {
    keys: PartyKeys,
    config: NodeConfig,
    endpoint: String,
    node: Option<RunningNode>,
}

/// A consortium of in-process validators with their own folders, keys and sled stores.
struct Consortium {
    _dir: tempfile::TempDir,
    genesis: Genesis,
    members: Vec<Member>,
}

impl Consortium {
    /// Writes the keys and genesis of `n` validators (one: a one-validator network). Every
    /// consortium has the same chain id and organisation, so one set of pre-signed
    /// transactions is valid on each.
    fn new(n: usize, idle_block_ms: u64, custodian: &PartyKeys) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = rand::rngs::OsRng;
        let keys: Vec<PartyKeys> = (0..n).map(|_| PartyKeys::generate(&mut rng)).collect();
        let grpc: Vec<SocketAddr> = (0..n)
            .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
            .collect();
        let p2p: Vec<String> = (0..n)
            .map(|_| format!("/ip4/127.0.0.1/tcp/{}", free_port()))
            .collect();
        let genesis = Genesis {
            chain_id: ChainId::parse(CHAIN).expect("chain"),
            genesis_time_ms: Timestamp::now().0,
            parameters: Parameters::default(),
            validators: keys
                .iter()
                .zip(&p2p)
                .map(|(k, a)| GenesisValidator {
                    public_key: PartyId(k.public()),
                    power: 1,
                    address: a.clone(),
                })
                .collect(),
            parties: vec![GenesisParty {
                public_key: PartyId(custodian.public()),
                role: Role::Custodian,
                encryption_key: custodian.encryption_public(),
                organisation: Organisation::parse("hospital", "organisation").expect("org"),
                member: true,
            }],
        };
        genesis.validate().expect("valid genesis");
        let gpath = dir.path().join("genesis.json");
        std::fs::write(&gpath, serde_json::to_string(&genesis).expect("json")).expect("write");
        let others = |i: usize| (0..n).filter(move |j| *j != i);
        let mut members = Vec::new();
        for (i, keys) in keys.into_iter().enumerate() {
            let node_dir = dir.path().join(format!("validator-{i}"));
            std::fs::create_dir_all(&node_dir).expect("mkdir");
            let kpath = node_dir.join("validator.key");
            std::fs::write(
                &kpath,
                serde_json::to_string(&keys.to_file()).expect("json"),
            )
            .expect("write");
            let mut config = NodeConfig::new(gpath.clone(), node_dir.join("data"), kpath);
            config.listen = grpc[i];
            config.idle_block_ms = idle_block_ms;
            // The throughput load is thousands of new patients registering at once: the bench
            // measures the pipeline, not the node's admission limit on such a crowd.
            config.max_pending_registrations = config.mempool_capacity;
            if n > 1 {
                config.peers = others(i).map(|j| format!("http://{}", grpc[j])).collect();
                config.p2p_listen = Some(p2p[i].clone());
                config.p2p_peers = others(i).map(|j| p2p[j].clone()).collect();
            }
            members.push(Member {
                keys,
                config,
                endpoint: format!("http://{}", grpc[i]),
                node: None,
            });
        }
        Consortium {
            _dir: dir,
            genesis,
            members,
        }
    }

    async fn start(&mut self, i: usize) {
        let m = &mut self.members[i];
        m.node = Some(
            custos_node::start(m.config.clone())
                .await
                .expect("validator starts"),
        );
    }

    async fn start_all(&mut self) {
        for i in 0..self.members.len() {
            self.start(i).await;
        }
    }

    async fn stop(&mut self, i: usize) {
        if let Some(node) = self.members[i].node.take() {
            node.stop().await.expect("validator stops");
        }
    }

    async fn stop_all(&mut self) {
        for m in &mut self.members {
            if let Some(node) = m.node.take() {
                node.stop().await.expect("validator stops");
            }
        }
    }

    /// `k` separate connections (HTTP/2 channels) to each validator, interleaved by validator.
    async fn clients(&self, k: usize) -> Vec<Client> {
        let mut out = Vec::new();
        for _ in 0..k {
            for m in &self.members {
                out.push(connect(&m.endpoint).await);
            }
        }
        out
    }
}

async fn connect(endpoint: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Client::connect(endpoint).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {endpoint}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn height(c: &Client) -> u64 {
    c.status().await.map_or(0, |s| s.height)
}

/// Polls until `c` reports a height of at least `target` or `limit` passes; returns the height
/// reached and when.
async fn wait_height(c: &Client, target: u64, limit: Duration, poll: Duration) -> (u64, Instant) {
    let deadline = Instant::now() + limit;
    loop {
        let h = height(c).await;
        if h >= target || Instant::now() >= deadline {
            return (h, Instant::now());
        }
        tokio::time::sleep(poll).await;
    }
}

/// Waits until no validator has pending transactions (or `limit` passes).
async fn drained(clients: &[Client], limit: Duration) {
    let deadline = Instant::now() + limit;
    for c in clients {
        while c.status().await.map_or(0, |s| s.mempool_size) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Pre-signed patient registrations (each by a fresh patient key, nonce 0), signed on every
/// core.
fn registrations(n: usize) -> Vec<SignedTransaction> {
    let chain = ChainId::parse(CHAIN).expect("chain");
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get());
    let per = n.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let chain = chain.clone();
                s.spawn(move || {
                    let mut rng = rand::rngs::OsRng;
                    (0..per.min(n.saturating_sub(t * per)))
                        .map(|_| {
                            let p = PartyKeys::generate(&mut rng);
                            SignedTransaction::sign(
                                &TransactionBody {
                                    chain_id: chain.clone(),
                                    nonce: Nonce(0),
                                    kind: TxKind::RegisterParty(RegisterParty {
                                        party: PartyId(p.public()),
                                        role: Role::Patient,
                                        encryption_key: p.encryption_public(),
                                        organisation: Organisation::default(),
                                    }),
                                },
                                &p.identity,
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("signer thread"))
            .collect()
    })
}

/// Closed-loop saturation settings.
struct Load {
    submitters: usize,
    connections_per_node: usize,
    warmup: Duration,
    window: Duration,
    windows: usize,
}

struct Throughput {
    /// Each window's transactions finalized per second (node 0's blocks).
    windows: Vec<f64>,
    blocks_s: f64,
    txs_per_block: f64,
    /// Finalized acknowledgements the submitters received per second, same span.
    acked_s: f64,
    /// CPU time of the whole process per finalized transaction, µs.
    cpu_us_per_tx: f64,
    /// Share of the host's cores the process used over the span.
    cpu_share: f64,
    errors: u64,
    first_error: Option<String>,
    exhausted: bool,
    /// Log entries on the chain at the end (the state grows with each registration).
    log_size: u64,
}

impl Throughput {
    fn median(&self) -> f64 {
        if self.windows.is_empty() {
            0.0
        } else {
            median(self.windows.clone())
        }
    }
}

type BlockLog = Arc<Mutex<Vec<(Instant, u64)>>>;

/// Blocks as node `c` finalizes them: (when it announced them, transactions). Abort the task
/// before stopping the node: a node does not stop while a block stream is open.
fn record_blocks(
    c: Client,
    reader: PartyKeys,
    from: u64,
) -> (BlockLog, tokio::task::JoinHandle<()>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let out = log.clone();
    let task = tokio::spawn(async move {
        let Ok(mut stream) = c.stream_blocks(&reader, from).await else {
            return;
        };
        while let Ok(Some(block)) = stream.message().await {
            let txs = block
                .signed_header
                .and_then(|s| s.header)
                .map_or(0, |h| u64::from(h.tx_count));
            out.lock().expect("lock").push((Instant::now(), txs));
        }
    });
    (log, task)
}

/// Many submitters, each sending one pre-signed transaction at a time (waiting until it is
/// finalized) to its validator, spread over all validators. After a warm-up, transactions are
/// counted from the blocks node 0 finalizes, over consecutive windows that start and end at a
/// block.
async fn saturate(
    c: &Consortium,
    reader: &PartyKeys,
    txs: Arc<Vec<SignedTransaction>>,
    load: &Load,
) -> Throughput {
    let clients = c.clients(load.connections_per_node).await;
    let observer = connect(&c.members[0].endpoint).await;
    let (blocks, recorder) = record_blocks(
        observer.clone(),
        reader.clone(),
        height(&observer).await + 1,
    );
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(Mutex::new(None::<String>));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::with_capacity(load.submitters);
    for s in 0..load.submitters {
        let client = clients[s % clients.len()].clone();
        let (txs, next, acked, errors, first_error, stop) = (
            txs.clone(),
            next.clone(),
            acked.clone(),
            errors.clone(),
            first_error.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(tx) = txs.get(i) else { break };
                loop {
                    match client.submit_signed(tx, true).await {
                        Ok(_) => {
                            acked.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        // A full mempool is back-pressure: retry the same transaction.
                        Err(custos_client::ClientError::Status(st))
                            if st.code() == tonic::Code::ResourceExhausted =>
                        {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error
                                .lock()
                                .expect("lock")
                                .get_or_insert_with(|| e.to_string());
                            break;
                        }
                    }
                }
            }
        }));
    }
    tokio::time::sleep(load.warmup).await;
    // Window boundaries: the first block after the warm-up, then the first block at least
    // `window` after the previous boundary.
    let deadline =
        Instant::now() + load.window * (load.windows as u32 + 2) + Duration::from_secs(30);
    let after = Instant::now();
    let mut bounds: Vec<(usize, f64, u64)> = Vec::new(); // (block index, cpu s, acked)
    while bounds.len() <= load.windows && Instant::now() < deadline {
        let log = blocks.lock().expect("lock").clone();
        let from = bounds
            .last()
            .map_or(after, |&(i, _, _)| log[i].0 + load.window);
        let start = bounds.last().map_or(0, |&(i, _, _)| i + 1);
        if let Some(i) = (start..log.len()).find(|&i| log[i].0 >= from) {
            bounds.push((i, cpu_seconds(), acked.load(Ordering::Relaxed)));
        } else {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let exhausted = next.load(Ordering::Relaxed) >= txs.len();
    stop.store(true, Ordering::Relaxed);
    recorder.abort();
    let log = blocks.lock().expect("lock").clone();
    let mut windows = Vec::new();
    for w in bounds.windows(2) {
        let (a, b) = (w[0].0, w[1].0);
        let n: u64 = log[a + 1..=b].iter().map(|(_, t)| t).sum();
        windows.push(n as f64 / (log[b].0 - log[a].0).as_secs_f64());
    }
    let (span, in_blocks, nblocks, cpu, acks) = match (bounds.first(), bounds.last()) {
        (Some(f), Some(l)) if l.0 > f.0 => (
            (log[l.0].0 - log[f.0].0).as_secs_f64(),
            log[f.0 + 1..=l.0].iter().map(|(_, t)| t).sum::<u64>(),
            (l.0 - f.0) as u64,
            l.1 - f.1,
            l.2 - f.2,
        ),
        _ => (1.0, 0, 0, 0.0, 0),
    };
    for t in tasks {
        let _ = t.await;
    }
    let log_size = observer.status().await.map_or(0, |s| s.log_size);
    let cores = std::thread::available_parallelism().map_or(1, |p| p.get()) as f64;
    let first_error = first_error.lock().expect("lock").take();
    Throughput {
        windows,
        blocks_s: nblocks as f64 / span,
        txs_per_block: in_blocks as f64 / nblocks.max(1) as f64,
        acked_s: acks as f64 / span,
        cpu_us_per_tx: cpu * 1e6 / in_blocks.max(1) as f64,
        cpu_share: cpu / span / cores,
        errors: errors.load(Ordering::Relaxed),
        first_error,
        exhausted,
        log_size,
    }
}

fn print_throughput(label: &str, t: &Throughput) {
    println!(
        "  {label:<36} {:>8.0} tx/s  (windows {}; {:.2} blocks/s of {:.0} txs; acknowledged {:.0} tx/s; \
         {:.0} µs of CPU per tx, {:.0}% of the host's cores)",
        t.median(),
        t.windows
            .iter()
            .map(|w| format!("{w:.0}"))
            .collect::<Vec<_>>()
            .join(" / "),
        t.blocks_s,
        t.txs_per_block,
        t.acked_s,
        t.cpu_us_per_tx,
        t.cpu_share * 100.0,
    );
    println!(
        "    the chain held {} entries at the end; windows are in order (the state, and its root's cost, grow with each block)",
        t.log_size
    );
    if t.windows.len() < 3 {
        println!("    note: fewer blocks than windows were finalized in the time allowed");
    }
    if t.errors > 0 {
        println!(
            "    {} submissions failed; first: {}",
            t.errors,
            t.first_error.as_deref().unwrap_or("?")
        );
    }
    if t.exhausted {
        println!("    note: the pre-signed transactions ran out before the last window ended");
    }
}

/// Signature checks of the same transactions on one core: what admission costs at the least.
fn verify_rate(txs: &[SignedTransaction]) -> f64 {
    let wires: Vec<_> = txs.iter().map(|t| t.to_wire()).collect();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        for w in &wires {
            let _ = std::hint::black_box(SignedTransaction::from_wire(w.clone()).expect("valid"));
        }
        runs.push(wires.len() as f64 / t.elapsed().as_secs_f64());
    }
    median(runs)
}

/// Open loop: one submission every 1/`rate` s, round-robin over `clients`, each waiting until
/// finalized; returns the sorted latencies in ms, the first failure, and the finalized rate.
async fn open_loop(
    clients: &[Client],
    txs: Vec<SignedTransaction>,
    rate: f64,
) -> (Vec<f64>, Option<String>, f64) {
    let start = Instant::now();
    let mut handles = Vec::with_capacity(txs.len());
    for (i, t) in txs.into_iter().enumerate() {
        // Each submission starts on schedule, whatever the previous ones do.
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let client = clients[i % clients.len()].clone();
        handles.push(tokio::spawn(async move {
            let t0 = Instant::now();
            client
                .submit_signed(&t, true)
                .await
                .map(|_| t0.elapsed().as_secs_f64() * 1e3)
        }));
    }
    let mut lat = Vec::with_capacity(handles.len());
    let mut failed = None;
    for h in handles {
        match h.await {
            Ok(Ok(ms)) => lat.push(ms),
            Ok(Err(e)) => {
                failed.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                failed.get_or_insert_with(|| e.to_string());
            }
        }
    }
    let achieved = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    (lat, failed, achieved)
}

fn print_latency(label: &str, n: usize, r: &(Vec<f64>, Option<String>, f64), rtt: &[f64]) {
    let (lat, failed, achieved) = r;
    if lat.is_empty() {
        println!("  {label}: nothing finalized; first failure: {failed:?}");
        return;
    }
    println!(
        "  {label:<34} p50 {:>8.1} ms  p99 {:>8.1} ms  ({:.0}x / {:.0}x the round trip; {} of {n} finalized, {achieved:.0} tx/s)",
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        percentile(lat, 0.5) / percentile(rtt, 0.5),
        percentile(lat, 0.99) / percentile(rtt, 0.99),
        lat.len(),
    );
    if let Some(e) = failed {
        println!("    first failure: {e}");
    }
}

async fn bench_throughput_and_latency(quick: bool, custodian: &PartyKeys) {
    let load = Load {
        submitters: 4_000,
        connections_per_node: 4,
        warmup: Duration::from_secs(if quick { 3 } else { 5 }),
        window: Duration::from_secs(if quick { 4 } else { 8 }),
        windows: 3,
    };
    let pool = if quick { 80_000 } else { 160_000 };
    let t = Instant::now();
    let txs = Arc::new(registrations(pool));
    println!(
        "finalized throughput, closed loop: {} submitters, each waiting for finality, over {} connections per validator; \
         pre-signed patient registrations ({pool} signed in {:.1} s); median of {} windows of ≥{} s between blocks, after {} s warm-up",
        load.submitters,
        load.connections_per_node,
        t.elapsed().as_secs_f64(),
        load.windows,
        load.window.as_secs(),
        load.warmup.as_secs()
    );
    let sig = verify_rate(&txs[..20_000.min(txs.len())]);
    println!(
        "  baseline signature checks, 1 core     {sig:>8.0} tx/s  ({:.0} µs each)",
        1e6 / sig
    );

    let mut solo = Consortium::new(1, 1_000, custodian);
    solo.start_all().await;
    let one = saturate(&solo, custodian, txs.clone(), &load).await;
    solo.stop_all().await;
    print_throughput("baseline one-validator network", &one);

    let mut four = Consortium::new(4, 1_000, custodian);
    four.start_all().await;
    let clients = four.clients(1).await;
    wait_height(
        &clients[0],
        1,
        Duration::from_secs(30),
        Duration::from_millis(50),
    )
    .await;
    let bft = saturate(&four, custodian, txs.clone(), &load).await;
    print_throughput("4 validators (BFT, loopback)", &bft);
    println!(
        "    4 validators / one validator {:.2}x; / signature-check rate {:.3}x; CPU per tx {:.1}x one validator's; \
         target 10,000 tx/s: {:.0}%",
        bft.median() / one.median(),
        bft.median() / sig,
        bft.cpu_us_per_tx / one.cpu_us_per_tx,
        bft.median() / 100.0
    );
    println!();

    // Open loop on the same consortium once it has drained.
    drained(&clients, Duration::from_secs(60)).await;
    let mut rtt = Vec::new();
    for i in 0..500 {
        let c = &clients[i % clients.len()];
        let t = Instant::now();
        c.status().await.expect("status");
        rtt.push(t.elapsed().as_secs_f64() * 1e3);
    }
    rtt.sort_by(|a, b| a.total_cmp(b));
    let seconds = if quick { 4.0 } else { 10.0 };
    let rate = 1_000.0;
    let n = (rate * seconds) as usize;
    let at_1000 = open_loop(&clients, registrations(n), rate).await;
    println!(
        "submit→finalized on 4 validators, open loop for {seconds:.0} s, round-robin over the validators:"
    );
    println!(
        "  baseline gRPC round trip (status)  p50 {:>8.2} ms  p99 {:>8.2} ms",
        percentile(&rtt, 0.5),
        percentile(&rtt, 0.99)
    );
    print_latency("offered 1000 tx/s", n, &at_1000, &rtt);
    // The same below saturation: half the closed-loop figure, when that is under 1,000.
    let half = (bft.median() / 2.0).floor();
    if half >= 10.0 && half < rate {
        drained(&clients, Duration::from_secs(60)).await;
        let n = (half * seconds) as usize;
        let below = open_loop(&clients, registrations(n), half).await;
        print_latency(
            &format!("offered {half:.0} tx/s (half of saturation)"),
            n,
            &below,
            &rtt,
        );
    }
    drained(&clients, Duration::from_secs(60)).await;
    four.stop_all().await;
}

/// Headers 1..=`to` from `c`, fetched over several concurrent requests.
async fn fetch_headers(c: &Client, to: u64) -> Vec<pb::SignedHeader> {
    let lanes = 8u64;
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            let mut h = 1 + lane;
            while h <= to {
                let signed = c
                    .ledger()
                    .get_header(pb::GetHeaderRequest { height: h })
                    .await
                    .expect("header")
                    .into_inner();
                out.push((h, signed));
                h += lanes;
            }
            out
        }));
    }
    let mut all = Vec::with_capacity(to as usize);
    for t in tasks {
        all.extend(t.await.expect("fetch"));
    }
    all.sort_by_key(|(h, _)| *h);
    all.into_iter().map(|(_, s)| s).collect()
}

/// Builds `blocks` empty blocks into validator 0's store with the node's own core, each
/// certified by three of the four validators (as a Malachite commit certificate is), and copies
/// that store to validators 1 and 2. Returns the time the build took.
fn prebuild_chain(c: &Consortium, blocks: u64) -> Duration {
    let dir = c.members[0].config.data_dir.join("ledger");
    let t = Instant::now();
    {
        let store = custos_storage::KvLedgerStore::open_sled(&dir).expect("sled");
        let core =
            custos_node::core::LedgerCore::open(c.genesis.clone(), Arc::new(store)).expect("core");
        let keys: Vec<&SigningKeyPair> = c.members.iter().map(|m| &m.keys.identity).collect();
        let n = keys.len() as u64;
        for h in 1..=blocks {
            let proposer = keys[((h - 1) % n) as usize].public();
            let (block, refused) = core.build_block(vec![], Timestamp::now(), proposer);
            assert!(refused.is_empty());
            let absent = (h % n) as usize;
            let signers: Vec<&SigningKeyPair> = keys
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != absent)
                .map(|(_, k)| *k)
                .collect();
            let certificate = CommitCertificate::sign(&block.header, 0, &signers);
            core.commit_block(&block, certificate).expect("commit");
        }
    }
    let took = t.elapsed();
    // sled's background thread lets go of the files shortly after the store is dropped.
    std::thread::sleep(Duration::from_millis(500));
    for m in &c.members[1..3] {
        copy_dir(&dir, &m.config.data_dir.join("ledger"));
    }
    took
}

async fn bench_sync_and_light_client(quick: bool, custodian: &PartyKeys) {
    let blocks: u64 = if quick { 1_000 } else { 10_000 };
    let mut c = Consortium::new(4, 1, custodian);
    let built_in = prebuild_chain(&c, blocks);
    println!(
        "value sync: a 4-validator chain of {blocks} empty blocks (built and certified in {:.1} s: {:.0} blocks/s through \
         core + sled alone); validators 0-2 hold it, validator 3 joins with an empty data folder; idle_block_ms = 1",
        built_in.as_secs_f64(),
        blocks as f64 / built_in.as_secs_f64()
    );
    for i in 0..3 {
        c.start(i).await;
    }
    let observer = connect(&c.members[0].endpoint).await;
    // The three carry on from the chain's tip before validator 3 comes.
    wait_height(
        &observer,
        blocks + 1,
        Duration::from_secs(60),
        Duration::from_millis(20),
    )
    .await;
    let tip = height(&observer).await;
    let t = Instant::now();
    c.start(3).await;
    let joiner = connect(&c.members[3].endpoint).await;
    let limit = Duration::from_secs(if quick { 90 } else { 300 });
    let (reached, t_caught) = wait_height(&joiner, tip, limit, Duration::from_millis(10)).await;
    let catch_up = (t_caught - t).as_secs_f64();
    let others = height(&observer).await;
    // Once validator 3 is at the live tip, the live rate of all four.
    let (live_from, _) = wait_height(
        &joiner,
        others,
        Duration::from_secs(60),
        Duration::from_millis(10),
    )
    .await;
    let window = Duration::from_secs(if quick { 10 } else { 20 });
    let (h0, t0) = (height(&observer).await, Instant::now());
    tokio::time::sleep(window).await;
    let (h1, t1) = (height(&observer).await, Instant::now());
    let live = (h1 - h0) as f64 / (t1 - t0).as_secs_f64();
    println!(
        "  baseline live cluster, 4 validators  {live:>8.1} blocks/s  ({} empty blocks in {:.1} s: {blocks} blocks would take {:.0} s)",
        h1 - h0,
        (t1 - t0).as_secs_f64(),
        blocks as f64 / live
    );
    if reached >= tip {
        println!(
            "  validator 3 catches up {tip} blocks  {:>8.1} blocks/s  ({catch_up:.1} s from start; {:.2}x the live rate)",
            tip as f64 / catch_up,
            tip as f64 / catch_up / live
        );
    } else {
        println!(
            "  validator 3 did NOT catch up: height {reached} of {tip} after {catch_up:.1} s ({:.1} blocks/s)",
            reached as f64 / catch_up
        );
    }
    println!(
        "    meanwhile the other three went from {tip} to {others} ({:.1} blocks/s with one validator away); \
         validator 3 at the live tip {}",
        (others - tip) as f64 / catch_up,
        if live_from >= others {
            "afterwards"
        } else {
            "NOT within 60 s"
        }
    );
    println!();

    // The light client over the whole chain: the certified blocks and those Malachite added.
    // Validators 1-3 stop first: validator 0 alone finalizes nothing, so it serves the headers
    // without committing blocks at the same time.
    for i in 1..4 {
        c.stop(i).await;
    }
    let tip = height(&observer).await;
    let t = Instant::now();
    let headers = fetch_headers(&observer, tip).await;
    let fetched = t.elapsed().as_secs_f64();
    c.stop_all().await;
    let trusted = custos_client::verify::genesis_validators(&c.genesis).expect("trusted set");
    let signatures: usize = headers
        .iter()
        .map(|h| h.certificate.as_ref().map_or(0, |c| c.signatures.len()))
        .sum();
    let mut per_header = Vec::new();
    for _ in 0..if quick { 3 } else { 5 } {
        let t = Instant::now();
        let chain = custos_client::verify::verify_header_chain(&c.genesis, &trusted, &headers)
            .expect("the chain verifies");
        per_header.push(t.elapsed().as_secs_f64() * 1e6 / chain.len() as f64);
    }
    // Baseline: one strict Ed25519 verification of a 32-byte message.
    let key = PartyKeys::generate(&mut rand::rngs::OsRng);
    let msg = sha256(b"custos");
    let sig = key.identity.sign(msg.as_bytes());
    let mut one = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..2_000 {
            key.public()
                .verify(std::hint::black_box(msg.as_bytes()), &sig)
                .expect("verifies");
        }
        one.push(t.elapsed().as_secs_f64() * 1e6 / 2_000.0);
    }
    let (v, e) = (median(per_header), median(one));
    println!(
        "light client: verify_header_chain from the genesis set over {} headers ({blocks} certified as above, {} by Malachite; \
         fetched in {fetched:.1} s), {:.2} signatures per certificate",
        headers.len(),
        headers.len() as u64 - blocks,
        signatures as f64 / headers.len().max(1) as f64
    );
    println!("  baseline one Ed25519 verification   {e:>8.2} µs");
    println!(
        "  per header (median)                 {v:>8.2} µs  ({:.1}x one signature check)",
        v / e
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let started = Instant::now();
    println!(
        "custos BFT bench{} — medians; ratios against baselines measured in this run; {} cores shared by everything \
         (load average at start {})\n",
        if quick { " (quick)" } else { "" },
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        load_average()
    );
    let custodian = PartyKeys::generate(&mut rand::rngs::OsRng);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench_throughput_and_latency(quick, &custodian));
    println!();
    rt.block_on(bench_sync_and_light_client(quick, &custodian));
    println!(
        "\n{:.0} s in all; load average at the end {}",
        started.elapsed().as_secs_f64(),
        load_average()
    );
}
