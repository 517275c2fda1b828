//! The bytes validators sign, and the engine's signer and verifier over them.
//!
//! Every message names its kind and version first and the chain second, so a signature means one
//! thing on one chain. A precommit for a value signs exactly [`custos_ledger::commit_message`],
//! so the engine's commit certificate is the ledger's, signature for signature. Verification is
//! strict (`custos_crypto::PublicKey::verify`), the same rule `CommitCertificate::verify` applies,
//! so the engine never counts a signature the ledger would refuse.

use std::sync::Arc;

use arc_malachitebft_app_channel::app::types::core::{
    NilOrVal, Round, SignedMessage, ValidatorProof, VoteExtensionScope, VoteType,
};
use arc_malachitebft_app_channel::{Signer, Verifier};
use arc_malachitebft_signing_ed25519::{PublicKey as EdPublicKey, Signature as EdSignature};
use async_trait::async_trait;
use custos_crypto::{Hash, PublicKey, Signature, SigningKeyPair, sha256};
use custos_ledger::commit_message;

use arc_malachitebft_signing::{Error as SigningError, VerificationResult};

use crate::context::{Address, CustosContext, Height, Proposal, Vote};

/// Domain of a prevote.
pub(crate) const PREVOTE_DOMAIN: &[u8] = b"custos/prevote/v1";
/// Domain of a precommit for nil (a precommit for a value signs the ledger's commit message).
pub(crate) const PRECOMMIT_NIL_DOMAIN: &[u8] = b"custos/precommit-nil/v1";
/// Domain of a proposal.
pub(crate) const PROPOSAL_DOMAIN: &[u8] = b"custos/proposal/v1";
/// Domain of a proposal's streamed parts.
pub(crate) const PROPOSAL_PARTS_DOMAIN: &[u8] = b"custos/proposal-parts/v1";

fn header(domain: &[u8], chain_id: &str, height: Height, round: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(domain.len() + 4 + chain_id.len() + 12 + 64);
    out.extend_from_slice(domain);
    out.extend_from_slice(&(chain_id.len() as u32).to_be_bytes());
    out.extend_from_slice(chain_id.as_bytes());
    out.extend_from_slice(&height.0.to_be_bytes());
    out.extend_from_slice(&round.to_be_bytes());
    out
}

fn put_optional_round(out: &mut Vec<u8>, round: Round) {
    match round.as_u32() {
        None => out.push(0),
        Some(r) => {
            out.push(1);
            out.extend_from_slice(&r.to_be_bytes());
        }
    }
}

/// The bytes a validator signs for `vote`; `None` for a vote without a defined round.
pub(crate) fn vote_bytes(chain_id: &str, vote: &Vote) -> Option<Vec<u8>> {
    let round = vote.round.as_u32()?;
    Some(match (vote.kind, &vote.value) {
        (VoteType::Precommit, NilOrVal::Val(id)) => {
            commit_message(chain_id, vote.height.0, round, id)
        }
        (VoteType::Precommit, NilOrVal::Nil) => {
            header(PRECOMMIT_NIL_DOMAIN, chain_id, vote.height, round)
        }
        (VoteType::Prevote, value) => {
            let mut out = header(PREVOTE_DOMAIN, chain_id, vote.height, round);
            match value {
                NilOrVal::Nil => out.push(0),
                NilOrVal::Val(id) => {
                    out.push(1);
                    out.extend_from_slice(id.as_bytes());
                }
            }
            out
        }
    })
}

/// The bytes a proposer signs for `proposal`; `None` without a defined round.
pub(crate) fn proposal_bytes(chain_id: &str, proposal: &Proposal) -> Option<Vec<u8>> {
    let round = proposal.round.as_u32()?;
    let mut out = header(PROPOSAL_DOMAIN, chain_id, proposal.height, round);
    put_optional_round(&mut out, proposal.pol_round);
    out.extend_from_slice(proposal.value.0.as_bytes());
    out.extend_from_slice(proposal.proposer.0.as_bytes());
    Some(out)
}

/// The bytes a proposer signs over a streamed value: where it belongs, its id and the SHA-256 of
/// its bytes. `None` without a defined round.
pub(crate) fn proposal_parts_bytes(
    chain_id: &str,
    height: Height,
    round: Round,
    pol_round: Round,
    proposer: &Address,
    value_id: &Hash,
    value: &[u8],
) -> Option<Vec<u8>> {
    let round = round.as_u32()?;
    let mut out = header(PROPOSAL_PARTS_DOMAIN, chain_id, height, round);
    put_optional_round(&mut out, pol_round);
    out.extend_from_slice(proposer.0.as_bytes());
    out.extend_from_slice(value_id.as_bytes());
    out.extend_from_slice(sha256(value).as_bytes());
    Some(out)
}

/// Converts our signature into the engine's.
pub(crate) fn to_engine_signature(signature: &Signature) -> EdSignature {
    EdSignature::from_bytes(signature.to_bytes())
}

/// Converts the engine's signature into ours (64 bytes always parse; validity is checked by
/// `PublicKey::verify`).
pub(crate) fn from_engine_signature(signature: &EdSignature) -> Option<Signature> {
    Signature::from_slice(&signature.to_bytes()).ok()
}

/// Strictly verifies `signature` by the holder of `key` over `message`.
pub(crate) fn verify_strict(key: &[u8; 32], message: &[u8], signature: &EdSignature) -> bool {
    let (Ok(key), Some(signature)) = (PublicKey::from_slice(key), from_engine_signature(signature))
    else {
        return false;
    };
    key.verify(message, &signature).is_ok()
}

/// Signs consensus messages with this validator's key.
pub(crate) struct CustosSigner {
    chain_id: Arc<str>,
    key: SigningKeyPair,
}

impl CustosSigner {
    pub(crate) fn new(ctx: &CustosContext, key: SigningKeyPair) -> Self {
        CustosSigner {
            chain_id: Arc::from(ctx.chain_id()),
            key,
        }
    }

    /// Signs `message` (for proposal parts, signed outside the engine).
    pub(crate) fn sign_bytes(&self, message: &[u8]) -> EdSignature {
        to_engine_signature(&self.key.sign(message))
    }
}

#[async_trait]
impl Signer<CustosContext> for CustosSigner {
    async fn sign_vote(
        &self,
        vote: Vote,
    ) -> Result<SignedMessage<CustosContext, Vote>, SigningError> {
        let bytes = vote_bytes(&self.chain_id, &vote).ok_or_else(SigningError::new)?;
        let signature = self.sign_bytes(&bytes);
        Ok(SignedMessage::new(vote, signature))
    }

    async fn sign_proposal(
        &self,
        proposal: Proposal,
    ) -> Result<SignedMessage<CustosContext, Proposal>, SigningError> {
        let bytes = proposal_bytes(&self.chain_id, &proposal).ok_or_else(SigningError::new)?;
        let signature = self.sign_bytes(&bytes);
        Ok(SignedMessage::new(proposal, signature))
    }

    // Vote extensions are disabled: nothing is ever signed as one.
    async fn sign_vote_extension(
        &self,
        _scope: VoteExtensionScope<CustosContext>,
        _extension: (),
    ) -> Result<SignedMessage<CustosContext, ()>, SigningError> {
        Err(SigningError::new())
    }

    async fn sign_validator_proof(
        &self,
        public_key: Vec<u8>,
        peer_id: Vec<u8>,
    ) -> Result<ValidatorProof<CustosContext>, SigningError> {
        // Only ever vouch for our own key.
        if public_key.as_slice() != self.key.public().as_bytes() {
            return Err(SigningError::new());
        }
        let bytes = ValidatorProof::<CustosContext>::signing_bytes(&public_key, &peer_id);
        let signature = self.sign_bytes(&bytes);
        Ok(ValidatorProof::new(public_key, peer_id, signature))
    }
}

/// Verifies consensus messages strictly, as the ledger does.
pub(crate) struct CustosVerifier {
    chain_id: Arc<str>,
}

impl CustosVerifier {
    pub(crate) fn new(ctx: &CustosContext) -> Self {
        CustosVerifier {
            chain_id: Arc::from(ctx.chain_id()),
        }
    }
}

#[async_trait]
impl Verifier<CustosContext> for CustosVerifier {
    async fn verify_signed_vote(
        &self,
        vote: &Vote,
        signature: &EdSignature,
        public_key: &EdPublicKey,
    ) -> Result<VerificationResult, SigningError> {
        let valid = vote_bytes(&self.chain_id, vote)
            .is_some_and(|bytes| verify_strict(public_key.as_bytes(), &bytes, signature));
        Ok(VerificationResult::from_bool(valid))
    }

    async fn verify_signed_proposal(
        &self,
        proposal: &Proposal,
        signature: &EdSignature,
        public_key: &EdPublicKey,
    ) -> Result<VerificationResult, SigningError> {
        let valid = proposal_bytes(&self.chain_id, proposal)
            .is_some_and(|bytes| verify_strict(public_key.as_bytes(), &bytes, signature));
        Ok(VerificationResult::from_bool(valid))
    }

    async fn verify_signed_vote_extension(
        &self,
        _scope: &VoteExtensionScope<CustosContext>,
        _extension: &(),
        _signature: &EdSignature,
        _public_key: &EdPublicKey,
    ) -> Result<VerificationResult, SigningError> {
        Ok(VerificationResult::Invalid)
    }

    async fn verify_validator_proof(
        &self,
        proof: &ValidatorProof<CustosContext>,
    ) -> Result<VerificationResult, SigningError> {
        let Ok(key) = <[u8; 32]>::try_from(proof.public_key.as_slice()) else {
            return Ok(VerificationResult::Invalid);
        };
        let valid = verify_strict(&key, &proof.preimage(), &proof.signature);
        Ok(VerificationResult::from_bool(valid))
    }
}
