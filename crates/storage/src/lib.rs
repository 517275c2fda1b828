//! Persists the ledger: blocks, entries, certificates, state and audit indexes behind a store
//! trait, on sled.
//!
//! [`LedgerStore`] is the contract. [`KvLedgerStore`] implements it once over an ordered
//! key-value backend ([`Backend`]); [`sled_backend::SledBackend`] is the durable backend and
//! [`memory::MemoryBackend`] the in-memory one for tests. Every block is written as one atomic
//! batch (block, entries, state changes, indexes and the new tip) and flushed before
//! [`LedgerStore::commit_block`] returns, so a crash leaves either the whole block or none of it.

use std::collections::BTreeSet;

use custos_consent::StateChange;
use custos_crypto::Hash;
use custos_ledger::{BlockHeader, CommitCertificate};
use custos_types::{AccessMode, Decision, PartyId, Purpose, RecordId, RequestId, Timestamp, TxId};

mod kv;
pub mod memory;
pub mod parallel;
pub mod sled_backend;

pub use kv::{Backend, KvLedgerStore};

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, corruption).
    #[error("storage backend: {0}")]
    Backend(String),
    /// Stored bytes could not be decoded.
    #[error("corrupt stored item `{key}`: {reason}")]
    Corrupt {
        /// Which item.
        key: String,
        /// Why.
        reason: String,
    },
    /// A block does not follow the stored tip.
    #[error("block {got} does not follow the stored tip {tip}")]
    OutOfOrder {
        /// The stored tip height.
        tip: u64,
        /// The block's height.
        got: u64,
    },
}

/// A `Result` with [`StoreError`].
pub type Result<T> = std::result::Result<T, StoreError>;

/// A finalized block as stored.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StoredBlock {
    /// Its header.
    pub header: BlockHeader,
    /// The certificate that finalized it.
    pub certificate: CommitCertificate,
    /// Log index of its first entry.
    pub first_entry: u64,
    /// Its serialized `LedgerEntry` leaves, in log order.
    pub entries: Vec<Vec<u8>>,
}

/// Everything one block writes, applied atomically.
#[derive(Clone, Debug)]
pub struct BlockWrite {
    /// The block.
    pub block: StoredBlock,
    /// Leaf hash of each entry (same order as `block.entries`).
    pub leaf_hashes: Vec<Hash>,
    /// State changes of the block.
    pub state_changes: Vec<StateChange>,
    /// Each transaction's id and log index.
    pub transactions: Vec<(TxId, u64)>,
    /// Each decision and its log index (indexed for audit queries).
    pub decisions: Vec<(u64, Decision)>,
    /// Each release confirmation: the request and the confirmation's log index.
    pub releases: Vec<(RequestId, u64)>,
}

/// Filters of an audit query; `None` does not filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The record's owner.
    pub patient: Option<PartyId>,
    /// Any of these requesters (an organisation's parties, or one requester).
    pub requesters: Option<BTreeSet<PartyId>>,
    /// The record.
    pub record: Option<RecordId>,
    /// Any of these purposes (a code and its descendants).
    pub purposes: Option<BTreeSet<Purpose>>,
    /// The mode.
    pub mode: Option<AccessMode>,
    /// Granted (`Some(true)`) or denied (`Some(false)`).
    pub granted: Option<bool>,
    /// Only break-glass accesses.
    pub break_glass_only: bool,
    /// Decision time at or after.
    pub from: Option<Timestamp>,
    /// Decision time before.
    pub to: Option<Timestamp>,
}

impl AuditFilter {
    /// Whether `decision` passes every filter.
    pub fn matches(&self, d: &Decision) -> bool {
        self.patient.is_none_or(|p| d.patient == Some(p))
            && self
                .requesters
                .as_ref()
                .is_none_or(|r| r.contains(&d.requester))
            && self.record.is_none_or(|r| d.record_id == r)
            && self
                .purposes
                .as_ref()
                .is_none_or(|p| p.contains(&d.purpose))
            && self.mode.is_none_or(|m| d.mode == m)
            && self.granted.is_none_or(|g| d.granted() == g)
            && (!self.break_glass_only || d.break_glass)
            && self.from.is_none_or(|t| d.time >= t)
            && self.to.is_none_or(|t| d.time < t)
    }
}

/// One page of audit results: decisions with their log indexes, in log order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditPage {
    /// The matching decisions.
    pub decisions: Vec<(u64, Decision)>,
    /// Cursor for the next page: the log index to continue after; `None` at the end.
    pub next: Option<u64>,
}

/// The ledger's persistent store.
pub trait LedgerStore: Send + Sync + 'static {
    /// Writes a block atomically and durably. Its height must be the tip + 1, and its first
    /// entry index the stored entry count.
    fn commit_block(&self, write: BlockWrite) -> Result<()>;
    /// Height of the last stored block (0 when empty).
    fn tip(&self) -> Result<u64>;
    /// Number of stored log entries.
    fn entry_count(&self) -> Result<u64>;
    /// A block.
    fn block(&self, height: u64) -> Result<Option<StoredBlock>>;
    /// A block's header and certificate without its entries.
    fn header(&self, height: u64) -> Result<Option<(BlockHeader, CommitCertificate)>>;
    /// A log entry and the height of its block.
    fn entry(&self, index: u64) -> Result<Option<(Vec<u8>, u64)>>;
    /// Every leaf hash in log order (to rebuild the Merkle tree at start-up).
    fn leaf_hashes(&self) -> Result<Vec<Hash>>;
    /// Every state item (to rebuild the state machine at start-up).
    fn state_items(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Where a transaction sits: (height, log index).
    fn transaction(&self, id: &TxId) -> Result<Option<(u64, u64)>>;
    /// The log index of a request's decision.
    fn decision_index(&self, request: &RequestId) -> Result<Option<u64>>;
    /// Log indexes of a request's release confirmations.
    fn releases(&self, request: &RequestId) -> Result<Vec<u64>>;
    /// Decisions matching `filter` with log index > `after` (or from the start), in log order,
    /// at most `limit` of them, using the most selective index.
    fn query_decisions(
        &self,
        filter: &AuditFilter,
        after: Option<u64>,
        limit: usize,
    ) -> Result<AuditPage>;
}
