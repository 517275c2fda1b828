//! Services a node does not serve: the vault and the compute worker run as their own services.
//! Each method answers UNIMPLEMENTED and names the service that does; nothing else is a
//! placeholder.

use custos_proto::compute::v1 as compute_pb;
use custos_proto::ledger::v1 as ledger_pb;
use custos_proto::vault::v1 as vault_pb;
use tonic::{Request, Response, Status, Streaming};

const VAULT: &str = "the encrypted vault (custodian record store, HPKE key release) is served by the custodian's vault service (`custos vault run`), not by a ledger node";
const COMPUTE: &str = "aggregate queries on encrypted data are evaluated by a partner's compute worker (`custos compute run`), not by a ledger node";

/// The vault API on a node that runs no vault.
pub struct NoVault;

type Stream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;
type FetchStream = Stream<vault_pb::FetchRecordChunk>;

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
    type GetCohortTableStream = Stream<vault_pb::CohortTableChunk>;
    async fn get_cohort_table(
        &self,
        _: Request<ledger_pb::SignedRead>,
    ) -> Result<Response<Self::GetCohortTableStream>, Status> {
        Err(Status::unimplemented(VAULT))
    }
    async fn release_aggregate(
        &self,
        _: Request<vault_pb::ReleaseAggregateRequest>,
    ) -> Result<Response<vault_pb::AggregateRelease>, Status> {
        Err(Status::unimplemented(VAULT))
    }
    type GetFheKeysStream = Stream<vault_pb::FheKeysChunk>;
    async fn get_fhe_keys(
        &self,
        _: Request<vault_pb::GetFheKeysRequest>,
    ) -> Result<Response<Self::GetFheKeysStream>, Status> {
        Err(Status::unimplemented(VAULT))
    }
}

/// The compute API on a node that runs no compute worker.
pub struct NoCompute;

#[tonic::async_trait]
impl compute_pb::compute_service_server::ComputeService for NoCompute {
    async fn explain(
        &self,
        _: Request<compute_pb::ExplainRequest>,
    ) -> Result<Response<compute_pb::ExplainResponse>, Status> {
        Err(Status::unimplemented(COMPUTE))
    }
    type EvaluateStream = Stream<compute_pb::EvaluateEvent>;
    async fn evaluate(
        &self,
        _: Request<compute_pb::EvaluateRequest>,
    ) -> Result<Response<Self::EvaluateStream>, Status> {
        Err(Status::unimplemented(COMPUTE))
    }
}
