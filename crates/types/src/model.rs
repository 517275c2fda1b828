//! Parties, records, consents and consortium parameters.

use std::collections::BTreeSet;
use std::fmt;

use custos_proto::consent::v1 as pb;
use custos_proto::ledger::v1 as ledger_pb;
use serde::{Deserialize, Serialize};

use crate::error::{FieldError, Within, required};
use crate::ids::{Category, PartyId, RecordId, Timestamp};
use crate::purpose::Purpose;

/// Most record ids, categories or purposes one consent may list.
pub const MAX_SCOPE_ITEMS: usize = 64;

/// What a party is in the consortium.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A data subject who owns records.
    Patient,
    /// A hospital that holds records in its vault.
    Custodian,
    /// An insurer, researcher or advertiser that asks for access.
    Partner,
    /// A compliance officer or regulator with read-only access to the log.
    Auditor,
    /// The operator of a consortium validator.
    ValidatorOperator,
}

impl Role {
    /// Parses the wire enum value found in `field`.
    pub fn from_wire(value: i32, field: &str) -> Result<Self, FieldError> {
        match pb::Role::try_from(value) {
            Ok(pb::Role::Patient) => Ok(Role::Patient),
            Ok(pb::Role::Custodian) => Ok(Role::Custodian),
            Ok(pb::Role::Partner) => Ok(Role::Partner),
            Ok(pb::Role::Auditor) => Ok(Role::Auditor),
            Ok(pb::Role::ValidatorOperator) => Ok(Role::ValidatorOperator),
            Ok(pb::Role::Unspecified) => Err(FieldError::new(field, "role is unspecified")),
            Err(_) => Err(FieldError::new(
                field,
                format!("unknown role value {value}"),
            )),
        }
    }

    /// The wire enum value.
    pub fn to_wire(self) -> i32 {
        (match self {
            Role::Patient => pb::Role::Patient,
            Role::Custodian => pb::Role::Custodian,
            Role::Partner => pb::Role::Partner,
            Role::Auditor => pb::Role::Auditor,
            Role::ValidatorOperator => pb::Role::ValidatorOperator,
        }) as i32
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Patient => "patient",
            Role::Custodian => "custodian",
            Role::Partner => "partner",
            Role::Auditor => "auditor",
            Role::ValidatorOperator => "validator_operator",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a grantee may use a record.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessMode {
    /// The record itself.
    Raw,
    /// Zero-knowledge predicate proofs.
    Predicate,
    /// Aggregates over cohorts.
    Aggregate,
}

impl AccessMode {
    /// Parses the wire enum value found in `field`.
    pub fn from_wire(value: i32, field: &str) -> Result<Self, FieldError> {
        match pb::AccessMode::try_from(value) {
            Ok(pb::AccessMode::Raw) => Ok(AccessMode::Raw),
            Ok(pb::AccessMode::Predicate) => Ok(AccessMode::Predicate),
            Ok(pb::AccessMode::Aggregate) => Ok(AccessMode::Aggregate),
            Ok(pb::AccessMode::Unspecified) => {
                Err(FieldError::new(field, "access mode is unspecified"))
            }
            Err(_) => Err(FieldError::new(
                field,
                format!("unknown access mode value {value}"),
            )),
        }
    }

    /// The wire enum value.
    pub fn to_wire(self) -> i32 {
        (match self {
            AccessMode::Raw => pb::AccessMode::Raw,
            AccessMode::Predicate => pb::AccessMode::Predicate,
            AccessMode::Aggregate => pb::AccessMode::Aggregate,
        }) as i32
    }

    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            AccessMode::Raw => "raw",
            AccessMode::Predicate => "predicate",
            AccessMode::Aggregate => "aggregate",
        }
    }

    /// Parses a lowercase name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "raw" => Some(AccessMode::Raw),
            "predicate" => Some(AccessMode::Predicate),
            "aggregate" => Some(AccessMode::Aggregate),
            _ => None,
        }
    }
}

impl fmt::Display for AccessMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Largest organisation identifier length.
pub const MAX_ORGANISATION_LEN: usize = 64;

/// A member organisation's short identifier, e.g. `st-mary-hospital`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize)]
pub struct Organisation(String);

impl Organisation {
    /// Validates an identifier (empty allowed: patients have none).
    pub fn parse(text: &str, field: &str) -> Result<Self, FieldError> {
        let ok = text.len() <= MAX_ORGANISATION_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Organisation(text.to_string()))
        } else {
            Err(FieldError::new(
                field,
                "expected at most 64 characters of [a-z0-9_-]",
            ))
        }
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The records a consent covers.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Scope {
    /// Every record of the patient, present and future.
    AllRecords,
    /// The listed records and every record in the listed categories.
    Some {
        /// Explicit records.
        records: BTreeSet<RecordId>,
        /// Whole categories.
        categories: BTreeSet<Category>,
    },
}

impl Scope {
    /// Whether a record of `category` with id `record` is covered.
    pub fn covers(&self, record: &RecordId, category: &Category) -> bool {
        match self {
            Scope::AllRecords => true,
            Scope::Some {
                records,
                categories,
            } => records.contains(record) || categories.contains(category),
        }
    }
}

impl TryFrom<pb::Scope> for Scope {
    type Error = FieldError;
    fn try_from(wire: pb::Scope) -> Result<Self, FieldError> {
        if wire.all_records {
            if !wire.record_ids.is_empty() || !wire.categories.is_empty() {
                return Err(FieldError::new(
                    "all_records",
                    "all_records excludes record_ids and categories",
                ));
            }
            return Ok(Scope::AllRecords);
        }
        if wire.record_ids.is_empty() && wire.categories.is_empty() {
            return Err(FieldError::new(
                "record_ids",
                "a scope needs record ids, categories or all_records",
            ));
        }
        if wire.record_ids.len() > MAX_SCOPE_ITEMS {
            return Err(FieldError::new(
                "record_ids",
                format!(
                    "at most {MAX_SCOPE_ITEMS} records, got {}",
                    wire.record_ids.len()
                ),
            ));
        }
        if wire.categories.len() > MAX_SCOPE_ITEMS {
            return Err(FieldError::new(
                "categories",
                format!(
                    "at most {MAX_SCOPE_ITEMS} categories, got {}",
                    wire.categories.len()
                ),
            ));
        }
        let records = wire
            .record_ids
            .iter()
            .enumerate()
            .map(|(i, r)| RecordId::from_field(r, &format!("record_ids[{i}]")))
            .collect::<Result<_, _>>()?;
        let categories = wire
            .categories
            .iter()
            .enumerate()
            .map(|(i, c)| Category::parse(c, &format!("categories[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Scope::Some {
            records,
            categories,
        })
    }
}

impl From<&Scope> for pb::Scope {
    fn from(scope: &Scope) -> Self {
        match scope {
            Scope::AllRecords => pb::Scope {
                all_records: true,
                ..Default::default()
            },
            Scope::Some {
                records,
                categories,
            } => pb::Scope {
                record_ids: records.iter().map(|r| r.to_vec()).collect(),
                categories: categories.iter().map(|c| c.as_str().to_string()).collect(),
                all_records: false,
            },
        }
    }
}

/// When a consent is in force: from `not_before` (inclusive) until `expires` (exclusive).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct ConsentPeriod {
    /// Start; `None` means from the grant.
    pub not_before: Option<Timestamp>,
    /// End; `None` means until revoked.
    pub expires: Option<Timestamp>,
}

/// A consent as the patient grants it (close to FHIR Consent).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Consent {
    /// Whose records.
    pub patient: PartyId,
    /// Who receives access.
    pub grantee: PartyId,
    /// Which records.
    pub scope: Scope,
    /// For which purposes (each covers its descendants).
    pub purposes: BTreeSet<Purpose>,
    /// In which modes.
    pub modes: BTreeSet<AccessMode>,
    /// When.
    pub period: ConsentPeriod,
}

impl Consent {
    /// Whether one of the consented purposes covers `requested`.
    pub fn covers_purpose(&self, requested: Purpose) -> bool {
        self.purposes.iter().any(|p| p.covers(requested))
    }
}

impl TryFrom<pb::Consent> for Consent {
    type Error = FieldError;
    fn try_from(wire: pb::Consent) -> Result<Self, FieldError> {
        let patient = PartyId::from_field(&wire.patient, "patient")?;
        let grantee = PartyId::from_field(&wire.grantee, "grantee")?;
        if patient == grantee {
            return Err(FieldError::new(
                "grantee",
                "a patient cannot grant consent to themself",
            ));
        }
        let scope = Scope::try_from(required(wire.scope, "scope")?).within("scope")?;
        if wire.purposes.is_empty() {
            return Err(FieldError::new(
                "purposes",
                "at least one purpose is required",
            ));
        }
        if wire.purposes.len() > MAX_SCOPE_ITEMS {
            return Err(FieldError::new(
                "purposes",
                format!(
                    "at most {MAX_SCOPE_ITEMS} purposes, got {}",
                    wire.purposes.len()
                ),
            ));
        }
        let purposes = wire
            .purposes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Purpose::parse(p)
                    .map_err(|e| FieldError::new(format!("purposes[{i}]"), e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        if wire.modes.is_empty() {
            return Err(FieldError::new(
                "modes",
                "at least one access mode is required",
            ));
        }
        if wire.modes.len() > 3 {
            return Err(FieldError::new(
                "modes",
                format!("at most 3 modes, got {}", wire.modes.len()),
            ));
        }
        let modes = wire
            .modes
            .iter()
            .enumerate()
            .map(|(i, m)| AccessMode::from_wire(*m, &format!("modes[{i}]")))
            .collect::<Result<_, _>>()?;
        let not_before = Timestamp::optional(wire.not_before_ms, "not_before_ms")?;
        let expires = Timestamp::optional(wire.expires_ms, "expires_ms")?;
        if let (Some(start), Some(end)) = (not_before, expires)
            && end <= start
        {
            return Err(FieldError::new(
                "expires_ms",
                format!("expiry {} is not after the start {}", end.0, start.0),
            ));
        }
        Ok(Consent {
            patient,
            grantee,
            scope,
            purposes,
            modes,
            period: ConsentPeriod {
                not_before,
                expires,
            },
        })
    }
}

impl From<&Consent> for pb::Consent {
    fn from(c: &Consent) -> Self {
        pb::Consent {
            patient: c.patient.to_vec(),
            grantee: c.grantee.to_vec(),
            scope: Some((&c.scope).into()),
            purposes: c.purposes.iter().map(|p| p.code().to_string()).collect(),
            modes: c.modes.iter().map(|m| m.to_wire()).collect(),
            not_before_ms: c.period.not_before.map_or(0, |t| t.0),
            expires_ms: c.period.expires.map_or(0, |t| t.0),
        }
    }
}

/// Consortium parameters, changed only by governance.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Parameters {
    /// Minimum cohort size for aggregates.
    pub min_cohort_size: u32,
    /// Whether ETREAT/BTG requests may be granted without consent.
    pub break_glass_enabled: bool,
}

impl Default for Parameters {
    fn default() -> Self {
        Parameters {
            min_cohort_size: 10,
            break_glass_enabled: false,
        }
    }
}

impl TryFrom<ledger_pb::Parameters> for Parameters {
    type Error = FieldError;
    fn try_from(wire: ledger_pb::Parameters) -> Result<Self, FieldError> {
        if wire.min_cohort_size < 2 {
            return Err(FieldError::new(
                "min_cohort_size",
                format!("expected at least 2, got {}", wire.min_cohort_size),
            ));
        }
        Ok(Parameters {
            min_cohort_size: wire.min_cohort_size,
            break_glass_enabled: wire.break_glass_enabled,
        })
    }
}

impl From<&Parameters> for ledger_pb::Parameters {
    fn from(p: &Parameters) -> Self {
        ledger_pb::Parameters {
            min_cohort_size: p.min_cohort_size,
            break_glass_enabled: p.break_glass_enabled,
        }
    }
}
