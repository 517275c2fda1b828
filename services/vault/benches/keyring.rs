//! Cost of a new record's storage key as the vault grows: the time of `put_wrapped_key` for a
//! record the vault has not seen (its storage key created, its keyring shard sealed, written and
//! synced, the wrapped key sealed under it into sled), with N records already in the vault,
//! beside the same at the smallest N in the same run. A keyring kept in one file rewrote every key on each new
//! record, so this time grew with N; with 256 shards a put rewrites N/256 keys.
//!
//! Run: `cargo bench -p custos-vault-service --bench keyring` (`-- --records 1000,10000,50000`
//! for other sizes, `-- --quick` for 1,000 and 5,000). The vault is made under `$TMPDIR`: point
//! it at a real disk (`TMPDIR=/var/tmp`), since a tmpfs makes every sync free.
// A benchmark: failing loudly is fine.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use custos_crypto::Hash;
use custos_crypto::PartyKeys;
use custos_types::{PartyId, RecordId};
use custos_vault::store::suite::sample_wrap;
use custos_vault::{KdfParams, Passphrase, VaultStore};
use custos_vault_service::SledVaultStore;
use rand_core::{OsRng, RngCore};

/// New records timed at each size.
const SAMPLES: usize = 200;

fn random_record() -> RecordId {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    RecordId(Hash(b))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = match args.iter().position(|a| a == "--records") {
        Some(i) => args[i + 1]
            .split(',')
            .map(|n| n.parse().expect("--records N,N,…"))
            .collect(),
        None if args.iter().any(|a| a == "--quick") => vec![1_000, 5_000],
        None => vec![1_000, 10_000, 30_000],
    };
    let dir = tempfile::tempdir().unwrap();
    let store = SledVaultStore::open(
        &dir.path().join("vault"),
        &Passphrase::new("bench passphrase, not a secret".into()).unwrap(),
        KdfParams::INSECURE_FOR_TESTS,
    )
    .unwrap();
    let recipient = PartyId(PartyKeys::generate(&mut OsRng).public());
    println!(
        "a new record's put_wrapped_key (storage key created, keyring synced) as the vault grows:"
    );
    let mut held = 0usize;
    let mut baseline = None;
    for &n in &sizes {
        let filling = Instant::now();
        let from = held;
        while held < n {
            let record = random_record();
            store
                .put_wrapped_key(&record, &sample_wrap(record, recipient))
                .unwrap();
            held += 1;
        }
        let fill_s = filling.elapsed().as_secs_f64();
        let mut times = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let record = random_record();
            let wrapped = sample_wrap(record, recipient);
            let t = Instant::now();
            store.put_wrapped_key(&record, &wrapped).unwrap();
            times.push(t.elapsed().as_secs_f64() * 1e3);
            held += 1;
        }
        times.sort_by(f64::total_cmp);
        let p50 = percentile(&times, 0.5);
        let base = *baseline.get_or_insert(p50);
        println!(
            "  {n:>7} records: p50 {p50:.2} ms, p99 {:.2} ms ({:.2}× the p50 at {} records); filling {} records took {fill_s:.1} s ({:.0} puts/s)",
            percentile(&times, 0.99),
            p50 / base,
            sizes[0],
            n.saturating_sub(from),
            n.saturating_sub(from) as f64 / fill_s.max(1e-9),
        );
    }
}
