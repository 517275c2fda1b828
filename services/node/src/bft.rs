//! The node as a Malachite application: blocks proposed from the mempool, validated by
//! re-execution, committed durably before consensus moves on, and served to syncing peers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use custos_consensus::Application;
use custos_crypto::{Hash, PublicKey};
use custos_ledger::{CommitCertificate, ValidatorSet};
use custos_types::{EntryKind, LedgerEntry, Timestamp};

use crate::consensus::{after_commit, report_refused};
use crate::core::{Block, LedgerCore};
use crate::mempool::Mempool;

/// The ledger core and mempool of a node, as consensus sees them.
pub struct NodeApp {
    core: Arc<LedgerCore>,
    mempool: Arc<Mempool>,
    max_block_txs: usize,
    idle_interval: Duration,
}

impl NodeApp {
    /// An application over `core` and `mempool`. A proposer with nothing to propose waits up to
    /// `idle_interval` for transactions before it proposes an empty block.
    pub fn new(
        core: Arc<LedgerCore>,
        mempool: Arc<Mempool>,
        max_block_txs: usize,
        idle_interval: Duration,
    ) -> Self {
        NodeApp {
            core,
            mempool,
            max_block_txs,
            idle_interval,
        }
    }

    fn wait_for_transactions(&self) {
        let deadline = Instant::now() + self.idle_interval;
        // Blocking here holds only this validator's proposal; the engine's other tasks run on.
        let wait = || {
            while self.mempool.is_empty() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        }
    }
}

/// How far ahead of a validator's clock a proposed block may be dated.
pub const MAX_CLOCK_DRIFT_MS: i64 = 15_000;

impl NodeApp {
    fn decode(&self, height: u64, value: &[u8]) -> Result<Block, String> {
        let block = Block::from_bytes(value).map_err(|e| e.to_string())?;
        if block.header.height != height {
            return Err(format!(
                "value is for height {}, not {height}",
                block.header.height
            ));
        }
        Ok(block)
    }
}

impl Application for NodeApp {
    fn chain_id(&self) -> String {
        self.core.genesis().chain_id.to_string()
    }

    fn validators(&self) -> ValidatorSet {
        self.core.validators()
    }

    fn committed_height(&self) -> u64 {
        self.core.tip().map_or(0, |t| t.height)
    }

    fn propose(
        &self,
        height: u64,
        _round: u32,
        proposer: PublicKey,
    ) -> anyhow::Result<(Vec<u8>, Hash)> {
        let next = self.committed_height() + 1;
        if height != next {
            anyhow::bail!("asked to propose height {height}, the next height is {next}");
        }
        self.wait_for_transactions();
        let candidates = self.mempool.peek(self.max_block_txs);
        let (block, refused) = self
            .core
            .build_block(candidates, Timestamp::now(), proposer);
        report_refused(&self.mempool, height, refused);
        Ok((block.to_bytes(), block.header.hash()))
    }

    fn validate(&self, height: u64, value: &[u8]) -> Result<Hash, String> {
        let block = self.decode(height, value)?;
        // Consent periods are judged by block time: a proposer must not date a block ahead of
        // the honest validators' clocks (it would open future consents early). Past-dating is
        // bounded by the previous block's time and undone at the next honest proposer's turn.
        let now = Timestamp::now().0;
        if block.header.time_ms > now.saturating_add(MAX_CLOCK_DRIFT_MS) {
            return Err(format!(
                "block time {} is {} ms ahead of this validator's clock (at most {MAX_CLOCK_DRIFT_MS} ms)",
                block.header.time_ms,
                block.header.time_ms - now
            ));
        }
        self.core.validate_block(&block).map_err(|e| e.to_string())
    }

    fn validate_synced(&self, height: u64, value: &[u8]) -> Result<Hash, String> {
        // Certified by more than 2/3 of the validators, each of which checked the time live.
        let block = self.decode(height, value)?;
        self.core.validate_block(&block).map_err(|e| e.to_string())
    }

    fn commit(
        &self,
        height: u64,
        value: &[u8],
        certificate: CommitCertificate,
    ) -> anyhow::Result<()> {
        // Replayed after a crash between our commit and the engine's record of it.
        if self.committed_height() >= height {
            return Ok(());
        }
        let block = Block::from_bytes(value)?;
        let located = self.core.commit_block(&block, certificate)?;
        after_commit(&self.core, &self.mempool, height, &located);
        Ok(())
    }

    fn decided(&self, height: u64) -> anyhow::Result<Option<(Vec<u8>, CommitCertificate)>> {
        let Some(stored) = self.core.store().block(height)? else {
            return Ok(None);
        };
        let mut transactions = Vec::with_capacity(stored.header.tx_count as usize);
        for bytes in &stored.entries {
            let entry = LedgerEntry::from_bytes(bytes)
                .map_err(|e| anyhow::anyhow!("stored entry of block {height} is corrupt: {e}"))?;
            if let EntryKind::Transaction(tx) = entry.kind {
                transactions.push(tx);
            }
        }
        let block = Block {
            header: stored.header,
            transactions,
        };
        Ok(Some((block.to_bytes(), stored.certificate)))
    }
}

/// Wraps the application consensus drives: identity in production; tests wrap it to inject
/// faults (a Byzantine proposer, say) in front of the real ledger.
pub type AppWrapper = Box<dyn FnOnce(Arc<dyn Application>) -> Arc<dyn Application> + Send>;

/// A validator of a multi-validator consortium: Malachite BFT over libp2p.
pub struct BftValidator {
    wrap: AppWrapper,
    key: custos_crypto::SigningKeyPair,
    config: custos_consensus::ConsensusConfig,
    max_block_txs: usize,
    idle_interval: Duration,
}

impl BftValidator {
    /// A validator signing with `key`, taking part as `config` says.
    pub fn new(
        key: custos_crypto::SigningKeyPair,
        config: custos_consensus::ConsensusConfig,
        max_block_txs: usize,
        idle_interval: Duration,
    ) -> Self {
        BftValidator {
            wrap: Box::new(|app| app),
            key,
            config,
            max_block_txs,
            idle_interval,
        }
    }
}

impl BftValidator {
    /// The same validator driving `wrap(app)` instead of the ledger application itself.
    pub fn wrapped(mut self, wrap: AppWrapper) -> Self {
        self.wrap = wrap;
        self
    }
}

impl crate::consensus::Consensus for BftValidator {
    async fn run(
        self,
        core: Arc<LedgerCore>,
        mempool: Arc<Mempool>,
        shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let app: Arc<dyn Application> = Arc::new(NodeApp::new(
            core,
            mempool,
            self.max_block_txs,
            self.idle_interval,
        ));
        let app = (self.wrap)(app);
        custos_consensus::run(app, self.config, self.key, shutdown).await
    }
}
