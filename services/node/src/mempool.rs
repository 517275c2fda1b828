//! Pending transactions, admitted after their signature and state checks, in arrival order.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use custos_types::{PartyId, SignedTransaction, TxId};
use tokio::sync::{Notify, oneshot};

use crate::core::TxOutcome;

/// Why the mempool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// The same transaction is already pending.
    #[error("transaction {0} is already pending")]
    Duplicate(TxId),
    /// The mempool is full.
    #[error("mempool is full ({0} transactions); retry later")]
    Full(usize),
    /// The nonce is not the author's next pending nonce.
    #[error(
        "nonce {got} is not the next nonce {expected} for this author (pending transactions included)"
    )]
    Nonce {
        /// The next nonce counting pending transactions.
        expected: u64,
        /// The nonce given.
        got: u64,
    },
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<SignedTransaction>,
    ids: BTreeMap<TxId, ()>,
    // Next nonce of each author counting pending transactions.
    next_nonce: BTreeMap<PartyId, u64>,
    waiters: BTreeMap<TxId, Vec<oneshot::Sender<TxOutcome>>>,
}

/// The pending transactions of one node.
pub struct Mempool {
    inner: Mutex<Inner>,
    capacity: usize,
    notify: Notify,
}

impl Mempool {
    /// An empty mempool holding at most `capacity` transactions.
    pub fn new(capacity: usize) -> Self {
        Mempool {
            inner: Mutex::new(Inner::default()),
            capacity,
            notify: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The next nonce `author` must use, given its committed next nonce.
    pub fn expected_nonce(&self, author: &PartyId, committed: u64) -> u64 {
        self.lock()
            .next_nonce
            .get(author)
            .copied()
            .unwrap_or(committed)
            .max(committed)
    }

    /// Admits a transaction whose nonce follows `committed` and the author's pending ones.
    pub fn insert(&self, tx: SignedTransaction, committed: u64) -> Result<(), MempoolError> {
        let mut inner = self.lock();
        let id = tx.id();
        if inner.ids.contains_key(&id) {
            return Err(MempoolError::Duplicate(id));
        }
        if inner.queue.len() >= self.capacity {
            return Err(MempoolError::Full(self.capacity));
        }
        let author = tx.author();
        let expected = inner
            .next_nonce
            .get(&author)
            .copied()
            .unwrap_or(committed)
            .max(committed);
        let got = tx.body().nonce.0;
        if got != expected {
            return Err(MempoolError::Nonce { expected, got });
        }
        inner.next_nonce.insert(author, expected + 1);
        inner.ids.insert(id, ());
        inner.queue.push_back(tx);
        drop(inner);
        self.notify.notify_one();
        Ok(())
    }

    /// Registers interest in a transaction's outcome.
    pub fn wait_for(&self, id: TxId) -> oneshot::Receiver<TxOutcome> {
        let (tx, rx) = oneshot::channel();
        self.lock().waiters.entry(id).or_default().push(tx);
        rx
    }

    /// Takes up to `max` transactions for the next block.
    pub fn take(&self, max: usize) -> Vec<SignedTransaction> {
        let mut inner = self.lock();
        let n = max.min(inner.queue.len());
        inner.queue.drain(..n).collect()
    }

    /// Reports the outcome of taken transactions and forgets them.
    pub fn resolve(&self, outcomes: Vec<(TxId, PartyId, TxOutcome)>) {
        let mut inner = self.lock();
        for (id, author, outcome) in outcomes {
            inner.ids.remove(&id);
            if matches!(outcome, TxOutcome::Rejected(_)) {
                // Later pending nonces of this author can no longer apply; the author resubmits.
                inner.next_nonce.remove(&author);
            }
            if let Some(waiters) = inner.waiters.remove(&id) {
                for w in waiters {
                    let _ = w.send(outcome.clone());
                }
            }
        }
        // Forget nonce tracking for authors with nothing pending.
        let pending: std::collections::BTreeSet<PartyId> =
            inner.queue.iter().map(|t| t.author()).collect();
        inner.next_nonce.retain(|a, _| pending.contains(a));
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until a transaction arrives (or a spurious wake-up).
    pub async fn arrived(&self) {
        self.notify.notified().await
    }
}
