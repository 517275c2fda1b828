//! Orders blocks: Malachite BFT over libp2p, driving the ledger through an application trait.
//!
//! [`run`] starts one validator of the consortium: the Malachite engine (Tendermint) with its
//! write-ahead log, libp2p gossip among the persistent peers and value sync, and a loop that
//! answers the engine from an [`Application`] — the ledger. Values are encoded blocks named by
//! their header hash; a precommit for a value signs exactly `custos_ledger::commit_message`, so
//! the engine's commit certificate is the ledger's `CommitCertificate`. Malachite's types stay
//! inside this crate.

mod app;
mod codec;
mod config;
mod context;
mod node;
mod signing;
mod store;
mod streaming;

pub use app::Application;
pub use config::{ConsensusConfig, reserve_loopback_port, tcp_multiaddr};
pub use node::run;
