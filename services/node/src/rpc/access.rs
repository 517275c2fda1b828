//! `custos.access.v1.AccessService`: requests and their finalized decisions.

use custos_client::methods::{GET_COHORT, GET_DECISION};
use custos_proto::access::v1 as pb;
use custos_proto::access::v1::access_service_server::AccessService;
use custos_proto::ledger::v1 as ledger_pb;
use custos_types::{
    AccessMode, EntryKind, FieldError, LedgerEntry, Reader, RequestId, SignedTransaction, TxKind,
    policy,
};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::ledger::submit_transaction;
use super::{NodeContext, authorize_reader, field_status, internal, permit, prove_entry};

/// The access service.
pub struct AccessRpc {
    ctx: NodeContext,
}

impl AccessRpc {
    /// A service over `ctx`.
    pub fn new(ctx: NodeContext) -> Self {
        AccessRpc { ctx }
    }
}

/// The finalized decision for `request` with its proof, if `reader` may see it (`None`: the
/// node's own use, or the requester that just submitted it).
pub fn decision_response(
    ctx: &NodeContext,
    request: &RequestId,
    reader: Option<&Reader>,
) -> Result<pb::DecisionResponse, Status> {
    let index = ctx
        .core
        .decision_index(request)
        .map_err(internal)?
        .ok_or_else(|| {
            Status::not_found(format!("request_id: no decision for {}", request.short()))
        })?;
    let (bytes, _) = ctx
        .core
        .store()
        .entry(index)
        .map_err(internal)?
        .ok_or_else(|| internal(format!("decision entry {index} is missing")))?;
    let entry = LedgerEntry::from_bytes(&bytes).map_err(internal)?;
    let EntryKind::Decision(decision) = entry.kind else {
        return Err(internal(format!("entry {index} is not a decision")));
    };
    if let Some(reader) = reader {
        permit(
            ctx,
            reader,
            |facts| Some(policy::decision(&decision, facts)),
            "request_id",
            &format!("the decision on request {}", request.short()),
        )?;
    }
    let proven = prove_entry(ctx, index)?;
    Ok(pb::DecisionResponse {
        decision: Some((&decision).into()),
        proven: Some(proven),
    })
}

/// Most record ids one `GetCohort` page holds: 65,536 ids of 34 bytes on the wire (about
/// 2.2 MiB) stay under gRPC's default 4 MiB message size.
pub const MAX_COHORT_PAGE: usize = 65_536;

/// One page of an aggregate request's cohort with its proven decision and the request.
pub fn cohort_response(
    ctx: &NodeContext,
    request: &RequestId,
    offset: u64,
    limit: u32,
    reader: &Reader,
) -> Result<pb::CohortResponse, Status> {
    let decided = decision_response(ctx, request, Some(reader))?;
    let decision = decided
        .decision
        .as_ref()
        .ok_or_else(|| internal("a decision response without its decision"))?;
    if decision.mode != AccessMode::Aggregate.to_wire() {
        return Err(Status::failed_precondition(format!(
            "request_id: request {} is not an aggregate request",
            request.short()
        )));
    }
    let limit = match limit as usize {
        0 => MAX_COHORT_PAGE,
        n => n.min(MAX_COHORT_PAGE),
    };
    let page = ctx.core.with_state(|s| {
        s.cohort(request).map(|c| {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(c.records.len());
            let end = start.saturating_add(limit).min(c.records.len());
            let ids: Vec<Vec<u8>> = c.records[start..end].iter().map(|r| r.to_vec()).collect();
            (start as u64, end as u64, ids)
        })
    });
    let Some((start, end, record_ids)) = page else {
        return Err(Status::failed_precondition(format!(
            "request_id: aggregate request {} was denied before its cohort was fixed",
            request.short()
        )));
    };
    if start != offset {
        return Err(Status::out_of_range(format!(
            "offset: the cohort has {start} ids, got offset {offset}"
        )));
    }
    let index = decided
        .proven
        .as_ref()
        .map(|p| p.index)
        .ok_or_else(|| internal("a decision response without its proof"))?;
    Ok(pb::CohortResponse {
        request: Some(request_transaction(ctx, request, index)?),
        decision: decided.decision,
        proven: decided.proven,
        offset: start,
        record_ids,
        next_offset: end,
    })
}

/// The request transaction of the decision at log `index`: the entry just before it.
fn request_transaction(
    ctx: &NodeContext,
    request: &RequestId,
    index: u64,
) -> Result<ledger_pb::SignedTransaction, Status> {
    let (bytes, _) = index
        .checked_sub(1)
        .map(|i| ctx.core.store().entry(i))
        .transpose()
        .map_err(internal)?
        .flatten()
        .ok_or_else(|| internal(format!("no request entry before decision {index}")))?;
    let entry = LedgerEntry::from_bytes(&bytes).map_err(internal)?;
    match entry.kind {
        EntryKind::Transaction(tx) if tx.id().0 == request.0 => Ok(tx.to_wire()),
        _ => Err(internal(format!(
            "entry before decision {index} is not request {}",
            request.short()
        ))),
    }
}

#[tonic::async_trait]
impl AccessService for AccessRpc {
    #[instrument(name = "access.request", skip_all)]
    async fn request_access(
        &self,
        request: Request<ledger_pb::SignedTransaction>,
    ) -> Result<Response<pb::DecisionResponse>, Status> {
        let wire = request.into_inner();
        // Decode once here only to check the kind; submission re-checks everything.
        let tx = SignedTransaction::from_wire(wire.clone())
            .map_err(|e| field_status(e, "access request"))?;
        if !matches!(tx.body().kind, TxKind::RequestAccess(_)) {
            return Err(field_status(
                FieldError::new(
                    "body.kind",
                    format!("expected request_access, got {}", tx.body().kind.name()),
                ),
                "access request",
            ));
        }
        submit_transaction(&self.ctx, wire, true, true).await?;
        // The requester reads the decision on the request it signed.
        decision_response(&self.ctx, &RequestId(tx.id().0), None).map(Response::new)
    }

    #[instrument(name = "access.decision", skip_all)]
    async fn get_decision(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::DecisionResponse>, Status> {
        let (read, reader) = authorize_reader(&self.ctx, request.get_ref(), GET_DECISION)?;
        let query: pb::GetDecisionRequest =
            read.query().map_err(|e| field_status(e, "get decision"))?;
        let id = RequestId::from_field(&query.request_id, "body.query.request_id")
            .map_err(|e| field_status(e, "get decision"))?;
        decision_response(&self.ctx, &id, Some(&reader)).map(Response::new)
    }

    #[instrument(name = "access.cohort", skip_all)]
    async fn get_cohort(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::CohortResponse>, Status> {
        let (read, reader) = authorize_reader(&self.ctx, request.get_ref(), GET_COHORT)?;
        let wire: pb::GetCohortRequest = read.query().map_err(|e| field_status(e, "get cohort"))?;
        let id = RequestId::from_field(&wire.request_id, "body.query.request_id")
            .map_err(|e| field_status(e, "get cohort"))?;
        cohort_response(&self.ctx, &id, wire.offset, wire.limit, &reader).map(Response::new)
    }
}
