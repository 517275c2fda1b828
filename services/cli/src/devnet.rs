//! `custos devnet`: a local consortium of validators as separate processes on loopback.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context;
use clap::Args;
use custos_crypto::PartyKeys;
use custos_types::genesis::GenesisValidator;
use custos_types::{ChainId, Genesis, Parameters, PartyId, Role, Timestamp};
use serde_json::json;

use crate::keys::write_key_file;
use crate::node::genesis_party;
use crate::output::Output;

#[derive(Args, Debug)]
pub(crate) struct DevnetArgs {
    /// Number of validators (3f+1 tolerates f faulty ones).
    #[arg(long, env = "CUSTOS_DEVNET_VALIDATORS", default_value_t = 4)]
    validators: usize,
    /// Folder for keys, genesis, configs and stores; a temporary one if not given.
    #[arg(long, env = "CUSTOS_DEVNET_DIR")]
    dir: Option<PathBuf>,
    /// Chain id.
    #[arg(long, env = "CUSTOS_CHAIN_ID", default_value = "custos-devnet")]
    chain_id: String,
    /// Write everything and exit without starting the validators.
    #[arg(long)]
    init_only: bool,
}

/// A free loopback port (see [`custos_consensus::reserve_loopback_port`]), kept bound in
/// `reserved` until the caller drops it, so that no two validators are handed the same port.
fn free_port(reserved: &mut Vec<TcpListener>) -> anyhow::Result<u16> {
    let listener = custos_consensus::reserve_loopback_port().context("cannot find a free port")?;
    let port = listener.local_addr()?.port();
    reserved.push(listener);
    Ok(port)
}

/// One validator's files and addresses.
pub(crate) struct DevnetNode {
    /// Its folder.
    pub(crate) dir: PathBuf,
    /// Its config file.
    pub(crate) config: PathBuf,
    /// Its gRPC endpoint.
    pub(crate) endpoint: String,
}

/// Writes a consortium of `n` validators under `dir`: keys, one genesis, one config each, and
/// the organisations' keys (hospital, insurer, advertiser, auditor).
pub(crate) fn write_devnet(
    dir: &Path,
    n: usize,
    chain_id: &str,
) -> anyhow::Result<(Genesis, Vec<DevnetNode>)> {
    if n == 0 || n > 64 {
        anyhow::bail!("--validators: expected 1 to 64, got {n}");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut rng = rand::rngs::OsRng;
    let mut validators = Vec::new();
    let mut nodes = Vec::new();
    let mut grpc = Vec::new();
    let mut p2p = Vec::new();
    let mut reserved = Vec::new();
    for i in 0..n {
        let node_dir = dir.join(format!("validator-{i}"));
        std::fs::create_dir_all(&node_dir)?;
        let keys = PartyKeys::generate(&mut rng);
        write_key_file(&node_dir.join("validator.key"), &keys)?;
        let grpc_addr = SocketAddr::from(([127, 0, 0, 1], free_port(&mut reserved)?));
        let p2p_addr = format!("/ip4/127.0.0.1/tcp/{}", free_port(&mut reserved)?);
        validators.push(GenesisValidator {
            public_key: PartyId(keys.public()),
            power: 1,
            address: p2p_addr.clone(),
        });
        grpc.push(grpc_addr);
        p2p.push(p2p_addr);
        nodes.push(node_dir);
    }
    let mut parties = Vec::new();
    for (name, role, org, member) in [
        ("hospital", Role::Custodian, "st-mary-hospital", true),
        ("insurer", Role::Partner, "acme-insurance", true),
        ("advertiser", Role::Partner, "adco-marketing", true),
        ("auditor", Role::Auditor, "health-regulator", false),
    ] {
        let keys = PartyKeys::generate(&mut rng);
        let path = dir.join(format!("{name}.key"));
        if !path.exists() {
            write_key_file(&path, &keys)?;
            parties.push(genesis_party(&keys, role, org, member)?);
        } else {
            let keys = custos_node::load_keys(&path)?;
            parties.push(genesis_party(&keys, role, org, member)?);
        }
    }
    let genesis = Genesis {
        chain_id: ChainId::parse(chain_id)
            .map_err(|e| anyhow::anyhow!("--chain-id: {}", e.reason))?,
        genesis_time_ms: Timestamp::now().0,
        parameters: Parameters {
            break_glass_enabled: true,
            ..Parameters::default()
        },
        validators,
        parties,
    };
    genesis
        .validate()
        .map_err(|e| anyhow::anyhow!("genesis: {e}"))?;
    let genesis_path = dir.join("genesis.json");
    std::fs::write(&genesis_path, serde_json::to_string_pretty(&genesis)?)?;
    let mut out = Vec::new();
    for (i, node_dir) in nodes.into_iter().enumerate() {
        let peers_grpc: Vec<String> = grpc
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| format!("\"http://{a}\""))
            .collect();
        let peers_p2p: Vec<String> = p2p
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, a)| format!("\"{a}\""))
            .collect();
        let config = node_dir.join("node.toml");
        std::fs::write(
            &config,
            format!(
                "# validator {i} of a local devnet; relative paths are relative to this file.\n\
                 genesis = \"../genesis.json\"\n\
                 data_dir = \"data\"\n\
                 validator_key = \"validator.key\"\n\
                 listen = \"{}\"\n\
                 peers = [{}]\n\
                 p2p_listen = \"{}\"\n\
                 p2p_peers = [{}]\n",
                grpc[i],
                peers_grpc.join(", "),
                p2p[i],
                peers_p2p.join(", ")
            ),
        )?;
        out.push(DevnetNode {
            dir: node_dir,
            config,
            endpoint: format!("http://{}", grpc[i]),
        });
    }
    Ok((genesis, out))
}

/// Starts `custos node run` for a node, logging to its folder.
pub(crate) fn spawn_node(node: &DevnetNode) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find the custos binary")?;
    let log = std::fs::File::create(node.dir.join("node.log"))?;
    Command::new(exe)
        .args(["node", "run", "--config"])
        .arg(&node.config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start the validator in {}", node.dir.display()))
}

pub(crate) async fn run(args: DevnetArgs, out: &Output) -> anyhow::Result<()> {
    let temp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("custos-devnet-")
                .tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let (_genesis, nodes) = write_devnet(&dir, args.validators, &args.chain_id)?;
    let endpoints: Vec<&str> = nodes.iter().map(|n| n.endpoint.as_str()).collect();
    if args.init_only {
        out.result(
            || {
                format!(
                    "devnet of {} validators written to {}\n{}",
                    nodes.len(),
                    dir.display(),
                    endpoints.join("\n")
                )
            },
            json!({ "dir": dir, "endpoints": endpoints }),
        );
        return Ok(());
    }
    let mut children = Vec::new();
    for n in &nodes {
        children.push(spawn_node(n)?);
    }
    out.result(
        || {
            format!(
                "devnet of {} validators running (keys, genesis and logs in {}); gRPC endpoints:\n{}\nCtrl-C stops them.",
                nodes.len(),
                dir.display(),
                endpoints.join("\n")
            )
        },
        json!({ "dir": dir, "endpoints": endpoints }),
    );
    let _ = tokio::signal::ctrl_c().await;
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    Ok(())
}
