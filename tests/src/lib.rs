//! The harness of the workspace-level scenarios in `tests/tests/*.rs`: a one-node consortium on
//! loopback, and (in [`consortium`]) a consortium of several validators.
//!
//! [`TestNet::start`] builds a fresh consortium in a temporary folder:
//!
//! - a validator key, and the keys of four organisations that the genesis registers: a hospital
//!   (custodian), an insurer and an advertiser (partners) and an auditor; all but the auditor are
//!   member organisations;
//! - the genesis and key files (JSON), written where a real deployment would keep them;
//! - a node started in-process on `127.0.0.1:0` with a short block interval, and a
//!   [`Client`] connected to it;
//! - as many patients as asked for, each registered by a self-signed `RegisterParty` transaction.
//!
//! Helpers then register records, grant consents, take [`ChainSnapshot`]s and restart the node
//! on the same data folder. Raw gRPC calls ([`raw_unary`], over [`RawCodec`]) send bytes that no
//! generated type has seen, for generic-encoder and bad-input scenarios.
//!
//! Every network call the harness makes is bounded by [`CALL_TIMEOUT`]; a scenario that hangs
//! fails instead. The node runs blocks with `block_in_place`, so scenarios use the multi-thread
//! runtime: `#[tokio::test(flavor = "multi_thread")]`.
//!
//! [`consortium::Consortium`] runs several validators in this process instead (Malachite over
//! libp2p between them), for the fault scenarios of `tests/tests/bft.rs`.

pub mod consortium;
pub mod story;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::{Buf, BufMut};
use custos_client::Client;
use custos_crypto::{Hash, PartyKeys};
use custos_ledger::ValidatorSet;
use custos_node::{NodeConfig, RunningNode};
use custos_proto::ledger::v1 as ledger_pb;
use custos_types::genesis::{GenesisParty, GenesisValidator};
use custos_types::tx::{RegisterParty, RegisterRecord};
use custos_types::{
    AccessMode, Category, ChainId, Consent, ConsentId, ConsentPeriod, Genesis, Organisation,
    Parameters, PartyId, Purpose, RecordId, Role, Scope, Timestamp, TxKind,
};
use rand_core::{OsRng, RngCore};
use tempfile::TempDir;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// The chain every test net runs.
pub const CHAIN_ID: &str = "custos-test";
/// How long one call (a submission included, which waits for its block) may take before the
/// scenario fails.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Awaits `future`, failing with `what` if it takes longer than [`CALL_TIMEOUT`].
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(CALL_TIMEOUT, future)
        .await
        .map_err(|_| anyhow!("{what}: no answer within {} s", CALL_TIMEOUT.as_secs()))
}

/// 32 random bytes.
pub fn random32() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// Fresh party keys.
pub fn new_keys() -> PartyKeys {
    PartyKeys::generate(&mut OsRng)
}

/// The ledger identity of `keys`.
pub fn party(keys: &PartyKeys) -> PartyId {
    PartyId(keys.public())
}

/// What the chain has committed to: compared before and after a scenario step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSnapshot {
    /// Height of the last block.
    pub height: u64,
    /// Number of log entries.
    pub log_size: u64,
    /// RFC 6962 root of the log.
    pub log_root: Vec<u8>,
    /// Root of the consent state (empty before the first block).
    pub state_root: Vec<u8>,
}

impl ChainSnapshot {
    /// The snapshot part of a status.
    pub fn of(status: &ledger_pb::ChainStatus) -> Self {
        ChainSnapshot {
            height: status.height,
            log_size: status.log_size,
            log_root: status.log_root.clone(),
            state_root: status.state_root.clone(),
        }
    }
}

/// How [`TestNet::start_with`] sets up the consortium.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetOptions {
    /// Whether the consortium allows break-glass access.
    pub break_glass: bool,
    /// Whether the node serves the compliance dashboard (on a free loopback port).
    pub dashboard: bool,
    /// The node's admission limits, when not its defaults.
    pub limits: Option<custos_node::mempool::Limits>,
    /// The node's read budget, when not its default.
    pub reads: Option<custos_node::config::ReadsConfig>,
}

/// A one-node consortium with four organisations and some patients. See the crate docs.
pub struct TestNet {
    /// The consortium's genesis, as written to the genesis file.
    pub genesis: Genesis,
    /// A client of the node (reconnected by [`TestNet::restart`]).
    pub client: Client,
    /// The hospital: custodian, member.
    pub hospital: PartyKeys,
    /// The insurer: partner, member.
    pub insurer: PartyKeys,
    /// The advertiser: partner, member.
    pub advertiser: PartyKeys,
    /// The auditor: not a member.
    pub auditor: PartyKeys,
    /// Registered patients, in registration order.
    pub patients: Vec<PartyKeys>,
    config: NodeConfig,
    node: Option<RunningNode>,
    // Dropped last: the node's files live here.
    _dir: TempDir,
}

fn genesis_party(keys: &PartyKeys, role: Role, organisation: &str, member: bool) -> GenesisParty {
    GenesisParty {
        public_key: party(keys),
        role,
        encryption_key: keys.encryption_public(),
        organisation: Organisation::parse(organisation, "organisation")
            .expect("test organisation ids are valid"),
        member,
    }
}

fn write_json(path: &PathBuf, value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

impl TestNet {
    /// Writes a fresh consortium, starts its node, connects a client and registers
    /// `patients` patients.
    pub async fn start(patients: usize) -> anyhow::Result<Self> {
        Self::start_with(patients, NetOptions::default()).await
    }

    /// [`TestNet::start`] with options.
    pub async fn start_with(patients: usize, options: NetOptions) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let validator = new_keys();
        let (hospital, insurer, advertiser, auditor) =
            (new_keys(), new_keys(), new_keys(), new_keys());
        let genesis = Genesis {
            chain_id: ChainId::parse(CHAIN_ID)?,
            genesis_time_ms: Timestamp::now().0,
            parameters: Parameters {
                break_glass_enabled: options.break_glass,
                ..Parameters::default()
            },
            validators: vec![GenesisValidator {
                public_key: party(&validator),
                power: 1,
                address: String::new(),
            }],
            parties: vec![
                genesis_party(&hospital, Role::Custodian, "st-mary-hospital", true),
                genesis_party(&insurer, Role::Partner, "acme-insurance", true),
                genesis_party(&advertiser, Role::Partner, "adtech", true),
                genesis_party(&auditor, Role::Auditor, "health-regulator", false),
            ],
        };
        let genesis_path = dir.path().join("genesis.json");
        write_json(&genesis_path, &genesis)?;
        let key_path = dir.path().join("validator.key.json");
        write_json(&key_path, &validator.to_file())?;
        for (name, keys) in [
            ("hospital", &hospital),
            ("insurer", &insurer),
            ("advertiser", &advertiser),
            ("auditor", &auditor),
        ] {
            write_json(
                &dir.path().join(format!("{name}.key.json")),
                &keys.to_file(),
            )?;
        }
        let mut config = NodeConfig::new(genesis_path, dir.path().join("data"), key_path);
        config.listen = "127.0.0.1:0".parse()?;
        if options.dashboard {
            config.dashboard_listen = Some("127.0.0.1:0".parse()?);
        }
        if let Some(limits) = options.limits {
            config.max_pending_per_author = limits.per_author;
            config.max_pending_registrations = limits.registrations;
        }
        if let Some(reads) = options.reads {
            config.reads = reads;
        }
        let node = bounded("starting the node", custos_node::start(config.clone())).await??;
        let client = Self::connect(&node).await?;
        let mut net = TestNet {
            genesis,
            client,
            hospital,
            insurer,
            advertiser,
            auditor,
            patients: Vec::new(),
            config,
            node: Some(node),
            _dir: dir,
        };
        for _ in 0..patients {
            let keys = new_keys();
            net.submit(
                &keys,
                TxKind::RegisterParty(RegisterParty {
                    party: party(&keys),
                    role: Role::Patient,
                    encryption_key: keys.encryption_public(),
                    organisation: Organisation::default(),
                }),
            )
            .await
            .context("registering a patient")?;
            net.patients.push(keys);
        }
        Ok(net)
    }

    async fn connect(node: &RunningNode) -> anyhow::Result<Client> {
        let endpoint = format!("http://{}", node.addr);
        Ok(bounded("connecting", Client::connect(&endpoint)).await??)
    }

    /// The genesis file the node was started with.
    pub fn genesis_path(&self) -> &std::path::Path {
        &self.config.genesis
    }

    /// Where the running node's dashboard listens and its token (when started with one).
    pub fn dashboard(&self) -> Option<custos_node::dashboard::DashboardInfo> {
        self.node.as_ref().and_then(|n| n.dashboard.clone())
    }

    /// `http://ADDR` of the running node.
    pub fn endpoint(&self) -> String {
        self.node
            .as_ref()
            .map_or_else(String::new, |n| format!("http://{}", n.addr))
    }

    /// The genesis validator set: what a light client trusts.
    pub fn trusted(&self) -> ValidatorSet {
        custos_client::verify::genesis_validators(&self.genesis)
            .expect("the test genesis has a valid validator set")
    }

    /// Signs `kind` with `keys`, submits it and waits until it is finalized.
    pub async fn submit(
        &self,
        keys: &PartyKeys,
        kind: TxKind,
    ) -> anyhow::Result<ledger_pb::SubmitResponse> {
        let what = format!("submitting {}", kind.name());
        let response = bounded(&what, self.client.submit(keys, kind)).await??;
        if response.status != ledger_pb::TxStatus::Finalized as i32 {
            bail!("{what}: status {} ({})", response.status, response.reason);
        }
        Ok(response)
    }

    /// The hospital registers a `lab` record of `patient` with a random id and ciphertext
    /// digest.
    pub async fn register_record(&self, patient: &PartyKeys) -> anyhow::Result<RecordId> {
        let record_id = RecordId(Hash(random32()));
        self.submit(
            &self.hospital,
            TxKind::RegisterRecord(RegisterRecord {
                record_id,
                owner: party(patient),
                category: Category::parse("lab", "category")?,
                ciphertext_digest: Hash(random32()),
                attribute_commitment: None,
            }),
        )
        .await?;
        Ok(record_id)
    }

    /// `patient` grants `grantee` an unbounded consent over all their records for `purposes`
    /// in `modes`.
    pub async fn grant(
        &self,
        patient: &PartyKeys,
        grantee: &PartyKeys,
        purposes: &[Purpose],
        modes: &[AccessMode],
    ) -> anyhow::Result<ConsentId> {
        let consent = Consent {
            patient: party(patient),
            grantee: party(grantee),
            scope: Scope::AllRecords,
            purposes: purposes.iter().copied().collect(),
            modes: modes.iter().copied().collect(),
            period: ConsentPeriod::default(),
        };
        let response = self.submit(patient, TxKind::GrantConsent(consent)).await?;
        // A consent is named by the id of the transaction that granted it.
        Ok(ConsentId::from_field(&response.tx_id, "tx_id")?)
    }

    /// The chain's status.
    pub async fn status(&self) -> anyhow::Result<ledger_pb::ChainStatus> {
        Ok(bounded("reading the status", self.client.status()).await??)
    }

    /// Height, log size, log root and state root, as the node reports them now.
    pub async fn snapshot(&self) -> anyhow::Result<ChainSnapshot> {
        Ok(ChainSnapshot::of(&self.status().await?))
    }

    /// Fails unless the chain is still at `before` with nothing pending: what a refused
    /// request must leave behind.
    pub async fn assert_unchanged(&self, before: &ChainSnapshot) -> anyhow::Result<()> {
        let status = self.status().await?;
        let now = ChainSnapshot::of(&status);
        // Validators keep finalizing empty blocks while idle: the height may grow, but the log,
        // the state, and the header the snapshot was taken at must not change.
        let content = |s: &ChainSnapshot| (s.log_size, s.log_root.clone(), s.state_root.clone());
        if content(&now) != content(before) || now.height < before.height {
            bail!("the chain changed: before {before:?}, now {now:?}");
        }
        if before.height > 0 {
            let header = self
                .client
                .ledger()
                .get_header(ledger_pb::GetHeaderRequest {
                    height: before.height,
                })
                .await?
                .into_inner()
                .header
                .ok_or_else(|| anyhow::anyhow!("no header at {}", before.height))?;
            if header.log_root != before.log_root || header.state_root != before.state_root {
                bail!("the header at height {} changed", before.height);
            }
        }
        if status.mempool_size != 0 {
            bail!("{} transaction(s) are pending", status.mempool_size);
        }
        Ok(())
    }

    /// Stops the node and starts it again on the same data folder, then reconnects the client
    /// (the node listens on a new port).
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(node) = self.node.take() {
            bounded("stopping the node", node.stop()).await??;
        }
        let node = bounded(
            "restarting the node",
            custos_node::start(self.config.clone()),
        )
        .await??;
        self.client = Self::connect(&node).await?;
        self.node = Some(node);
        Ok(())
    }

    /// Stops the node.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(node) = self.node.take() {
            bounded("stopping the node", node.stop()).await??;
        }
        Ok(())
    }
}

/// A gRPC codec that moves message bytes as they are: with it, no generated Rust type is on the
/// request or the response path.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawCodec;

/// [`RawCodec`]'s encoder.
#[derive(Debug)]
pub struct RawEncoder;

/// [`RawCodec`]'s decoder.
#[derive(Debug)]
pub struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let mut bytes = vec![0u8; src.remaining()];
        src.copy_to_slice(&mut bytes);
        Ok(Some(bytes))
    }
}

/// Full gRPC path of `LedgerService.Submit`.
pub const SUBMIT_PATH: &str = "/custos.ledger.v1.LedgerService/Submit";

/// Sends `message` (serialized request bytes) to the unary method at `path`, e.g.
/// [`SUBMIT_PATH`], and returns the serialized response bytes or the node's status. Fails
/// (outer error) only if the node cannot be reached in time.
pub async fn raw_unary(
    endpoint: &str,
    path: &'static str,
    message: Vec<u8>,
) -> anyhow::Result<Result<Vec<u8>, Status>> {
    let channel = bounded(
        "connecting",
        tonic::transport::Endpoint::from_shared(endpoint.to_string())?.connect(),
    )
    .await??;
    let mut grpc = tonic::client::Grpc::new(channel);
    bounded("waiting for the channel", grpc.ready()).await??;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    let answer = bounded(
        "a raw call",
        grpc.unary(tonic::Request::new(message), path, RawCodec),
    )
    .await?;
    Ok(answer.map(tonic::Response::into_inner))
}
