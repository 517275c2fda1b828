//! What the vault asks of a ledger node: decisions with their proofs, parties, and the
//! submission of the custodian's transactions. A node's answers are inputs to check, never
//! facts: decisions are verified by [`crate::grant`], keys are checked against what the
//! requester signed.

use std::future::Future;

use custos_client::Client;
use custos_crypto::PartyKeys;
use custos_proto::access::v1 as access_pb;
use custos_proto::consent::v1 as consent_pb;
use custos_proto::ledger::v1 as ledger_pb;
use custos_types::{PartyId, RecordId, RequestId, SignedTransaction, TxKind};
use tokio::sync::Mutex;

/// Why the node could not answer.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The node answered with an error status.
    #[error("the ledger node answered {:?}: {}", .0.code(), .0.message())]
    Status(tonic::Status),
    /// The node could not be reached or answered nonsense.
    #[error("the ledger node is unavailable: {0}")]
    Unavailable(String),
}

impl GatewayError {
    /// The gRPC status to pass on to the vault's caller.
    pub fn to_status(&self) -> tonic::Status {
        match self {
            GatewayError::Status(s) => {
                tonic::Status::new(s.code(), format!("ledger: {}", s.message()))
            }
            GatewayError::Unavailable(m) => tonic::Status::unavailable(m.clone()),
        }
    }
}

impl From<custos_client::ClientError> for GatewayError {
    fn from(e: custos_client::ClientError) -> Self {
        match e {
            custos_client::ClientError::Status(s) => GatewayError::Status(s),
            other => GatewayError::Unavailable(other.to_string()),
        }
    }
}

/// A ledger node as the vault uses it.
pub trait LedgerGateway: Send + Sync + 'static {
    /// The finalized decision on `request` with its proof, or `None` if the node has none;
    /// read with `keys` (the custodian's: a decision on a record it holds concerns it).
    fn decision(
        &self,
        keys: &PartyKeys,
        request: RequestId,
    ) -> impl Future<Output = Result<Option<access_pb::DecisionResponse>, GatewayError>> + Send;

    /// An aggregate request's whole cohort (`GetCohort`, every page): the first page's answer
    /// and every id, unverified; read with `keys` (the cohort's custodian's).
    fn cohort(
        &self,
        keys: &PartyKeys,
        request: RequestId,
    ) -> impl Future<Output = Result<(access_pb::CohortResponse, Vec<RecordId>), GatewayError>> + Send;

    /// A registered party, or `None`.
    fn party(
        &self,
        party: PartyId,
    ) -> impl Future<Output = Result<Option<consent_pb::Party>, GatewayError>> + Send;

    /// Signs `kind` with `keys` and waits until it is finalized.
    fn submit(
        &self,
        keys: &PartyKeys,
        kind: TxKind,
    ) -> impl Future<Output = Result<ledger_pb::SubmitResponse, GatewayError>> + Send;

    /// Submits a transaction someone else signed and waits until it is finalized.
    fn submit_signed(
        &self,
        tx: &SignedTransaction,
    ) -> impl Future<Output = Result<ledger_pb::SubmitResponse, GatewayError>> + Send;
}

/// A gRPC connection to one node.
pub struct NodeGateway {
    client: Client,
    // One submission of the custodian's at a time: each takes the next nonce.
    submit: Mutex<()>,
}

impl NodeGateway {
    /// Connects to the node at `endpoint` (e.g. `http://127.0.0.1:7420`).
    pub async fn connect(endpoint: &str) -> Result<Self, GatewayError> {
        Ok(NodeGateway {
            client: Client::connect(endpoint).await?,
            submit: Mutex::new(()),
        })
    }

    /// A gateway over an existing connection.
    pub fn from_client(client: Client) -> Self {
        NodeGateway {
            client,
            submit: Mutex::new(()),
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn finalized(
    response: ledger_pb::SubmitResponse,
) -> Result<ledger_pb::SubmitResponse, GatewayError> {
    if response.status == ledger_pb::TxStatus::Finalized as i32 {
        Ok(response)
    } else {
        Err(GatewayError::Status(tonic::Status::failed_precondition(
            format!(
                "transaction not finalized (status {}): {}",
                response.status, response.reason
            ),
        )))
    }
}

impl LedgerGateway for NodeGateway {
    async fn decision(
        &self,
        keys: &PartyKeys,
        request: RequestId,
    ) -> Result<Option<access_pb::DecisionResponse>, GatewayError> {
        match self.client.decision(keys, request).await {
            Ok(response) => Ok(Some(response)),
            Err(custos_client::ClientError::Status(status))
                if status.code() == tonic::Code::NotFound =>
            {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn cohort(
        &self,
        keys: &PartyKeys,
        request: RequestId,
    ) -> Result<(access_pb::CohortResponse, Vec<RecordId>), GatewayError> {
        Ok(self.client.cohort(keys, request).await?)
    }

    async fn party(&self, party: PartyId) -> Result<Option<consent_pb::Party>, GatewayError> {
        let answer = self
            .client
            .consent()
            .get_party(consent_pb::GetPartyRequest {
                party: party.to_vec(),
            })
            .await;
        match answer {
            Ok(response) => Ok(Some(response.into_inner())),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(GatewayError::Status(status)),
        }
    }

    async fn submit(
        &self,
        keys: &PartyKeys,
        kind: TxKind,
    ) -> Result<ledger_pb::SubmitResponse, GatewayError> {
        let _turn = self.submit.lock().await;
        finalized(self.client.submit(keys, kind).await?)
    }

    async fn submit_signed(
        &self,
        tx: &SignedTransaction,
    ) -> Result<ledger_pb::SubmitResponse, GatewayError> {
        finalized(self.client.submit_signed(tx, true).await?)
    }
}
