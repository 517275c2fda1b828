//! Pending transactions, admitted after their signature and state checks, in arrival order.
//!
//! Admission is bounded three ways, so that no author, and no crowd of new keys, can fill the
//! mempool (and through it the ledger) at everyone else's expense: the mempool's capacity, at
//! most [`Limits::per_author`] pending transactions of one author, and at most
//! [`Limits::registrations`] pending self-registrations of patients (anyone may make a key and
//! register it as a patient, so a flood comes from many authors at once). A block takes what is
//! pending, so these bound what one author, or the crowd of newcomers, writes per block. They are
//! each node's own settings (`max_pending_per_author`, `max_pending_registrations` in its TOML
//! file), not consensus parameters: every node protects its own mempool.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use custos_types::{PartyId, Role, SignedTransaction, TxId, TxKind};
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
    /// The author has as many pending transactions as one author may.
    #[error(
        "author {author} has {limit} pending transactions, the most one author may \
         (max_pending_per_author); retry once they are finalized"
    )]
    AuthorLimit {
        /// The author, shortened.
        author: String,
        /// The limit.
        limit: usize,
    },
    /// As many patient self-registrations are pending as the node admits.
    #[error(
        "{limit} patient registrations are pending, the most this node admits at once \
         (max_pending_registrations); retry later"
    )]
    RegistrationLimit {
        /// The limit.
        limit: usize,
    },
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

/// Per-author admission limits (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most pending transactions of one author.
    pub per_author: usize,
    /// Most pending self-registrations of patients.
    pub registrations: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            per_author: 64,
            registrations: 256,
        }
    }
}

/// Whether `tx` is a party registering itself as a patient (no co-signature needed).
fn is_patient_registration(tx: &SignedTransaction) -> bool {
    matches!(&tx.body().kind, TxKind::RegisterParty(p) if p.role == Role::Patient)
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<SignedTransaction>,
    ids: BTreeMap<TxId, ()>,
    // Next nonce of each author counting pending transactions.
    next_nonce: BTreeMap<PartyId, u64>,
    waiters: BTreeMap<TxId, Vec<oneshot::Sender<TxOutcome>>>,
    // Pending patient self-registrations.
    registrations: usize,
}

/// The pending transactions of one node.
pub struct Mempool {
    inner: Mutex<Inner>,
    capacity: usize,
    limits: Limits,
    notify: Notify,
}

impl Mempool {
    /// An empty mempool holding at most `capacity` transactions, with the default [`Limits`].
    pub fn new(capacity: usize) -> Self {
        Self::with_limits(capacity, Limits::default())
    }

    /// An empty mempool holding at most `capacity` transactions, within `limits`.
    pub fn with_limits(capacity: usize, limits: Limits) -> Self {
        Mempool {
            inner: Mutex::new(Inner::default()),
            capacity,
            limits,
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
        // Nonces are consecutive: the author's pending transactions are those from `committed`.
        if expected.saturating_sub(committed) >= self.limits.per_author as u64 {
            return Err(MempoolError::AuthorLimit {
                author: author.short(),
                limit: self.limits.per_author,
            });
        }
        let registration = is_patient_registration(&tx);
        if registration && inner.registrations >= self.limits.registrations {
            return Err(MempoolError::RegistrationLimit {
                limit: self.limits.registrations,
            });
        }
        inner.registrations += usize::from(registration);
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
        inner.registrations = inner
            .queue
            .iter()
            .filter(|t| is_patient_registration(t))
            .count();
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
        tx_as(seed, nonce, Role::Patient)
    }

    fn tx_as(seed: u8, nonce: u64, role: Role) -> SignedTransaction {
        let key = SigningKeyPair::from_secret(&SecretKey::from_slice(&[seed; 32]).expect("seed"));
        let body = TransactionBody {
            chain_id: ChainId::parse("custos-test").expect("chain"),
            nonce: Nonce(nonce),
            kind: TxKind::RegisterParty(RegisterParty {
                party: PartyId(key.public()),
                role,
                encryption_key: [0; 32],
                organisation: Organisation::default(),
            }),
        };
        SignedTransaction::sign(&body, &key)
    }

    #[test]
    fn one_author_is_refused_past_its_pending_limit_and_others_are_not() {
        let pool = Mempool::with_limits(
            100,
            Limits {
                per_author: 3,
                registrations: 100,
            },
        );
        // Author 1 has committed nonces up to 5; three pending after that are its limit.
        for nonce in 5..8 {
            pool.insert(tx_as(1, nonce, Role::Partner), 5)
                .expect("within the limit");
        }
        let e = pool
            .insert(tx_as(1, 8, Role::Partner), 5)
            .expect_err("past the limit");
        assert!(
            matches!(e, MempoolError::AuthorLimit { limit: 3, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("max_pending_per_author"));
        pool.insert(tx_as(2, 0, Role::Partner), 0)
            .expect("another author is unaffected");
        // Once the block takes them, the author may go on.
        let first: Vec<(TxId, u64)> = pool.peek(3).iter().map(|t| (t.id(), 0)).collect();
        pool.committed(1, &first, |_| 8);
        pool.insert(tx_as(1, 8, Role::Partner), 8)
            .expect("room again");
    }

    #[test]
    fn a_crowd_of_new_patients_is_refused_past_the_registration_limit() {
        let pool = Mempool::with_limits(
            100,
            Limits {
                per_author: 10,
                registrations: 2,
            },
        );
        pool.insert(tx(1, 0), 0).expect("first");
        pool.insert(tx(2, 0), 0).expect("second");
        let e = pool.insert(tx(3, 0), 0).expect_err("a third newcomer");
        assert_eq!(e, MempoolError::RegistrationLimit { limit: 2 });
        assert!(e.to_string().contains("max_pending_registrations"));
        // Other kinds of transaction are not registrations.
        pool.insert(tx_as(4, 0, Role::Custodian), 0)
            .expect("not a patient registration");
        pool.refused(vec![(tx(1, 0).id(), "refused".into())]);
        pool.insert(tx(3, 0), 0).expect("room again");
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
