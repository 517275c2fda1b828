//! Services whose server side arrives with a later capability. Each method answers
//! UNIMPLEMENTED and names the capability it waits for; nothing else is a placeholder.

use custos_proto::compute::v1 as compute_pb;
use custos_proto::ledger::v1 as ledger_pb;
use custos_proto::vault::v1 as vault_pb;
use tonic::{Request, Response, Status, Streaming};

const VAULT: &str = "the encrypted vault (custodian record store, HPKE key release) is served by the vault service, which arrives with the vault capability";
const COMPUTE: &str = "aggregate queries on encrypted data (tfhe-rs compute worker) arrive with the FHE aggregate capability";

/// The vault API on a node that runs no vault.
pub struct NoVault;

type FetchStream = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<vault_pb::FetchRecordChunk, Status>> + Send>,
>;

#[tonic::async_trait]
impl vault_pb::vault_service_server::VaultService for NoVault {
    async fn put_record(
        &self,
        _: Request<Streaming<vault_pb::PutRecordChunk>>,
    ) -> Result<Response<vault_pb::PutRecordResponse>, Status> {
        Err(Status::unimplemented(VAULT))
    }
    type FetchRecordStream = FetchStream;
    async fn fetch_record(
        &self,
        _: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<Self::FetchRecordStream>, Status> {
        Err(Status::unimplemented(VAULT))
    }
    type FetchOwnRecordStream = FetchStream;
    async fn fetch_own_record(
        &self,
        _: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<Self::FetchOwnRecordStream>, Status> {
        Err(Status::unimplemented(VAULT))
    }
    async fn erase_record(
        &self,
        _: Request<ledger_pb::SignedTransaction>,
    ) -> Result<Response<vault_pb::EraseRecordResponse>, Status> {
        Err(Status::unimplemented(VAULT))
    }
    async fn prove_predicate(
        &self,
        _: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<custos_proto::access::v1::PredicateProofResponse>, Status> {
        Err(Status::unimplemented(VAULT))
    }
    async fn list_records(
        &self,
        _: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<vault_pb::ListRecordsResponse>, Status> {
        Err(Status::unimplemented(VAULT))
    }
    async fn rotate_key(
        &self,
        _: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<vault_pb::RotateKeyResponse>, Status> {
        Err(Status::unimplemented(VAULT))
    }
}

/// The compute API on a node that runs no compute worker.
pub struct NoCompute;

#[tonic::async_trait]
impl compute_pb::compute_service_server::ComputeService for NoCompute {
    async fn get_public_keys(
        &self,
        _: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<compute_pb::PublicKeysResponse>, Status> {
        Err(Status::unimplemented(COMPUTE))
    }
    async fn explain(
        &self,
        _: Request<compute_pb::ExplainRequest>,
    ) -> Result<Response<compute_pb::ExplainResponse>, Status> {
        Err(Status::unimplemented(COMPUTE))
    }
    async fn evaluate(
        &self,
        _: Request<compute_pb::EvaluateRequest>,
    ) -> Result<Response<compute_pb::EncryptedResult>, Status> {
        Err(Status::unimplemented(COMPUTE))
    }
    async fn release(
        &self,
        _: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<compute_pb::AggregateResult>, Status> {
        Err(Status::unimplemented(COMPUTE))
    }
}
