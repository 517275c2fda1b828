//! gRPC adapters: wire messages in, domain types through `TryFrom`, statuses that name the
//! field and the reason out.

pub mod access;
pub mod audit;
pub mod consent;
pub mod ledger;
pub mod unimplemented;

use std::sync::Arc;

use custos_consent::{ErrorClass, PartyState, TxError};
use custos_proto::access::v1 as access_pb;
use custos_proto::ledger::v1 as ledger_pb;
use custos_types::{FieldError, SignedRead, Timestamp};
use tonic::Status;
use tracing::warn;

use crate::core::LedgerCore;
use crate::mempool::Mempool;

/// How far a signed read's `issued_at` may be from the node's clock.
pub const READ_FRESHNESS_MS: i64 = 5 * 60 * 1000;

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
}

/// A refused wire field: INVALID_ARGUMENT, or UNAUTHENTICATED for signatures and keys that
/// fail, with `field: reason`. The node's log records the refusal.
pub fn field_status(error: FieldError, what: &str) -> Status {
    warn!(target: "custos::rejected", what, field = %error.field, reason = %error.reason, "refused");
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
    warn!(target: "custos::rejected", reason = %error, "transaction refused");
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

/// Checks a signed read: signature, chain, method, freshness and a registered author.
pub fn authorize_read(
    ctx: &NodeContext,
    wire: &ledger_pb::SignedRead,
    method: &str,
) -> Result<(SignedRead, PartyState), Status> {
    let read = SignedRead::from_wire(wire).map_err(|e| field_status(e, "signed read"))?;
    let chain = &ctx.core.genesis().chain_id;
    if &read.body.chain_id != chain {
        return Err(field_status(
            FieldError::new(
                "body.chain_id",
                format!("read is for `{}`, this is `{chain}`", read.body.chain_id),
            ),
            "signed read",
        ));
    }
    if read.body.method != method {
        return Err(field_status(
            FieldError::new(
                "body.method",
                format!("signed for `{}`, called `{method}`", read.body.method),
            ),
            "signed read",
        ));
    }
    let skew = (Timestamp::now().0 - read.body.issued_at.0).abs();
    if skew > READ_FRESHNESS_MS {
        return Err(field_status(
            FieldError::new(
                "body.issued_at_ms",
                format!(
                    "signed {skew} ms away from the node's clock; at most {READ_FRESHNESS_MS} ms"
                ),
            ),
            "signed read",
        ));
    }
    let party = ctx
        .core
        .with_state(|s| s.party(&read.author).cloned())
        .ok_or_else(|| {
            Status::permission_denied(format!(
                "author {} is not a registered party",
                read.author.short()
            ))
        })?;
    Ok((read, party))
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
