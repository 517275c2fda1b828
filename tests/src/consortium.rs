//! A consortium of several validators in one process: real nodes (real sled stores, real gRPC
//! servers, Malachite over real libp2p sockets) on loopback, each with its own data folder,
//! started, stopped and restarted at will.
//!
//! [`Consortium::new`] writes the files a deployment would have — one key per validator, a
//! genesis naming every validator with its libp2p address and the four organisations of
//! [`crate::TestNet`] — and reserves each validator's gRPC and libp2p ports, so every node's
//! config names its peers before any of them runs (transactions are forwarded to the other
//! validators' gRPC endpoints, consensus dials their libp2p addresses).
//! [`Consortium::start_wrapped`] puts a wrapper in front of a validator's application: the seam
//! for a Byzantine validator that is an honest node behind a lying wrapper.
//!
//! Only one consortium runs at a time in a test binary (four engines already keep two cores
//! busy): [`Consortium::new`] waits for the previous one to be dropped. Every wait is bounded by
//! [`PATIENCE`]; a scenario that stalls fails with what it was waiting for.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use custos_client::Client;
use custos_client::verify::{parse_signed_header, verify_header_chain};
use custos_crypto::{Hash, PartyKeys, PublicKey};
use custos_ledger::ValidatorSet;
use custos_node::bft::AppWrapper;
use custos_node::core::LedgerCore;
use custos_node::{NodeConfig, RunningNode};
use custos_proto::ledger::v1 as ledger_pb;
use custos_types::genesis::GenesisValidator;
use custos_types::tx::RegisterParty;
use custos_types::{
    ChainId, Genesis, Nonce, Organisation, Parameters, Role, SignedTransaction, Timestamp,
    TransactionBody, TxKind,
};
use tempfile::TempDir;

use crate::{CHAIN_ID, bounded, genesis_party, new_keys, party, write_json};

/// How long any wait of a consortium scenario may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// How long a proposer with an empty mempool waits before proposing an empty block: short, so
/// heights pass quickly in tests.
pub const IDLE_BLOCK_MS: u64 = 200;

/// Consortia run one at a time in a test binary.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Free loopback ports, reserved by binding them all before releasing any.
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()
        .context("cannot reserve loopback ports")?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()?)
}

/// A patient registration by a fresh key: a transaction any node accepts, independent of every
/// other (nonce 0 of a new author). Returns the signed transaction and the key.
pub fn patient_registration(chain_id: &ChainId) -> (SignedTransaction, PartyKeys) {
    let keys = new_keys();
    let body = TransactionBody {
        chain_id: chain_id.clone(),
        nonce: Nonce(0),
        kind: TxKind::RegisterParty(RegisterParty {
            party: party(&keys),
            role: Role::Patient,
            encryption_key: keys.encryption_public(),
            organisation: Organisation::default(),
        }),
    };
    (SignedTransaction::sign(&body, &keys.identity), keys)
}

/// A running validator of the consortium.
struct Member {
    node: RunningNode,
    client: Client,
}

/// A consortium of validators of power 1 in this process. See the module docs.
pub struct Consortium {
    /// The genesis every node and light client starts from.
    pub genesis: Genesis,
    /// The validators' keys, in the order of their configs (not the set's key order).
    pub validators: Vec<PartyKeys>,
    /// The hospital: custodian, member.
    pub hospital: PartyKeys,
    /// The insurer: partner, member.
    pub insurer: PartyKeys,
    /// The advertiser: partner, member.
    pub advertiser: PartyKeys,
    /// The auditor: not a member.
    pub auditor: PartyKeys,
    configs: Vec<NodeConfig>,
    members: Vec<Option<Member>>,
    // Dropped after the nodes: their files live here.
    _dir: TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Consortium {
    /// Writes a consortium of `n` validators; starts none of them.
    pub async fn new(n: usize) -> anyhow::Result<Self> {
        let turn = ONE_AT_A_TIME.lock().await;
        let dir = tempfile::tempdir()?;
        let validators: Vec<PartyKeys> = (0..n).map(|_| new_keys()).collect();
        let (hospital, insurer, advertiser, auditor) =
            (new_keys(), new_keys(), new_keys(), new_keys());
        let ports = free_ports(2 * n)?;
        let grpc: Vec<SocketAddr> = ports[..n]
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect();
        let p2p: Vec<String> = ports[n..]
            .iter()
            .map(|p| format!("/ip4/127.0.0.1/tcp/{p}"))
            .collect();
        let genesis = Genesis {
            chain_id: ChainId::parse(CHAIN_ID)?,
            genesis_time_ms: Timestamp::now().0,
            parameters: Parameters::default(),
            validators: validators
                .iter()
                .zip(&p2p)
                .map(|(keys, address)| GenesisValidator {
                    public_key: party(keys),
                    power: 1,
                    address: address.clone(),
                })
                .collect(),
            parties: vec![
                genesis_party(&hospital, Role::Custodian, "st-mary-hospital", true),
                genesis_party(&insurer, Role::Partner, "acme-insurance", true),
                genesis_party(&advertiser, Role::Partner, "adtech", true),
                genesis_party(&auditor, Role::Auditor, "health-regulator", false),
            ],
        };
        let genesis_path = dir.path().join("genesis.json");
        write_json(&genesis_path, &genesis)?;
        let others = |list: &[String], i: usize| -> Vec<String> {
            list.iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, a)| a.clone())
                .collect()
        };
        let endpoints: Vec<String> = grpc.iter().map(|a| format!("http://{a}")).collect();
        let mut configs = Vec::with_capacity(n);
        for (i, keys) in validators.iter().enumerate() {
            let node_dir = dir.path().join(format!("validator-{i}"));
            std::fs::create_dir_all(&node_dir)?;
            let key_path: PathBuf = node_dir.join("validator.key.json");
            write_json(&key_path, &keys.to_file())?;
            let mut config = NodeConfig::new(genesis_path.clone(), node_dir.join("data"), key_path);
            config.listen = grpc[i];
            config.peers = others(&endpoints, i);
            config.p2p_listen = Some(p2p[i].clone());
            config.p2p_peers = others(&p2p, i);
            config.idle_block_ms = IDLE_BLOCK_MS;
            configs.push(config);
        }
        Ok(Consortium {
            genesis,
            validators,
            hospital,
            insurer,
            advertiser,
            auditor,
            configs,
            members: (0..n).map(|_| None).collect(),
            _dir: dir,
            _turn: turn,
        })
    }

    /// Writes a consortium of `n` validators and starts them all.
    pub async fn start(n: usize) -> anyhow::Result<Self> {
        let mut consortium = Self::new(n).await?;
        for i in 0..n {
            consortium.start_node(i).await?;
        }
        Ok(consortium)
    }

    /// Number of validators.
    pub fn len(&self) -> usize {
        self.configs.len()
    }

    /// Whether the consortium has no validator.
    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    /// Starts validator `i` (again, on the same data folder and ports).
    pub async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        self.start_wrapped(i, Box::new(|app| app)).await
    }

    /// Starts validator `i` with consensus driving `wrap(its ledger application)`.
    pub async fn start_wrapped(&mut self, i: usize, wrap: AppWrapper) -> anyhow::Result<()> {
        if self.members[i].is_some() {
            bail!("validator {i} is already running");
        }
        let node = bounded(
            &format!("starting validator {i}"),
            custos_node::start_wrapped(self.configs[i].clone(), wrap),
        )
        .await??;
        let endpoint = format!("http://{}", node.addr);
        let client = bounded("connecting", Client::connect(&endpoint)).await??;
        self.members[i] = Some(Member { node, client });
        Ok(())
    }

    /// Stops validator `i` and waits for its tasks.
    pub async fn stop_node(&mut self, i: usize) -> anyhow::Result<()> {
        let member = self.members[i]
            .take()
            .ok_or_else(|| anyhow!("validator {i} is not running"))?;
        bounded(&format!("stopping validator {i}"), member.node.stop()).await??;
        Ok(())
    }

    /// Stops every running validator.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        for i in 0..self.len() {
            if self.members[i].is_some() {
                self.stop_node(i).await?;
            }
        }
        Ok(())
    }

    fn member(&self, i: usize) -> anyhow::Result<&Member> {
        self.members[i]
            .as_ref()
            .ok_or_else(|| anyhow!("validator {i} is not running"))
    }

    /// A client of validator `i`.
    pub fn client(&self, i: usize) -> anyhow::Result<&Client> {
        Ok(&self.member(i)?.client)
    }

    /// The ledger core of validator `i`.
    pub fn core(&self, i: usize) -> anyhow::Result<&Arc<LedgerCore>> {
        Ok(&self.member(i)?.node.core)
    }

    /// The consensus key of validator `i`.
    pub fn validator_key(&self, i: usize) -> PublicKey {
        self.validators[i].public()
    }

    /// The genesis validator set: what a light client trusts.
    pub fn trusted(&self) -> anyhow::Result<ValidatorSet> {
        Ok(custos_client::verify::genesis_validators(&self.genesis)?)
    }

    /// The committed height of validator `i` (0 if it is not running).
    pub fn height(&self, i: usize) -> u64 {
        self.members[i]
            .as_ref()
            .and_then(|m| m.node.core.tip())
            .map_or(0, |t| t.height)
    }

    /// The highest committed height among `which`.
    pub fn highest(&self, which: &[usize]) -> u64 {
        which.iter().map(|&i| self.height(i)).max().unwrap_or(0)
    }

    /// Waits until each of `which` has committed `height`; fails after [`PATIENCE`].
    pub async fn wait_for_height(&self, which: &[usize], height: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + PATIENCE;
        for &i in which {
            while self.height(i) < height {
                if Instant::now() >= deadline {
                    bail!(
                        "validator {i} is at height {} and did not reach {height} within {} s",
                        self.height(i),
                        PATIENCE.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Signs `kind` with `keys`, submits it to validator `i` and waits until it is finalized.
    pub async fn submit_to(
        &self,
        i: usize,
        keys: &PartyKeys,
        kind: TxKind,
    ) -> anyhow::Result<ledger_pb::SubmitResponse> {
        let what = format!("submitting {} to validator {i}", kind.name());
        let response = bounded(&what, self.client(i)?.submit(keys, kind)).await??;
        if response.status != ledger_pb::TxStatus::Finalized as i32 {
            bail!("{what}: status {} ({})", response.status, response.reason);
        }
        Ok(response)
    }

    /// Registers a fresh patient through validator `i`.
    pub async fn register_patient_at(&self, i: usize) -> anyhow::Result<PartyKeys> {
        let keys = new_keys();
        self.submit_to(
            i,
            &keys,
            TxKind::RegisterParty(RegisterParty {
                party: party(&keys),
                role: Role::Patient,
                encryption_key: keys.encryption_public(),
                organisation: Organisation::default(),
            }),
        )
        .await?;
        Ok(keys)
    }

    /// Every signed header validator `i` serves, from height 1 to its tip.
    pub async fn signed_headers(&self, i: usize) -> anyhow::Result<Vec<ledger_pb::SignedHeader>> {
        Ok(bounded("reading headers", self.client(i)?.headers()).await??)
    }

    /// The blocks validator `i` serves at heights `1..=to`, read by the auditor (who sees every
    /// entry).
    pub async fn blocks(&self, i: usize, to: u64) -> anyhow::Result<Vec<ledger_pb::Block>> {
        let client = self.client(i)?;
        let mut blocks = Vec::with_capacity(to as usize);
        for height in 1..=to {
            let block = bounded("reading a block", client.block(&self.auditor, height)).await??;
            blocks.push(block);
        }
        Ok(blocks)
    }

    /// Checks that the running validators `which` hold one chain: each serves a header chain that
    /// the light client verifies from the genesis alone, the header hashes agree at every height
    /// they share, and each block's entries are exactly the leaves its header's log root commits
    /// to. Returns the height all of them have reached.
    pub async fn assert_one_chain(&self, which: &[usize]) -> anyhow::Result<u64> {
        let trusted = self.trusted()?;
        let mut chains: Vec<Vec<Hash>> = Vec::new();
        for &i in which {
            let headers = self.signed_headers(i).await?;
            verify_header_chain(&self.genesis, &trusted, &headers)
                .with_context(|| format!("validator {i}'s chain does not verify"))?;
            let mut hashes = Vec::with_capacity(headers.len());
            for signed in &headers {
                hashes.push(parse_signed_header(signed)?.0.hash());
            }
            chains.push(hashes);
        }
        let common = chains.iter().map(Vec::len).min().unwrap_or(0);
        for h in 0..common {
            let first = chains[0][h];
            for (chain, &i) in chains.iter().zip(which) {
                if chain[h] != first {
                    bail!(
                        "validator {i} has header {} at height {}, validator {} has {}",
                        chain[h].short(),
                        h + 1,
                        which[0],
                        first.short()
                    );
                }
            }
        }
        for &i in which {
            check_log_roots(&self.blocks(i, common as u64).await?)
                .with_context(|| format!("validator {i}"))?;
        }
        Ok(common as u64)
    }
}

/// Checks that the blocks (heights 1 to n, in order) hold their log: the entries of each block
/// start where the previous block's ended, and the RFC 6962 root of every entry so far is the
/// log root its header commits to.
pub fn check_log_roots(blocks: &[ledger_pb::Block]) -> anyhow::Result<()> {
    let mut tree = custos_ledger::MerkleTree::new();
    for (i, block) in blocks.iter().enumerate() {
        let signed = block
            .signed_header
            .as_ref()
            .ok_or_else(|| anyhow!("block {} has no header", i + 1))?;
        let (header, _) = parse_signed_header(signed)?;
        if header.height != i as u64 + 1 || block.first_entry_index != tree.len() {
            bail!(
                "block at position {} is height {} starting at entry {} (expected {})",
                i + 1,
                header.height,
                block.first_entry_index,
                tree.len()
            );
        }
        for entry in &block.entries {
            tree.push(custos_ledger::merkle::leaf_hash(entry));
        }
        if tree.len() != header.log_size || tree.root() != header.log_root {
            bail!(
                "block {}: its entries give a log of {} with root {}, its header commits to {} with root {}",
                header.height,
                tree.len(),
                tree.root().short(),
                header.log_size,
                header.log_root.short()
            );
        }
    }
    Ok(())
}

/// The ids of the transactions the blocks hold, with their heights, in log order.
pub fn transactions_in(
    blocks: &[ledger_pb::Block],
) -> anyhow::Result<Vec<(custos_types::TxId, u64)>> {
    let mut out = Vec::new();
    for block in blocks {
        for bytes in &block.entries {
            let entry = custos_types::LedgerEntry::from_bytes(bytes)?;
            if let custos_types::EntryKind::Transaction(tx) = entry.kind {
                out.push((tx.id(), entry.height.0));
            }
        }
    }
    Ok(out)
}

/// The proposers of the headers.
pub fn proposers(headers: &[ledger_pb::SignedHeader]) -> anyhow::Result<BTreeSet<PublicKey>> {
    headers
        .iter()
        .map(|s| Ok(parse_signed_header(s)?.0.proposer))
        .collect()
}
