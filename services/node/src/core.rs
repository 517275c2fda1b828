//! The ledger core: the state machine, the Merkle log and the store, behind one lock.
//!
//! Consensus (see [`crate::consensus`]) decides which transactions form the next block and
//! certifies its header; the core executes blocks deterministically and commits them durably.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, bail};
use custos_consent::{BlockContext, StateMachine, TxError};
use custos_crypto::{Hash, PublicKey};
use custos_ledger::{BlockHeader, CommitCertificate, MerkleTree, Validator, ValidatorSet};
use custos_storage::{BlockWrite, LedgerStore, StoredBlock};
use custos_types::{
    EntryKind, Genesis, Height, LedgerEntry, RequestId, SignedTransaction, Timestamp, TxId, TxKind,
};
use tokio::sync::broadcast;

/// A block as proposed and decided: the header its execution yields and its transactions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    /// The header; consensus agrees on its hash.
    pub header: BlockHeader,
    /// The transactions, in order.
    pub transactions: Vec<SignedTransaction>,
}

/// Most transactions a block may hold when decoded from the network.
pub const MAX_BLOCK_TXS: usize = 10_000;

impl Block {
    /// The serialized `custos.ledger.v1.ProposedBlock`.
    pub fn to_bytes(&self) -> Vec<u8> {
        use prost::Message;
        custos_proto::ledger::v1::ProposedBlock {
            version: 1,
            header: Some(self.header.to_wire()),
            transactions: self.transactions.iter().map(|t| t.to_wire()).collect(),
        }
        .encode_to_vec()
    }

    /// Decodes a block from the network: bounded, every signature checked.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BlockError> {
        use prost::Message;
        let wire = custos_proto::ledger::v1::ProposedBlock::decode(bytes)
            .map_err(|e| BlockError(format!("not a ProposedBlock: {e}")))?;
        if wire.version != 1 {
            return Err(BlockError(format!(
                "unknown block version {}",
                wire.version
            )));
        }
        if wire.transactions.len() > MAX_BLOCK_TXS {
            return Err(BlockError(format!(
                "{} transactions; at most {MAX_BLOCK_TXS}",
                wire.transactions.len()
            )));
        }
        let header = BlockHeader::try_from(
            wire.header
                .as_ref()
                .ok_or_else(|| BlockError("block has no header".into()))?,
        )
        .map_err(|e| BlockError(e.to_string()))?;
        let transactions = wire
            .transactions
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                SignedTransaction::from_wire(t)
                    .map_err(|e| BlockError(format!("transactions[{i}]: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if header.tx_count as usize != transactions.len() {
            return Err(BlockError(
                "tx_count does not match the transactions".into(),
            ));
        }
        Ok(Block {
            header,
            transactions,
        })
    }
}

/// Why a proposed or decided block is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid block: {0}")]
pub struct BlockError(pub String);

struct Executed {
    write: BlockWrite,
    accepted: Vec<SignedTransaction>,
    rejected: Vec<(TxId, TxError)>,
}

/// What became of one transaction.
#[derive(Clone, Debug)]
pub enum TxOutcome {
    /// In a finalized block at `height`, leaf `index`.
    Finalized {
        /// Block height.
        height: u64,
        /// Log index of the transaction's entry.
        index: u64,
    },
    /// Refused when the block was built.
    Rejected(String),
}

/// Announced after each committed block.
#[derive(Clone, Debug)]
pub struct BlockEvent {
    /// The block's header.
    pub header: BlockHeader,
    /// Each transaction's id and log index.
    pub transactions: Vec<(TxId, u64)>,
}

struct Inner {
    machine: StateMachine,
    // Genesis state items, persisted with the first block (the store holds only blocks).
    genesis_items: Vec<custos_consent::StateChange>,
    tree: MerkleTree,
    tip: Option<BlockHeader>,
}

impl Inner {
    /// Returns the state and tree to the last committed block.
    fn undo(&mut self, first_entry: u64) {
        self.machine.rollback();
        self.tree.truncate(first_entry);
    }
}

/// A finalized block's header with the certificate that finalized it and the validator set
/// that signed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedHeader {
    /// The header.
    pub header: BlockHeader,
    /// Its commit certificate.
    pub certificate: CommitCertificate,
    /// The set that signed it.
    pub validators: ValidatorSet,
}

/// Most certified headers kept decoded: about 1 KB each with four validators.
const HEADER_CACHE: usize = 4096;

/// A bounded map from height to value that evicts the least recently used entry.
struct Lru<V> {
    capacity: usize,
    clock: u64,
    /// Each height's value and when it was last used.
    items: BTreeMap<u64, (V, u64)>,
    /// Heights by last use, oldest first.
    uses: BTreeMap<u64, u64>,
}

impl<V: Clone> Lru<V> {
    fn new(capacity: usize) -> Self {
        Lru {
            capacity: capacity.max(1),
            clock: 0,
            items: BTreeMap::new(),
            uses: BTreeMap::new(),
        }
    }

    fn get(&mut self, key: u64) -> Option<V> {
        let (value, used) = self.items.get_mut(&key)?;
        self.uses.remove(used);
        self.clock += 1;
        *used = self.clock;
        self.uses.insert(self.clock, key);
        Some(value.clone())
    }

    fn insert(&mut self, key: u64, value: V) {
        if let Some((_, used)) = self.items.remove(&key) {
            self.uses.remove(&used);
        } else if self.items.len() >= self.capacity
            && let Some((_, oldest)) = self.uses.pop_first()
        {
            self.items.remove(&oldest);
        }
        self.clock += 1;
        self.items.insert(key, (value, self.clock));
        self.uses.insert(self.clock, key);
    }
}

/// The ledger core of one node.
pub struct LedgerCore {
    genesis: Genesis,
    store: Arc<dyn LedgerStore>,
    inner: Mutex<Inner>,
    events: broadcast::Sender<BlockEvent>,
    /// Certified headers by height, decoded once: a finalized header, its certificate and its
    /// signers never change.
    headers: Mutex<Lru<Arc<CertifiedHeader>>>,
}

impl LedgerCore {
    /// Opens the core over `store`: from genesis when the store is empty, else from the stored
    /// state and log, checking that both still match the tip header's roots.
    pub fn open(genesis: Genesis, store: Arc<dyn LedgerStore>) -> anyhow::Result<Self> {
        genesis
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid genesis: {e}"))?;

        let tip_height = store.tip()?;
        let (machine, tree, tip) = if tip_height == 0 {
            let machine = StateMachine::genesis(&genesis)
                .map_err(|e| anyhow::anyhow!("invalid genesis: {e}"))?;
            (machine, MerkleTree::new(), None)
        } else {
            let items = store.state_items()?;
            let mut machine = StateMachine::from_items(
                genesis.chain_id.clone(),
                items.iter().map(|(k, v)| (k.as_slice(), v.as_slice())),
            )?;
            let _ = machine.take_changes();
            let mut tree = MerkleTree::new();
            for leaf in store.leaf_hashes()? {
                tree.push(leaf);
            }
            let (tip, _) = store
                .header(tip_height)?
                .with_context(|| format!("stored tip {tip_height} has no header"))?;
            if tree.len() != tip.log_size || tree.root() != tip.log_root {
                bail!(
                    "stored log ({} entries, root {}) does not match header {} ({} entries, root {})",
                    tree.len(),
                    tree.root().short(),
                    tip.height,
                    tip.log_size,
                    tip.log_root.short()
                );
            }
            if machine.root() != tip.state_root {
                bail!(
                    "stored state root {} does not match header {} state root {}",
                    machine.root().short(),
                    tip.height,
                    tip.state_root.short()
                );
            }
            (machine, tree, Some(tip))
        };
        let (events, _) = broadcast::channel(1024);
        Ok(LedgerCore {
            genesis,
            store,
            inner: Mutex::new(Inner {
                genesis_items: if tip.is_none() {
                    machine
                        .items()
                        .into_iter()
                        .map(|(k, v)| (k, Some(v)))
                        .collect()
                } else {
                    Vec::new()
                },
                machine,
                tree,
                tip,
            }),
            events,
            headers: Mutex::new(Lru::new(HEADER_CACHE)),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the state in an unknown place; stop serving.
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The genesis.
    pub fn genesis(&self) -> &Genesis {
        &self.genesis
    }

    /// The validator set that signs the next block (pending governance changes due then
    /// applied).
    pub fn validators(&self) -> ValidatorSet {
        let inner = self.lock();
        let height = inner.tip.as_ref().map_or(0, |t| t.height);
        to_set(&inner.machine.next_validators(Height(height)))
    }

    /// The validator set that signs `height` (the genesis set, then as governance changed it).
    pub fn validators_at(&self, height: u64) -> ValidatorSet {
        let entries = self.lock().machine.validators_at(Height(height));
        to_set(&entries)
    }

    /// The finalized header at `height` with its certificate and validator set; `None` above
    /// the stored tip.
    pub fn certified_header(
        &self,
        height: u64,
    ) -> Result<Option<Arc<CertifiedHeader>>, custos_storage::StoreError> {
        // A poisoned cache holds nothing half-written (every update is one insert); keep using it.
        let cached = self
            .headers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(height);
        if let Some(hit) = cached {
            return Ok(Some(hit));
        }
        let Some((header, certificate)) = self.store.header(height)? else {
            return Ok(None);
        };
        let certified = Arc::new(CertifiedHeader {
            header,
            certificate,
            validators: self.validators_at(height),
        });
        self.headers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(height, certified.clone());
        Ok(Some(certified))
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn LedgerStore> {
        &self.store
    }

    /// Subscribes to committed blocks.
    pub fn subscribe(&self) -> broadcast::Receiver<BlockEvent> {
        self.events.subscribe()
    }

    /// The latest committed header.
    pub fn tip(&self) -> Option<BlockHeader> {
        self.lock().tip.clone()
    }

    /// Runs `f` on the current state.
    pub fn with_state<T>(&self, f: impl FnOnce(&StateMachine) -> T) -> T {
        f(&self.lock().machine)
    }

    /// Runs `f` on the current log tree.
    pub fn with_tree<T>(&self, f: impl FnOnce(&MerkleTree) -> T) -> T {
        f(&self.lock().tree)
    }

    /// Checks a transaction against the current state as if it were in the next block.
    pub fn check_tx(&self, tx: &SignedTransaction) -> Result<(), TxError> {
        let inner = self.lock();
        let ctx = next_context(inner.tip.as_ref(), Timestamp::now(), &self.genesis);
        inner.machine.check_tx(tx, ctx)
    }

    /// Executes `txs` on the state as the next block; refused transactions are dropped and
    /// reported. The state and tree stay changed: the caller commits or [`Inner::undo`]es.
    fn execute(
        &self,
        inner: &mut Inner,
        txs: Vec<SignedTransaction>,
        ctx: BlockContext,
        proposer: PublicKey,
    ) -> Executed {
        let first_entry = inner.tree.len();
        inner.machine.begin_block(ctx);
        let mut accepted = Vec::new();
        let mut rejected = Vec::new();
        let mut write = BlockWrite {
            block: StoredBlock {
                header: BlockHeader {
                    chain_id: String::new(),
                    height: 0,
                    time_ms: 0,
                    prev_hash: Hash::ZERO,
                    log_size: 0,
                    log_root: Hash::ZERO,
                    state_root: Hash::ZERO,
                    tx_count: 0,
                    proposer,
                    next_validators_hash: Hash::ZERO,
                },
                certificate: CommitCertificate {
                    height: 0,
                    round: 0,
                    header_hash: Hash::ZERO,
                    signatures: vec![],
                },
                first_entry,
                entries: vec![],
            },
            leaf_hashes: vec![],
            state_changes: vec![],
            transactions: vec![],
            decisions: vec![],
            releases: vec![],
        };
        for tx in txs {
            match inner.machine.apply_tx(&tx, ctx) {
                Ok(new_entries) => {
                    for kind in new_entries {
                        let index = first_entry + write.block.entries.len() as u64;
                        match &kind {
                            EntryKind::Transaction(t) => {
                                write.transactions.push((t.id(), index));
                                if let TxKind::ConfirmRelease(c) = &t.body().kind {
                                    write.releases.push((c.request_id, index));
                                }
                            }
                            EntryKind::Decision(d) => write.decisions.push((index, d.clone())),
                        }
                        let bytes = LedgerEntry {
                            height: ctx.height,
                            kind,
                        }
                        .to_bytes();
                        let leaf = custos_ledger::merkle::leaf_hash(&bytes);
                        inner.tree.push(leaf);
                        write.leaf_hashes.push(leaf);
                        write.block.entries.push(bytes);
                    }
                    accepted.push(tx);
                }
                Err(e) => rejected.push((tx.id(), e)),
            }
        }
        write.block.header = BlockHeader {
            chain_id: self.genesis.chain_id.to_string(),
            height: ctx.height.0,
            time_ms: ctx.time.0,
            prev_hash: inner.tip.as_ref().map_or(Hash::ZERO, |t| t.hash()),
            log_size: inner.tree.len(),
            log_root: inner.tree.root(),
            state_root: inner.machine.root(),
            tx_count: accepted.len() as u32,
            proposer,
            next_validators_hash: to_set(&inner.machine.next_validators(ctx.height)).hash(),
        };
        Executed {
            write,
            accepted,
            rejected,
        }
    }

    /// Builds the next block from `candidates` at `time`, dropping those the state refuses.
    /// Changes nothing: the block is committed later with [`LedgerCore::commit_block`].
    pub fn build_block(
        &self,
        candidates: Vec<SignedTransaction>,
        time: Timestamp,
        proposer: PublicKey,
    ) -> (Block, Vec<(TxId, TxError)>) {
        let mut inner = self.lock();
        let ctx = next_context(inner.tip.as_ref(), time, &self.genesis);
        let first_entry = inner.tree.len();
        let executed = self.execute(&mut inner, candidates, ctx, proposer);
        inner.undo(first_entry);
        let block = Block {
            header: executed.write.block.header,
            transactions: executed.accepted,
        };
        (block, executed.rejected)
    }

    /// Checks a block proposed by another validator: it extends the tip, every transaction
    /// applies, and the header is exactly what executing them yields. Changes nothing.
    pub fn validate_block(&self, block: &Block) -> Result<Hash, BlockError> {
        let mut inner = self.lock();
        let (executed, first_entry) = self.execute_strict(&mut inner, block)?;
        inner.undo(first_entry);
        Ok(executed.write.block.header.hash())
    }

    fn execute_strict(
        &self,
        inner: &mut Inner,
        block: &Block,
    ) -> Result<(Executed, u64), BlockError> {
        let h = &block.header;
        let expected_height = inner.tip.as_ref().map_or(1, |t| t.height + 1);
        if h.height != expected_height {
            return Err(BlockError(format!(
                "height {} does not follow the tip ({})",
                h.height,
                expected_height - 1
            )));
        }
        if h.chain_id != self.genesis.chain_id.as_str() {
            return Err(BlockError(format!("block is for chain `{}`", h.chain_id)));
        }
        let floor = inner
            .tip
            .as_ref()
            .map_or(self.genesis.genesis_time_ms, |t| t.time_ms);
        if h.time_ms < floor {
            return Err(BlockError(format!(
                "block time {} is before the previous block's {floor}",
                h.time_ms
            )));
        }
        if to_set(&inner.machine.next_validators(Height(h.height - 1)))
            .power_of(&h.proposer)
            .is_none()
        {
            return Err(BlockError(format!(
                "proposer {} is not a validator",
                h.proposer.short()
            )));
        }
        let ctx = BlockContext {
            height: Height(h.height),
            time: Timestamp(h.time_ms),
        };
        let first_entry = inner.tree.len();
        let executed = self.execute(inner, block.transactions.clone(), ctx, h.proposer);
        if let Some((id, e)) = executed.rejected.first() {
            inner.undo(first_entry);
            return Err(BlockError(format!(
                "transaction {} is invalid: {e}",
                id.short()
            )));
        }
        if executed.write.block.header != *h {
            inner.undo(first_entry);
            return Err(BlockError(format!(
                "header does not match execution (state root {} vs {}, log root {} vs {})",
                h.state_root.short(),
                executed.write.block.header.state_root.short(),
                h.log_root.short(),
                executed.write.block.header.log_root.short()
            )));
        }
        Ok((executed, first_entry))
    }

    /// Executes a decided block and commits it with its certificate, durably, then announces
    /// it. Returns each transaction's id and log index.
    pub fn commit_block(
        &self,
        block: &Block,
        certificate: CommitCertificate,
    ) -> anyhow::Result<Vec<(TxId, u64)>> {
        let mut inner = self.lock();
        let signers = to_set(
            &inner
                .machine
                .next_validators(Height(block.header.height.saturating_sub(1))),
        );
        certificate.verify(&block.header, &signers)?;
        let (executed, first_entry) = self
            .execute_strict(&mut inner, block)
            .map_err(|e| anyhow::anyhow!("decided block is invalid: {}", e.0))?;
        let mut write = executed.write;
        write.block.certificate = certificate;
        let mut changes = if block.header.height == 1 {
            inner.genesis_items.clone()
        } else {
            Vec::new()
        };
        changes.extend(inner.machine.take_changes());
        write.state_changes = changes;
        let transactions = write.transactions.clone();
        if let Err(e) = self.store.commit_block(write) {
            // Nothing was written: return to the last committed state.
            inner.undo(first_entry);
            return Err(e.into());
        }
        inner.tip = Some(block.header.clone());
        inner.genesis_items.clear();
        drop(inner);
        let _ = self.events.send(BlockEvent {
            header: block.header.clone(),
            transactions: transactions.clone(),
        });
        Ok(transactions)
    }

    /// The next nonce of an author as of the last committed block.
    pub fn next_nonce(&self, author: &custos_types::PartyId) -> u64 {
        self.lock().machine.next_nonce(author)
    }

    /// The log index of a request's decision.
    pub fn decision_index(&self, request: &RequestId) -> anyhow::Result<Option<u64>> {
        Ok(self.store.decision_index(request)?)
    }
}

/// The ledger's form of a validator set. The state never holds an empty or invalid set (genesis
/// is validated and governance keeps at least one validator), so a failure here is a bug.
fn to_set(entries: &[custos_consent::ValidatorEntry]) -> ValidatorSet {
    let validators = entries
        .iter()
        .map(|v| Validator {
            key: v.key,
            power: v.power,
        })
        .collect();
    match ValidatorSet::new(validators) {
        Ok(set) => set,
        Err(e) => panic!("the state holds an invalid validator set: {e}"),
    }
}

fn next_context(tip: Option<&BlockHeader>, now: Timestamp, genesis: &Genesis) -> BlockContext {
    let height = tip.map_or(1, |t| t.height + 1);
    // Block time never goes backwards, whatever the proposer's clock says.
    let floor = tip.map_or(genesis.genesis_time_ms, |t| t.time_ms);
    BlockContext {
        height: Height(height),
        time: Timestamp(now.0.max(floor)),
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn the_header_cache_evicts_the_least_recently_used_height() {
        let mut cache = Lru::new(2);
        cache.insert(1, "one");
        cache.insert(2, "two");
        assert_eq!(cache.get(1), Some("one"));
        cache.insert(3, "three");
        assert_eq!(cache.get(2), None, "2 was used least recently");
        assert_eq!((cache.get(1), cache.get(3)), (Some("one"), Some("three")));
        cache.insert(3, "three again");
        cache.insert(4, "four");
        assert_eq!(cache.get(1), None);
        assert_eq!(cache.get(3), Some("three again"));
        assert_eq!(cache.items.len(), 2);
        assert_eq!(cache.uses.len(), 2);
    }
}
