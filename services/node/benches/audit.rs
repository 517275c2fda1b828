//! Audit figures, each beside a baseline measured in the same run: access-log query latency
//! (p50/p99 per page of 50 through the audit service's own page prover: every entry with its
//! inclusion proof, certified header and validator set, and its release confirmations; baseline:
//! the same on other pages with their reads one after another instead of concurrently) and where
//! a page's time goes; offline bundle verification rate (entries/s, headers/s); bundle size per
//! million entries; store build rate and size on disk.
//!
//! The store is built the way a live node writes it: blocks of synthetic decisions whose headers
//! carry the real RFC 6962 log size and root and the genesis state root, certified by every
//! validator of a real genesis, written through `KvLedgerStore::load_blocks` (the rows
//! `commit_block` writes, made durable a batch at a time; `-- --commit` writes each batch
//! atomically through `commit_blocks`). It is then opened with `LedgerCore::open`, which checks the stored
//! log and state against the tip header, before anything is measured. One thread makes blocks
//! while another writes them, and child processes write the store a share at a time (see
//! [`PER_PROCESS`]).
//!
//! Run: `cargo bench -p custos-node --bench audit` (1M entries; `-- --entries 10000000` for
//! 10M, `-- --quick` for 100k). `-- --store DIR` keeps the store in DIR, reuses it when it holds
//! that many entries and resumes a build cut short (keys are seeded, so every run finds the same
//! parties); `-- --validators N` (4 by default) sets the consortium size; `-- --build-only`.
//! For a cold page cache, run the built bench on a kept store after
//! `sync; echo 3 > /proc/sys/vm/drop_caches` (root).

use std::collections::{BTreeMap, BTreeSet, btree_map};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use custos_client::bundle::verify_bundle;
use custos_consent::StateMachine;
use custos_crypto::{Hash, SecretKey, SigningKeyPair, sha256};
use custos_ledger::merkle::leaf_hash;
use custos_ledger::{BlockHeader, CommitCertificate, MerkleTree, Validator, ValidatorSet};
use custos_node::core::LedgerCore;
use custos_node::rpc::audit::{build_bundle, prove_page};
use custos_storage::{AuditFilter, BlockWrite, KvLedgerStore, LedgerStore, StoredBlock};
use custos_types::genesis::GenesisValidator;
use custos_types::{
    AccessMode, ChainId, Decision, DecisionReason, EntryKind, Genesis, Height, LedgerEntry,
    Parameters, PartyId, Purpose, RecordId, RequestId, Timestamp,
};
use prost::Message;

const PER_BLOCK: u64 = 1000;
/// Blocks one write holds (`-- --batch N`).
const BATCH: u64 = 20;
/// Entries one build process writes. sled 0.34's memory grows with what a process writes
/// (sled issue 1303): about 15 KB an entry through `commit_blocks`, 3 KB through `load_blocks`
/// (the default; `-- --commit` for the other), so a large store is written by child processes
/// in turn, each resuming after the last.
const PER_PROCESS: u64 = 1_000_000;
const PARTNERS: u64 = 1000;
const PATIENTS: u64 = 100_000;
const PAGES: u64 = 200;
const CHAIN: &str = "custos-bench";
const T0: i64 = 1_700_000_000_000;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn id(kind: u8, n: u64) -> Hash {
    let mut b = [0u8; 40];
    b[0] = kind;
    b[1..9].copy_from_slice(&n.to_be_bytes());
    sha256(&b)
}

/// A deterministic pseudo-random sequence (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A seeded key: the same on every run, so a kept store is queried for parties it holds.
fn key(kind: u8, n: u64) -> SigningKeyPair {
    let secret = SecretKey::from_slice(id(kind, n).as_bytes()).expect("32 bytes");
    SigningKeyPair::from_secret(&secret)
}

/// Bytes under `path`.
fn disk_bytes(path: &Path) -> u64 {
    let Ok(dir) = std::fs::read_dir(path) else {
        return std::fs::metadata(path).map_or(0, |m| m.len());
    };
    dir.flatten().map(|e| disk_bytes(&e.path())).sum()
}

struct World {
    validators: Vec<SigningKeyPair>,
    genesis: Genesis,
    partners: Vec<PartyId>,
    patients: Vec<PartyId>,
    purposes: Vec<Purpose>,
}

impl World {
    fn new(validators: u64) -> Self {
        let validators: Vec<SigningKeyPair> = (0..validators).map(|n| key(10, n)).collect();
        let genesis = Genesis {
            chain_id: ChainId::parse(CHAIN).expect("chain"),
            genesis_time_ms: T0,
            parameters: Parameters::default(),
            validators: validators
                .iter()
                .map(|v| GenesisValidator {
                    public_key: PartyId(v.public()),
                    power: 1,
                    address: String::new(),
                })
                .collect(),
            parties: vec![],
        };
        World {
            validators,
            genesis,
            partners: (0..PARTNERS)
                .map(|n| PartyId(key(11, n).public()))
                .collect(),
            patients: (0..PATIENTS)
                .map(|n| PartyId(key(12, n).public()))
                .collect(),
            purposes: ["TREAT", "ETREAT", "HPAYMT", "COVAUTH", "HRESCH", "HMARKT"]
                .iter()
                .map(|c| Purpose::parse(c).expect("purpose"))
                .collect(),
        }
    }

    /// Decision `index` of block `height`: a third denied, one grant in 997 break-glass.
    fn decision(&self, index: u64, height: u64) -> Decision {
        let r = mix(index);
        let granted = !r.is_multiple_of(3);
        let break_glass = granted && r.is_multiple_of(997);
        let record = (r >> 20) % (PATIENTS * 3);
        Decision {
            request_id: RequestId(id(1, index)),
            requester: self.partners[(r % PARTNERS) as usize],
            record_id: RecordId(id(2, record)),
            patient: Some(self.patients[(record / 3) as usize]),
            purpose: self.purposes[((r >> 40) % self.purposes.len() as u64) as usize],
            mode: AccessMode::Raw,
            reason: if break_glass {
                DecisionReason::BreakGlass
            } else if granted {
                DecisionReason::Consent
            } else {
                DecisionReason::NoConsent
            },
            consent_id: None,
            break_glass,
            cohort: None,
            height: Height(height),
            time: block_time(height),
        }
    }
}

fn block_time(height: u64) -> Timestamp {
    Timestamp(T0 + height as i64 * 1000)
}

/// Appends blocks of decisions to the store up to height `to`: one thread makes the blocks
/// (entries, leaves, the log tree, headers, certificates), this one writes them a batch at a
/// time. Resumes after whatever the store holds.
fn build_store(
    world: &World,
    store: &KvLedgerStore<custos_storage::sled_backend::SledBackend>,
    to: u64,
    per_batch: u64,
    load: bool,
) {
    let machine = StateMachine::genesis(&world.genesis).expect("genesis");
    let state_root = machine.root();
    let genesis_items: Vec<_> = machine
        .items()
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .collect();
    let set = ValidatorSet::new(
        machine
            .validators_at(Height(1))
            .iter()
            .map(|v| Validator {
                key: v.key,
                power: v.power,
            })
            .collect(),
    )
    .expect("set");
    let tip = store.tip().expect("tip");
    let mut tree = MerkleTree::new();
    for leaf in store.leaf_hashes().expect("leaves") {
        tree.push(leaf);
    }
    let prev = store
        .header(tip)
        .expect("header")
        .map_or(Hash::ZERO, |(h, _)| h.hash());
    let signers: Vec<&SigningKeyPair> = world.validators.iter().collect();
    let (tx, rx) = sync_channel::<Vec<BlockWrite>>(2);
    std::thread::scope(|scope| {
        // The producer owns the sender: when it is done, the channel closes.
        scope.spawn(move || {
            let mut prev = prev;
            let mut batch = Vec::with_capacity(per_batch as usize);
            for height in tip + 1..=to {
                let first = tree.len();
                let mut write = BlockWrite {
                    block: StoredBlock {
                        header: BlockHeader {
                            chain_id: CHAIN.to_string(),
                            height,
                            time_ms: block_time(height).0,
                            prev_hash: prev,
                            log_size: 0,
                            log_root: Hash::ZERO,
                            state_root,
                            tx_count: 0,
                            proposer: world.validators
                                [(height % world.validators.len() as u64) as usize]
                                .public(),
                            next_validators_hash: set.hash(),
                        },
                        certificate: CommitCertificate {
                            height,
                            round: 0,
                            header_hash: Hash::ZERO,
                            signatures: vec![],
                        },
                        first_entry: first,
                        entries: Vec::with_capacity(PER_BLOCK as usize),
                    },
                    leaf_hashes: Vec::with_capacity(PER_BLOCK as usize),
                    state_changes: if height == 1 {
                        genesis_items.clone()
                    } else {
                        vec![]
                    },
                    transactions: vec![],
                    decisions: Vec::with_capacity(PER_BLOCK as usize),
                    releases: vec![],
                };
                for index in first..first + PER_BLOCK {
                    let decision = world.decision(index, height);
                    let bytes = LedgerEntry {
                        height: Height(height),
                        kind: EntryKind::Decision(decision.clone()),
                    }
                    .to_bytes();
                    let leaf = leaf_hash(&bytes);
                    tree.push(leaf);
                    write.leaf_hashes.push(leaf);
                    write.block.entries.push(bytes);
                    write.decisions.push((index, decision));
                }
                let header = &mut write.block.header;
                header.log_size = tree.len();
                header.log_root = tree.root();
                prev = header.hash();
                write.block.certificate = CommitCertificate::sign(header, 0, &signers);
                batch.push(write);
                if (batch.len() as u64 == per_batch || height == to)
                    && tx.send(std::mem::take(&mut batch)).is_err()
                {
                    return;
                }
            }
        });
        while let Ok(batch) = rx.recv() {
            if load {
                store.load_blocks(&batch).expect("load");
            } else {
                store.commit_blocks(&batch).expect("commit");
            }
        }
    });
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .map(|i| args[i + 1].clone())
    };
    let mut entries: u64 = 1_000_000;
    if args.iter().any(|a| a == "--quick") {
        entries = 100_000;
    }
    if let Some(n) = arg("--entries") {
        entries = n.parse().expect("--entries N");
    }
    let validators: u64 = arg("--validators").map_or(4, |n| n.parse().expect("--validators N"));
    let per_batch: u64 = arg("--batch").map_or(BATCH, |n| n.parse().expect("--batch N"));
    let entries = entries.div_ceil(PER_BLOCK) * PER_BLOCK;
    let blocks = entries / PER_BLOCK;
    let temp = tempfile::tempdir().expect("tempdir");
    let path = arg("--store").map_or_else(|| temp.path().join("ledger"), PathBuf::from);
    let world = World::new(validators);

    let count = || {
        KvLedgerStore::open_sled(&path)
            .expect("sled")
            .entry_count()
            .expect("count")
    };
    if let Some(to) = arg("--build-step") {
        // A child's share of the build: up to `to` entries, then exit (and free sled's memory).
        let store = KvLedgerStore::open_sled(&path).expect("sled");
        let to: u64 = to.parse().expect("--build-step N");
        build_store(
            &world,
            &store,
            to / PER_BLOCK,
            per_batch,
            !args.iter().any(|a| a == "--commit"),
        );
        return;
    }
    let mut have = count();
    if have == entries {
        println!(
            "reusing the store in {} ({entries} entries)",
            path.display()
        );
    } else {
        assert!(
            have < entries && have.is_multiple_of(PER_BLOCK),
            "{} holds {have} entries, not up to {entries}",
            path.display()
        );
        println!(
            "building {entries} decisions in sled ({PER_BLOCK} a block, {per_batch} blocks a \
             batch, {validators} validators, {PER_PROCESS} entries a process)…"
        );
        let (built, from) = (Instant::now(), have);
        while have < entries {
            let to = (have + PER_PROCESS).min(entries);
            let status = std::process::Command::new(std::env::current_exe().expect("exe"))
                .args(["--entries", &entries.to_string(), "--validators"])
                .arg(validators.to_string())
                .args(["--batch", &per_batch.to_string()])
                .args(args.iter().filter(|a| *a == "--commit"))
                .arg("--store")
                .arg(&path)
                .args(["--build-step", &to.to_string()])
                .status()
                .expect("build step");
            assert!(status.success(), "build step to {to} failed");
            have = count();
            assert_eq!(have, to, "the build step wrote up to {to}");
            println!("  {have} entries, {:.0} s", built.elapsed().as_secs_f64());
        }
        let build_s = built.elapsed().as_secs_f64();
        println!(
            "built {} entries in {build_s:.0} s ({:.0} entries/s)",
            entries - from,
            (entries - from) as f64 / build_s
        );
    }
    if args.iter().any(|a| a == "--build-only") {
        return;
    }
    let opened = Instant::now();
    let store: Arc<dyn LedgerStore> = Arc::new(KvLedgerStore::open_sled(&path).expect("sled"));
    let core = LedgerCore::open(world.genesis.clone(), store.clone())
        .expect("the store opens as a node's");
    println!(
        "store: {:.0} bytes an entry on disk ({:.2} GB); opened as a node's (log and state roots checked) in {:.1} s",
        disk_bytes(&path) as f64 / entries as f64,
        disk_bytes(&path) as f64 / 1e9,
        opened.elapsed().as_secs_f64()
    );

    // Baselines: a plain sled point read of an entry, one SHA-256 of an entry.
    let samples = 20_000u64;
    let mut point = Vec::with_capacity(samples as usize);
    for i in 0..samples {
        let at = mix(i ^ 0xabc) % entries;
        let t = Instant::now();
        std::hint::black_box(store.entry(at).expect("read"));
        point.push(t.elapsed().as_secs_f64() * 1e6);
    }
    point.sort_by(f64::total_cmp);
    let sample_entry = store.entry(0).expect("read").expect("entry").0;
    let t = Instant::now();
    for _ in 0..samples {
        std::hint::black_box(sha256(std::hint::black_box(&sample_entry)));
    }
    let sha_us = t.elapsed().as_secs_f64() * 1e6 / samples as f64;
    println!(
        "baseline: sled point read p50 {:.1} µs, p99 {:.1} µs; one SHA-256 of a {}-byte entry {:.2} µs",
        percentile(&point, 0.5),
        percentile(&point, 0.99),
        sample_entry.len(),
        sha_us
    );

    let one = |v: PartyId| Some(BTreeSet::from([v]));
    let hpaymt = Purpose::parse("HPAYMT").expect("purpose");
    let mid = block_time(blocks / 2);
    let filters: Vec<(&str, AuditFilter)> = vec![
        ("no filter", AuditFilter::default()),
        (
            "one requester",
            AuditFilter {
                requesters: one(world.partners[7]),
                ..Default::default()
            },
        ),
        (
            "one patient",
            AuditFilter {
                patient: Some(world.patients[42]),
                ..Default::default()
            },
        ),
        (
            "purpose HPAYMT + descendants",
            AuditFilter {
                purposes: Some(hpaymt.descendants().collect()),
                ..Default::default()
            },
        ),
        (
            "denied in a 1 h window",
            AuditFilter {
                granted: Some(false),
                from: Some(mid),
                to: Some(Timestamp(mid.0 + 3_600_000)),
                ..Default::default()
            },
        ),
        (
            "requester + denied",
            AuditFilter {
                requesters: one(world.partners[3]),
                granted: Some(false),
                ..Default::default()
            },
        ),
        (
            "break-glass only",
            AuditFilter {
                break_glass_only: true,
                ..Default::default()
            },
        ),
    ];
    let cursor = |i: u64| (i > 0).then(|| mix(i) % entries);

    // Pages of 50 as QueryAccessLog answers them: the store's query, then the page prover.
    // First from cursors no query touched yet (sled's cache is empty after the open; the OS
    // page cache is as the build left it), then again from the same cursors. The baseline:
    // pages with their reads one after another (not concurrently), interleaved with the first
    // pass from other untouched cursors, so that both see the same disk and caches.
    println!(
        "query: one page of 50 with proofs and certified headers, from {PAGES} random cursors: \
         first touch | again || baseline: first touch, reads one after another"
    );
    let sample = |lat: &mut Vec<f64>, filter: &AuditFilter, at: Option<u64>| {
        let t = Instant::now();
        let page = store.query_decisions(filter, at, 50).expect("query");
        let proven = prove_page(&core, &page.decisions).expect("proven");
        lat.push(t.elapsed().as_secs_f64() * 1e3);
        proven.len()
    };
    for (name, filter) in &filters {
        let mut passes = Vec::new();
        let mut one_by_one = Vec::new();
        let mut got = 0;
        for pass in 0..2 {
            let mut lat = Vec::new();
            got = 0;
            for i in 0..PAGES {
                got += sample(&mut lat, filter, cursor(i));
                if pass == 0 {
                    custos_storage::parallel::set_concurrent(false);
                    sample(&mut one_by_one, filter, cursor(i + 2 * PAGES));
                    custos_storage::parallel::set_concurrent(true);
                }
            }
            lat.sort_by(f64::total_cmp);
            passes.push((percentile(&lat, 0.5), percentile(&lat, 0.99)));
        }
        one_by_one.sort_by(f64::total_cmp);
        println!(
            "  {name:<30} p50 {:>7.2} ms  p99 {:>7.2} ms | p50 {:>7.2} ms  p99 {:>7.2} ms  ({:.1} entries/page) || p50 {:>7.2} ms  p99 {:>7.2} ms",
            passes[0].0,
            passes[0].1,
            passes[1].0,
            passes[1].1,
            got as f64 / PAGES as f64,
            percentile(&one_by_one, 0.5),
            percentile(&one_by_one, 0.99),
        );
    }

    // Where a page's time goes, phase by phase with each phase's reads one after another, from
    // cursors the queries above did not touch.
    println!(
        "breakdown, first touch (mean ms a page): index scan + decisions | releases | entries | \
         certified headers | proofs, reads one after another"
    );
    for (name, filter) in &filters {
        let mut phases = [0f64; 5];
        for i in 0..PAGES {
            let t = Instant::now();
            let page = store
                .query_decisions(filter, cursor(i + PAGES), 50)
                .expect("query");
            phases[0] += t.elapsed().as_secs_f64();
            let t = Instant::now();
            for (_, d) in &page.decisions {
                std::hint::black_box(store.releases(&d.request_id).expect("releases"));
            }
            phases[1] += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let located: Vec<(u64, u64)> = page
                .decisions
                .iter()
                .map(|(index, _)| {
                    (
                        *index,
                        store.entry(*index).expect("entry").expect("present").1,
                    )
                })
                .collect();
            phases[2] += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let mut sizes = BTreeMap::new();
            for (_, height) in &located {
                if let btree_map::Entry::Vacant(slot) = sizes.entry(*height) {
                    let c = core
                        .certified_header(*height)
                        .expect("header")
                        .expect("present");
                    slot.insert(c.header.log_size);
                    std::hint::black_box((
                        c.header.to_wire(),
                        c.certificate.to_wire(),
                        c.validators.to_wire(),
                    ));
                }
            }
            phases[3] += t.elapsed().as_secs_f64();
            let t = Instant::now();
            core.with_tree(|tree| {
                for (index, height) in &located {
                    std::hint::black_box(
                        tree.inclusion_proof(*index, sizes[height]).expect("proof"),
                    );
                }
            });
            phases[4] += t.elapsed().as_secs_f64();
        }
        let ms = |s: f64| s * 1e3 / PAGES as f64;
        println!(
            "  {name:<30} {:>7.2} | {:>7.2} | {:>7.2} | {:>7.2} | {:>7.2}",
            ms(phases[0]),
            ms(phases[1]),
            ms(phases[2]),
            ms(phases[3]),
            ms(phases[4])
        );
    }

    // Offline verification: a bundle of the last 100k entries (or all), and headers only.
    let range_blocks = (100_000 / PER_BLOCK).min(blocks);
    let from = blocks - range_blocks + 1;
    let start = (from - 1) * PER_BLOCK;
    let frontier = core.with_tree(|t| t.frontier(start)).expect("frontier");
    let validators_at = |h: u64| core.validators_at(h);
    let t = Instant::now();
    let bundle = build_bundle(
        store.as_ref(),
        CHAIN,
        &validators_at,
        &frontier,
        from,
        blocks,
    )
    .expect("bundle");
    let build_bundle_s = t.elapsed().as_secs_f64();
    let bytes = bundle.encode_to_vec();
    let t = Instant::now();
    let verified = verify_bundle(&world.genesis, &bundle).expect("verifies");
    let verify_s = t.elapsed().as_secs_f64();
    let last = core
        .with_tree(|t| t.frontier(entries - PER_BLOCK))
        .expect("frontier");
    let headers_only =
        build_bundle(store.as_ref(), CHAIN, &validators_at, &last, blocks, blocks).expect("bundle");
    let t = Instant::now();
    verify_bundle(&world.genesis, &headers_only).expect("verifies");
    let headers_s = t.elapsed().as_secs_f64();
    let range_entries = verified.entries.len() as f64;
    let entry_bytes: usize = bundle
        .blocks
        .iter()
        .flat_map(|b| b.entries.iter())
        .map(Vec::len)
        .sum();
    let header_bytes = bytes.len() - entry_bytes;
    println!(
        "bundle: blocks {from}..={blocks} ({} entries) + {} headers: {} bytes, built in {:.2} s",
        verified.entries.len(),
        bundle.headers.len(),
        bytes.len(),
        build_bundle_s
    );
    println!(
        "  offline verification: {:.0} entries/s ({:.2} µs an entry = {:.1}x one SHA-256; whole bundle {:.2} s), headers {:.0}/s",
        range_entries / verify_s,
        verify_s * 1e6 / range_entries,
        verify_s * 1e6 / range_entries / sha_us,
        verify_s,
        blocks as f64 / headers_s
    );
    let per_million = (entry_bytes as f64 / range_entries * 1e6)
        + header_bytes as f64 / bundle.headers.len() as f64 * (1e6 / PER_BLOCK as f64);
    println!(
        "  size per million entries: {:.0} MB ({:.0} bytes an entry, headers {:.0} bytes each at {PER_BLOCK} entries a block)",
        per_million / 1e6,
        entry_bytes as f64 / range_entries,
        header_bytes as f64 / bundle.headers.len() as f64
    );
}
