//! `custos governance`: consortium changes as one multi-signature transaction — proposed and
//! signed by one member, co-signed offline by others, submitted once 2/3 of members signed.
//!
//! An organisation joining after genesis takes two such transactions: its own registration
//! (`add-organisation`, signed by the organisation, since a party registers itself, and co-signed
//! by 2/3 of the members), then, to make it a member, `set-member` proposed by a member.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use custos_client::Client;
use custos_crypto::Hash;
use custos_crypto::PartyKeys;
use custos_proto::consent::v1 as consent_pb;
use custos_proto::ledger::v1 as pb;
use custos_types::tx::{Governance, RegisterParty};
use custos_types::{Height, Organisation, Parameters, PartyId, SignedTransaction, TxKind};
use prost::Message;
use serde_json::json;

use crate::Conn;
use crate::node::organisation_role;
use crate::output::Output;
use crate::parties::party_arg;

#[derive(Subcommand, Debug)]
pub(crate) enum GovernanceCommand {
    /// Signs a change with your key (at your next nonce) and writes it to a file for the
    /// members to co-sign: a member's key for every change but `add-organisation`, which the
    /// joining organisation signs with its own.
    Propose {
        #[command(flatten)]
        conn: Conn,
        /// Where to write the signed transaction.
        #[arg(long)]
        out: PathBuf,
        #[command(subcommand)]
        change: Change,
    },
    /// Adds your co-signature to a proposed change (checks every signature first).
    Cosign {
        /// The proposal file; rewritten with your signature added.
        file: PathBuf,
        /// Your member key file.
        #[arg(long, env = "CUSTOS_KEY")]
        key: PathBuf,
    },
    /// Submits a co-signed change and waits until it is finalized.
    Submit {
        /// The proposal file.
        file: PathBuf,
        /// gRPC endpoint of a node.
        #[arg(long, env = "CUSTOS_NODE", default_value = "http://127.0.0.1:7420")]
        node: String,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum Change {
    /// Replaces the consortium parameters: k for aggregates and break-glass (both are set:
    /// without --break-glass it is disabled).
    SetParameters(ParamsArgs),
    /// Registers your key (--key) as an organisation after genesis. Signed by the organisation
    /// itself, since a party registers itself; 2/3 of the members co-sign the file
    /// (`custos governance cosign`) before anyone submits it. The organisation is then
    /// registered but not a governance member: a member proposes `set-member --party <its key>
    /// --member true` for that.
    AddOrganisation {
        /// custodian, partner, auditor or validator_operator (patients register themselves with
        /// `custos patient register`).
        #[arg(long)]
        role: String,
        /// The organisation's identifier: at most 64 characters of [a-z0-9_-], e.g. `st-mary`.
        #[arg(long)]
        organisation: String,
    },
    /// Adds a validator (or changes its power) from a height on.
    AddValidator {
        /// The validator's public key (hex).
        #[arg(long)]
        validator: String,
        /// Its voting power.
        #[arg(long, default_value_t = 1)]
        power: u64,
        /// Its libp2p address.
        #[arg(long, default_value = "")]
        address: String,
        /// First height it signs (at least two blocks ahead).
        #[arg(long)]
        effective_height: u64,
    },
    /// Removes a validator from a height on.
    RemoveValidator {
        /// The validator's public key (hex).
        #[arg(long)]
        validator: String,
        /// First height it no longer signs.
        #[arg(long)]
        effective_height: u64,
    },
    /// Makes a registered organisation (see `add-organisation`) a governance member, or not.
    SetMember {
        /// The organisation's party key (hex).
        #[arg(long)]
        party: String,
        /// `true` (a member) or `false` (no longer one).
        #[arg(long, action = clap::ArgAction::Set)]
        member: bool,
    },
    /// Registers a circuit's verifying key hash (or revokes it without --hash).
    RegisterVerifyingKey {
        /// Circuit name.
        #[arg(long)]
        circuit: String,
        /// SHA-256 of the verifying key (hex).
        #[arg(long)]
        hash: Option<String>,
    },
}

#[derive(Args, Debug)]
pub(crate) struct ParamsArgs {
    /// Minimum cohort size for aggregates.
    #[arg(long)]
    min_cohort_size: u32,
    /// Allow break-glass access (without it, break-glass is disabled).
    #[arg(long)]
    break_glass: bool,
}

fn read_tx(path: &PathBuf) -> anyhow::Result<SignedTransaction> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let wire = pb::SignedTransaction::decode(bytes.as_slice())
        .with_context(|| format!("{} is not a signed transaction", path.display()))?;
    SignedTransaction::from_wire(wire).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn write_tx(path: &PathBuf, tx: &SignedTransaction) -> anyhow::Result<()> {
    std::fs::write(path, tx.to_wire().encode_to_vec())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The transaction a change proposes, signed by `keys`.
fn change_to_kind(change: Change, keys: &PartyKeys) -> anyhow::Result<TxKind> {
    Ok(match change {
        Change::AddOrganisation { role, organisation } => TxKind::RegisterParty(RegisterParty {
            party: PartyId(keys.public()),
            role: organisation_role(&role).map_err(|e| anyhow::anyhow!("--role: {e}"))?,
            encryption_key: keys.encryption_public(),
            organisation: Organisation::parse(&organisation, "--organisation")
                .map_err(|e| anyhow::anyhow!("{e}"))?,
        }),
        other => TxKind::Governance(change_to_governance(other)?),
    })
}

fn change_to_governance(change: Change) -> anyhow::Result<Governance> {
    Ok(match change {
        Change::AddOrganisation { .. } => {
            anyhow::bail!("add-organisation registers a party; it is not a governance action")
        }
        Change::SetParameters(p) => {
            if p.min_cohort_size < 2 {
                anyhow::bail!("--min-cohort-size: expected at least 2");
            }
            Governance::SetParameters(Parameters {
                min_cohort_size: p.min_cohort_size,
                break_glass_enabled: p.break_glass,
            })
        }
        Change::AddValidator {
            validator,
            power,
            address,
            effective_height,
        } => {
            if power == 0 {
                anyhow::bail!("--power: expected a positive voting power");
            }
            Governance::AddValidator {
                key: party_arg(&validator, "--validator")?.0,
                power,
                address,
                effective_height: Height(effective_height),
            }
        }
        Change::RemoveValidator {
            validator,
            effective_height,
        } => Governance::RemoveValidator {
            key: party_arg(&validator, "--validator")?.0,
            effective_height: Height(effective_height),
        },
        Change::SetMember { party, member } => Governance::SetMember {
            party: party_arg(&party, "--party")?,
            member,
        },
        Change::RegisterVerifyingKey { circuit, hash } => Governance::RegisterVerifyingKey {
            circuit,
            key_hash: hash
                .map(|h| Hash::from_hex(&h).map_err(|e| anyhow::anyhow!("--hash: {e}")))
                .transpose()?,
        },
    })
}

pub(crate) async fn run(cmd: GovernanceCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        GovernanceCommand::Propose {
            conn,
            out: path,
            change,
        } => {
            let (client, keys) = crate::parties::connect(&conn).await?;
            let kind = change_to_kind(change, &keys)?;
            if let TxKind::RegisterParty(p) = &kind {
                let registered = client
                    .consent()
                    .get_party(consent_pb::GetPartyRequest {
                        party: p.party.to_vec(),
                    })
                    .await;
                if let Ok(party) = registered {
                    let party = party.into_inner();
                    anyhow::bail!(
                        "--key: {} is already registered (organisation `{}`, at height {})",
                        p.party.0.to_hex(),
                        party.organisation,
                        party.registered_height
                    );
                }
            }
            let tx = client.sign(&keys, kind).await?;
            write_tx(&path, &tx)?;
            out.result(
                || format!("proposal {} written to {}; members co-sign it with `custos governance cosign`", tx.id().short(), path.display()),
                json!({ "tx_id": tx.id().to_hex(), "file": path, "kind": tx.body().kind.name() }),
            );
        }
        GovernanceCommand::Cosign { file, key } => {
            let mut tx = read_tx(&file)?;
            let keys = custos_node::load_keys(&key)?;
            tx.cosign(&keys.identity);
            write_tx(&file, &tx)?;
            let signers = tx.signers().len();
            out.result(
                || format!("co-signed {}: {signers} signature(s)", tx.id().short()),
                json!({ "tx_id": tx.id().to_hex(), "signatures": signers }),
            );
        }
        GovernanceCommand::Submit { file, node } => {
            let tx = read_tx(&file)?;
            let client = Client::connect(&node).await?;
            let r = client.submit_signed(&tx, true).await?;
            out.result(
                || match &tx.body().kind {
                    TxKind::RegisterParty(p) => format!(
                        "organisation `{}` ({}) registered at height {}: {}; to make it a \
                         member, a member proposes `set-member --party {} --member true`",
                        p.organisation.as_str(),
                        p.role,
                        r.height,
                        tx.id().short(),
                        p.party.0.to_hex()
                    ),
                    _ => format!(
                        "governance change {} finalized at height {}",
                        tx.id().short(),
                        r.height
                    ),
                },
                json!({
                    "tx_id": tx.id().to_hex(),
                    "height": r.height,
                    "kind": tx.body().kind.name(),
                }),
            );
        }
    }
    Ok(())
}
