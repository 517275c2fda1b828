//! gRPC adapters: wire messages in, domain types through `TryFrom`, statuses that name the
//! field and the reason out.

pub mod access;
pub mod audit;
pub mod consent;
pub mod ledger;
pub mod unimplemented;

use std::sync::{Arc, Mutex};

use custos_consent::{ErrorClass, PartyState, StateFacts, TxError};
use custos_proto::access::v1 as access_pb;
use custos_proto::ledger::v1 as ledger_pb;
use custos_types::policy::Concerned;
use custos_types::{FieldError, Reader, ReplayGuard, SignedRead, Timestamp};
use tonic::Status;

use crate::core::LedgerCore;
use crate::mempool::Mempool;

pub use custos_types::read::READ_WINDOW_MS;

/// What every service shares.
#[derive(Clone)]
pub struct NodeContext {
    /// The ledger core.
    pub core: Arc<LedgerCore>,
    /// Pending transactions.
    pub mempool: Arc<Mempool>,
    /// Where admitted transactions are forwarded.
    pub forwarder: crate::forward::Forwarder,
    /// Turns true when the node stops; long-lived streams end then.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// The signed reads accepted within the freshness window: each is served once.
    pub reads: Arc<Mutex<ReplayGuard>>,
    /// How many signed reads the node serves a second, in all and per author.
    pub read_budget: Arc<Mutex<custos_types::ReadBudget>>,
    /// How far `VerifyChain` has verified the node's header chain (none: not yet started).
    pub verified: Arc<Mutex<Option<custos_ledger::verify::VerifiedPrefix>>>,
}

/// A refused wire field: INVALID_ARGUMENT, or UNAUTHENTICATED for signatures and keys that
/// fail, with `field: reason`. The node's log records the refusal.
pub fn field_status(error: FieldError, what: &str) -> Status {
    custos_client::refused!(what, field = %error.field, reason = %error.reason, "refused");
    let auth = error.field.starts_with("signature")
        || error.field.starts_with("cosignatures")
        || error.field.ends_with(".signature")
        || error.field == "body.author";
    if auth {
        Status::unauthenticated(error.to_string())
    } else {
        Status::invalid_argument(error.to_string())
    }
}

/// A transaction the state refused, with the matching status code.
pub fn tx_status(error: TxError) -> Status {
    custos_client::refused!(reason = %error, "transaction refused");
    let message = error.to_string();
    match error.class() {
        ErrorClass::Invalid => Status::invalid_argument(message),
        ErrorClass::PermissionDenied => Status::permission_denied(message),
        ErrorClass::NotFound => Status::not_found(message),
        ErrorClass::AlreadyExists => Status::already_exists(message),
        ErrorClass::FailedPrecondition => Status::failed_precondition(message),
    }
}

/// An internal failure: logged in full, reported without detail.
pub fn internal(error: impl std::fmt::Display) -> Status {
    tracing::error!(target: "custos::rpc", %error, "internal error");
    Status::internal("internal error; see the node's log")
}

/// Checks a signed read: the node's read budget, signature, chain, method, freshness, a
/// registered author, the author's read budget and a nonce not seen within the freshness window. A missing or failing signature is UNAUTHENTICATED.
pub fn authorize_read(
    ctx: &NodeContext,
    wire: &ledger_pb::SignedRead,
    method: &str,
) -> Result<(SignedRead, PartyState), Status> {
    if wire.body.is_empty() && wire.author.is_empty() && wire.signature.is_empty() {
        custos_client::refused!(method, "unsigned read refused");
        return Err(Status::unauthenticated(format!(
            "read: `{method}` serves protected data; send a custos.ledger.v1.SignedRead (body, \
             author, signature) whose query is the method's request"
        )));
    }
    // The node's budget is spent before any work, so reads with bad signatures cost no more
    // than good ones.
    custos_client::spend_read_budget(&ctx.read_budget, None)?;
    let read = SignedRead::from_wire(wire).map_err(|e| {
        let status = field_status(e.clone(), "signed read");
        if e.field == "author" || e.field == "body.author" {
            Status::unauthenticated(e.to_string())
        } else {
            status
        }
    })?;
    let now = Timestamp::now();
    read.check_for(&ctx.core.genesis().chain_id, method, now, "node")
        .map_err(|e| field_status(e, "signed read"))?;
    let party = ctx
        .core
        .with_state(|s| s.party(&read.author).cloned())
        .ok_or_else(|| {
            custos_client::refused!(author = %read.author.short(), "read by an unregistered party");
            Status::permission_denied(format!(
                "author: {} is not a registered party",
                read.author.short()
            ))
        })?;
    custos_client::spend_read_budget(&ctx.read_budget, Some(&read.author))?;
    custos_client::admit_read(&ctx.reads, &read, now)?;
    Ok((read, party))
}

/// [`authorize_read`], returning the reader as the read policy knows it.
pub fn authorize_reader(
    ctx: &NodeContext,
    wire: &ledger_pb::SignedRead,
    method: &str,
) -> Result<(SignedRead, Reader), Status> {
    let (read, party) = authorize_read(ctx, wire, method)?;
    let reader = Reader {
        party: read.author,
        role: party.role,
    };
    Ok((read, reader))
}

/// Runs `f` on the state as the read policy asks about it, now.
pub fn with_facts<T>(ctx: &NodeContext, f: impl FnOnce(&StateFacts<'_>) -> T) -> T {
    let now = Timestamp::now();
    ctx.core
        .with_state(|machine| f(&StateFacts { machine, now }))
}

/// PERMISSION_DENIED unless `reader` may see what `concerned` describes; `field` names the
/// request field that asked for it and `what` the item.
pub fn permit(
    ctx: &NodeContext,
    reader: &Reader,
    concerned: impl FnOnce(&StateFacts<'_>) -> Option<Concerned>,
    field: &str,
    what: &str,
) -> Result<(), Status> {
    let allowed = with_facts(ctx, |facts| {
        concerned(facts).is_some_and(|c| reader.may_see(&c, facts))
    });
    if allowed {
        return Ok(());
    }
    custos_client::refused!(reader = %reader.party.short(), field, "read of another party's data refused");
    Err(Status::permission_denied(format!(
        "{field}: {what} does not concern {} ({}); only its parties and auditors may read it",
        reader.party.short(),
        reader.role.name()
    )))
}

/// A log entry with its inclusion proof against the latest header and that header's
/// certificate and validator set.
pub fn prove_entry(ctx: &NodeContext, index: u64) -> Result<access_pb::ProvenEntry, Status> {
    let store = ctx.core.store();
    let (entry, _height) = store
        .entry(index)
        .map_err(internal)?
        .ok_or_else(|| Status::not_found(format!("index: no log entry {index}")))?;
    let tip = ctx
        .core
        .tip()
        .ok_or_else(|| Status::unavailable("no block finalized yet"))?;
    let path = ctx
        .core
        .with_tree(|t| t.inclusion_proof(index, tip.log_size))
        .map_err(internal)?;
    let signed = signed_header(&ctx.core, tip.height)?;
    Ok(access_pb::ProvenEntry {
        index,
        entry,
        proof: Some(ledger_pb::InclusionProof {
            leaf_index: index,
            tree_size: tip.log_size,
            path: path.iter().map(|h| h.0.to_vec()).collect(),
        }),
        header: Some(signed),
    })
}

/// The header at `height` with its certificate and validator set.
pub fn signed_header(core: &LedgerCore, height: u64) -> Result<ledger_pb::SignedHeader, Status> {
    let certified = core
        .certified_header(height)
        .map_err(internal)?
        .ok_or_else(|| Status::not_found(format!("height: no block at height {height}")))?;
    Ok(ledger_pb::SignedHeader {
        header: Some(certified.header.to_wire()),
        certificate: Some(certified.certificate.to_wire()),
        validator_set: Some(certified.validators.to_wire()),
    })
}
