//! Starts the engine and answers its messages from the ledger and the proposal store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, anyhow};
use arc_malachitebft_app_channel::app::config::{
    ConsensusConfig as EngineConsensusConfig, NodeConfig, ValueSyncConfig,
};
use arc_malachitebft_app_channel::app::consensus::VoteExtensionError;
use arc_malachitebft_app_channel::app::engine::consensus::Msg as ConsensusActorMsg;
use arc_malachitebft_app_channel::app::engine::host::{Next, SyncedValueOutcome};
use arc_malachitebft_app_channel::app::net::PeerId;
use arc_malachitebft_app_channel::app::streaming::StreamId;
use arc_malachitebft_app_channel::app::types::codec::Codec;
use arc_malachitebft_app_channel::app::types::core::{
    HeightParams, LinearTimeouts, Round, Validity,
};
use arc_malachitebft_app_channel::app::types::sync::RawDecidedValue;
use arc_malachitebft_app_channel::app::types::{Keypair, LocallyProposedValue, ProposedValue};
use arc_malachitebft_app_channel::{
    AppMsg, ConsensusContext, EngineBuilder, EngineHandle, NetworkContext, NetworkIdentity,
    NetworkMsg, RequestContext, Signer, SyncContext, WalContext,
};
use bytes::Bytes;
use custos_crypto::{PublicKey, SigningKeyPair};
use tokio::sync::{mpsc, watch};
use tracing::{Instrument, debug, error, info, warn};

use crate::app::Application;
use crate::codec::{CustosCodec, from_ledger_certificate, to_ledger_certificate};
use crate::config::ConsensusConfig;
use crate::context::{
    Address, BlockId, CustosContext, Height, PartFin, PartInit, ValidatorSet, proposer_index,
};
use crate::signing::{CustosSigner, CustosVerifier, proposal_parts_bytes, verify_strict};
use crate::store::{StoredValue, ValueStore};
use crate::streaming::{Assembled, Streams, stream_messages};

/// Most heights ahead of the committed one whose proposals are kept until their turn.
const PENDING_HEIGHTS: u64 = 8;
/// Most proposals kept for one future height.
const PENDING_PER_HEIGHT: usize = 16;
/// Most values stored for one height and round (a proposer may equivocate).
const VALUES_PER_ROUND: usize = 8;
/// Most decided values served in one sync response.
const MAX_SYNC_BATCH: u64 = 64;
/// Most value bytes served in one sync response (the engine caps responses at 10 MiB).
const MAX_SYNC_BYTES: usize = 8 * 1024 * 1024;
/// How long shutting the engine down may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

type Ctx = CustosContext;

/// The engine's node configuration.
struct EngineConfig {
    moniker: String,
    consensus: EngineConsensusConfig,
    value_sync: ValueSyncConfig,
}

impl NodeConfig for EngineConfig {
    fn moniker(&self) -> &str {
        &self.moniker
    }

    fn consensus(&self) -> &EngineConsensusConfig {
        &self.consensus
    }

    fn consensus_mut(&mut self) -> &mut EngineConsensusConfig {
        &mut self.consensus
    }

    fn value_sync(&self) -> &ValueSyncConfig {
        &self.value_sync
    }

    fn value_sync_mut(&mut self) -> &mut ValueSyncConfig {
        &mut self.value_sync
    }
}

fn engine_config(
    config: &ConsensusConfig,
    validators: &ValidatorSet,
    own: &Address,
) -> anyhow::Result<EngineConfig> {
    let mut consensus = EngineConsensusConfig::default();
    consensus.p2p.listen_addr = config
        .listen_addr
        .parse()
        .with_context(|| format!("listen address {:?}", config.listen_addr))?;
    consensus.p2p.persistent_peers = config
        .persistent_peers
        .iter()
        .map(|p| p.parse().with_context(|| format!("peer address {p:?}")))
        .collect::<anyhow::Result<_>>()?;
    // Every other validator is pinned by peer id, so its connections are accepted whichever
    // port they come from; only consortium members connect, and there is no discovery.
    for v in validators.validators().iter().filter(|v| &v.address != own) {
        let pinned = format!("/p2p/{}", peer_id_of(&v.address.0)?);
        consensus.p2p.persistent_peers.push(
            pinned
                .parse()
                .with_context(|| format!("pinned peer {pinned}"))?,
        );
    }
    consensus.p2p.persistent_peers_only = true;
    consensus.p2p.discovery.enabled = false;
    // All validators of a local consortium share one IP.
    consensus.p2p.discovery.max_connections_per_ip = 256;
    // A value and its parts, with room for framing.
    let max = u64::try_from(config.max_value_bytes.saturating_mul(2))
        .unwrap_or(u64::MAX)
        .max(4 * 1024 * 1024);
    consensus.p2p.rpc_max_size = bytesize(max)?;
    consensus.p2p.pubsub_max_size = bytesize(max)?;
    let value_sync = ValueSyncConfig {
        enabled: true,
        status_update_interval: config.sync_status_interval,
        request_timeout: config.sync_request_timeout,
        max_response_size: bytesize(max.max(10 * 1024 * 1024))?,
        ..ValueSyncConfig::default()
    };
    Ok(EngineConfig {
        moniker: config.moniker.clone(),
        consensus,
        value_sync,
    })
}

/// A byte size in the engine's config type.
fn bytesize<T: std::str::FromStr>(bytes: u64) -> anyhow::Result<T>
where
    T::Err: std::fmt::Display,
{
    format!("{bytes} B")
        .parse()
        .map_err(|e| anyhow!("byte size {bytes}: {e}"))
}

fn timeouts(config: &ConsensusConfig) -> LinearTimeouts {
    LinearTimeouts {
        propose: config.propose_timeout,
        propose_delta: config.timeout_delta,
        prevote: config.vote_timeout,
        prevote_delta: config.timeout_delta,
        precommit: config.vote_timeout,
        precommit_delta: config.timeout_delta,
        rebroadcast: config.propose_timeout + config.vote_timeout * 2,
        ..LinearTimeouts::default()
    }
}

/// The libp2p identity: the validator's own Ed25519 key, so that every validator's peer id
/// follows from the validator set. (libp2p signs its handshakes under its own domain strings.)
fn network_keypair(key: &SigningKeyPair) -> anyhow::Result<Keypair> {
    let secret = key.secret();
    let mut seed = *secret.expose();
    // `ed25519_from_bytes` zeroizes the copy it is given.
    Keypair::ed25519_from_bytes(&mut seed).map_err(|e| anyhow!("network key: {e}"))
}

/// The libp2p peer id of a validator key: the identity multihash of the key's protobuf
/// encoding (`KeyType Ed25519 = 1`, 32 key bytes), as the libp2p peer-id spec defines it.
fn peer_id_of(key: &PublicKey) -> anyhow::Result<PeerId> {
    let mut bytes = Vec::with_capacity(38);
    bytes.extend_from_slice(&[0x00, 36, 0x08, 0x01, 0x12, 0x20]);
    bytes.extend_from_slice(key.as_bytes());
    PeerId::from_bytes(&bytes).map_err(|e| anyhow!("peer id of {}: {e}", key.short()))
}

/// Runs this validator's consensus until `shutdown` turns true (or its sender is dropped), or
/// until the engine fails.
///
/// Listens and dials as `config` says, keeps the engine's write-ahead log and the values it has
/// proposed or received under `config.data_dir`, and drives `app`: it proposes with
/// [`Application::propose`], checks others' proposals and synced blocks with
/// [`Application::validate`], commits each decided block with its certificate through
/// [`Application::commit`] before the engine moves on, and serves peers that catch up from
/// [`Application::decided`]. A key outside the application's validator set follows the chain
/// without voting.
pub async fn run(
    app: Arc<dyn Application>,
    config: ConsensusConfig,
    key: SigningKeyPair,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let span = tracing::info_span!("consensus", moniker = %config.moniker);
    async move {
        let chain_id = app.chain_id();
        let ctx = CustosContext::new(&chain_id);
        let validators = ValidatorSet::from_ledger(&app.validators())?;
        let address = Address(key.public());
        let is_validator = validators.contains(&address);

        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        let store = ValueStore::open(config.data_dir.join("values"))?;
        let wal_path = config.data_dir.join("wal").join("consensus.wal");

        let keypair = network_keypair(&key)?;
        let (identity, consensus_ctx) = if is_validator {
            let signer = CustosSigner::new(&ctx, key.clone());
            let peer_id = keypair.public().to_peer_id().to_bytes();
            let proof = signer
                .sign_validator_proof(address.0.as_bytes().to_vec(), peer_id)
                .await
                .map_err(|e| anyhow!("signing the validator proof: {e}"))?;
            let proof_bytes = CustosCodec
                .encode(&proof)
                .map_err(|e| anyhow!("encoding the validator proof: {e}"))?;
            let identity = NetworkIdentity::new_validator(
                config.moniker.clone(),
                keypair,
                address.to_string(),
                proof_bytes,
            );
            let consensus_ctx = ConsensusContext::new_validator(
                address,
                Box::new(CustosVerifier::new(&ctx)),
                Box::new(CustosSigner::new(&ctx, key.clone())),
            );
            (identity, consensus_ctx)
        } else {
            warn!("this key is not in the validator set: following the chain without voting");
            let identity = NetworkIdentity::new(config.moniker.clone(), keypair, None);
            let consensus_ctx =
                ConsensusContext::new_full_node(address, Box::new(CustosVerifier::new(&ctx)));
            (identity, consensus_ctx)
        };

        let (channels, engine) =
            EngineBuilder::new(ctx.clone(), engine_config(&config, &validators, &address)?)
                .with_default_wal(WalContext::new(wal_path, CustosCodec))
                .with_default_network(NetworkContext::new(identity, CustosCodec))
                .with_default_sync(SyncContext::new(CustosCodec))
                .with_default_consensus(consensus_ctx)
                .with_default_request(RequestContext::new(100))
                .build()
                .await
                .map_err(|e| anyhow!("starting the consensus engine: {e:#}"))?;
        info!(listen = %config.listen_addr, validator = is_validator, "consensus started");

        let mut host = Host::new(app, &config, &key, validators, store, channels.network);
        let mut from_engine = channels.consensus;

        let result = loop {
            if *shutdown.borrow() {
                break Ok(());
            }
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break Ok(());
                    }
                }
                msg = from_engine.recv() => match msg {
                    Some(msg) => {
                        if let Err(e) = host.handle(msg).await {
                            break Err(e);
                        }
                    }
                    None => break Err(anyhow!("the consensus engine stopped")),
                },
            }
        };

        // Dropping our end releases any request the engine is waiting on, so its actors stop.
        drop(from_engine);
        drop(host);
        stop_engine(engine).await;
        info!("consensus stopped");
        result
    }
    .instrument(span)
    .await
}

/// Stops the engine's actors: consensus first, because it appends to the WAL and, finding the
/// WAL gone, hangs on purpose (it cannot tell a shutdown from a failing disk); then the rest,
/// as a crash would, which the WAL is made to survive.
async fn stop_engine(engine: EngineHandle) {
    for child in engine.actor.get_children() {
        if child.is_message_type_of::<ConsensusActorMsg<Ctx>>() == Some(true) {
            let _ = child
                .stop_and_wait(Some("shutdown".into()), Some(STOP_TIMEOUT))
                .await;
        }
    }
    let _ = engine.actor.kill_and_wait(Some(STOP_TIMEOUT)).await;
    let _ = tokio::time::timeout(STOP_TIMEOUT, engine.handle).await;
}

/// Runs a blocking application call off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow!("application call failed: {e}"))
}

fn proposed_value(v: &StoredValue) -> ProposedValue<Ctx> {
    ProposedValue {
        height: v.height,
        round: v.round,
        valid_round: v.valid_round,
        proposer: v.proposer,
        value: BlockId(v.value_id),
        validity: v.validity,
    }
}

/// The application's side of the engine.
struct Host {
    app: Arc<dyn Application>,
    chain_id: String,
    address: Address,
    validators: ValidatorSet,
    timeouts: LinearTimeouts,
    target_block_time: Option<Duration>,
    signer: Option<CustosSigner>,
    store: ValueStore,
    streams: Streams,
    /// Complete, authenticated proposals for heights above the next one.
    pending: BTreeMap<u64, Vec<Assembled>>,
    max_value_bytes: usize,
    stream_nonce: u64,
    network: mpsc::Sender<NetworkMsg<Ctx>>,
}

impl Host {
    fn new(
        app: Arc<dyn Application>,
        config: &ConsensusConfig,
        key: &SigningKeyPair,
        validators: ValidatorSet,
        store: ValueStore,
        network: mpsc::Sender<NetworkMsg<Ctx>>,
    ) -> Self {
        let chain_id = app.chain_id();
        let address = Address(key.public());
        let signer = validators
            .contains(&address)
            .then(|| CustosSigner::new(&CustosContext::new(&chain_id), key.clone()));
        Host {
            app,
            chain_id,
            address,
            validators,
            timeouts: timeouts(config),
            target_block_time: config.target_block_time,
            signer,
            store,
            streams: Streams::new(config.max_value_bytes),
            pending: BTreeMap::new(),
            max_value_bytes: config.max_value_bytes,
            // Stream ids must not repeat across restarts while peers may still buffer old ones.
            stream_nonce: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
            network,
        }
    }

    /// The parameters of the next height, with the validator set the ledger names for it
    /// (governance changes take effect at their height).
    fn params(&mut self) -> HeightParams<Ctx> {
        match ValidatorSet::from_ledger(&self.app.validators()) {
            Ok(set) => self.validators = set,
            Err(e) => {
                warn!(error = %e, "the ledger's validator set is unusable; keeping the previous one")
            }
        }
        HeightParams::new(
            self.validators.clone(),
            self.timeouts,
            self.target_block_time,
        )
    }

    /// Answers one message; an error stops consensus.
    async fn handle(&mut self, msg: AppMsg<Ctx>) -> anyhow::Result<()> {
        match msg {
            AppMsg::ConsensusReady { reply } => {
                let start = self.app.committed_height().saturating_add(1);
                info!(height = start, "consensus ready");
                let _ = reply.send((Height(start), self.params()));
            }

            AppMsg::StartedRound {
                height,
                round,
                proposer,
                role,
                reply_value,
            } => {
                debug!(%height, %round, %proposer, ?role, "started round");
                let values = self.started_round(height, round).await;
                let _ = reply_value.send(values);
            }

            AppMsg::GetValue {
                height,
                round,
                timeout,
                reply,
            } => {
                if let Some(value) = self.value_to_propose(height, round, timeout).await {
                    let _ = reply.send(LocallyProposedValue::new(
                        height,
                        round,
                        BlockId(value.value_id),
                    ));
                    self.publish(&value).await?;
                }
            }

            AppMsg::ReceivedProposalPart {
                from,
                published_by,
                part,
                reply,
            } => {
                let value = match self.streams.insert(published_by.unwrap_or(from), part) {
                    Ok(Some(assembled)) => self.received(assembled).await,
                    Ok(None) => None,
                    Err(e) => {
                        warn!(%from, error = %e, "dropped a proposal stream");
                        None
                    }
                };
                let _ = reply.send(value);
            }

            AppMsg::Decided {
                certificate, reply, ..
            } => {
                let height = certificate.height;
                match self.commit(&certificate).await {
                    Ok(()) => {
                        let _ = reply.send(());
                    }
                    // No acknowledgement: the engine does not advertise the height, and
                    // `Finalized` restarts it.
                    Err(e) => error!(%height, error = %format!("{e:#}"), "commit failed"),
                }
            }

            AppMsg::Finalized {
                certificate, reply, ..
            } => {
                let height = certificate.height;
                let next = if self.app.committed_height() >= height.0 {
                    Next::Start(Height(height.0 + 1), self.params())
                } else {
                    warn!(%height, "height finalized but not committed: restarting it");
                    Next::Restart(height, self.params())
                };
                let _ = reply.send(next);
            }

            AppMsg::GetHistoryMinHeight { reply } => {
                let min = if self.app.committed_height() >= 1 {
                    1
                } else {
                    0
                };
                let _ = reply.send(Height(min));
            }

            AppMsg::GetDecidedValues { range, reply } => {
                let values = self.decided_values(range.start().0, range.end().0).await;
                let _ = reply.send(values);
            }

            AppMsg::ProcessSyncedValue {
                height,
                round,
                proposer,
                value_bytes,
                reply,
            } => {
                let outcome = self
                    .synced_value(height, round, proposer, value_bytes)
                    .await;
                let _ = reply.send(outcome);
            }

            AppMsg::ExtendVote { reply, .. } => {
                let _ = reply.send(None);
            }

            AppMsg::VerifyVoteExtensions {
                extensions, reply, ..
            } => {
                // Custos precommits carry no extensions; any that arrives is refused.
                let verdicts = extensions
                    .into_iter()
                    .map(|(address, ())| (address, Err(VoteExtensionError::InvalidVoteExtension)))
                    .collect();
                let _ = reply.send(verdicts);
            }

            AppMsg::RestreamProposal {
                height, value_id, ..
            } => match self.store.by_id(height, &value_id) {
                Some(value) if value.signature.is_some() => self.publish(&value).await?,
                _ => debug!(%height, %value_id, "nothing to restream"),
            },
        }
        Ok(())
    }

    /// Values for a round that starts: proposals received early for this height (now checked)
    /// and, after a restart, the values already stored for this round.
    async fn started_round(&mut self, height: Height, round: Round) -> Vec<ProposedValue<Ctx>> {
        let mut out: Vec<ProposedValue<Ctx>> = Vec::new();
        let early = self.pending.remove(&height.0).unwrap_or_default();
        self.pending.retain(|h, _| *h > height.0);
        for assembled in early {
            if let Some(v) = self.accept(assembled).await {
                out.push(v);
            }
        }
        for stored in self.store.at_round(height, round) {
            let v = proposed_value(&stored);
            if !out.contains(&v) {
                out.push(v);
            }
        }
        out
    }

    /// Our value for `(height, round)`: the one already built and stored, or a new one.
    async fn value_to_propose(
        &mut self,
        height: Height,
        round: Round,
        timeout: Duration,
    ) -> Option<StoredValue> {
        let signer = self.signer.as_ref()?;
        let own = self
            .store
            .at_round(height, round)
            .into_iter()
            .find(|v| v.proposer == self.address && v.signature.is_some());
        if let Some(value) = own {
            info!(%height, %round, "proposing the value built before the restart");
            return Some(value);
        }
        let r = round.as_u32()?;
        let app = self.app.clone();
        let proposer = self.address.0;
        let built = tokio::time::timeout(
            timeout,
            blocking(move || app.propose(height.0, r, proposer)),
        )
        .await;
        let (bytes, value_id) = match built {
            Ok(Ok(Ok(built))) => built,
            Ok(Ok(Err(e))) | Ok(Err(e)) => {
                error!(%height, %round, error = %format!("{e:#}"), "building a proposal failed");
                return None;
            }
            Err(_) => {
                error!(%height, %round, "building a proposal took too long");
                return None;
            }
        };
        if bytes.len() > self.max_value_bytes {
            error!(%height, %round, size = bytes.len(), "built proposal exceeds max_value_bytes");
            return None;
        }
        let message = proposal_parts_bytes(
            &self.chain_id,
            height,
            round,
            Round::Nil,
            &self.address,
            &value_id,
            &bytes,
        )?;
        let value = StoredValue {
            height,
            round,
            valid_round: Round::Nil,
            proposer: self.address,
            value_id,
            validity: Validity::Valid,
            signature: Some(signer.sign_bytes(&message)),
            bytes: Bytes::from(bytes),
        };
        // Durable before the engine hears of it, so a restart proposes the same value.
        if let Err(e) = self.store.put(&value) {
            error!(%height, %round, error = %format!("{e:#}"), "storing our proposal failed");
            return None;
        }
        info!(%height, %round, value = %value_id.short(), "proposing");
        Some(value)
    }

    /// Gossips a stored, signed value as a stream of parts.
    async fn publish(&mut self, value: &StoredValue) -> anyhow::Result<()> {
        let Some(signature) = value.signature else {
            return Ok(());
        };
        self.stream_nonce = self.stream_nonce.wrapping_add(1);
        let mut id = Vec::with_capacity(20);
        id.extend_from_slice(&value.height.0.to_be_bytes());
        id.extend_from_slice(&value.round.as_u32().unwrap_or(0).to_be_bytes());
        id.extend_from_slice(&self.stream_nonce.to_be_bytes());
        let init = PartInit {
            height: value.height,
            round: value.round,
            pol_round: value.valid_round,
            proposer: value.proposer,
        };
        let fin = PartFin {
            value_id: value.value_id,
            signature,
        };
        for msg in stream_messages(StreamId::new(Bytes::from(id)), init, &value.bytes, fin) {
            self.network
                .send(NetworkMsg::PublishProposalPart(msg))
                .await
                .map_err(|_| anyhow!("the consensus network stopped"))?;
        }
        Ok(())
    }

    /// Whether a complete stream comes from the proposer of its height and round, signed.
    fn authenticate(&self, a: &Assembled) -> Result<(), &'static str> {
        let round = a.init.round.as_u32().ok_or("nil round")?;
        let expected = self
            .validators
            .validators()
            .get(proposer_index(&self.validators, a.init.height, round))
            .ok_or("empty validator set")?;
        if expected.address != a.init.proposer {
            return Err("not from the proposer of its round");
        }
        let message = proposal_parts_bytes(
            &self.chain_id,
            a.init.height,
            a.init.round,
            a.init.pol_round,
            &a.init.proposer,
            &a.fin.value_id,
            &a.bytes,
        )
        .ok_or("nil round")?;
        if !verify_strict(a.init.proposer.0.as_bytes(), &message, &a.fin.signature) {
            return Err("bad proposer signature");
        }
        Ok(())
    }

    /// A complete stream from the network: checked now if it is for the next height, kept for
    /// later if it is for one after that.
    async fn received(&mut self, a: Assembled) -> Option<ProposedValue<Ctx>> {
        if let Err(reason) = self.authenticate(&a) {
            warn!(height = %a.init.height, round = %a.init.round, reason, "dropped a proposal");
            return None;
        }
        let next = self.app.committed_height().saturating_add(1);
        let height = a.init.height.0;
        if height < next {
            return None;
        }
        if height > next {
            if height - next <= PENDING_HEIGHTS {
                let list = self.pending.entry(height).or_default();
                if list.len() < PENDING_PER_HEIGHT {
                    list.push(a);
                }
            }
            return None;
        }
        self.accept(a).await
    }

    /// Validates an authenticated value for the next height and stores it with its verdict.
    async fn accept(&mut self, a: Assembled) -> Option<ProposedValue<Ctx>> {
        let (height, round) = (a.init.height, a.init.round);
        // A value seen before (a restream, or a pending one at its round's start) keeps its
        // verdict without being executed again.
        if let Some(seen) = self
            .store
            .at_round(height, round)
            .into_iter()
            .find(|v| v.value_id == a.fin.value_id && v.signature == Some(a.fin.signature))
        {
            return Some(proposed_value(&seen));
        }
        if self.store.count_at_round(height, round) >= VALUES_PER_ROUND {
            warn!(%height, %round, "too many values for one round: dropped one");
            return None;
        }
        let app = self.app.clone();
        let bytes = a.bytes.clone();
        let validity = match blocking(move || app.validate(height.0, &bytes)).await {
            Ok(Ok(id)) if id == a.fin.value_id => Validity::Valid,
            Ok(Ok(id)) => {
                warn!(%height, %round, claimed = %a.fin.value_id.short(), actual = %id.short(), "proposal id does not match its block");
                Validity::Invalid
            }
            Ok(Err(reason)) => {
                warn!(%height, %round, proposer = %a.init.proposer.0.short(), %reason, "rejected an invalid proposal");
                Validity::Invalid
            }
            Err(e) => {
                error!(%height, %round, error = %format!("{e:#}"), "validating a proposal failed");
                return None;
            }
        };
        let stored = StoredValue {
            height,
            round,
            valid_round: a.init.pol_round,
            proposer: a.init.proposer,
            value_id: a.fin.value_id,
            validity,
            signature: Some(a.fin.signature),
            // An invalid block is never committed or restreamed: keep only its verdict.
            bytes: if validity.is_valid() {
                a.bytes
            } else {
                Bytes::new()
            },
        };
        if let Err(e) = self.store.put(&stored) {
            error!(%height, %round, error = %format!("{e:#}"), "storing a proposal failed");
            return None;
        }
        Some(proposed_value(&stored))
    }

    /// Commits a decided value with its certificate, durably.
    async fn commit(
        &mut self,
        certificate: &arc_malachitebft_app_channel::app::types::core::CommitCertificate<Ctx>,
    ) -> anyhow::Result<()> {
        let height = certificate.height;
        if self.app.committed_height() >= height.0 {
            // Already committed before a restart; the engine re-decided it from its WAL.
            return Ok(());
        }
        let ledger_certificate = to_ledger_certificate(certificate)?;
        let value = self
            .store
            .by_id(height, &certificate.value_id)
            .ok_or_else(|| {
                anyhow!(
                    "decided value {} is not stored",
                    certificate.value_id.short()
                )
            })?;
        let app = self.app.clone();
        let bytes = value.bytes.clone();
        blocking(move || app.commit(height.0, &bytes, ledger_certificate)).await??;
        info!(%height, round = %certificate.round, value = %certificate.value_id.short(), signatures = certificate.commit_signatures.len(), "committed");
        if let Err(e) = self.store.prune_through(height) {
            warn!(%height, error = %format!("{e:#}"), "pruning the proposal store failed");
        }
        self.pending.retain(|h, _| *h > height.0);
        Ok(())
    }

    /// Decided values in `start..=end` for a peer that catches up: only committed heights, in
    /// order, stopping at the first missing one and within the batch and size limits.
    async fn decided_values(&self, start: u64, end: u64) -> Vec<RawDecidedValue<Ctx>> {
        let tip = self.app.committed_height();
        if start == 0 || start > end || start > tip {
            return Vec::new();
        }
        let end = end.min(tip).min(start.saturating_add(MAX_SYNC_BATCH - 1));
        let app = self.app.clone();
        let found = blocking(move || {
            let mut out = Vec::new();
            let mut size = 0usize;
            for h in start..=end {
                match app.decided(h) {
                    Ok(Some((bytes, certificate))) => {
                        size += bytes.len();
                        if !out.is_empty() && size > MAX_SYNC_BYTES {
                            break;
                        }
                        out.push((bytes, certificate));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(height = h, error = %format!("{e:#}"), "reading a decided value failed");
                        break;
                    }
                }
            }
            out
        })
        .await
        .unwrap_or_default();
        found
            .into_iter()
            .map(|(bytes, certificate)| {
                RawDecidedValue::new(Bytes::from(bytes), from_ledger_certificate(&certificate))
            })
            .collect()
    }

    /// A decided block from a peer (its certificate already verified by the engine).
    async fn synced_value(
        &mut self,
        height: Height,
        round: Round,
        proposer: Address,
        value_bytes: Bytes,
    ) -> SyncedValueOutcome<Ctx> {
        if value_bytes.len() > self.max_value_bytes {
            return SyncedValueOutcome::PeerFault;
        }
        if height.0 != self.app.committed_height().saturating_add(1) {
            return SyncedValueOutcome::LocalTransientError;
        }
        let app = self.app.clone();
        let bytes = value_bytes.clone();
        let value_id = match blocking(move || app.validate_synced(height.0, &bytes)).await {
            Ok(Ok(id)) => id,
            Ok(Err(reason)) => {
                warn!(%height, %reason, "a peer served an invalid block");
                return SyncedValueOutcome::PeerFault;
            }
            Err(e) => {
                error!(%height, error = %format!("{e:#}"), "validating a synced block failed");
                return SyncedValueOutcome::LocalTransientError;
            }
        };
        let stored = StoredValue {
            height,
            round,
            valid_round: Round::Nil,
            proposer,
            value_id,
            validity: Validity::Valid,
            signature: None,
            bytes: value_bytes,
        };
        if let Err(e) = self.store.put(&stored) {
            error!(%height, error = %format!("{e:#}"), "storing a synced block failed");
            return SyncedValueOutcome::LocalTransientError;
        }
        debug!(%height, value = %value_id.short(), "synced a block");
        SyncedValueOutcome::Verdict(proposed_value(&stored))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use arc_malachitebft_app_channel::app::types::core::{
        CommitCertificate, Context as _, NilOrVal, VoteExtensions,
    };
    use custos_crypto::{Hash, SecretKey, sha256};
    use custos_ledger::commit_message;
    use tokio::sync::oneshot;

    const CHAIN: &str = "custos-host-test";

    fn key(seed: u8) -> SigningKeyPair {
        SigningKeyPair::from_secret(&SecretKey::from_slice(&[seed; 32]).unwrap())
    }

    /// A ledger whose blocks are strings; `bad…` blocks are invalid.
    struct FakeApp {
        set: custos_ledger::ValidatorSet,
        built: Mutex<u32>,
        committed: Mutex<BTreeMap<u64, (Vec<u8>, custos_ledger::CommitCertificate)>>,
        propose_bad: bool,
    }

    impl FakeApp {
        fn new(propose_bad: bool) -> Arc<Self> {
            let validators = (1..=4)
                .map(|i| custos_ledger::Validator {
                    key: key(i).public(),
                    power: 1,
                })
                .collect();
            Arc::new(FakeApp {
                set: custos_ledger::ValidatorSet::new(validators).unwrap(),
                built: Mutex::new(0),
                committed: Mutex::new(BTreeMap::new()),
                propose_bad,
            })
        }
    }

    impl Application for FakeApp {
        fn chain_id(&self) -> String {
            CHAIN.into()
        }
        fn validators(&self) -> custos_ledger::ValidatorSet {
            self.set.clone()
        }
        fn committed_height(&self) -> u64 {
            self.committed
                .lock()
                .unwrap()
                .keys()
                .next_back()
                .copied()
                .unwrap_or(0)
        }
        fn propose(
            &self,
            height: u64,
            round: u32,
            _: PublicKey,
        ) -> anyhow::Result<(Vec<u8>, Hash)> {
            let mut built = self.built.lock().unwrap();
            *built += 1;
            let prefix = if self.propose_bad { "bad" } else { "block" };
            let value = format!("{prefix} {height}/{round} #{built}").into_bytes();
            let id = sha256(&value);
            Ok((value, id))
        }
        fn validate(&self, height: u64, value: &[u8]) -> Result<Hash, String> {
            if value.starts_with(b"bad") || height != self.committed_height() + 1 {
                return Err("invalid block".into());
            }
            Ok(sha256(value))
        }
        fn commit(
            &self,
            height: u64,
            value: &[u8],
            certificate: custos_ledger::CommitCertificate,
        ) -> anyhow::Result<()> {
            anyhow::ensure!(
                certificate.header_hash == sha256(value),
                "certificate for another value"
            );
            let message =
                commit_message(CHAIN, height, certificate.round, &certificate.header_hash);
            for (k, s) in &certificate.signatures {
                k.verify(&message, s)?;
            }
            self.committed
                .lock()
                .unwrap()
                .insert(height, (value.to_vec(), certificate));
            Ok(())
        }
        fn decided(
            &self,
            height: u64,
        ) -> anyhow::Result<Option<(Vec<u8>, custos_ledger::CommitCertificate)>> {
            Ok(self.committed.lock().unwrap().get(&height).cloned())
        }
    }

    struct TestHost {
        host: Host,
        parts: mpsc::Receiver<NetworkMsg<Ctx>>,
    }

    fn host(app: Arc<FakeApp>, seed: u8, dir: &std::path::Path) -> TestHost {
        let config = ConsensusConfig::new("test", "/ip4/127.0.0.1/tcp/0", dir.to_path_buf());
        let validators = ValidatorSet::from_ledger(&app.validators()).unwrap();
        let store = ValueStore::open(dir.join("values")).unwrap();
        let (tx, parts) = mpsc::channel(1024);
        TestHost {
            host: Host::new(app, &config, &key(seed), validators, store, tx),
            parts,
        }
    }

    /// The key seed of the proposer of `(height, round)`.
    fn proposer_seed(app: &FakeApp, height: u64, round: u32) -> u8 {
        let set = ValidatorSet::from_ledger(&app.validators()).unwrap();
        let proposer = set.validators()[proposer_index(&set, Height(height), round)].address;
        (1..=4).find(|&i| key(i).public() == proposer.0).unwrap()
    }

    async fn get_value(h: &mut TestHost, height: u64, round: u32) -> Hash {
        let (reply, rx) = oneshot::channel();
        h.host
            .handle(AppMsg::GetValue {
                height: Height(height),
                round: Round::new(round),
                timeout: Duration::from_secs(5),
                reply,
            })
            .await
            .unwrap();
        rx.await.unwrap().value.0
    }

    fn drain(h: &mut TestHost) -> Vec<NetworkMsg<Ctx>> {
        std::iter::from_fn(|| h.parts.try_recv().ok()).collect()
    }

    /// Feeds a stream to `h`; returns the last reply.
    async fn deliver(h: &mut TestHost, stream: Vec<NetworkMsg<Ctx>>) -> Option<ProposedValue<Ctx>> {
        let from = PeerId::from_bytes(&[0, 4, 1, 2, 3, 4]).unwrap();
        let from =
            arc_malachitebft_app_channel::app::types::PeerId::from_bytes(&from.to_bytes()).unwrap();
        let mut last = None;
        for NetworkMsg::PublishProposalPart(part) in stream {
            let (reply, rx) = oneshot::channel();
            h.host
                .handle(AppMsg::ReceivedProposalPart {
                    from,
                    published_by: None,
                    part,
                    reply,
                })
                .await
                .unwrap();
            last = rx.await.unwrap();
        }
        last
    }

    #[tokio::test]
    async fn a_restarted_proposer_proposes_the_value_it_built_before() {
        let app = FakeApp::new(false);
        let dir = tempfile::tempdir().unwrap();
        let seed = proposer_seed(&app, 1, 0);
        let mut first = host(app.clone(), seed, dir.path());
        let id = get_value(&mut first, 1, 0).await;
        assert!(!drain(&mut first).is_empty(), "the value is streamed");
        drop(first);

        let mut restarted = host(app.clone(), seed, dir.path());
        assert_eq!(get_value(&mut restarted, 1, 0).await, id);
        assert!(!drain(&mut restarted).is_empty(), "and streamed again");
        assert_eq!(*app.built.lock().unwrap(), 1, "the block was built once");
        assert_ne!(
            get_value(&mut restarted, 1, 1).await,
            id,
            "another round gets a new value"
        );
    }

    #[tokio::test]
    async fn proposals_are_taken_only_from_the_rounds_proposer_and_only_if_valid() {
        let dir = tempfile::tempdir().unwrap();
        let app = FakeApp::new(false);
        let seed = proposer_seed(&app, 1, 0);
        let other = (1..=4).find(|&i| i != seed).unwrap();
        let mut receiver = host(app.clone(), other, &dir.path().join("receiver"));

        // From someone else than the proposer of the round: dropped.
        let mut impostor = host(app.clone(), other, &dir.path().join("impostor"));
        get_value(&mut impostor, 1, 0).await;
        let stream = drain(&mut impostor);
        assert_eq!(deliver(&mut receiver, stream).await, None);

        // From the proposer: checked and accepted.
        let mut proposer = host(app.clone(), seed, &dir.path().join("proposer"));
        let id = get_value(&mut proposer, 1, 0).await;
        let stream = drain(&mut proposer);
        let value = deliver(&mut receiver, stream)
            .await
            .expect("a complete value");
        assert_eq!(value.value.0, id);
        assert_eq!(value.validity, Validity::Valid);
        assert_eq!(value.proposer, Address(key(seed).public()));

        // From the proposer but invalid: answered, as invalid, so the round votes nil.
        let bad_app = FakeApp::new(true);
        let mut bad = host(bad_app, seed, &dir.path().join("bad"));
        let bad_id = get_value(&mut bad, 1, 0).await;
        let value = deliver(&mut receiver, drain(&mut bad))
            .await
            .expect("a verdict");
        assert_eq!((value.value.0, value.validity), (bad_id, Validity::Invalid));
    }

    #[tokio::test]
    async fn a_decided_value_is_committed_with_its_precommits_and_served_to_peers() {
        let dir = tempfile::tempdir().unwrap();
        let app = FakeApp::new(false);
        let seed = proposer_seed(&app, 1, 0);
        let mut proposer = host(app.clone(), seed, &dir.path().join("proposer"));
        let id = get_value(&mut proposer, 1, 0).await;
        drain(&mut proposer);

        // Three of four precommit, each signing through the engine's signer.
        let ctx = CustosContext::new(CHAIN);
        let mut votes = Vec::new();
        for i in 1..=3 {
            let vote = ctx.new_precommit(
                Height(1),
                Round::new(0),
                NilOrVal::Val(id),
                Address(key(i).public()),
            );
            votes.push(
                CustosSigner::new(&ctx, key(i))
                    .sign_vote(vote)
                    .await
                    .unwrap(),
            );
        }
        let certificate = CommitCertificate::new(Height(1), Round::new(0), id, votes);
        let (reply, rx) = oneshot::channel();
        proposer
            .host
            .handle(AppMsg::Decided {
                certificate: certificate.clone(),
                extensions: VoteExtensions::default(),
                reply,
            })
            .await
            .unwrap();
        rx.await.expect("decided is acknowledged once committed");
        let committed = app.decided(1).unwrap().expect("committed");
        assert_eq!(sha256(&committed.0), id);
        assert_eq!(committed.1.signatures.len(), 3);

        let (reply, rx) = oneshot::channel();
        proposer
            .host
            .handle(AppMsg::Finalized {
                certificate,
                extensions: VoteExtensions::default(),
                evidence: arc_malachitebft_app_channel::app::types::MisbehaviorEvidence {
                    proposals: Default::default(),
                    votes: Default::default(),
                },
                reply,
            })
            .await
            .unwrap();
        assert!(matches!(rx.await.unwrap(), Next::Start(Height(2), _)));

        for (range, served) in [(0..=5, 0), (1..=5, 1), (2..=3, 0), (1..=1, 1)] {
            let (reply, rx) = oneshot::channel();
            let range = Height(*range.start())..=Height(*range.end());
            proposer
                .host
                .handle(AppMsg::GetDecidedValues { range, reply })
                .await
                .unwrap();
            assert_eq!(rx.await.unwrap().len(), served);
        }
    }

    #[tokio::test]
    async fn synced_blocks_are_checked_before_the_engine_sees_them() {
        let dir = tempfile::tempdir().unwrap();
        let app = FakeApp::new(false);
        let mut h = host(app, 1, dir.path());
        let proposer = Address(key(2).public());
        let sync = |height: u64, bytes: &'static [u8]| {
            let (reply, rx) = oneshot::channel();
            let msg = AppMsg::ProcessSyncedValue {
                height: Height(height),
                round: Round::new(0),
                proposer,
                value_bytes: Bytes::from_static(bytes),
                reply,
            };
            (msg, rx)
        };
        let (msg, rx) = sync(1, b"block 1");
        h.host.handle(msg).await.unwrap();
        match rx.await.unwrap() {
            SyncedValueOutcome::Verdict(v) => assert_eq!(v.value.0, sha256(b"block 1")),
            other => panic!("expected a verdict, got {other:?}"),
        }
        let (msg, rx) = sync(1, b"bad block");
        h.host.handle(msg).await.unwrap();
        assert!(matches!(rx.await.unwrap(), SyncedValueOutcome::PeerFault));
        let (msg, rx) = sync(5, b"block 5");
        h.host.handle(msg).await.unwrap();
        assert!(matches!(
            rx.await.unwrap(),
            SyncedValueOutcome::LocalTransientError
        ));
    }

    #[test]
    fn a_validators_peer_id_follows_from_its_public_key() {
        let key = key(3);
        let from_keypair = network_keypair(&key).unwrap().public().to_peer_id();
        assert_eq!(peer_id_of(&key.public()).unwrap(), from_keypair);
    }
}
