//! Aggregate requests: the scope a partner asks about, the cohort id that names it, and the
//! cohort a decision fixes.
//!
//! An aggregate request (mode `aggregate`) carries a serialized
//! `custos.access.v1.AggregateScope` in `RequestAccess.query`: a custodian, a record category and
//! the query text. Its `record_id` is the scope's *cohort id*,
//! SHA-256(`custos/cohort/v1` ‖ custodian ‖ category): every decision and the audit indexes keep
//! one record id per request, and this one names the dataset deterministically, so the log can be
//! filtered by it and nobody can point an aggregate request at an unrelated record id.

use custos_crypto::{Hash, sha256_parts};
use custos_proto::access::v1 as pb;
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::ids::{Category, PartyId, RecordId};

/// Largest aggregate query text, in bytes.
pub const MAX_AGGREGATE_TEXT_BYTES: usize = 4096;
/// Largest serialized [`AggregateScope`]: the text plus the custodian, the category and framing.
pub const MAX_AGGREGATE_SCOPE_BYTES: usize = MAX_AGGREGATE_TEXT_BYTES + 128;
/// Domain separation of cohort ids.
pub const COHORT_ID_DOMAIN: &[u8] = b"custos/cohort/v1";

/// What an aggregate request asks about.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct AggregateScope {
    /// The custodian whose records form the cohort.
    pub custodian: PartyId,
    /// The records' category.
    pub category: Category,
    /// The query, opaque to the ledger (1 to [`MAX_AGGREGATE_TEXT_BYTES`] bytes).
    pub text: String,
}

/// The cohort id of `custodian`'s records of `category`.
pub fn cohort_id(custodian: &PartyId, category: &Category) -> RecordId {
    RecordId(sha256_parts(&[
        COHORT_ID_DOMAIN,
        custodian.0.as_bytes(),
        category.as_str().as_bytes(),
    ]))
}

impl AggregateScope {
    /// The cohort id the request's `record_id` must be.
    pub fn cohort_id(&self) -> RecordId {
        cohort_id(&self.custodian, &self.category)
    }

    /// Decodes and validates a serialized scope (a `RequestAccess.query`); fields are named
    /// relative to the query.
    pub fn from_query(bytes: &[u8]) -> Result<Self, FieldError> {
        if bytes.len() > MAX_AGGREGATE_SCOPE_BYTES {
            return Err(FieldError::new(
                "",
                format!(
                    "an aggregate scope is at most {MAX_AGGREGATE_SCOPE_BYTES} bytes, got {}",
                    bytes.len()
                ),
            ));
        }
        let wire = pb::AggregateScope::decode(bytes)
            .map_err(|e| FieldError::new("", format!("not an AggregateScope: {e}")))?;
        AggregateScope::try_from(wire)
    }

    /// The serialized scope, as `RequestAccess.query` carries it.
    pub fn to_query(&self) -> Vec<u8> {
        pb::AggregateScope::from(self).encode_to_vec()
    }

    /// Checks that `record_id` is this scope's cohort id.
    pub fn check_record_id(&self, record_id: &RecordId) -> Result<(), FieldError> {
        let expected = self.cohort_id();
        if *record_id == expected {
            Ok(())
        } else {
            Err(FieldError::new(
                "record_id",
                format!(
                    "an aggregate request's record id is the cohort id of its custodian and \
                     category: expected {expected}, got {record_id}"
                ),
            ))
        }
    }
}

impl TryFrom<pb::AggregateScope> for AggregateScope {
    type Error = FieldError;
    fn try_from(wire: pb::AggregateScope) -> Result<Self, FieldError> {
        let custodian = PartyId::from_field(&wire.custodian, "custodian")?;
        let category = Category::parse(&wire.category, "category")?;
        if wire.text.is_empty() || wire.text.len() > MAX_AGGREGATE_TEXT_BYTES {
            return Err(FieldError::new(
                "text",
                format!(
                    "expected 1 to {MAX_AGGREGATE_TEXT_BYTES} bytes of query text, got {}",
                    wire.text.len()
                ),
            ));
        }
        Ok(AggregateScope {
            custodian,
            category,
            text: wire.text,
        })
    }
}

impl From<&AggregateScope> for pb::AggregateScope {
    fn from(s: &AggregateScope) -> Self {
        pb::AggregateScope {
            custodian: s.custodian.to_vec(),
            category: s.category.as_str().to_string(),
            text: s.text.clone(),
        }
    }
}

/// The record set an aggregate decision includes: the RFC 6962 Merkle root over its record ids
/// sorted ascending (leaf data: the 32 id bytes), and their number.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Cohort {
    /// Merkle root of the sorted ids.
    pub root: Hash,
    /// Number of records.
    pub size: u64,
}

impl TryFrom<pb::Cohort> for Cohort {
    type Error = FieldError;
    fn try_from(wire: pb::Cohort) -> Result<Self, FieldError> {
        Ok(Cohort {
            root: Hash::from_slice(&wire.root)
                .map_err(|e| FieldError::new("root", e.to_string()))?,
            size: wire.size,
        })
    }
}

impl From<&Cohort> for pb::Cohort {
    fn from(c: &Cohort) -> Self {
        pb::Cohort {
            root: c.root.0.to_vec(),
            size: c.size,
        }
    }
}
