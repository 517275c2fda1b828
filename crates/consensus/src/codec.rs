//! Our own versioned wire and WAL encoding of every message the engine sends, gossips or logs.
//!
//! Each encoding opens with [`CODEC_VERSION`] and a kind byte, then fixed-width big-endian
//! integers, 32-byte keys and hashes, 64-byte signatures, and `u32`-length-prefixed byte strings
//! and lists. Decoding is strict: lengths are bounded by what is left, lists by fixed limits, keys
//! must be valid points, and trailing bytes are refused.

use std::ops::RangeInclusive;

use arc_malachitebft_app_channel::app::consensus::LivenessMsg;
use arc_malachitebft_app_channel::app::streaming::{StreamContent, StreamId, StreamMessage};
use arc_malachitebft_app_channel::app::types::codec::{Codec, HasEncodedLen};
use arc_malachitebft_app_channel::app::types::core::{
    CommitCertificate, ExtendedCommitCertificate, ExtendedCommitSignature, NilOrVal,
    PolkaCertificate, PolkaSignature, Round, RoundCertificate, RoundCertificateType,
    RoundSignature, SignedExtension, SignedProposal, SignedVote, ValidatorProof, Validity,
    VoteType,
};
use arc_malachitebft_app_channel::app::types::{PeerId, ProposedValue, SignedConsensusMsg};
use arc_malachitebft_signing_ed25519::Signature as EdSignature;
use arc_malachitebft_sync::{self as sync, RawDecidedValue, ValueRequest, ValueResponse};
use bytes::Bytes;
use custos_crypto::{Hash, PublicKey};

use crate::context::{
    Address, BlockId, CustosContext, Height, PartFin, PartInit, Proposal, ProposalPart, Vote,
};

/// Version byte that opens every encoding.
pub(crate) const CODEC_VERSION: u8 = 1;

/// Most signatures in one certificate.
const MAX_SIGNATURES: usize = custos_ledger::certificate::MAX_VALIDATORS;
/// Most decided values in one sync response.
const MAX_SYNC_VALUES: usize = 1024;

pub(crate) mod kind {
    pub(crate) const PROPOSAL_PART: u8 = 0x01;
    pub(crate) const CONSENSUS_MSG: u8 = 0x02;
    pub(crate) const LIVENESS_MSG: u8 = 0x03;
    pub(crate) const STREAM_MSG: u8 = 0x04;
    pub(crate) const VALIDATOR_PROOF: u8 = 0x05;
    pub(crate) const SYNC_STATUS: u8 = 0x06;
    pub(crate) const SYNC_REQUEST: u8 = 0x07;
    pub(crate) const SYNC_RESPONSE: u8 = 0x08;
    pub(crate) const PROPOSED_VALUE: u8 = 0x09;
    pub(crate) const POLKA_CERTIFICATE: u8 = 0x0a;
    pub(crate) const STORED_VALUE: u8 = 0x10;
}

/// Why bytes did not decode (or, never in practice, a value did not encode).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CodecError {
    /// The input ended early.
    #[error("truncated: needed {needed} more bytes, {left} left")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes left.
        left: usize,
    },
    /// Bytes were left after the message.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// An unknown version, kind, tag or field value.
    #[error("invalid {what}: {value}")]
    Invalid {
        /// What was read.
        what: &'static str,
        /// The value found.
        value: String,
    },
    /// A list longer than allowed.
    #[error("too many {what}: {count} > {max}")]
    TooMany {
        /// What was counted.
        what: &'static str,
        /// How many were announced.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A value that cannot be encoded (a nil round where one is required).
    #[error("cannot encode {0}")]
    Unencodable(&'static str),
}

fn invalid(what: &'static str, value: impl ToString) -> CodecError {
    CodecError::Invalid {
        what,
        value: value.to_string(),
    }
}

/// The codec for consensus gossip, value sync and the WAL.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CustosCodec;

/// Writes one encoding.
pub(crate) struct Writer(Vec<u8>);

impl Writer {
    pub(crate) fn new(kind: u8) -> Self {
        Writer(vec![CODEC_VERSION, kind])
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn len(&mut self, n: usize) -> Result<(), CodecError> {
        let n = u32::try_from(n).map_err(|_| CodecError::Unencodable("a length over 4 GiB"))?;
        self.u32(n);
        Ok(())
    }

    pub(crate) fn bytes(&mut self, b: &[u8]) -> Result<(), CodecError> {
        self.len(b.len())?;
        self.0.extend_from_slice(b);
        Ok(())
    }

    pub(crate) fn height(&mut self, h: Height) {
        self.u64(h.0);
    }

    /// A round, which may be nil: 0, or 1 and the round. (Nothing the engine logs may fail to
    /// encode: a failed WAL append stops it for good.)
    pub(crate) fn round(&mut self, r: Round) {
        match r.as_u32() {
            None => self.u8(0),
            Some(r) => {
                self.u8(1);
                self.u32(r);
            }
        }
    }

    pub(crate) fn hash(&mut self, h: &Hash) {
        self.0.extend_from_slice(h.as_bytes());
    }

    pub(crate) fn address(&mut self, a: &Address) {
        self.0.extend_from_slice(a.0.as_bytes());
    }

    pub(crate) fn signature(&mut self, s: &EdSignature) {
        self.0.extend_from_slice(&s.to_bytes());
    }

    pub(crate) fn nil_or_hash(&mut self, v: &NilOrVal<Hash>) {
        match v {
            NilOrVal::Nil => self.u8(0),
            NilOrVal::Val(h) => {
                self.u8(1);
                self.hash(h);
            }
        }
    }

    pub(crate) fn vote_type(&mut self, t: VoteType) {
        self.u8(match t {
            VoteType::Prevote => 1,
            VoteType::Precommit => 2,
        });
    }

    pub(crate) fn finish(self) -> Bytes {
        Bytes::from(self.0)
    }
}

/// Reads one encoding.
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(buf: Bytes, kind: u8) -> Result<Self, CodecError> {
        let mut r = Reader { buf, pos: 0 };
        let version = r.u8()?;
        if version != CODEC_VERSION {
            return Err(invalid("codec version", version));
        }
        let k = r.u8()?;
        if k != kind {
            return Err(invalid("message kind", k));
        }
        Ok(r)
    }

    pub(crate) fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, CodecError> {
        if n > self.left() {
            return Err(CodecError::Truncated {
                needed: n,
                left: self.left(),
            });
        }
        let out = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(out)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let b = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&b);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub(crate) fn bytes(&mut self) -> Result<Bytes, CodecError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// A list length, refused above `max`.
    pub(crate) fn count(&mut self, what: &'static str, max: usize) -> Result<usize, CodecError> {
        let count = self.u32()? as usize;
        if count > max {
            return Err(CodecError::TooMany { what, count, max });
        }
        Ok(count)
    }

    pub(crate) fn height(&mut self) -> Result<Height, CodecError> {
        Ok(Height(self.u64()?))
    }

    pub(crate) fn round(&mut self) -> Result<Round, CodecError> {
        match self.u8()? {
            0 => Ok(Round::Nil),
            1 => {
                let r = self.u32()?;
                // Malachite keeps rounds as i64 and adds to them; stay far from the edge.
                if r > i32::MAX as u32 {
                    return Err(invalid("round", r));
                }
                Ok(Round::new(r))
            }
            t => Err(invalid("round tag", t)),
        }
    }

    pub(crate) fn hash(&mut self) -> Result<Hash, CodecError> {
        Ok(Hash(self.array()?))
    }

    pub(crate) fn address(&mut self) -> Result<Address, CodecError> {
        let bytes: [u8; 32] = self.array()?;
        PublicKey::from_slice(&bytes)
            .map(Address)
            .map_err(|e| invalid("validator key", e))
    }

    pub(crate) fn signature(&mut self) -> Result<EdSignature, CodecError> {
        Ok(EdSignature::from_bytes(self.array()?))
    }

    pub(crate) fn nil_or_hash(&mut self) -> Result<NilOrVal<Hash>, CodecError> {
        match self.u8()? {
            0 => Ok(NilOrVal::Nil),
            1 => Ok(NilOrVal::Val(self.hash()?)),
            t => Err(invalid("value tag", t)),
        }
    }

    pub(crate) fn vote_type(&mut self) -> Result<VoteType, CodecError> {
        match self.u8()? {
            1 => Ok(VoteType::Prevote),
            2 => Ok(VoteType::Precommit),
            t => Err(invalid("vote type", t)),
        }
    }

    pub(crate) fn finish(self) -> Result<(), CodecError> {
        match self.left() {
            0 => Ok(()),
            n => Err(CodecError::Trailing(n)),
        }
    }
}

// ----- pieces shared by several messages -----

fn put_part(w: &mut Writer, part: &ProposalPart) -> Result<(), CodecError> {
    match part {
        ProposalPart::Init(init) => {
            w.u8(1);
            w.height(init.height);
            w.round(init.round);
            w.round(init.pol_round);
            w.address(&init.proposer);
        }
        ProposalPart::Data(data) => {
            w.u8(2);
            w.bytes(data)?;
        }
        ProposalPart::Fin(fin) => {
            w.u8(3);
            w.hash(&fin.value_id);
            w.signature(&fin.signature);
        }
    }
    Ok(())
}

fn get_part(r: &mut Reader) -> Result<ProposalPart, CodecError> {
    Ok(match r.u8()? {
        1 => ProposalPart::Init(PartInit {
            height: r.height()?,
            round: r.round()?,
            pol_round: r.round()?,
            proposer: r.address()?,
        }),
        2 => ProposalPart::Data(r.bytes()?),
        3 => ProposalPart::Fin(PartFin {
            value_id: r.hash()?,
            signature: r.signature()?,
        }),
        t => return Err(invalid("proposal part tag", t)),
    })
}

fn put_vote(w: &mut Writer, vote: &SignedVote<CustosContext>) -> Result<(), CodecError> {
    w.vote_type(vote.kind);
    w.height(vote.height);
    w.round(vote.round);
    w.nil_or_hash(&vote.value);
    w.address(&vote.validator);
    w.signature(&vote.signature);
    Ok(())
}

fn get_vote(r: &mut Reader) -> Result<SignedVote<CustosContext>, CodecError> {
    let vote = Vote {
        kind: r.vote_type()?,
        height: r.height()?,
        round: r.round()?,
        value: r.nil_or_hash()?,
        validator: r.address()?,
    };
    Ok(SignedVote::new(vote, r.signature()?))
}

fn put_proposal(w: &mut Writer, p: &SignedProposal<CustosContext>) -> Result<(), CodecError> {
    w.height(p.height);
    w.round(p.round);
    w.hash(&p.value.0);
    w.round(p.pol_round);
    w.address(&p.proposer);
    w.signature(&p.signature);
    Ok(())
}

fn get_proposal(r: &mut Reader) -> Result<SignedProposal<CustosContext>, CodecError> {
    let proposal = Proposal {
        height: r.height()?,
        round: r.round()?,
        value: BlockId(r.hash()?),
        pol_round: r.round()?,
        proposer: r.address()?,
    };
    Ok(SignedProposal::new(proposal, r.signature()?))
}

fn put_polka(w: &mut Writer, c: &PolkaCertificate<CustosContext>) -> Result<(), CodecError> {
    w.height(c.height);
    w.round(c.round);
    w.hash(&c.value_id);
    w.len(c.polka_signatures.len())?;
    for s in &c.polka_signatures {
        w.address(&s.address);
        w.signature(&s.signature);
    }
    Ok(())
}

fn get_polka(r: &mut Reader) -> Result<PolkaCertificate<CustosContext>, CodecError> {
    let height = r.height()?;
    let round = r.round()?;
    let value_id = r.hash()?;
    let n = r.count("polka signatures", MAX_SIGNATURES)?;
    let mut polka_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        polka_signatures.push(PolkaSignature::new(r.address()?, r.signature()?));
    }
    Ok(PolkaCertificate {
        height,
        round,
        value_id,
        polka_signatures,
    })
}

fn put_round_certificate(
    w: &mut Writer,
    c: &RoundCertificate<CustosContext>,
) -> Result<(), CodecError> {
    w.height(c.height);
    w.round(c.round);
    w.u8(match c.cert_type {
        RoundCertificateType::Skip => 1,
        RoundCertificateType::Precommit => 2,
    });
    w.len(c.round_signatures.len())?;
    for s in &c.round_signatures {
        w.vote_type(s.vote_type);
        w.nil_or_hash(&s.value_id);
        w.address(&s.address);
        w.signature(&s.signature);
    }
    Ok(())
}

fn get_round_certificate(r: &mut Reader) -> Result<RoundCertificate<CustosContext>, CodecError> {
    let height = r.height()?;
    let round = r.round()?;
    let cert_type = match r.u8()? {
        1 => RoundCertificateType::Skip,
        2 => RoundCertificateType::Precommit,
        t => return Err(invalid("round certificate type", t)),
    };
    let n = r.count("round signatures", MAX_SIGNATURES)?;
    let mut round_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        let vote_type = r.vote_type()?;
        let value_id = r.nil_or_hash()?;
        let address = r.address()?;
        let signature = r.signature()?;
        round_signatures.push(RoundSignature::new(vote_type, value_id, address, signature));
    }
    Ok(RoundCertificate {
        height,
        round,
        cert_type,
        round_signatures,
    })
}

fn put_commit(
    w: &mut Writer,
    c: &ExtendedCommitCertificate<CustosContext>,
) -> Result<(), CodecError> {
    w.height(c.height);
    w.round(c.round);
    w.hash(&c.value_id);
    w.len(c.commit_signatures.len())?;
    for s in &c.commit_signatures {
        w.address(&s.address);
        w.signature(&s.signature);
        match &s.extension {
            None => w.u8(0),
            Some(ext) => {
                w.u8(1);
                w.signature(&ext.signature);
            }
        }
    }
    Ok(())
}

fn get_commit(r: &mut Reader) -> Result<ExtendedCommitCertificate<CustosContext>, CodecError> {
    let height = r.height()?;
    let round = r.round()?;
    let value_id = r.hash()?;
    let n = r.count("commit signatures", MAX_SIGNATURES)?;
    let mut commit_signatures = Vec::with_capacity(n);
    for _ in 0..n {
        let address = r.address()?;
        let signature = r.signature()?;
        let extension = match r.u8()? {
            0 => None,
            1 => Some(SignedExtension::<CustosContext>::new((), r.signature()?)),
            t => return Err(invalid("extension tag", t)),
        };
        commit_signatures.push(ExtendedCommitSignature::new(address, signature, extension));
    }
    Ok(ExtendedCommitCertificate {
        height,
        round,
        value_id,
        commit_signatures,
    })
}

fn put_peer(w: &mut Writer, peer: &PeerId) -> Result<(), CodecError> {
    w.bytes(&peer.to_bytes())
}

fn get_peer(r: &mut Reader) -> Result<PeerId, CodecError> {
    let bytes = r.bytes()?;
    PeerId::from_bytes(&bytes).map_err(|e| invalid("peer id", e))
}

// ----- the codec -----

impl Codec<ProposalPart> for CustosCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<ProposalPart, CodecError> {
        let mut r = Reader::new(bytes, kind::PROPOSAL_PART)?;
        let part = get_part(&mut r)?;
        r.finish()?;
        Ok(part)
    }

    fn encode(&self, part: &ProposalPart) -> Result<Bytes, CodecError> {
        let mut w = Writer::new(kind::PROPOSAL_PART);
        put_part(&mut w, part)?;
        Ok(w.finish())
    }
}

impl Codec<SignedConsensusMsg<CustosContext>> for CustosCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<SignedConsensusMsg<CustosContext>, CodecError> {
        let mut r = Reader::new(bytes, kind::CONSENSUS_MSG)?;
        let msg = match r.u8()? {
            1 => SignedConsensusMsg::Vote(get_vote(&mut r)?),
            2 => SignedConsensusMsg::Proposal(get_proposal(&mut r)?),
            t => return Err(invalid("consensus message tag", t)),
        };
        r.finish()?;
        Ok(msg)
    }

    fn encode(&self, msg: &SignedConsensusMsg<CustosContext>) -> Result<Bytes, CodecError> {
        let mut w = Writer::new(kind::CONSENSUS_MSG);
        match msg {
            SignedConsensusMsg::Vote(v) => {
                w.u8(1);
                put_vote(&mut w, v)?;
            }
            SignedConsensusMsg::Proposal(p) => {
                w.u8(2);
                put_proposal(&mut w, p)?;
            }
        }
        Ok(w.finish())
    }
}

impl Codec<LivenessMsg<CustosContext>> for CustosCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<LivenessMsg<CustosContext>, CodecError> {
        let mut r = Reader::new(bytes, kind::LIVENESS_MSG)?;
        let msg = match r.u8()? {
            1 => LivenessMsg::Vote(get_vote(&mut r)?),
            2 => LivenessMsg::PolkaCertificate(get_polka(&mut r)?),
            3 => LivenessMsg::SkipRoundCertificate(get_round_certificate(&mut r)?),
            t => return Err(invalid("liveness message tag", t)),
        };
        r.finish()?;
        Ok(msg)
    }

    fn encode(&self, msg: &LivenessMsg<CustosContext>) -> Result<Bytes, CodecError> {
        let mut w = Writer::new(kind::LIVENESS_MSG);
        match msg {
            LivenessMsg::Vote(v) => {
                w.u8(1);
                put_vote(&mut w, v)?;
            }
            LivenessMsg::PolkaCertificate(c) => {
                w.u8(2);
                put_polka(&mut w, c)?;
            }
            LivenessMsg::SkipRoundCertificate(c) => {
                w.u8(3);
                put_round_certificate(&mut w, c)?;
            }
        }
        Ok(w.finish())
    }
}

impl Codec<StreamMessage<ProposalPart>> for CustosCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<StreamMessage<ProposalPart>, CodecError> {
        let mut r = Reader::new(bytes, kind::STREAM_MSG)?;
        let stream_id = StreamId::new(r.bytes()?);
        let sequence = r.u64()?;
        let content = match r.u8()? {
            0 => StreamContent::Fin,
            1 => StreamContent::Data(get_part(&mut r)?),
            t => return Err(invalid("stream content tag", t)),
        };
        r.finish()?;
        Ok(StreamMessage::new(stream_id, sequence, content))
    }

    fn encode(&self, msg: &StreamMessage<ProposalPart>) -> Result<Bytes, CodecError> {
        let mut w = Writer::new(kind::STREAM_MSG);
        w.bytes(&msg.stream_id.to_bytes())?;
        w.u64(msg.sequence);
        match &msg.content {
            StreamContent::Fin => w.u8(0),
            StreamContent::Data(part) => {
                w.u8(1);
                put_part(&mut w, part)?;
            }
        }
        Ok(w.finish())
    }
}

impl Codec<ValidatorProof<CustosContext>> for CustosCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<ValidatorProof<CustosContext>, CodecError> {
        let mut r = Reader::new(bytes, kind::VALIDATOR_PROOF)?;
        let public_key = r.bytes()?.to_vec();
        let peer_id = r.bytes()?.to_vec();
        let signature = r.signature()?;
        r.finish()?;
        Ok(ValidatorProof::new(public_key, peer_id, signature))
    }

    fn encode(&self, proof: &ValidatorProof<CustosContext>) -> Result<Bytes, CodecError> {
        let mut w = Writer::new(kind::VALIDATOR_PROOF);
        w.bytes(&proof.public_key)?;
        w.bytes(&proof.peer_id)?;
        w.signature(&proof.signature);
        Ok(w.finish())
    }
}

impl Codec<sync::Status<CustosContext>> for CustosCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<sync::Status<CustosContext>, CodecError> {
        let mut r = Reader::new(bytes, kind::SYNC_STATUS)?;
        let peer_id = get_peer(&mut r)?;
        let tip_height = r.height()?;
        let history_min_height = r.height()?;
        r.finish()?;
        Ok(sync::Status {
            peer_id,
            tip_height,
            history_min_height,
        })
    }

    fn encode(&self, status: &sync::Status<CustosContext>) -> Result<Bytes, CodecError> {
        let mut w = Writer::new(kind::SYNC_STATUS);
        put_peer(&mut w, &status.peer_id)?;
        w.height(status.tip_height);
        w.height(status.history_min_height);
        Ok(w.finish())
    }
}

impl Codec<sync::Request<CustosContext>> for CustosCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<sync::Request<CustosContext>, CodecError> {
        let mut r = Reader::new(bytes, kind::SYNC_REQUEST)?;
        let request = match r.u8()? {
            1 => {
                let start = r.height()?;
                let end = r.height()?;
                sync::Request::ValueRequest(ValueRequest::new(RangeInclusive::new(start, end)))
            }
            t => return Err(invalid("sync request tag", t)),
        };
        r.finish()?;
        Ok(request)
    }

    fn encode(&self, request: &sync::Request<CustosContext>) -> Result<Bytes, CodecError> {
        let mut w = Writer::new(kind::SYNC_REQUEST);
        match request {
            sync::Request::ValueRequest(req) => {
                w.u8(1);
                w.height(*req.range.start());
                w.height(*req.range.end());
            }
        }
        Ok(w.finish())
    }
}

impl Codec<sync::Response<CustosContext>> for CustosCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<sync::Response<CustosContext>, CodecError> {
        let mut r = Reader::new(bytes, kind::SYNC_RESPONSE)?;
        let response = match r.u8()? {
            1 => {
                let start_height = r.height()?;
                let n = r.count("synced values", MAX_SYNC_VALUES)?;
                let mut values = Vec::with_capacity(n);
                for _ in 0..n {
                    let value_bytes = r.bytes()?;
                    let certificate = get_commit(&mut r)?;
                    values.push(RawDecidedValue::new(value_bytes, certificate));
                }
                sync::Response::ValueResponse(ValueResponse::new(start_height, values))
            }
            t => return Err(invalid("sync response tag", t)),
        };
        r.finish()?;
        Ok(response)
    }

    fn encode(&self, response: &sync::Response<CustosContext>) -> Result<Bytes, CodecError> {
        let mut w = Writer::new(kind::SYNC_RESPONSE);
        match response {
            sync::Response::ValueResponse(resp) => {
                w.u8(1);
                w.height(resp.start_height);
                w.len(resp.values.len())?;
                for v in &resp.values {
                    w.bytes(&v.value_bytes)?;
                    put_commit(&mut w, &v.certificate)?;
                }
            }
        }
        Ok(w.finish())
    }
}

impl HasEncodedLen<sync::Response<CustosContext>> for CustosCodec {
    fn encoded_len(&self, response: &sync::Response<CustosContext>) -> Result<usize, CodecError> {
        Ok(Codec::<sync::Response<CustosContext>>::encode(self, response)?.len())
    }
}

impl Codec<ProposedValue<CustosContext>> for CustosCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<ProposedValue<CustosContext>, CodecError> {
        let mut r = Reader::new(bytes, kind::PROPOSED_VALUE)?;
        let height = r.height()?;
        let round = r.round()?;
        let valid_round = r.round()?;
        let proposer = r.address()?;
        let value = BlockId(r.hash()?);
        let validity = match r.u8()? {
            0 => Validity::Invalid,
            1 => Validity::Valid,
            t => return Err(invalid("validity", t)),
        };
        r.finish()?;
        Ok(ProposedValue {
            height,
            round,
            valid_round,
            proposer,
            value,
            validity,
        })
    }

    fn encode(&self, v: &ProposedValue<CustosContext>) -> Result<Bytes, CodecError> {
        let mut w = Writer::new(kind::PROPOSED_VALUE);
        w.height(v.height);
        w.round(v.round);
        w.round(v.valid_round);
        w.address(&v.proposer);
        w.hash(&v.value.0);
        w.u8(match v.validity {
            Validity::Invalid => 0,
            Validity::Valid => 1,
        });
        Ok(w.finish())
    }
}

impl Codec<PolkaCertificate<CustosContext>> for CustosCodec {
    type Error = CodecError;

    fn decode(&self, bytes: Bytes) -> Result<PolkaCertificate<CustosContext>, CodecError> {
        let mut r = Reader::new(bytes, kind::POLKA_CERTIFICATE)?;
        let c = get_polka(&mut r)?;
        r.finish()?;
        Ok(c)
    }

    fn encode(&self, c: &PolkaCertificate<CustosContext>) -> Result<Bytes, CodecError> {
        let mut w = Writer::new(kind::POLKA_CERTIFICATE);
        put_polka(&mut w, c)?;
        Ok(w.finish())
    }
}

/// The engine's commit certificate as the ledger's: each precommit signature over
/// `commit_message(chain, height, round, value id)` is carried over as it is.
pub(crate) fn to_ledger_certificate(
    c: &CommitCertificate<CustosContext>,
) -> Result<custos_ledger::CommitCertificate, CodecError> {
    let round = c
        .round
        .as_u32()
        .ok_or(CodecError::Unencodable("a certificate with a nil round"))?;
    let signatures = c
        .commit_signatures
        .iter()
        .map(|s| {
            crate::signing::from_engine_signature(&s.signature)
                .map(|sig| (s.address.0, sig))
                .ok_or_else(|| invalid("signature", "not 64 bytes"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(custos_ledger::CommitCertificate {
        height: c.height.0,
        round,
        header_hash: c.value_id,
        signatures,
    })
}

/// The ledger's commit certificate as the engine's (for value sync).
pub(crate) fn from_ledger_certificate(
    c: &custos_ledger::CommitCertificate,
) -> ExtendedCommitCertificate<CustosContext> {
    ExtendedCommitCertificate {
        height: Height(c.height),
        round: Round::new(c.round),
        value_id: c.header_hash,
        commit_signatures: c
            .signatures
            .iter()
            .map(|(key, sig)| {
                ExtendedCommitSignature::new(
                    Address(*key),
                    crate::signing::to_engine_signature(sig),
                    None,
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_crypto::{SecretKey, SigningKeyPair, sha256};

    fn addr(seed: u8) -> Address {
        Address(SigningKeyPair::from_secret(&SecretKey::from_slice(&[seed; 32]).unwrap()).public())
    }

    fn sig(byte: u8) -> EdSignature {
        EdSignature::from_bytes([byte; 64])
    }

    fn vote() -> SignedVote<CustosContext> {
        SignedVote::new(
            Vote {
                kind: VoteType::Precommit,
                height: Height(9),
                round: Round::new(1),
                value: NilOrVal::Val(Hash([3; 32])),
                validator: addr(1),
            },
            sig(4),
        )
    }

    fn proposal() -> SignedProposal<CustosContext> {
        SignedProposal::new(
            Proposal {
                height: Height(9),
                round: Round::new(1),
                value: BlockId(Hash([3; 32])),
                pol_round: Round::Nil,
                proposer: addr(2),
            },
            sig(5),
        )
    }

    fn commit() -> ExtendedCommitCertificate<CustosContext> {
        ExtendedCommitCertificate {
            height: Height(9),
            round: Round::new(1),
            value_id: Hash([3; 32]),
            commit_signatures: vec![
                ExtendedCommitSignature::new(addr(1), sig(6), None),
                ExtendedCommitSignature::new(addr(2), sig(7), None),
            ],
        }
    }

    fn peer() -> PeerId {
        PeerId::from_bytes(&[0, 4, 1, 2, 3, 4]).unwrap()
    }

    fn roundtrip<T>(value: T) -> Bytes
    where
        T: PartialEq + std::fmt::Debug,
        CustosCodec: Codec<T, Error = CodecError>,
    {
        let bytes = CustosCodec.encode(&value).unwrap();
        assert_eq!(bytes[0], CODEC_VERSION);
        assert_eq!(CustosCodec.decode(bytes.clone()), Ok(value));
        // Strict: no truncation, no trailing bytes, no other version.
        assert!(Codec::<T>::decode(&CustosCodec, bytes.slice(..bytes.len() - 1)).is_err());
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert_eq!(
            Codec::<T>::decode(&CustosCodec, Bytes::from(longer)),
            Err(CodecError::Trailing(1))
        );
        let mut other = bytes.to_vec();
        other[0] = CODEC_VERSION + 1;
        assert!(Codec::<T>::decode(&CustosCodec, Bytes::from(other)).is_err());
        bytes
    }

    #[test]
    fn every_message_kind_roundtrips_and_decodes_strictly() {
        roundtrip(SignedConsensusMsg::Vote(vote()));
        roundtrip(SignedConsensusMsg::Proposal(proposal()));
        roundtrip(LivenessMsg::Vote(vote()));
        roundtrip(LivenessMsg::PolkaCertificate(PolkaCertificate {
            height: Height(9),
            round: Round::new(1),
            value_id: Hash([3; 32]),
            polka_signatures: vec![PolkaSignature::new(addr(1), sig(8))],
        }));
        roundtrip(LivenessMsg::SkipRoundCertificate(RoundCertificate {
            height: Height(9),
            round: Round::new(1),
            cert_type: RoundCertificateType::Skip,
            round_signatures: vec![RoundSignature::new(
                VoteType::Prevote,
                NilOrVal::Nil,
                addr(1),
                sig(9),
            )],
        }));
        roundtrip(ProposalPart::Data(Bytes::from_static(b"chunk")));
        roundtrip(StreamMessage::new(
            StreamId::new(Bytes::from_static(b"stream")),
            3,
            StreamContent::Data(ProposalPart::Init(PartInit {
                height: Height(9),
                round: Round::new(1),
                pol_round: Round::new(0),
                proposer: addr(2),
            })),
        ));
        roundtrip(StreamMessage::<ProposalPart>::new(
            StreamId::new(Bytes::from_static(b"stream")),
            4,
            StreamContent::Fin,
        ));
        roundtrip(ValidatorProof::<CustosContext>::new(
            vec![1; 32],
            vec![2; 38],
            sig(1),
        ));
        roundtrip(sync::Status::<CustosContext> {
            peer_id: peer(),
            tip_height: Height(9),
            history_min_height: Height(1),
        });
        roundtrip(sync::Request::<CustosContext>::ValueRequest(
            ValueRequest::new(Height(3)..=Height(9)),
        ));
        roundtrip(sync::Response::<CustosContext>::ValueResponse(
            ValueResponse::new(
                Height(9),
                vec![RawDecidedValue::new(Bytes::from_static(b"block"), commit())],
            ),
        ));
        roundtrip(ProposedValue::<CustosContext> {
            height: Height(9),
            round: Round::new(1),
            valid_round: Round::Nil,
            proposer: addr(2),
            value: BlockId(Hash([3; 32])),
            validity: Validity::Invalid,
        });
    }

    #[test]
    fn invalid_keys_and_oversized_lists_are_refused() {
        let mut bytes = CustosCodec
            .encode(&SignedConsensusMsg::Vote(vote()))
            .unwrap()
            .to_vec();
        // The validator key sits after version, kind, tag, type, height, round and value.
        let at = 2 + 1 + 1 + 8 + 5 + 33;
        bytes[at..at + 32].copy_from_slice(&[0; 32]);
        assert!(
            Codec::<SignedConsensusMsg<CustosContext>>::decode(&CustosCodec, Bytes::from(bytes))
                .is_err()
        );

        let mut w = Writer::new(kind::SYNC_RESPONSE);
        w.u8(1);
        w.height(Height(1));
        w.u32(u32::MAX);
        assert!(matches!(
            Codec::<sync::Response<CustosContext>>::decode(&CustosCodec, w.finish()),
            Err(CodecError::TooMany { .. })
        ));
    }

    /// Changing an encoding is a protocol change for the network and the WAL.
    #[test]
    fn wire_encodings_are_pinned() {
        let digest = |b: Bytes| sha256(&b).to_hex();
        let vote = digest(
            CustosCodec
                .encode(&SignedConsensusMsg::Vote(vote()))
                .unwrap(),
        );
        let response = digest(
            CustosCodec
                .encode(&sync::Response::<CustosContext>::ValueResponse(
                    ValueResponse::new(
                        Height(9),
                        vec![RawDecidedValue::new(Bytes::from_static(b"block"), commit())],
                    ),
                ))
                .unwrap(),
        );
        assert_eq!(
            vote,
            "74c693a5a2f3af790b0e9ea5ea044e41ab193cb2989641ba87282d3ba76f3482"
        );
        assert_eq!(
            response,
            "3cf4b83e1a71c9198ed4d6c74a2ee18d265d916d3fa10e085bc9a6632be2d202"
        );
    }

    #[test]
    fn certificates_convert_to_the_ledgers_and_back() {
        let ledger = custos_ledger::CommitCertificate {
            height: 9,
            round: 1,
            header_hash: Hash([3; 32]),
            signatures: vec![
                (
                    addr(1).0,
                    custos_crypto::Signature::from_slice(&[6; 64]).unwrap(),
                ),
                (
                    addr(2).0,
                    custos_crypto::Signature::from_slice(&[7; 64]).unwrap(),
                ),
            ],
        };
        let engine = from_ledger_certificate(&ledger);
        assert_eq!(engine, commit());
        let plain = CommitCertificate {
            height: engine.height,
            round: engine.round,
            value_id: engine.value_id,
            commit_signatures: engine
                .commit_signatures
                .iter()
                .map(|s| {
                    arc_malachitebft_app_channel::app::types::core::CommitSignature::new(
                        s.address,
                        s.signature,
                    )
                })
                .collect(),
        };
        assert_eq!(to_ledger_certificate(&plain), Ok(ledger));
    }
}
