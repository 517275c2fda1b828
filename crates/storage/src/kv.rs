//! [`LedgerStore`] over any ordered key-value [`Backend`].
//!
//! # Key layout
//!
//! One keyspace. Every key starts with a one-byte family (`i` indexes add a second byte); all
//! integers are big-endian so that key order is numeric order, and timestamps have their sign
//! bit flipped so that negative times sort first. `index` is a log index (u64), `height` a block
//! height (u64), ids are their 32 bytes.
//!
//! | key                                      | value                                          |
//! |------------------------------------------|------------------------------------------------|
//! | `m` `tip`                                | u64: height of the last block                  |
//! | `m` `entries`                            | u64: number of log entries                     |
//! | `m` `dtime`                              | i64: latest decision time so far               |
//! | `m` `unordered`                          | present once a decision time went backwards    |
//! | `m` `indexes`                            | u64: version of the audit index set written    |
//! | `b` height                               | 1 ‖ postcard(header pb, certificate pb, first entry, entry count) |
//! | `e` index                                | u64 height ‖ entry bytes                       |
//! | `l` index                                | leaf hash (32 bytes)                           |
//! | `s` state key                            | state value                                    |
//! | `t` tx id                                | u64 height ‖ u64 index                         |
//! | `d` index                                | 1 ‖ postcard(`Decision`)                       |
//! | `r` request id                           | u64 index of its decision                      |
//! | `c` request id ‖ index                   | empty: a release confirmation                  |
//! | `ip` patient ‖ index                     | summary: audit index by patient                |
//! | `iq` requester ‖ index                   | summary: audit index by requester              |
//! | `ir` record id ‖ index                   | summary: audit index by record                 |
//! | `iu` u8 code length ‖ purpose code ‖ index | summary: audit index by purpose              |
//! | `it` time ‖ index                        | summary: audit index by decision time          |
//! | `ib` index                               | summary: audit index of break-glass decisions  |
//!
//! Headers and certificates are stored as their wire protobuf, decisions with postcard behind a
//! version byte. Audit indexes end in the log index, so each one lists its decisions in log
//! order and a query cursor (a log index) maps straight to a start key. An index row's value is
//! its decision's *summary*, `1 ‖ flags (granted, break-glass, mode) ‖ time`: a query filtered
//! on more than the index it reads (a requester's denials, a patient's break-glass accesses, a
//! purpose within a time window) passes over rows that cannot match without reading their
//! decisions, each a random read on a large store. Rows written before summaries are empty and
//! checked on the decision.
//!
//! Audit indexes are secondary: they are derived from the `d` rows, lie outside the state root
//! and can be rebuilt. A store written before an index existed (an older `m` `indexes`) gets
//! the missing ones when it is opened ([`KvLedgerStore::open`]).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Mutex;

use custos_crypto::Hash;
use custos_ledger::{BlockHeader, CommitCertificate};
use custos_proto::ledger::v1 as pb;
use custos_types::{AccessMode, Decision, Purpose, RequestId, Timestamp, TxId};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::{AuditFilter, AuditPage, BlockWrite, LedgerStore, Result, StoreError, StoredBlock};

/// An ordered byte key-value store: the only thing a storage engine has to provide.
pub trait Backend: Send + Sync + 'static {
    /// The value under `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Applies every write (`None` deletes) or none of them; durable when it returns.
    fn apply(&self, ops: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<()>;
    /// Applies every write with neither the atomicity nor the durability of [`Self::apply`]
    /// (the next `apply` makes them durable): for building a store offline. By default, `apply`.
    fn load(&self, ops: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<()> {
        self.apply(ops)
    }
    /// At most `limit` items with `from <= key < to_exclusive`, in key order.
    fn scan(
        &self,
        from: &[u8],
        to_exclusive: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Every item whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

const TIP: &[u8] = b"mtip";
const ENTRIES: &[u8] = b"mentries";
const DECISION_TIME: &[u8] = b"mdtime";
const UNORDERED: &[u8] = b"munordered";
const INDEX_VERSION: &[u8] = b"mindexes";
const BLOCK: &[u8] = b"b";
const ENTRY: &[u8] = b"e";
const LEAF: &[u8] = b"l";
const STATE: &[u8] = b"s";
const TX: &[u8] = b"t";
const DECISION: &[u8] = b"d";
const REQUEST: &[u8] = b"r";
const RELEASE: &[u8] = b"c";
const BY_PATIENT: &[u8] = b"ip";
const BY_REQUESTER: &[u8] = b"iq";
const BY_RECORD: &[u8] = b"ir";
const BY_PURPOSE: &[u8] = b"iu";
const BY_TIME: &[u8] = b"it";
const BREAK_GLASS: &[u8] = b"ib";

/// Version of the audit index set: 0 had `ip`, `iq`, `ir`, `iu` and `it`; 1 adds `ib`.
const INDEXES: u64 = 1;

/// Decisions one index rebuild batch reads and writes.
const REBUILD_CHUNK: usize = 10_000;

/// Version byte in front of postcard-encoded values.
const VALUE_VERSION: u8 = 1;

/// Rows one audit index read fetches at most, shared among the merged indexes. The first read
/// of a query fetches about a page; each later one twice the previous, up to this.
const SCAN_CHUNK: usize = 4096;

/// Version byte of an index row's [`Summary`].
const SUMMARY_VERSION: u8 = 1;

/// What an audit index row says about its decision (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Summary {
    granted: bool,
    break_glass: bool,
    mode: AccessMode,
    time: Timestamp,
}

impl Summary {
    fn of(d: &Decision) -> Self {
        Summary {
            granted: d.granted(),
            break_glass: d.break_glass,
            mode: d.mode,
            time: d.time,
        }
    }

    /// `1 ‖ flags ‖ time`: flags bit 0 granted, bit 1 break-glass, bits 2–3 the mode.
    fn encode(&self) -> Vec<u8> {
        let mode: u8 = match self.mode {
            AccessMode::Raw => 0,
            AccessMode::Predicate => 1,
            AccessMode::Aggregate => 2,
        };
        let flags = u8::from(self.granted) | u8::from(self.break_glass) << 1 | mode << 2;
        let mut out = Vec::with_capacity(10);
        out.push(SUMMARY_VERSION);
        out.push(flags);
        out.extend_from_slice(&time_bytes(self.time));
        out
    }

    /// The summary in an index row's value; `None` for a row without one (an older store),
    /// which the query checks on its decision instead.
    fn decode(value: &[u8]) -> Option<Self> {
        let [SUMMARY_VERSION, flags, time @ ..] = value else {
            return None;
        };
        let mode = match (flags >> 2) & 3 {
            0 => AccessMode::Raw,
            1 => AccessMode::Predicate,
            2 => AccessMode::Aggregate,
            _ => return None,
        };
        Some(Summary {
            granted: flags & 1 == 1,
            break_glass: flags & 2 == 2,
            mode,
            time: time_from_bytes(time.try_into().ok()?),
        })
    }

    /// False when no decision with this summary matches `filter` (whatever the filter's
    /// parties, record and purposes, which the summary does not hold).
    fn may_match(&self, filter: &AuditFilter) -> bool {
        filter.mode.is_none_or(|m| self.mode == m)
            && filter.granted.is_none_or(|g| self.granted == g)
            && (!filter.break_glass_only || self.break_glass)
            && filter.from.is_none_or(|t| self.time >= t)
            && filter.to.is_none_or(|t| self.time < t)
    }
}

/// A block without its entries, as stored under `b`.
#[derive(Serialize, Deserialize)]
struct BlockMeta {
    header: Vec<u8>,
    certificate: Vec<u8>,
    first_entry: u64,
    entries: u64,
}

/// The ledger store over `B`. Commits are serialized; reads go straight to the backend.
pub struct KvLedgerStore<B: Backend> {
    backend: B,
    /// Held across a commit's tip check and its write, so two commits cannot both pass it.
    commit: Mutex<()>,
    scan_limit: usize,
}

impl<B: Backend> KvLedgerStore<B> {
    /// Default bound on the index rows one audit query reads before it returns a cursor.
    pub const DEFAULT_SCAN_LIMIT: usize = 100_000;

    /// A store over `backend`, which must be empty or written with the current index set;
    /// [`Self::open`] accepts any.
    pub(crate) fn new(backend: B) -> Self {
        KvLedgerStore {
            backend,
            commit: Mutex::new(()),
            scan_limit: Self::DEFAULT_SCAN_LIMIT,
        }
    }

    /// A store over `backend`, building any audit index that an older version did not write.
    pub fn open(backend: B) -> Result<Self> {
        let store = Self::new(backend);
        store.upgrade_indexes()?;
        Ok(store)
    }

    /// The backend, giving up the store (to reopen it).
    pub fn into_backend(self) -> B {
        self.backend
    }

    /// Builds the audit indexes the stored index version lacks, from the stored decisions.
    /// Idempotent: a rebuild cut short writes nothing wrong and runs again at the next open.
    fn upgrade_indexes(&self) -> Result<()> {
        let version = self.get_u64(INDEX_VERSION)?.unwrap_or(0);
        if version >= INDEXES || self.tip()? == 0 {
            return Ok(());
        }
        let end = prefix_end(DECISION);
        let mut from = DECISION.to_vec();
        loop {
            let rows = self.backend.scan(&from, &end, REBUILD_CHUNK)?;
            let mut ops = Vec::new();
            for (key, value) in &rows {
                let index = index_suffix(DECISION, key)?;
                let decision: Decision = decode_versioned(key, value)?;
                if decision.break_glass {
                    ops.push((
                        cat(BREAK_GLASS, &index.to_be_bytes()),
                        Some(Summary::of(&decision).encode()),
                    ));
                }
            }
            let done = rows.len() < REBUILD_CHUNK;
            if done {
                ops.push((INDEX_VERSION.to_vec(), Some(INDEXES.to_be_bytes().to_vec())));
            }
            self.backend.apply(ops)?;
            match rows.last() {
                Some((last, _)) if !done => from = cat(last, &[0]),
                _ => return Ok(()),
            }
        }
    }

    /// Writes consecutive blocks as one atomic batch, flushed once: what [`LedgerStore::commit_block`]
    /// writes for each, in fewer writes (bulk loads, catch-up). Every block is checked as
    /// `commit_block` checks it; if one fails, none is written.
    pub fn commit_blocks(&self, writes: &[BlockWrite]) -> Result<()> {
        let _guard = self.commit_guard()?;
        let mut at = self.position()?;
        let mut ops = Vec::new();
        for write in writes {
            block_ops(write, &mut at, &mut ops)?;
        }
        if !writes.is_empty() {
            at.finish(&mut ops);
            self.backend.apply(ops)?;
        }
        Ok(())
    }

    /// Writes consecutive blocks as [`Self::commit_blocks`] does, checked the same way, but
    /// neither atomically nor durably until the tip is written last: for building a store
    /// offline (benches, imports). A crash before that leaves rows past the tip that a different
    /// next block would not overwrite; discard such a store.
    pub fn load_blocks(&self, writes: &[BlockWrite]) -> Result<()> {
        let _guard = self.commit_guard()?;
        let mut at = self.position()?;
        let mut ops = Vec::new();
        for write in writes {
            block_ops(write, &mut at, &mut ops)?;
        }
        if writes.is_empty() {
            return Ok(());
        }
        self.backend.load(ops)?;
        let mut tip = Vec::new();
        at.finish(&mut tip);
        self.backend.apply(tip)
    }

    fn commit_guard(&self) -> Result<std::sync::MutexGuard<'_, ()>> {
        self.commit
            .lock()
            .map_err(|_| StoreError::Backend("commit lock poisoned".into()))
    }

    /// Where the next block must start.
    fn position(&self) -> Result<Position> {
        Ok(Position {
            tip: self.tip()?,
            count: self.entry_count()?,
            latest: self.get_u64(DECISION_TIME)?,
            unordered: self.backend.get(UNORDERED)?.is_some(),
        })
    }

    /// Bounds the index rows one audit query reads before it returns a cursor (at least 1;
    /// [`Self::DEFAULT_SCAN_LIMIT`] by default).
    pub fn with_scan_limit(mut self, rows: usize) -> Self {
        self.scan_limit = rows.max(1);
        self
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    fn get_u64(&self, key: &[u8]) -> Result<Option<u64>> {
        self.backend.get(key)?.map(|v| be_u64(key, &v)).transpose()
    }

    fn meta(&self, height: u64) -> Result<Option<BlockMeta>> {
        let key = cat(BLOCK, &height.to_be_bytes());
        self.backend
            .get(&key)?
            .map(|v| decode_versioned(&key, &v))
            .transpose()
    }

    fn decision(&self, index: u64) -> Result<Option<Decision>> {
        let key = cat(DECISION, &index.to_be_bytes());
        self.backend
            .get(&key)?
            .map(|v| decode_versioned(&key, &v))
            .transpose()
    }
}

impl<B: Backend> LedgerStore for KvLedgerStore<B> {
    fn commit_block(&self, write: BlockWrite) -> Result<()> {
        let _guard = self.commit_guard()?;
        let mut at = self.position()?;
        let mut ops = Vec::new();
        block_ops(&write, &mut at, &mut ops)?;
        at.finish(&mut ops);
        self.backend.apply(ops)
    }

    fn tip(&self) -> Result<u64> {
        Ok(self.get_u64(TIP)?.unwrap_or(0))
    }

    fn entry_count(&self) -> Result<u64> {
        Ok(self.get_u64(ENTRIES)?.unwrap_or(0))
    }

    fn block(&self, height: u64) -> Result<Option<StoredBlock>> {
        let Some(meta) = self.meta(height)? else {
            return Ok(None);
        };
        let (header, certificate) = decode_header(height, &meta)?;
        let from = cat(ENTRY, &meta.first_entry.to_be_bytes());
        let end = meta.first_entry.saturating_add(meta.entries);
        let rows = self
            .backend
            .scan(&from, &cat(ENTRY, &end.to_be_bytes()), usize::MAX)?;
        if rows.len() as u64 != meta.entries {
            return Err(corrupt(
                &cat(BLOCK, &height.to_be_bytes()),
                "entries are missing",
            ));
        }
        let entries = rows
            .into_iter()
            .map(|(_, v)| v.get(8..).unwrap_or_default().to_vec());
        Ok(Some(StoredBlock {
            header,
            certificate,
            first_entry: meta.first_entry,
            entries: entries.collect(),
        }))
    }

    fn header(&self, height: u64) -> Result<Option<(BlockHeader, CommitCertificate)>> {
        self.meta(height)?
            .map(|meta| decode_header(height, &meta))
            .transpose()
    }

    fn entry(&self, index: u64) -> Result<Option<(Vec<u8>, u64)>> {
        let key = cat(ENTRY, &index.to_be_bytes());
        let Some(value) = self.backend.get(&key)? else {
            return Ok(None);
        };
        let height = be_u64(&key, value.get(..8).unwrap_or_default())?;
        Ok(Some((value[8..].to_vec(), height)))
    }

    fn leaf_hashes(&self) -> Result<Vec<Hash>> {
        let rows = self.backend.scan_prefix(LEAF)?;
        let mut leaves = Vec::with_capacity(rows.len());
        for (expected, (key, value)) in (0u64..).zip(rows) {
            // A gap would silently shift every later leaf of the rebuilt tree.
            if index_suffix(LEAF, &key)? != expected {
                return Err(corrupt(&key, "leaf hashes have a gap"));
            }
            leaves.push(Hash::from_slice(&value).map_err(|e| corrupt(&key, e))?);
        }
        Ok(leaves)
    }

    fn state_items(&self) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let rows = self.backend.scan_prefix(STATE)?;
        Ok(rows
            .into_iter()
            .map(|(k, v)| (k[STATE.len()..].to_vec(), v))
            .collect())
    }

    fn transaction(&self, id: &TxId) -> Result<Option<(u64, u64)>> {
        let key = cat(TX, id.0.as_bytes());
        let Some(value) = self.backend.get(&key)? else {
            return Ok(None);
        };
        let height = be_u64(&key, value.get(..8).unwrap_or_default())?;
        let index = be_u64(&key, value.get(8..).unwrap_or_default())?;
        Ok(Some((height, index)))
    }

    fn decision_index(&self, request: &RequestId) -> Result<Option<u64>> {
        self.get_u64(&cat(REQUEST, request.0.as_bytes()))
    }

    fn releases(&self, request: &RequestId) -> Result<Vec<u64>> {
        let prefix = cat(RELEASE, request.0.as_bytes());
        let rows = self.backend.scan_prefix(&prefix)?;
        rows.iter()
            .map(|(key, _)| index_suffix(&prefix, key))
            .collect()
    }

    fn query_decisions(
        &self,
        filter: &AuditFilter,
        after: Option<u64>,
        limit: usize,
    ) -> Result<AuditPage> {
        let limit = limit.max(1);
        let Some(mut start) = after.map_or(Some(0), |a| a.checked_add(1)) else {
            return Ok(AuditPage::default());
        };
        // While decision times follow log order, the decisions at or after `from` are a log
        // suffix (found with one time-index read) and the first one at or after `to` ends the
        // query.
        let time_ordered = self.backend.get(UNORDERED)?.is_none();
        if time_ordered && let Some(from) = filter.from {
            let rows =
                self.backend
                    .scan(&cat(BY_TIME, &time_bytes(from)), &prefix_end(BY_TIME), 1)?;
            let Some((key, _)) = rows.first() else {
                return Ok(AuditPage::default());
            };
            let time_prefix = key.get(..BY_TIME.len() + 8).unwrap_or_default();
            start = start.max(index_suffix(time_prefix, key)?);
        }

        // The most selective index present; every other filter is checked on the decision.
        // Break-glass accesses are exceptional by design, rarer than one requester's.
        let single = |prefix: &[u8], id: &[u8]| vec![cat(prefix, id)];
        let prefixes = if let Some(record) = filter.record {
            single(BY_RECORD, record.0.as_bytes())
        } else if let Some(patient) = filter.patient {
            single(BY_PATIENT, patient.0.as_bytes())
        } else if filter.break_glass_only {
            vec![BREAK_GLASS.to_vec()]
        } else if let Some(requesters) = &filter.requesters {
            requesters
                .iter()
                .map(|r| cat(BY_REQUESTER, r.0.as_bytes()))
                .collect()
        } else if let Some(purposes) = &filter.purposes {
            purposes.iter().map(|p| purpose_prefix(*p)).collect()
        } else {
            vec![DECISION.to_vec()]
        };
        let carries_decision = prefixes.len() == 1 && prefixes[0] == DECISION;
        // Read no more rows than the budget allows, and at first about a page (a dense filter
        // fills it from one read; a sparse one doubles its reads).
        let sources_n = prefixes.len().max(1);
        let max_chunk = (SCAN_CHUNK / sources_n)
            .clamp(16, 1024)
            .min(self.scan_limit);
        let first_chunk = limit
            .saturating_add(1)
            .div_ceil(sources_n)
            .max(16)
            .min(max_chunk);
        let mut sources: Vec<Source> = prefixes
            .into_iter()
            .map(|p| Source::new(p, start, first_chunk, max_chunk))
            .collect();

        // Merge the indexes in log order. A decision has one requester and one purpose, so no
        // two indexes name the same decision.
        let mut heads = BinaryHeap::new();
        for (n, source) in sources.iter_mut().enumerate() {
            if let Some(index) = source.peek(&self.backend)? {
                heads.push(Reverse((index, n)));
            }
        }
        let mut page = AuditPage::default();
        let mut scanned = 0;
        let mut last = after;
        loop {
            // The rows that may match, up to the rest of the page: a row settled by its summary
            // costs nothing, the others' decisions are then read together (one random read each
            // on a large store, which a disk serves far better at once than one after another).
            // Each candidate adds at most one decision, so the page cannot fill before the last.
            let wanted = limit - page.decisions.len();
            let mut candidates: Vec<u64> = Vec::with_capacity(wanted);
            // Their decisions, when the rows read are the decisions themselves.
            let mut carried: Vec<Decision> = Vec::new();
            // Why collecting stopped early: a row was taken that was not looked at.
            let mut out_of_budget = false;
            let mut past_end = false;
            while candidates.len() < wanted {
                let Some(Reverse((index, n))) = heads.pop() else {
                    break;
                };
                if scanned == self.scan_limit {
                    // Out of budget with rows left: the page continues after the last row read.
                    out_of_budget = true;
                    break;
                }
                scanned += 1;
                last = Some(index);
                let source = &mut sources[n];
                let (_, value) = source.buf.pop_front().unwrap_or_default();
                let key = cat(&source.prefix, &index.to_be_bytes());
                if let Some(next) = source.peek(&self.backend)? {
                    heads.push(Reverse((next, n)));
                }
                // An index row's summary settles most filters without the decision.
                if !carries_decision && let Some(summary) = Summary::decode(&value) {
                    if time_ordered && filter.to.is_some_and(|to| summary.time >= to) {
                        past_end = true;
                        break;
                    }
                    if !summary.may_match(filter) {
                        continue;
                    }
                }
                if carries_decision {
                    carried.push(decode_versioned(&key, &value)?);
                }
                candidates.push(index);
            }
            let taken = candidates.len();
            let decisions = if carries_decision {
                carried
            } else {
                crate::parallel::read_all(&candidates, |index| {
                    self.decision(*index)?.ok_or_else(|| {
                        corrupt(
                            &cat(DECISION, &index.to_be_bytes()),
                            "is indexed but missing",
                        )
                    })
                })?
            };
            for (n, (index, decision)) in candidates.into_iter().zip(decisions).enumerate() {
                if time_ordered && filter.to.is_some_and(|to| decision.time >= to) {
                    return Ok(page);
                }
                if filter.matches(&decision) {
                    page.decisions.push((index, decision));
                    if page.decisions.len() == limit {
                        let more = n + 1 < taken || out_of_budget || past_end || !heads.is_empty();
                        page.next = more.then_some(index);
                        return Ok(page);
                    }
                }
            }
            if out_of_budget {
                page.next = last;
                return Ok(page);
            }
            if past_end || heads.is_empty() {
                return Ok(page);
            }
        }
    }
}

/// One write of the backend: a key and its value, or `None` to delete it.
type Op = (Vec<u8>, Option<Vec<u8>>);

/// The stored log's end and decision-time order, as the next block sees them.
struct Position {
    tip: u64,
    count: u64,
    /// The latest decision time so far, as [`time_bytes`].
    latest: Option<u64>,
    /// Whether a decision time ever went backwards.
    unordered: bool,
}

impl Position {
    /// The metadata rows that record this position.
    fn finish(&self, ops: &mut Vec<Op>) {
        if let Some(time) = self.latest {
            ops.push((DECISION_TIME.to_vec(), Some(time.to_be_bytes().to_vec())));
        }
        if self.unordered {
            ops.push((UNORDERED.to_vec(), Some(Vec::new())));
        }
        ops.push((TIP.to_vec(), Some(self.tip.to_be_bytes().to_vec())));
        ops.push((ENTRIES.to_vec(), Some(self.count.to_be_bytes().to_vec())));
    }
}

/// Checks that `write` follows `at` and appends the rows it writes to `ops`, advancing `at`.
fn block_ops(write: &BlockWrite, at: &mut Position, ops: &mut Vec<Op>) -> Result<()> {
    let (tip, count) = (at.tip, at.count);
    let block = &write.block;
    let height = block.header.height;
    if tip.checked_add(1) != Some(height) || block.first_entry != count {
        return Err(StoreError::OutOfOrder { tip, got: height });
    }
    let invalid = |reason: &str| StoreError::Corrupt {
        key: format!("block write at height {height}"),
        reason: reason.to_owned(),
    };
    let end = count
        .checked_add(block.entries.len() as u64)
        .ok_or_else(|| invalid("entry count overflows"))?;
    if write.leaf_hashes.len() != block.entries.len() {
        return Err(invalid("leaf hash count differs from entry count"));
    }
    let indexes = write.transactions.iter().map(|(_, i)| *i);
    let indexes = indexes.chain(write.decisions.iter().map(|(i, _)| *i));
    if indexes
        .chain(write.releases.iter().map(|(_, i)| *i))
        .any(|i| !(count..end).contains(&i))
    {
        return Err(invalid("an indexed entry lies outside the block"));
    }

    let mut put = |key: Vec<u8>, value: Vec<u8>| ops.push((key, Some(value)));
    let meta = BlockMeta {
        header: block.header.to_wire().encode_to_vec(),
        certificate: block.certificate.to_wire().encode_to_vec(),
        first_entry: count,
        entries: end - count,
    };
    put(cat(BLOCK, &height.to_be_bytes()), encode_versioned(&meta)?);
    for ((index, entry), leaf) in (count..).zip(&block.entries).zip(&write.leaf_hashes) {
        put(
            cat(ENTRY, &index.to_be_bytes()),
            cat(&height.to_be_bytes(), entry),
        );
        put(cat(LEAF, &index.to_be_bytes()), leaf.as_bytes().to_vec());
    }
    for (id, index) in &write.transactions {
        put(
            cat(TX, id.0.as_bytes()),
            cat(&height.to_be_bytes(), &index.to_be_bytes()),
        );
    }
    for (request, index) in &write.releases {
        put(
            cat3(RELEASE, request.0.as_bytes(), &index.to_be_bytes()),
            Vec::new(),
        );
    }

    // Track whether decision times follow log order: while they do, a query's time window
    // bounds the log range it scans.
    let mut decisions: Vec<&(u64, Decision)> = write.decisions.iter().collect();
    decisions.sort_by_key(|(index, _)| *index);
    for (index, d) in decisions {
        let at_index = index.to_be_bytes();
        let time = time_bytes(d.time);
        let summary = Summary::of(d).encode();
        put(cat(DECISION, &at_index), encode_versioned(d)?);
        put(cat(REQUEST, d.request_id.0.as_bytes()), at_index.to_vec());
        if let Some(patient) = d.patient {
            put(
                cat3(BY_PATIENT, patient.0.as_bytes(), &at_index),
                summary.clone(),
            );
        }
        put(
            cat3(BY_REQUESTER, d.requester.0.as_bytes(), &at_index),
            summary.clone(),
        );
        put(
            cat3(BY_RECORD, d.record_id.0.as_bytes(), &at_index),
            summary.clone(),
        );
        put(cat(&purpose_prefix(d.purpose), &at_index), summary.clone());
        put(cat3(BY_TIME, &time, &at_index), summary.clone());
        if d.break_glass {
            put(cat(BREAK_GLASS, &at_index), summary);
        }
        let time = u64::from_be_bytes(time);
        at.unordered |= at.latest.is_some_and(|prev| time < prev);
        at.latest = at.latest.max(Some(time));
    }

    for (key, value) in &write.state_changes {
        ops.push((cat(STATE, key), value.clone()));
    }
    if height == 1 {
        // A new store is written with every index from its first block.
        ops.push((INDEX_VERSION.to_vec(), Some(INDEXES.to_be_bytes().to_vec())));
    }
    at.tip = height;
    at.count = end;
    Ok(())
}

/// One audit index (or the decisions themselves) read in log order, a chunk at a time.
struct Source {
    prefix: Vec<u8>,
    /// The first key not read yet.
    next: Vec<u8>,
    end: Vec<u8>,
    /// Rows the next read fetches; doubles after each read up to `max_chunk`.
    chunk: usize,
    max_chunk: usize,
    buf: VecDeque<(u64, Vec<u8>)>,
    done: bool,
}

impl Source {
    fn new(prefix: Vec<u8>, start: u64, chunk: usize, max_chunk: usize) -> Self {
        let next = cat(&prefix, &start.to_be_bytes());
        let end = prefix_end(&prefix);
        Source {
            prefix,
            next,
            end,
            chunk,
            max_chunk,
            buf: VecDeque::new(),
            done: false,
        }
    }

    /// The log index of the next row, reading a chunk when the buffer is empty.
    fn peek<B: Backend>(&mut self, backend: &B) -> Result<Option<u64>> {
        if self.buf.is_empty() && !self.done {
            let rows = backend.scan(&self.next, &self.end, self.chunk)?;
            self.done = rows.len() < self.chunk;
            self.chunk = self.chunk.saturating_mul(2).min(self.max_chunk);
            if let Some((last, _)) = rows.last() {
                // The smallest key after `last`.
                self.next = cat(last, &[0]);
            }
            for (key, value) in rows {
                self.buf
                    .push_back((index_suffix(&self.prefix, &key)?, value));
            }
        }
        Ok(self.buf.front().map(|(index, _)| *index))
    }
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out
}

fn cat3(a: &[u8], b: &[u8], c: &[u8]) -> Vec<u8> {
    let mut out = cat(a, b);
    out.extend_from_slice(c);
    out
}

/// The purpose index prefix; the length byte keeps one code from being a prefix of another.
fn purpose_prefix(purpose: Purpose) -> Vec<u8> {
    let code = purpose.code().as_bytes();
    // Codes are at most 64 bytes, so the length fits in a byte.
    cat3(BY_PURPOSE, &[code.len() as u8], code)
}

/// A timestamp whose big-endian bytes sort in time order.
fn time_bytes(time: Timestamp) -> [u8; 8] {
    ((time.0 as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`time_bytes`].
fn time_from_bytes(bytes: [u8; 8]) -> Timestamp {
    Timestamp((u64::from_be_bytes(bytes) ^ (1 << 63)) as i64)
}

/// The smallest key after every key that starts with `prefix`. Prefixes start with an ASCII
/// family byte, so there is always a byte below 0xff to increment.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// The log index at the end of a `prefix ‖ index` key.
fn index_suffix(prefix: &[u8], key: &[u8]) -> Result<u64> {
    key.strip_prefix(prefix)
        .and_then(|rest| <[u8; 8]>::try_from(rest).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| corrupt(key, "malformed index key"))
}

fn be_u64(key: &[u8], value: &[u8]) -> Result<u64> {
    <[u8; 8]>::try_from(value)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupt(key, format!("expected 8 bytes, got {}", value.len())))
}

fn encode_versioned<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let body = postcard::to_stdvec(value).map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok(cat(&[VALUE_VERSION], &body))
}

fn decode_versioned<T: for<'de> Deserialize<'de>>(key: &[u8], value: &[u8]) -> Result<T> {
    match value.split_first() {
        Some((&VALUE_VERSION, body)) => postcard::from_bytes(body).map_err(|e| corrupt(key, e)),
        _ => Err(corrupt(key, "unknown encoding version")),
    }
}

fn decode_header(height: u64, meta: &BlockMeta) -> Result<(BlockHeader, CommitCertificate)> {
    let key = cat(BLOCK, &height.to_be_bytes());
    let header = pb::BlockHeader::decode(meta.header.as_slice()).map_err(|e| corrupt(&key, e))?;
    let header = BlockHeader::try_from(&header).map_err(|e| corrupt(&key, e))?;
    let cert =
        pb::CommitCertificate::decode(meta.certificate.as_slice()).map_err(|e| corrupt(&key, e))?;
    let cert = CommitCertificate::try_from(&cert).map_err(|e| corrupt(&key, e))?;
    Ok((header, cert))
}

fn corrupt(key: &[u8], reason: impl ToString) -> StoreError {
    StoreError::Corrupt {
        key: describe(key),
        reason: reason.to_string(),
    }
}

/// A key for error messages: its family, then the rest in hex (`m` keys are all text).
fn describe(key: &[u8]) -> String {
    let family = match key.first() {
        Some(b'm') => key.len(),
        Some(b'i') => 2.min(key.len()),
        _ => 1.min(key.len()),
    };
    let rest: String = key[family..].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}/{rest}", String::from_utf8_lossy(&key[..family]))
}
