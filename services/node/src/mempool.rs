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
        self.insert_waiting(tx, committed, false).map(|_| ())
    }

    /// Admits a transaction and, with `wait`, registers interest in its outcome in the same
    /// step: a refused transaction leaves no waiter behind, and an admitted one cannot be
    /// finalized before its waiter exists.
    pub fn insert_waiting(
        &self,
        tx: SignedTransaction,
        committed: u64,
        wait: bool,
    ) -> Result<Option<oneshot::Receiver<TxOutcome>>, MempoolError> {
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
        let waiter = wait.then(|| {
            let (sender, receiver) = oneshot::channel();
            inner.waiters.entry(id).or_default().push(sender);
            receiver
        });
        drop(inner);
        self.notify.notify_one();
        Ok(waiter)
    }

    /// Number of registered waiters (for tests and metrics).
    pub fn waiter_count(&self) -> usize {
        self.lock().waiters.values().map(Vec::len).sum()
    }

    /// Registers interest in a transaction's outcome.
    pub fn wait_for(&self, id: TxId) -> oneshot::Receiver<TxOutcome> {
        let (tx, rx) = oneshot::channel();
        self.lock().waiters.entry(id).or_default().push(tx);
        rx
    }

    /// The first `max` pending transactions, left in place until they are committed or refused
    /// (a proposal may fail to be decided, and then they wait for the next one).
    pub fn peek(&self, max: usize) -> Vec<SignedTransaction> {
        self.lock().queue.iter().take(max).cloned().collect()
    }

    /// Forgets transactions the state refused while building a block and tells their waiters.
    pub fn refused(&self, refused: Vec<(TxId, String)>) {
        if refused.is_empty() {
            return;
        }
        let mut inner = self.lock();
        let ids: BTreeMap<TxId, String> = refused.into_iter().collect();
        inner.queue.retain(|t| !ids.contains_key(&t.id()));
        for (id, reason) in ids {
            inner.ids.remove(&id);
            if let Some(waiters) = inner.waiters.remove(&id) {
                for w in waiters {
                    let _ = w.send(TxOutcome::Rejected(reason.clone()));
                }
            }
        }
        Self::recount(&mut inner);
    }

    /// After a block is committed: drops the transactions it holds (telling their waiters where
    /// they are) and those whose nonce the block used up, whoever proposed it.
    pub fn committed(
        &self,
        height: u64,
        located: &[(TxId, u64)],
        next_nonce: impl Fn(&PartyId) -> u64,
    ) {
        let mut inner = self.lock();
        for (id, index) in located {
            inner.ids.remove(id);
            if let Some(waiters) = inner.waiters.remove(id) {
                for w in waiters {
                    let _ = w.send(TxOutcome::Finalized {
                        height,
                        index: *index,
                    });
                }
            }
        }
        let included: BTreeMap<TxId, ()> = located.iter().map(|(id, _)| (*id, ())).collect();
        let mut stale = Vec::new();
        inner.queue.retain(|t| {
            if included.contains_key(&t.id()) {
                return false;
            }
            if t.body().nonce.0 < next_nonce(&t.author()) {
                stale.push(t.id());
                return false;
            }
            true
        });
        for id in stale {
            inner.ids.remove(&id);
            if let Some(waiters) = inner.waiters.remove(&id) {
                for w in waiters {
                    let _ = w.send(TxOutcome::Rejected(
                        "its nonce was used by another transaction".into(),
                    ));
                }
            }
        }
        Self::recount(&mut inner);
    }

    // Pending-nonce tracking follows the queue: each author's next nonce is one past its last
    // queued transaction.
    fn recount(inner: &mut Inner) {
        let mut next = BTreeMap::new();
        for t in &inner.queue {
            next.insert(t.author(), t.body().nonce.0 + 1);
        }
        inner.next_nonce = next;
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

#[cfg(test)]
mod tests {
    use custos_crypto::{SecretKey, SigningKeyPair};
    use custos_types::model::Organisation;
    use custos_types::tx::RegisterParty;
    use custos_types::{ChainId, Nonce, PartyId, Role, TransactionBody, TxKind};

    use super::*;

    fn tx(seed: u8, nonce: u64) -> SignedTransaction {
        let key = SigningKeyPair::from_secret(&SecretKey::from_slice(&[seed; 32]).expect("seed"));
        let body = TransactionBody {
            chain_id: ChainId::parse("custos-test").expect("chain"),
            nonce: Nonce(nonce),
            kind: TxKind::RegisterParty(RegisterParty {
                party: PartyId(key.public()),
                role: Role::Patient,
                encryption_key: [0; 32],
                organisation: Organisation::default(),
            }),
        };
        SignedTransaction::sign(&body, &key)
    }

    #[test]
    fn a_refused_submission_leaves_no_waiter_behind() {
        let pool = Mempool::new(1);
        assert!(
            pool.insert_waiting(tx(1, 5), 0, true).is_err(),
            "wrong nonce"
        );
        assert_eq!(pool.waiter_count(), 0);
        assert!(
            pool.insert_waiting(tx(1, 0), 0, true)
                .expect("admitted")
                .is_some()
        );
        assert!(matches!(
            pool.insert_waiting(tx(2, 0), 0, true),
            Err(MempoolError::Full(1))
        ));
        assert_eq!(pool.waiter_count(), 1);
    }

    #[test]
    fn a_committed_block_resolves_waiters_and_drops_stale_nonces() {
        let pool = Mempool::new(10);
        let first = tx(1, 0);
        let mut waiter = pool
            .insert_waiting(first.clone(), 0, true)
            .expect("admitted")
            .expect("waiter");
        let mut stale = pool
            .insert_waiting(tx(2, 0), 0, true)
            .expect("admitted")
            .expect("waiter");
        // Another proposer's block held `first` and used author 2's nonce 0 for something else.
        pool.committed(3, &[(first.id(), 7)], |_| 1);
        assert!(matches!(
            waiter.try_recv(),
            Ok(TxOutcome::Finalized {
                height: 3,
                index: 7
            })
        ));
        assert!(matches!(stale.try_recv(), Ok(TxOutcome::Rejected(_))));
        assert!(pool.is_empty());
        assert_eq!(pool.waiter_count(), 0);
    }
}
