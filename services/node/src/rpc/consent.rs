//! `custos.consent.v1.ConsentService`: parties, records and consents.

use custos_client::methods::{GET_CONSENT, GET_RECORD};
use custos_consent::{ConsentState, RecordState};
use custos_proto::consent::v1 as pb;
use custos_proto::consent::v1::consent_service_server::ConsentService;
use custos_proto::ledger::v1 as ledger_pb;
use custos_types::{ConsentId, PartyId, RecordId, RequestId, Role, Timestamp, policy};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::{NodeContext, authorize_read, authorize_reader, field_status, permit};

/// Full method name of `ListConsents`, which a signed read must name.
pub const LIST_CONSENTS: &str = custos_client::methods::LIST_CONSENTS;

/// Full method name of `ExportFhirConsents`.
pub const EXPORT_FHIR_CONSENTS: &str = custos_client::methods::EXPORT_FHIR_CONSENTS;

/// The consent service.
pub struct ConsentRpc {
    ctx: NodeContext,
}

impl ConsentRpc {
    /// A service over `ctx`.
    pub fn new(ctx: NodeContext) -> Self {
        ConsentRpc { ctx }
    }
}

/// The wire form of a consent and its status.
pub fn consent_to_wire(id: &ConsentId, c: &ConsentState) -> pb::ConsentState {
    pb::ConsentState {
        consent_id: id.to_vec(),
        consent: Some((&c.consent).into()),
        granted_by: c.granted_by.to_vec(),
        granted_height: c.granted.0,
        revoked: c.revoked.is_some(),
        revoked_height: c.revoked.map_or(0, |h| h.0),
    }
}

fn record_to_wire(id: &RecordId, r: &RecordState) -> pb::Record {
    pb::Record {
        record_id: id.to_vec(),
        owner: r.owner.to_vec(),
        custodian: r.custodian.to_vec(),
        category: r.category.to_string(),
        ciphertext_digest: r.ciphertext_digest.0.to_vec(),
        attribute_commitment: r.attribute_commitment.map_or(vec![], |h| h.0.to_vec()),
        registered_height: r.registered.0,
        erased: r.erased.is_some(),
        erased_height: r.erased.map_or(0, |h| h.0),
    }
}

impl ConsentRpc {
    /// A patient's consents, for the patient, a delegate or an auditor (a signed read of
    /// `method` whose query is a `ListConsentsQuery`).
    fn consents_for(
        &self,
        wire: &ledger_pb::SignedRead,
        method: &str,
    ) -> Result<Vec<pb::ConsentState>, Status> {
        let (read, party) = authorize_read(&self.ctx, wire, method)?;
        let query: pb::ListConsentsQuery =
            read.query().map_err(|e| field_status(e, "list consents"))?;
        let patient = PartyId::from_field(&query.patient, "body.query.patient")
            .map_err(|e| field_status(e, "list consents"))?;
        let now = Timestamp::now();
        let allowed = read.author == patient
            || party.role == Role::Auditor
            || self
                .ctx
                .core
                .with_state(|s| s.is_delegate(&patient, &read.author, now));
        if !allowed {
            return Err(Status::permission_denied(format!(
                "{} may not read the consents of patient {}: only the patient, a delegate or an auditor may",
                read.author.short(),
                patient.short()
            )));
        }
        Ok(self.ctx.core.with_state(|s| {
            s.consents_of(&patient)
                .into_iter()
                .filter(|(_, c)| {
                    query.include_inactive
                        || (c.revoked.is_none() && c.consent.period.expires.is_none_or(|e| now < e))
                })
                .map(|(id, c)| consent_to_wire(&id, c))
                .collect()
        }))
    }
}

#[tonic::async_trait]
impl ConsentService for ConsentRpc {
    async fn get_party(
        &self,
        request: Request<pb::GetPartyRequest>,
    ) -> Result<Response<pb::Party>, Status> {
        let id = PartyId::from_field(&request.into_inner().party, "party")
            .map_err(|e| field_status(e, "get party"))?;
        let party = self
            .ctx
            .core
            .with_state(|s| s.party(&id).cloned())
            .ok_or_else(|| Status::not_found(format!("party: {} is not registered", id.short())))?;
        Ok(Response::new(pb::Party {
            party: id.to_vec(),
            role: party.role.to_wire(),
            encryption_key: party.encryption_key.to_vec(),
            organisation: party.organisation.as_str().to_string(),
            registered_height: party.registered.0,
            member: party.member,
        }))
    }

    #[instrument(name = "consent.record", skip_all)]
    async fn get_record(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::Record>, Status> {
        let (read, reader) = authorize_reader(&self.ctx, request.get_ref(), GET_RECORD)?;
        let query: pb::GetRecordRequest =
            read.query().map_err(|e| field_status(e, "get record"))?;
        let id = RecordId::from_field(&query.record_id, "body.query.record_id")
            .map_err(|e| field_status(e, "get record"))?;
        let via = match query.request_id.as_slice() {
            [] => None,
            bytes => Some(
                RequestId::from_field(bytes, "body.query.request_id")
                    .map_err(|e| field_status(e, "get record"))?,
            ),
        };
        let record = self
            .ctx
            .core
            .with_state(|s| s.record(&id).cloned())
            .ok_or_else(|| {
                Status::not_found(format!("record_id: {} is not registered", id.short()))
            })?;
        // The record's parties read it; so does the requester of a granted request for it.
        let granted_to_reader = via.is_some_and(|request| {
            self.ctx.core.with_state(|s| {
                s.request(&request)
                    .is_some_and(|r| r.granted && r.record_id == id && r.requester == reader.party)
            })
        });
        if !granted_to_reader {
            let field = if via.is_some() {
                "body.query.request_id"
            } else {
                "body.query.record_id"
            };
            permit(
                &self.ctx,
                &reader,
                |_| Some(policy::record(record.owner, record.custodian)),
                field,
                &format!(
                    "record {} (and no granted request of the reader's for it)",
                    id.short()
                ),
            )?;
        }
        Ok(Response::new(record_to_wire(&id, &record)))
    }

    async fn get_verifying_key(
        &self,
        request: Request<pb::GetVerifyingKeyRequest>,
    ) -> Result<Response<pb::VerifyingKeyRegistration>, Status> {
        let circuit = request.into_inner().circuit;
        if circuit.is_empty() || circuit.len() > custos_types::tx::MAX_CIRCUIT_NAME {
            return Err(Status::invalid_argument(format!(
                "circuit: expected 1 to {} characters, got {}",
                custos_types::tx::MAX_CIRCUIT_NAME,
                circuit.len()
            )));
        }
        let key = self
            .ctx
            .core
            .with_state(|s| s.verifying_key(&circuit))
            .ok_or_else(|| {
                Status::not_found(format!(
                    "circuit: no verifying key is registered for `{circuit}`"
                ))
            })?;
        Ok(Response::new(pb::VerifyingKeyRegistration {
            circuit,
            key_hash: key.0.to_vec(),
        }))
    }

    #[instrument(name = "consent.consent", skip_all)]
    async fn get_consent(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::ConsentState>, Status> {
        let (read, reader) = authorize_reader(&self.ctx, request.get_ref(), GET_CONSENT)?;
        let query: pb::GetConsentRequest =
            read.query().map_err(|e| field_status(e, "get consent"))?;
        let id = ConsentId::from_field(&query.consent_id, "body.query.consent_id")
            .map_err(|e| field_status(e, "get consent"))?;
        let consent = self
            .ctx
            .core
            .with_state(|s| s.consent(&id).cloned())
            .ok_or_else(|| {
                Status::not_found(format!("consent_id: {} does not exist", id.short()))
            })?;
        permit(
            &self.ctx,
            &reader,
            |_| {
                Some(policy::consent(
                    consent.consent.patient,
                    consent.consent.grantee,
                    consent.granted_by,
                ))
            },
            "body.query.consent_id",
            &format!("consent {}", id.short()),
        )?;
        Ok(Response::new(consent_to_wire(&id, &consent)))
    }

    #[instrument(name = "consent.list", skip_all)]
    async fn list_consents(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        let consents = self.consents_for(request.get_ref(), LIST_CONSENTS)?;
        Ok(Response::new(pb::ListConsentsResponse { consents }))
    }

    #[instrument(name = "consent.export_fhir", skip_all)]
    async fn export_fhir_consents(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::FhirExport>, Status> {
        let consents = self.consents_for(request.get_ref(), EXPORT_FHIR_CONSENTS)?;
        let bundle = custos_client::report::fhir_consent_bundle(&consents, Timestamp::now())
            .map_err(super::internal)?;
        Ok(Response::new(pb::FhirExport {
            json: bundle.to_string(),
        }))
    }
}
