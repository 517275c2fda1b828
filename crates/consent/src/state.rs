//! The consent state: a deterministic key-value map with a journal of the current block's
//! changes, and its Merkle state root.

use std::collections::BTreeMap;

use custos_crypto::{Hash, sha256_parts};
use custos_ledger::merkle;
use custos_types::model::Organisation;
use custos_types::{
    AccessMode, Category, Consent, ConsentId, Height, Parameters, PartyId, Purpose, RecordId,
    RequestId, Role, Timestamp,
};
use serde::{Deserialize, Serialize};

/// A registered party.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct PartyState {
    /// Its role.
    pub role: Role,
    /// Its X25519 key.
    pub encryption_key: [u8; 32],
    /// Its organisation.
    pub organisation: Organisation,
    /// Whether it votes in governance.
    pub member: bool,
    /// When it was registered (0 for genesis).
    pub registered: Height,
}

/// A registered record.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RecordState {
    /// The patient who owns it.
    pub owner: PartyId,
    /// The custodian that holds it.
    pub custodian: PartyId,
    /// Its category.
    pub category: Category,
    /// SHA-256 of its ciphertext.
    pub ciphertext_digest: Hash,
    /// Commitment to its attributes.
    pub attribute_commitment: Option<Hash>,
    /// When it was registered.
    pub registered: Height,
    /// When it was erased, if it was.
    pub erased: Option<Height>,
}

/// A consent with its status.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ConsentState {
    /// The consent.
    pub consent: Consent,
    /// Who signed the grant.
    pub granted_by: PartyId,
    /// When.
    pub granted: Height,
    /// When it was revoked, if it was.
    pub revoked: Option<Height>,
}

/// A delegation from a patient.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct DelegateState {
    /// Until when; `None` means until revoked.
    pub expires: Option<Timestamp>,
    /// When it was registered.
    pub registered: Height,
}

/// What the ledger remembers of a decided request.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RequestState {
    /// Who asked.
    pub requester: PartyId,
    /// Which record.
    pub record_id: RecordId,
    /// Why it was asked.
    pub purpose: Purpose,
    /// How.
    pub mode: AccessMode,
    /// Whether it was granted.
    pub granted: bool,
    /// When it was decided.
    pub decided: Height,
    /// Digest of the confirmed release, once confirmed.
    pub released: Option<Hash>,
}

/// The cohort an aggregate decision fixed, kept so that nodes can serve it and the scope's
/// custodian can confirm (or report the refusal of) the release. It costs 32 bytes of state per
/// member, under its own key so that a request's [`RequestState`] stays small to rewrite.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct CohortState {
    /// The custodian of every member.
    pub custodian: PartyId,
    /// Their category.
    pub category: Category,
    /// The members' record ids, ascending; the decision's cohort root is over these.
    pub records: Vec<RecordId>,
}

/// A state key. Its order is the order of the state root's leaves.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug, Serialize, Deserialize)]
pub enum StateKey {
    /// Consortium parameters.
    Params,
    /// A party.
    Party(PartyId),
    /// A party's next nonce.
    Nonce(PartyId),
    /// A record.
    Record(RecordId),
    /// A consent.
    Consent(ConsentId),
    /// Index: a patient's consent.
    PatientConsent(PartyId, ConsentId),
    /// A delegation (patient, delegate).
    Delegate(PartyId, PartyId),
    /// A decided request.
    Request(RequestId),
    /// The current validator set.
    Validators,
    /// A validator change pending for a height: (effective height, validator key).
    ValidatorChange(Height, custos_crypto::PublicKey),
    /// The validator set from a height on (history, to serve and verify old headers).
    ValidatorSetAt(Height),
    /// A circuit's registered verifying key hash.
    VerifyingKey(String),
    /// Index: a custodian's record of a category (custodian, category, record), so that an
    /// aggregate decision scans only the records of its scope.
    CustodianRecord(PartyId, Category, RecordId),
    /// The cohort an aggregate request's decision fixed.
    Cohort(RequestId),
}

/// A state value.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum StateValue {
    /// Consortium parameters.
    Params(Parameters),
    /// A party.
    Party(PartyState),
    /// A nonce.
    Nonce(u64),
    /// A record.
    Record(RecordState),
    /// A consent.
    Consent(ConsentState),
    /// An index marker.
    Marker,
    /// A delegation.
    Delegate(DelegateState),
    /// A request.
    Request(RequestState),
    /// A validator set, sorted by key.
    Validators(Vec<ValidatorEntry>),
    /// A pending change: the new power and address, or `None` for a removal.
    ValidatorChange(Option<(u64, String)>),
    /// A verifying key hash.
    VerifyingKey(Hash),
    /// An aggregate request's cohort.
    Cohort(CohortState),
}

/// A validator as the state records it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ValidatorEntry {
    /// Its consensus key.
    pub key: custos_crypto::PublicKey,
    /// Its voting power.
    pub power: u64,
    /// Its libp2p address.
    pub address: String,
}

/// Why stored state could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt state item: {0}")]
pub struct StateDecodeError(pub String);

/// Version prefix of every encoded state key and value.
const STATE_ENCODING_VERSION: u8 = 1;

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![STATE_ENCODING_VERSION];
    // postcard cannot fail on these plain types; an empty tail would fail decoding loudly.
    out.extend(postcard::to_stdvec(value).unwrap_or_default());
    out
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StateDecodeError> {
    match bytes.split_first() {
        Some((&STATE_ENCODING_VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|e| StateDecodeError(e.to_string()))
        }
        Some((v, _)) => Err(StateDecodeError(format!(
            "unknown state encoding version {v}"
        ))),
        None => Err(StateDecodeError("empty item".into())),
    }
}

impl StateKey {
    /// Versioned, deterministic encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }
    /// Decodes [`StateKey::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateDecodeError> {
        decode(bytes)
    }
}

impl StateValue {
    /// Versioned, deterministic encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        encode(self)
    }
    /// Decodes [`StateValue::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, StateDecodeError> {
        decode(bytes)
    }
}

/// One changed state item: its encoded key and new encoded value (`None`: deleted).
pub type StateChange = (Vec<u8>, Option<Vec<u8>>);

/// The key-value state with a journal of the changes since the last [`Kv::take_changes`].
#[derive(Clone, Debug, Default)]
pub struct Kv {
    map: BTreeMap<StateKey, StateValue>,
    leaves: BTreeMap<StateKey, Hash>,
    // First-touch old values of the keys changed in the current block (for rollback).
    journal: BTreeMap<StateKey, Option<StateValue>>,
}

fn leaf_of(key: &StateKey, value: &StateValue) -> Hash {
    let k = key.to_bytes();
    let v = value.to_bytes();
    let data = sha256_parts(&[&(k.len() as u32).to_be_bytes(), &k, &v]);
    merkle::leaf_hash(data.as_bytes())
}

impl Kv {
    /// Reads a value.
    pub fn get(&self, key: &StateKey) -> Option<&StateValue> {
        self.map.get(key)
    }

    /// Writes a value.
    pub fn put(&mut self, key: StateKey, value: StateValue) {
        let leaf = leaf_of(&key, &value);
        let old = self.map.insert(key.clone(), value);
        self.journal.entry(key.clone()).or_insert(old);
        self.leaves.insert(key, leaf);
    }

    /// Deletes a value.
    pub fn delete(&mut self, key: &StateKey) {
        if let Some(old) = self.map.remove(key) {
            self.journal.entry(key.clone()).or_insert(Some(old));
            self.leaves.remove(key);
        }
    }

    /// Iterates the items from `from` to `to`, both included.
    pub fn range(
        &self,
        from: StateKey,
        to: StateKey,
    ) -> impl Iterator<Item = (&StateKey, &StateValue)> {
        self.map.range(from..=to)
    }

    /// Iterates the items from `from` on, in key order.
    pub fn range_from(&self, from: StateKey) -> impl Iterator<Item = (&StateKey, &StateValue)> {
        self.map.range(from..)
    }

    /// Iterates every item in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&StateKey, &StateValue)> {
        self.map.iter()
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the state is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// RFC 6962 root over the items in key order (leaf: SHA-256 of the framed key and value).
    pub fn root(&self) -> Hash {
        let leaves: Vec<Hash> = self.leaves.values().copied().collect();
        merkle::root_of(&leaves)
    }

    /// The changes since the last call, encoded for storage; clears the journal.
    pub fn take_changes(&mut self) -> Vec<StateChange> {
        let journal = std::mem::take(&mut self.journal);
        journal
            .into_keys()
            .map(|k| {
                let value = self.map.get(&k).map(|v| v.to_bytes());
                (k.to_bytes(), value)
            })
            .collect()
    }

    /// Undoes every change since the last [`Kv::take_changes`].
    pub fn rollback(&mut self) {
        let journal = std::mem::take(&mut self.journal);
        for (key, old) in journal {
            match old {
                Some(value) => {
                    self.leaves.insert(key.clone(), leaf_of(&key, &value));
                    self.map.insert(key, value);
                }
                None => {
                    self.map.remove(&key);
                    self.leaves.remove(&key);
                }
            }
        }
    }

    /// Rebuilds a state from stored items.
    pub fn from_items<'a>(
        items: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Self, StateDecodeError> {
        let mut kv = Kv::default();
        for (k, v) in items {
            let key = StateKey::from_bytes(k)?;
            let value = StateValue::from_bytes(v)?;
            kv.leaves.insert(key.clone(), leaf_of(&key, &value));
            kv.map.insert(key, value);
        }
        Ok(kv)
    }

    /// Every item, encoded (for snapshots and tests).
    pub fn items(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.map
            .iter()
            .map(|(k, v)| (k.to_bytes(), v.to_bytes()))
            .collect()
    }
}
