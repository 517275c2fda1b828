//! Decides access: the deterministic consent state machine that turns transactions into decisions.
//!
//! This crate is the ledger's "personality". It knows parties, records, consents, delegations
//! and requests; it validates every transaction against the state before it changes anything,
//! computes an access decision for every request (never taking one from outside), and commits to
//! the whole state with a Merkle root so that replaying the same blocks always yields the same
//! root.

pub mod aggregate;
pub mod error;
pub mod facts;
pub mod machine;
pub mod state;

pub use aggregate::cohort_of;
pub use error::{ErrorClass, TxError};
pub use facts::StateFacts;
pub use machine::{BlockContext, StateMachine};
pub use state::{
    CohortState, ConsentState, PartyState, RecordState, RequestState, StateChange, ValidatorEntry,
};
