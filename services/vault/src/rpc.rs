//! `custos.vault.v1.VaultService`: wire messages in, domain types through validation, statuses
//! that name the field and the reason out.
//!
//! A release runs: signed read (signature, chain, method, freshness) → the node's decision with
//! its proof → [`GrantCheck::verify`] → the record, its owner and the requester's registered key
//! → the data key wrapped to the requester → every stored chunk read and checked (authenticated
//! under the data key, the stream's digest equal to the registered one) → the `ConfirmRelease`
//! transaction finalized on the ledger → only then the header and the ciphertext chunks stream
//! out. Damage found on the way is never confirmed: the release is refused (`DATA_LOSS`,
//! `vault_damaged`, naming the record and the part), reported on the ledger as a vault refusal,
//! and logged at most once per [`DAMAGE_LOG_INTERVAL`].

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custos_crypto::{Hash, PartyKeys, sha256};
use custos_ledger::ValidatorSet;
use custos_proto::access::v1 as access_pb;
use custos_proto::ledger::v1 as ledger_pb;
use custos_proto::vault::v1 as pb;
use custos_proto::vault::v1::vault_service_server::VaultService;
use custos_types::tx::{ConfirmRelease, RegisterRecord, ReportRefusal};
use custos_types::{
    FieldError, Genesis, Height, PartyId, RecordId, ReplayGuard, RequestId, Role, SignedRead,
    SignedTransaction, Timestamp, TxId, TxKind,
};
use custos_vault::{
    Damage, EncryptionKey, NewRecord, Registration, ReleaseHeader, Vault, VaultError, VaultStore,
    WrappedKey,
};
use prost::Message;
use rand_core::{OsRng, RngCore};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, instrument};

use crate::aggregate::{AggregateError, Aggregates, CohortRows};
use crate::gateway::{GatewayError, LedgerGateway};
use crate::grant::{Denial, GrantCheck, ReleaseKind};

/// Full gRPC method names, as signed reads name them.
pub mod methods {
    /// `PutRecord`.
    pub const PUT: &str = "/custos.vault.v1.VaultService/PutRecord";
    /// `FetchRecord`.
    pub const FETCH: &str = "/custos.vault.v1.VaultService/FetchRecord";
    /// `FetchOwnRecord`.
    pub const FETCH_OWN: &str = "/custos.vault.v1.VaultService/FetchOwnRecord";
    /// `ListRecords`.
    pub const LIST: &str = "/custos.vault.v1.VaultService/ListRecords";
    /// `RotateKey`.
    pub const ROTATE: &str = "/custos.vault.v1.VaultService/RotateKey";
    /// `ProvePredicate`.
    pub const PROVE: &str = "/custos.vault.v1.VaultService/ProvePredicate";
    /// `GetCohortTable`.
    pub const COHORT_TABLE: &str = "/custos.vault.v1.VaultService/GetCohortTable";
    /// `ReleaseAggregate`.
    pub const RELEASE_AGGREGATE: &str = "/custos.vault.v1.VaultService/ReleaseAggregate";
}

/// Largest encrypted result `ReleaseAggregate` accepts.
pub const MAX_RESULT_BYTES: usize = 1024 * 1024;
/// Bytes per `data` message of the vault's byte streams.
const SLICE_BYTES: usize = 1024 * 1024;

/// Bounds on what callers may ask of the vault.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest record, in plaintext bytes.
    pub max_record_bytes: u64,
    /// Largest `data` message of a PutRecord stream.
    pub max_data_message_bytes: usize,
    /// How old (block time) a granted decision may be when its release is asked for.
    pub max_decision_age_ms: i64,
    /// Chunks buffered ahead of a slow reader.
    pub stream_buffer_chunks: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 64 * 1024 * 1024 * 1024,
            max_data_message_bytes: 1024 * 1024,
            max_decision_age_ms: 60 * 60 * 1000,
            stream_buffer_chunks: 8,
        }
    }
}

/// Shortest time between two log lines about damaged records.
pub const DAMAGE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Admits one log line per [`DAMAGE_LOG_INTERVAL`] and counts those it holds back, so that a
/// client retrying a damaged record cannot flood the log.
#[derive(Default)]
struct LogLimit {
    // When a line was last admitted, and lines held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogLimit {
    /// `Some(lines held back since the last admitted one)` if a line may be logged now.
    fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < DAMAGE_LOG_INTERVAL => {
                state.1 += 1;
                None
            }
            _ => {
                state.0 = Some(now);
                Some(std::mem::take(&mut state.1))
            }
        }
    }
}

struct Inner<S, G> {
    vault: Arc<Vault<S>>,
    gateway: G,
    keys: PartyKeys,
    genesis: Genesis,
    trusted: ValidatorSet,
    limits: Limits,
    // The signed reads accepted within the freshness window: each is served once.
    reads: std::sync::Mutex<ReplayGuard>,
    // How many signed reads the vault serves a second, in all and per author.
    read_budget: std::sync::Mutex<custos_types::ReadBudget>,
    prover: std::sync::OnceLock<Arc<custos_circuits::ProvingKeyArtifact>>,
    aggregates: std::sync::OnceLock<Arc<Aggregates>>,
    damage_log: LogLimit,
}

/// The vault service over a vault of store `S`, talking to the ledger through `G`.
pub struct VaultRpc<S, G> {
    inner: Arc<Inner<S, G>>,
}

impl<S, G> Clone for VaultRpc<S, G> {
    fn clone(&self) -> Self {
        VaultRpc {
            inner: self.inner.clone(),
        }
    }
}

/// A refused wire field: INVALID_ARGUMENT, or UNAUTHENTICATED for a signature, with
/// `field: reason`; logged as a rejection.
pub fn field_status(error: FieldError, what: &str) -> Status {
    custos_client::refused!(what, field = %error.field, reason = %error.reason, "vault refused");
    if error.field.starts_with("signature") || error.field.starts_with("author") {
        Status::unauthenticated(error.to_string())
    } else {
        Status::invalid_argument(error.to_string())
    }
}

/// A refused release: PERMISSION_DENIED (DATA_LOSS for damage) whose message starts with the
/// denial's code; logged (damage is logged where it is found, rate-limited).
pub fn deny(denial: Denial) -> Status {
    if !denial.is_damage() {
        custos_client::refused!(code = denial.code(), reason = %denial, "vault release refused");
    }
    denial_status(&denial, denial.to_string())
}

/// DATA_LOSS for damage, PERMISSION_DENIED for every other refusal.
fn denial_status(denial: &Denial, message: String) -> Status {
    if denial.is_damage() {
        Status::data_loss(message)
    } else {
        Status::permission_denied(message)
    }
}

/// An internal failure: logged in full, reported without detail.
pub fn internal(error: impl std::fmt::Display) -> Status {
    tracing::error!(target: "custos::vault", %error, "internal error");
    Status::internal("internal error; see the vault's log")
}

fn vault_status(error: VaultError) -> Status {
    match error {
        VaultError::UnknownRecord(r) => {
            Status::not_found(format!("record_id: record {r} is not in this vault"))
        }
        VaultError::RecordExists(r) => Status::already_exists(format!(
            "record_id: record {r} is already in this vault or being put"
        )),
        VaultError::SizeMismatch { .. } => {
            field_status(FieldError::new("data", error.to_string()), "put")
        }
        VaultError::Wrap(_) | VaultError::Stream(_) | VaultError::MissingChunk { .. } => {
            tracing::error!(target: "custos::vault", error = %error, "stored record fails its integrity check");
            Status::data_loss(error.to_string())
        }
        other => internal(other),
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;
type FetchStream = BoxStream<pb::FetchRecordChunk>;

/// A granted aggregate request, checked by the vault: its proven decision, the scope the
/// requester signed, the plan of its query and the cohort's rows in this vault's table.
struct GrantedCohort {
    aggregates: Arc<Aggregates>,
    scope: custos_types::AggregateScope,
    plan: custos_fhe::Plan,
    cohort_size: u64,
    rows: CohortRows,
}

fn aggregate_status(error: AggregateError) -> Status {
    match error {
        AggregateError::NoTable(_) => Status::failed_precondition(error.to_string()),
        AggregateError::Fhe(e) => Status::invalid_argument(e.to_string()),
        AggregateError::Store(_) => internal(error),
    }
}

/// Sends `header` then `payload` in slices over a bounded channel.
fn byte_stream<T: Send + 'static>(
    header: T,
    payload: Vec<u8>,
    data: fn(Vec<u8>) -> T,
    depth: usize,
) -> BoxStream<T> {
    let (tx, rx) = tokio::sync::mpsc::channel(depth.max(1));
    tokio::spawn(async move {
        if tx.send(Ok(header)).await.is_err() {
            return;
        }
        for slice in payload.chunks(SLICE_BYTES) {
            if tx.send(Ok(data(slice.to_vec()))).await.is_err() {
                return;
            }
        }
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

impl<S: VaultStore, G: LedgerGateway> VaultRpc<S, G> {
    /// A service over `vault`, signing with the custodian's `keys`, trusting only `genesis`'s
    /// validator set.
    pub fn new(
        vault: Arc<Vault<S>>,
        gateway: G,
        keys: PartyKeys,
        genesis: Genesis,
        limits: Limits,
    ) -> Result<Self, custos_client::VerifyError> {
        let trusted = custos_client::verify::genesis_validators(&genesis)?;
        Ok(VaultRpc {
            inner: Arc::new(Inner {
                vault,
                gateway,
                keys,
                genesis,
                trusted,
                limits,
                reads: Default::default(),
                read_budget: std::sync::Mutex::new(custos_types::ReadBudget::new(
                    custos_types::ReadLimits::default(),
                    std::time::Instant::now(),
                )),
                prover: std::sync::OnceLock::new(),
                aggregates: std::sync::OnceLock::new(),
                damage_log: LogLimit::default(),
            }),
        })
    }

    /// Gives the vault the predicate circuit's proving key, so it can answer `ProvePredicate`
    /// (once; a second key is refused).
    pub fn set_proving_key(&self, pk: custos_circuits::ProvingKeyArtifact) -> Result<(), String> {
        self.inner
            .prover
            .set(Arc::new(pk))
            .map_err(|_| "the vault already has a proving key".to_string())
    }

    /// Gives the vault its aggregate store (FHE key and encrypted tables), so records get
    /// aggregate rows at put and the aggregate methods are served (once).
    pub fn set_aggregates(&self, aggregates: Arc<Aggregates>) -> Result<(), String> {
        self.inner
            .aggregates
            .set(aggregates)
            .map_err(|_| "the vault already has an aggregate store".to_string())
    }

    /// The aggregate store, if any.
    pub fn aggregates(&self) -> Option<&Arc<Aggregates>> {
        self.inner.aggregates.get()
    }

    /// The vault.
    pub fn vault(&self) -> &Arc<Vault<S>> {
        &self.inner.vault
    }

    /// The custodian's keys.
    pub(crate) fn keys(&self) -> &PartyKeys {
        &self.inner.keys
    }

    fn custodian(&self) -> PartyId {
        PartyId(self.inner.keys.public())
    }

    /// Checks a signed read: the vault's read budget, signature, chain, method, freshness, the
    /// author's read budget and a nonce not seen within the freshness window. The vault's
    /// budget also bounds how fast its replay guard can fill (2,000 reads a second over the
    /// 60-second window is 120,000, far below the guard's capacity).
    fn authorize(&self, wire: &ledger_pb::SignedRead, method: &str) -> Result<SignedRead, Status> {
        custos_client::spend_read_budget(&self.inner.read_budget, None)?;
        let read = SignedRead::from_wire(wire).map_err(|e| {
            let status = field_status(e.clone(), "signed read");
            if e.field.ends_with("author") {
                Status::unauthenticated(e.to_string())
            } else {
                status
            }
        })?;
        let now = Timestamp::now();
        read.check_for(&self.inner.genesis.chain_id, method, now, "vault")
            .map_err(|e| field_status(e, "signed read"))?;
        custos_client::spend_read_budget(&self.inner.read_budget, Some(&read.author))?;
        custos_client::admit_read(&self.inner.reads, &read, now)?;
        Ok(read)
    }

    fn require_custodian(&self, read: &SignedRead, what: &str) -> Result<(), Status> {
        if read.author != self.custodian() {
            custos_client::refused!(author = %read.author.short(), what, "not the vault's custodian");
            return Err(Status::permission_denied(format!(
                "author: only the vault's custodian {} may {what}; signed by {}",
                self.custodian().short(),
                read.author.short()
            )));
        }
        Ok(())
    }

    async fn registered_patient_key(&self, owner: PartyId) -> Result<EncryptionKey, Status> {
        let party = self
            .inner
            .gateway
            .party(owner)
            .await
            .map_err(|e| e.to_status())?
            .ok_or_else(|| {
                field_status(
                    FieldError::new(
                        "header.owner",
                        format!("{} is not a registered party", owner.short()),
                    ),
                    "put",
                )
            })?;
        if party.role != Role::Patient.to_wire() {
            return Err(field_status(
                FieldError::new(
                    "header.owner",
                    format!("{} is not a patient", owner.short()),
                ),
                "put",
            ));
        }
        EncryptionKey::from_field(&party.encryption_key, "header.owner.encryption_key")
            .map_err(|e| field_status(e, "put"))
    }

    /// Refuses a release and, where the ledger knows the request and the signer is a registered
    /// party, records the refusal on the ledger (a `ReportRefusal`, finalized before the answer)
    /// so that the access log holds every denial, the vault's own included. A signer the ledger
    /// does not know is refused without a report, so strangers cannot make the vault write.
    async fn refuse(
        &self,
        request: RequestId,
        requester: PartyId,
        evidence: Hash,
        denial: Denial,
    ) -> Status {
        let Some(reason) = denial.ledger_reason() else {
            return deny(denial);
        };
        let inner = &self.inner;
        match inner.gateway.party(requester).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                custos_client::refused!(requester = %requester.short(), "refusal not reported: the signer is not a registered party");
                return deny(denial);
            }
            Err(e) => {
                custos_client::refused!(error = %e, "refusal not reported: the ledger is unavailable");
                return deny(denial);
            }
        }
        let report = TxKind::ReportRefusal(ReportRefusal {
            request_id: request,
            requester,
            reason,
            evidence_digest: evidence,
        });
        match inner.gateway.submit(&inner.keys, report).await {
            Ok(logged) => {
                let tx = hex::encode(&logged.tx_id);
                let message = format!(
                    "{denial} (refusal logged on the ledger: tx {tx} at height {})",
                    logged.height
                );
                if !denial.is_damage() {
                    custos_client::refused!(code = denial.code(), reason = %denial, report = %tx, height = logged.height, "vault release refused and reported on the ledger");
                }
                denial_status(&denial, message)
            }
            Err(e) => {
                // The request is unknown to the ledger (nothing to attach the denial to) or the
                // node failed: the refusal stands, logged here only.
                custos_client::refused!(error = %e, "refusal not reported");
                deny(denial)
            }
        }
    }

    /// Refuses a release because `error` found the vault's copy of `record` damaged: logged
    /// (rate-limited), reported on the ledger as a `vault_damaged` refusal, answered with
    /// DATA_LOSS naming the record and the damaged part. Nothing is confirmed or deleted.
    async fn damaged(
        &self,
        request: RequestId,
        requester: PartyId,
        evidence: Hash,
        record: RecordId,
        error: VaultError,
    ) -> Status {
        let damage = Damage::from_error(record, &error).unwrap_or_else(|| Damage {
            record,
            part: custos_vault::Part::Stream,
            reason: error.to_string(),
        });
        if let Some(held_back) = self.inner.damage_log.admit() {
            tracing::error!(
                target: "custos::vault",
                record = %record.to_hex(),
                part = %damage.part,
                reason = %damage.reason,
                request = %request.short(),
                held_back,
                "damaged record: release refused, nothing confirmed; restore it from a backup \
                 (`custos vault scrub` lists every damaged record)"
            );
        }
        self.refuse(
            request,
            requester,
            evidence,
            Denial::Damaged {
                request,
                damage: damage.to_string(),
            },
        )
        .await
    }

    /// Logs a release on the ledger (`ConfirmRelease` with the digest of what is released) and
    /// waits until it is final: nothing leaves the vault before.
    async fn confirm(
        &self,
        request: RequestId,
        digest: Hash,
    ) -> Result<ledger_pb::SubmitResponse, Status> {
        let inner = &self.inner;
        let confirmed = inner
            .gateway
            .submit(
                &inner.keys,
                TxKind::ConfirmRelease(ConfirmRelease {
                    request_id: request,
                    release_digest: digest,
                }),
            )
            .await;
        match confirmed {
            Ok(response) => Ok(response),
            Err(GatewayError::Status(s))
                if matches!(
                    s.code(),
                    tonic::Code::FailedPrecondition
                        | tonic::Code::PermissionDenied
                        | tonic::Code::NotFound
                        | tonic::Code::AlreadyExists
                        | tonic::Code::InvalidArgument
                ) =>
            {
                Err(deny(Denial::NotConfirmed {
                    request,
                    reason: s.message().to_string(),
                }))
            }
            Err(e) => Err(e.to_status()),
        }
    }

    /// The node's decision on `request`, verified by the vault itself for a release of `kind`
    /// to `requester`, and the record it grants, held here by the same owner. Refusals are
    /// reported with `evidence` (the refused read's digest).
    async fn granted_record(
        &self,
        request: RequestId,
        requester: PartyId,
        kind: ReleaseKind,
        evidence: Hash,
    ) -> Result<(custos_types::Decision, custos_vault::RecordMeta), Status> {
        let inner = &self.inner;
        let answer = inner
            .gateway
            .decision(&inner.keys, request)
            .await
            .map_err(|e| e.to_status())?;
        let check = GrantCheck {
            genesis: &inner.genesis,
            trusted: &inner.trusted,
            now: Timestamp::now(),
            max_age_ms: inner.limits.max_decision_age_ms,
        };
        let decision = match check.verify(request, requester, kind, answer.as_ref()) {
            Ok(decision) => decision,
            Err(denial) => return Err(self.refuse(request, requester, evidence, denial).await),
        };
        let record = decision.record_id;
        let meta = match inner.vault.meta(&record) {
            Ok(meta) => meta,
            Err(VaultError::UnknownRecord(r)) => return Err(deny(Denial::UnknownRecord(r))),
            Err(e) if e.is_damage() => {
                return Err(self.damaged(request, requester, evidence, record, e).await);
            }
            Err(e) => return Err(internal(e)),
        };
        if decision.patient != Some(meta.owner) {
            return Err(self
                .refuse(request, requester, evidence, Denial::OwnerMismatch(record))
                .await);
        }
        Ok((decision, meta))
    }

    /// The granted aggregate request `request` of `requester`, verified by the vault: the proven
    /// decision, then every page of the ledger's cohort checked against the decision's root and
    /// size, the scope naming this vault's custodian, the query planned, the ids mapped to rows.
    async fn granted_cohort(
        &self,
        request: RequestId,
        requester: PartyId,
        evidence: Hash,
    ) -> Result<GrantedCohort, Status> {
        let inner = &self.inner;
        let Some(aggregates) = inner.aggregates.get().cloned() else {
            return Err(Status::failed_precondition(
                "this vault serves no aggregates (it has no aggregate store)",
            ));
        };
        let answer = inner
            .gateway
            .decision(&inner.keys, request)
            .await
            .map_err(|e| e.to_status())?;
        let check = GrantCheck {
            genesis: &inner.genesis,
            trusted: &inner.trusted,
            now: Timestamp::now(),
            max_age_ms: inner.limits.max_decision_age_ms,
        };
        let decision =
            match check.verify(request, requester, ReleaseKind::Aggregate, answer.as_ref()) {
                Ok(decision) => decision,
                Err(denial) => return Err(self.refuse(request, requester, evidence, denial).await),
            };
        let unverified = |reason: String| Denial::CohortUnverified { request, reason };
        let Some(size) = decision.cohort.as_ref().map(|c| c.size) else {
            return Err(self
                .refuse(
                    request,
                    requester,
                    evidence,
                    unverified("the decision fixes no cohort".into()),
                )
                .await);
        };
        // Every page, collected and bounded by the client; a malformed answer is the node's
        // failure to prove the cohort, reported like a failed verification.
        let (first, ids) = match inner.gateway.cohort(&inner.keys, request).await {
            Ok(answer) => answer,
            Err(GatewayError::Status(s)) => return Err(s),
            Err(e) => {
                return Err(self
                    .refuse(request, requester, evidence, unverified(e.to_string()))
                    .await);
            }
        };
        let verified = match custos_client::cohort::verify_cohort_response(
            &inner.genesis,
            &inner.trusted,
            &first,
            ids,
        ) {
            Ok(v) if v.decision == decision => v,
            Ok(_) => {
                return Err(self
                    .refuse(
                        request,
                        requester,
                        evidence,
                        unverified("the cohort's decision is another one".into()),
                    )
                    .await);
            }
            Err(e) => {
                return Err(self
                    .refuse(request, requester, evidence, unverified(e.to_string()))
                    .await);
            }
        };
        if verified.scope.custodian != self.custodian() {
            return Err(self
                .refuse(
                    request,
                    requester,
                    evidence,
                    Denial::NotOurCohort {
                        request,
                        custodian: verified.scope.custodian,
                    },
                )
                .await);
        }
        let plan = custos_fhe::explain(aggregates.schema(), &verified.scope.text).map_err(|e| {
            Status::invalid_argument(format!("query: the granted query cannot be planned: {e}"))
        })?;
        let rows = aggregates
            .cohort(verified.scope.category.as_str(), &verified.ids)
            .map_err(aggregate_status)?;
        Ok(GrantedCohort {
            aggregates,
            scope: verified.scope,
            plan,
            cohort_size: size,
            rows,
        })
    }

    async fn cohort_table(
        &self,
        wire: ledger_pb::SignedRead,
    ) -> Result<BoxStream<pb::CohortTableChunk>, Status> {
        let read = self.authorize(&wire, methods::COHORT_TABLE)?;
        let query: pb::CohortTableQuery =
            read.query().map_err(|e| field_status(e, "cohort table"))?;
        let request = RequestId::from_field(&query.request_id, "body.query.request_id")
            .map_err(|e| field_status(e, "cohort table"))?;
        let evidence = sha256(&wire.encode_to_vec());
        let granted = self.granted_cohort(request, read.author, evidence).await?;
        let GrantedCohort {
            aggregates,
            scope,
            plan,
            cohort_size,
            rows,
        } = granted;
        let category = scope.category.as_str().to_string();
        let (plan_text, key_id) = (plan.to_string(), aggregates.key_id());
        let cohort = rows.cohort.clone();
        let payload = tokio::task::spawn_blocking(move || {
            aggregates.payload(&category, &plan, &cohort, &request)
        })
        .await
        .map_err(internal)?
        .map_err(aggregate_status)?;
        info!(
            target: "custos::vault",
            request = %request.short(),
            requester = %read.author.short(),
            cohort = cohort_size,
            rows = rows.cohort.len(),
            bytes = payload.len(),
            "encrypted cohort sent to the requester's compute worker (ciphertexts only)"
        );
        let header = pb::CohortTableHeader {
            request_id: request.to_vec(),
            query: scope.text.clone(),
            plan: plan_text,
            cohort_size,
            cohort_rows: rows.cohort.len() as u64,
            table_rows: rows.cohort.len() as u64,
            payload_bytes: payload.len() as u64,
            payload_digest: sha256(&payload).0.to_vec(),
            key_id: key_id.0.to_vec(),
        };
        Ok(byte_stream(
            pb::CohortTableChunk {
                part: Some(pb::cohort_table_chunk::Part::Header(header)),
            },
            payload,
            |d| pb::CohortTableChunk {
                part: Some(pb::cohort_table_chunk::Part::Data(d)),
            },
            self.inner.limits.stream_buffer_chunks,
        ))
    }

    async fn release_aggregate_impl(
        &self,
        message: pb::ReleaseAggregateRequest,
    ) -> Result<pb::AggregateRelease, Status> {
        let wire = message.read.ok_or_else(|| {
            field_status(
                FieldError::new("read", "required field is missing"),
                "release aggregate",
            )
        })?;
        let read = self.authorize(&wire, methods::RELEASE_AGGREGATE)?;
        let query: pb::ReleaseAggregateQuery = read
            .query()
            .map_err(|e| field_status(e, "release aggregate"))?;
        let request = RequestId::from_field(&query.request_id, "read.body.query.request_id")
            .map_err(|e| field_status(e, "release aggregate"))?;
        let bytes = message.result;
        if bytes.len() > MAX_RESULT_BYTES {
            return Err(field_status(
                FieldError::new(
                    "result",
                    format!("at most {MAX_RESULT_BYTES} bytes, got {}", bytes.len()),
                ),
                "release aggregate",
            ));
        }
        let result_digest = sha256(&bytes);
        if result_digest.0.as_slice() != query.result_digest.as_slice() {
            return Err(field_status(
                FieldError::new(
                    "result",
                    "its SHA-256 is not the result_digest the requester signed",
                ),
                "release aggregate",
            ));
        }
        let result = custos_fhe::EncryptedResult::from_bytes(&bytes).map_err(|e| {
            field_status(
                FieldError::new("result", e.to_string()),
                "release aggregate",
            )
        })?;
        let requester = read.author;
        let evidence = sha256(&wire.encode_to_vec());
        let granted = self.granted_cohort(request, requester, evidence).await?;
        let category = granted.scope.category.as_str().to_string();
        let (aggregates, plan, cohort) = (
            granted.aggregates.clone(),
            granted.plan.clone(),
            granted.rows.cohort.clone(),
        );
        let k_min = aggregates.k_min();
        let checked = tokio::task::spawn_blocking(move || {
            aggregates.release(&category, &plan, &cohort, &request, &result)
        })
        .await
        .map_err(internal)?;
        let value = match checked {
            Ok(value) => value,
            Err(AggregateError::Fhe(custos_fhe::Error::CohortTooSmall { k_min, got })) => {
                return Err(self
                    .refuse(
                        request,
                        requester,
                        evidence,
                        Denial::BelowK {
                            request,
                            k_min,
                            got,
                        },
                    )
                    .await);
            }
            Err(AggregateError::Fhe(
                e @ (custos_fhe::Error::Provenance(_) | custos_fhe::Error::KeyMismatch(_)),
            )) => {
                return Err(self
                    .refuse(
                        request,
                        requester,
                        evidence,
                        Denial::ForgedResult {
                            request,
                            reason: e.to_string(),
                        },
                    )
                    .await);
            }
            Err(e) => return Err(aggregate_status(e)),
        };
        let (aggregate, count, number) = match value {
            custos_fhe::AggregateValue::Count(c) => ("count", c, None),
            custos_fhe::AggregateValue::Sum { total, count, .. } => ("sum", count, Some(total)),
            custos_fhe::AggregateValue::Mean { mean, count, .. } => ("mean", count, mean),
        };
        let released = format!(
            "{aggregate};count={count};value={}",
            number.map_or("none".to_string(), |v| format!("{v:?}"))
        );
        let digest = custos_crypto::sha256_parts(&[
            b"custos/aggregate-release/v1",
            &request.0.0,
            &result_digest.0,
            released.as_bytes(),
        ]);
        let confirmed = self.confirm(request, digest).await?;
        info!(
            target: "custos::vault",
            request = %request.short(),
            requester = %requester.short(),
            cohort = granted.cohort_size,
            k_min,
            confirmed_at = confirmed.height,
            "aggregate checked, decrypted and released after its digest was confirmed on the ledger"
        );
        Ok(pb::AggregateRelease {
            request_id: request.to_vec(),
            query: granted.scope.text,
            aggregate: aggregate.into(),
            count,
            value: number,
            cohort_size: granted.cohort_size,
            cohort_rows: granted.rows.cohort.len() as u64,
            release_digest: digest.0.to_vec(),
            release_tx_id: confirmed.tx_id,
            release_height: confirmed.height,
        })
    }

    async fn fhe_keys(
        &self,
        request: pb::GetFheKeysRequest,
    ) -> Result<BoxStream<pb::FheKeysChunk>, Status> {
        let Some(aggregates) = self.inner.aggregates.get().cloned() else {
            return Err(Status::failed_precondition(
                "this vault serves no aggregates (it has no aggregate store)",
            ));
        };
        let (schema, key_id) = (aggregates.schema().to_string(), aggregates.key_id());
        let schema_encoding = aggregates.schema().to_bytes().map_err(internal)?;
        let material = tokio::task::spawn_blocking(move || aggregates.public_material())
            .await
            .map_err(internal)?
            .map_err(aggregate_status)?;
        let mut payload = material.public_key.clone();
        if request.server_key {
            payload.extend_from_slice(&material.server_key);
        }
        let header = pb::FheKeysHeader {
            key_id: key_id.0.to_vec(),
            schema,
            schema_encoding,
            public_key_bytes: material.public_key.len() as u64,
            server_key_bytes: if request.server_key {
                material.server_key.len() as u64
            } else {
                0
            },
        };
        Ok(byte_stream(
            pb::FheKeysChunk {
                part: Some(pb::fhe_keys_chunk::Part::Header(header)),
            },
            payload,
            |d| pb::FheKeysChunk {
                part: Some(pb::fhe_keys_chunk::Part::Data(d)),
            },
            self.inner.limits.stream_buffer_chunks,
        ))
    }

    async fn prove(
        &self,
        wire: ledger_pb::SignedRead,
    ) -> Result<access_pb::PredicateProofResponse, Status> {
        use crate::predicate::{ProveError, predicate_of, prove};
        let inner = &self.inner;
        let read = self.authorize(&wire, methods::PROVE)?;
        let query: pb::ProvePredicateQuery = read.query().map_err(|e| field_status(e, "prove"))?;
        let request = RequestId::from_field(&query.request_id, "body.query.request_id")
            .map_err(|e| field_status(e, "prove"))?;
        let requester = read.author;
        let Some(pk) = inner.prover.get().cloned() else {
            return Err(Status::failed_precondition(
                "this vault has no proving key for predicate proofs (start it with --proving-key)",
            ));
        };
        let evidence = sha256(&wire.encode_to_vec());
        let (decision, meta) = self
            .granted_record(request, requester, ReleaseKind::Predicate, evidence)
            .await?;
        let record = decision.record_id;
        let predicate = predicate_of(request, &query.request_body, record)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let Some(salt) = meta.commitment_salt else {
            return Err(Status::failed_precondition(
                ProveError::NoCommitment(record.to_hex()).to_string(),
            ));
        };
        let attributes = meta.attributes.clone();
        let statement = predicate.clone();
        let proved = tokio::task::spawn_blocking(move || {
            prove(
                &pk,
                &attributes,
                &salt,
                statement,
                request,
                requester,
                &mut OsRng,
            )
            .map(|made| (made, pk))
        })
        .await
        .map_err(internal)?;
        let ((proof, public), pk) = match proved {
            Ok(made) => made,
            Err(ProveError::False(text)) => {
                // The one bit is released too: logged first, like any release.
                let digest = custos_crypto::sha256_parts(&[
                    b"custos/predicate-false/v1",
                    &request.0.0,
                    &predicate.digest(),
                ]);
                let logged = self.confirm(request, digest).await?;
                return Err(Status::failed_precondition(format!(
                    "predicate_false: the record's attributes do not satisfy `{text}` \
                     (released as false, logged at height {})",
                    logged.height
                )));
            }
            Err(e @ ProveError::Body(_)) => return Err(Status::invalid_argument(e.to_string())),
            Err(e) => return Err(internal(e)),
        };
        let confirmed = self.confirm(request, Hash(proof.digest())).await?;
        info!(
            target: "custos::vault",
            request = %request.short(),
            record = %record.short(),
            requester = %requester.short(),
            confirmed_at = confirmed.height,
            "predicate proof released after its digest was confirmed on the ledger"
        );
        let public_inputs = public
            .to_field_elements()
            .iter()
            .map(|f| {
                let mut bytes = Vec::with_capacity(32);
                ark_serialize::CanonicalSerialize::serialize_compressed(f, &mut bytes)
                    .map(|()| bytes)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        Ok(access_pb::PredicateProofResponse {
            request_id: request.to_vec(),
            proof: proof.to_bytes().to_vec(),
            public_inputs,
            commitment: public.commitment.to_bytes().to_vec(),
            predicate: public.predicate.to_canonical_bytes().to_vec(),
            verifying_key_id: pk.verifying_key().id().0.to_vec(),
            release_tx_id: confirmed.tx_id,
            release_height: confirmed.height,
        })
    }

    /// The record's data key wrapped for a release of `kind` to `requester`'s key `named`: the
    /// owner's stored wrap when it is to that key, else a fresh wrap.
    fn wrap_for(
        &self,
        kind: ReleaseKind,
        record: RecordId,
        requester: PartyId,
        named: &EncryptionKey,
    ) -> Result<WrappedKey, VaultError> {
        let vault = &self.inner.vault;
        if kind == ReleaseKind::Owner {
            let (_, stored) = vault.owner_key(&record)?;
            if stored.recipient_key == *named {
                return Ok(stored);
            }
        }
        // `check.verify` refused any non-raw grant before this is called.
        let (_, fresh) = vault.release(&record, requester, named, &mut OsRng)?;
        Ok(fresh)
    }

    async fn release(
        &self,
        wire: ledger_pb::SignedRead,
        method: &str,
        kind: ReleaseKind,
    ) -> Result<FetchStream, Status> {
        let inner = &self.inner;
        let read = self.authorize(&wire, method)?;
        let query: pb::FetchRecordQuery = read.query().map_err(|e| field_status(e, "fetch"))?;
        let request = RequestId::from_field(&query.request_id, "body.query.request_id")
            .map_err(|e| field_status(e, "fetch"))?;
        let named = EncryptionKey::from_field(&query.recipient_key, "body.query.recipient_key")
            .map_err(|e| field_status(e, "fetch"))?;
        let requester = read.author;
        let evidence = sha256(&wire.encode_to_vec());
        let refuse = |denial: Denial| self.refuse(request, requester, evidence, denial);
        let (decision, meta) = self
            .granted_record(request, requester, kind, evidence)
            .await?;
        let record = decision.record_id;
        // The key the requester signed for must be the one it registered: a node that lies
        // about the registration can then only cause a refusal, never a wrap to its own key.
        let registered = inner
            .gateway
            .party(requester)
            .await
            .map_err(|e| e.to_status())?
            .map(|p| p.encryption_key)
            .unwrap_or_default();
        if registered != named.0 {
            return Err(refuse(Denial::RecipientKey {
                party: requester,
                named: named.to_hex(),
                registered: hex::encode(&registered),
            })
            .await);
        }
        let wrapped = match self.wrap_for(kind, record, requester, &named) {
            Ok(wrapped) => wrapped,
            Err(e) if e.is_damage() => {
                return Err(self.damaged(request, requester, evidence, record, e).await);
            }
            Err(e) => return Err(vault_status(e)),
        };
        // Read and check everything the stream will send before the release is confirmed.
        let (vault, checked) = (inner.vault.clone(), meta.clone());
        match tokio::task::spawn_blocking(move || vault.verify(&checked))
            .await
            .map_err(internal)?
        {
            Ok(_) => {}
            Err(e) if e.is_damage() => {
                return Err(self.damaged(request, requester, evidence, record, e).await);
            }
            Err(e) => return Err(vault_status(e)),
        }
        let mut header = ReleaseHeader::new(request, &meta, wrapped, TxId(Hash::ZERO));
        // Log before release: the confirmation is final before a byte of the record leaves.
        let confirmed = self.confirm(request, header.release_digest).await?;
        header.confirm_tx = TxId::from_field(&confirmed.tx_id, "tx_id").map_err(internal)?;
        info!(
            target: "custos::vault",
            request = %request.short(),
            record = %record.short(),
            requester = %requester.short(),
            chunks = meta.chunk_count,
            confirmed_at = confirmed.height,
            "release confirmed on the ledger; streaming the wrapped key and ciphertext"
        );
        let (tx, rx) = tokio::sync::mpsc::channel(inner.limits.stream_buffer_chunks.max(1));
        let vault = inner.vault.clone();
        let first = pb::FetchRecordChunk {
            part: Some(pb::fetch_record_chunk::Part::Header(header.to_wire())),
        };
        tokio::task::spawn_blocking(move || {
            if tx.blocking_send(Ok(first)).is_err() {
                return;
            }
            for index in 0..meta.chunk_count {
                let message = vault
                    .chunk(&meta, index)
                    .map(|ciphertext| pb::FetchRecordChunk {
                        part: Some(pb::fetch_record_chunk::Part::Ciphertext(ciphertext)),
                    });
                let failed = message.is_err();
                let sent = tx.blocking_send(message.map_err(|e| {
                    tracing::error!(target: "custos::vault", error = %e, "cannot read a chunk");
                    Status::data_loss(format!("record {}: {e}", meta.record_id()))
                }));
                if failed || sent.is_err() {
                    return;
                }
            }
        });
        Ok(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

#[tonic::async_trait]
impl<S: VaultStore, G: LedgerGateway> VaultService for VaultRpc<S, G> {
    #[instrument(name = "vault.put", skip_all)]
    async fn put_record(
        &self,
        request: Request<Streaming<pb::PutRecordChunk>>,
    ) -> Result<Response<pb::PutRecordResponse>, Status> {
        use pb::put_record_chunk::Part;
        let inner = &self.inner;
        let mut stream = request.into_inner();
        let first = stream.message().await?.ok_or_else(|| {
            field_status(
                FieldError::new(
                    "header",
                    "the stream is empty; expected the signed header first",
                ),
                "put",
            )
        })?;
        let header_read = match first.part {
            Some(Part::Header(read)) => read,
            Some(Part::Data(_)) => {
                return Err(field_status(
                    FieldError::new("header", "expected the signed header before any data"),
                    "put",
                ));
            }
            None => {
                return Err(field_status(
                    FieldError::new("part", "required field is missing"),
                    "put",
                ));
            }
        };
        let read = self.authorize(&header_read, methods::PUT)?;
        self.require_custodian(&read, "put records")?;
        let mut wire: pb::RecordHeader = read
            .query()
            .map_err(|e| field_status(e.within("header"), "put"))?;
        wire.attributes = crate::attributes::normalize(&wire.attributes)
            .map_err(|e| field_status(e.within("header"), "put"))?;
        let record = NewRecord::from_wire(&wire, || {
            let mut id = [0u8; 32];
            OsRng.fill_bytes(&mut id);
            RecordId(Hash(id))
        })
        .map_err(|e| field_status(e.within("header"), "put"))?;
        if record.size > inner.limits.max_record_bytes {
            return Err(field_status(
                FieldError::new(
                    "header.size",
                    format!(
                        "at most {} bytes, got {}",
                        inner.limits.max_record_bytes, record.size
                    ),
                ),
                "put",
            ));
        }
        let owner_key = self.registered_patient_key(record.owner).await?;
        let mut record = record;
        let committed = crate::predicate::commit(&record.attributes, &mut OsRng);
        record.commitment_salt = committed.as_ref().map(|(salt, _)| *salt);
        let commitment = committed.map(|(_, c)| Hash(c.to_bytes()));
        let id = record.record_id;
        let (owner, category) = (record.owner, record.category.clone());
        let mut session = inner
            .vault
            .begin_put(record, owner_key, &mut OsRng)
            .map_err(vault_status)?;
        while let Some(message) = stream.message().await? {
            match message.part {
                Some(Part::Data(data)) => {
                    if data.len() > inner.limits.max_data_message_bytes {
                        return Err(field_status(
                            FieldError::new(
                                "data",
                                format!(
                                    "at most {} bytes per message, got {}",
                                    inner.limits.max_data_message_bytes,
                                    data.len()
                                ),
                            ),
                            "put",
                        ));
                    }
                    session.write(&data).map_err(vault_status)?;
                }
                Some(Part::Header(_)) => {
                    return Err(field_status(
                        FieldError::new("header", "sent twice; expected data"),
                        "put",
                    ));
                }
                None => {
                    return Err(field_status(
                        FieldError::new("part", "required field is missing"),
                        "put",
                    ));
                }
            }
        }
        let prepared = session.finish(&mut OsRng).map_err(vault_status)?;
        let summary = prepared.summary();
        // Dropping `prepared` on an error below erases the stored chunks.
        let registered = inner
            .gateway
            .submit(
                &inner.keys,
                TxKind::RegisterRecord(RegisterRecord {
                    record_id: id,
                    owner,
                    category,
                    ciphertext_digest: summary.ciphertext_digest,
                    attribute_commitment: commitment,
                }),
            )
            .await
            .map_err(|e| {
                custos_client::refused!(record = %id.short(), error = %e, "the ledger refused the registration");
                e.to_status()
            })?;
        let registration = Registration {
            tx_id: TxId::from_field(&registered.tx_id, "tx_id").map_err(internal)?,
            height: Height(registered.height),
        };
        let meta = prepared
            .commit(registration, &mut OsRng)
            .map_err(vault_status)?;
        info!(
            target: "custos::vault",
            record = %id.short(),
            size = meta.size,
            chunks = meta.chunk_count,
            height = registered.height,
            "record encrypted, stored and registered"
        );
        let aggregate_row = match inner.aggregates.get().cloned() {
            Some(aggregates) => {
                let (category, attributes) =
                    (meta.category.as_str().to_string(), meta.attributes.clone());
                tokio::task::spawn_blocking(move || aggregates.ingest(&category, id, &attributes))
                    .await
                    .map_err(internal)?
                    .map_err(|e| {
                        // The record is stored and registered; only its aggregate row is missing.
                        tracing::error!(target: "custos::vault", record = %id.short(), error = %e, "cannot add the record's aggregate row");
                        internal(e)
                    })?
            }
            None => None,
        };
        Ok(Response::new(pb::PutRecordResponse {
            record_id: id.to_vec(),
            ciphertext_digest: meta.ciphertext_digest.0.to_vec(),
            register_tx_id: registered.tx_id,
            register_height: registered.height,
            chunk_count: u64::from(meta.chunk_count),
            attribute_commitment: commitment.map_or(vec![], |c| c.0.to_vec()),
            aggregate_row: aggregate_row.is_some(),
        }))
    }

    type FetchRecordStream = FetchStream;

    #[instrument(name = "vault.release", skip_all)]
    async fn fetch_record(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<Self::FetchRecordStream>, Status> {
        self.release(request.into_inner(), methods::FETCH, ReleaseKind::Grantee)
            .await
            .map(Response::new)
    }

    type FetchOwnRecordStream = FetchStream;

    #[instrument(name = "vault.release_own", skip_all)]
    async fn fetch_own_record(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<Self::FetchOwnRecordStream>, Status> {
        self.release(request.into_inner(), methods::FETCH_OWN, ReleaseKind::Owner)
            .await
            .map(Response::new)
    }

    #[instrument(name = "vault.prove", skip_all)]
    async fn prove_predicate(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<access_pb::PredicateProofResponse>, Status> {
        self.prove(request.into_inner()).await.map(Response::new)
    }

    #[instrument(name = "vault.erase", skip_all)]
    async fn erase_record(
        &self,
        request: Request<ledger_pb::SignedTransaction>,
    ) -> Result<Response<pb::EraseRecordResponse>, Status> {
        let inner = &self.inner;
        let tx = SignedTransaction::from_wire(request.into_inner())
            .map_err(|e| field_status(e, "erase"))?;
        let TxKind::EraseRecord(erase) = &tx.body().kind else {
            return Err(field_status(
                FieldError::new(
                    "body.kind",
                    format!("expected erase_record, got {}", tx.body().kind.name()),
                ),
                "erase",
            ));
        };
        if tx.body().chain_id != inner.genesis.chain_id {
            return Err(field_status(
                FieldError::new(
                    "body.chain_id",
                    format!(
                        "expected `{}`, got `{}`",
                        inner.genesis.chain_id,
                        tx.body().chain_id
                    ),
                ),
                "erase",
            ));
        }
        let record = erase.record_id;
        inner.vault.meta(&record).map_err(|e| match e {
            VaultError::UnknownRecord(r) => Status::not_found(format!(
                "body.erase_record.record_id: record {r} is not in this vault"
            )),
            other => internal(other),
        })?;
        let finalized = inner.gateway.submit_signed(&tx).await.map_err(|e| {
            custos_client::refused!(record = %record.short(), error = %e, "the ledger refused the erasure");
            e.to_status()
        })?;
        inner.vault.erase(&record).map_err(vault_status)?;
        if let Some(aggregates) = inner.aggregates.get() {
            aggregates.erase(&record).map_err(internal)?;
        }
        info!(
            target: "custos::vault",
            record = %record.short(),
            by = %tx.author().short(),
            legal_grounds = erase.legal_grounds,
            height = finalized.height,
            "record erased: storage key, wrapped keys and ciphertext destroyed"
        );
        Ok(Response::new(pb::EraseRecordResponse {
            erase_tx_id: finalized.tx_id,
            erase_height: finalized.height,
        }))
    }

    #[instrument(name = "vault.list", skip_all)]
    async fn list_records(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::ListRecordsResponse>, Status> {
        let read = self.authorize(&request.into_inner(), methods::LIST)?;
        let query: pb::ListRecordsQuery = read.query().map_err(|e| field_status(e, "list"))?;
        let asked = if query.owner.is_empty() {
            None
        } else {
            Some(
                PartyId::from_field(&query.owner, "body.query.owner")
                    .map_err(|e| field_status(e, "list"))?,
            )
        };
        let owner = if read.author == self.custodian() {
            asked
        } else {
            if asked.is_some_and(|o| o != read.author) {
                return Err(Status::permission_denied(
                    "body.query.owner: a patient lists only their own records",
                ));
            }
            Some(read.author)
        };
        let metas = self.inner.vault.list(owner).map_err(vault_status)?;
        Ok(Response::new(pb::ListRecordsResponse {
            record_ids: metas.iter().map(|m| m.record_id().to_vec()).collect(),
            records: metas.iter().map(|m| m.summary()).collect(),
        }))
    }

    type GetCohortTableStream = BoxStream<pb::CohortTableChunk>;

    #[instrument(name = "vault.cohort_table", skip_all)]
    async fn get_cohort_table(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<Self::GetCohortTableStream>, Status> {
        self.cohort_table(request.into_inner())
            .await
            .map(Response::new)
    }

    #[instrument(name = "vault.release_aggregate", skip_all)]
    async fn release_aggregate(
        &self,
        request: Request<pb::ReleaseAggregateRequest>,
    ) -> Result<Response<pb::AggregateRelease>, Status> {
        self.release_aggregate_impl(request.into_inner())
            .await
            .map(Response::new)
    }

    type GetFheKeysStream = BoxStream<pb::FheKeysChunk>;

    #[instrument(name = "vault.fhe_keys", skip_all)]
    async fn get_fhe_keys(
        &self,
        request: Request<pb::GetFheKeysRequest>,
    ) -> Result<Response<Self::GetFheKeysStream>, Status> {
        self.fhe_keys(request.into_inner()).await.map(Response::new)
    }

    #[instrument(name = "vault.rotate", skip_all)]
    async fn rotate_key(
        &self,
        request: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<pb::RotateKeyResponse>, Status> {
        let read = self.authorize(&request.into_inner(), methods::ROTATE)?;
        self.require_custodian(&read, "rotate the vault's key")?;
        let vault = self.inner.vault.clone();
        let rotation = tokio::task::spawn_blocking(move || vault.rotate(&mut OsRng))
            .await
            .map_err(internal)?
            .map_err(vault_status)?;
        info!(
            target: "custos::vault",
            generation = rotation.generation,
            rewrapped = rotation.rewrapped,
            "custodian key rotated; the old key is destroyed"
        );
        Ok(Response::new(pb::RotateKeyResponse {
            rewrapped: rotation.rewrapped,
            generation: rotation.generation,
            public_key: rotation.public.0.to_vec(),
        }))
    }
}
