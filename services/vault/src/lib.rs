//! Serves a custodian's vault: the sled store with crypto-shredding erasure, release only after
//! a finalized grant it verifies itself, and the gRPC vault service and client.
//!
//! - [`sled_store::SledVaultStore`] implements [`custos_vault::VaultStore`] on sled, with a
//!   passphrase-sealed [`keyring`] holding the custodian's wrapping secrets and a storage key
//!   per record; its module docs argue why an erased record cannot be recovered from the
//!   vault's folder.
//! - [`gateway`] is what the vault asks of a ledger node; [`grant`] is invariant I1 at the
//!   vault: a release needs a granted raw-mode decision for exactly this request and requester,
//!   proven final and included against the genesis validator set.
//! - [`rpc`] serves `custos.vault.v1.VaultService`; [`server`] starts it; [`client`] is its
//!   typed client (the CLI's `custos vault` commands use it).
//! - [`attributes`] names the record attributes a vault accepts, their ranges and codes, and
//!   which of them the predicate commitment and the aggregate table use.
//! - [`aggregate`] is the custodian's side of aggregate queries on encrypted data: the sealed
//!   FHE client key, an encrypted table per category filled at put, and the checked release.

pub mod aggregate;
pub mod attributes;
pub mod client;
pub mod follow;
pub mod gateway;
pub mod grant;
mod keyring;
pub mod predicate;
pub mod rpc;
pub mod server;
pub mod sled_store;

pub use aggregate::{AggregateError, Aggregates};
pub use client::{Fetched, VaultClient, VaultClientError};
pub use gateway::{GatewayError, LedgerGateway, NodeGateway};
pub use grant::{Denial, GrantCheck, ReleaseKind};
pub use rpc::{Limits, VaultRpc};
pub use server::{RunningVault, ServiceError, VaultConfig, load_genesis, serve, start, start_with};
pub use sled_store::SledVaultStore;
