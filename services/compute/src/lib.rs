//! A partner's compute worker (`custos compute run`): evaluates aggregate queries over a
//! custodian's encrypted cohort with custos-fhe, holding no key and seeing no plaintext.
//!
//! `Evaluate` takes a signed read the requester made for the vault's `GetCohortTable`; the worker
//! forwards it, so it acts only on what the requester signed and the vault decides, itself, that
//! the ledger granted. The vault answers with the cohort's rows and the plan's columns
//! (ciphertexts); the worker checks their size and digest, plans the granted query against the
//! table's schema, fetches the server key for a bootstrapped plan (cached by key id), evaluates
//! with progress events, and returns the encrypted result, which only the vault can decrypt —
//! and does only after recomputing it (`ReleaseAggregate`).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use custos_fhe::{KeyId, Schema, ServerKey};
use custos_proto::compute::v1 as pb;
use custos_proto::compute::v1::compute_service_server::{ComputeService, ComputeServiceServer};
use custos_proto::ledger::v1 as ledger_pb;
use custos_proto::vault::v1 as vault_pb;
use custos_proto::vault::v1::vault_service_client::VaultServiceClient;
use prost::Message;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

/// The vault method whose signed read `Evaluate` forwards.
pub const COHORT_TABLE_METHOD: &str = "/custos.vault.v1.VaultService/GetCohortTable";

/// Where the worker listens and which vault it evaluates for.
#[derive(Clone, Debug)]
pub struct ComputeConfig {
    /// gRPC listen address (port 0 picks one).
    pub listen: SocketAddr,
    /// The custodian vault's endpoint, e.g. `http://127.0.0.1:7430`.
    pub vault: String,
    /// Largest cohort payload accepted from the vault, in bytes.
    pub max_payload_bytes: u64,
}

impl ComputeConfig {
    /// A worker for `vault` on `listen`, accepting payloads of up to 4 GiB.
    pub fn new(listen: SocketAddr, vault: String) -> Self {
        ComputeConfig {
            listen,
            vault,
            max_payload_bytes: 4 << 30,
        }
    }
}

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum ComputeError {
    /// It could not listen or serve.
    #[error("compute worker: {0}")]
    Server(String),
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::EvaluateEvent, Status>> + Send>>;
type Events = mpsc::Sender<Result<pb::EvaluateEvent, Status>>;

struct Inner {
    config: ComputeConfig,
    schema: Mutex<Option<(Vec<u8>, Arc<Schema>)>>,
    server_key: Mutex<Option<(KeyId, Arc<ServerKey>)>>,
}

/// The `custos.compute.v1.ComputeService`.
#[derive(Clone)]
pub struct ComputeRpc {
    inner: Arc<Inner>,
}

fn progress(stage: &str, done: u64, total: u64) -> pb::EvaluateEvent {
    pb::EvaluateEvent {
        event: Some(pb::evaluate_event::Event::Progress(pb::Progress {
            stage: stage.into(),
            done,
            total,
        })),
    }
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Status {
    warn!(target: "custos::compute", what, error = %e, "vault unavailable");
    Status::unavailable(format!("{what}: {e}"))
}

fn internal(e: impl std::fmt::Display) -> Status {
    tracing::error!(target: "custos::compute", error = %e, "internal error");
    Status::internal("internal error; see the compute worker's log")
}

/// Reads a byte stream of `header` then `data` slices into one buffer of exactly `total`
/// bytes (at most `max`), reporting progress.
async fn read_bytes<M>(
    stream: &mut tonic::Streaming<M>,
    total: u64,
    max: u64,
    data: impl Fn(M) -> Option<Vec<u8>>,
    mut report: impl FnMut(u64),
) -> Result<Vec<u8>, Status> {
    if total > max {
        return Err(Status::resource_exhausted(format!(
            "the vault announces {total} bytes; this worker accepts at most {max}"
        )));
    }
    let mut out = Vec::with_capacity(total.min(256 << 20) as usize);
    let mut last = Instant::now();
    while let Some(message) = stream.message().await? {
        let slice =
            data(message).ok_or_else(|| Status::data_loss("the vault sent a second header"))?;
        if out.len() as u64 + slice.len() as u64 > total {
            return Err(Status::data_loss(format!(
                "the vault sent more than the {total} bytes it announced"
            )));
        }
        out.extend_from_slice(&slice);
        if last.elapsed() > Duration::from_millis(100) {
            report(out.len() as u64);
            last = Instant::now();
        }
    }
    if out.len() as u64 != total {
        return Err(Status::data_loss(format!(
            "the vault sent {} of the {total} bytes it announced",
            out.len()
        )));
    }
    report(total);
    Ok(out)
}

impl ComputeRpc {
    /// A worker as configured.
    pub fn new(config: ComputeConfig) -> Self {
        ComputeRpc {
            inner: Arc::new(Inner {
                config,
                schema: Mutex::new(None),
                server_key: Mutex::new(None),
            }),
        }
    }

    async fn vault(&self) -> Result<VaultServiceClient<tonic::transport::Channel>, Status> {
        VaultServiceClient::connect(self.inner.config.vault.clone())
            .await
            .map_err(|e| unavailable("cannot reach the vault", e))
    }

    /// The vault's public FHE material: header, then the public key and, when asked, the
    /// server key bytes.
    async fn fhe_keys(
        &self,
        server_key: bool,
        events: Option<&Events>,
    ) -> Result<(vault_pb::FheKeysHeader, Vec<u8>), Status> {
        let mut stream = self
            .vault()
            .await?
            .get_fhe_keys(vault_pb::GetFheKeysRequest { server_key })
            .await?
            .into_inner();
        let header = match stream.message().await?.and_then(|m| m.part) {
            Some(vault_pb::fhe_keys_chunk::Part::Header(h)) => h,
            _ => return Err(Status::data_loss("the vault's key stream has no header")),
        };
        let total = header
            .public_key_bytes
            .saturating_add(header.server_key_bytes);
        let bytes = read_bytes(
            &mut stream,
            total,
            1 << 30,
            |m: vault_pb::FheKeysChunk| match m.part {
                Some(vault_pb::fhe_keys_chunk::Part::Data(d)) => Some(d),
                _ => None,
            },
            |done| {
                if let Some(tx) = events {
                    let _ = tx.try_send(Ok(progress("keys", done, total)));
                }
            },
        )
        .await?;
        Ok((header, bytes))
    }

    /// The vault's schema (cached while the vault serves the same one).
    async fn schema(&self) -> Result<Arc<Schema>, Status> {
        let (header, _) = self.fhe_keys(false, None).await?;
        let mut cached = self.inner.schema.lock().map_err(internal)?;
        if let Some((bytes, schema)) = cached.as_ref()
            && *bytes == header.schema_encoding
        {
            return Ok(schema.clone());
        }
        let schema = Arc::new(
            Schema::from_bytes(&header.schema_encoding)
                .map_err(|e| Status::data_loss(format!("the vault's schema: {e}")))?,
        );
        *cached = Some((header.schema_encoding, schema.clone()));
        Ok(schema)
    }

    /// The server key for `key` (fetched, decompressed and cached on first use).
    async fn server_key(&self, key: KeyId, events: &Events) -> Result<Arc<ServerKey>, Status> {
        if let Some((id, sk)) = self.inner.server_key.lock().map_err(internal)?.as_ref()
            && *id == key
        {
            return Ok(sk.clone());
        }
        let (header, bytes) = self.fhe_keys(true, Some(events)).await?;
        if header.key_id != key.0 {
            return Err(Status::failed_precondition(
                "the vault's key changed while evaluating; evaluate again",
            ));
        }
        let started = Instant::now();
        let split = usize::try_from(header.public_key_bytes).map_err(internal)?;
        let server = bytes.get(split..).unwrap_or_default().to_vec();
        let sk = tokio::task::spawn_blocking(move || {
            custos_fhe::CompressedServerKey::from_bytes(&server).map(|c| c.decompress())
        })
        .await
        .map_err(internal)?
        .map_err(|e| Status::data_loss(format!("the vault's server key: {e}")))?;
        if sk.id() != key {
            return Err(Status::data_loss(
                "the vault's server key is not for the table's key",
            ));
        }
        info!(target: "custos::compute", key = %key, bytes = bytes.len(), ms = started.elapsed().as_millis() as u64, "server key loaded");
        let sk = Arc::new(sk);
        *self.inner.server_key.lock().map_err(internal)? = Some((key, sk.clone()));
        Ok(sk)
    }

    async fn run(
        &self,
        read: ledger_pb::SignedRead,
        events: &Events,
    ) -> Result<pb::EvaluateResult, Status> {
        let mut stream = self
            .vault()
            .await?
            .get_cohort_table(read)
            .await?
            .into_inner();
        let header = match stream.message().await?.and_then(|m| m.part) {
            Some(vault_pb::cohort_table_chunk::Part::Header(h)) => h,
            _ => return Err(Status::data_loss("the vault's cohort stream has no header")),
        };
        let total = header.payload_bytes;
        let payload = read_bytes(
            &mut stream,
            total,
            self.inner.config.max_payload_bytes,
            |m: vault_pb::CohortTableChunk| match m.part {
                Some(vault_pb::cohort_table_chunk::Part::Data(d)) => Some(d),
                _ => None,
            },
            |done| {
                let _ = events.try_send(Ok(progress("download", done, total)));
            },
        )
        .await?;
        if custos_crypto::sha256(&payload).0.as_slice() != header.payload_digest.as_slice() {
            return Err(Status::data_loss(
                "the cohort payload does not match the digest the vault announced",
            ));
        }
        let (cohort, table) =
            tokio::task::spawn_blocking(move || custos_fhe::decode_payload(&payload))
                .await
                .map_err(internal)?
                .map_err(|e| Status::data_loss(format!("the vault's cohort payload: {e}")))?;
        let plan = custos_fhe::explain(table.schema(), &header.query)
            .map_err(|e| Status::invalid_argument(format!("query: {e}")))?;
        let server_key = if plan.needs_bootstrapping() {
            Some(self.server_key(table.key_id(), events).await?)
        } else {
            None
        };
        let rows = table.rows();
        let plan_text = plan.to_string();
        let sink_events = events.clone();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            let sink = move |done: u64, total: u64| {
                let _ = sink_events.try_send(Ok(progress("evaluate", done, total)));
            };
            custos_fhe::evaluate(&plan, &table, &cohort, server_key.as_deref(), &sink)
        })
        .await
        .map_err(internal)?
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let seconds = started.elapsed().as_secs_f64();
        let bytes = result.to_bytes().map_err(internal)?;
        info!(
            target: "custos::compute",
            request = %hex::encode(&header.request_id),
            rows,
            cohort = header.cohort_rows,
            seconds,
            "aggregate evaluated"
        );
        Ok(pb::EvaluateResult {
            request_id: header.request_id,
            query: header.query,
            plan: plan_text,
            result_digest: custos_crypto::sha256(&bytes).0.to_vec(),
            result: bytes,
            cohort_size: header.cohort_size,
            cohort_rows: header.cohort_rows,
            table_rows: rows,
            evaluate_seconds: seconds,
            rows_per_second: if seconds > 0.0 {
                rows as f64 / seconds
            } else {
                0.0
            },
        })
    }
}

#[tonic::async_trait]
impl ComputeService for ComputeRpc {
    async fn explain(
        &self,
        request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let query = request.into_inner().query;
        if query.len() > custos_fhe::MAX_QUERY_BYTES {
            return Err(Status::invalid_argument(format!(
                "query: at most {} bytes, got {}",
                custos_fhe::MAX_QUERY_BYTES,
                query.len()
            )));
        }
        let schema = self.schema().await?;
        let plan = custos_fhe::explain(&schema, &query)
            .map_err(|e| Status::invalid_argument(format!("query: {e}")))?;
        Ok(Response::new(pb::ExplainResponse {
            plan: plan.to_string(),
            bootstrapped: plan.needs_bootstrapping(),
            estimated_rows_per_second: plan.estimated_rows_per_second(),
            plan_digest: plan.digest().to_vec(),
        }))
    }

    type EvaluateStream = EventStream;

    async fn evaluate(
        &self,
        request: Request<pb::EvaluateRequest>,
    ) -> Result<Response<Self::EvaluateStream>, Status> {
        let read = request
            .into_inner()
            .table_read
            .ok_or_else(|| Status::invalid_argument("table_read: required"))?;
        // Refuse early what the vault would refuse anyway: a read for another method.
        let body = ledger_pb::ReadBody::decode(read.body.as_slice())
            .map_err(|e| Status::invalid_argument(format!("table_read.body: {e}")))?;
        if body.method != COHORT_TABLE_METHOD {
            return Err(Status::invalid_argument(format!(
                "table_read.body.method: expected `{COHORT_TABLE_METHOD}`, got `{}`",
                body.method
            )));
        }
        let (tx, rx) = mpsc::channel(64);
        let this = self.clone();
        tokio::spawn(async move {
            let outcome = this.run(read, &tx).await;
            let last = outcome.map(|r| pb::EvaluateEvent {
                event: Some(pb::evaluate_event::Event::Result(r)),
            });
            let _ = tx.send(last).await;
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

/// A worker serving gRPC.
pub struct RunningCompute {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl RunningCompute {
    /// `http://ADDR`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving.
    pub async fn stop(self) -> Result<(), ComputeError> {
        let _ = self.shutdown.send(true);
        self.server
            .await
            .map_err(|e| ComputeError::Server(e.to_string()))?
            .map_err(|e| ComputeError::Server(e.to_string()))
    }
}

/// Starts a worker as configured.
pub async fn start(config: ComputeConfig) -> Result<RunningCompute, ComputeError> {
    let listen = config.listen;
    let rpc = ComputeRpc::new(config);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ComputeServiceServer<ComputeRpc>>()
        .await;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ComputeError::Server(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ComputeError::Server(e.to_string()))?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let (shutdown, mut stop) = watch::channel(false);
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(ComputeServiceServer::new(rpc));
    let server = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    });
    info!(target: "custos::compute", %addr, "compute worker listening");
    Ok(RunningCompute {
        addr,
        shutdown,
        server,
    })
}
