//! BFT consortium figures, each beside a baseline measured in the same run: finalized
//! transactions per second with four in-process validators (Malachite over libp2p, real gRPC
//! and libp2p sockets on loopback, every signature checked), submit→finalized latency at an
//! offered 1,000 tx/s, value-sync catch-up of a validator that restarts with an empty store, and
//! light-client verification time per header.
//!
//! Run: `cargo bench -p custos-node --bench bft` (add `-- --quick` for a short run).
//!
//! All validators, the submitters and the light client share one process and this machine's
//! cores: the figures are what the whole consortium does on one host, not one validator's share.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use custos_client::Client;
use custos_crypto::{PartyKeys, sha256};
use custos_node::{NodeConfig, RunningNode};
use custos_proto::ledger::v1 as pb;
use custos_types::genesis::{GenesisParty, GenesisValidator};
use custos_types::model::Organisation;
use custos_types::tx::RegisterParty;
use custos_types::{
    ChainId, Genesis, Nonce, Parameters, PartyId, Role, SignedTransaction, TransactionBody, TxKind,
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

/// A free loopback port (bound and released; good enough on a quiet machine).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One validator of a consortium: its settings, and the node while it runs.
struct Member {
    config: NodeConfig,
    endpoint: String,
    node: Option<RunningNode>,
}

/// A consortium of in-process validators with their own folders, keys and sled stores.
struct Consortium {
    dir: tempfile::TempDir,
    genesis: Genesis,
    members: Vec<Member>,
}

impl Consortium {
    /// Writes the keys and genesis of `n` validators (one validator: a one-validator network).
    /// Every consortium has the same chain id and organisation, so one set of pre-signed
    /// transactions is valid on each.
    fn new(n: usize, idle_block_ms: u64, custodian: &PartyKeys) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = rand::rngs::OsRng;
        let mut validators = Vec::new();
        let mut keys = Vec::new();
        let mut grpc = Vec::new();
        let mut p2p = Vec::new();
        for _ in 0..n {
            let k = PartyKeys::generate(&mut rng);
            let p2p_addr = format!("/ip4/127.0.0.1/tcp/{}", free_port());
            validators.push(GenesisValidator {
                public_key: PartyId(k.public()),
                power: 1,
                address: p2p_addr.clone(),
            });
            keys.push(k);
            grpc.push(SocketAddr::from(([127, 0, 0, 1], free_port())));
            p2p.push(p2p_addr);
        }
        let genesis = Genesis {
            chain_id: ChainId::parse(CHAIN).expect("chain"),
            genesis_time_ms: custos_types::Timestamp::now().0,
            parameters: Parameters::default(),
            validators,
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
        let mut members = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let node_dir = dir.path().join(format!("validator-{i}"));
            std::fs::create_dir_all(&node_dir).expect("mkdir");
            let kpath = node_dir.join("validator.key");
            std::fs::write(&kpath, serde_json::to_string(&k.to_file()).expect("json"))
                .expect("write");
            let mut config = NodeConfig::new(gpath.clone(), node_dir.join("data"), kpath);
            config.listen = grpc[i];
            config.idle_block_ms = idle_block_ms;
            if n > 1 {
                config.peers = (0..n)
                    .filter(|j| *j != i)
                    .map(|j| format!("http://{}", grpc[j]))
                    .collect();
                config.p2p_listen = Some(p2p[i].clone());
                config.p2p_peers = (0..n).filter(|j| *j != i).map(|j| p2p[j].clone()).collect();
            }
            members.push(Member {
                config,
                endpoint: format!("http://{}", grpc[i]),
                node: None,
            });
        }
        Consortium {
            dir,
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
        for i in 0..self.members.len() {
            self.stop(i).await;
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
    /// Median over the windows of transactions in the blocks node 0 committed, per second.
    median_tx_s: f64,
    /// Each window's figure.
    windows: Vec<f64>,
    /// Blocks per second and transactions per block over all windows.
    blocks_s: f64,
    txs_per_block: f64,
    /// Finalized acknowledgements the submitters received, per second over all windows.
    acked_tx_s: f64,
    errors: u64,
    first_error: Option<String>,
    exhausted: bool,
}

/// Many submitters, each sending one pre-signed transaction at a time (waiting until it is
/// finalized) to its validator, spread over all validators; committed transactions are counted
/// from the blocks node 0 finalizes over consecutive windows after a warm-up.
async fn saturate(c: &Consortium, txs: Arc<Vec<SignedTransaction>>, load: &Load) -> Throughput {
    let clients = c.clients(load.connections_per_node).await;
    let observer = connect(&c.members[0].endpoint).await;
    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
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
    let mut windows = Vec::new();
    let (mut blocks, mut in_blocks, mut acks, mut span) = (0u64, 0u64, 0u64, 0.0f64);
    for _ in 0..load.windows {
        let (h0, a0, t0) = (
            height(&observer).await,
            acked.load(Ordering::Relaxed),
            Instant::now(),
        );
        tokio::time::sleep(load.window).await;
        let (h1, a1, t1) = (
            height(&observer).await,
            acked.load(Ordering::Relaxed),
            Instant::now(),
        );
        let mut n = 0u64;
        for h in h0 + 1..=h1 {
            let signed = observer
                .ledger()
                .get_header(pb::GetHeaderRequest { height: h })
                .await
                .expect("header")
                .into_inner();
            n += u64::from(signed.header.expect("header").tx_count);
        }
        let secs = (t1 - t0).as_secs_f64();
        windows.push(n as f64 / secs);
        blocks += h1 - h0;
        in_blocks += n;
        acks += a1 - a0;
        span += secs;
    }
    let exhausted = next.load(Ordering::Relaxed) >= txs.len();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let first_error = first_error.lock().expect("lock").take();
    Throughput {
        median_tx_s: median(windows.clone()),
        windows,
        blocks_s: blocks as f64 / span,
        txs_per_block: in_blocks as f64 / blocks.max(1) as f64,
        acked_tx_s: acks as f64 / span,
        errors: errors.load(Ordering::Relaxed),
        first_error,
        exhausted,
    }
}

fn print_throughput(label: &str, t: &Throughput) {
    println!(
        "  {label:<34} {:>8.0} tx/s  (windows {}; {:.1} blocks/s of {:.0} txs; acknowledged {:.0} tx/s)",
        t.median_tx_s,
        t.windows
            .iter()
            .map(|w| format!("{w:.0}"))
            .collect::<Vec<_>>()
            .join(" / "),
        t.blocks_s,
        t.txs_per_block,
        t.acked_tx_s,
    );
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

/// Signature checks of the same transactions, one core: what admission costs at the least.
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

async fn bench_throughput_and_latency(quick: bool, custodian: &PartyKeys) {
    let load = Load {
        submitters: 4_000,
        connections_per_node: 4,
        warmup: Duration::from_secs(if quick { 3 } else { 5 }),
        window: Duration::from_secs(if quick { 3 } else { 8 }),
        windows: 3,
    };
    let pool = if quick { 60_000 } else { 150_000 };
    let t = Instant::now();
    let txs = Arc::new(registrations(pool));
    println!(
        "finalized throughput, closed loop: {} submitters (wait for finality) over {} connections per validator, \
         pre-signed patient registrations ({pool} signed in {:.1} s); median of {} windows of {} s after {} s warm-up",
        load.submitters,
        load.connections_per_node,
        t.elapsed().as_secs_f64(),
        load.windows,
        load.window.as_secs(),
        load.warmup.as_secs()
    );
    let sig = verify_rate(&txs[..20_000.min(txs.len())]);

    let mut solo = Consortium::new(1, 1_000, custodian);
    solo.start_all().await;
    let one = saturate(&solo, txs.clone(), &load).await;
    solo.stop_all().await;

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
    let bft = saturate(&four, txs.clone(), &load).await;

    println!("  baseline signature checks, 1 core   {sig:>8.0} tx/s");
    print_throughput("baseline one-validator network", &one);
    print_throughput("4 validators (BFT, loopback)", &bft);
    println!(
        "    4 validators / one validator {:.2}x; / signature-check rate {:.2}x; target 10,000 tx/s: {:.0}%",
        bft.median_tx_s / one.median_tx_s,
        bft.median_tx_s / sig,
        bft.median_tx_s / 100.0
    );
    println!();

    // Open loop on the same consortium once it has drained.
    for c in &clients {
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.status().await.map_or(0, |s| s.mempool_size) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let mut rtt = Vec::new();
    for i in 0..500 {
        let c = &clients[i % clients.len()];
        let t = Instant::now();
        c.status().await.expect("status");
        rtt.push(t.elapsed().as_secs_f64() * 1e3);
    }
    rtt.sort_by(|a, b| a.total_cmp(b));
    let rate = 1_000.0;
    let seconds = if quick { 4 } else { 10 };
    let n = (rate * seconds as f64) as usize;
    let fresh = registrations(n);
    let start = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for (i, t) in fresh.into_iter().enumerate() {
        // Open loop: each submission starts on schedule, whatever the previous ones do.
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
    let offered_for = start.elapsed().as_secs_f64();
    let mut lat = Vec::with_capacity(n);
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
    println!(
        "submit→finalized on 4 validators, open loop: offered {rate:.0} tx/s for {seconds} s round-robin over the validators \
         (schedule kept: {:.0} tx/s):",
        n as f64 / offered_for
    );
    println!(
        "  baseline gRPC round trip (status)  p50 {:>8.2} ms  p99 {:>8.2} ms",
        percentile(&rtt, 0.5),
        percentile(&rtt, 0.99)
    );
    if lat.is_empty() {
        println!("  no submission was finalized; first error: {failed:?}");
    } else {
        println!(
            "  submit→finalized ({} of {n} ok)  p50 {:>8.2} ms  p99 {:>8.2} ms  ({:.0}x / {:.0}x the round trip); finalized {achieved:.0} tx/s",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            percentile(&lat, 0.5) / percentile(&rtt, 0.5),
            percentile(&lat, 0.99) / percentile(&rtt, 0.99),
        );
        if let Some(e) = failed {
            println!("    first failure: {e}");
        }
    }
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

async fn bench_sync_and_light_client(quick: bool, custodian: &PartyKeys) {
    let target: u64 = if quick { 1_000 } else { 10_000 };
    let build_limit = Duration::from_secs(if quick { 40 } else { 300 });
    let mut c = Consortium::new(4, 1, custodian);
    let t = Instant::now();
    c.start_all().await;
    let started = t.elapsed();
    let clients = c.clients(1).await;
    // The chain is timed from its first block, so starting the engines is not counted.
    let (first, t_first) = wait_height(
        &clients[0],
        1,
        Duration::from_secs(30),
        Duration::from_millis(5),
    )
    .await;
    let (built, t_built) =
        wait_height(&clients[0], target, build_limit, Duration::from_millis(20)).await;
    let live = (built - first) as f64 / (t_built - t_first).as_secs_f64();

    // Validator 3 leaves, and comes back with the same key and addresses but an empty data
    // folder (no blocks, no WAL): everything up to the tip it left at comes by value sync.
    c.stop(3).await;
    let tip = height(&clients[0]).await;
    c.members[3].config.data_dir = PathBuf::from(c.dir.path()).join("validator-3/fresh-data");
    let t = Instant::now();
    c.start(3).await;
    let fresh = connect(&c.members[3].endpoint).await;
    let (reached, t_caught) = wait_height(
        &fresh,
        tip,
        Duration::from_secs(if quick { 60 } else { 240 }),
        Duration::from_millis(10),
    )
    .await;
    let catch_up = (t_caught - t).as_secs_f64();
    let others_after = height(&clients[0]).await;
    println!(
        "value sync: 4 validators, idle_block_ms = 1 (empty blocks as fast as consensus goes); engines started in {:.1} s",
        started.as_secs_f64()
    );
    println!(
        "  baseline live cluster               {live:>8.0} blocks/s  ({} blocks in {:.1} s{})",
        built - first,
        (t_built - t_first).as_secs_f64(),
        if built < target {
            format!(
                ", stopped at the {} s limit short of {target}",
                build_limit.as_secs()
            )
        } else {
            String::new()
        }
    );
    if reached >= tip {
        println!(
            "  fresh validator 3 catches up {tip} blocks in {catch_up:.1} s: {:>6.0} blocks/s  ({:.2}x the live rate; start included)",
            tip as f64 / catch_up,
            tip as f64 / catch_up / live
        );
    } else {
        println!(
            "  fresh validator 3 did NOT catch up: height {reached} of {tip} after {catch_up:.1} s ({:.0} blocks/s)",
            reached as f64 / catch_up
        );
    }
    println!(
        "    meanwhile the other three went from {tip} to {others_after} ({:.1} blocks/s with one validator away)",
        (others_after - tip) as f64 / catch_up
    );
    println!();

    // Light client over the chain the four validators built.
    let t = Instant::now();
    let headers = fetch_headers(&clients[0], tip).await;
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
        "light client: verify_header_chain over {} headers of the 4-validator chain (fetched in {fetched:.1} s), {:.2} signatures per certificate",
        headers.len(),
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
    println!(
        "custos BFT bench{} — medians; ratios against baselines measured in this run; {} cores shared by everything\n",
        if quick { " (quick)" } else { "" },
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    let custodian = PartyKeys::generate(&mut rand::rngs::OsRng);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench_throughput_and_latency(quick, &custodian));
    println!();
    rt.block_on(bench_sync_and_light_client(quick, &custodian));
}
