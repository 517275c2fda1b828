//! Starts a node: store, core, consensus and the gRPC server with health and reflection.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use custos_crypto::{KeyFile, PartyKeys};
use custos_proto::access::v1::access_service_server::AccessServiceServer;
use custos_proto::audit::v1::audit_service_server::AuditServiceServer;
use custos_proto::compute::v1::compute_service_server::ComputeServiceServer;
use custos_proto::consent::v1::consent_service_server::ConsentServiceServer;
use custos_proto::ledger::v1::ledger_service_server::LedgerServiceServer;
use custos_proto::vault::v1::vault_service_server::VaultServiceServer;
use custos_storage::KvLedgerStore;
use custos_types::Genesis;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::config::NodeConfig;
use crate::consensus::Consensus;
use crate::core::LedgerCore;
use crate::mempool::Mempool;
use crate::rpc::NodeContext;
use crate::rpc::access::AccessRpc;
use crate::rpc::audit::AuditRpc;
use crate::rpc::consent::ConsentRpc;
use crate::rpc::ledger::LedgerRpc;
use crate::rpc::unimplemented::{NoCompute, NoVault};

/// A running node.
pub struct RunningNode {
    /// Where its gRPC server listens.
    pub addr: SocketAddr,
    /// Its core (for in-process use and tests).
    pub core: Arc<LedgerCore>,
    /// Its compliance dashboard, when configured.
    pub dashboard: Option<crate::dashboard::DashboardInfo>,
    shutdown: watch::Sender<bool>,
    server: JoinHandle<anyhow::Result<()>>,
    consensus: JoinHandle<anyhow::Result<()>>,
    dashboard_task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningNode {
    /// Stops the node and waits for its tasks.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.shutdown.send(true);
        self.consensus.await??;
        self.server.await??;
        if let Some(task) = self.dashboard_task {
            task.await??;
        }
        Ok(())
    }

    /// Waits until a task of the node stops (it failed, or the node was stopped).
    pub async fn wait_handle(&mut self) -> anyhow::Result<()> {
        tokio::select! {
            r = &mut self.server => r?,
            r = &mut self.consensus => r?,
        }
    }
}

/// Reads a genesis file.
pub fn load_genesis(path: &std::path::Path) -> anyhow::Result<Genesis> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read genesis {}", path.display()))?;
    let genesis: Genesis = serde_json::from_str(&text)
        .with_context(|| format!("invalid genesis {}", path.display()))?;
    genesis
        .validate()
        .map_err(|e| anyhow::anyhow!("invalid genesis {}: {e}", path.display()))?;
    Ok(genesis)
}

/// Reads a party key file.
pub fn load_keys(path: &std::path::Path) -> anyhow::Result<PartyKeys> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let file: KeyFile = serde_json::from_str(&text)
        .with_context(|| format!("invalid key file {}", path.display()))?;
    PartyKeys::from_file(&file)
        .map_err(|e| anyhow::anyhow!("invalid key file {}: {e}", path.display()))
}

/// Starts a node as configured and returns once it listens.
pub async fn start(config: NodeConfig) -> anyhow::Result<RunningNode> {
    start_wrapped(config, Box::new(|app| app)).await
}

/// Starts a node whose consensus drives `wrap(ledger application)`: the fault-injection seam of
/// scenario tests (a Byzantine validator is an honest node behind a lying wrapper).
pub async fn start_wrapped(
    config: NodeConfig,
    wrap: crate::bft::AppWrapper,
) -> anyhow::Result<RunningNode> {
    let genesis = load_genesis(&config.genesis)?;
    let keys = load_keys(&config.validator_key)?;
    if !genesis
        .validators
        .iter()
        .any(|v| v.public_key.0 == keys.public())
    {
        anyhow::bail!(
            "validator key {} is not in the genesis validator set",
            keys.public().short()
        );
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data dir {}", config.data_dir.display()))?;
    let store = KvLedgerStore::open_sled(&config.data_dir.join("ledger"))
        .with_context(|| format!("cannot open store in {}", config.data_dir.display()))?;
    let core = Arc::new(LedgerCore::open(genesis, Arc::new(store))?);
    let mempool = Arc::new(Mempool::with_limits(
        config.mempool_capacity,
        crate::mempool::Limits {
            per_author: config.max_pending_per_author,
            registrations: config.max_pending_registrations,
        },
    ));
    let (shutdown, shutdown_rx) = watch::channel(false);

    // One code path: a lone validator is a one-validator Malachite network.
    let listen = config
        .p2p_listen
        .clone()
        .unwrap_or_else(|| "/ip4/127.0.0.1/tcp/0".to_string());
    let mut bft = custos_consensus::ConsensusConfig::new(
        keys.public().short(),
        listen,
        config.data_dir.join("consensus"),
    );
    bft.persistent_peers = config.p2p_peers.clone();
    let validator = crate::bft::BftValidator::new(
        keys.identity.clone(),
        bft,
        config.max_block_txs,
        std::time::Duration::from_millis(config.idle_block_ms),
    )
    .wrapped(wrap);
    let consensus = tokio::spawn(validator.run(core.clone(), mempool.clone(), shutdown_rx.clone()));

    let ctx = NodeContext {
        core: core.clone(),
        mempool,
        forwarder: crate::forward::Forwarder::new(&config.peers)?,
        shutdown: shutdown_rx.clone(),
        reads: Default::default(),
        read_budget: Arc::new(std::sync::Mutex::new(custos_types::ReadBudget::new(
            config.reads.limits()?,
            std::time::Instant::now(),
        ))),
        verified: Default::default(),
    };
    // Summarizes the refusal lines the limit dropped, once per window, even when no further
    // refusal comes to close it.
    let mut summaries_stop = shutdown_rx.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(custos_client::refusals::WINDOW);
        loop {
            tokio::select! {
                _ = tick.tick() => custos_client::refusals::REFUSALS.flush(),
                _ = summaries_stop.wait_for(|stop| *stop) => return,
            }
        }
    });
    let limit = config.max_message_bytes;
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<LedgerServiceServer<LedgerRpc>>().await;
    health
        .set_serving::<ConsentServiceServer<ConsentRpc>>()
        .await;
    health.set_serving::<AccessServiceServer<AccessRpc>>().await;
    health.set_serving::<AuditServiceServer<AuditRpc>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(custos_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(custos_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    // Without TCP_NODELAY, responses over a few hundred bytes wait on delayed ACKs (~40 ms each).
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let (dashboard, dashboard_task) = match config.dashboard_listen {
        Some(at) => {
            let listener = tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} for the dashboard"))?;
            let info = crate::dashboard::DashboardInfo {
                addr: listener.local_addr()?,
                token: crate::dashboard::new_token(),
            };
            write_private(&config.data_dir.join("dashboard.token"), &info.token)?;
            let task = tokio::spawn(crate::dashboard::serve(
                listener,
                ctx.clone(),
                info.token.clone(),
                shutdown_rx.clone(),
            ));
            info!(target: "custos::node", addr = %info.addr, "dashboard listening");
            (Some(info), Some(task))
        }
        None => (None, None),
    };
    let mut stop = shutdown_rx;
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            LedgerServiceServer::new(LedgerRpc::new(ctx.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            ConsentServiceServer::new(ConsentRpc::new(ctx.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            AccessServiceServer::new(AccessRpc::new(ctx.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            AuditServiceServer::new(AuditRpc::new(ctx.clone())).max_decoding_message_size(limit),
        )
        .add_service(VaultServiceServer::new(NoVault).max_decoding_message_size(limit))
        .add_service(ComputeServiceServer::new(NoCompute).max_decoding_message_size(limit));
    let server = tokio::spawn(async move {
        router
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await
            .context("gRPC server failed")
    });
    info!(target: "custos::node", %addr, "node listening");
    Ok(RunningNode {
        addr,
        core,
        dashboard,
        shutdown,
        server,
        consensus,
        dashboard_task,
    })
}

/// Writes a secret readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
