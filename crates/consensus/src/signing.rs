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
pub(crate) const PREVOTE_DOMAIN: &[u8] = custos_crypto::context::PREVOTE;
/// Domain of a precommit for nil (a precommit for a value signs the ledger's commit message).
pub(crate) const PRECOMMIT_NIL_DOMAIN: &[u8] = custos_crypto::context::PRECOMMIT_NIL;
/// Domain of a proposal.
pub(crate) const PROPOSAL_DOMAIN: &[u8] = custos_crypto::context::PROPOSAL;
/// Domain of a proposal's streamed parts.
pub(crate) const PROPOSAL_PARTS_DOMAIN: &[u8] = custos_crypto::context::PROPOSAL_PARTS;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::BlockId;
    use arc_malachitebft_app_channel::app::types::core::Context as _;
    use custos_crypto::SecretKey;

    const CHAIN: &str = "custos-test";

    fn key(seed: u8) -> SigningKeyPair {
        SigningKeyPair::from_secret(&SecretKey::from_slice(&[seed; 32]).unwrap())
    }

    fn id(byte: u8) -> Hash {
        Hash([byte; 32])
    }

    fn vote(kind: VoteType, value: NilOrVal<Hash>) -> Vote {
        Vote {
            kind,
            height: Height(7),
            round: Round::new(2),
            value,
            validator: Address(key(1).public()),
        }
    }

    fn proposal() -> Proposal {
        Proposal {
            height: Height(7),
            round: Round::new(2),
            value: BlockId(id(0xab)),
            pol_round: Round::new(1),
            proposer: Address(key(1).public()),
        }
    }

    #[test]
    fn a_precommit_for_a_value_signs_the_ledger_commit_message() {
        let v = vote(VoteType::Precommit, NilOrVal::Val(id(0xab)));
        assert_eq!(
            vote_bytes(CHAIN, &v).unwrap(),
            commit_message(CHAIN, 7, 2, &id(0xab))
        );
    }

    #[test]
    fn votes_of_different_kinds_values_or_chains_sign_different_bytes() {
        let all = [
            vote_bytes(CHAIN, &vote(VoteType::Precommit, NilOrVal::Val(id(1)))),
            vote_bytes(CHAIN, &vote(VoteType::Precommit, NilOrVal::Nil)),
            vote_bytes(CHAIN, &vote(VoteType::Prevote, NilOrVal::Val(id(1)))),
            vote_bytes(CHAIN, &vote(VoteType::Prevote, NilOrVal::Nil)),
            vote_bytes(CHAIN, &vote(VoteType::Prevote, NilOrVal::Val(id(2)))),
            vote_bytes(
                "other-chain",
                &vote(VoteType::Prevote, NilOrVal::Val(id(1))),
            ),
            proposal_bytes(CHAIN, &proposal()),
        ];
        let all: Vec<Vec<u8>> = all.into_iter().map(Option::unwrap).collect();
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let mut nil_round = vote(VoteType::Prevote, NilOrVal::Nil);
        nil_round.round = Round::Nil;
        assert_eq!(vote_bytes(CHAIN, &nil_round), None);
    }

    /// Changing any of these encodings is a protocol change: old signatures stop verifying.
    #[test]
    fn signed_encodings_are_pinned() {
        let digest = |b: Vec<u8>| sha256(&b).to_hex();
        let pinned = [
            (
                "prevote",
                digest(vote_bytes(CHAIN, &vote(VoteType::Prevote, NilOrVal::Val(id(1)))).unwrap()),
                "8d57391fecfb25737b0ef54a828b7834e0e38c083550a15f443cc2577ba813c5",
            ),
            (
                "prevote nil",
                digest(vote_bytes(CHAIN, &vote(VoteType::Prevote, NilOrVal::Nil)).unwrap()),
                "828e252a6f202001d1da2bd0f047deb616b0ef2087908fb44d10cccd7af33261",
            ),
            (
                "precommit nil",
                digest(vote_bytes(CHAIN, &vote(VoteType::Precommit, NilOrVal::Nil)).unwrap()),
                "a3e914e0f0d50f5f595c288d778ac9d4a7c00e8b5db768de030d367bc7e33b75",
            ),
            (
                "proposal",
                digest(proposal_bytes(CHAIN, &proposal()).unwrap()),
                "3bb11827ea47e0fb2d1a3b9e34112337e33737a7381c86696103fdb913d75bb1",
            ),
            (
                "proposal parts",
                digest(
                    proposal_parts_bytes(
                        CHAIN,
                        Height(7),
                        Round::new(2),
                        Round::Nil,
                        &Address(key(1).public()),
                        &id(0xab),
                        b"block",
                    )
                    .unwrap(),
                ),
                "f5a2b166136483fb3afca132b938b34ec0468ed077669797379729310ea8f4d8",
            ),
        ];
        for (what, actual, expected) in pinned {
            assert_eq!(actual, expected, "{what}");
        }
    }

    #[tokio::test]
    async fn signatures_verify_only_for_the_message_and_key_they_were_made_for() {
        let ctx = CustosContext::new(CHAIN);
        let signer = CustosSigner::new(&ctx, key(1));
        let verifier = CustosVerifier::new(&ctx);
        let pk = EdPublicKey::from_bytes(*key(1).public().as_bytes()).unwrap();
        let other = EdPublicKey::from_bytes(*key(2).public().as_bytes()).unwrap();

        let v = ctx.new_precommit(
            Height(7),
            Round::new(2),
            NilOrVal::Val(id(1)),
            Address(key(1).public()),
        );
        let signed = signer.sign_vote(v.clone()).await.unwrap();
        let ok = |r: Result<VerificationResult, SigningError>| r.unwrap().is_valid();
        assert!(ok(verifier
            .verify_signed_vote(&v, &signed.signature, &pk)
            .await));
        assert!(!ok(verifier
            .verify_signed_vote(&v, &signed.signature, &other)
            .await));
        let mut changed = v.clone();
        changed.value = NilOrVal::Nil;
        assert!(!ok(verifier
            .verify_signed_vote(&changed, &signed.signature, &pk)
            .await));
        let other_chain = CustosVerifier::new(&CustosContext::new("other-chain"));
        assert!(!ok(other_chain
            .verify_signed_vote(&v, &signed.signature, &pk)
            .await));

        let p = proposal();
        let signed = signer.sign_proposal(p.clone()).await.unwrap();
        assert!(ok(verifier
            .verify_signed_proposal(&p, &signed.signature, &pk)
            .await));
        assert!(!ok(verifier
            .verify_signed_vote(&v, &signed.signature, &pk)
            .await));

        let proof = signer
            .sign_validator_proof(key(1).public().as_bytes().to_vec(), b"peer".to_vec())
            .await
            .unwrap();
        assert!(ok(verifier.verify_validator_proof(&proof).await));
        let forged = ValidatorProof::new(
            proof.public_key.clone(),
            b"other peer".to_vec(),
            proof.signature,
        );
        assert!(!ok(verifier.verify_validator_proof(&forged).await));
        assert!(
            signer
                .sign_validator_proof(key(2).public().as_bytes().to_vec(), b"peer".to_vec())
                .await
                .is_err(),
            "a signer vouches only for its own key"
        );
    }
}
