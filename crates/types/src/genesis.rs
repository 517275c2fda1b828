//! The genesis file: the consortium a chain starts with.

use serde::{Deserialize, Serialize};

use crate::error::FieldError;
use crate::ids::{ChainId, PartyId, Timestamp};
use crate::model::{Organisation, Parameters, Role};

/// Serde helpers that write keys as lowercase hex in JSON.
pub mod hex_key {
    use custos_crypto::PublicKey;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use crate::ids::PartyId;

    /// Writes a party id as hex.
    pub fn serialize<S: Serializer>(id: &PartyId, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&id.to_hex())
    }

    /// Reads a party id from hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PartyId, D::Error> {
        let text = String::deserialize(d)?;
        PublicKey::from_hex(&text)
            .map(PartyId)
            .map_err(D::Error::custom)
    }
}

/// Serde helpers for 32-byte values written as hex.
pub mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    /// Writes 32 bytes as hex.
    pub fn serialize<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    /// Reads 32 bytes from hex.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(text.trim()).map_err(D::Error::custom)?;
        bytes
            .try_into()
            .map_err(|_| D::Error::custom("expected 32 bytes of hex"))
    }
}

/// A validator of the genesis set.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct GenesisValidator {
    /// Its consensus key.
    #[serde(with = "hex_key")]
    pub public_key: PartyId,
    /// Its voting power.
    pub power: u64,
    /// Where it listens (multiaddress or host:port), if known.
    #[serde(default)]
    pub address: String,
}

/// A party registered at genesis: organisations, and any initial patients.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct GenesisParty {
    /// Its identity.
    #[serde(with = "hex_key")]
    pub public_key: PartyId,
    /// Its role.
    pub role: Role,
    /// Its X25519 key.
    #[serde(with = "hex32")]
    pub encryption_key: [u8; 32],
    /// Its organisation.
    #[serde(default)]
    pub organisation: Organisation,
    /// Whether it is a member organisation that votes in governance.
    #[serde(default)]
    pub member: bool,
}

/// The consortium a chain starts with.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Genesis {
    /// The chain's id.
    pub chain_id: ChainId,
    /// Time of the genesis, milliseconds since the epoch.
    pub genesis_time_ms: i64,
    /// Initial consortium parameters.
    #[serde(default)]
    pub parameters: Parameters,
    /// Initial validators.
    pub validators: Vec<GenesisValidator>,
    /// Initial parties.
    pub parties: Vec<GenesisParty>,
}

/// Most validators or parties in a genesis file.
pub const MAX_GENESIS_ITEMS: usize = 1024;

impl Genesis {
    /// Checks the genesis for consistency: validators with power, no duplicate parties, members
    /// that are organisations.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.validators.is_empty() {
            return Err(FieldError::new(
                "validators",
                "at least one validator is required",
            ));
        }
        if self.validators.len() > MAX_GENESIS_ITEMS || self.parties.len() > MAX_GENESIS_ITEMS {
            return Err(FieldError::new(
                "validators",
                "too many validators or parties",
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, v) in self.validators.iter().enumerate() {
            if v.power == 0 {
                return Err(FieldError::new(
                    format!("validators[{i}].power"),
                    "must be positive",
                ));
            }
            if !seen.insert(v.public_key) {
                return Err(FieldError::new(
                    format!("validators[{i}]"),
                    "duplicate validator",
                ));
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, p) in self.parties.iter().enumerate() {
            if !seen.insert(p.public_key) {
                return Err(FieldError::new(format!("parties[{i}]"), "duplicate party"));
            }
            if p.member && p.role == Role::Patient {
                return Err(FieldError::new(
                    format!("parties[{i}].member"),
                    "a patient cannot be a member organisation",
                ));
            }
        }
        Ok(())
    }

    /// The genesis time.
    pub fn time(&self) -> Timestamp {
        Timestamp(self.genesis_time_ms)
    }
}
