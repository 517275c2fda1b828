//! The ledger core: the state machine, the Merkle log and the store, behind one lock.
//!
//! Consensus (see [`crate::consensus`]) decides which transactions form the next block and
//! certifies its header; the core executes blocks deterministically and commits them durably.

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

/// A block executed on the state but not yet certified.
pub struct ProposedBlock {
    /// Its header (the certificate signs its hash).
    pub header: BlockHeader,
    /// The transactions it holds.
    pub transactions: Vec<SignedTransaction>,
    write: BlockWrite,
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

/// The ledger core of one node.
pub struct LedgerCore {
    genesis: Genesis,
    validators: ValidatorSet,
    store: Arc<dyn LedgerStore>,
    inner: Mutex<Inner>,
    events: broadcast::Sender<BlockEvent>,
}

impl LedgerCore {
    /// Opens the core over `store`: from genesis when the store is empty, else from the stored
    /// state and log, checking that both still match the tip header's roots.
    pub fn open(genesis: Genesis, store: Arc<dyn LedgerStore>) -> anyhow::Result<Self> {
        genesis
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid genesis: {e}"))?;
        let validators = ValidatorSet::new(
            genesis
                .validators
                .iter()
                .map(|v| Validator {
                    key: v.public_key.0,
                    power: v.power,
                })
                .collect(),
        )?;
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
            validators,
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

    /// The validator set.
    pub fn validators(&self) -> &ValidatorSet {
        &self.validators
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

    /// Executes `candidates` as the next block at `time`, dropping those the state refuses.
    /// The state stays changed until [`LedgerCore::commit`] or [`LedgerCore::abort`].
    pub fn propose(
        &self,
        candidates: Vec<SignedTransaction>,
        time: Timestamp,
        proposer: PublicKey,
    ) -> (ProposedBlock, Vec<(TxId, TxError)>) {
        let mut inner = self.lock();
        let ctx = next_context(inner.tip.as_ref(), time, &self.genesis);
        let first_entry = inner.tree.len();
        let mut accepted = Vec::new();
        let mut rejected = Vec::new();
        let mut entries = Vec::new();
        let mut leaf_hashes = Vec::new();
        let mut transactions = Vec::new();
        let mut decisions = Vec::new();
        let mut releases = Vec::new();
        for tx in candidates {
            match inner.machine.apply_tx(&tx, ctx) {
                Ok(new_entries) => {
                    for kind in new_entries {
                        let index = first_entry + entries.len() as u64;
                        match &kind {
                            EntryKind::Transaction(t) => {
                                transactions.push((t.id(), index));
                                if let TxKind::ConfirmRelease(c) = &t.body().kind {
                                    releases.push((c.request_id, index));
                                }
                            }
                            EntryKind::Decision(d) => decisions.push((index, d.clone())),
                        }
                        let bytes = LedgerEntry {
                            height: ctx.height,
                            kind,
                        }
                        .to_bytes();
                        let leaf = custos_ledger::merkle::leaf_hash(&bytes);
                        inner.tree.push(leaf);
                        leaf_hashes.push(leaf);
                        entries.push(bytes);
                    }
                    accepted.push(tx);
                }
                Err(e) => rejected.push((tx.id(), e)),
            }
        }
        let header = BlockHeader {
            chain_id: self.genesis.chain_id.to_string(),
            height: ctx.height.0,
            time_ms: ctx.time.0,
            prev_hash: inner.tip.as_ref().map_or(Hash::ZERO, |t| t.hash()),
            log_size: inner.tree.len(),
            log_root: inner.tree.root(),
            state_root: inner.machine.root(),
            tx_count: accepted.len() as u32,
            proposer,
            next_validators_hash: self.validators.hash(),
        };
        let placeholder = CommitCertificate {
            height: header.height,
            round: 0,
            header_hash: header.hash(),
            signatures: vec![],
        };
        let write = BlockWrite {
            block: StoredBlock {
                header: header.clone(),
                certificate: placeholder,
                first_entry,
                entries,
            },
            leaf_hashes,
            state_changes: vec![],
            transactions,
            decisions,
            releases,
        };
        (
            ProposedBlock {
                header,
                transactions: accepted,
                write,
            },
            rejected,
        )
    }

    /// Undoes a proposal that will not be committed.
    pub fn abort(&self, proposed: ProposedBlock) {
        let mut inner = self.lock();
        inner.machine.rollback();
        inner.tree.truncate(proposed.write.block.first_entry);
    }

    /// Commits a proposed block with its certificate, durably, then announces it.
    pub fn commit(
        &self,
        proposed: ProposedBlock,
        certificate: CommitCertificate,
    ) -> anyhow::Result<()> {
        let mut inner = self.lock();
        if let Err(e) = certificate.verify(&proposed.header, &self.validators) {
            inner.machine.rollback();
            inner.tree.truncate(proposed.write.block.first_entry);
            return Err(e.into());
        }
        let mut write = proposed.write;
        write.block.certificate = certificate;
        let mut changes = if write.block.header.height == 1 {
            inner.genesis_items.clone()
        } else {
            Vec::new()
        };
        changes.extend(inner.machine.take_changes());
        write.state_changes = changes;
        let transactions = write.transactions.clone();
        let first_entry = write.block.first_entry;
        if let Err(e) = self.store.commit_block(write) {
            // Nothing was written: return to the last committed state.
            inner.machine.rollback();
            inner.tree.truncate(first_entry);
            return Err(e.into());
        }
        inner.tip = Some(proposed.header.clone());
        inner.genesis_items.clear();
        drop(inner);
        let _ = self.events.send(BlockEvent {
            header: proposed.header,
            transactions,
        });
        Ok(())
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

fn next_context(tip: Option<&BlockHeader>, now: Timestamp, genesis: &Genesis) -> BlockContext {
    let height = tip.map_or(1, |t| t.height + 1);
    // Block time never goes backwards, whatever the proposer's clock says.
    let floor = tip.map_or(genesis.genesis_time_ms, |t| t.time_ms);
    BlockContext {
        height: Height(height),
        time: Timestamp(now.0.max(floor)),
    }
}
