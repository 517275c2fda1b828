//! `custos.audit.v1.AuditService`: the access log, with proofs, under role checks.

use std::collections::BTreeSet;
use std::pin::Pin;

use custos_proto::audit::v1 as pb;
use custos_proto::audit::v1::audit_service_server::AuditService;
use custos_proto::ledger::v1 as ledger_pb;
use custos_storage::AuditFilter;
use custos_types::{AccessMode, FieldError, PartyId, Purpose, RecordId, Role, Timestamp};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{NodeContext, authorize_read, field_status, internal, prove_entry};

/// Full method name of `QueryAccessLog`, which a signed read must name.
pub const QUERY_ACCESS_LOG: &str = "/custos.audit.v1.AuditService/QueryAccessLog";
/// Full method name of `VerifyChain`.
pub const VERIFY_CHAIN: &str = "/custos.audit.v1.AuditService/VerifyChain";
/// Largest page.
pub const MAX_PAGE: u32 = 500;
const DEFAULT_PAGE: u32 = 50;
const LATER: &str = "arrives with the audit and compliance capability";

/// The audit service.
pub struct AuditRpc {
    ctx: NodeContext,
}

impl AuditRpc {
    /// A service over `ctx`.
    pub fn new(ctx: NodeContext) -> Self {
        AuditRpc { ctx }
    }
}

fn bad(field: &str, reason: impl Into<String>) -> Status {
    field_status(FieldError::new(field, reason), "access log query")
}

/// Turns a query into a filter, confined to what the author may see: an auditor everything, a
/// patient their own history, anyone else its own requests.
pub fn filter_for(
    ctx: &NodeContext,
    author: PartyId,
    role: Role,
    q: &pb::AccessLogQuery,
) -> Result<AuditFilter, Status> {
    let party = |bytes: &[u8], field: &str| -> Result<Option<PartyId>, Status> {
        if bytes.is_empty() {
            Ok(None)
        } else {
            PartyId::from_field(bytes, field)
                .map(Some)
                .map_err(|e| field_status(e, "access log query"))
        }
    };
    let mut filter = AuditFilter {
        patient: party(&q.patient, "query.patient")?,
        requesters: party(&q.requester, "query.requester")?.map(|p| BTreeSet::from([p])),
        ..Default::default()
    };
    if !q.record_id.is_empty() {
        filter.record = Some(
            RecordId::from_field(&q.record_id, "query.record_id")
                .map_err(|e| field_status(e, "access log query"))?,
        );
    }
    if !q.organisation.is_empty() {
        let members: BTreeSet<PartyId> = ctx.core.with_state(|s| {
            s.parties()
                .into_iter()
                .filter(|(_, p)| p.organisation.as_str() == q.organisation)
                .map(|(id, _)| id)
                .collect()
        });
        filter.requesters = Some(match filter.requesters.take() {
            Some(one) => one.intersection(&members).copied().collect(),
            None => members,
        });
    }
    if !q.purpose.is_empty() {
        let purpose =
            Purpose::parse(&q.purpose).map_err(|e| bad("query.purpose", e.to_string()))?;
        filter.purposes = Some(purpose.descendants().collect());
    }
    if q.mode != 0 {
        filter.mode = Some(
            AccessMode::from_wire(q.mode, "query.mode")
                .map_err(|e| field_status(e, "access log query"))?,
        );
    }
    filter.granted = match pb::Decision::try_from(q.decision) {
        Ok(pb::Decision::Any) => None,
        Ok(pb::Decision::Granted) => Some(true),
        Ok(pb::Decision::Denied) => Some(false),
        Err(_) => {
            return Err(bad(
                "query.decision",
                format!("unknown value {}", q.decision),
            ));
        }
    };
    filter.break_glass_only = q.break_glass_only;
    if q.from_ms != 0 {
        filter.from = Some(Timestamp(q.from_ms));
    }
    if q.to_ms != 0 {
        filter.to = Some(Timestamp(q.to_ms));
    }
    match role {
        Role::Auditor => {}
        Role::Patient => match filter.patient {
            Some(p) if p != author => {
                return Err(Status::permission_denied(format!(
                    "query.patient: a patient may read only their own history, not that of {}",
                    p.short()
                )));
            }
            _ => filter.patient = Some(author),
        },
        _ => {
            if let Some(r) = &filter.requesters
                && r.iter().any(|p| *p != author)
            {
                return Err(Status::permission_denied(
                    "query.requester: a partner or custodian may read only its own requests",
                ));
            }
            filter.requesters = Some(BTreeSet::from([author]));
        }
    }
    Ok(filter)
}

type EntryStream = Pin<Box<dyn Stream<Item = Result<pb::AuditEntry, Status>> + Send>>;

#[tonic::async_trait]
impl AuditService for AuditRpc {
    #[instrument(name = "audit.query", skip_all)]
    async fn query_access_log(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::AccessLogPage>, Status> {
        let (read, party) = authorize_read(&self.ctx, request.get_ref(), QUERY_ACCESS_LOG)?;
        let q: pb::AccessLogQuery = read
            .query()
            .map_err(|e| field_status(e, "access log query"))?;
        let filter = filter_for(&self.ctx, read.author, party.role, &q)?;
        let limit = match q.page_size {
            0 => DEFAULT_PAGE,
            n if n > MAX_PAGE => {
                return Err(bad(
                    "query.page_size",
                    format!("at most {MAX_PAGE}, got {n}"),
                ));
            }
            n => n,
        } as usize;
        let after = match q.cursor.len() {
            0 => None,
            8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&q.cursor);
                Some(u64::from_be_bytes(b))
            }
            n => return Err(bad("query.cursor", format!("expected 8 bytes, got {n}"))),
        };
        let page = self
            .ctx
            .core
            .store()
            .query_decisions(&filter, after, limit)
            .map_err(internal)?;
        let mut entries = Vec::with_capacity(page.decisions.len());
        for (index, decision) in &page.decisions {
            let releases = self
                .ctx
                .core
                .store()
                .releases(&decision.request_id)
                .map_err(internal)?
                .into_iter()
                .map(|i| prove_entry(&self.ctx, i))
                .collect::<Result<_, _>>()?;
            entries.push(pb::AuditEntry {
                decision: Some(decision.into()),
                proven: Some(prove_entry(&self.ctx, *index)?),
                releases,
            });
        }
        Ok(Response::new(pb::AccessLogPage {
            entries,
            next_cursor: page.next.map_or(vec![], |n| n.to_be_bytes().to_vec()),
        }))
    }

    type StreamAccessLogStream = EntryStream;

    async fn stream_access_log(
        &self,
        _: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<Self::StreamAccessLogStream>, Status> {
        Err(Status::unimplemented(format!(
            "the live access-log stream {LATER}"
        )))
    }

    async fn export_bundle(
        &self,
        _: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::Bundle>, Status> {
        Err(Status::unimplemented(format!(
            "offline verification bundles {LATER}"
        )))
    }

    async fn export_csv(
        &self,
        _: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::Bundle>, Status> {
        Err(Status::unimplemented(format!("CSV export {LATER}")))
    }

    async fn export_fhir_audit_events(
        &self,
        _: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::Bundle>, Status> {
        Err(Status::unimplemented(format!(
            "FHIR AuditEvent export {LATER}"
        )))
    }

    async fn verify_chain(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::VerifyChainResponse>, Status> {
        authorize_read(&self.ctx, request.get_ref(), VERIFY_CHAIN)?;
        let store = self.ctx.core.store();
        let tip = store.tip().map_err(internal)?;
        let mut headers = Vec::with_capacity(tip as usize);
        for h in 1..=tip {
            let (header, cert) = store
                .header(h)
                .map_err(internal)?
                .ok_or_else(|| internal("missing header"))?;
            headers.push((header, cert, self.ctx.core.validators_at(h)));
        }
        custos_ledger::verify::verify_header_chain(
            self.ctx.core.genesis().chain_id.as_str(),
            &self.ctx.core.validators_at(1),
            &headers,
        )
        .map_err(|e| Status::data_loss(format!("chain verification failed: {e}")))?;
        let last = headers.last().map(|(h, _, _)| h.clone());
        Ok(Response::new(pb::VerifyChainResponse {
            verified_height: tip,
            log_size: last.as_ref().map_or(0, |h| h.log_size),
            log_root: last.map_or(vec![], |h| h.log_root.0.to_vec()),
            note:
                "the server's own check; verify offline with `custos audit verify` to trust no node"
                    .into(),
        }))
    }
}
