//! A transaction's submit→finalized latency while 16 clients call the most expensive read, beside
//! the same figure with no readers, in one run (phases interleaved: idle, loaded, idle, loaded).
//!
//! Run: `cargo bench -p custos-node --bench reads` (add `-- --quick` for a short run).
//!
//! The expensive read is `AuditService.VerifyChain`, the call that once re-verified every header
//! on every call (about 200 ms at height 728, linear in height) and let 16 callers stall a
//! validator. Each reader signs as an auditor of its own (whom no role check cuts short, and whose
//! reads no per-author replay bound throttles). One in-process
//! validator (a one-validator network, the same code path as four) on loopback gRPC; the chain is
//! first grown to the bench's height with idle blocks so that a per-call cost linear in height
//! would show. The readers share this host's cores with the validator (the load average is
//! printed).
//!
//! The node runs with its default read budget (`[reads]` in node.toml: 2,000 signed reads a
//! second, 200 per author); readers refused for it wait as the refusal's `retry-after-ms` hint
//! says. The readers sign in this process, on the validator's cores: a remote reader's signing
//! would cost the validator nothing.
//!
//! The last line is machine-readable:
//! `reads: idle_p50_ms=<> idle_p99_ms=<> loaded_p50_ms=<> loaded_p99_ms=<> ratio_p50=<> ratio_p99=<> reads_per_s=<> height=<>`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use custos_client::Client;
use custos_crypto::PartyKeys;
use custos_node::NodeConfig;
use custos_proto::audit::v1 as audit_pb;
use custos_proto::ledger::v1 as pb;
use custos_types::genesis::{GenesisParty, GenesisValidator};
use custos_types::model::Organisation;
use custos_types::tx::RegisterParty;
use custos_types::{
    ChainId, Genesis, Nonce, Parameters, PartyId, Role, SignedTransaction, Timestamp,
    TransactionBody, TxKind,
};

const CHAIN: &str = "custos-bench-reads";
const READERS: usize = 16;
const VERIFY_CHAIN: &str = "/custos.audit.v1.AuditService/VerifyChain";

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
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

/// A fresh patient's self-registration, signed in advance.
fn registration() -> SignedTransaction {
    let keys = PartyKeys::generate(&mut rand::rngs::OsRng);
    let body = TransactionBody {
        chain_id: ChainId::parse(CHAIN).expect("chain"),
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

/// Submits `n` registrations one after another, each waiting for finality; milliseconds each.
async fn latencies(client: &Client, n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let tx = registration();
        let start = Instant::now();
        let answer = client
            .ledger()
            .submit(pb::SubmitRequest {
                transaction: Some(tx.to_wire()),
                wait: true,
            })
            .await
            .expect("submitted")
            .into_inner();
        assert_eq!(answer.status, pb::TxStatus::Finalized as i32, "{answer:?}");
        out.push(start.elapsed().as_secs_f64() * 1e3);
    }
    out
}

/// Starts `READERS` clients that call `VerifyChain` back to back until `stop`; counts the
/// answers and the refusals. A reader refused for the node's read budget waits as the refusal's
/// `retry-after-ms` hint says, as a well-behaved client does.
fn start_readers(
    clients: &[Client],
    auditors: &[Arc<PartyKeys>],
    stop: &Arc<AtomicBool>,
    served: &Arc<AtomicU64>,
    refused: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    clients
        .iter()
        .cloned()
        .zip(auditors.iter().cloned())
        .map(|(client, auditor)| {
            let (stop, served, refused) = (stop.clone(), served.clone(), refused.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let read = client.signed_read(
                        &auditor,
                        VERIFY_CHAIN,
                        &audit_pb::AccessLogQuery::default(),
                    );
                    match client.audit().verify_chain(read).await {
                        Ok(_) => {
                            served.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(status) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            if let Some(wait) = custos_client::retry_after(&status) {
                                tokio::time::sleep(wait).await;
                            }
                        }
                    }
                }
            })
        })
        .collect()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(quick));
}

async fn run(quick: bool) {
    let (height, per_phase) = if quick { (200, 30) } else { (1_000, 100) };
    let dir = tempfile::tempdir().expect("tempdir");
    let validator = PartyKeys::generate(&mut rand::rngs::OsRng);
    let auditors: Vec<Arc<PartyKeys>> = (0..READERS)
        .map(|_| Arc::new(PartyKeys::generate(&mut rand::rngs::OsRng)))
        .collect();
    let genesis = Genesis {
        chain_id: ChainId::parse(CHAIN).expect("chain"),
        genesis_time_ms: Timestamp::now().0,
        parameters: Parameters::default(),
        validators: vec![GenesisValidator {
            public_key: PartyId(validator.public()),
            power: 1,
            address: String::new(),
        }],
        parties: auditors
            .iter()
            .enumerate()
            .map(|(i, a)| GenesisParty {
                public_key: PartyId(a.public()),
                role: Role::Auditor,
                encryption_key: a.encryption_public(),
                organisation: Organisation::parse(&format!("regulator-{i}"), "organisation")
                    .expect("org"),
                member: false,
            })
            .collect(),
    };
    let gpath = dir.path().join("genesis.json");
    std::fs::write(&gpath, serde_json::to_string(&genesis).expect("json")).expect("write");
    let kpath = dir.path().join("validator.key");
    std::fs::write(
        &kpath,
        serde_json::to_string(&validator.to_file()).expect("json"),
    )
    .expect("write");
    let mut config = NodeConfig::new(gpath, dir.path().join("data"), kpath);
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.idle_block_ms = 5;
    let node = custos_node::start(config).await.expect("validator starts");
    let endpoint = format!("http://{}", node.addr);
    let client = connect(&endpoint).await;

    // Grow the chain with idle blocks.
    let grown = Instant::now();
    while client.status().await.map_or(0, |s| s.height) < height {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "chain grown to height {height} in {:.1} s; {READERS} readers call VerifyChain as the auditor; load average {}",
        grown.elapsed().as_secs_f64(),
        load_average()
    );

    let mut readers_clients = Vec::with_capacity(READERS);
    for _ in 0..READERS {
        readers_clients.push(connect(&endpoint).await);
    }
    let (mut idle, mut loaded) = (Vec::new(), Vec::new());
    let served = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let mut loaded_time = Duration::ZERO;
    for round in 0..2 {
        idle.extend(latencies(&client, per_phase).await);
        let stop = Arc::new(AtomicBool::new(false));
        let readers = start_readers(&readers_clients, &auditors, &stop, &served, &refused);
        // Let every reader be in flight before measuring.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start = Instant::now();
        loaded.extend(latencies(&client, per_phase).await);
        loaded_time += start.elapsed();
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            let _ = r.await;
        }
        println!("round {}: load average {}", round + 1, load_average());
    }
    let height_now = client.status().await.map_or(0, |s| s.height);
    node.stop().await.expect("validator stops");

    idle.sort_by(|a, b| a.total_cmp(b));
    loaded.sort_by(|a, b| a.total_cmp(b));
    let (i50, i99) = (percentile(&idle, 0.5), percentile(&idle, 0.99));
    let (l50, l99) = (percentile(&loaded, 0.5), percentile(&loaded, 0.99));
    let reads_per_s = served.load(Ordering::Relaxed) as f64 / loaded_time.as_secs_f64().max(1e-9);
    let refused_per_s =
        refused.load(Ordering::Relaxed) as f64 / loaded_time.as_secs_f64().max(1e-9);
    println!(
        "submit→finalized, {} transactions each, one after another (median / p99 ms):",
        idle.len()
    );
    println!("  idle (baseline)        {i50:8.2} / {i99:8.2}");
    println!(
        "  16 VerifyChain readers {l50:8.2} / {l99:8.2}   ratio {:.2} / {:.2}   ({reads_per_s:.0} reads/s served, {refused_per_s:.0}/s refused over budget)",
        l50 / i50,
        l99 / i99
    );
    println!(
        "reads: idle_p50_ms={i50:.2} idle_p99_ms={i99:.2} loaded_p50_ms={l50:.2} loaded_p99_ms={l99:.2} ratio_p50={:.2} ratio_p99={:.2} reads_per_s={reads_per_s:.0} height={height_now}",
        l50 / i50,
        l99 / i99
    );
}
