//! How blocks are ordered and certified. [`Consensus`] is the seam between the node and its
//! consensus engine ([`crate::bft::BftValidator`], Malachite — also for a lone validator, a
//! one-validator network), and the steps every node takes around a block.

use std::sync::Arc;

use tokio::sync::watch;
use tracing::info;

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

/// Drops the transactions the state refused while a block was built, with their reasons.
pub fn report_refused(
    mempool: &Mempool,
    height: u64,
    refused: Vec<(custos_types::TxId, custos_consent::TxError)>,
) {
    for (id, e) in &refused {
        custos_client::refused!(tx = %id.short(), reason = %e, "transaction refused building block {height}");
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
