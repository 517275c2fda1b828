//! Vault figures, each beside its baseline measured in the same run: chunked encryption and
//! decryption throughput (STREAM over ChaCha20-Poly1305, ciphertext digest included) for 1 KiB,
//! 1 MiB and large records against the raw ChaCha20-Poly1305 speed on 64 KiB buffers; HPKE wrap
//! and unwrap times; and the peak resident memory (VmHWM) while streaming the large record
//! through encryption to a file and back through decryption.
//!
//! Run: `cargo bench -p custos-vault --bench vault` (the large record is 1 GiB; set
//! `CUSTOS_VAULT_BENCH_BYTES` to change it, or pass `-- --quick` for 64 MiB).
// A benchmark: failing loudly is fine.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use custos_crypto::{PartyKeys, sha256};
use custos_types::{PartyId, RecordId};
use custos_vault::stream::{
    ChunkDecryptor, DataKey, RecordVersion, StreamParams, TAG_LEN, encrypt_all, encrypt_reader,
};
use custos_vault::wrap::{EncryptionSecret, WrapContext, unwrap_key, wrap_key};
use rand_core::OsRng;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / time.as_secs_f64()
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0).
fn reset_hwm() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn params() -> StreamParams {
    StreamParams::new(
        RecordId(sha256(b"bench")),
        RecordVersion::FIRST,
        PartyId(PartyKeys::generate(&mut OsRng).public()),
        &mut OsRng,
    )
}

/// Raw ChaCha20-Poly1305 over `total` bytes in pieces of at most 64 KiB, each piece then hashed
/// with SHA-256 if `sha` (the least any design that registers a ciphertext digest must do);
/// only the AEAD and hash calls are timed.
fn raw_aead(total: u64, piece: usize, decrypt: bool, sha: bool) -> Duration {
    use sha2::Digest;
    let cipher = ChaCha20Poly1305::new(&[7u8; 32].into());
    let nonce = Nonce::from([1u8; 12]);
    let mut buf = vec![0x5au8; piece];
    let mut spent = Duration::ZERO;
    let mut digest = sha2::Sha256::new();
    let mut done = 0;
    while done < total {
        let n = piece.min((total - done) as usize);
        let buf = &mut buf[..n];
        let tag = cipher.encrypt_in_place_detached(&nonce, b"", buf).unwrap();
        let start = Instant::now();
        if sha && decrypt {
            digest.update(&*buf);
        }
        if decrypt {
            cipher
                .decrypt_in_place_detached(&nonce, b"", buf, &tag)
                .unwrap();
        } else {
            let _ = cipher.encrypt_in_place_detached(&nonce, b"", buf).unwrap();
        }
        if sha && !decrypt {
            digest.update(&*buf);
        }
        spent += start.elapsed();
        done += n as u64;
    }
    std::hint::black_box(digest.finalize());
    spent
}

/// Encrypts then decrypts `count` records of `size` bytes in memory; returns (encrypt time,
/// decrypt time).
fn vault_in_memory(size: u64, count: u64) -> (Duration, Duration) {
    let plaintext = vec![0x5au8; size as usize];
    let key = DataKey::generate(&mut OsRng);
    let p = params();
    let mut enc = Duration::ZERO;
    let mut dec = Duration::ZERO;
    for _ in 0..count {
        let start = Instant::now();
        let (chunks, _) = encrypt_all(&key, p, &plaintext).unwrap();
        enc += start.elapsed();
        let start = Instant::now();
        let mut decryptor = ChunkDecryptor::new(&key, p).unwrap();
        for chunk in chunks {
            let part = decryptor.open_chunk(chunk.into()).unwrap();
            std::hint::black_box(&part);
        }
        decryptor.finish().unwrap();
        dec += start.elapsed();
    }
    (enc, dec)
}

/// Streams `size` bytes from a generator through encryption into a file and back through
/// decryption, timing only the vault's calls; returns (encrypt, decrypt, peak RSS KiB).
fn vault_streaming(size: u64) -> (Duration, Duration, u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ciphertext");
    let key = DataKey::generate(&mut OsRng);
    let p = params();
    reset_hwm();
    let mut enc = Duration::ZERO;
    {
        let source = std::io::repeat(0x5a).take(size);
        let mut out = BufWriter::new(File::create(&path).unwrap());
        let mut chunks = encrypt_reader(&key, p, source).unwrap();
        loop {
            let start = Instant::now();
            let next = chunks.next();
            enc += start.elapsed();
            match next {
                Some(chunk) => out.write_all(&chunk.unwrap().ciphertext).unwrap(),
                None => break,
            }
        }
        out.flush().unwrap();
    }
    let mut dec = Duration::ZERO;
    {
        let mut input = BufReader::new(File::open(&path).unwrap());
        let mut decryptor = ChunkDecryptor::new(&key, p).unwrap();
        let full = p.chunk_size as usize + TAG_LEN;
        let mut remaining = std::fs::metadata(&path).unwrap().len();
        while remaining > 0 {
            let n = full.min(remaining as usize);
            let mut chunk = vec![0u8; n];
            input.read_exact(&mut chunk).unwrap();
            remaining -= n as u64;
            let start = Instant::now();
            let part = decryptor.open_chunk(chunk).unwrap();
            dec += start.elapsed();
            std::hint::black_box(&part);
        }
        let start = Instant::now();
        let summary = decryptor.finish().unwrap();
        dec += start.elapsed();
        assert_eq!(summary.size, size);
    }
    (enc, dec, vm_hwm_kib())
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let large = std::env::var("CUSTOS_VAULT_BENCH_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 64 * MIB } else { GIB });
    // Each figure is the median of several rounds, vault and baselines interleaved, so that
    // other load on the machine skews neither side of a ratio.
    let rounds = if quick { 2 } else { 5 };
    let mut rows = Vec::new();
    for (size, count) in [(KIB, 20_000), (MIB, 64)] {
        let mut row = Row::new(size, count);
        for _ in 0..rounds {
            let (enc, dec) = vault_in_memory(size, count);
            row.add(enc, dec);
        }
        rows.push(row);
    }
    let before = vm_rss_kib();
    let mut row = Row::new(large, 1);
    let mut hwm = 0;
    for _ in 0..rounds.min(3) {
        let (enc, dec, peak) = vault_streaming(large);
        row.add(enc, dec);
        hwm = hwm.max(peak);
    }
    rows.push(row);

    println!(
        "custos-vault bench: 64 KiB chunks; MiB/s of plaintext, median of {rounds} rounds \
         (large: {}), baselines interleaved",
        rounds.min(3)
    );
    println!("  raw      = ChaCha20-Poly1305 alone on the same bytes (pieces of at most 64 KiB)");
    println!("  raw+sha  = raw, then SHA-256 over the ciphertext (the ledger's ciphertext digest)");
    for (what, pick) in [("encrypt", false), ("decrypt", true)] {
        println!(
            "{what}: {:>8} {:>8} {:>9} {:>9} {:>9} {:>8} {:>8}",
            "record", "records", "vault", "raw", "raw+sha", "/raw", "/raw+sha"
        );
        for row in &rows {
            let (v, r, rs) = row.figures(pick);
            println!(
                "         {:>8} {:>8} {v:>9.0} {r:>9.0} {rs:>9.0} {:>7.0}% {:>7.0}%",
                row.label,
                row.count,
                100.0 * v / r,
                100.0 * v / rs
            );
        }
    }
    println!(
        "peak RSS (VmHWM) while streaming {} MiB through encryption to a file and back through \
         decryption: {:.1} MiB (RSS before: {:.1} MiB)",
        large / MIB,
        hwm as f64 / 1024.0,
        before as f64 / 1024.0
    );

    let secret = EncryptionSecret::generate(&mut OsRng);
    let ctx = WrapContext {
        record_id: RecordId(sha256(b"bench")),
        version: RecordVersion::FIRST,
        custodian: PartyId(PartyKeys::generate(&mut OsRng).public()),
        recipient: PartyId(PartyKeys::generate(&mut OsRng).public()),
    };
    let key = DataKey::generate(&mut OsRng);
    let n = 200;
    let start = Instant::now();
    let mut wrapped = None;
    for _ in 0..n {
        wrapped = Some(wrap_key(&key, &secret.public(), &ctx, &mut OsRng).unwrap());
    }
    let wrap_time = start.elapsed() / n;
    let wrapped = wrapped.unwrap();
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(unwrap_key(&wrapped, &secret, &ctx).unwrap());
    }
    let unwrap_time = start.elapsed() / n;
    println!(
        "HPKE data-key wrap: {:.1} µs, unwrap: {:.1} µs",
        wrap_time.as_secs_f64() * 1e6,
        unwrap_time.as_secs_f64() * 1e6
    );
}

struct Row {
    label: String,
    size: u64,
    count: u64,
    // Each round's times: vault, raw, raw+sha, for encryption then decryption.
    enc: Vec<[Duration; 3]>,
    dec: Vec<[Duration; 3]>,
}

impl Row {
    fn new(size: u64, count: u64) -> Row {
        let label = if size >= GIB && size.is_multiple_of(GIB) {
            format!("{} GiB", size / GIB)
        } else if size >= MIB && size.is_multiple_of(MIB) {
            format!("{} MiB", size / MIB)
        } else {
            format!("{} KiB", size / KIB)
        };
        Row {
            label,
            size,
            count,
            enc: Vec::new(),
            dec: Vec::new(),
        }
    }

    /// Adds one round: the vault's times, then the baselines measured right after.
    fn add(&mut self, enc: Duration, dec: Duration) {
        let total = self.size * self.count;
        let piece = (self.size as usize).min(64 * 1024);
        let round_enc = [
            enc,
            raw_aead(total, piece, false, false),
            raw_aead(total, piece, false, true),
        ];
        let round_dec = [
            dec,
            raw_aead(total, piece, true, false),
            raw_aead(total, piece, true, true),
        ];
        self.enc.push(round_enc);
        self.dec.push(round_dec);
    }

    /// Median throughputs: vault, raw, raw+sha.
    fn figures(&self, decrypt: bool) -> (f64, f64, f64) {
        let total = self.size * self.count;
        let rounds = if decrypt { &self.dec } else { &self.enc };
        let median = |i: usize| {
            let mut times: Vec<Duration> = rounds.iter().map(|r| r[i]).collect();
            times.sort();
            mb_per_s(total, times[times.len() / 2])
        };
        (median(0), median(1), median(2))
    }
}
