//! What a custodian declares about a record, and what the vault keeps about it besides its
//! chunks and wrapped keys.

use std::collections::BTreeMap;

use custos_crypto::Hash;
use custos_proto::vault::v1 as pb;
use custos_types::{Category, FieldError, Height, PartyId, RecordId, TxId};
use serde::{Deserialize, Serialize};

use crate::stream::StreamParams;

/// Most attributes one record may carry.
pub const MAX_ATTRIBUTES: usize = 64;
/// Longest attribute name.
pub const MAX_ATTRIBUTE_NAME_LEN: usize = 32;
/// Longest categorical attribute value.
pub const MAX_CATEGORICAL_LEN: usize = 64;
/// Version byte of the persisted [`RecordMeta`] encoding.
pub const META_ENCODING_VERSION: u8 = 2;

/// An attribute's name: `[a-z0-9_]`, 1 to 32 characters, starting with a letter.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AttributeName(String);

impl AttributeName {
    /// Validates a name read from the wire field `field`.
    pub fn parse(text: &str, field: &str) -> Result<Self, FieldError> {
        let ok = !text.is_empty()
            && text.len() <= MAX_ATTRIBUTE_NAME_LEN
            && text.as_bytes()[0].is_ascii_lowercase()
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(AttributeName(text.to_string()))
        } else {
            Err(FieldError::new(
                field,
                format!(
                    "expected 1 to {MAX_ATTRIBUTE_NAME_LEN} characters of [a-z0-9_] starting \
                     with a letter, got `{}`",
                    text.escape_default()
                ),
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for AttributeName {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, FieldError> {
        AttributeName::parse(&value, "name")
    }
}

impl From<AttributeName> for String {
    fn from(value: AttributeName) -> String {
        value.0
    }
}

/// An attribute's value.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum AttributeValue {
    /// A number (lab value, age, amount), for predicates and sums.
    Numeric(i64),
    /// A category (diagnosis code, sex), for predicates and counts.
    Categorical(String),
}

/// A record's typed attributes, by name.
pub type Attributes = BTreeMap<AttributeName, AttributeValue>;

/// Validates wire attributes: names unique and well-formed, values present and bounded.
pub fn attributes_from_wire(wire: &[pb::Attribute]) -> Result<Attributes, FieldError> {
    if wire.len() > MAX_ATTRIBUTES {
        return Err(FieldError::new(
            "attributes",
            format!("at most {MAX_ATTRIBUTES}, got {}", wire.len()),
        ));
    }
    let mut out = Attributes::new();
    for (i, attribute) in wire.iter().enumerate() {
        let field = format!("attributes[{i}]");
        let name = AttributeName::parse(&attribute.name, &format!("{field}.name"))?;
        let value = match &attribute.value {
            Some(pb::attribute::Value::Numeric(n)) => AttributeValue::Numeric(*n),
            Some(pb::attribute::Value::Categorical(text)) => {
                if text.is_empty() || text.len() > MAX_CATEGORICAL_LEN {
                    return Err(FieldError::new(
                        format!("{field}.categorical"),
                        format!(
                            "expected 1 to {MAX_CATEGORICAL_LEN} bytes, got {}",
                            text.len()
                        ),
                    ));
                }
                AttributeValue::Categorical(text.clone())
            }
            None => {
                return Err(FieldError::new(
                    format!("{field}.value"),
                    "required field is missing",
                ));
            }
        };
        if out.insert(name.clone(), value).is_some() {
            return Err(FieldError::new(
                format!("{field}.name"),
                format!("`{}` appears more than once", name.as_str()),
            ));
        }
    }
    Ok(out)
}

/// The wire form of `attributes`, in name order.
pub fn attributes_to_wire(attributes: &Attributes) -> Vec<pb::Attribute> {
    attributes
        .iter()
        .map(|(name, value)| pb::Attribute {
            name: name.as_str().to_string(),
            value: Some(match value {
                AttributeValue::Numeric(n) => pb::attribute::Value::Numeric(*n),
                AttributeValue::Categorical(c) => pb::attribute::Value::Categorical(c.clone()),
            }),
        })
        .collect()
}

/// A record a custodian is about to put.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NewRecord {
    /// Its id.
    pub record_id: RecordId,
    /// The patient who owns it.
    pub owner: PartyId,
    /// Its category.
    pub category: Category,
    /// Its attributes.
    pub attributes: Attributes,
    /// Plaintext size in bytes.
    pub size: u64,
    /// The salt of the attribute commitment registered with it, if any.
    pub commitment_salt: Option<[u8; 32]>,
}

impl NewRecord {
    /// Validates a wire header; an empty record id takes `fresh_id()`.
    pub fn from_wire(
        wire: &pb::RecordHeader,
        fresh_id: impl FnOnce() -> RecordId,
    ) -> Result<Self, FieldError> {
        let record_id = if wire.record_id.is_empty() {
            fresh_id()
        } else {
            RecordId::from_field(&wire.record_id, "record_id")?
        };
        Ok(NewRecord {
            record_id,
            owner: PartyId::from_field(&wire.owner, "owner")?,
            category: Category::parse(&wire.category, "category")?,
            attributes: attributes_from_wire(&wire.attributes)?,
            size: wire.size,
            commitment_salt: None,
        })
    }

    /// The wire header.
    pub fn to_wire(&self) -> pb::RecordHeader {
        pb::RecordHeader {
            record_id: self.record_id.to_vec(),
            owner: self.owner.to_vec(),
            category: self.category.as_str().to_string(),
            attributes: attributes_to_wire(&self.attributes),
            size: self.size,
        }
    }
}

/// Where the ledger registered a record.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Registration {
    /// The `RegisterRecord` transaction.
    pub tx_id: TxId,
    /// Its block.
    pub height: Height,
}

/// Everything the vault keeps about a complete record besides its chunks and wrapped keys.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RecordMeta {
    /// How the record is chunked and what its chunks are bound to.
    pub stream: StreamParams,
    /// The patient who owns it.
    pub owner: PartyId,
    /// Its category.
    pub category: Category,
    /// Its attributes (never on the ledger).
    pub attributes: Attributes,
    /// The salt of its attribute commitment (secret: with the attributes it opens the
    /// commitment), if one was registered.
    pub commitment_salt: Option<[u8; 32]>,
    /// Plaintext bytes.
    pub size: u64,
    /// Chunks.
    pub chunk_count: u32,
    /// The digest registered on the ledger.
    pub ciphertext_digest: Hash,
    /// The registration.
    pub registration: Registration,
}

impl RecordMeta {
    /// The record's id.
    pub fn record_id(&self) -> RecordId {
        self.stream.record_id
    }

    /// The persisted form: a version byte, then postcard.
    pub fn to_bytes(&self) -> Result<Vec<u8>, String> {
        let mut out = vec![META_ENCODING_VERSION];
        out.extend(postcard::to_stdvec(self).map_err(|e| e.to_string())?);
        Ok(out)
    }

    /// Parses the persisted form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        match bytes.split_first() {
            Some((&META_ENCODING_VERSION, rest)) => {
                postcard::from_bytes(rest).map_err(|e| e.to_string())
            }
            Some((v, _)) => Err(format!(
                "expected encoding version {META_ENCODING_VERSION}, got {v}"
            )),
            None => Err("empty record metadata".into()),
        }
    }

    /// The listing form.
    pub fn summary(&self) -> pb::RecordSummary {
        pb::RecordSummary {
            record_id: self.record_id().to_vec(),
            owner: self.owner.to_vec(),
            category: self.category.as_str().to_string(),
            size: self.size,
            version: self.stream.version.0,
            ciphertext_digest: self.ciphertext_digest.0.to_vec(),
            registered_height: self.registration.height.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attribute(name: &str, value: Option<pb::attribute::Value>) -> pb::Attribute {
        pb::Attribute {
            name: name.into(),
            value,
        }
    }

    #[test]
    fn attributes_name_the_field_they_refuse() {
        let ok = attributes_from_wire(&[
            attribute("hba1c", Some(pb::attribute::Value::Numeric(7))),
            attribute("sex", Some(pb::attribute::Value::Categorical("f".into()))),
        ])
        .unwrap();
        assert_eq!(attributes_to_wire(&ok).len(), 2);
        let e = attributes_from_wire(&[attribute("Bad", None)]).unwrap_err();
        assert_eq!(e.field, "attributes[0].name");
        let e = attributes_from_wire(&[attribute("a", None)]).unwrap_err();
        assert_eq!(e.field, "attributes[0].value");
        let twice = attribute("a", Some(pb::attribute::Value::Numeric(1)));
        let e = attributes_from_wire(&[twice.clone(), twice]).unwrap_err();
        assert_eq!(e.field, "attributes[1].name");
    }
}
