//! Log entries: the leaves of the verifiable log.

use custos_crypto::Hash;
use custos_proto::ledger::v1 as pb;
use prost::Message;

use crate::ENCODING_VERSION;
use crate::decision::Decision;
use crate::error::{FieldError, Within, required};
use crate::ids::Height;
use crate::tx::SignedTransaction;

/// Largest serialized entry accepted when decoding.
pub const MAX_ENTRY_BYTES: usize = 128 * 1024;

/// What a log entry holds.
// Entries are built once per transaction and serialized at once; boxing buys nothing here.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum EntryKind {
    /// A transaction as its author signed it.
    Transaction(SignedTransaction),
    /// A decision the state machine computed.
    Decision(Decision),
}

/// One leaf of the log: leaf hash = SHA-256(0x00 ‖ [`LedgerEntry::to_bytes`]).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LedgerEntry {
    /// Height of the block holding the entry.
    pub height: Height,
    /// The entry.
    pub kind: EntryKind,
}

impl LedgerEntry {
    /// The serialized `custos.ledger.v1.LedgerEntry` that is hashed into the log.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_wire().encode_to_vec()
    }

    /// The wire message.
    pub fn to_wire(&self) -> pb::LedgerEntry {
        let kind = match &self.kind {
            EntryKind::Transaction(tx) => pb::ledger_entry::Kind::Transaction(tx.to_wire()),
            EntryKind::Decision(d) => pb::ledger_entry::Kind::Decision(d.into()),
        };
        pb::LedgerEntry {
            version: ENCODING_VERSION,
            height: self.height.0,
            kind: Some(kind),
        }
    }

    /// Decodes and validates serialized entry bytes (transaction signatures included).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FieldError> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(FieldError::new(
                "entry",
                format!("entry of {} bytes is too large", bytes.len()),
            ));
        }
        let wire = pb::LedgerEntry::decode(bytes)
            .map_err(|e| FieldError::new("entry", format!("not a LedgerEntry: {e}")))?;
        if wire.version != ENCODING_VERSION {
            return Err(FieldError::new(
                "entry.version",
                format!("expected {ENCODING_VERSION}, got {}", wire.version),
            ));
        }
        let kind = match required(wire.kind, "entry.kind")? {
            pb::ledger_entry::Kind::Transaction(tx) => EntryKind::Transaction(
                SignedTransaction::from_wire(tx).within("entry.transaction")?,
            ),
            pb::ledger_entry::Kind::Decision(d) => {
                EntryKind::Decision(Decision::try_from(d).within("entry.decision")?)
            }
        };
        Ok(LedgerEntry {
            height: Height(wire.height),
            kind,
        })
    }

    /// The RFC 6962 leaf hash of this entry's bytes.
    pub fn leaf_hash_of(bytes: &[u8]) -> Hash {
        custos_crypto::sha256_parts(&[&[0u8], bytes])
    }
}
