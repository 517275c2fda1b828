//! `custos patient`, `custos custodian` and `custos partner`.

use std::collections::BTreeSet;

use anyhow::Context;
use clap::Subcommand;
use custos_client::Client;
use custos_crypto::{Hash, PartyKeys, PublicKey, sha256};
use custos_proto::access::v1 as access_pb;
use custos_proto::audit::v1 as audit_pb;
use custos_proto::consent::v1 as consent_pb;
use custos_types::model::Organisation;
use custos_types::tx::{RegisterDelegate, RegisterParty, RegisterRecord, RequestAccess};
use custos_types::{
    AccessMode, Category, Consent, ConsentId, ConsentPeriod, Decision, PartyId, Purpose, RecordId,
    RequestId, Role, Scope, Timestamp, TxKind,
};
use serde_json::json;

use crate::Conn;
use crate::output::Output;

#[derive(Subcommand, Debug)]
pub(crate) enum PatientCommand {
    /// Registers your key as a patient (pseudonymous: only the public key goes on the ledger).
    Register(Conn),
    /// Grants consent to a party for purposes and access modes.
    Grant {
        #[command(flatten)]
        conn: Conn,
        /// The grantee's public key (hex).
        #[arg(long, env = "CUSTOS_GRANTEE")]
        grantee: String,
        /// HL7 PurposeOfUse code (repeatable); covers its descendants.
        #[arg(long = "purpose", required = true, value_delimiter = ',')]
        purposes: Vec<String>,
        /// Access mode: raw, predicate or aggregate (repeatable).
        #[arg(long = "mode", default_value = "raw", value_delimiter = ',')]
        modes: Vec<String>,
        /// A record id (hex) in scope (repeatable).
        #[arg(long = "record", value_delimiter = ',')]
        records: Vec<String>,
        /// A record category in scope (repeatable).
        #[arg(long = "category", value_delimiter = ',')]
        categories: Vec<String>,
        /// Every record of yours, present and future.
        #[arg(long)]
        all_records: bool,
        /// Start: milliseconds since the epoch, or now+N[s|m|h|d].
        #[arg(long)]
        not_before: Option<String>,
        /// Expiry: milliseconds since the epoch, or now+N[s|m|h|d].
        #[arg(long)]
        expires: Option<String>,
        /// Grant on behalf of this patient (you must be their registered delegate).
        #[arg(long)]
        on_behalf_of: Option<String>,
    },
    /// Revokes a consent; it stops authorizing from the block the revocation is in.
    Revoke {
        #[command(flatten)]
        conn: Conn,
        /// The consent id (hex).
        #[arg(long)]
        consent: String,
    },
    /// Lists your consents.
    Consents {
        #[command(flatten)]
        conn: Conn,
        /// Include revoked and expired consents.
        #[arg(long)]
        all: bool,
    },
    /// Shows who asked for your records, when, why, and what the ledger decided.
    History(Conn),
    /// Lets another party grant and revoke consents for you (or stops it).
    Delegate {
        #[command(flatten)]
        conn: Conn,
        /// The delegate's public key (hex).
        #[arg(long)]
        delegate: String,
        /// Expiry: milliseconds since the epoch, or now+N[s|m|h|d].
        #[arg(long)]
        expires: Option<String>,
        /// Remove the delegation.
        #[arg(long)]
        revoke: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum CustodianCommand {
    /// Registers a record held off-chain: its owner, category and ciphertext digest.
    RegisterRecord {
        #[command(flatten)]
        conn: Conn,
        /// The owning patient's public key (hex).
        #[arg(long)]
        owner: String,
        /// Category, e.g. lab, imaging, encounter.
        #[arg(long, default_value = "lab")]
        category: String,
        /// SHA-256 of the ciphertext (hex); default: a digest of a random placeholder.
        #[arg(long)]
        digest: Option<String>,
        /// Record id (hex, 32 bytes); default: random.
        #[arg(long)]
        record: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub(crate) enum PartnerCommand {
    /// Requests access to a record for a purpose; prints the finalized decision.
    Request {
        #[command(flatten)]
        conn: Conn,
        /// The record id (hex).
        #[arg(long)]
        record: String,
        /// HL7 PurposeOfUse code.
        #[arg(long)]
        purpose: String,
        /// raw, predicate or aggregate.
        #[arg(long, default_value = "raw")]
        mode: String,
        /// Break-glass justification (ETREAT/BTG); only its digest goes on the ledger.
        #[arg(long)]
        justification: Option<String>,
    },
    /// Shows the finalized decision for a request.
    Decision {
        #[command(flatten)]
        conn: Conn,
        /// The request id (hex).
        #[arg(long)]
        request: String,
    },
}

pub(crate) fn party_arg(text: &str, flag: &str) -> anyhow::Result<PartyId> {
    PublicKey::from_hex(text)
        .map(PartyId)
        .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

fn hash_arg(text: &str, flag: &str) -> anyhow::Result<Hash> {
    Hash::from_hex(text.trim()).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

/// Parses a time: milliseconds since the epoch, or `now+N[s|m|h|d]`.
pub(crate) fn time_arg(text: &str, flag: &str) -> anyhow::Result<Timestamp> {
    if let Some(rel) = text.strip_prefix("now+") {
        let (num, unit) = rel.split_at(rel.len().saturating_sub(1));
        let n: i64 = num
            .parse()
            .map_err(|_| anyhow::anyhow!("{flag}: `{text}` is not now+N[s|m|h|d]"))?;
        let ms = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => anyhow::bail!("{flag}: unit of `{text}` is not s, m, h or d"),
        };
        return Ok(Timestamp(Timestamp::now().0 + n * ms));
    }
    let ms: i64 = text.parse().map_err(|_| {
        anyhow::anyhow!("{flag}: `{text}` is neither milliseconds nor now+N[s|m|h|d]")
    })?;
    Ok(Timestamp(ms))
}

fn purpose_arg(text: &str, flag: &str) -> anyhow::Result<Purpose> {
    Purpose::parse(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}

fn mode_arg(text: &str) -> anyhow::Result<AccessMode> {
    AccessMode::parse(text)
        .ok_or_else(|| anyhow::anyhow!("--mode: `{text}` is not raw, predicate or aggregate"))
}

pub(crate) async fn connect(conn: &Conn) -> anyhow::Result<(Client, PartyKeys)> {
    let keys = custos_node::load_keys(&conn.key)?;
    let client = Client::connect(&conn.node).await?;
    Ok((client, keys))
}

/// One line describing a decision.
pub(crate) fn describe_decision(d: &Decision) -> String {
    let outcome = if d.granted() { "GRANTED" } else { "DENIED" };
    let glass = if d.break_glass { " [BREAK-GLASS]" } else { "" };
    format!(
        "{outcome} ({}){glass}: {} asked for record {} for {} ({}) in {} mode at height {}{}",
        d.reason,
        d.requester.short(),
        d.record_id.short(),
        d.purpose.code(),
        d.purpose.display(),
        d.mode,
        d.height,
        d.consent_id
            .map(|c| format!(", consent {}", c.short()))
            .unwrap_or_default()
    )
}

pub(crate) fn decision_json(d: &Decision) -> serde_json::Value {
    json!({
        "request_id": d.request_id.to_hex(),
        "requester": d.requester.to_hex(),
        "record_id": d.record_id.to_hex(),
        "patient": d.patient.map(|p| p.to_hex()),
        "purpose": d.purpose.code(),
        "mode": d.mode.name(),
        "granted": d.granted(),
        "reason": d.reason.code(),
        "consent_id": d.consent_id.map(|c| c.to_hex()),
        "break_glass": d.break_glass,
        "height": d.height.0,
        "time_ms": d.time.0,
    })
}

pub(crate) fn decode_decision(wire: Option<access_pb::AccessDecision>) -> anyhow::Result<Decision> {
    let wire = wire.context("the node returned no decision")?;
    Decision::try_from(wire).map_err(|e| anyhow::anyhow!("malformed decision from node: {e}"))
}

fn consent_line(c: &consent_pb::ConsentState) -> String {
    let consent = c.consent.clone().unwrap_or_default();
    let status = if c.revoked {
        format!("revoked at height {}", c.revoked_height)
    } else {
        "active".into()
    };
    let modes: Vec<&str> = consent
        .modes
        .iter()
        .filter_map(|m| AccessMode::from_wire(*m, "mode").ok().map(|m| m.name()))
        .collect();
    format!(
        "{}  to {}  purposes {}  modes {}  ({status})",
        hex::encode(&c.consent_id),
        hex::encode(consent.grantee.get(..4).unwrap_or_default()),
        consent.purposes.join(","),
        modes.join(",")
    )
}

pub(crate) async fn run_patient(cmd: PatientCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        PatientCommand::Register(conn) => {
            let (client, keys) = connect(&conn).await?;
            let kind = TxKind::RegisterParty(RegisterParty {
                party: PartyId(keys.public()),
                role: Role::Patient,
                encryption_key: keys.encryption_public(),
                organisation: Organisation::default(),
            });
            let r = client.submit(&keys, kind).await?;
            out.result(
                || format!("registered patient {} at height {}", keys.public().to_hex(), r.height),
                json!({ "patient": keys.public().to_hex(), "height": r.height, "tx_id": hex::encode(&r.tx_id) }),
            );
        }
        PatientCommand::Grant {
            conn,
            grantee,
            purposes,
            modes,
            records,
            categories,
            all_records,
            not_before,
            expires,
            on_behalf_of,
        } => {
            let keys = custos_node::load_keys(&conn.key)?;
            let patient = match on_behalf_of {
                Some(p) => party_arg(&p, "--on-behalf-of")?,
                None => PartyId(keys.public()),
            };
            let scope = if all_records {
                if !records.is_empty() || !categories.is_empty() {
                    anyhow::bail!("--all-records excludes --record and --category");
                }
                Scope::AllRecords
            } else {
                if records.is_empty() && categories.is_empty() {
                    anyhow::bail!("give --record, --category or --all-records");
                }
                Scope::Some {
                    records: records
                        .iter()
                        .map(|r| hash_arg(r, "--record").map(RecordId))
                        .collect::<anyhow::Result<_>>()?,
                    categories: categories
                        .iter()
                        .map(|c| {
                            Category::parse(c, "--category").map_err(|e| anyhow::anyhow!("{e}"))
                        })
                        .collect::<anyhow::Result<_>>()?,
                }
            };
            let period = ConsentPeriod {
                not_before: not_before
                    .map(|t| time_arg(&t, "--not-before"))
                    .transpose()?,
                expires: expires.map(|t| time_arg(&t, "--expires")).transpose()?,
            };
            if let (Some(a), Some(b)) = (period.not_before, period.expires)
                && b <= a
            {
                anyhow::bail!("--expires must be after --not-before");
            }
            let consent = Consent {
                patient,
                grantee: party_arg(&grantee, "--grantee")?,
                scope,
                purposes: purposes
                    .iter()
                    .map(|p| purpose_arg(p, "--purpose"))
                    .collect::<anyhow::Result<BTreeSet<_>>>()?,
                modes: modes
                    .iter()
                    .map(|m| mode_arg(m))
                    .collect::<anyhow::Result<BTreeSet<_>>>()?,
                period,
            };
            let client = Client::connect(&conn.node).await?;
            let r = client.submit(&keys, TxKind::GrantConsent(consent)).await?;
            let id = hex::encode(&r.tx_id);
            out.result(
                || format!("consent {id} granted at height {}", r.height),
                json!({ "consent_id": id, "height": r.height }),
            );
        }
        PatientCommand::Revoke { conn, consent } => {
            let (client, keys) = connect(&conn).await?;
            let id = ConsentId(hash_arg(&consent, "--consent")?);
            let r = client.submit(&keys, TxKind::RevokeConsent(id)).await?;
            out.result(
                || format!("consent {} revoked at height {}", id.to_hex(), r.height),
                json!({ "consent_id": id.to_hex(), "revoked_height": r.height }),
            );
        }
        PatientCommand::Consents { conn, all } => {
            let (client, keys) = connect(&conn).await?;
            let consents = client
                .list_consents(&keys, PartyId(keys.public()), all)
                .await?;
            out.result(
                || {
                    if consents.is_empty() {
                        "no consents".to_string()
                    } else {
                        consents
                            .iter()
                            .map(consent_line)
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                },
                json!(consents.iter().map(|c| json!({
                    "consent_id": hex::encode(&c.consent_id),
                    "revoked": c.revoked,
                    "granted_height": c.granted_height,
                    "purposes": c.consent.as_ref().map(|x| x.purposes.clone()).unwrap_or_default(),
                })).collect::<Vec<_>>()),
            );
        }
        PatientCommand::History(conn) => {
            let (client, keys) = connect(&conn).await?;
            let query = audit_pb::AccessLogQuery {
                patient: keys.public().as_bytes().to_vec(),
                ..Default::default()
            };
            let entries = client.access_log_all(&keys, &query).await?;
            let decisions = entries
                .into_iter()
                .map(|e| decode_decision(e.decision))
                .collect::<anyhow::Result<Vec<_>>>()?;
            out.result(
                || {
                    if decisions.is_empty() {
                        "nobody has asked for your records".to_string()
                    } else {
                        decisions
                            .iter()
                            .map(describe_decision)
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                },
                json!(decisions.iter().map(decision_json).collect::<Vec<_>>()),
            );
        }
        PatientCommand::Delegate {
            conn,
            delegate,
            expires,
            revoke,
        } => {
            let (client, keys) = connect(&conn).await?;
            let d = RegisterDelegate {
                delegate: party_arg(&delegate, "--delegate")?,
                expires: expires.map(|t| time_arg(&t, "--expires")).transpose()?,
                revoke,
            };
            let r = client.submit(&keys, TxKind::RegisterDelegate(d)).await?;
            let verb = if revoke { "removed" } else { "registered" };
            out.result(
                || format!("delegate {delegate} {verb} at height {}", r.height),
                json!({ "delegate": delegate, "revoked": revoke, "height": r.height }),
            );
        }
    }
    Ok(())
}

pub(crate) async fn run_custodian(cmd: CustodianCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        CustodianCommand::RegisterRecord {
            conn,
            owner,
            category,
            digest,
            record,
        } => {
            let (client, keys) = connect(&conn).await?;
            let record_id = match record {
                Some(r) => RecordId(hash_arg(&r, "--record")?),
                None => RecordId(random_hash()),
            };
            let ciphertext_digest = match digest {
                Some(d) => hash_arg(&d, "--digest")?,
                None => sha256(random_hash().as_bytes()),
            };
            let kind = TxKind::RegisterRecord(RegisterRecord {
                record_id,
                owner: party_arg(&owner, "--owner")?,
                category: Category::parse(&category, "--category")
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
                ciphertext_digest,
                attribute_commitment: None,
            });
            let r = client.submit(&keys, kind).await?;
            out.result(
                || {
                    format!(
                        "record {} registered at height {}",
                        record_id.to_hex(),
                        r.height
                    )
                },
                json!({ "record_id": record_id.to_hex(), "height": r.height }),
            );
        }
    }
    Ok(())
}

pub(crate) fn random_hash() -> Hash {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Hash(bytes)
}

pub(crate) async fn run_partner(cmd: PartnerCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        PartnerCommand::Request {
            conn,
            record,
            purpose,
            mode,
            justification,
        } => {
            // Arguments are checked before anything goes over the network.
            let request = RequestAccess {
                record_id: RecordId(hash_arg(&record, "--record")?),
                purpose: purpose_arg(&purpose, "--purpose")?,
                mode: mode_arg(&mode)?,
                justification_digest: justification.map(|j| sha256(j.as_bytes())),
                query: vec![],
            };
            let (client, keys) = connect(&conn).await?;
            let response = client.request_access(&keys, request).await?;
            let decision = decode_decision(response.decision)?;
            out.result(
                || {
                    format!(
                        "request {}\n{}",
                        decision.request_id.to_hex(),
                        describe_decision(&decision)
                    )
                },
                decision_json(&decision),
            );
        }
        PartnerCommand::Decision { conn, request } => {
            let id = RequestId(hash_arg(&request, "--request")?);
            let (client, keys) = connect(&conn).await?;
            // Read as the partner: the node serves a decision only to its parties.
            let response = client.decision(&keys, id).await?;
            let decision = decode_decision(response.decision)?;
            out.result(|| describe_decision(&decision), decision_json(&decision));
        }
    }
    Ok(())
}
