//! Predicate proofs at the vault: the attribute commitment registered with a record at put, and
//! the Groth16 proof for a granted predicate-mode request ([`custos_circuits`]).
//!
//! A record carries a commitment only when it has every attribute of the circuit's schema
//! (`age`, `smoker`, `bmi_x10`, …; [`crate::attributes`] checks their values at put); the salt is
//! kept with the
//! record's encrypted metadata and destroyed with it on erasure. Absent attributes are never
//! filled in: a proof about a value the hospital did not record would be a lie.

use std::path::Path;

use custos_circuits::{
    AttributeCommitment, Attributes, Commitment, KeyId, Predicate, PredicatePrivate,
    PredicateProof, PredicatePublic, ProvingKeyArtifact, RequestBinding, Salt, Schema,
};
use custos_types::{PartyId, RequestId, TransactionBody, TxKind};
use custos_vault::record::{AttributeValue, Attributes as RecordAttributes};
use prost::Message;
use rand_core::{CryptoRng, RngCore};

/// The circuit name governance registers the verifying key under.
pub const CIRCUIT: &str = "predicate-8x8";

/// The circuit's attributes of a record, if it carries all of them as 32-bit numbers.
pub fn circuit_attributes(attributes: &RecordAttributes) -> Option<Attributes> {
    let schema = Schema::default();
    let mut values = [0u32; custos_circuits::N_ATTRS];
    for (i, name) in schema.names().iter().enumerate() {
        let value = attributes
            .iter()
            .find(|(n, _)| n.as_str() == name.as_str())
            .map(|(_, v)| v)?;
        let AttributeValue::Numeric(n) = value else {
            return None;
        };
        values[i] = u32::try_from(*n).ok()?;
    }
    Some(Attributes::new(values))
}

/// A fresh salt and the commitment to a record's attributes, if it carries all of them.
pub fn commit<R: RngCore + CryptoRng>(
    attributes: &RecordAttributes,
    rng: &mut R,
) -> Option<([u8; 32], Commitment)> {
    let values = circuit_attributes(attributes)?;
    let salt = Salt::random(rng);
    let commitment = AttributeCommitment::commit(&values, &salt);
    Some((salt.to_bytes(), commitment))
}

/// Loads the proving key artifact at `path` (its header and hash are checked on load).
pub fn load_proving_key(path: &Path) -> Result<ProvingKeyArtifact, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    ProvingKeyArtifact::load(&bytes, &KeyId::of(&bytes))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Why a proof cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The request body's transaction id is not the request id, or is not a predicate request for
    /// this record.
    #[error("body.query.request_body: {0}")]
    Body(String),
    /// The record has no commitment (it lacks some attribute) or its salt is gone.
    #[error("no_commitment: record {0} carries no attribute commitment")]
    NoCommitment(String),
    /// The committed attributes do not satisfy the predicate: there is no proof to give.
    #[error("predicate_false: the record's attributes do not satisfy `{0}`")]
    False(String),
    /// The circuit failed.
    #[error("proof: {0}")]
    Circuit(String),
}

/// The predicate of a predicate-mode request, from its signed body bytes, checked against the
/// request id and the decided record.
pub fn predicate_of(
    request: RequestId,
    body: &[u8],
    record: custos_types::RecordId,
) -> Result<Predicate, ProveError> {
    if body.len() > custos_types::MAX_TX_BYTES {
        return Err(ProveError::Body(format!(
            "at most {} bytes, got {}",
            custos_types::MAX_TX_BYTES,
            body.len()
        )));
    }
    if custos_types::tx::tx_id(body).0 != request.0 {
        return Err(ProveError::Body(format!(
            "its transaction id (SHA-256 of custos/tx-id/v2 ‖ body) is not request {}",
            request.short()
        )));
    }
    let wire = custos_proto::ledger::v1::TransactionBody::decode(body)
        .map_err(|e| ProveError::Body(format!("not a TransactionBody: {e}")))?;
    let body = TransactionBody::try_from(wire).map_err(|e| ProveError::Body(e.to_string()))?;
    let TxKind::RequestAccess(asked) = body.kind else {
        return Err(ProveError::Body(format!(
            "expected request_access, got {}",
            body.kind.name()
        )));
    };
    if asked.record_id != record {
        return Err(ProveError::Body("names another record".into()));
    }
    Predicate::from_canonical_bytes(&asked.query)
        .map_err(|e| ProveError::Body(format!("query: {e}")))
}

/// Proves that the record's committed attributes satisfy `predicate`, bound to the request and
/// the requester.
pub fn prove<R: RngCore + CryptoRng>(
    pk: &ProvingKeyArtifact,
    attributes: &RecordAttributes,
    salt: &[u8; 32],
    predicate: Predicate,
    request: RequestId,
    requester: PartyId,
    rng: &mut R,
) -> Result<(PredicateProof, PredicatePublic), ProveError> {
    let values = circuit_attributes(attributes)
        .ok_or_else(|| ProveError::NoCommitment("(attributes incomplete)".into()))?;
    let salt = Salt::from_bytes(salt).map_err(|e| ProveError::Circuit(e.to_string()))?;
    if !predicate.evaluate(&values) {
        return Err(ProveError::False(predicate.to_string()));
    }
    let public = PredicatePublic {
        commitment: AttributeCommitment::commit(&values, &salt),
        predicate,
        binding: RequestBinding {
            request_id: request.0.0,
            partner_key: *requester.0.as_bytes(),
        },
    };
    let private = PredicatePrivate {
        attributes: values,
        salt,
    };
    let proof = PredicateProof::prove(pk, &public, &private, rng)
        .map_err(|e| ProveError::Circuit(e.to_string()))?;
    Ok((proof, public))
}

/// What a partner checks of a vault's answer before believing it.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// The answer is for another request, record commitment or predicate than asked.
    #[error("{field}: {reason}")]
    Mismatch {
        /// Which field of the answer.
        field: &'static str,
        /// What was expected and what came.
        reason: String,
    },
    /// The proof bytes are malformed or the proof does not verify.
    #[error("proof: {0}")]
    Proof(String),
}

/// A proof [`verify_answer`] verified, with the public inputs it verified under (built from the
/// request, the partner, the predicate and the registered commitment, never from the answer).
#[derive(Clone, Debug)]
pub struct VerifiedProof {
    /// The Groth16 proof.
    pub proof: PredicateProof,
    /// Its public inputs.
    pub public: PredicatePublic,
}

/// Checks a vault's predicate proof as the partner `partner` who made `request` asking
/// `predicate`: against the record's commitment as registered on the ledger and under the
/// verifying key governance registered (`vk`, loaded against the registered id). Only what this
/// function verified is true; the answer's own fields are checked, never trusted.
pub fn verify_answer(
    answer: &custos_proto::access::v1::PredicateProofResponse,
    request: RequestId,
    partner: PartyId,
    predicate: &Predicate,
    registered_commitment: &[u8],
    vk: &custos_circuits::VerifyingKeyArtifact,
) -> Result<VerifiedProof, AnswerError> {
    let mismatch = |field, reason: String| AnswerError::Mismatch { field, reason };
    if answer.request_id != request.to_vec() {
        return Err(mismatch("request_id", "another request's answer".into()));
    }
    let commitment: [u8; 32] = registered_commitment.try_into().map_err(|_| {
        mismatch(
            "commitment",
            "the ledger holds no attribute commitment for the record".into(),
        )
    })?;
    if answer.commitment != commitment {
        return Err(mismatch(
            "commitment",
            "not the commitment registered on the ledger".into(),
        ));
    }
    if answer.predicate != predicate.to_canonical_bytes() {
        return Err(mismatch("predicate", "not the predicate asked".into()));
    }
    let public = PredicatePublic {
        commitment: Commitment::from_bytes(&commitment)
            .map_err(|e| mismatch("commitment", e.to_string()))?,
        predicate: predicate.clone(),
        binding: RequestBinding {
            request_id: request.0.0,
            partner_key: *partner.0.as_bytes(),
        },
    };
    let proof =
        PredicateProof::from_bytes(&answer.proof).map_err(|e| AnswerError::Proof(e.to_string()))?;
    proof
        .verify(vk, &public)
        .map_err(|e| AnswerError::Proof(e.to_string()))?;
    Ok(VerifiedProof { proof, public })
}
