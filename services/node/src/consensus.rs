//! How blocks are ordered and certified. [`Consensus`] is the seam the BFT network plugs into;
//! [`SoloValidator`] is the one-validator implementation used until then.

use std::sync::Arc;
use std::time::Duration;

use custos_crypto::SigningKeyPair;
use custos_ledger::CommitCertificate;
use custos_types::Timestamp;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::core::LedgerCore;
use crate::mempool::Mempool;

/// Orders pending transactions into blocks and hands each certified block to the core.
pub trait Consensus: Send + 'static {
    /// Runs until `shutdown` turns true.
    fn run(
        self,
        core: Arc<LedgerCore>,
        mempool: Arc<Mempool>,
        shutdown: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

/// A consortium of one validator: it proposes, signs and commits every block itself.
pub struct SoloValidator {
    key: SigningKeyPair,
    block_interval: Duration,
    max_block_txs: usize,
}

impl SoloValidator {
    /// A solo validator signing with `key`, producing a block at most every `block_interval`
    /// when transactions are pending.
    pub fn new(key: SigningKeyPair, block_interval: Duration, max_block_txs: usize) -> Self {
        SoloValidator {
            key,
            block_interval,
            max_block_txs,
        }
    }

    fn produce(&self, core: &LedgerCore, mempool: &Mempool) -> anyhow::Result<()> {
        let candidates = mempool.peek(self.max_block_txs);
        if candidates.is_empty() {
            return Ok(());
        }
        let (block, refused) = core.build_block(candidates, Timestamp::now(), self.key.public());
        report_refused(mempool, block.header.height, refused);
        if block.transactions.is_empty() {
            return Ok(());
        }
        let certificate = CommitCertificate::sign(&block.header, 0, &[&self.key]);
        let located = core.commit_block(&block, certificate)?;
        after_commit(core, mempool, block.header.height, &located);
        Ok(())
    }
}

/// Drops the transactions the state refused while a block was built, with their reasons.
pub fn report_refused(
    mempool: &Mempool,
    height: u64,
    refused: Vec<(custos_types::TxId, custos_consent::TxError)>,
) {
    for (id, e) in &refused {
        warn!(target: "custos::rejected", tx = %id.short(), reason = %e, "transaction refused building block {height}");
    }
    mempool.refused(
        refused
            .into_iter()
            .map(|(id, e)| (id, e.to_string()))
            .collect(),
    );
}

/// What every node does once a block is committed, whoever proposed it.
pub fn after_commit(
    core: &LedgerCore,
    mempool: &Mempool,
    height: u64,
    located: &[(custos_types::TxId, u64)],
) {
    mempool.committed(height, located, |p| core.next_nonce(p));
    info!(target: "custos::consensus", height, txs = located.len(), "block finalized");
}

impl Consensus for SoloValidator {
    async fn run(
        self,
        core: Arc<LedgerCore>,
        mempool: Arc<Mempool>,
        mut shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        loop {
            if *shutdown.borrow() {
                return Ok(());
            }
            if mempool.is_empty() {
                tokio::select! {
                    _ = mempool.arrived() => {}
                    _ = shutdown.changed() => continue,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            // Gather a batch for one interval, then produce.
            tokio::time::sleep(self.block_interval).await;
            let core2 = core.clone();
            let mempool2 = mempool.clone();
            let this = &self;
            // Block execution and the durable commit run off the async workers.
            tokio::task::block_in_place(|| this.produce(&core2, &mempool2))?;
        }
    }
}
