//! Reports over the access log: CSV, FHIR R4 `AuditEvent` and `Consent` resources, a patient's
//! accounting of disclosures, and the flags a compliance officer reviews (break-glass accesses,
//! spikes of denials, attempts after a revocation).
//!
//! Every report is rendered from [`AuditRow`]s, which are decoded from the *proven* entry bytes of
//! an audit entry, never from the convenience copy of the decision beside them; verifying those
//! bytes ([`crate::verify`], [`crate::bundle`]) is a separate, offline step.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use custos_crypto::Hash;
use custos_proto::audit::v1 as audit_pb;
use custos_proto::consent::v1 as consent_pb;
use custos_types::{
    Consent, ConsentPeriod, Decision, DecisionReason, EntryKind, LedgerEntry, PartyId, Purpose,
    Scope, Timestamp, TxKind,
};
use serde::Serialize;
use serde_json::{Value, json};

/// HL7 v3-ActReason, the code system of purposes of use.
pub const ACT_REASON: &str = custos_types::purpose::PURPOSE_SYSTEM;
/// Identifier system of Custos parties (patients, requesters, custodians): hex Ed25519 keys.
pub const PARTY_SYSTEM: &str = "urn:custos:party";
/// Identifier system of Custos record ids (hex).
pub const RECORD_SYSTEM: &str = "urn:custos:record";
/// Code system of Custos access modes (`raw`, `predicate`, `aggregate`).
pub const MODE_SYSTEM: &str = "urn:custos:access-mode";
/// Code system of Custos decision reasons (`consent`, `no_consent`, `revoked`, …).
pub const REASON_SYSTEM: &str = "urn:custos:decision-reason";

/// Why an audit entry could not be turned into a report row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    /// A required part is missing.
    #[error("audit entry {entry}: missing {what}")]
    Missing {
        /// Position of the entry in the input.
        entry: usize,
        /// What is missing.
        what: &'static str,
    },
    /// The proven bytes are not what they should be.
    #[error("audit entry {entry} (log index {index}): {reason}")]
    Entry {
        /// Position of the entry in the input.
        entry: usize,
        /// Its log index.
        index: u64,
        /// Why.
        reason: String,
    },
}

/// A release confirmed on the ledger for a granted request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Release {
    /// Log index of the confirmation.
    pub index: u64,
    /// The custodian that released.
    pub custodian: PartyId,
    /// SHA-256 of what was released.
    pub digest: Hash,
    /// Height of the confirmation's block.
    pub height: u64,
    /// Time of the confirmation's block.
    pub time: Timestamp,
}

/// One decision of the access log with its release confirmations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// Log index of the decision.
    pub index: u64,
    /// The decision, decoded from the proven entry.
    pub decision: Decision,
    /// Release confirmations of the request.
    pub releases: Vec<Release>,
}

impl AuditRow {
    /// Decodes an audit entry from its proven bytes; `position` names it in errors.
    pub fn from_entry(position: usize, entry: &audit_pb::AuditEntry) -> Result<Self, ReportError> {
        let proven = entry.proven.as_ref().ok_or(ReportError::Missing {
            entry: position,
            what: "proven entry",
        })?;
        let bad = |index: u64, reason: String| ReportError::Entry {
            entry: position,
            index,
            reason,
        };
        let decoded =
            LedgerEntry::from_bytes(&proven.entry).map_err(|e| bad(proven.index, e.to_string()))?;
        let EntryKind::Decision(decision) = decoded.kind else {
            return Err(bad(proven.index, "is not a decision".into()));
        };
        let mut releases = Vec::with_capacity(entry.releases.len());
        for r in &entry.releases {
            let decoded =
                LedgerEntry::from_bytes(&r.entry).map_err(|e| bad(r.index, e.to_string()))?;
            let EntryKind::Transaction(tx) = decoded.kind else {
                return Err(bad(r.index, "release is not a transaction".into()));
            };
            let TxKind::ConfirmRelease(confirm) = &tx.body().kind else {
                return Err(bad(r.index, "release is not a release confirmation".into()));
            };
            if confirm.request_id != decision.request_id {
                return Err(bad(r.index, "release confirms another request".into()));
            }
            let time = r
                .header
                .as_ref()
                .and_then(|h| h.header.as_ref())
                .filter(|h| h.height == decoded.height.0)
                .map_or(decision.time, |h| Timestamp(h.time_ms));
            releases.push(Release {
                index: r.index,
                custodian: tx.author(),
                digest: confirm.release_digest,
                height: decoded.height.0,
                time,
            });
        }
        Ok(AuditRow {
            index: proven.index,
            decision,
            releases,
        })
    }

    /// Decodes every entry of a log.
    pub fn from_entries(entries: &[audit_pb::AuditEntry]) -> Result<Vec<Self>, ReportError> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| AuditRow::from_entry(i, e))
            .collect()
    }
}

/// Organisation names of parties, for display; unknown parties show their key only.
pub type Directory = BTreeMap<PartyId, String>;

/// An instant as FHIR and ISO 8601 write it, in UTC with milliseconds:
/// `2024-05-01T12:00:00.000Z`.
pub fn iso_time(time: Timestamp) -> String {
    let ms = time.0;
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// One CSV field, quoted when it must be (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn csv_line(fields: &[String]) -> String {
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// The header line of [`csv`].
pub const CSV_COLUMNS: &[&str] = &[
    "log_index",
    "height",
    "time",
    "request_id",
    "requester",
    "organisation",
    "patient",
    "record_id",
    "purpose",
    "purpose_display",
    "mode",
    "decision",
    "reason",
    "consent_id",
    "break_glass",
    "released",
    "release_digests",
];

/// The access log as CSV (RFC 4180, CRLF line ends), one decision a line, with [`CSV_COLUMNS`].
pub fn csv(rows: &[AuditRow], directory: &Directory) -> String {
    let mut out = csv_line(
        &CSV_COLUMNS
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>(),
    );
    for row in rows {
        let d = &row.decision;
        out.push_str(&csv_line(&[
            row.index.to_string(),
            d.height.0.to_string(),
            iso_time(d.time),
            d.request_id.to_hex(),
            d.requester.to_hex(),
            directory.get(&d.requester).cloned().unwrap_or_default(),
            d.patient.map(|p| p.to_hex()).unwrap_or_default(),
            d.record_id.to_hex(),
            d.purpose.code().to_string(),
            d.purpose.display().to_string(),
            d.mode.name().to_string(),
            if d.granted() { "granted" } else { "denied" }.to_string(),
            d.reason.code().to_string(),
            d.consent_id.map(|c| c.to_hex()).unwrap_or_default(),
            d.break_glass.to_string(),
            (!row.releases.is_empty()).to_string(),
            row.releases
                .iter()
                .map(|r| r.digest.to_hex())
                .collect::<Vec<_>>()
                .join(" "),
        ]));
    }
    out
}

fn coding(system: &str, code: &str, display: &str) -> Value {
    json!({ "system": system, "code": code, "display": display })
}

fn purpose_concept(purpose: Purpose) -> Value {
    json!({ "coding": [coding(ACT_REASON, purpose.code(), purpose.display())] })
}

fn identified(system: &str, value: String, display: Option<&String>) -> Value {
    let mut reference = json!({ "identifier": { "system": system, "value": value } });
    if let Some(display) = display {
        reference["display"] = json!(display);
    }
    reference
}

/// One decision as a FHIR R4 `AuditEvent`: DICOM "Patient Record" event, subtype the access
/// mode, action read (raw) or execute (proofs, aggregates), outcome 0 (granted) or 4 (denied),
/// the requester as requesting agent with its purpose of use (v3-ActReason), the record and the
/// patient as entities, and the ledger position and reason as entity details.
pub fn fhir_audit_event(row: &AuditRow, chain_id: &str, directory: &Directory) -> Value {
    let d = &row.decision;
    let action = match d.mode {
        custos_types::AccessMode::Raw => "R",
        _ => "E",
    };
    let mut details = vec![
        json!({ "type": "request_id", "valueString": d.request_id.to_hex() }),
        json!({ "type": "log_index", "valueString": row.index.to_string() }),
        json!({ "type": "height", "valueString": d.height.0.to_string() }),
        json!({ "type": "reason", "valueString": d.reason.code() }),
        json!({ "type": "break_glass", "valueString": d.break_glass.to_string() }),
    ];
    if let Some(consent) = d.consent_id {
        details.push(json!({ "type": "consent_id", "valueString": consent.to_hex() }));
    }
    for r in &row.releases {
        details.push(json!({ "type": "release_digest", "valueString": r.digest.to_hex() }));
    }
    let mut entities = vec![json!({
        "what": identified(RECORD_SYSTEM, d.record_id.to_hex(), None),
        "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"),
        "role": coding("http://terminology.hl7.org/CodeSystem/object-role", "4", "Domain Resource"),
        "detail": details,
    })];
    if let Some(patient) = d.patient {
        entities.push(json!({
            "what": identified(PARTY_SYSTEM, patient.to_hex(), None),
            "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", "1", "Person"),
            "role": coding("http://terminology.hl7.org/CodeSystem/object-role", "1", "Patient"),
        }));
    }
    let mut subtype = vec![coding(MODE_SYSTEM, d.mode.name(), d.mode.name())];
    if d.break_glass {
        subtype.push(coding(REASON_SYSTEM, "break_glass", "break-glass access"));
    }
    json!({
        "resourceType": "AuditEvent",
        "id": d.request_id.to_hex(),
        "type": coding("http://dicom.nema.org/resources/ontology/DCM", "110110", "Patient Record"),
        "subtype": subtype,
        "action": action,
        "recorded": iso_time(d.time),
        "outcome": if d.granted() { "0" } else { "4" },
        "outcomeDesc": format!("{} ({})", if d.granted() { "granted" } else { "denied" }, d.reason.code()),
        "purposeOfEvent": [purpose_concept(d.purpose)],
        "agent": [{
            "type": { "coding": [coding(
                "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "IRCP",
                "information recipient",
            )] },
            "who": identified(PARTY_SYSTEM, d.requester.to_hex(), directory.get(&d.requester)),
            "requestor": true,
            "purposeOfUse": [purpose_concept(d.purpose)],
        }],
        "source": {
            "observer": { "display": format!("Custos ledger {chain_id}") },
            "type": [coding(
                "http://terminology.hl7.org/CodeSystem/security-source-type",
                "4",
                "Application Server",
            )],
        },
        "entity": entities,
    })
}

/// The access log as a FHIR R4 `Bundle` (type `collection`) of [`fhir_audit_event`]s.
pub fn fhir_audit_bundle(
    rows: &[AuditRow],
    chain_id: &str,
    directory: &Directory,
    now: Timestamp,
) -> Value {
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": iso_time(now),
        "entry": rows
            .iter()
            .map(|r| json!({ "resource": fhir_audit_event(r, chain_id, directory) }))
            .collect::<Vec<_>>(),
    })
}

/// A consent as a FHIR R4 `Consent`: patient-privacy scope, an opt-in policy rule, and a permit
/// provision for the grantee with the purposes (v3-ActReason), the period, the records and the
/// categories.
pub fn fhir_consent(state: &consent_pb::ConsentState) -> Result<Value, String> {
    let wire = state.consent.clone().ok_or("consent: missing")?;
    let consent = Consent::try_from(wire).map_err(|e| format!("consent.{e}"))?;
    let id = Hash::from_slice(&state.consent_id)
        .map_err(|e| format!("consent_id: {e}"))?
        .to_hex();
    let ConsentPeriod {
        not_before,
        expires,
    } = consent.period;
    let mut period = serde_json::Map::new();
    if let Some(t) = not_before {
        period.insert("start".into(), json!(iso_time(t)));
    }
    if let Some(t) = expires {
        period.insert("end".into(), json!(iso_time(t)));
    }
    let mut provision = json!({
        "type": "permit",
        "actor": [{
            "role": { "coding": [coding(
                "http://terminology.hl7.org/CodeSystem/v3-ParticipationType",
                "IRCP",
                "information recipient",
            )] },
            "reference": identified(PARTY_SYSTEM, consent.grantee.to_hex(), None),
        }],
        "purpose": consent
            .purposes
            .iter()
            .map(|p| coding(ACT_REASON, p.code(), p.display()))
            .collect::<Vec<_>>(),
        "action": consent
            .modes
            .iter()
            .map(|m| json!({ "coding": [coding(MODE_SYSTEM, m.name(), m.name())] }))
            .collect::<Vec<_>>(),
    });
    if !period.is_empty() {
        provision["period"] = Value::Object(period);
    }
    if let Scope::Some {
        records,
        categories,
    } = &consent.scope
    {
        if !records.is_empty() {
            provision["data"] = records
                .iter()
                .map(|r| {
                    json!({
                        "meaning": "instance",
                        "reference": identified(RECORD_SYSTEM, r.to_hex(), None),
                    })
                })
                .collect();
        }
        if !categories.is_empty() {
            provision["code"] = categories
                .iter()
                .map(|c| json!({ "coding": [{ "system": "urn:custos:category", "code": c.as_str() }] }))
                .collect();
        }
    }
    Ok(json!({
        "resourceType": "Consent",
        "id": id,
        "status": if state.revoked { "inactive" } else { "active" },
        "scope": { "coding": [coding(
            "http://terminology.hl7.org/CodeSystem/consentscope",
            "patient-privacy",
            "Privacy Consent",
        )] },
        "category": [{ "coding": [coding("http://loinc.org", "59284-0", "Patient Consent")] }],
        "patient": identified(PARTY_SYSTEM, consent.patient.to_hex(), None),
        "policyRule": { "coding": [coding(
            "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "OPTIN",
            "opt-in",
        )] },
        "provision": provision,
    }))
}

/// Consents as a FHIR R4 `Bundle` (type `collection`) of [`fhir_consent`]s.
pub fn fhir_consent_bundle(
    consents: &[consent_pb::ConsentState],
    now: Timestamp,
) -> Result<Value, String> {
    let entries = consents
        .iter()
        .map(|c| fhir_consent(c).map(|r| json!({ "resource": r })))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": iso_time(now),
        "entry": entries,
    }))
}

/// One disclosure of a patient's data: a granted access, released or not yet.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Disclosure {
    /// When access was granted.
    pub time: String,
    /// Who (the requester's key).
    pub requester: String,
    /// The requester's organisation, where known.
    pub organisation: String,
    /// Which record.
    pub record_id: String,
    /// Why (HL7 code).
    pub purpose: String,
    /// Why, in words.
    pub purpose_display: String,
    /// How (raw, predicate, aggregate).
    pub mode: String,
    /// On what basis (consent, owner, break_glass).
    pub basis: String,
    /// Whether it was an emergency access without consent.
    pub break_glass: bool,
    /// When the custodian released it, if it did.
    pub released_at: Option<String>,
    /// SHA-256 of what was released.
    pub release_digest: Option<String>,
    /// Log index of the decision.
    pub log_index: u64,
}

/// The accounting of disclosures for `patient`: every granted access to their records, oldest
/// first, with what the custodian released. Rows of other patients are skipped.
pub fn disclosures(rows: &[AuditRow], patient: PartyId, directory: &Directory) -> Vec<Disclosure> {
    rows.iter()
        .filter(|r| r.decision.patient == Some(patient) && r.decision.granted())
        .map(|r| {
            let d = &r.decision;
            let first = r.releases.first();
            Disclosure {
                time: iso_time(d.time),
                requester: d.requester.to_hex(),
                organisation: directory.get(&d.requester).cloned().unwrap_or_default(),
                record_id: d.record_id.to_hex(),
                purpose: d.purpose.code().to_string(),
                purpose_display: d.purpose.display().to_string(),
                mode: d.mode.name().to_string(),
                basis: d.reason.code().to_string(),
                break_glass: d.break_glass,
                released_at: first.map(|r| iso_time(r.time)),
                release_digest: first.map(|r| r.digest.to_hex()),
                log_index: r.index,
            }
        })
        .collect()
}

/// Disclosures as CSV (RFC 4180).
pub fn disclosures_csv(rows: &[Disclosure]) -> String {
    let mut out = csv_line(
        &[
            "time",
            "requester",
            "organisation",
            "record_id",
            "purpose",
            "purpose_display",
            "mode",
            "basis",
            "break_glass",
            "released_at",
            "release_digest",
            "log_index",
        ]
        .map(String::from),
    );
    for d in rows {
        out.push_str(&csv_line(&[
            d.time.clone(),
            d.requester.clone(),
            d.organisation.clone(),
            d.record_id.clone(),
            d.purpose.clone(),
            d.purpose_display.clone(),
            d.mode.clone(),
            d.basis.clone(),
            d.break_glass.to_string(),
            d.released_at.clone().unwrap_or_default(),
            d.release_digest.clone().unwrap_or_default(),
            d.log_index.to_string(),
        ]));
    }
    out
}

/// Disclosures as text, one sentence a line: who saw what, when and why.
pub fn disclosures_text(rows: &[Disclosure]) -> String {
    let mut out = String::new();
    for d in rows {
        let who = if d.organisation.is_empty() {
            d.requester[..8].to_string()
        } else {
            format!("{} ({})", d.organisation, &d.requester[..8])
        };
        let _ = write!(
            out,
            "{}  {who} was granted {} access to record {} for {} ({}) on the basis of {}",
            d.time,
            d.mode,
            &d.record_id[..8],
            d.purpose,
            d.purpose_display,
            d.basis
        );
        match &d.released_at {
            Some(at) => {
                let _ = writeln!(out, "; released {at}");
            }
            None => out.push_str("; nothing released\n"),
        }
    }
    if rows.is_empty() {
        out.push_str("no disclosures\n");
    }
    out
}

/// Thresholds of the review flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlagSettings {
    /// A requester with at least this many denials within `window_ms` is flagged.
    pub denial_threshold: usize,
    /// The sliding window of the denial count, in milliseconds.
    pub window_ms: i64,
}

impl Default for FlagSettings {
    fn default() -> Self {
        FlagSettings {
            denial_threshold: 5,
            window_ms: 60 * 60 * 1000,
        }
    }
}

/// One flagged decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlaggedAccess {
    /// Log index of the decision.
    pub log_index: u64,
    /// When.
    pub time: String,
    /// Who asked.
    pub requester: String,
    /// The requester's organisation, where known.
    pub organisation: String,
    /// Whose record.
    pub patient: String,
    /// Which record.
    pub record_id: String,
    /// Why (HL7 code).
    pub purpose: String,
    /// The decision's reason.
    pub reason: String,
}

/// A requester that was denied many times in a short time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DenialSpike {
    /// Who.
    pub requester: String,
    /// The requester's organisation, where known.
    pub organisation: String,
    /// Most denials within one window.
    pub denials: usize,
    /// Start of the busiest window.
    pub from: String,
    /// Last denial of the busiest window.
    pub to: String,
}

/// What a compliance officer should look at.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Flags {
    /// Break-glass grants: emergency accesses without consent, each awaiting review (the ledger
    /// records no review, so every one is listed).
    pub break_glass: Vec<FlaggedAccess>,
    /// Requesters with at least the threshold of denials within the window.
    pub denial_spikes: Vec<DenialSpike>,
    /// Requests made after the consent they relied on was revoked.
    pub after_revocation: Vec<FlaggedAccess>,
}

fn flagged(row: &AuditRow, directory: &Directory) -> FlaggedAccess {
    let d = &row.decision;
    FlaggedAccess {
        log_index: row.index,
        time: iso_time(d.time),
        requester: d.requester.to_hex(),
        organisation: directory.get(&d.requester).cloned().unwrap_or_default(),
        patient: d.patient.map(|p| p.to_hex()).unwrap_or_default(),
        record_id: d.record_id.to_hex(),
        purpose: d.purpose.code().to_string(),
        reason: d.reason.code().to_string(),
    }
}

/// The review flags over `rows` (in log order).
pub fn flags(rows: &[AuditRow], settings: FlagSettings, directory: &Directory) -> Flags {
    let mut out = Flags::default();
    let mut denials: BTreeMap<PartyId, Vec<Timestamp>> = BTreeMap::new();
    for row in rows {
        let d = &row.decision;
        if d.break_glass && d.granted() {
            out.break_glass.push(flagged(row, directory));
        }
        if d.reason == DecisionReason::Revoked {
            out.after_revocation.push(flagged(row, directory));
        }
        if !d.granted() {
            denials.entry(d.requester).or_default().push(d.time);
        }
    }
    let threshold = settings.denial_threshold.max(1);
    for (requester, mut times) in denials {
        times.sort();
        let mut window: VecDeque<Timestamp> = VecDeque::new();
        let mut best: Option<(usize, Timestamp, Timestamp)> = None;
        for t in times {
            window.push_back(t);
            while window
                .front()
                .is_some_and(|first| t.0 - first.0 >= settings.window_ms)
            {
                window.pop_front();
            }
            if best.is_none_or(|(n, _, _)| window.len() > n)
                && let Some(first) = window.front()
            {
                best = Some((window.len(), *first, t));
            }
        }
        if let Some((n, from, to)) = best
            && n >= threshold
        {
            out.denial_spikes.push(DenialSpike {
                requester: requester.to_hex(),
                organisation: directory.get(&requester).cloned().unwrap_or_default(),
                denials: n,
                from: iso_time(from),
                to: iso_time(to),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_written_in_utc_with_milliseconds() {
        assert_eq!(iso_time(Timestamp(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            iso_time(Timestamp(951_782_400_123)),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            iso_time(Timestamp(1_719_835_199_999)),
            "2024-07-01T11:59:59.999Z"
        );
        assert_eq!(iso_time(Timestamp(-1)), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
