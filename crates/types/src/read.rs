//! Signed reads: authenticated queries of other people's data.

use custos_crypto::Signature;
use custos_crypto::SigningKeyPair;
use custos_proto::ledger::v1 as pb;
use prost::Message;

use crate::ENCODING_VERSION;
use crate::error::FieldError;
use crate::ids::{ChainId, PartyId, Timestamp};

/// Largest serialized read body.
pub const MAX_READ_BYTES: usize = 16 * 1024;

/// What a signed read asks.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ReadBody {
    /// The chain.
    pub chain_id: ChainId,
    /// Full gRPC method name the read is for.
    pub method: String,
    /// When it was signed.
    pub issued_at: Timestamp,
    /// The method's query, serialized.
    pub query: Vec<u8>,
}

/// A read whose signature verified over its exact body bytes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignedRead {
    /// Who asks.
    pub author: PartyId,
    /// What.
    pub body: ReadBody,
}

impl SignedRead {
    /// Checks size and signature, then decodes the body.
    pub fn from_wire(wire: &pb::SignedRead) -> Result<Self, FieldError> {
        if wire.body.len() > MAX_READ_BYTES {
            return Err(FieldError::new(
                "body",
                format!("at most {MAX_READ_BYTES} bytes, got {}", wire.body.len()),
            ));
        }
        let author = PartyId::from_field(&wire.author, "author")?;
        let signature = Signature::from_slice(&wire.signature)
            .map_err(|e| FieldError::new("signature", e.to_string()))?;
        author.0.verify(&wire.body, &signature).map_err(|_| {
            FieldError::new(
                "signature",
                format!("does not verify for author {}", author.short()),
            )
        })?;
        let body = pb::ReadBody::decode(wire.body.as_slice())
            .map_err(|e| FieldError::new("body", format!("not a ReadBody: {e}")))?;
        if body.version != ENCODING_VERSION {
            return Err(FieldError::new(
                "body.version",
                format!("expected {ENCODING_VERSION}, got {}", body.version),
            ));
        }
        Ok(SignedRead {
            author,
            body: ReadBody {
                chain_id: ChainId::parse(&body.chain_id).map_err(|e| e.within("body"))?,
                method: body.method,
                issued_at: Timestamp(body.issued_at_ms),
                query: body.query,
            },
        })
    }

    /// Builds and signs a read of `method` with `query`.
    pub fn sign(
        chain_id: &ChainId,
        method: &str,
        issued_at: Timestamp,
        query: &impl Message,
        key: &SigningKeyPair,
    ) -> pb::SignedRead {
        let body = pb::ReadBody {
            version: ENCODING_VERSION,
            chain_id: chain_id.as_str().to_string(),
            method: method.to_string(),
            issued_at_ms: issued_at.0,
            query: query.encode_to_vec(),
        }
        .encode_to_vec();
        let signature = key.sign(&body);
        pb::SignedRead {
            body,
            author: key.public().as_bytes().to_vec(),
            signature: signature.to_bytes().to_vec(),
        }
    }

    /// Decodes the query as `Q`.
    pub fn query<Q: Message + Default>(&self) -> Result<Q, FieldError> {
        Q::decode(self.body.query.as_slice())
            .map_err(|e| FieldError::new("body.query", format!("malformed query: {e}")))
    }
}
