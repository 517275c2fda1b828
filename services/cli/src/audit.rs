//! `custos audit`: the access log with filters, and offline verification against the genesis.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use custos_client::{Client, verify};
use custos_proto::audit::v1 as audit_pb;
use custos_types::{AccessMode, Decision, EntryKind, Genesis, Purpose};
use prost::Message;
use serde_json::json;

use crate::Conn;
use crate::output::Output;
use crate::parties::{connect, decision_json, decode_decision, describe_decision, party_arg};

// Parsed once per process; the size of a clap enum does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub(crate) enum AuditCommand {
    /// The access log, filtered; every page with proofs, verified against the genesis if given.
    Log {
        #[command(flatten)]
        conn: Conn,
        /// Only this patient's records (hex key).
        #[arg(long)]
        patient: Option<String>,
        /// Only this requester (hex key).
        #[arg(long)]
        requester: Option<String>,
        /// Only requesters of this organisation.
        #[arg(long)]
        organisation: Option<String>,
        /// Only this record (hex id).
        #[arg(long)]
        record: Option<String>,
        /// Only this HL7 purpose and its descendants.
        #[arg(long)]
        purpose: Option<String>,
        /// Only this mode (raw, predicate, aggregate).
        #[arg(long)]
        mode: Option<String>,
        /// Only granted or only denied.
        #[arg(long, value_parser = ["granted", "denied"])]
        decision: Option<String>,
        /// Only break-glass accesses.
        #[arg(long)]
        break_glass: bool,
        /// Verify every entry's certificate and inclusion proof against this genesis file.
        #[arg(long, env = "CUSTOS_GENESIS")]
        genesis: Option<PathBuf>,
        /// Save the log with its proofs for offline verification (`custos audit verify-log`).
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// Fetches every header from a node and verifies the chain locally against the genesis.
    VerifyChain {
        /// gRPC endpoint of a node.
        #[arg(long, env = "CUSTOS_NODE", default_value = "http://127.0.0.1:7420")]
        node: String,
        /// The genesis file you trust.
        #[arg(long, env = "CUSTOS_GENESIS")]
        genesis: PathBuf,
    },
    /// Verifies a saved access log offline: certificates and inclusion proofs, no node needed.
    VerifyLog {
        /// The file written by `custos audit log --save`.
        file: PathBuf,
        /// The genesis file you trust.
        #[arg(long, env = "CUSTOS_GENESIS")]
        genesis: PathBuf,
    },
}

/// Verifies every entry of a log against the genesis; returns the verified decisions.
pub(crate) fn verify_log(
    genesis: &Genesis,
    entries: &[audit_pb::AuditEntry],
) -> anyhow::Result<Vec<Decision>> {
    let trusted = verify::genesis_validators(genesis)?;
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let proven = e
            .proven
            .as_ref()
            .with_context(|| format!("entry {i}: no proof"))?;
        let verified = verify::verify_proven_entry(genesis, &trusted, proven)
            .with_context(|| format!("entry {i} (log index {})", proven.index))?;
        let EntryKind::Decision(decision) = verified.entry.kind else {
            anyhow::bail!("entry {i} (log index {}) is not a decision", proven.index);
        };
        // The decoded decision shown must be exactly the one that is proven.
        let shown = decode_decision(e.decision.clone())?;
        if shown != decision {
            anyhow::bail!(
                "entry {i} (log index {}): the decision shown differs from the proven one",
                proven.index
            );
        }
        for (j, r) in e.releases.iter().enumerate() {
            verify::verify_proven_entry(genesis, &trusted, r)
                .with_context(|| format!("entry {i}: release confirmation {j}"))?;
        }
        out.push(decision);
    }
    Ok(out)
}

pub(crate) async fn run(cmd: AuditCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Log {
            conn,
            patient,
            requester,
            organisation,
            record,
            purpose,
            mode,
            decision,
            break_glass,
            genesis,
            save,
        } => {
            let (client, keys) = connect(&conn).await?;
            let mut query = audit_pb::AccessLogQuery::default();
            if let Some(p) = patient {
                query.patient = party_arg(&p, "--patient")?.to_vec();
            }
            if let Some(r) = requester {
                query.requester = party_arg(&r, "--requester")?.to_vec();
            }
            query.organisation = organisation.unwrap_or_default();
            if let Some(r) = record {
                query.record_id = custos_crypto::Hash::from_hex(&r)
                    .map_err(|e| anyhow::anyhow!("--record: {e}"))?
                    .0
                    .to_vec();
            }
            if let Some(p) = purpose {
                Purpose::parse(&p).map_err(|e| anyhow::anyhow!("--purpose: {e}"))?;
                query.purpose = p;
            }
            if let Some(m) = mode {
                query.mode = AccessMode::parse(&m)
                    .ok_or_else(|| {
                        anyhow::anyhow!("--mode: `{m}` is not raw, predicate or aggregate")
                    })?
                    .to_wire();
            }
            query.decision = match decision.as_deref() {
                Some("granted") => audit_pb::Decision::Granted as i32,
                Some("denied") => audit_pb::Decision::Denied as i32,
                _ => audit_pb::Decision::Any as i32,
            };
            query.break_glass_only = break_glass;
            let entries = client.access_log_all(&keys, &query).await?;
            let verified = match genesis {
                Some(path) => {
                    let genesis = custos_node::load_genesis(&path)?;
                    Some(verify_log(&genesis, &entries)?)
                }
                None => None,
            };
            if let Some(path) = save {
                let page = audit_pb::AccessLogPage {
                    entries: entries.clone(),
                    next_cursor: vec![],
                };
                std::fs::write(&path, page.encode_to_vec())
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            let decisions = entries
                .iter()
                .map(|e| decode_decision(e.decision.clone()))
                .collect::<anyhow::Result<Vec<_>>>()?;
            out.result(
                || {
                    let mut lines: Vec<String> = decisions.iter().map(describe_decision).collect();
                    lines.push(match &verified {
                        Some(v) => format!("{} entries, every certificate and inclusion proof verified against the genesis", v.len()),
                        None => format!("{} entries (not verified: pass --genesis to check them)", decisions.len()),
                    });
                    lines.join("\n")
                },
                json!({
                    "entries": decisions.iter().map(decision_json).collect::<Vec<_>>(),
                    "verified": verified.is_some(),
                }),
            );
        }
        AuditCommand::VerifyChain { node, genesis } => {
            let genesis = custos_node::load_genesis(&genesis)?;
            let client = Client::connect(&node).await?;
            if client.chain_id() != &genesis.chain_id {
                anyhow::bail!(
                    "node serves chain `{}`, the genesis is for `{}`",
                    client.chain_id(),
                    genesis.chain_id
                );
            }
            let headers = client.headers().await?;
            let trusted = verify::genesis_validators(&genesis)?;
            let verified = verify::verify_header_chain(&genesis, &trusted, &headers)?;
            let last = verified.last().map(|(h, _)| h);
            out.result(
                || match last {
                    Some(h) => format!(
                        "chain verified: {} headers, each certified by more than 2/3 of its validator set (followed from the genesis) and linked to its parent; log size {}, root {}",
                        verified.len(),
                        h.log_size,
                        h.log_root
                    ),
                    None => "no blocks yet".to_string(),
                },
                json!({
                    "verified_height": verified.len(),
                    "log_size": last.map(|h| h.log_size),
                    "log_root": last.map(|h| h.log_root.to_hex()),
                }),
            );
        }
        AuditCommand::VerifyLog { file, genesis } => {
            let genesis = custos_node::load_genesis(&genesis)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let page = audit_pb::AccessLogPage::decode(bytes.as_slice())
                .with_context(|| format!("{} is not a saved access log", file.display()))?;
            let decisions = verify_log(&genesis, &page.entries)?;
            out.result(
                || {
                    format!(
                        "{} entries verified offline against the genesis",
                        decisions.len()
                    )
                },
                json!({ "verified": decisions.len() }),
            );
        }
    }
    Ok(())
}
