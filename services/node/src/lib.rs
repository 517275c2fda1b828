//! Runs a ledger node: the block producer, mempool and the gRPC ledger, consent, access and audit
//! services.
//!
//! The [`core::LedgerCore`] executes blocks with the consent state machine and commits them to
//! the store; a [`consensus::Consensus`] implementation orders and certifies them (today
//! [`bft::BftValidator`], Malachite BFT over libp2p, also for a lone validator); [`rpc`] adapts it all
//! to gRPC.

pub mod bft;
pub mod config;
pub mod consensus;
pub mod core;
pub mod dashboard;
pub mod forward;
pub mod mempool;
pub mod rpc;
pub mod server;

pub use config::NodeConfig;
pub use server::{RunningNode, load_genesis, load_keys, start, start_wrapped};
