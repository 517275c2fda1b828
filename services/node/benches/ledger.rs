//! Ledger figures, each beside a baseline measured in the same run:
//! state-machine apply throughput (in memory, and through the core with sled commits),
//! submit→finalized latency at a fixed offered load on a real node over gRPC, and inclusion
//! proofs at 1M entries.
//!
//! Run: `cargo bench -p custos-node --bench ledger` (add `-- --quick` for a short run).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_consent::{BlockContext, StateMachine};
use custos_crypto::{Hash, PartyKeys, SigningKeyPair, sha256};
use custos_ledger::{MerkleTree, merkle};
use custos_types::genesis::{GenesisParty, GenesisValidator};
use custos_types::model::Organisation;
use custos_types::tx::{RegisterParty, RegisterRecord, RequestAccess};
use custos_types::{
    AccessMode, Category, ChainId, Consent, ConsentPeriod, Genesis, Height, Nonce, Parameters,
    PartyId, Purpose, RecordId, Role, Scope, SignedTransaction, Timestamp, TransactionBody, TxKind,
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

struct Cast {
    genesis: Genesis,
    validator: PartyKeys,
    custodian: PartyKeys,
    partner: PartyKeys,
}

fn cast() -> Cast {
    let mut rng = rand::rngs::OsRng;
    let validator = PartyKeys::generate(&mut rng);
    let custodian = PartyKeys::generate(&mut rng);
    let partner = PartyKeys::generate(&mut rng);
    let party = |k: &PartyKeys, role, org: &str| GenesisParty {
        public_key: PartyId(k.public()),
        role,
        encryption_key: k.encryption_public(),
        organisation: Organisation::parse(org, "organisation").expect("org"),
        member: true,
    };
    let genesis = Genesis {
        chain_id: ChainId::parse("custos-bench").expect("chain"),
        genesis_time_ms: 1_700_000_000_000,
        parameters: Parameters::default(),
        validators: vec![GenesisValidator {
            public_key: PartyId(validator.public()),
            power: 1,
            address: String::new(),
        }],
        parties: vec![
            party(&custodian, Role::Custodian, "hospital"),
            party(&partner, Role::Partner, "insurer"),
        ],
    };
    Cast {
        genesis,
        validator,
        custodian,
        partner,
    }
}

fn tx(chain: &ChainId, key: &SigningKeyPair, nonce: u64, kind: TxKind) -> SignedTransaction {
    SignedTransaction::sign(
        &TransactionBody {
            chain_id: chain.clone(),
            nonce: Nonce(nonce),
            kind,
        },
        key,
    )
}

/// A realistic workload: per patient a registration, a record, a consent and two requests
/// (one granted, one denied).
fn workload(c: &Cast, patients: usize) -> Vec<SignedTransaction> {
    let chain = &c.genesis.chain_id;
    let mut rng = rand::rngs::OsRng;
    let mut txs = Vec::with_capacity(patients * 5);
    let (mut cn, mut pn) = (0u64, 0u64);
    for i in 0..patients {
        let p = PartyKeys::generate(&mut rng);
        txs.push(tx(
            chain,
            &p.identity,
            0,
            TxKind::RegisterParty(RegisterParty {
                party: PartyId(p.public()),
                role: Role::Patient,
                encryption_key: p.encryption_public(),
                organisation: Organisation::default(),
            }),
        ));
        let record = RecordId(sha256(&(i as u64).to_be_bytes()));
        txs.push(tx(
            chain,
            &c.custodian.identity,
            cn,
            TxKind::RegisterRecord(RegisterRecord {
                record_id: record,
                owner: PartyId(p.public()),
                category: Category::parse("lab", "c").expect("category"),
                ciphertext_digest: sha256(record.0.as_bytes()),
                attribute_commitment: None,
            }),
        ));
        cn += 1;
        txs.push(tx(
            chain,
            &p.identity,
            1,
            TxKind::GrantConsent(Consent {
                patient: PartyId(p.public()),
                grantee: PartyId(c.partner.public()),
                scope: Scope::AllRecords,
                purposes: BTreeSet::from([Purpose::HPAYMT]),
                modes: BTreeSet::from([AccessMode::Raw]),
                period: ConsentPeriod::default(),
            }),
        ));
        for purpose in [Purpose::HPAYMT, Purpose::HMARKT] {
            txs.push(tx(
                chain,
                &c.partner.identity,
                pn,
                TxKind::RequestAccess(RequestAccess {
                    record_id: record,
                    purpose,
                    mode: AccessMode::Raw,
                    justification_digest: None,
                    query: vec![],
                }),
            ));
            pn += 1;
        }
    }
    txs
}

fn bench_apply(quick: bool) {
    let c = cast();
    let patients = if quick { 1_000 } else { 4_000 };
    let txs = workload(&c, patients);
    // Baseline: verifying each transaction's signature once (what admission costs anyway).
    let wires: Vec<_> = txs.iter().map(|t| t.to_wire()).collect();
    let t = Instant::now();
    for w in &wires {
        let _ = SignedTransaction::from_wire(w.clone()).expect("valid");
    }
    let verify_rate = txs.len() as f64 / t.elapsed().as_secs_f64();

    // In memory: the state machine alone, blocks of 500, root per block.
    let mut runs = Vec::new();
    let mut entries = 0usize;
    for _ in 0..3 {
        let mut m = StateMachine::genesis(&c.genesis).expect("genesis");
        let t = Instant::now();
        entries = 0;
        for (b, block) in txs.chunks(500).enumerate() {
            let ctx = BlockContext {
                height: Height(b as u64 + 1),
                time: Timestamp(1_700_000_000_000 + b as i64),
            };
            for t in block {
                entries += m.apply_tx(t, ctx).expect("applies").len();
            }
            let _ = m.root();
            let _ = m.take_changes();
        }
        runs.push(entries as f64 / t.elapsed().as_secs_f64());
    }
    let mem = median(runs);

    // Through the core with sled, as the proposer does it: build (execute, undo), certify, then
    // commit (execute again, write, flush) per block of 500.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = custos_storage::KvLedgerStore::open_sled(dir.path()).expect("sled");
    let core =
        custos_node::core::LedgerCore::open(c.genesis.clone(), Arc::new(store)).expect("core");
    let t = Instant::now();
    for block in txs.chunks(500) {
        let (proposed, rejected) =
            core.build_block(block.to_vec(), Timestamp::now(), c.validator.public());
        assert!(rejected.is_empty());
        let cert =
            custos_ledger::CommitCertificate::sign(&proposed.header, 0, &[&c.validator.identity]);
        core.commit_block(&proposed, cert).expect("commit");
    }
    let sled_rate = entries as f64 / t.elapsed().as_secs_f64();
    println!(
        "apply: {} txs, {entries} entries (blocks of 500)",
        txs.len()
    );
    println!("  baseline signature checks          {verify_rate:>12.0} tx/s");
    println!(
        "  state machine in memory (median/3) {mem:>12.0} entries/s  ({:.2}x the signature-check rate in tx terms)",
        mem / verify_rate * txs.len() as f64 / entries as f64
    );
    println!(
        "  core + sled commit, flushed         {sled_rate:>12.0} entries/s  ({:.2}x in-memory)",
        sled_rate / mem
    );
}

async fn bench_latency(quick: bool) {
    let c = cast();
    let dir = tempfile::tempdir().expect("tempdir");
    let gpath = dir.path().join("genesis.json");
    std::fs::write(&gpath, serde_json::to_string(&c.genesis).expect("json")).expect("write");
    let kpath = dir.path().join("validator.key");
    std::fs::write(
        &kpath,
        serde_json::to_string(&c.validator.to_file()).expect("json"),
    )
    .expect("write");
    let mut config = custos_node::NodeConfig::new(gpath, dir.path().join("data"), kpath);
    config.listen = ([127, 0, 0, 1], 0).into();
    // The load is a crowd of new patients: the bench measures the pipeline, not the node's
    // admission limit on such a crowd.
    config.max_pending_registrations = config.mempool_capacity;
    let node = custos_node::start(config).await.expect("node");
    let client = custos_client::Client::connect(&format!("http://{}", node.addr))
        .await
        .expect("connect");

    // Baseline: a gRPC round trip that does no ledger work.
    let mut rtt = Vec::new();
    for _ in 0..500 {
        let t = Instant::now();
        client.status().await.expect("status");
        rtt.push(t.elapsed().as_secs_f64() * 1e3);
    }
    rtt.sort_by(|a, b| a.total_cmp(b));

    let rate = 1_000.0;
    let seconds = if quick { 3 } else { 8 };
    let n = (rate * seconds as f64) as usize;
    let mut rng = rand::rngs::OsRng;
    let chain = c.genesis.chain_id.clone();
    let signed: Vec<SignedTransaction> = (0..n)
        .map(|_| {
            let p = PartyKeys::generate(&mut rng);
            tx(
                &chain,
                &p.identity,
                0,
                TxKind::RegisterParty(RegisterParty {
                    party: PartyId(p.public()),
                    role: Role::Patient,
                    encryption_key: p.encryption_public(),
                    organisation: Organisation::default(),
                }),
            )
        })
        .collect();
    let start = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for (i, t) in signed.into_iter().enumerate() {
        // Open loop: each submission starts on schedule, whatever the previous ones do.
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let client = client.clone();
        handles.push(tokio::spawn(async move {
            let t0 = Instant::now();
            client
                .submit_signed(&t, true)
                .await
                .map(|_| t0.elapsed().as_secs_f64() * 1e3)
        }));
    }
    let mut lat = Vec::with_capacity(n);
    for h in handles {
        if let Ok(Ok(ms)) = h.await {
            lat.push(ms);
        }
    }
    let achieved = lat.len() as f64 / start.elapsed().as_secs_f64();
    lat.sort_by(|a, b| a.total_cmp(b));
    println!(
        "submit→finalized on a one-validator node over gRPC, offered {rate:.0} tx/s for {seconds} s:"
    );
    println!(
        "  baseline gRPC round trip (status)  p50 {:>7.2} ms  p99 {:>7.2} ms",
        percentile(&rtt, 0.5),
        percentile(&rtt, 0.99)
    );
    println!(
        "  submit→finalized ({} of {n} ok)   p50 {:>7.2} ms  p99 {:>7.2} ms  ({:.1}x / {:.1}x the round trip); finalized {achieved:.0} tx/s",
        lat.len(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 0.5) / percentile(&rtt, 0.5),
        percentile(&lat, 0.99) / percentile(&rtt, 0.99),
    );
    node.stop().await.expect("stop");
}

fn bench_proofs() {
    let n: u64 = 1 << 20;
    let mut tree = MerkleTree::new();
    for i in 0..n {
        tree.push(merkle::leaf_hash(&i.to_be_bytes()));
    }
    let root = tree.root();
    let mut sizes = Vec::new();
    let mut verify = Vec::new();
    let mut prove = Vec::new();
    for k in 0..2_000u64 {
        let index = (k * 524_287) % n;
        let t = Instant::now();
        let proof = tree.inclusion_proof(index, n).expect("proof");
        prove.push(t.elapsed().as_secs_f64() * 1e6);
        sizes.push(proof.len() * 32);
        let leaf = merkle::leaf_hash(&index.to_be_bytes());
        let t = Instant::now();
        merkle::verify_inclusion(&leaf, index, n, &proof, &root).expect("verifies");
        verify.push(t.elapsed().as_secs_f64() * 1e6);
    }
    // Baseline: one SHA-256 over 65 bytes (one inner node).
    let mut h = Vec::new();
    let data = [7u8; 65];
    for _ in 0..2_000 {
        let t = Instant::now();
        let d: Hash = sha256(std::hint::black_box(&data));
        std::hint::black_box(d);
        h.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let (v, hh) = (median(verify), median(h));
    println!("inclusion proofs at {n} entries:");
    println!(
        "  proof size                          {} bytes ({} hashes)",
        sizes[0],
        sizes[0] / 32
    );
    println!(
        "  build (median)                      {:>8.2} µs",
        median(prove)
    );
    println!(
        "  verify (median)                     {v:>8.2} µs  ({:.1}x one SHA-256 node hash of {hh:.3} µs)",
        v / hh
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    println!(
        "custos ledger bench{} — medians; ratios against baselines measured in this run\n",
        if quick { " (quick)" } else { "" }
    );
    bench_apply(quick);
    println!();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench_latency(quick));
    println!();
    bench_proofs();
}
