//! Talks to and checks the ledger: a gRPC client and a light client that verifies headers,
//! certificates and proofs offline.
//!
//! [`Client`] is a thin typed wrapper over the generated gRPC clients that signs transactions
//! and reads with a party's keys. [`verify`] checks what any node returns against the genesis
//! validator set alone: a compromised node cannot make it accept a forged entry. [`bundle`]
//! verifies exported audit bundles offline, [`monitor`] watches the log like a transparency-log
//! monitor, and [`report`] renders the access log as CSV, FHIR and review reports.

pub mod bundle;
pub mod cohort;
pub mod monitor;
pub mod refusals;
pub mod report;
pub mod verify;

use custos_crypto::PartyKeys;
use custos_proto::access::v1 as access_pb;
use custos_proto::access::v1::access_service_client::AccessServiceClient;
use custos_proto::audit::v1 as audit_pb;
use custos_proto::audit::v1::audit_service_client::AuditServiceClient;
use custos_proto::consent::v1 as consent_pb;
use custos_proto::consent::v1::consent_service_client::ConsentServiceClient;
use custos_proto::ledger::v1 as ledger_pb;
use custos_proto::ledger::v1::ledger_service_client::LedgerServiceClient;
use custos_types::{
    ChainId, Nonce, PartyId, ReadNonce, RecordId, RequestId, SignedRead, SignedTransaction,
    Timestamp, TransactionBody, TxKind,
};
use tonic::transport::Channel;

pub use cohort::{CohortError, VerifiedCohort, verify_cohort};
pub use verify::{VerifiedEntry, VerifyError};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// Where.
        endpoint: String,
        /// Why.
        source: tonic::transport::Error,
    },
    /// The node answered with an error status.
    #[error("{:?}: {}", .0.code(), .0.message())]
    Status(#[from] tonic::Status),
    /// The node's answer did not verify.
    #[error("verification failed: {0}")]
    Verify(#[from] VerifyError),
    /// The node's answer is malformed.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

/// Largest export the client accepts from a node (bundles, CSV, FHIR), in bytes.
pub const MAX_EXPORT_BYTES: usize = 1 << 30;

/// Full gRPC method names that signed reads name.
pub mod methods {
    /// `QueryAccessLog`.
    pub const QUERY_ACCESS_LOG: &str = "/custos.audit.v1.AuditService/QueryAccessLog";
    /// `StreamAccessLog`.
    pub const STREAM_ACCESS_LOG: &str = "/custos.audit.v1.AuditService/StreamAccessLog";
    /// `ExportBundle`.
    pub const EXPORT_BUNDLE: &str = "/custos.audit.v1.AuditService/ExportBundle";
    /// `ExportCsv`.
    pub const EXPORT_CSV: &str = "/custos.audit.v1.AuditService/ExportCsv";
    /// `ExportFhirAuditEvents`.
    pub const EXPORT_FHIR_AUDIT_EVENTS: &str =
        "/custos.audit.v1.AuditService/ExportFhirAuditEvents";
    /// `VerifyChain`.
    pub const VERIFY_CHAIN: &str = "/custos.audit.v1.AuditService/VerifyChain";
    /// `ExportFhirConsents`.
    pub const EXPORT_FHIR_CONSENTS: &str = "/custos.consent.v1.ConsentService/ExportFhirConsents";
    /// `ListConsents`.
    pub const LIST_CONSENTS: &str = "/custos.consent.v1.ConsentService/ListConsents";
    /// `GetRecord`.
    pub const GET_RECORD: &str = "/custos.consent.v1.ConsentService/GetRecord";
    /// `GetConsent`.
    pub const GET_CONSENT: &str = "/custos.consent.v1.ConsentService/GetConsent";
    /// `GetBlock`.
    pub const GET_BLOCK: &str = "/custos.ledger.v1.LedgerService/GetBlock";
    /// `GetEntry`.
    pub const GET_ENTRY: &str = "/custos.ledger.v1.LedgerService/GetEntry";
    /// `StreamBlocks`.
    pub const STREAM_BLOCKS: &str = "/custos.ledger.v1.LedgerService/StreamBlocks";
    /// `GetDecision`.
    pub const GET_DECISION: &str = "/custos.access.v1.AccessService/GetDecision";
    /// `GetCohort`.
    pub const GET_COHORT: &str = "/custos.access.v1.AccessService/GetCohort";
}

/// Admits a signed read once into a server's `guard` ([`custos_types::ReplayGuard`]), as a gRPC
/// status: a replay is UNAUTHENTICATED, a full guard RESOURCE_EXHAUSTED; refusals are logged.
pub fn admit_read(
    guard: &std::sync::Mutex<custos_types::ReplayGuard>,
    read: &SignedRead,
    now: Timestamp,
) -> std::result::Result<(), tonic::Status> {
    use custos_types::read::ReplayError;
    let admitted = match guard.lock() {
        Ok(mut guard) => guard.admit(read, now),
        Err(poisoned) => poisoned.into_inner().admit(read, now),
    };
    admitted.map_err(|e| {
        refused!(author = %read.author.short(), reason = %e, "read refused");
        match e {
            ReplayError::Replayed { .. } => tonic::Status::unauthenticated(e.to_string()),
            ReplayError::AuthorFull { .. } | ReplayError::Full { .. } => {
                tonic::Status::resource_exhausted(e.to_string())
            }
        }
    })
}

/// The gRPC metadata key a RESOURCE_EXHAUSTED read refusal carries: milliseconds to wait.
pub const RETRY_AFTER_MS: &str = "retry-after-ms";

/// Takes a token from a server's read budget ([`custos_types::ReadBudget`]): the server's own
/// bucket when `author` is `None` (before any work on the read), else the author's. A spent
/// budget is RESOURCE_EXHAUSTED naming the limit, with [`RETRY_AFTER_MS`] metadata; refusals are
/// logged (rate-limited).
pub fn spend_read_budget(
    budget: &std::sync::Mutex<custos_types::ReadBudget>,
    author: Option<&custos_types::PartyId>,
) -> std::result::Result<(), tonic::Status> {
    let now = std::time::Instant::now();
    let taken = {
        let mut budget = match budget.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        match author {
            None => budget.take_server(now),
            Some(author) => budget.take_author(author, now),
        }
    };
    taken.map_err(|e| {
        refused!(reason = %e, "read over budget");
        let mut status = tonic::Status::resource_exhausted(e.to_string());
        let wait = e.retry_after().as_millis().max(1).to_string();
        if let Ok(value) = wait.parse() {
            status.metadata_mut().insert(RETRY_AFTER_MS, value);
        }
        status
    })
}

/// How long a RESOURCE_EXHAUSTED `status` asks a client to wait ([`RETRY_AFTER_MS`]), if it
/// says.
pub fn retry_after(status: &tonic::Status) -> Option<std::time::Duration> {
    if status.code() != tonic::Code::ResourceExhausted {
        return None;
    }
    let ms: u64 = status
        .metadata()
        .get(RETRY_AFTER_MS)?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(std::time::Duration::from_millis(ms))
}

/// A `Result` with [`ClientError`].
pub type Result<T> = std::result::Result<T, ClientError>;

/// A connection to one node.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    chain_id: ChainId,
}

impl Client {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:7420`) and learns the chain id.
    pub async fn connect(endpoint: &str) -> Result<Self> {
        let channel = Channel::from_shared(endpoint.to_string())
            .map_err(|e| ClientError::Malformed(format!("endpoint `{endpoint}`: {e}")))?
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                endpoint: endpoint.to_string(),
                source,
            })?;
        let status = LedgerServiceClient::new(channel.clone())
            .get_status(ledger_pb::GetStatusRequest {})
            .await?
            .into_inner();
        let chain_id = ChainId::parse(&status.chain_id)
            .map_err(|e| ClientError::Malformed(format!("chain id: {e}")))?;
        Ok(Client { channel, chain_id })
    }

    /// The chain the node serves.
    pub fn chain_id(&self) -> &ChainId {
        &self.chain_id
    }

    /// The generated ledger client.
    pub fn ledger(&self) -> LedgerServiceClient<Channel> {
        LedgerServiceClient::new(self.channel.clone())
    }

    /// The generated consent client.
    pub fn consent(&self) -> ConsentServiceClient<Channel> {
        ConsentServiceClient::new(self.channel.clone())
    }

    /// The generated access client.
    pub fn access(&self) -> AccessServiceClient<Channel> {
        AccessServiceClient::new(self.channel.clone())
    }

    /// The generated audit client.
    pub fn audit(&self) -> AuditServiceClient<Channel> {
        AuditServiceClient::new(self.channel.clone())
    }

    /// The chain's status.
    pub async fn status(&self) -> Result<ledger_pb::ChainStatus> {
        Ok(self
            .ledger()
            .get_status(ledger_pb::GetStatusRequest {})
            .await?
            .into_inner())
    }

    /// Signs `kind` with `keys` at the author's next nonce.
    pub async fn sign(&self, keys: &PartyKeys, kind: TxKind) -> Result<SignedTransaction> {
        let next = self
            .ledger()
            .get_nonce(ledger_pb::GetNonceRequest {
                author: keys.public().as_bytes().to_vec(),
            })
            .await?
            .into_inner()
            .next_nonce;
        let body = TransactionBody {
            chain_id: self.chain_id.clone(),
            nonce: Nonce(next),
            kind,
        };
        Ok(SignedTransaction::sign(&body, &keys.identity))
    }

    /// Signs and submits `kind`, waiting until it is finalized.
    pub async fn submit(
        &self,
        keys: &PartyKeys,
        kind: TxKind,
    ) -> Result<ledger_pb::SubmitResponse> {
        let tx = self.sign(keys, kind).await?;
        self.submit_signed(&tx, true).await
    }

    /// Submits a signed transaction.
    pub async fn submit_signed(
        &self,
        tx: &SignedTransaction,
        wait: bool,
    ) -> Result<ledger_pb::SubmitResponse> {
        Ok(self
            .ledger()
            .submit(ledger_pb::SubmitRequest {
                transaction: Some(tx.to_wire()),
                wait,
            })
            .await?
            .into_inner())
    }

    /// Requests access and returns the finalized decision with its proof.
    pub async fn request_access(
        &self,
        keys: &PartyKeys,
        request: custos_types::tx::RequestAccess,
    ) -> Result<access_pb::DecisionResponse> {
        let tx = self.sign(keys, TxKind::RequestAccess(request)).await?;
        Ok(self
            .access()
            .request_access(tx.to_wire())
            .await?
            .into_inner())
    }

    /// An aggregate request's whole cohort, page by page: the first page's answer (with the
    /// decision, its proof and the request; its ids moved out) and every id in order. Refuses
    /// cohorts over [`cohort::MAX_COHORT_IDS`]. Check both with
    /// [`cohort::verify_cohort_response`] before relying on them.
    pub async fn cohort(
        &self,
        keys: &PartyKeys,
        request_id: RequestId,
    ) -> Result<(access_pb::CohortResponse, Vec<RecordId>)> {
        let mut first: Option<access_pb::CohortResponse> = None;
        let mut ids = Vec::new();
        let mut offset = 0u64;
        loop {
            let query = access_pb::GetCohortRequest {
                request_id: request_id.to_vec(),
                offset,
                limit: 0,
            };
            let read = self.signed_read(keys, methods::GET_COHORT, &query);
            let mut page = self.access().get_cohort(read).await?.into_inner();
            let size = page
                .decision
                .as_ref()
                .and_then(|d| d.cohort.as_ref())
                .map(|c| c.size)
                .ok_or_else(|| ClientError::Malformed("a cohort page without its cohort".into()))?;
            if size > cohort::MAX_COHORT_IDS {
                return Err(ClientError::Malformed(format!(
                    "a cohort of {size} ids; at most {} are collected",
                    cohort::MAX_COHORT_IDS
                )));
            }
            if page.offset != offset || page.next_offset <= offset && offset < size {
                return Err(ClientError::Malformed(format!(
                    "cohort page at {} to {} asked at {offset}",
                    page.offset, page.next_offset
                )));
            }
            ids.extend(cohort::parse_ids(&page.record_ids).map_err(VerifyError::from)?);
            if ids.len() as u64 > size {
                return Err(ClientError::Malformed(format!(
                    "more than the cohort's {size} ids"
                )));
            }
            offset = page.next_offset;
            let done = offset >= size;
            page.record_ids.clear();
            first.get_or_insert(page);
            if done {
                break;
            }
        }
        let first =
            first.ok_or_else(|| ClientError::Malformed("no cohort page answered".into()))?;
        Ok((first, ids))
    }

    /// The block at `height`, with the entries `keys` may not see withheld.
    pub async fn block(&self, keys: &PartyKeys, height: u64) -> Result<ledger_pb::Block> {
        let read = self.signed_read(
            keys,
            methods::GET_BLOCK,
            &ledger_pb::GetBlockRequest { height },
        );
        Ok(self.ledger().get_block(read).await?.into_inner())
    }

    /// Finalized blocks from `from_height` on, then each new one, with the entries `keys` may
    /// not see withheld.
    pub async fn stream_blocks(
        &self,
        keys: &PartyKeys,
        from_height: u64,
    ) -> Result<tonic::Streaming<ledger_pb::Block>> {
        let query = ledger_pb::StreamBlocksRequest { from_height };
        let read = self.signed_read(keys, methods::STREAM_BLOCKS, &query);
        Ok(self.ledger().stream_blocks(read).await?.into_inner())
    }

    /// The log entry at `index`, if it concerns `keys`.
    pub async fn entry(&self, keys: &PartyKeys, index: u64) -> Result<ledger_pb::Entry> {
        let read = self.signed_read(
            keys,
            methods::GET_ENTRY,
            &ledger_pb::GetEntryRequest { index },
        );
        Ok(self.ledger().get_entry(read).await?.into_inner())
    }

    /// The finalized decision on `request` with its proof, if it concerns `keys`.
    pub async fn decision(
        &self,
        keys: &PartyKeys,
        request: RequestId,
    ) -> Result<access_pb::DecisionResponse> {
        let query = access_pb::GetDecisionRequest {
            request_id: request.to_vec(),
        };
        let read = self.signed_read(keys, methods::GET_DECISION, &query);
        Ok(self.access().get_decision(read).await?.into_inner())
    }

    /// A registered record, if it concerns `keys`; a requester names its granted request
    /// for the record in `via`.
    pub async fn record(
        &self,
        keys: &PartyKeys,
        record: RecordId,
        via: Option<RequestId>,
    ) -> Result<consent_pb::Record> {
        let query = consent_pb::GetRecordRequest {
            record_id: record.to_vec(),
            request_id: via.map_or(vec![], |r| r.to_vec()),
        };
        let read = self.signed_read(keys, methods::GET_RECORD, &query);
        Ok(self.consent().get_record(read).await?.into_inner())
    }

    /// A consent with its status, if it concerns `keys`.
    pub async fn consent_state(
        &self,
        keys: &PartyKeys,
        consent: custos_types::ConsentId,
    ) -> Result<consent_pb::ConsentState> {
        let query = consent_pb::GetConsentRequest {
            consent_id: consent.to_vec(),
        };
        let read = self.signed_read(keys, methods::GET_CONSENT, &query);
        Ok(self.consent().get_consent(read).await?.into_inner())
    }

    /// A signed read of `method` with `query`, issued now with a fresh nonce.
    pub fn signed_read(
        &self,
        keys: &PartyKeys,
        method: &str,
        query: &impl prost::Message,
    ) -> ledger_pb::SignedRead {
        SignedRead::sign(
            &self.chain_id,
            method,
            Timestamp::now(),
            ReadNonce::random(&mut rand_core::OsRng),
            query,
            &keys.identity,
        )
    }

    /// A patient's consents.
    pub async fn list_consents(
        &self,
        keys: &PartyKeys,
        patient: PartyId,
        include_inactive: bool,
    ) -> Result<Vec<consent_pb::ConsentState>> {
        let query = consent_pb::ListConsentsQuery {
            patient: patient.to_vec(),
            include_inactive,
        };
        let read = self.signed_read(keys, methods::LIST_CONSENTS, &query);
        Ok(self
            .consent()
            .list_consents(read)
            .await?
            .into_inner()
            .consents)
    }

    /// One page of the access log.
    pub async fn access_log(
        &self,
        keys: &PartyKeys,
        query: &audit_pb::AccessLogQuery,
    ) -> Result<audit_pb::AccessLogPage> {
        let read = self.signed_read(keys, methods::QUERY_ACCESS_LOG, query);
        Ok(self.audit().query_access_log(read).await?.into_inner())
    }

    /// Every page of the access log.
    pub async fn access_log_all(
        &self,
        keys: &PartyKeys,
        query: &audit_pb::AccessLogQuery,
    ) -> Result<Vec<audit_pb::AuditEntry>> {
        let mut query = query.clone();
        let mut all = Vec::new();
        loop {
            let page = self.access_log(keys, &query).await?;
            all.extend(page.entries);
            if page.next_cursor.is_empty() {
                return Ok(all);
            }
            query.cursor = page.next_cursor;
        }
    }

    /// Matching entries from the query's cursor on, then new ones as blocks are finalized.
    pub async fn stream_access_log(
        &self,
        keys: &PartyKeys,
        query: &audit_pb::AccessLogQuery,
    ) -> Result<tonic::Streaming<audit_pb::AuditEntry>> {
        let read = self.signed_read(keys, methods::STREAM_ACCESS_LOG, query);
        Ok(self.audit().stream_access_log(read).await?.into_inner())
    }

    /// A self-contained audit bundle of blocks `from..=to` (0: the first block; 0: the tip),
    /// not yet verified (see [`bundle::verify_bundle`]).
    pub async fn export_bundle(
        &self,
        keys: &PartyKeys,
        from_height: u64,
        to_height: u64,
    ) -> Result<audit_pb::AuditBundle> {
        let query = audit_pb::BundleQuery {
            from_height,
            to_height,
        };
        let read = self.signed_read(keys, methods::EXPORT_BUNDLE, &query);
        let data = self
            .audit()
            .max_decoding_message_size(MAX_EXPORT_BYTES)
            .export_bundle(read)
            .await?
            .into_inner()
            .data;
        prost::Message::decode(data.as_slice())
            .map_err(|e| ClientError::Malformed(format!("audit bundle: {e}")))
    }

    /// The matching decisions as CSV, rendered by the node.
    pub async fn export_csv(
        &self,
        keys: &PartyKeys,
        query: &audit_pb::AccessLogQuery,
    ) -> Result<String> {
        let read = self.signed_read(keys, methods::EXPORT_CSV, query);
        let data = self
            .audit()
            .max_decoding_message_size(MAX_EXPORT_BYTES)
            .export_csv(read)
            .await?
            .into_inner()
            .data;
        String::from_utf8(data).map_err(|e| ClientError::Malformed(format!("CSV: {e}")))
    }

    /// The matching decisions as a FHIR R4 Bundle of AuditEvents (JSON), rendered by the node.
    pub async fn export_fhir_audit_events(
        &self,
        keys: &PartyKeys,
        query: &audit_pb::AccessLogQuery,
    ) -> Result<String> {
        let read = self.signed_read(keys, methods::EXPORT_FHIR_AUDIT_EVENTS, query);
        let data = self
            .audit()
            .max_decoding_message_size(MAX_EXPORT_BYTES)
            .export_fhir_audit_events(read)
            .await?
            .into_inner()
            .data;
        String::from_utf8(data).map_err(|e| ClientError::Malformed(format!("FHIR JSON: {e}")))
    }

    /// A patient's consents as a FHIR R4 Bundle of Consents (JSON), rendered by the node.
    pub async fn export_fhir_consents(
        &self,
        keys: &PartyKeys,
        patient: PartyId,
        include_inactive: bool,
    ) -> Result<String> {
        let query = consent_pb::ListConsentsQuery {
            patient: patient.to_vec(),
            include_inactive,
        };
        let read = self.signed_read(keys, methods::EXPORT_FHIR_CONSENTS, &query);
        Ok(self
            .consent()
            .max_decoding_message_size(MAX_EXPORT_BYTES)
            .export_fhir_consents(read)
            .await?
            .into_inner()
            .json)
    }

    /// Every signed header from height 1 to the tip.
    pub async fn headers(&self) -> Result<Vec<ledger_pb::SignedHeader>> {
        let tip = self.status().await?.height;
        let mut out = Vec::with_capacity(tip as usize);
        for height in 1..=tip {
            out.push(
                self.ledger()
                    .get_header(ledger_pb::GetHeaderRequest { height })
                    .await?
                    .into_inner(),
            );
        }
        Ok(out)
    }
}
