//! Starting and stopping a vault: configuration, the sled store, the node connection and the
//! gRPC server (with health and reflection).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use custos_crypto::PartyKeys;
use custos_proto::vault::v1::vault_service_server::VaultServiceServer;
use custos_types::{Genesis, PartyId, Role};
use custos_vault::{KdfParams, Passphrase, StoreError, Vault, VaultError, VaultStore};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::aggregate::Aggregates;
use crate::gateway::{GatewayError, LedgerGateway, NodeGateway};
use crate::rpc::{Limits, VaultRpc};
use crate::sled_store::SledVaultStore;

/// Largest message the vault decodes (a `data` slice is at most 1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// Why a vault could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The configuration or a file it names is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The vault could not be opened.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The ledger node could not be reached or refused.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    /// The store holds damaged records; the vault does not start on them.
    #[error("{}", damage_report(.0))]
    Damaged(Vec<custos_vault::Damage>),
    /// The server failed.
    #[error("gRPC server: {0}")]
    Server(String),
}

/// Damaged records named in a refusal to start (the first this many; a scrub lists all).
const NAMED_DAMAGE: usize = 20;

fn damage_report(damage: &[custos_vault::Damage]) -> String {
    let mut out = format!(
        "the vault's store holds {} damaged record(s); the vault does not start on a damaged \
         store and has changed nothing in it:",
        damage.len()
    );
    for d in damage.iter().take(NAMED_DAMAGE) {
        out.push_str(&format!("\n  {d}"));
    }
    if damage.len() > NAMED_DAMAGE {
        out.push_str(&format!("\n  … and {} more", damage.len() - NAMED_DAMAGE));
    }
    out.push_str(
        "\nrestore the named files (keyring shards, chunk files, sled) from a backup, then run \
         `custos vault scrub` on the folder",
    );
    out
}

/// Where a vault listens, which node it uses, and where it keeps its data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VaultConfig {
    /// gRPC listen address.
    pub listen: SocketAddr,
    /// gRPC endpoint of a ledger node, e.g. `http://127.0.0.1:7420`.
    pub node: String,
    /// The consortium's genesis file: the vault trusts its validator set and nothing else.
    pub genesis: PathBuf,
    /// The vault's folder (keyring and sled store).
    pub data_dir: PathBuf,
    /// Argon2id parameters for a new keyring.
    pub kdf: KdfParams,
    /// The predicate circuit's proving key artifact (`custos zk setup`); without it the vault
    /// answers no `ProvePredicate`.
    #[serde(default)]
    pub proving_key: Option<PathBuf>,
    /// Smallest cohort (and matching count) the vault decrypts an aggregate over; the larger
    /// of this and the genesis' `min_cohort_size` applies.
    #[serde(default = "default_min_cohort")]
    pub min_cohort: u64,
    /// Bounds on callers.
    #[serde(skip, default)]
    pub limits: Limits,
}

fn default_min_cohort() -> u64 {
    10
}

impl VaultConfig {
    /// A configuration with the recommended key-derivation cost and default limits.
    pub fn new(listen: SocketAddr, node: String, genesis: PathBuf, data_dir: PathBuf) -> Self {
        VaultConfig {
            listen,
            node,
            genesis,
            data_dir,
            kdf: KdfParams::RECOMMENDED,
            proving_key: None,
            min_cohort: default_min_cohort(),
            limits: Limits::default(),
        }
    }
}

/// Reads a genesis file.
pub fn load_genesis(path: &std::path::Path) -> Result<Genesis, ServiceError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ServiceError::Config(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text)
        .map_err(|e| ServiceError::Config(format!("invalid genesis {}: {e}", path.display())))
}

/// A vault serving gRPC.
pub struct RunningVault<S: VaultStore, G: LedgerGateway> {
    /// Where it listens.
    pub addr: SocketAddr,
    rpc: VaultRpc<S, G>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    follower: Option<JoinHandle<()>>,
}

impl<S: VaultStore, G: LedgerGateway> RunningVault<S, G> {
    /// `http://ADDR`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The vault behind the service.
    pub fn vault(&self) -> &Arc<Vault<S>> {
        self.rpc.vault()
    }

    /// Gives the vault the predicate circuit's proving key ([`VaultRpc::set_proving_key`]).
    pub fn set_proving_key(
        &self,
        pk: custos_circuits::ProvingKeyArtifact,
    ) -> Result<(), ServiceError> {
        self.rpc.set_proving_key(pk).map_err(ServiceError::Config)
    }

    /// Follows the chain of the node at `config.node` and erases here every record of this vault
    /// that a finalized `EraseRecord` erased, however it reached the ledger
    /// ([`crate::follow`]). [`start`] does this; [`start_with`] leaves it to the caller.
    pub fn follow_erasures(
        &mut self,
        config: &VaultConfig,
        genesis: Genesis,
    ) -> Result<(), ServiceError> {
        let trusted = custos_client::verify::genesis_validators(&genesis)
            .map_err(|e| ServiceError::Config(format!("genesis: {e}")))?;
        self.follower = Some(tokio::spawn(crate::follow::follow_erasures(
            crate::follow::Source {
                node: config.node.clone(),
                keys: self.rpc.keys().clone(),
            },
            self.vault().clone(),
            self.rpc.aggregates().cloned(),
            genesis,
            trusted,
            config.data_dir.clone(),
            self.shutdown.subscribe(),
        )));
        Ok(())
    }

    /// Stops serving and waits until the server (and with it the store) is released.
    pub async fn stop(self) -> Result<(), ServiceError> {
        let _ = self.shutdown.send(true);
        drop(self.rpc);
        if let Some(follower) = self.follower {
            follower
                .await
                .map_err(|e| ServiceError::Server(e.to_string()))?;
        }
        self.server
            .await
            .map_err(|e| ServiceError::Server(e.to_string()))?
            .map_err(|e| ServiceError::Server(e.to_string()))
    }
}

/// Starts the vault of the custodian `keys` as configured: the node at `config.node`, the
/// sled store in `config.data_dir` unsealed with `passphrase`.
pub async fn start(
    config: &VaultConfig,
    keys: PartyKeys,
    passphrase: &Passphrase,
) -> Result<RunningVault<SledVaultStore, NodeGateway>, ServiceError> {
    let genesis = load_genesis(&config.genesis)?;
    let gateway = NodeGateway::connect(&config.node).await?;
    let mut running = start_with(config, keys, passphrase, genesis.clone(), gateway).await?;
    if let Some(path) = &config.proving_key {
        let pk = crate::predicate::load_proving_key(path).map_err(ServiceError::Config)?;
        running.set_proving_key(pk)?;
    }
    running.follow_erasures(config, genesis)?;
    Ok(running)
}

/// [`start`] with a given genesis and ledger gateway.
pub async fn start_with<G: LedgerGateway>(
    config: &VaultConfig,
    keys: PartyKeys,
    passphrase: &Passphrase,
    genesis: Genesis,
    gateway: G,
) -> Result<RunningVault<SledVaultStore, G>, ServiceError> {
    let custodian = PartyId(keys.public());
    match gateway.party(custodian).await? {
        Some(p) if p.role == Role::Custodian.to_wire() => {}
        Some(_) => {
            return Err(ServiceError::Config(format!(
                "key {} is registered, but not as a custodian",
                custodian.short()
            )));
        }
        None => {
            return Err(ServiceError::Config(format!(
                "key {} is not a registered party on the ledger",
                custodian.short()
            )));
        }
    }
    let store = SledVaultStore::open(&config.data_dir, passphrase, config.kdf)?;
    // Nothing of a damaged record is deleted or served around: the operator restores it first.
    if !store.damage().is_empty() {
        for d in store.damage() {
            tracing::error!(target: "custos::vault", record = %d.record.short(), part = %d.part, reason = %d.reason, "damaged record");
        }
        return Err(ServiceError::Damaged(store.damage().to_vec()));
    }
    let vault = Vault::open(store, custodian, &mut OsRng)?;
    let k_min = config
        .min_cohort
        .max(u64::from(genesis.parameters.min_cohort_size));
    let aggregates = Aggregates::open(
        &config.data_dir.join("aggregate"),
        passphrase,
        config.kdf,
        k_min,
    )
    .map_err(|e| ServiceError::Config(e.to_string()))?;
    let rpc = VaultRpc::new(vault, gateway, keys, genesis, config.limits)
        .map_err(|e| ServiceError::Config(format!("genesis: {e}")))?;
    rpc.set_aggregates(Arc::new(aggregates))
        .map_err(ServiceError::Config)?;
    serve(rpc, config.listen).await
}

/// Serves `rpc` on `listen` (port 0 picks one).
pub async fn serve<S: VaultStore, G: LedgerGateway>(
    rpc: VaultRpc<S, G>,
    listen: SocketAddr,
) -> Result<RunningVault<S, G>, ServiceError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<VaultServiceServer<VaultRpc<S, G>>>()
        .await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(custos_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServiceError::Server(e.to_string()))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(custos_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| ServiceError::Server(e.to_string()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| ServiceError::Config(format!("cannot listen on {listen}: {e}")))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ServiceError::Server(e.to_string()))?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let (shutdown, mut stop) = watch::channel(false);
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            VaultServiceServer::new(rpc.clone()).max_decoding_message_size(MAX_MESSAGE_BYTES),
        );
    let server = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
    });
    info!(target: "custos::vault", %addr, "vault listening");
    Ok(RunningVault {
        addr,
        rpc,
        shutdown,
        server,
        follower: None,
    })
}
