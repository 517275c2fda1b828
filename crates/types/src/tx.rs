//! Transaction bodies and signed transactions.
//!
//! The author signs `custos/transaction/v2 ‖ body bytes` exactly as transmitted
//! (`docs/spec/transactions.md`). The body names its author, so the transaction id,
//! `SHA-256("custos/tx-id/v2" ‖ body bytes)`, is the author's alone: two authors can never produce
//! one transaction, request or consent id. [`SignedTransaction::from_wire`] checks sizes and
//! signatures before it decodes anything, and keeps the original bytes: nothing is ever
//! re-encoded to check a signature.

use std::collections::BTreeSet;

use custos_crypto::context::{TRANSACTION, TX_ID};
use custos_crypto::{Hash, PublicKey, Signature, SigningKeyPair, sha256_parts};
use custos_proto::access::v1 as access_pb;
use custos_proto::consent::v1 as consent_pb;
use custos_proto::ledger::v1 as pb;
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::aggregate::{AggregateScope, MAX_AGGREGATE_SCOPE_BYTES};
use crate::decision::DecisionReason;
use crate::error::{FieldError, Within, required};
use crate::ids::{
    Category, ChainId, ConsentId, Height, Nonce, PartyId, RecordId, RequestId, Timestamp, TxId,
};
use crate::model::{AccessMode, Consent, Organisation, Parameters, Role};
use crate::purpose::Purpose;
use crate::{ENCODING_VERSION, MAX_TX_BYTES};

/// Most co-signatures one transaction may carry.
pub const MAX_COSIGNATURES: usize = 64;
/// Largest predicate or query a request may carry.
pub const MAX_QUERY_BYTES: usize = 4096;

/// Registers a party (see `custos.consent.v1.RegisterParty`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RegisterParty {
    /// The party's identity; must be the author.
    pub party: PartyId,
    /// Its role.
    pub role: Role,
    /// X25519 public key data keys are wrapped to.
    pub encryption_key: [u8; 32],
    /// Its organisation (empty for patients).
    pub organisation: Organisation,
}

/// Registers an off-chain record (see `custos.consent.v1.RegisterRecord`).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RegisterRecord {
    /// The record's id.
    pub record_id: RecordId,
    /// The patient who owns it.
    pub owner: PartyId,
    /// Its category.
    pub category: Category,
    /// SHA-256 of the ciphertext.
    pub ciphertext_digest: Hash,
    /// Commitment to its numeric attributes, if any.
    pub attribute_commitment: Option<Hash>,
}

/// Lets a delegate act for the patient (or stops it).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RegisterDelegate {
    /// Who may act for the author.
    pub delegate: PartyId,
    /// Until when; `None` means until revoked.
    pub expires: Option<Timestamp>,
    /// Removes the delegation instead.
    pub revoke: bool,
}

/// Asks for access to one record.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct RequestAccess {
    /// Which record.
    pub record_id: RecordId,
    /// Why.
    pub purpose: Purpose,
    /// How.
    pub mode: AccessMode,
    /// SHA-256 of the break-glass justification, if any.
    pub justification_digest: Option<Hash>,
    /// Predicate or aggregate query, serialized.
    pub query: Vec<u8>,
}

impl RequestAccess {
    /// An aggregate request over `scope` for `purpose`: mode aggregate, the scope's cohort id as
    /// the record id, the serialized scope as the query.
    pub fn aggregate(scope: &AggregateScope, purpose: Purpose) -> Self {
        RequestAccess {
            record_id: scope.cohort_id(),
            purpose,
            mode: AccessMode::Aggregate,
            justification_digest: None,
            query: scope.to_query(),
        }
    }

    /// The validated scope of an aggregate request (`None` for other modes): the query must
    /// decode as an `AggregateScope` and the record id must be its cohort id. Fields are named
    /// relative to the request (`query.text`, `record_id`).
    pub fn aggregate_scope(&self) -> Result<Option<AggregateScope>, FieldError> {
        if self.mode != AccessMode::Aggregate {
            return Ok(None);
        }
        let scope = AggregateScope::from_query(&self.query).within("query")?;
        scope.check_record_id(&self.record_id)?;
        Ok(Some(scope))
    }
}

/// Confirms a release.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ConfirmRelease {
    /// The granted request.
    pub request_id: RequestId,
    /// SHA-256 of what was released.
    pub release_digest: Hash,
}

/// Records a release the custodian's vault refused on its own checks.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ReportRefusal {
    /// The request the refused fetch named.
    pub request_id: RequestId,
    /// Who signed the refused fetch.
    pub requester: PartyId,
    /// Why; one of the vault reasons ([`DecisionReason::is_vault_refusal`]).
    pub reason: DecisionReason,
    /// SHA-256 of the refused signed fetch.
    pub evidence_digest: Hash,
}

/// Erases a record.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct EraseRecord {
    /// Which record.
    pub record_id: RecordId,
    /// Set when the custodian erases on legal grounds.
    pub legal_grounds: bool,
}

/// Largest circuit name length.
pub const MAX_CIRCUIT_NAME: usize = 64;

/// A consortium change.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Governance {
    /// Replaces the consortium parameters.
    SetParameters(Parameters),
    /// Adds a validator (or changes its power) from a height on.
    AddValidator {
        /// Its consensus key.
        key: PublicKey,
        /// Its voting power (positive).
        power: u64,
        /// Its libp2p address.
        address: String,
        /// First height it signs.
        effective_height: Height,
    },
    /// Removes a validator from a height on.
    RemoveValidator {
        /// Its consensus key.
        key: PublicKey,
        /// First height it no longer signs.
        effective_height: Height,
    },
    /// Adds an organisation to, or removes it from, the governance members.
    SetMember {
        /// The organisation's party.
        party: PartyId,
        /// Member or not.
        member: bool,
    },
    /// Registers (`Some`) or revokes (`None`) a circuit's verifying key hash.
    RegisterVerifyingKey {
        /// Circuit name (`[a-z0-9-]`, 1 to 64).
        circuit: String,
        /// SHA-256 of the verifying key artifact.
        key_hash: Option<Hash>,
    },
}

/// What a transaction does.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum TxKind {
    /// Registers a party.
    RegisterParty(RegisterParty),
    /// Registers a record.
    RegisterRecord(RegisterRecord),
    /// Grants a consent.
    GrantConsent(Consent),
    /// Revokes a consent.
    RevokeConsent(ConsentId),
    /// Adds or removes a delegate.
    RegisterDelegate(RegisterDelegate),
    /// Requests access.
    RequestAccess(RequestAccess),
    /// Confirms a release.
    ConfirmRelease(ConfirmRelease),
    /// Erases a record.
    EraseRecord(EraseRecord),
    /// Changes the consortium.
    Governance(Governance),
    /// Records a refusal by a custodian's vault.
    ReportRefusal(ReportRefusal),
}

impl TxKind {
    /// Short lowercase name.
    pub fn name(&self) -> &'static str {
        match self {
            TxKind::RegisterParty(_) => "register_party",
            TxKind::RegisterRecord(_) => "register_record",
            TxKind::GrantConsent(_) => "grant_consent",
            TxKind::RevokeConsent(_) => "revoke_consent",
            TxKind::RegisterDelegate(_) => "register_delegate",
            TxKind::RequestAccess(_) => "request_access",
            TxKind::ConfirmRelease(_) => "confirm_release",
            TxKind::EraseRecord(_) => "erase_record",
            TxKind::Governance(_) => "governance",
            TxKind::ReportRefusal(_) => "report_refusal",
        }
    }
}

/// What an author signs (besides its own key, which the wire body names in `author` and
/// [`SignedTransaction::sign`] fills in).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct TransactionBody {
    /// The chain the transaction is for.
    pub chain_id: ChainId,
    /// The author's nonce.
    pub nonce: Nonce,
    /// What it does.
    pub kind: TxKind,
}

fn key32(bytes: &[u8], field: &str) -> Result<[u8; 32], FieldError> {
    bytes
        .try_into()
        .map_err(|_| FieldError::new(field, format!("expected 32 bytes, got {}", bytes.len())))
}

fn digest(bytes: &[u8], field: &str) -> Result<Hash, FieldError> {
    Hash::from_slice(bytes).map_err(|e| FieldError::new(field, e.to_string()))
}

fn optional_digest(bytes: &[u8], field: &str) -> Result<Option<Hash>, FieldError> {
    if bytes.is_empty() {
        Ok(None)
    } else {
        digest(bytes, field).map(Some)
    }
}

impl TryFrom<pb::TransactionBody> for TransactionBody {
    type Error = FieldError;
    fn try_from(wire: pb::TransactionBody) -> Result<Self, FieldError> {
        use pb::transaction_body::Kind;
        if wire.version != ENCODING_VERSION {
            return Err(FieldError::new(
                "version",
                format!("expected version {ENCODING_VERSION}, got {}", wire.version),
            ));
        }
        let chain_id = ChainId::parse(&wire.chain_id)?;
        let kind = match required(wire.kind, "kind")? {
            Kind::RegisterParty(p) => (|| {
                Ok(TxKind::RegisterParty(RegisterParty {
                    party: PartyId::from_field(&p.party, "party")?,
                    role: Role::from_wire(p.role, "role")?,
                    encryption_key: key32(&p.encryption_key, "encryption_key")?,
                    organisation: Organisation::parse(&p.organisation, "organisation")?,
                }))
            })()
            .within("register_party")?,
            Kind::RegisterRecord(r) => (|| {
                Ok(TxKind::RegisterRecord(RegisterRecord {
                    record_id: RecordId::from_field(&r.record_id, "record_id")?,
                    owner: PartyId::from_field(&r.owner, "owner")?,
                    category: Category::parse(&r.category, "category")?,
                    ciphertext_digest: digest(&r.ciphertext_digest, "ciphertext_digest")?,
                    attribute_commitment: optional_digest(
                        &r.attribute_commitment,
                        "attribute_commitment",
                    )?,
                }))
            })()
            .within("register_record")?,
            Kind::GrantConsent(g) => {
                let consent = required(g.consent, "consent").within("grant_consent")?;
                TxKind::GrantConsent(Consent::try_from(consent).within("grant_consent.consent")?)
            }
            Kind::RevokeConsent(r) => TxKind::RevokeConsent(
                ConsentId::from_field(&r.consent_id, "consent_id").within("revoke_consent")?,
            ),
            Kind::RegisterDelegate(d) => (|| {
                Ok(TxKind::RegisterDelegate(RegisterDelegate {
                    delegate: PartyId::from_field(&d.delegate, "delegate")?,
                    expires: Timestamp::optional(d.expires_ms, "expires_ms")?,
                    revoke: d.revoke,
                }))
            })()
            .within("register_delegate")?,
            Kind::RequestAccess(r) => (|| {
                // An aggregate scope is the query text plus its custodian and category.
                let bound = if r.mode == AccessMode::Aggregate.to_wire() {
                    MAX_AGGREGATE_SCOPE_BYTES
                } else {
                    MAX_QUERY_BYTES
                };
                if r.query.len() > bound {
                    return Err(FieldError::new(
                        "query",
                        format!("at most {bound} bytes, got {}", r.query.len()),
                    ));
                }
                let request = RequestAccess {
                    record_id: RecordId::from_field(&r.record_id, "record_id")?,
                    purpose: Purpose::parse(&r.purpose)
                        .map_err(|e| FieldError::new("purpose", e.to_string()))?,
                    mode: AccessMode::from_wire(r.mode, "mode")?,
                    justification_digest: optional_digest(
                        &r.justification_digest,
                        "justification_digest",
                    )?,
                    query: r.query,
                };
                request.aggregate_scope()?;
                Ok(TxKind::RequestAccess(request))
            })()
            .within("request_access")?,
            Kind::ConfirmRelease(c) => (|| {
                Ok(TxKind::ConfirmRelease(ConfirmRelease {
                    request_id: RequestId::from_field(&c.request_id, "request_id")?,
                    release_digest: digest(&c.release_digest, "release_digest")?,
                }))
            })()
            .within("confirm_release")?,
            Kind::EraseRecord(e) => TxKind::EraseRecord(EraseRecord {
                record_id: RecordId::from_field(&e.record_id, "record_id")
                    .within("erase_record")?,
                legal_grounds: e.legal_grounds,
            }),
            Kind::ReportRefusal(r) => (|| {
                let reason = DecisionReason::from_wire(r.reason, "reason")?;
                if !reason.is_vault_refusal() {
                    return Err(FieldError::new(
                        "reason",
                        format!("expected a vault reason (vault_*), got {reason}"),
                    ));
                }
                Ok(TxKind::ReportRefusal(ReportRefusal {
                    request_id: RequestId::from_field(&r.request_id, "request_id")?,
                    requester: PartyId::from_field(&r.requester, "requester")?,
                    reason,
                    evidence_digest: digest(&r.evidence_digest, "evidence_digest")?,
                }))
            })()
            .within("report_refusal")?,
            Kind::Governance(g) => {
                let action = required(g.action, "action").within("governance")?;
                TxKind::Governance(governance_from_wire(action).within("governance")?)
            }
        };
        Ok(TransactionBody {
            chain_id,
            nonce: Nonce(wire.nonce),
            kind,
        })
    }
}

fn governance_from_wire(action: pb::governance::Action) -> Result<Governance, FieldError> {
    use pb::governance::Action;
    Ok(match action {
        Action::SetParameters(s) => {
            let params = required(s.parameters, "parameters").within("set_parameters")?;
            Governance::SetParameters(
                Parameters::try_from(params).within("set_parameters.parameters")?,
            )
        }
        Action::AddValidator(a) => (|| {
            if a.power == 0 {
                return Err(FieldError::new(
                    "power",
                    "a validator needs positive voting power",
                ));
            }
            if a.address.len() > 256 {
                return Err(FieldError::new("address", "at most 256 characters"));
            }
            Ok(Governance::AddValidator {
                key: PartyId::from_field(&a.public_key, "public_key")?.0,
                power: a.power,
                address: a.address,
                effective_height: Height(a.effective_height),
            })
        })()
        .within("add_validator")?,
        Action::RemoveValidator(r) => Governance::RemoveValidator {
            key: PartyId::from_field(&r.public_key, "public_key")
                .within("remove_validator")?
                .0,
            effective_height: Height(r.effective_height),
        },
        Action::SetMember(m) => Governance::SetMember {
            party: PartyId::from_field(&m.party, "party").within("set_member")?,
            member: m.member,
        },
        Action::RegisterVerifyingKey(r) => (|| {
            let ok = !r.circuit.is_empty()
                && r.circuit.len() <= MAX_CIRCUIT_NAME
                && r.circuit
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(FieldError::new(
                    "circuit",
                    "expected 1 to 64 characters of [a-z0-9-]",
                ));
            }
            Ok(Governance::RegisterVerifyingKey {
                circuit: r.circuit,
                key_hash: optional_digest(&r.key_hash, "key_hash")?,
            })
        })()
        .within("register_verifying_key")?,
    })
}

fn governance_to_wire(g: &Governance) -> pb::Governance {
    use pb::governance::Action;
    let action = match g {
        Governance::SetParameters(p) => Action::SetParameters(pb::SetParameters {
            parameters: Some(p.into()),
        }),
        Governance::AddValidator {
            key,
            power,
            address,
            effective_height,
        } => Action::AddValidator(pb::AddValidator {
            public_key: key.as_bytes().to_vec(),
            power: *power,
            address: address.clone(),
            effective_height: effective_height.0,
        }),
        Governance::RemoveValidator {
            key,
            effective_height,
        } => Action::RemoveValidator(pb::RemoveValidator {
            public_key: key.as_bytes().to_vec(),
            effective_height: effective_height.0,
        }),
        Governance::SetMember { party, member } => Action::SetMember(pb::SetMember {
            party: party.to_vec(),
            member: *member,
        }),
        Governance::RegisterVerifyingKey { circuit, key_hash } => {
            Action::RegisterVerifyingKey(pb::RegisterVerifyingKey {
                circuit: circuit.clone(),
                key_hash: key_hash.map_or(vec![], |h| h.0.to_vec()),
            })
        }
    };
    pb::Governance {
        action: Some(action),
    }
}

impl TransactionBody {
    /// The wire body as `author` signs it.
    pub fn to_wire(&self, author: &PartyId) -> pb::TransactionBody {
        use pb::transaction_body::Kind;
        let body = self;
        let kind = match &body.kind {
            TxKind::RegisterParty(p) => Kind::RegisterParty(consent_pb::RegisterParty {
                party: p.party.to_vec(),
                role: p.role.to_wire(),
                encryption_key: p.encryption_key.to_vec(),
                organisation: p.organisation.as_str().to_string(),
            }),
            TxKind::RegisterRecord(r) => Kind::RegisterRecord(consent_pb::RegisterRecord {
                record_id: r.record_id.to_vec(),
                owner: r.owner.to_vec(),
                category: r.category.as_str().to_string(),
                ciphertext_digest: r.ciphertext_digest.0.to_vec(),
                attribute_commitment: r.attribute_commitment.map_or(vec![], |h| h.0.to_vec()),
            }),
            TxKind::GrantConsent(c) => Kind::GrantConsent(consent_pb::GrantConsent {
                consent: Some(c.into()),
            }),
            TxKind::RevokeConsent(id) => Kind::RevokeConsent(consent_pb::RevokeConsent {
                consent_id: id.to_vec(),
            }),
            TxKind::RegisterDelegate(d) => Kind::RegisterDelegate(consent_pb::RegisterDelegate {
                delegate: d.delegate.to_vec(),
                expires_ms: d.expires.map_or(0, |t| t.0),
                revoke: d.revoke,
            }),
            TxKind::RequestAccess(r) => Kind::RequestAccess(access_pb::RequestAccess {
                record_id: r.record_id.to_vec(),
                purpose: r.purpose.code().to_string(),
                mode: r.mode.to_wire(),
                justification_digest: r.justification_digest.map_or(vec![], |h| h.0.to_vec()),
                query: r.query.clone(),
            }),
            TxKind::ConfirmRelease(c) => Kind::ConfirmRelease(access_pb::ConfirmRelease {
                request_id: c.request_id.to_vec(),
                release_digest: c.release_digest.0.to_vec(),
            }),
            TxKind::EraseRecord(e) => Kind::EraseRecord(consent_pb::EraseRecord {
                record_id: e.record_id.to_vec(),
                legal_grounds: e.legal_grounds,
            }),
            TxKind::Governance(g) => Kind::Governance(governance_to_wire(g)),
            TxKind::ReportRefusal(r) => Kind::ReportRefusal(access_pb::ReportRefusal {
                request_id: r.request_id.to_vec(),
                requester: r.requester.to_vec(),
                reason: r.reason.to_wire(),
                evidence_digest: r.evidence_digest.0.to_vec(),
            }),
        };
        pb::TransactionBody {
            version: ENCODING_VERSION,
            chain_id: body.chain_id.as_str().to_string(),
            nonce: body.nonce.0,
            author: author.to_vec(),
            kind: Some(kind),
        }
    }
}

/// A transaction whose author signature (and co-signatures) verified over its exact body bytes.
#[derive(Clone, Debug)]
pub struct SignedTransaction {
    id: TxId,
    body: TransactionBody,
    body_bytes: Vec<u8>,
    author: PartyId,
    signature: Signature,
    cosignatures: Vec<(PartyId, Signature)>,
}

impl PartialEq for SignedTransaction {
    fn eq(&self, other: &Self) -> bool {
        self.body_bytes == other.body_bytes
            && self.author == other.author
            && self.signature == other.signature
            && self.cosignatures == other.cosignatures
    }
}
impl Eq for SignedTransaction {}

impl SignedTransaction {
    /// Checks a wire transaction: size, author key, signature over the exact body bytes,
    /// co-signatures, and only then the body's fields.
    pub fn from_wire(wire: pb::SignedTransaction) -> Result<Self, FieldError> {
        if wire.body.len() > MAX_TX_BYTES {
            return Err(FieldError::new(
                "body",
                format!("at most {MAX_TX_BYTES} bytes, got {}", wire.body.len()),
            ));
        }
        if wire.body.is_empty() {
            return Err(FieldError::new("body", "empty transaction body"));
        }
        let author = PartyId::from_field(&wire.author, "author")?;
        let signature = Signature::from_slice(&wire.signature)
            .map_err(|e| FieldError::new("signature", e.to_string()))?;
        author
            .0
            .verify_in(TRANSACTION, &wire.body, &signature)
            .map_err(|_| {
                FieldError::new(
                    "signature",
                    format!(
                        "does not verify over custos/transaction/v2 ‖ body for author {}",
                        author.short()
                    ),
                )
            })?;
        if wire.cosignatures.len() > MAX_COSIGNATURES {
            return Err(FieldError::new(
                "cosignatures",
                format!(
                    "at most {MAX_COSIGNATURES}, got {}",
                    wire.cosignatures.len()
                ),
            ));
        }
        let mut seen = BTreeSet::from([author]);
        let mut cosignatures = Vec::with_capacity(wire.cosignatures.len());
        for (i, co) in wire.cosignatures.iter().enumerate() {
            let field = format!("cosignatures[{i}]");
            let signer = PartyId::from_field(&co.signer, &format!("{field}.signer"))?;
            let sig = Signature::from_slice(&co.signature)
                .map_err(|e| FieldError::new(format!("{field}.signature"), e.to_string()))?;
            signer
                .0
                .verify_in(TRANSACTION, &wire.body, &sig)
                .map_err(|_| {
                    FieldError::new(
                        format!("{field}.signature"),
                        format!("does not verify over body for signer {}", signer.short()),
                    )
                })?;
            if !seen.insert(signer) {
                return Err(FieldError::new(
                    format!("{field}.signer"),
                    format!("{} signed more than once", signer.short()),
                ));
            }
            cosignatures.push((signer, sig));
        }
        let decoded = pb::TransactionBody::decode(wire.body.as_slice())
            .map_err(|e| FieldError::new("body", format!("not a TransactionBody: {e}")))?;
        if decoded.version == ENCODING_VERSION && decoded.author != wire.author {
            let named = PartyId::from_field(&decoded.author, "body.author")?;
            return Err(FieldError::new(
                "body.author",
                format!(
                    "the body names author {} but is signed by {}",
                    named.short(),
                    author.short()
                ),
            ));
        }
        let body = TransactionBody::try_from(decoded).within("body")?;
        Ok(SignedTransaction {
            id: tx_id(&wire.body),
            body,
            body_bytes: wire.body,
            author,
            signature,
            cosignatures,
        })
    }

    /// Decodes and checks serialized `custos.ledger.v1.SignedTransaction` bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FieldError> {
        if bytes.len() > MAX_TX_BYTES + 8 * 1024 {
            return Err(FieldError::new("transaction", "transaction too large"));
        }
        let wire = pb::SignedTransaction::decode(bytes)
            .map_err(|e| FieldError::new("transaction", format!("not a SignedTransaction: {e}")))?;
        Self::from_wire(wire)
    }

    /// Serializes `body` and signs it with `key`.
    pub fn sign(body: &TransactionBody, key: &SigningKeyPair) -> Self {
        let author = PartyId(key.public());
        let body_bytes = body.to_wire(&author).encode_to_vec();
        let signature = key.sign_in(TRANSACTION, &body_bytes);
        SignedTransaction {
            id: tx_id(&body_bytes),
            body: body.clone(),
            body_bytes,
            author,
            signature,
            cosignatures: Vec::new(),
        }
    }

    /// Adds `key`'s co-signature over the same body bytes (governance).
    pub fn cosign(&mut self, key: &SigningKeyPair) {
        let signer = PartyId(key.public());
        if signer != self.author && !self.cosignatures.iter().any(|(s, _)| *s == signer) {
            self.cosignatures
                .push((signer, key.sign_in(TRANSACTION, &self.body_bytes)));
        }
    }

    /// The wire message, with the body bytes exactly as signed.
    pub fn to_wire(&self) -> pb::SignedTransaction {
        pb::SignedTransaction {
            body: self.body_bytes.clone(),
            author: self.author.to_vec(),
            signature: self.signature.to_bytes().to_vec(),
            cosignatures: self
                .cosignatures
                .iter()
                .map(|(s, sig)| pb::CoSignature {
                    signer: s.to_vec(),
                    signature: sig.to_bytes().to_vec(),
                })
                .collect(),
        }
    }

    /// The transaction id: `SHA-256("custos/tx-id/v2" ‖ body bytes)`.
    pub fn id(&self) -> TxId {
        self.id
    }

    /// The decoded body.
    pub fn body(&self) -> &TransactionBody {
        &self.body
    }

    /// The body bytes exactly as signed.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body_bytes
    }

    /// The author.
    pub fn author(&self) -> PartyId {
        self.author
    }

    /// Everyone whose signature over the body verified: the author and the co-signers.
    pub fn signers(&self) -> BTreeSet<PartyId> {
        std::iter::once(self.author)
            .chain(self.cosignatures.iter().map(|(s, _)| *s))
            .collect()
    }

    /// The author's public key.
    pub fn author_key(&self) -> PublicKey {
        self.author.0
    }
}

/// The id of the transaction whose signed body bytes are `body`: `SHA-256("custos/tx-id/v2" ‖
/// body)`. The body names its author, so the id is the author's alone.
pub fn tx_id(body: &[u8]) -> TxId {
    TxId(sha256_parts(&[TX_ID, body]))
}
