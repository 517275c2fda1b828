//! Why the state machine refused a transaction.

use custos_types::{ConsentId, FieldError, PartyId, RecordId, RequestId};

/// How a refusal should be reported to a client (maps onto gRPC status codes in adapters).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ErrorClass {
    /// The transaction is malformed for this chain.
    Invalid,
    /// The author may not do this.
    PermissionDenied,
    /// Something it refers to does not exist.
    NotFound,
    /// It would create something that exists.
    AlreadyExists,
    /// The state does not allow it now (nonce, revoked, erased…).
    FailedPrecondition,
}

/// A transaction the state machine refused; the state is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The body names another chain.
    #[error("body.chain_id: transaction is for chain `{got}`, this is `{expected}`")]
    WrongChain {
        /// This chain.
        expected: String,
        /// The chain named.
        got: String,
    },
    /// A nonce already used: a replay.
    #[error("replayed nonce {got} for {author}: next nonce is {expected}")]
    ReplayedNonce {
        /// The author.
        author: String,
        /// The next valid nonce.
        expected: u64,
        /// The nonce given.
        got: u64,
    },
    /// A nonce ahead of the next one.
    #[error("nonce {got} for {author} is ahead: next nonce is {expected}")]
    FutureNonce {
        /// The author.
        author: String,
        /// The next valid nonce.
        expected: u64,
        /// The nonce given.
        got: u64,
    },
    /// The author is not a registered party.
    #[error("author {0} is not a registered party")]
    UnknownAuthor(PartyId),
    /// A party named in the transaction is not registered.
    #[error("{field}: party {party} is not registered")]
    UnknownParty {
        /// Which field.
        field: &'static str,
        /// The party.
        party: PartyId,
    },
    /// The party is already registered.
    #[error("party {0} is already registered")]
    PartyExists(PartyId),
    /// No such record.
    #[error("record {0} is not registered")]
    UnknownRecord(RecordId),
    /// The record id is taken.
    #[error("record {0} is already registered")]
    RecordExists(RecordId),
    /// The record was erased.
    #[error("record {0} was erased")]
    RecordErased(RecordId),
    /// No such consent.
    #[error("consent {0} does not exist")]
    UnknownConsent(ConsentId),
    /// The consent is already revoked.
    #[error("consent {0} is already revoked")]
    AlreadyRevoked(ConsentId),
    /// No such request.
    #[error("request {0} does not exist")]
    UnknownRequest(RequestId),
    /// The release was already confirmed.
    #[error("release of request {0} is already confirmed")]
    AlreadyReleased(RequestId),
    /// The author lacks the right.
    #[error("not authorized: {0}")]
    NotAuthorized(String),
    /// Governance co-signatures fall short.
    #[error(
        "governance needs signatures of at least {needed} of {members} member organisations, got {got}"
    )]
    InsufficientGovernance {
        /// Signatures needed.
        needed: usize,
        /// Member organisations.
        members: usize,
        /// Valid member signatures.
        got: usize,
    },
    /// A field is inconsistent with the ledger.
    #[error("{field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A field of the body is malformed (named by its path in the body).
    #[error("{0}")]
    Field(FieldError),
}

impl TxError {
    /// How to report the refusal.
    pub fn class(&self) -> ErrorClass {
        match self {
            TxError::WrongChain { .. } | TxError::Invalid { .. } | TxError::Field(_) => {
                ErrorClass::Invalid
            }
            TxError::UnknownAuthor(_)
            | TxError::NotAuthorized(_)
            | TxError::InsufficientGovernance { .. } => ErrorClass::PermissionDenied,
            TxError::UnknownParty { .. }
            | TxError::UnknownRecord(_)
            | TxError::UnknownConsent(_)
            | TxError::UnknownRequest(_) => ErrorClass::NotFound,
            TxError::PartyExists(_) | TxError::RecordExists(_) => ErrorClass::AlreadyExists,
            TxError::ReplayedNonce { .. }
            | TxError::FutureNonce { .. }
            | TxError::RecordErased(_)
            | TxError::AlreadyRevoked(_)
            | TxError::AlreadyReleased(_) => ErrorClass::FailedPrecondition,
        }
    }
}
