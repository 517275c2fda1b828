//! Audit figures, each beside a baseline measured in the same run: access-log query latency
//! (p50/p99 per page, with the inclusion proof and certified header of every entry) over a sled
//! store of synthetic decisions written directly through the storage layer; offline bundle
//! verification rate (entries/s, headers/s); bundle size per million entries.
//!
//! Run: `cargo bench -p custos-node --bench audit` (1M entries; `-- --entries 10000000` for
//! 10M, `-- --quick` for 100k).

use std::collections::BTreeSet;
use std::time::Instant;

use custos_client::bundle::verify_bundle;
use custos_crypto::{Hash, PartyKeys, sha256};
use custos_ledger::merkle::leaf_hash;
use custos_ledger::{BlockHeader, CommitCertificate, MerkleTree, Validator, ValidatorSet};
use custos_node::rpc::audit::build_bundle;
use custos_storage::{AuditFilter, BlockWrite, KvLedgerStore, LedgerStore, StoredBlock};
use custos_types::genesis::GenesisValidator;
use custos_types::{
    AccessMode, ChainId, Decision, DecisionReason, EntryKind, Genesis, Height, LedgerEntry,
    Parameters, PartyId, Purpose, RecordId, RequestId, Timestamp,
};
use prost::Message;

const PER_BLOCK: u64 = 1000;
const PARTNERS: u64 = 1000;
const PATIENTS: u64 = 100_000;

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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut entries: u64 = 1_000_000;
    if args.iter().any(|a| a == "--quick") {
        entries = 100_000;
    }
    if let Some(i) = args.iter().position(|a| a == "--entries") {
        entries = args[i + 1].parse().expect("--entries N");
    }
    let entries = entries.div_ceil(PER_BLOCK) * PER_BLOCK;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = KvLedgerStore::open_sled(&dir.path().join("ledger")).expect("sled");
    let validator = PartyKeys::generate(&mut rand::rngs::OsRng);
    let chain = "custos-bench";
    let set = ValidatorSet::new(vec![Validator {
        key: validator.public(),
        power: 1,
    }])
    .expect("set");
    let genesis = Genesis {
        chain_id: ChainId::parse(chain).expect("chain"),
        genesis_time_ms: 1_700_000_000_000,
        parameters: Parameters::default(),
        validators: vec![GenesisValidator {
            public_key: PartyId(validator.public()),
            power: 1,
            address: String::new(),
        }],
        parties: vec![],
    };
    let keys = |n: u64| -> Vec<PartyId> {
        (0..n)
            .map(|_| PartyId(PartyKeys::generate(&mut rand::rngs::OsRng).public()))
            .collect()
    };
    let partners = keys(PARTNERS);
    let patients = keys(PATIENTS);
    let purposes: Vec<Purpose> = ["TREAT", "ETREAT", "HPAYMT", "COVAUTH", "HRESCH", "HMARKT"]
        .iter()
        .map(|c| Purpose::parse(c).expect("purpose"))
        .collect();

    // Build the store: blocks of synthetic decisions, each header certified by the validator.
    println!("building {entries} decisions in sled ({PER_BLOCK} a block)…");
    let built = Instant::now();
    let mut tree = MerkleTree::new();
    let mut prev = Hash::ZERO;
    let blocks = entries / PER_BLOCK;
    let t0 = 1_700_000_000_000i64;
    for height in 1..=blocks {
        let first = tree.len();
        let time = Timestamp(t0 + height as i64 * 1000);
        let mut block_entries = Vec::with_capacity(PER_BLOCK as usize);
        let mut leaves = Vec::with_capacity(PER_BLOCK as usize);
        let mut decisions = Vec::with_capacity(PER_BLOCK as usize);
        for i in 0..PER_BLOCK {
            let index = first + i;
            let r = mix(index);
            let granted = !r.is_multiple_of(3);
            let break_glass = granted && r.is_multiple_of(997);
            let decision = Decision {
                request_id: RequestId(id(1, index)),
                requester: partners[(r % PARTNERS) as usize],
                record_id: RecordId(id(2, (r >> 20) % (PATIENTS * 3))),
                patient: Some(patients[((r >> 20) % (PATIENTS * 3) / 3) as usize]),
                purpose: purposes[((r >> 40) % purposes.len() as u64) as usize],
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
                time,
            };
            let bytes = LedgerEntry {
                height: Height(height),
                kind: EntryKind::Decision(decision.clone()),
            }
            .to_bytes();
            let leaf = leaf_hash(&bytes);
            tree.push(leaf);
            leaves.push(leaf);
            block_entries.push(bytes);
            decisions.push((index, decision));
        }
        let header = BlockHeader {
            chain_id: chain.to_string(),
            height,
            time_ms: time.0,
            prev_hash: prev,
            log_size: tree.len(),
            log_root: tree.root(),
            state_root: Hash::ZERO,
            tx_count: 0,
            proposer: validator.public(),
            next_validators_hash: set.hash(),
        };
        prev = header.hash();
        let certificate = CommitCertificate::sign(&header, 0, &[&validator.identity]);
        store
            .commit_block(BlockWrite {
                block: StoredBlock {
                    header,
                    certificate,
                    first_entry: first,
                    entries: block_entries,
                },
                leaf_hashes: leaves,
                state_changes: vec![],
                transactions: vec![],
                decisions,
                releases: vec![],
            })
            .expect("commit");
        if height % (blocks / 10).max(1) == 0 {
            println!(
                "  {} entries, {:.0} s",
                tree.len(),
                built.elapsed().as_secs_f64()
            );
        }
    }
    let build_s = built.elapsed().as_secs_f64();
    println!(
        "built {entries} entries in {build_s:.0} s ({:.0} entries/s)",
        entries as f64 / build_s
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

    // Query pages of 50 with, for every entry, its inclusion proof under its block's header and
    // that header with its certificate (what QueryAccessLog answers).
    let page = |filter: &AuditFilter, after: Option<u64>| -> usize {
        let page = store.query_decisions(filter, after, 50).expect("query");
        for (index, _) in &page.decisions {
            let (bytes, height) = store.entry(*index).expect("entry").expect("present");
            let (header, cert) = store.header(height).expect("header").expect("present");
            let path = tree
                .inclusion_proof(*index, header.log_size)
                .expect("proof");
            std::hint::black_box((bytes, header.to_wire(), cert.to_wire(), path));
        }
        page.decisions.len()
    };
    let one = |v: PartyId| Some(BTreeSet::from([v]));
    let hpaymt = Purpose::parse("HPAYMT").expect("purpose");
    let filters: Vec<(&str, AuditFilter)> = vec![
        ("no filter", AuditFilter::default()),
        (
            "one requester",
            AuditFilter {
                requesters: one(partners[7]),
                ..Default::default()
            },
        ),
        (
            "one patient",
            AuditFilter {
                patient: Some(patients[42]),
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
                from: Some(Timestamp(t0 + (blocks as i64 / 2) * 1000)),
                to: Some(Timestamp(t0 + (blocks as i64 / 2) * 1000 + 3_600_000)),
                ..Default::default()
            },
        ),
        (
            "requester + denied",
            AuditFilter {
                requesters: one(partners[3]),
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
    println!("query: one page of 50 with proofs and certified headers, from random cursors");
    for (name, filter) in &filters {
        let mut lat = Vec::new();
        let mut got = 0;
        for i in 0..200u64 {
            let after = (i > 0).then(|| mix(i) % entries);
            let t = Instant::now();
            got += page(filter, after);
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        lat.sort_by(f64::total_cmp);
        println!(
            "  {name:<30} p50 {:>7.2} ms  p99 {:>7.2} ms  ({:.1} entries/page; p50 = {:.0}x a point read)",
            percentile(&lat, 0.5),
            percentile(&lat, 0.99),
            got as f64 / 200.0,
            percentile(&lat, 0.5) * 1000.0 / percentile(&point, 0.5)
        );
    }

    // Offline verification: a bundle of the last 100k entries (or all), and headers only.
    let range_blocks = (100_000 / PER_BLOCK).min(blocks);
    let from = blocks - range_blocks + 1;
    let start = store
        .header(from - 1)
        .expect("h")
        .map_or(0, |h| h.0.log_size);
    let frontier = tree.frontier(start).expect("frontier");
    let t = Instant::now();
    let bundle =
        build_bundle(&store, chain, &|_| set.clone(), &frontier, from, blocks).expect("bundle");
    let build_bundle_s = t.elapsed().as_secs_f64();
    let bytes = bundle.encode_to_vec();
    let t = Instant::now();
    let verified = verify_bundle(&genesis, &bundle).expect("verifies");
    let verify_s = t.elapsed().as_secs_f64();
    let headers_only = build_bundle(
        &store,
        chain,
        &|_| set.clone(),
        &tree.frontier(tree.len() - PER_BLOCK).expect("f"),
        blocks,
        blocks,
    )
    .expect("bundle");
    let t = Instant::now();
    verify_bundle(&genesis, &headers_only).expect("verifies");
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
