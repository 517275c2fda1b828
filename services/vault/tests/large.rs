//! A large record round-trips through a real vault (put over gRPC, sled, release, fetch into a
//! file) with bounded memory. Its own test binary, so that nothing else runs in the process
//! while its peak memory is measured.
//!
//! Size: `CUSTOS_VAULT_LARGE_BYTES` (default 64 MiB, what CI affords; the issue's 1 GiB with
//! `CUSTOS_VAULT_LARGE_BYTES=1073741824`). The plaintext is generated on the fly and compared
//! by digest, so the test itself holds no copy of the record.
// A test: failing loudly is its job.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::time::Instant;

use custos_proto::vault::v1 as pb;
use custos_tests::{TestNet, bounded};
use custos_types::tx::RequestAccess;
use custos_types::{AccessMode, PartyId, Purpose, RecordId, RequestId};
use custos_vault::{KdfParams, Passphrase};
use custos_vault_service::{NodeGateway, VaultClient, VaultConfig, start_with};
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;

/// Deterministic pseudo-random bytes (xorshift64*), `len` of them.
struct Generator {
    state: u64,
    left: u64,
}

impl Read for Generator {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let word = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_record_round_trips_through_the_vault_with_bounded_memory() {
    let size: u64 = std::env::var("CUSTOS_VAULT_LARGE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64 * MIB);
    let net = TestNet::start(1).await.unwrap();
    let patient = net.patients[0].clone();
    net.grant(
        &patient,
        &net.insurer,
        &[Purpose::parse("HPAYMT").unwrap()],
        &[AccessMode::Raw],
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = VaultConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        net.endpoint(),
        dir.path().join("genesis.json"),
        dir.path().join("vault"),
    );
    config.kdf = KdfParams::INSECURE_FOR_TESTS;
    let gateway = NodeGateway::connect(&net.endpoint()).await.unwrap();
    let vault = start_with(
        &config,
        net.hospital.clone(),
        &Passphrase::new("pw".into()).unwrap(),
        net.genesis.clone(),
        gateway,
    )
    .await
    .unwrap();
    let client = VaultClient::connect(&vault.endpoint(), net.genesis.chain_id.clone())
        .await
        .unwrap();

    // Start measuring once the node, the vault and the client are up.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let baseline = status_kib("VmRSS:");
    let started = Instant::now();
    let header = pb::RecordHeader {
        record_id: Vec::new(),
        owner: PartyId(patient.public()).to_vec(),
        category: "imaging".into(),
        attributes: Vec::new(),
        size,
    };
    let generator = Generator {
        state: 0x9e37_79b9_7f4a_7c15,
        left: size,
    };
    let put = bounded(
        "putting the large record",
        client.put(&net.hospital, header, generator),
    )
    .await
    .unwrap()
    .unwrap();
    let put_time = started.elapsed();
    eprintln!(
        "after put: RSS {:.1} MiB, peak {:.1} MiB",
        status_kib("VmRSS:") as f64 / 1024.0,
        status_kib("VmHWM:") as f64 / 1024.0
    );
    let record = RecordId::from_field(&put.record_id, "record_id").unwrap();
    let decision = net
        .client
        .request_access(
            &net.insurer,
            RequestAccess {
                record_id: record,
                purpose: Purpose::parse("HPAYMT").unwrap(),
                mode: AccessMode::Raw,
                justification_digest: None,
                query: Vec::new(),
            },
        )
        .await
        .unwrap();
    let request = RequestId::from_field(&decision.decision.unwrap().request_id, "r").unwrap();
    let out = dir.path().join("large.out");
    let started = Instant::now();
    bounded(
        "fetching the large record",
        client.fetch(&net.insurer, request, &out, false),
    )
    .await
    .unwrap()
    .unwrap();
    let fetch_time = started.elapsed();
    let peak = status_kib("VmHWM:");

    // Compare by digest, streaming both sides.
    let mut expected = Sha256::new();
    let mut generator = Generator {
        state: 0x9e37_79b9_7f4a_7c15,
        left: size,
    };
    let mut got = Sha256::new();
    let mut file = std::fs::File::open(&out).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = generator.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        expected.update(&buf[..n]);
    }
    loop {
        let n = file.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.update(&buf[..n]);
    }
    assert_eq!(std::fs::metadata(&out).unwrap().len(), size);
    assert_eq!(got.finalize(), expected.finalize());

    let growth_mib = peak.saturating_sub(baseline) as f64 / 1024.0;
    eprintln!(
        "{} MiB: put {:.1} s ({:.0} MiB/s), fetch {:.1} s ({:.0} MiB/s); RSS before {:.1} MiB, \
         peak {:.1} MiB (growth {growth_mib:.1} MiB)",
        size / MIB,
        put_time.as_secs_f64(),
        size as f64 / MIB as f64 / put_time.as_secs_f64(),
        fetch_time.as_secs_f64(),
        size as f64 / MIB as f64 / fetch_time.as_secs_f64(),
        baseline as f64 / 1024.0,
        peak as f64 / 1024.0,
    );
    // Node, vault and client share this process; none may hold the record whole.
    assert!(
        growth_mib < 64.0,
        "peak memory grew by {growth_mib:.1} MiB while streaming {} MiB",
        size / MIB
    );
    vault.stop().await.unwrap();
    net.stop().await.unwrap();
}
