//! An in-memory `Application`: blocks are bare ledger headers, committed into a map.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use custos_consensus::Application;
use custos_crypto::{Hash, PublicKey, sha256};
use custos_ledger::header::HEADER_DOMAIN;
use custos_ledger::{BlockHeader, CommitCertificate, ValidatorSet, commit_message};
use tokio::sync::watch;

/// The chain every test cluster runs.
pub(crate) const CHAIN_ID: &str = "custos-consensus-test";

/// A committed block: the value's bytes and the certificate it was committed with.
pub(crate) type Committed = BTreeMap<u64, (Vec<u8>, CommitCertificate)>;

/// One validator's ledger.
pub(crate) struct TestLedger {
    set: ValidatorSet,
    blocks: Mutex<Committed>,
    height: watch::Sender<u64>,
}

/// The state root a block at `height` must carry.
fn state_root(height: u64) -> Hash {
    sha256(format!("test state at {height}").as_bytes())
}

/// Parses a header from its canonical bytes (the values this ledger proposes).
pub(crate) fn parse_header(bytes: &[u8]) -> Result<BlockHeader, String> {
    let rest = bytes
        .strip_prefix(HEADER_DOMAIN)
        .ok_or("not a header: wrong domain")?;
    let take = |r: &mut &[u8], n: usize| -> Result<Vec<u8>, String> {
        if r.len() < n {
            return Err("truncated header".into());
        }
        let (a, b) = r.split_at(n);
        *r = b;
        Ok(a.to_vec())
    };
    let mut r = rest;
    let u32_of = |v: Vec<u8>| u32::from_be_bytes(v.try_into().unwrap_or([0; 4]));
    let u64_of = |v: Vec<u8>| u64::from_be_bytes(v.try_into().unwrap_or([0; 8]));
    let hash_of = |v: Vec<u8>| Hash::from_slice(&v).map_err(|e| e.to_string());
    let chain_len = u32_of(take(&mut r, 4)?) as usize;
    let chain_id = String::from_utf8(take(&mut r, chain_len)?).map_err(|e| e.to_string())?;
    let height = u64_of(take(&mut r, 8)?);
    let time_ms = u64_of(take(&mut r, 8)?) as i64;
    let prev_hash = hash_of(take(&mut r, 32)?)?;
    let log_size = u64_of(take(&mut r, 8)?);
    let log_root = hash_of(take(&mut r, 32)?)?;
    let state_root = hash_of(take(&mut r, 32)?)?;
    let tx_count = u32_of(take(&mut r, 4)?);
    let proposer = PublicKey::from_slice(&take(&mut r, 32)?).map_err(|e| e.to_string())?;
    let next_validators_hash = hash_of(take(&mut r, 32)?)?;
    if !r.is_empty() {
        return Err("trailing bytes after header".into());
    }
    Ok(BlockHeader {
        chain_id,
        height,
        time_ms,
        prev_hash,
        log_size,
        log_root,
        state_root,
        tx_count,
        proposer,
        next_validators_hash,
    })
}

/// Checks a certificate by hand: distinct signers of the set, each signature over
/// `commit_message`, more than 2/3 of the power.
pub(crate) fn check_certificate_by_hand(
    header: &BlockHeader,
    certificate: &CommitCertificate,
    set: &ValidatorSet,
) -> Result<(), String> {
    if certificate.height != header.height || certificate.header_hash != header.hash() {
        return Err("certificate is for another header".into());
    }
    let message = commit_message(
        &header.chain_id,
        header.height,
        certificate.round,
        &header.hash(),
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut power = 0u64;
    for (key, signature) in &certificate.signatures {
        let p = set.power_of(key).ok_or("signer outside the set")?;
        if !seen.insert(*key) {
            return Err("signer counted twice".into());
        }
        key.verify(&message, signature)
            .map_err(|_| "signature does not verify over commit_message")?;
        power += p;
    }
    if 3 * u128::from(power) <= 2 * u128::from(set.total_power()) {
        return Err(format!(
            "only {power} of {} power signed",
            set.total_power()
        ));
    }
    Ok(())
}

impl TestLedger {
    pub(crate) fn new(set: ValidatorSet) -> Self {
        TestLedger {
            set,
            blocks: Mutex::new(BTreeMap::new()),
            height: watch::channel(0).0,
        }
    }

    /// Follows the committed height.
    pub(crate) fn watch_height(&self) -> watch::Receiver<u64> {
        self.height.subscribe()
    }

    /// Everything committed so far.
    pub(crate) fn blocks(&self) -> Committed {
        self.blocks.lock().unwrap().clone()
    }

    fn tip_hash(blocks: &Committed) -> Hash {
        blocks
            .values()
            .next_back()
            .map(|(v, _)| sha256(v))
            .unwrap_or(Hash::ZERO)
    }

    fn check(&self, blocks: &Committed, height: u64, value: &[u8]) -> Result<BlockHeader, String> {
        let header = parse_header(value)?;
        let committed = blocks.keys().next_back().copied().unwrap_or(0);
        if header.chain_id != CHAIN_ID {
            return Err("wrong chain".into());
        }
        if header.height != height || height != committed + 1 {
            return Err(format!(
                "block for height {} offered at {height}, next is {}",
                header.height,
                committed + 1
            ));
        }
        if header.prev_hash != Self::tip_hash(blocks) {
            return Err("wrong previous hash".into());
        }
        if header.state_root != state_root(height) {
            return Err("wrong state root".into());
        }
        if self.set.power_of(&header.proposer).is_none() {
            return Err("proposer outside the set".into());
        }
        if header.next_validators_hash != self.set.hash() {
            return Err("wrong validator set hash".into());
        }
        Ok(header)
    }
}

impl Application for TestLedger {
    fn chain_id(&self) -> String {
        CHAIN_ID.to_string()
    }

    fn validators(&self) -> ValidatorSet {
        self.set.clone()
    }

    fn committed_height(&self) -> u64 {
        self.blocks
            .lock()
            .unwrap()
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
    }

    fn propose(
        &self,
        height: u64,
        _round: u32,
        proposer: PublicKey,
    ) -> anyhow::Result<(Vec<u8>, Hash)> {
        let blocks = self.blocks.lock().unwrap();
        let prev_hash = Self::tip_hash(&blocks);
        // Wall-clock time: a block rebuilt later differs, so reusing a stored proposal shows.
        let time_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
        let header = BlockHeader {
            chain_id: CHAIN_ID.to_string(),
            height,
            time_ms,
            prev_hash,
            log_size: height,
            log_root: sha256(prev_hash.as_bytes()),
            state_root: state_root(height),
            tx_count: 0,
            proposer,
            next_validators_hash: self.set.hash(),
        };
        Ok((header.canonical_bytes(), header.hash()))
    }

    fn validate(&self, height: u64, value: &[u8]) -> Result<Hash, String> {
        let blocks = self.blocks.lock().unwrap();
        self.check(&blocks, height, value).map(|h| h.hash())
    }

    fn commit(
        &self,
        height: u64,
        value: &[u8],
        certificate: CommitCertificate,
    ) -> anyhow::Result<()> {
        let mut blocks = self.blocks.lock().unwrap();
        let header = self
            .check(&blocks, height, value)
            .map_err(|e| anyhow::anyhow!("refusing to commit: {e}"))?;
        certificate.verify(&header, &self.set)?;
        blocks.insert(height, (value.to_vec(), certificate));
        self.height.send_replace(height);
        Ok(())
    }

    fn decided(&self, height: u64) -> anyhow::Result<Option<(Vec<u8>, CommitCertificate)>> {
        Ok(self.blocks.lock().unwrap().get(&height).cloned())
    }
}
