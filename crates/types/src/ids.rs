//! Newtype identifiers, heights and timestamps.

use std::fmt;

use custos_crypto::{Hash, PublicKey};
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

macro_rules! hash_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub Hash);

        impl $name {
            /// Parses a 32-byte id from a wire field named `field`.
            pub fn from_field(bytes: &[u8], field: &str) -> Result<Self, FieldError> {
                Hash::from_slice(bytes)
                    .map($name)
                    .map_err(|e| FieldError::new(field, e.to_string()))
            }

            /// The id's bytes.
            pub fn to_vec(&self) -> Vec<u8> {
                self.0.as_bytes().to_vec()
            }

            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                self.0.to_hex()
            }

            /// The first 8 hex digits, for human output.
            pub fn short(&self) -> String {
                self.0.short()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0.to_hex())
            }
        }
    };
}

hash_id!(
    /// Names a transaction: SHA-256("custos/tx-id/v2" ‖ its body bytes), which name the author.
    TxId
);
hash_id!(
    /// Names a record: 32 bytes chosen by its custodian, unique on the ledger.
    RecordId
);
hash_id!(
    /// Names a consent: the id of the transaction that granted it.
    ConsentId
);
hash_id!(
    /// Names an access request: the id of the transaction that made it.
    RequestId
);

/// A party's identity: its Ed25519 public key. Patients are known on the ledger by this alone.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartyId(pub PublicKey);

impl PartyId {
    /// Parses a 32-byte Ed25519 public key from a wire field named `field`.
    pub fn from_field(bytes: &[u8], field: &str) -> Result<Self, FieldError> {
        PublicKey::from_slice(bytes)
            .map(PartyId)
            .map_err(|e| FieldError::new(field, e.to_string()))
    }

    /// The key's bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.as_bytes().to_vec()
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        self.0.to_hex()
    }

    /// The first 8 hex digits, for human output.
    pub fn short(&self) -> String {
        self.0.short()
    }
}

impl fmt::Debug for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PartyId({})", self.0.to_hex())
    }
}

impl fmt::Display for PartyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

/// Block height; the first block is height 1.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
pub struct Height(pub u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An author's transaction counter; each value is used once, in order.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
pub struct Nonce(pub u64);

/// Milliseconds since the Unix epoch, UTC.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default, Serialize, Deserialize,
)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Parses a wire timestamp where 0 means "unbounded".
    pub fn optional(ms: i64, field: &str) -> Result<Option<Self>, FieldError> {
        match ms {
            0 => Ok(None),
            ms if ms < 0 => Err(FieldError::new(
                field,
                format!("expected a time after 1970, got {ms}"),
            )),
            ms => Ok(Some(Timestamp(ms))),
        }
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        Timestamp(ms)
    }
}

/// Largest chain id length.
pub const MAX_CHAIN_ID_LEN: usize = 64;

/// Names a consortium chain: `[a-z0-9-]`, 1 to 64 characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChainId(String);

impl ChainId {
    /// Validates a chain id.
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let ok = !text.is_empty()
            && text.len() <= MAX_CHAIN_ID_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(ChainId(text.to_string()))
        } else {
            Err(FieldError::new(
                "chain_id",
                "expected 1 to 64 characters of [a-z0-9-]",
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ChainId {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, FieldError> {
        ChainId::parse(&value)
    }
}

impl From<ChainId> for String {
    fn from(value: ChainId) -> String {
        value.0
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Largest category length.
pub const MAX_CATEGORY_LEN: usize = 32;

/// A record category such as `lab` or `imaging`: `[a-z0-9_-]`, 1 to 32 characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Category(String);

impl Category {
    /// Validates a category read from the wire field `field`.
    pub fn parse(text: &str, field: &str) -> Result<Self, FieldError> {
        let ok = !text.is_empty()
            && text.len() <= MAX_CATEGORY_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Category(text.to_string()))
        } else {
            Err(FieldError::new(
                field,
                "expected 1 to 32 characters of [a-z0-9_-]",
            ))
        }
    }

    /// The category as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Category {
    type Error = FieldError;
    fn try_from(value: String) -> Result<Self, FieldError> {
        Category::parse(&value, "category")
    }
}

impl From<Category> for String {
    fn from(value: Category) -> String {
        value.0
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
