//! `custos node`: initialize a single-validator consortium folder, and run a node.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use custos_crypto::PartyKeys;
use custos_types::genesis::{GenesisParty, GenesisValidator};
use custos_types::model::Organisation;
use custos_types::{ChainId, Genesis, Parameters, PartyId, Role, Timestamp};
use serde_json::json;

use crate::keys::write_key_file;
use crate::output::Output;

#[derive(Subcommand, Debug)]
pub(crate) enum NodeCommand {
    /// Creates a validator key, a genesis file and a node config in a new folder.
    Init {
        /// Folder to create.
        #[arg(long, env = "CUSTOS_NODE_DIR")]
        dir: PathBuf,
        /// Chain id ([a-z0-9-], at most 64).
        #[arg(long, env = "CUSTOS_CHAIN_ID", default_value = "custos-local")]
        chain_id: String,
        /// An organisation's party at genesis: ROLE:ORGANISATION:KEYFILE, ROLE one of custodian,
        /// partner, auditor, validator_operator; append `:member` for a governance member.
        #[arg(long = "party", env = "CUSTOS_GENESIS_PARTIES", value_delimiter = ',')]
        parties: Vec<String>,
        /// Allow break-glass (ETREAT/BTG) access without consent.
        #[arg(long, env = "CUSTOS_BREAK_GLASS")]
        break_glass: bool,
    },
    /// Runs a validator node from its config file.
    Run {
        /// The node's TOML config.
        #[arg(long, env = "CUSTOS_NODE_CONFIG")]
        config: PathBuf,
        /// Overrides the config's listen address.
        #[arg(long, env = "CUSTOS_LISTEN")]
        listen: Option<SocketAddr>,
        /// Serves the compliance dashboard (HTTP) here, e.g. 127.0.0.1:7480.
        #[arg(long, env = "CUSTOS_DASHBOARD_ADDR")]
        dashboard_addr: Option<SocketAddr>,
    },
}

/// A genesis party entry for `keys`.
pub(crate) fn genesis_party(
    keys: &PartyKeys,
    role: Role,
    organisation: &str,
    member: bool,
) -> anyhow::Result<GenesisParty> {
    Ok(GenesisParty {
        public_key: PartyId(keys.public()),
        role,
        encryption_key: keys.encryption_public(),
        organisation: Organisation::parse(organisation, "organisation")
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        member,
    })
}

/// A genesis with one validator and the given parties.
pub(crate) fn genesis_for(
    chain_id: &str,
    validator: &PartyKeys,
    parties: Vec<GenesisParty>,
    parameters: Parameters,
) -> anyhow::Result<Genesis> {
    let genesis = Genesis {
        chain_id: ChainId::parse(chain_id)
            .map_err(|e| anyhow::anyhow!("--chain-id: {}", e.reason))?,
        genesis_time_ms: Timestamp::now().0,
        parameters,
        validators: vec![GenesisValidator {
            public_key: PartyId(validator.public()),
            power: 1,
            address: String::new(),
        }],
        parties,
    };
    genesis
        .validate()
        .map_err(|e| anyhow::anyhow!("genesis: {e}"))?;
    Ok(genesis)
}

/// The role of an organisation, by name.
pub(crate) fn organisation_role(text: &str) -> Result<Role, String> {
    Ok(match text {
        "custodian" => Role::Custodian,
        "partner" => Role::Partner,
        "auditor" => Role::Auditor,
        "validator_operator" => Role::ValidatorOperator,
        other => {
            return Err(format!(
                "role `{}` is not one of custodian, partner, auditor, validator_operator \
                 (patients register themselves)",
                other.escape_default()
            ));
        }
    })
}

fn parse_party(spec: &str) -> anyhow::Result<GenesisParty> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (role, org, file, member) = match parts.as_slice() {
        [r, o, f] => (*r, *o, *f, false),
        [r, o, f, "member"] => (*r, *o, *f, true),
        _ => anyhow::bail!("--party `{spec}`: expected ROLE:ORGANISATION:KEYFILE[:member]"),
    };
    let role = organisation_role(role).map_err(|e| anyhow::anyhow!("--party `{spec}`: {e}"))?;
    let keys = custos_node::load_keys(&PathBuf::from(file))?;
    genesis_party(&keys, role, org, member)
}

pub(crate) async fn run(cmd: NodeCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Init {
            dir,
            chain_id,
            parties,
            break_glass,
        } => {
            let parties = parties
                .iter()
                .map(|p| parse_party(p))
                .collect::<anyhow::Result<Vec<_>>>()?;
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            let key_path = dir.join("validator.key");
            let validator = PartyKeys::generate(&mut rand::rngs::OsRng);
            let parameters = Parameters {
                break_glass_enabled: break_glass,
                ..Parameters::default()
            };
            let genesis = genesis_for(&chain_id, &validator, parties, parameters)?;
            write_key_file(&key_path, &validator)?;
            let genesis_path = dir.join("genesis.json");
            std::fs::write(&genesis_path, serde_json::to_string_pretty(&genesis)?)?;
            let config_path = dir.join("node.toml");
            std::fs::write(
                &config_path,
                "# Custos node settings; relative paths are relative to this file.\n\
                 genesis = \"genesis.json\"\n\
                 data_dir = \"data\"\n\
                 validator_key = \"validator.key\"\n\
                 listen = \"127.0.0.1:7420\"\n\
                 max_message_bytes = 262144\n\
",
            )?;
            out.result(
                || {
                    format!(
                        "initialized {}\n  genesis:   {}\n  validator: {}\nrun it with: custos node run --config {}",
                        dir.display(),
                        genesis_path.display(),
                        validator.public().to_hex(),
                        config_path.display()
                    )
                },
                json!({ "dir": dir, "config": config_path, "genesis": genesis_path, "validator": validator.public().to_hex() }),
            );
            Ok(())
        }
        NodeCommand::Run {
            config,
            listen,
            dashboard_addr,
        } => {
            let mut config = custos_node::NodeConfig::load(&config)?;
            if let Some(addr) = listen {
                config.listen = addr;
            }
            if dashboard_addr.is_some() {
                config.dashboard_listen = dashboard_addr;
            }
            let genesis = custos_node::load_genesis(&config.genesis)?;
            let valset = custos_client::verify::genesis_validators(&genesis)?
                .hash()
                .to_hex();
            let mut node = custos_node::start(config).await?;
            let dashboard = node.dashboard.as_ref().map(|d| d.url(&valset));
            out.result(
                || match &dashboard {
                    Some(url) => format!(
                        "custos node listening on {}\ncompliance dashboard: {url}",
                        node.addr
                    ),
                    None => format!("custos node listening on {}", node.addr),
                },
                json!({ "listening": node.addr.to_string(), "dashboard": dashboard }),
            );
            tokio::select! {
                r = node.wait_handle() => r,
                _ = tokio::signal::ctrl_c() => Ok(()),
            }
        }
    }
}
