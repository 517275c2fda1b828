//! A node's settings, read from a TOML file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// A node's settings. Relative paths are resolved against the config file's folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The genesis file (JSON).
    pub genesis: PathBuf,
    /// Folder of the node's sled store.
    pub data_dir: PathBuf,
    /// The validator's key file.
    pub validator_key: PathBuf,
    /// gRPC listen address; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest gRPC message the node decodes, in bytes.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Most transactions per block.
    #[serde(default = "default_max_block_txs")]
    pub max_block_txs: usize,
    /// Most pending transactions.
    #[serde(default = "default_mempool")]
    pub mempool_capacity: usize,
    /// Most pending transactions of one author (see [`crate::mempool::Limits`]).
    #[serde(default = "default_per_author")]
    pub max_pending_per_author: usize,
    /// Most pending self-registrations of patients, all authors together.
    #[serde(default = "default_registrations")]
    pub max_pending_registrations: usize,
    /// gRPC endpoints of the other validators; admitted transactions are forwarded to them.
    #[serde(default)]
    pub peers: Vec<String>,
    /// libp2p address for consensus (e.g. `/ip4/127.0.0.1/tcp/27000`). Set, the node runs
    /// Malachite BFT with the genesis validators; unset, it is a one-validator consortium.
    #[serde(default)]
    pub p2p_listen: Option<String>,
    /// libp2p addresses of the other validators.
    #[serde(default)]
    pub p2p_peers: Vec<String>,
    /// How long a proposer with no pending transaction waits before proposing an empty block.
    #[serde(default = "default_idle")]
    pub idle_block_ms: u64,
    /// Where the compliance dashboard (HTTP) listens; unset, there is none. Its API asks for
    /// the bearer token the node writes to `dashboard.token` in its data dir.
    #[serde(default)]
    pub dashboard_listen: Option<SocketAddr>,
    /// How many signed reads the node serves (the `[reads]` table; see
    /// [`custos_types::budget`]).
    #[serde(default)]
    pub reads: ReadsConfig,
}

/// The node's read budget: signed reads a second, in all and per author. Reads beyond it are
/// refused with RESOURCE_EXHAUSTED and a `retry-after-ms` hint, so that readers cannot take the
/// CPU that consensus needs.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadsConfig {
    /// Signed reads a second, all authors together (taken before the signature is checked).
    #[serde(default = "default_reads_per_second")]
    pub per_second: u32,
    /// Reads served at once after a quiet spell.
    #[serde(default = "default_read_burst")]
    pub burst: u32,
    /// Signed reads a second of one author.
    #[serde(default = "default_reads_per_author")]
    pub per_author_per_second: u32,
    /// Reads of one author at once after a quiet spell.
    #[serde(default = "default_read_burst_per_author")]
    pub per_author_burst: u32,
}

impl Default for ReadsConfig {
    fn default() -> Self {
        let d = custos_types::ReadLimits::default();
        ReadsConfig {
            per_second: d.per_second,
            burst: d.burst,
            per_author_per_second: d.per_author_per_second,
            per_author_burst: d.per_author_burst,
        }
    }
}

impl ReadsConfig {
    /// The limits, refused by name when one is zero.
    pub fn limits(&self) -> anyhow::Result<custos_types::ReadLimits> {
        let limits = custos_types::ReadLimits {
            per_second: self.per_second,
            burst: self.burst,
            per_author_per_second: self.per_author_per_second,
            per_author_burst: self.per_author_burst,
        };
        limits
            .validate()
            .map_err(|e| anyhow::anyhow!("node config [reads]: {e}"))?;
        Ok(limits)
    }
}

fn default_reads_per_second() -> u32 {
    custos_types::ReadLimits::default().per_second
}
fn default_read_burst() -> u32 {
    custos_types::ReadLimits::default().burst
}
fn default_reads_per_author() -> u32 {
    custos_types::ReadLimits::default().per_author_per_second
}
fn default_read_burst_per_author() -> u32 {
    custos_types::ReadLimits::default().per_author_burst
}

fn default_idle() -> u64 {
    1000
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7420))
}
fn default_max_message() -> usize {
    256 * 1024
}
fn default_max_block_txs() -> usize {
    2000
}
fn default_mempool() -> usize {
    20_000
}
fn default_per_author() -> usize {
    crate::mempool::Limits::default().per_author
}
fn default_registrations() -> usize {
    crate::mempool::Limits::default().registrations
}

impl NodeConfig {
    /// Settings with defaults for the given files.
    pub fn new(genesis: PathBuf, data_dir: PathBuf, validator_key: PathBuf) -> Self {
        NodeConfig {
            genesis,
            data_dir,
            validator_key,
            listen: default_listen(),
            max_message_bytes: default_max_message(),
            max_block_txs: default_max_block_txs(),
            mempool_capacity: default_mempool(),
            max_pending_per_author: default_per_author(),
            max_pending_registrations: default_registrations(),
            peers: Vec::new(),
            p2p_listen: None,
            p2p_peers: Vec::new(),
            idle_block_ms: default_idle(),
            dashboard_listen: None,
            reads: ReadsConfig::default(),
        }
    }

    /// Reads a TOML file; relative paths in it are relative to the file's folder.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read node config {}", path.display()))?;
        let mut config: NodeConfig = toml::from_str(&text)
            .with_context(|| format!("invalid node config {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut config.genesis,
            &mut config.data_dir,
            &mut config.validator_key,
        ] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }
}
