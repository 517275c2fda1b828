//! Serves every actor from the command line: keys, node, patient, partner and auditor commands,
//! and the demo.

mod audit;
mod compute;
mod demo;
mod devnet;
mod governance;
mod keys;
mod node;
mod output;
mod parties;
mod vault;
mod zk;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Custos: a privacy-preserving consent ledger for healthcare data sharing.
#[derive(Parser, Debug)]
#[command(name = "custos", version, about, long_about = None)]
struct Cli {
    /// Print machine-readable JSON instead of human output.
    #[arg(long, global = true, env = "CUSTOS_JSON")]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Where to reach a node and whose keys to use.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Conn {
    /// gRPC endpoint of a node.
    #[arg(long, env = "CUSTOS_NODE", default_value = "http://127.0.0.1:7420")]
    node: String,
    /// Your key file (from `custos keys generate`).
    #[arg(long, env = "CUSTOS_KEY")]
    key: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the whole story on a local consortium and prints what each actor sees.
    Demo(demo::DemoArgs),
    /// Starts a local consortium of validators as separate processes on loopback.
    Devnet(devnet::DevnetArgs),
    /// Generates and shows key files.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Initializes and runs a validator node.
    #[command(subcommand)]
    Node(node::NodeCommand),
    /// Patient commands: register, grant, revoke, list consents, read your access history.
    #[command(subcommand)]
    Patient(parties::PatientCommand),
    /// Custodian (hospital) commands: register records.
    #[command(subcommand)]
    Custodian(parties::CustodianCommand),
    /// Partner (insurer, researcher, advertiser) commands: request access, show a decision.
    #[command(subcommand)]
    Partner(parties::PartnerCommand),
    /// Member organisations: consortium changes as one multi-signature transaction.
    #[command(subcommand)]
    Governance(governance::GovernanceCommand),
    /// Auditor commands: the access log, and offline verification of headers and proofs.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Vault commands: run a custodian's vault; put, list, erase, rotate-key; fetch, fetch-own.
    #[command(subcommand)]
    Vault(vault::VaultCommand),
    /// Aggregates on encrypted data: run a compute worker, EXPLAIN a query, run one.
    #[command(subcommand)]
    Compute(compute::ComputeCommand),
    /// Zero-knowledge keys: the predicate circuit's setup; the registered key for snarkjs.
    #[command(subcommand)]
    Zk(zk::ZkCommand),
}

/// Warnings by default; the consensus engine's network chatter (peers coming and going, gossip
/// with nobody subscribed yet) only at error level. `CUSTOS_LOG` overrides, e.g. `info`.
const DEFAULT_LOG: &str = "warn,arc_malachitebft_network=error,arc_malachitebft_discovery=error,arc_malachitebft_app_channel=off,arc_malachitebft_engine=error";

/// The demo prints its own story; the validators it embeds stay quiet unless `CUSTOS_LOG` asks.
const DEMO_LOG: &str = "error,arc_malachitebft_network=off,arc_malachitebft_discovery=off,arc_malachitebft_app_channel=off,arc_malachitebft_engine=off";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = if matches!(cli.command, Command::Demo(_)) {
        DEMO_LOG
    } else {
        DEFAULT_LOG
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUSTOS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = output::Output::new(cli.json);
    let result = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args, &out).await,
            Command::Devnet(args) => devnet::run(args, &out).await,
            Command::Keys(cmd) => keys::run(cmd, &out),
            Command::Node(cmd) => node::run(cmd, &out).await,
            Command::Patient(cmd) => parties::run_patient(cmd, &out).await,
            Command::Custodian(cmd) => parties::run_custodian(cmd, &out).await,
            Command::Partner(cmd) => parties::run_partner(cmd, &out).await,
            Command::Audit(cmd) => audit::run(cmd, &out).await,
            Command::Governance(cmd) => governance::run(cmd, &out).await,
            Command::Vault(cmd) => vault::run(cmd, &out).await,
            Command::Compute(cmd) => compute::run(cmd, &out).await,
            Command::Zk(cmd) => zk::run(cmd, &out).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out.error(&e);
            ExitCode::FAILURE
        }
    }
}
