//! The seam between consensus and the ledger.

/// What consensus needs from the ledger. Values are opaque encoded blocks; a value's id is the
/// SHA-256 header hash the application reports, and a commit certificate's signatures are over
/// custos_ledger::commit_message(chain_id, height, round, value_id).
pub trait Application: Send + Sync + 'static {
    /// The chain id every signed consensus message names.
    fn chain_id(&self) -> String;
    /// The validators (a fixed set for now).
    fn validators(&self) -> custos_ledger::ValidatorSet;
    /// The height of the last committed block; 0 before the first block.
    fn committed_height(&self) -> u64;
    /// Builds the value for `height` proposed by `proposer` (executes on scratch state, changes nothing).
    fn propose(
        &self,
        height: u64,
        round: u32,
        proposer: custos_crypto::PublicKey,
    ) -> anyhow::Result<(Vec<u8>, custos_crypto::Hash)>;
    /// Checks a value received for `height` (re-executes; any invalid tx, wrong state root, wrong prev hash… → Err(reason)); returns its id.
    fn validate(&self, height: u64, value: &[u8]) -> Result<custos_crypto::Hash, String>;
    /// Checks a value that value sync delivered with its commit certificate (already checked by
    /// the engine). Defaults to [`Application::validate`]; an application whose live checks
    /// depend on the local clock relaxes them here, since synced blocks may be old.
    fn validate_synced(&self, height: u64, value: &[u8]) -> Result<custos_crypto::Hash, String> {
        self.validate(height, value)
    }
    /// Commits a decided value with its certificate, durably, before returning.
    fn commit(
        &self,
        height: u64,
        value: &[u8],
        certificate: custos_ledger::CommitCertificate,
    ) -> anyhow::Result<()>;
    /// A decided value and its certificate, for value sync (None if not stored).
    fn decided(
        &self,
        height: u64,
    ) -> anyhow::Result<Option<(Vec<u8>, custos_ledger::CommitCertificate)>>;
}
