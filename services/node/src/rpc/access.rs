//! `custos.access.v1.AccessService`: requests and their finalized decisions.

use custos_proto::access::v1 as pb;
use custos_proto::access::v1::access_service_server::AccessService;
use custos_proto::ledger::v1 as ledger_pb;
use custos_types::{EntryKind, FieldError, LedgerEntry, RequestId, SignedTransaction, TxKind};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::ledger::submit_transaction;
use super::{NodeContext, field_status, internal, prove_entry};

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

/// The finalized decision for `request` with its proof.
pub fn decision_response(
    ctx: &NodeContext,
    request: &RequestId,
) -> Result<pb::DecisionResponse, Status> {
    let index = ctx
        .core
        .decision_index(request)
        .map_err(internal)?
        .ok_or_else(|| {
            Status::not_found(format!("request_id: no decision for {}", request.short()))
        })?;
    let proven = prove_entry(ctx, index)?;
    let entry = LedgerEntry::from_bytes(&proven.entry).map_err(internal)?;
    let EntryKind::Decision(decision) = entry.kind else {
        return Err(internal(format!("entry {index} is not a decision")));
    };
    Ok(pb::DecisionResponse {
        decision: Some((&decision).into()),
        proven: Some(proven),
    })
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
        decision_response(&self.ctx, &RequestId(tx.id().0)).map(Response::new)
    }

    async fn get_decision(
        &self,
        request: Request<pb::GetDecisionRequest>,
    ) -> Result<Response<pb::DecisionResponse>, Status> {
        let id = RequestId::from_field(&request.into_inner().request_id, "request_id")
            .map_err(|e| field_status(e, "get decision"))?;
        decision_response(&self.ctx, &id).map(Response::new)
    }
}
