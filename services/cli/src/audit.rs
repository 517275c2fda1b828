//! `custos audit`: the access log with filters, and offline verification against the genesis.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use custos_client::report::{self, AuditRow, Directory, FlagSettings};
use custos_client::{Client, bundle, monitor, verify};
use custos_proto::audit::v1 as audit_pb;
use custos_types::{AccessMode, Decision, EntryKind, Genesis, Purpose};
use prost::Message;
use serde_json::json;

use crate::Conn;
use crate::output::Output;
use crate::parties::{connect, decision_json, decode_decision, describe_decision, party_arg};
use custos_types::{PartyId, Timestamp};

// Parsed once per process; the size of a clap enum does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub(crate) enum AuditCommand {
    /// The access log, filtered; every page with proofs, verified against the genesis if given.
    Log {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        filters: LogFilters,
        /// Verify every entry's certificate and inclusion proof against this genesis file.
        #[arg(long, env = "CUSTOS_GENESIS")]
        genesis: Option<PathBuf>,
        /// Save the log with its proofs for offline verification (`custos audit verify-log`).
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// Exports a self-contained bundle (headers, certificates, validator sets, every entry of a
    /// range of blocks) for offline verification with `custos audit verify`. Auditors only.
    Export {
        #[command(flatten)]
        conn: Conn,
        /// Where to write the bundle.
        #[arg(long)]
        out: PathBuf,
        /// First block (default: the first).
        #[arg(long, default_value_t = 0)]
        from_height: u64,
        /// Last block (default: the tip).
        #[arg(long, default_value_t = 0)]
        to_height: u64,
    },
    /// Verifies a bundle offline against the genesis alone: the header chain and certificates,
    /// and every entry of the exported blocks (none missing, added, changed or reordered).
    Verify {
        /// The file written by `custos audit export`.
        file: PathBuf,
        /// The genesis file you trust.
        #[arg(long, env = "CUSTOS_GENESIS")]
        genesis: PathBuf,
    },
    /// Monitors the log like a transparency-log monitor: keeps a checkpoint and checks new
    /// headers and an RFC 6962 consistency proof from it; alarms (non-zero exit) on a fork or a
    /// rewrite.
    Watch {
        /// gRPC endpoint of a node.
        #[arg(long, env = "CUSTOS_NODE", default_value = "http://127.0.0.1:7420")]
        node: String,
        /// The genesis file you trust.
        #[arg(long, env = "CUSTOS_GENESIS")]
        genesis: PathBuf,
        /// The checkpoint file (JSON), created on the first run.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Check once and exit.
        #[arg(long)]
        once: bool,
        /// Seconds between checks.
        #[arg(long, default_value_t = 10)]
        interval_secs: u64,
    },
    /// The access log as CSV or a FHIR R4 Bundle of AuditEvents, rendered here from the proven
    /// entries (verified first when --genesis is given).
    Report {
        #[command(flatten)]
        conn: Conn,
        #[command(flatten)]
        filters: LogFilters,
        /// csv or fhir.
        #[arg(long, value_parser = ["csv", "fhir"], default_value = "csv")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Verify every entry against this genesis file first.
        #[arg(long, env = "CUSTOS_GENESIS")]
        genesis: Option<PathBuf>,
    },
    /// The accounting of disclosures for one patient: who was granted what, when, why, and what
    /// was released. A patient asks for their own; an auditor for anyone's.
    Disclosures {
        #[command(flatten)]
        conn: Conn,
        /// The patient (hex key); default: the key's own party.
        #[arg(long)]
        patient: Option<String>,
        /// text, csv or json (`--json` also gives json).
        #[arg(long, value_parser = ["text", "csv", "json"], default_value = "text")]
        format: String,
        /// Verify every entry against this genesis file first.
        #[arg(long, env = "CUSTOS_GENESIS")]
        genesis: Option<PathBuf>,
    },
    /// What to review: break-glass accesses, spikes of denials, attempts after revocation.
    Flags {
        #[command(flatten)]
        conn: Conn,
        /// Flag a requester with at least this many denials within the window.
        #[arg(long, default_value_t = 5)]
        denials: usize,
        /// The window of the denial count, in seconds.
        #[arg(long, default_value_t = 3600)]
        window_secs: i64,
        /// Verify every entry against this genesis file first.
        #[arg(long, env = "CUSTOS_GENESIS")]
        genesis: Option<PathBuf>,
    },
    /// A patient's consents as a FHIR R4 Bundle of Consent resources.
    FhirConsents {
        #[command(flatten)]
        conn: Conn,
        /// The patient (hex key); default: the key's own party.
        #[arg(long)]
        patient: Option<String>,
        /// Include revoked and expired consents.
        #[arg(long)]
        all: bool,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
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

/// Filters of the access log.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct LogFilters {
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
}

impl LogFilters {
    fn query(&self) -> anyhow::Result<audit_pb::AccessLogQuery> {
        let mut query = audit_pb::AccessLogQuery::default();
        if let Some(p) = &self.patient {
            query.patient = party_arg(p, "--patient")?.to_vec();
        }
        if let Some(r) = &self.requester {
            query.requester = party_arg(r, "--requester")?.to_vec();
        }
        query.organisation = self.organisation.clone().unwrap_or_default();
        if let Some(r) = &self.record {
            query.record_id = custos_crypto::Hash::from_hex(r)
                .map_err(|e| anyhow::anyhow!("--record: {e}"))?
                .0
                .to_vec();
        }
        if let Some(p) = &self.purpose {
            Purpose::parse(p).map_err(|e| anyhow::anyhow!("--purpose: {e}"))?;
            query.purpose = p.clone();
        }
        if let Some(m) = &self.mode {
            query.mode = AccessMode::parse(m)
                .ok_or_else(|| anyhow::anyhow!("--mode: `{m}` is not raw, predicate or aggregate"))?
                .to_wire();
        }
        query.decision = match self.decision.as_deref() {
            Some("granted") => audit_pb::Decision::Granted as i32,
            Some("denied") => audit_pb::Decision::Denied as i32,
            _ => audit_pb::Decision::Any as i32,
        };
        query.break_glass_only = self.break_glass;
        Ok(query)
    }
}

/// Every matching entry, verified against the genesis when one is given, as report rows.
async fn rows(
    client: &Client,
    keys: &custos_crypto::PartyKeys,
    query: &audit_pb::AccessLogQuery,
    genesis: Option<&PathBuf>,
) -> anyhow::Result<(Vec<AuditRow>, bool)> {
    let entries = client.access_log_all(keys, query).await?;
    if let Some(path) = genesis {
        verify_log(&custos_node::load_genesis(path)?, &entries)?;
    }
    Ok((AuditRow::from_entries(&entries)?, genesis.is_some()))
}

/// Organisation names of the requesters in `rows`, as the node reports them.
async fn directory(client: &Client, rows: &[AuditRow]) -> Directory {
    let mut directory = Directory::new();
    for row in rows {
        let id = row.decision.requester;
        if directory.contains_key(&id) {
            continue;
        }
        let request = custos_proto::consent::v1::GetPartyRequest { party: id.to_vec() };
        if let Ok(party) = client.consent().get_party(request).await {
            directory.insert(id, party.into_inner().organisation);
        }
    }
    directory
}

fn write_or_print(out: Option<&PathBuf>, text: &str) -> anyhow::Result<()> {
    match out {
        Some(path) => {
            std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
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
            filters,
            genesis,
            save,
        } => {
            let (client, keys) = connect(&conn).await?;
            let query = filters.query()?;
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
        AuditCommand::Export {
            conn,
            out: path,
            from_height,
            to_height,
        } => {
            let (client, keys) = connect(&conn).await?;
            let bundle = client.export_bundle(&keys, from_height, to_height).await?;
            let bytes = bundle.encode_to_vec();
            std::fs::write(&path, &bytes)
                .with_context(|| format!("cannot write {}", path.display()))?;
            let entries: usize = bundle.blocks.iter().map(|b| b.entries.len()).sum();
            out.result(
                || {
                    format!(
                        "wrote {}: blocks {}..={} ({} entries), {} headers with certificates, {} bytes (format v{}); verify it offline with `custos audit verify {} --genesis GENESIS`",
                        path.display(),
                        bundle.from_height,
                        bundle.to_height,
                        entries,
                        bundle.headers.len(),
                        bytes.len(),
                        bundle.version,
                        path.display()
                    )
                },
                json!({
                    "file": path, "from_height": bundle.from_height, "to_height": bundle.to_height,
                    "entries": entries, "headers": bundle.headers.len(), "bytes": bytes.len(),
                }),
            );
        }
        AuditCommand::Verify { file, genesis } => {
            let genesis = custos_node::load_genesis(&genesis)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let decoded = audit_pb::AuditBundle::decode(bytes.as_slice())
                .with_context(|| format!("{} is not an audit bundle", file.display()))?;
            let v = bundle::verify_bundle(&genesis, &decoded).with_context(|| {
                format!("{} does not verify against the genesis", file.display())
            })?;
            out.result(
                || {
                    format!(
                        "bundle verified offline against the genesis: {} headers from height 1 (each certified by more than 2/3 of its validator set, {} set changes followed), blocks {}..={} complete: {} entries at log indexes {}..{} ({} decisions), log size {}, root {}",
                        v.headers,
                        v.set_changes,
                        v.from_height,
                        v.to_height,
                        v.entries.len(),
                        v.first_index,
                        v.first_index + v.entries.len() as u64,
                        v.decisions(),
                        v.tip.log_size,
                        v.tip.log_root
                    )
                },
                json!({
                    "verified": true, "headers": v.headers, "from_height": v.from_height,
                    "to_height": v.to_height, "entries": v.entries.len(), "decisions": v.decisions(),
                    "first_index": v.first_index, "log_size": v.tip.log_size,
                    "log_root": v.tip.log_root.to_hex(),
                }),
            );
        }
        AuditCommand::Watch {
            node,
            genesis,
            checkpoint,
            once,
            interval_secs,
        } => {
            let genesis = custos_node::load_genesis(&genesis)?;
            let client = Client::connect(&node).await?;
            loop {
                let previous: Option<monitor::Checkpoint> =
                    match std::fs::read_to_string(&checkpoint) {
                        Ok(text) => Some(serde_json::from_str(&text).with_context(|| {
                            format!("{} is not a checkpoint", checkpoint.display())
                        })?),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                        Err(e) => {
                            return Err(e)
                                .with_context(|| format!("cannot read {}", checkpoint.display()));
                        }
                    };
                let step = monitor::watch_once(&client, &genesis, previous.as_ref()).await?;
                let text = serde_json::to_string_pretty(&step.checkpoint)?;
                std::fs::write(&checkpoint, text)
                    .with_context(|| format!("cannot write {}", checkpoint.display()))?;
                let cp = &step.checkpoint;
                out.result(
                    || {
                        format!(
                            "consistent: {} new headers verified{}; checkpoint height {}, log size {}, root {}",
                            step.new_headers,
                            if step.consistency_checked { ", consistency proof from the previous checkpoint verified" } else { "" },
                            cp.height,
                            cp.log_size,
                            &cp.log_root[..16]
                        )
                    },
                    json!({
                        "consistent": true, "new_headers": step.new_headers,
                        "consistency_checked": step.consistency_checked, "checkpoint": cp,
                    }),
                );
                if once {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_secs(interval_secs.max(1))).await;
            }
        }
        AuditCommand::Report {
            conn,
            filters,
            format,
            out: path,
            genesis,
        } => {
            let (client, keys) = connect(&conn).await?;
            let (rows, _) = rows(&client, &keys, &filters.query()?, genesis.as_ref()).await?;
            let directory = directory(&client, &rows).await;
            let text = if format == "fhir" {
                serde_json::to_string_pretty(&report::fhir_audit_bundle(
                    &rows,
                    client.chain_id().as_str(),
                    &directory,
                    Timestamp::now(),
                ))?
            } else {
                report::csv(&rows, &directory)
            };
            write_or_print(path.as_ref(), &text)?;
        }
        AuditCommand::Disclosures {
            conn,
            patient,
            format,
            genesis,
        } => {
            let (client, keys) = connect(&conn).await?;
            let patient = match patient {
                Some(p) => party_arg(&p, "--patient")?,
                None => PartyId(keys.public()),
            };
            let query = audit_pb::AccessLogQuery {
                patient: patient.to_vec(),
                decision: audit_pb::Decision::Granted as i32,
                ..Default::default()
            };
            let (rows, verified) = rows(&client, &keys, &query, genesis.as_ref()).await?;
            let directory = directory(&client, &rows).await;
            let list = report::disclosures(&rows, patient, &directory);
            // `--json` asks every command for JSON; it wins over the default text format.
            let format = if out.is_json() && format == "text" {
                "json"
            } else {
                format.as_str()
            };
            match format {
                "csv" => print!("{}", report::disclosures_csv(&list)),
                "json" => println!(
                    "{}",
                    json!({ "patient": patient.to_hex(), "verified": verified, "disclosures": list })
                ),
                _ => {
                    println!(
                        "accounting of disclosures for patient {} ({} entries{})",
                        patient.short(),
                        list.len(),
                        if verified {
                            ", each verified against the genesis"
                        } else {
                            ", not verified: pass --genesis"
                        }
                    );
                    print!("{}", report::disclosures_text(&list));
                }
            }
        }
        AuditCommand::Flags {
            conn,
            denials,
            window_secs,
            genesis,
        } => {
            let (client, keys) = connect(&conn).await?;
            let query = audit_pb::AccessLogQuery::default();
            let (rows, _) = rows(&client, &keys, &query, genesis.as_ref()).await?;
            let directory = directory(&client, &rows).await;
            let settings = FlagSettings {
                denial_threshold: denials,
                window_ms: window_secs.saturating_mul(1000),
            };
            let flags = report::flags(&rows, settings, &directory);
            out.result(
                || {
                    let mut lines = vec![format!(
                        "{} break-glass accesses awaiting review, {} requesters with at least {denials} denials within {window_secs} s, {} attempts after revocation",
                        flags.break_glass.len(),
                        flags.denial_spikes.len(),
                        flags.after_revocation.len()
                    )];
                    for f in &flags.break_glass {
                        lines.push(format!("  break-glass  {} {} record {} for {} (log index {})", f.time, f.organisation, &f.record_id[..8], f.purpose, f.log_index));
                    }
                    for s in &flags.denial_spikes {
                        lines.push(format!("  denials      {} {}: {} between {} and {}", s.organisation, &s.requester[..8], s.denials, s.from, s.to));
                    }
                    for f in &flags.after_revocation {
                        lines.push(format!("  revoked      {} {} record {} (log index {})", f.time, f.organisation, &f.record_id[..8], f.log_index));
                    }
                    lines.join("\n")
                },
                serde_json::to_value(&flags)?,
            );
        }
        AuditCommand::FhirConsents {
            conn,
            patient,
            all,
            out: path,
        } => {
            let (client, keys) = connect(&conn).await?;
            let patient = match patient {
                Some(p) => party_arg(&p, "--patient")?,
                None => PartyId(keys.public()),
            };
            let json = client.export_fhir_consents(&keys, patient, all).await?;
            let pretty =
                serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(&json)?)?;
            write_or_print(path.as_ref(), &(pretty + "\n"))?;
        }
    }
    Ok(())
}
