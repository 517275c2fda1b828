//! Names the domain: ids, HL7 purposes, parties, records, consents, access requests, decisions
//! and signed transactions.
//!
//! Wire messages from `custos-proto` only parse bytes; every conversion into these types goes
//! through `TryFrom`, validates every field and names the field it refuses. Nothing here knows
//! about gRPC, storage or networking.

pub mod aggregate;
pub mod budget;
pub mod decision;
pub mod entry;
pub mod error;
pub mod genesis;
pub mod ids;
pub mod model;
pub mod policy;
pub mod purpose;
pub mod read;
pub mod tx;

pub use aggregate::{AggregateScope, Cohort};
pub use budget::{ReadBudget, ReadLimits};
pub use decision::{Decision, DecisionReason};
pub use entry::{EntryKind, LedgerEntry};
pub use error::FieldError;
pub use genesis::Genesis;
pub use ids::{
    Category, ChainId, ConsentId, Height, Nonce, PartyId, RecordId, RequestId, Timestamp, TxId,
};
pub use model::{AccessMode, Consent, ConsentPeriod, Organisation, Parameters, Role, Scope};
pub use policy::Reader;
pub use purpose::Purpose;
pub use read::{ReadBody, ReadNonce, ReplayGuard, SignedRead};
pub use tx::{SignedTransaction, TransactionBody, TxKind};

/// Version of every top-level signed or persisted encoding defined here.
pub const ENCODING_VERSION: u32 = 2;

/// Largest serialized transaction (envelope included) a node accepts.
pub const MAX_TX_BYTES: usize = 64 * 1024;
