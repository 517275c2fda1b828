//! Test chains built from real headers, certificates and decisions.

use std::collections::BTreeMap;

use custos_consent::StateChange;
use custos_crypto::{Hash, SecretKey, SigningKeyPair, sha256};
use custos_ledger::{BlockHeader, CommitCertificate};
use custos_storage::{BlockWrite, StoredBlock};
use custos_types::{
    AccessMode, Cohort, ConsentId, Decision, DecisionReason, Height, PartyId, Purpose, RecordId,
    RequestId, Timestamp, TxId,
};

pub(crate) const PURPOSES: [&str; 5] = ["TREAT", "ETREAT", "HPAYMT", "HMARKT", "HRESCH"];
pub(crate) const MODES: [AccessMode; 3] = [
    AccessMode::Raw,
    AccessMode::Predicate,
    AccessMode::Aggregate,
];

pub(crate) fn key(n: u8) -> SigningKeyPair {
    SigningKeyPair::from_secret(&SecretKey::from_slice(&[n; 32]).unwrap())
}

pub(crate) fn party(n: u8) -> PartyId {
    PartyId(key(n).public())
}

pub(crate) fn purpose(n: usize) -> Purpose {
    Purpose::parse(PURPOSES[n % PURPOSES.len()]).unwrap()
}

pub(crate) fn record(n: u8) -> RecordId {
    RecordId(sha256(&[b'r', n]))
}

pub(crate) fn request(index: u64) -> RequestId {
    RequestId(sha256(
        &[b"request".as_slice(), &index.to_be_bytes()].concat(),
    ))
}

pub(crate) fn tx(index: u64) -> TxId {
    TxId(sha256(&[b"tx".as_slice(), &index.to_be_bytes()].concat()))
}

/// What one log entry of a test block records.
pub(crate) enum Item {
    /// A decision; its height is set to the block's.
    Decision(Decision),
    /// A release confirmation for a request.
    Release(RequestId),
}

/// A chain of block writes, each following the previous one.
pub(crate) struct Chain {
    pub(crate) writes: Vec<BlockWrite>,
    validator: SigningKeyPair,
}

impl Chain {
    pub(crate) fn new() -> Self {
        Chain {
            writes: Vec::new(),
            validator: key(99),
        }
    }

    pub(crate) fn next_height(&self) -> u64 {
        self.writes.len() as u64 + 1
    }

    pub(crate) fn next_entry(&self) -> u64 {
        self.writes
            .last()
            .map_or(0, |w| w.block.first_entry + w.block.entries.len() as u64)
    }

    /// Appends a block with one entry (and transaction) per item.
    pub(crate) fn push(&mut self, items: Vec<Item>, state_changes: Vec<StateChange>) {
        let height = self.next_height();
        let first_entry = self.next_entry();
        let header = self.header(height, first_entry + items.len() as u64, items.len() as u32);
        let certificate = CommitCertificate::sign(&header, 1, &[&self.validator]);
        let mut write = BlockWrite {
            block: StoredBlock {
                header,
                certificate,
                first_entry,
                entries: Vec::new(),
            },
            leaf_hashes: Vec::new(),
            state_changes,
            transactions: Vec::new(),
            decisions: Vec::new(),
            releases: Vec::new(),
        };
        for (index, item) in (first_entry..).zip(items) {
            let entry = format!("entry {index} of block {height}").into_bytes();
            write.leaf_hashes.push(sha256(&entry));
            write.block.entries.push(entry);
            write.transactions.push((tx(index), index));
            match item {
                Item::Decision(mut d) => {
                    d.height = Height(height);
                    write.decisions.push((index, d));
                }
                Item::Release(request) => write.releases.push((request, index)),
            }
        }
        self.writes.push(write);
    }

    fn header(&self, height: u64, log_size: u64, tx_count: u32) -> BlockHeader {
        BlockHeader {
            chain_id: "custos-test".into(),
            height,
            time_ms: height as i64 * 1_000,
            prev_hash: self
                .writes
                .last()
                .map_or(Hash::ZERO, |w| w.block.header.hash()),
            log_size,
            log_root: sha256(&log_size.to_be_bytes()),
            state_root: sha256(&height.to_be_bytes()),
            tx_count,
            proposer: self.validator.public(),
            next_validators_hash: Hash([7; 32]),
        }
    }

    /// Every decision in log order.
    pub(crate) fn decisions(&self) -> Vec<(u64, Decision)> {
        self.writes
            .iter()
            .flat_map(|w| w.decisions.clone())
            .collect()
    }

    /// The state after every block.
    pub(crate) fn state(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        let mut state = BTreeMap::new();
        for (key, value) in self.writes.iter().flat_map(|w| &w.state_changes) {
            match value {
                Some(v) => state.insert(key.clone(), v.clone()),
                None => state.remove(key),
            };
        }
        state
    }
}

/// A decision varied by `n`: four requesters, six records (five owned by three patients, one
/// unknown), five purposes, three modes, grants, denials and break-glass accesses.
pub(crate) fn decision(n: u64, time: i64) -> Decision {
    let record_no = (n % 6) as u8;
    let reason = match n % 6 {
        0 => DecisionReason::BreakGlass,
        1 | 3 => DecisionReason::Consent,
        _ => DecisionReason::NoConsent,
    };
    let mode = MODES[(n % 3) as usize];
    Decision {
        request_id: request(n),
        requester: party(1 + (n % 4) as u8),
        record_id: record(record_no),
        patient: (record_no != 5).then(|| party(10 + record_no % 3)),
        purpose: purpose((n / 2) as usize),
        mode,
        reason,
        consent_id: (reason == DecisionReason::Consent).then(|| ConsentId(sha256(&[n as u8]))),
        break_glass: reason == DecisionReason::BreakGlass,
        height: Height(0),
        time: Timestamp(time),
        // A granted aggregate decision always fixes its cohort.
        cohort: (mode == AccessMode::Aggregate && reason == DecisionReason::Consent).then(|| {
            Cohort {
                root: sha256(&[n as u8, 0xc0]),
                size: 10,
            }
        }),
    }
}

/// `blocks` blocks of `per_block` entries: every fourth entry confirms the release of the
/// previous entry's request, the others are decisions at `time(height, index)`. Each entry
/// sets a state key; every third block deletes one.
pub(crate) fn chain_with_times(
    blocks: u64,
    per_block: u64,
    time: impl Fn(u64, u64) -> i64,
) -> Chain {
    let mut chain = Chain::new();
    for height in 1..=blocks {
        let first = chain.next_entry();
        let mut items = Vec::new();
        let mut changes = Vec::new();
        for index in first..first + per_block {
            items.push(if index % 4 == 3 {
                Item::Release(request(index - 1))
            } else {
                Item::Decision(decision(index, time(height, index)))
            });
            changes.push((
                format!("k{}", index % 6).into_bytes(),
                Some(index.to_be_bytes().to_vec()),
            ));
        }
        if height % 3 == 0 {
            changes.push((format!("k{}", height % 6).into_bytes(), None));
        }
        chain.push(items, changes);
    }
    chain
}

/// A chain whose decision times are their block times.
pub(crate) fn sample_chain(blocks: u64, per_block: u64) -> Chain {
    chain_with_times(blocks, per_block, |height, _| height as i64 * 1_000)
}
