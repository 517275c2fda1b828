//! Validator sets and commit certificates: more than 2/3 of the voting power signed a header.

use std::collections::BTreeSet;

use custos_crypto::{Hash, PublicKey, Signature, SigningKeyPair, sha256_parts};
use custos_proto::ledger::v1 as pb;

use crate::LedgerError;
use crate::header::BlockHeader;

/// Domain separator and version of the commit message.
pub const COMMIT_DOMAIN: &[u8] = custos_crypto::context::COMMIT;

/// Most validators a set may hold.
pub const MAX_VALIDATORS: usize = 256;

/// A consensus participant.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Validator {
    /// Its consensus key.
    pub key: PublicKey,
    /// Its voting power.
    pub power: u64,
}

/// The validators that sign a height, sorted by key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ValidatorSet {
    validators: Vec<Validator>,
    total: u64,
}

impl ValidatorSet {
    /// A set from validators; refuses an empty set, duplicates, zero power and overflow.
    pub fn new(mut validators: Vec<Validator>) -> Result<Self, LedgerError> {
        if validators.is_empty() || validators.len() > MAX_VALIDATORS {
            return Err(LedgerError::ValidatorSet(format!(
                "expected 1 to {MAX_VALIDATORS} validators, got {}",
                validators.len()
            )));
        }
        validators.sort_by_key(|v| v.key);
        let mut total: u64 = 0;
        for (i, v) in validators.iter().enumerate() {
            if v.power == 0 {
                return Err(LedgerError::ValidatorSet(format!(
                    "validator {} has no power",
                    v.key.short()
                )));
            }
            if i > 0 && validators[i - 1].key == v.key {
                return Err(LedgerError::ValidatorSet(format!(
                    "duplicate validator {}",
                    v.key.short()
                )));
            }
            total = total
                .checked_add(v.power)
                .ok_or_else(|| LedgerError::ValidatorSet("total voting power overflows".into()))?;
        }
        Ok(ValidatorSet { validators, total })
    }

    /// The validators, sorted by key.
    pub fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// Sum of voting power.
    pub fn total_power(&self) -> u64 {
        self.total
    }

    /// A validator's power, if it is in the set.
    pub fn power_of(&self, key: &PublicKey) -> Option<u64> {
        self.validators
            .binary_search_by_key(key, |v| v.key)
            .ok()
            .map(|i| self.validators[i].power)
    }

    /// SHA-256 over `"custos/valset/v1"` and each validator's key and big-endian power.
    pub fn hash(&self) -> Hash {
        let mut parts: Vec<Vec<u8>> = vec![b"custos/valset/v1".to_vec()];
        for v in &self.validators {
            let mut item = v.key.as_bytes().to_vec();
            item.extend_from_slice(&v.power.to_be_bytes());
            parts.push(item);
        }
        let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
        sha256_parts(&refs)
    }

    /// The wire message.
    pub fn to_wire(&self) -> pb::ValidatorSet {
        pb::ValidatorSet {
            validators: self
                .validators
                .iter()
                .map(|v| pb::Validator {
                    public_key: v.key.as_bytes().to_vec(),
                    voting_power: v.power,
                    address: String::new(),
                })
                .collect(),
        }
    }
}

impl TryFrom<&pb::ValidatorSet> for ValidatorSet {
    type Error = LedgerError;
    fn try_from(w: &pb::ValidatorSet) -> Result<Self, LedgerError> {
        let validators = w
            .validators
            .iter()
            .map(|v| {
                Ok(Validator {
                    key: PublicKey::from_slice(&v.public_key)
                        .map_err(|e| LedgerError::ValidatorSet(e.to_string()))?,
                    power: v.voting_power,
                })
            })
            .collect::<Result<Vec<_>, LedgerError>>()?;
        ValidatorSet::new(validators)
    }
}

/// The bytes a validator signs to commit a header.
pub fn commit_message(chain_id: &str, height: u64, round: u32, header_hash: &Hash) -> Vec<u8> {
    let mut out = Vec::with_capacity(COMMIT_DOMAIN.len() + chain_id.len() + 48);
    out.extend_from_slice(COMMIT_DOMAIN);
    out.extend_from_slice(&(chain_id.len() as u32).to_be_bytes());
    out.extend_from_slice(chain_id.as_bytes());
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&round.to_be_bytes());
    out.extend_from_slice(header_hash.as_bytes());
    out
}

/// Signatures from validators over one header's commit message.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CommitCertificate {
    /// Height committed.
    pub height: u64,
    /// Consensus round that committed.
    pub round: u32,
    /// Hash of the committed header.
    pub header_hash: Hash,
    /// The validators' signatures.
    pub signatures: Vec<(PublicKey, Signature)>,
}

impl CommitCertificate {
    /// A certificate signed by `signers` for `header`.
    pub fn sign(header: &BlockHeader, round: u32, signers: &[&SigningKeyPair]) -> Self {
        let hash = header.hash();
        let message = commit_message(&header.chain_id, header.height, round, &hash);
        CommitCertificate {
            height: header.height,
            round,
            header_hash: hash,
            signatures: signers
                .iter()
                .map(|k| (k.public(), k.sign(&message)))
                .collect(),
        }
    }

    /// Checks that validators of `set` holding more than 2/3 of its power signed `header`.
    pub fn verify(&self, header: &BlockHeader, set: &ValidatorSet) -> Result<(), LedgerError> {
        if self.height != header.height {
            return Err(LedgerError::Certificate(format!(
                "certificate is for height {}, header is height {}",
                self.height, header.height
            )));
        }
        let hash = header.hash();
        if self.header_hash != hash {
            return Err(LedgerError::Certificate(format!(
                "certificate signs header {}, header hashes to {}",
                self.header_hash.short(),
                hash.short()
            )));
        }
        if self.signatures.len() > MAX_VALIDATORS {
            return Err(LedgerError::Certificate("too many signatures".into()));
        }
        let message = commit_message(&header.chain_id, header.height, self.round, &hash);
        let mut seen = BTreeSet::new();
        let mut signed: u64 = 0;
        for (key, sig) in &self.signatures {
            let power = set.power_of(key).ok_or_else(|| {
                LedgerError::Certificate(format!("signer {} is not a validator", key.short()))
            })?;
            if !seen.insert(*key) {
                return Err(LedgerError::Certificate(format!(
                    "{} signed twice",
                    key.short()
                )));
            }
            key.verify(&message, sig).map_err(|_| {
                LedgerError::Certificate(format!("signature of {} does not verify", key.short()))
            })?;
            signed = signed.saturating_add(power);
        }
        // More than 2/3: 3·signed > 2·total, computed without overflow.
        if (signed as u128) * 3 <= (set.total_power() as u128) * 2 {
            return Err(LedgerError::Certificate(format!(
                "signers hold {signed} of {} voting power, need more than 2/3",
                set.total_power()
            )));
        }
        Ok(())
    }

    /// The wire message.
    pub fn to_wire(&self) -> pb::CommitCertificate {
        pb::CommitCertificate {
            height: self.height,
            round: self.round,
            header_hash: self.header_hash.0.to_vec(),
            signatures: self
                .signatures
                .iter()
                .map(|(k, s)| pb::CommitSignature {
                    validator: k.as_bytes().to_vec(),
                    signature: s.to_bytes().to_vec(),
                })
                .collect(),
        }
    }
}

impl TryFrom<&pb::CommitCertificate> for CommitCertificate {
    type Error = LedgerError;
    fn try_from(w: &pb::CommitCertificate) -> Result<Self, LedgerError> {
        if w.signatures.len() > MAX_VALIDATORS {
            return Err(LedgerError::Certificate("too many signatures".into()));
        }
        let signatures = w
            .signatures
            .iter()
            .map(|s| {
                let key = PublicKey::from_slice(&s.validator)
                    .map_err(|e| LedgerError::Certificate(format!("signer: {e}")))?;
                let sig = Signature::from_slice(&s.signature)
                    .map_err(|e| LedgerError::Certificate(format!("signature: {e}")))?;
                Ok((key, sig))
            })
            .collect::<Result<_, LedgerError>>()?;
        Ok(CommitCertificate {
            height: w.height,
            round: w.round,
            header_hash: Hash::from_slice(&w.header_hash).map_err(|e| LedgerError::Field {
                field: "certificate.header_hash",
                reason: e.to_string(),
            })?,
            signatures,
        })
    }
}
