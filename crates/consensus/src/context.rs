//! The Malachite `Context`: Custos heights, addresses, block ids, proposals, votes and validators.

use std::fmt;
use std::sync::Arc;

use arc_malachitebft_app_channel::app::types::core::{
    self as mc, LinearTimeouts, NilOrVal, Round, SignedExtension, VoteType, VotingPower,
};
use arc_malachitebft_signing_ed25519::{Ed25519, PublicKey as EdPublicKey};
use bytes::Bytes;
use custos_crypto::{Hash, PublicKey};

/// A block height; 0 is the empty chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Height(pub(crate) u64);

impl fmt::Display for Height {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl mc::Height for Height {
    const ZERO: Self = Height(0);
    const INITIAL: Self = Height(1);

    fn increment_by(&self, n: u64) -> Self {
        Height(self.0.saturating_add(n))
    }

    fn decrement_by(&self, n: u64) -> Option<Self> {
        self.0.checked_sub(n).map(Height)
    }

    fn as_u64(&self) -> u64 {
        self.0
    }
}

/// A validator's address: its Ed25519 consensus key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Address(pub(crate) PublicKey);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_hex())
    }
}

impl mc::Address for Address {}

/// The value consensus agrees on: a block, named by its header hash. The block's bytes travel
/// as proposal parts and live in the proposal store; votes and proposals carry only the id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct BlockId(pub(crate) Hash);

impl mc::Value for BlockId {
    type Id = Hash;

    fn id(&self) -> Hash {
        self.0
    }
}

/// A signed proposal's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Proposal {
    pub(crate) height: Height,
    pub(crate) round: Round,
    pub(crate) value: BlockId,
    pub(crate) pol_round: Round,
    pub(crate) proposer: Address,
}

impl mc::Proposal<CustosContext> for Proposal {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &BlockId {
        &self.value
    }

    fn take_value(self) -> BlockId {
        self.value
    }

    fn pol_round(&self) -> Round {
        self.pol_round
    }

    fn validator_address(&self) -> &Address {
        &self.proposer
    }
}

/// A prevote or precommit; Custos uses no vote extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Vote {
    pub(crate) kind: VoteType,
    pub(crate) height: Height,
    pub(crate) round: Round,
    pub(crate) value: NilOrVal<Hash>,
    pub(crate) validator: Address,
}

impl mc::Vote<CustosContext> for Vote {
    fn height(&self) -> Height {
        self.height
    }

    fn round(&self) -> Round {
        self.round
    }

    fn value(&self) -> &NilOrVal<Hash> {
        &self.value
    }

    fn take_value(self) -> NilOrVal<Hash> {
        self.value
    }

    fn vote_type(&self) -> VoteType {
        self.kind
    }

    fn validator_address(&self) -> &Address {
        &self.validator
    }

    fn extension(&self) -> Option<&SignedExtension<CustosContext>> {
        None
    }

    fn take_extension(&mut self) -> Option<SignedExtension<CustosContext>> {
        None
    }

    // Vote extensions are disabled for every height, so an extension is dropped.
    fn extend(self, _extension: SignedExtension<CustosContext>) -> Self {
        self
    }
}

/// One validator as the engine sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Validator {
    pub(crate) address: Address,
    pub(crate) public_key: EdPublicKey,
    pub(crate) power: VotingPower,
}

impl mc::Validator<CustosContext> for Validator {
    fn address(&self) -> &Address {
        &self.address
    }

    fn public_key(&self) -> &EdPublicKey {
        &self.public_key
    }

    fn voting_power(&self) -> VotingPower {
        self.power
    }
}

/// The validators of a height, sorted by key as in the ledger's set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ValidatorSet {
    validators: Vec<Validator>,
    total: VotingPower,
}

impl ValidatorSet {
    /// The engine's view of the ledger's validator set.
    pub(crate) fn from_ledger(set: &custos_ledger::ValidatorSet) -> anyhow::Result<Self> {
        let validators = set
            .validators()
            .iter()
            .map(|v| {
                let public_key = EdPublicKey::from_bytes(*v.key.as_bytes()).map_err(|e| {
                    anyhow::anyhow!("validator {} has an unusable key: {e}", v.key.short())
                })?;
                Ok(Validator {
                    address: Address(v.key),
                    public_key,
                    power: v.power,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        anyhow::ensure!(!validators.is_empty(), "the validator set is empty");
        Ok(ValidatorSet {
            validators,
            total: set.total_power(),
        })
    }

    /// The validators in order.
    pub(crate) fn validators(&self) -> &[Validator] {
        &self.validators
    }

    /// Whether `address` is in the set.
    pub(crate) fn contains(&self, address: &Address) -> bool {
        mc::ValidatorSet::get_by_address(self, address).is_some()
    }
}

impl mc::ValidatorSet<CustosContext> for ValidatorSet {
    fn count(&self) -> usize {
        self.validators.len()
    }

    fn total_voting_power(&self) -> VotingPower {
        self.total
    }

    fn get_by_address(&self, address: &Address) -> Option<&Validator> {
        self.validators
            .binary_search_by(|v| v.address.cmp(address))
            .ok()
            .and_then(|i| self.validators.get(i))
    }

    fn get_by_index(&self, index: usize) -> Option<&Validator> {
        self.validators.get(index)
    }
}

/// The first part of a proposal stream: whose value, for which height and round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartInit {
    pub(crate) height: Height,
    pub(crate) round: Round,
    pub(crate) pol_round: Round,
    pub(crate) proposer: Address,
}

/// The last part of a proposal stream: the value's id and the proposer's signature over the
/// stream (see [`crate::signing::proposal_parts_bytes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PartFin {
    pub(crate) value_id: Hash,
    pub(crate) signature: arc_malachitebft_signing_ed25519::Signature,
}

/// A piece of a proposed block as it is gossiped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ProposalPart {
    Init(PartInit),
    Data(Bytes),
    Fin(PartFin),
}

impl mc::ProposalPart<CustosContext> for ProposalPart {
    fn is_first(&self) -> bool {
        matches!(self, ProposalPart::Init(_))
    }

    fn is_last(&self) -> bool {
        matches!(self, ProposalPart::Fin(_))
    }
}

/// The Custos consensus context: every signature it makes names the chain.
#[derive(Clone, Debug)]
pub(crate) struct CustosContext {
    chain_id: Arc<str>,
}

impl CustosContext {
    pub(crate) fn new(chain_id: &str) -> Self {
        CustosContext {
            chain_id: Arc::from(chain_id),
        }
    }

    /// The chain id.
    pub(crate) fn chain_id(&self) -> &str {
        &self.chain_id
    }
}

/// The proposer of `(height, round)`: slot `height - 1 + round` modulo the total voting power,
/// walked over the validators in key order, so each proposes in proportion to its power (with
/// equal powers this is plain round-robin).
pub(crate) fn proposer_index(set: &ValidatorSet, height: Height, round: u32) -> usize {
    let total = u128::from(set.total.max(1));
    let slot = (u128::from(height.0.saturating_sub(1)) + u128::from(round)) % total;
    let mut cumulative: u128 = 0;
    for (i, v) in set.validators.iter().enumerate() {
        cumulative += u128::from(v.power);
        if slot < cumulative {
            return i;
        }
    }
    // Unreachable when the powers sum to `total`; the last validator is a safe answer.
    set.validators.len().saturating_sub(1)
}

impl mc::Context for CustosContext {
    type Address = Address;
    type Height = Height;
    type ProposalPart = ProposalPart;
    type Proposal = Proposal;
    type Validator = Validator;
    type ValidatorSet = ValidatorSet;
    type Timeouts = LinearTimeouts;
    type Value = BlockId;
    type Vote = Vote;
    type Extension = ();
    type SigningScheme = Ed25519;

    fn select_proposer<'a>(
        &self,
        validator_set: &'a ValidatorSet,
        height: Height,
        round: Round,
    ) -> &'a Validator {
        // The engine asks only for defined rounds of a non-empty set (`from_ledger` refuses an
        // empty one); a nil round is treated as round 0.
        let index = proposer_index(validator_set, height, round.as_u32().unwrap_or(0));
        &validator_set.validators[index]
    }

    fn new_proposal(
        &self,
        height: Height,
        round: Round,
        value: BlockId,
        pol_round: Round,
        address: Address,
    ) -> Proposal {
        Proposal {
            height,
            round,
            value,
            pol_round,
            proposer: address,
        }
    }

    fn new_prevote(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<Hash>,
        address: Address,
    ) -> Vote {
        Vote {
            kind: VoteType::Prevote,
            height,
            round,
            value: value_id,
            validator: address,
        }
    }

    fn new_precommit(
        &self,
        height: Height,
        round: Round,
        value_id: NilOrVal<Hash>,
        address: Address,
    ) -> Vote {
        Vote {
            kind: VoteType::Precommit,
            height,
            round,
            value: value_id,
            validator: address,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_crypto::{SecretKey, SigningKeyPair};

    fn set(powers: &[u64]) -> ValidatorSet {
        let validators = powers
            .iter()
            .enumerate()
            .map(|(i, &power)| custos_ledger::Validator {
                key: SigningKeyPair::from_secret(
                    &SecretKey::from_slice(&[i as u8 + 1; 32]).unwrap(),
                )
                .public(),
                power,
            })
            .collect();
        ValidatorSet::from_ledger(&custos_ledger::ValidatorSet::new(validators).unwrap()).unwrap()
    }

    #[test]
    fn equal_powers_rotate_the_proposer_round_robin() {
        let s = set(&[1, 1, 1, 1]);
        let picks: Vec<usize> = (1..=8).map(|h| proposer_index(&s, Height(h), 0)).collect();
        assert_eq!(picks, vec![0, 1, 2, 3, 0, 1, 2, 3]);
        assert_eq!(proposer_index(&s, Height(1), 1), 1);
        assert_eq!(
            proposer_index(&s, Height(1), u32::MAX),
            (u32::MAX % 4) as usize
        );
    }

    #[test]
    fn proposers_are_chosen_in_proportion_to_power() {
        let s = set(&[1, 3]);
        let mut counts = [0usize; 2];
        for h in 1..=400 {
            counts[proposer_index(&s, Height(h), 0)] += 1;
        }
        let heavy = s.validators().iter().position(|v| v.power == 3).unwrap();
        assert_eq!(counts[heavy], 300);
        assert_eq!(counts[1 - heavy], 100);
    }
}
