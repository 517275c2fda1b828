//! Signed reads: authenticated queries of other people's data.
//!
//! A read is signed over [`custos_crypto::context::SIGNED_READ`] ‖ body bytes, names its author
//! inside the body, and is good once: a server accepts it only within [`READ_WINDOW_MS`] of its
//! clock and remembers each (author, nonce) it accepted for that long ([`ReplayGuard`]).

use std::collections::{BTreeMap, BTreeSet};

use custos_crypto::Signature;
use custos_crypto::SigningKeyPair;
use custos_crypto::context::SIGNED_READ;
use custos_proto::ledger::v1 as pb;
use prost::Message;
use rand_core::{CryptoRng, RngCore};

use crate::error::FieldError;
use crate::ids::{ChainId, PartyId, Timestamp};

/// Largest serialized read body.
pub const MAX_READ_BYTES: usize = 16 * 1024;

/// Version of the read body encoding.
pub const READ_VERSION: u32 = 2;

/// How far a read's `issued_at` may be from a server's clock, either way.
pub const READ_WINDOW_MS: i64 = 60 * 1000;

/// Length of a read's nonce.
pub const READ_NONCE_BYTES: usize = 16;

/// A read's single-use nonce: 16 random bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct ReadNonce(pub [u8; READ_NONCE_BYTES]);

impl ReadNonce {
    /// A fresh nonce from `rng`.
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut bytes = [0u8; READ_NONCE_BYTES];
        rng.fill_bytes(&mut bytes);
        ReadNonce(bytes)
    }
}

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
    /// Single-use nonce.
    pub nonce: ReadNonce,
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
    /// Checks size and signature (over the signed-read context and the body bytes), then
    /// decodes the body and checks that it names the same author.
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
        author
            .0
            .verify_in(SIGNED_READ, &wire.body, &signature)
            .map_err(|_| {
                FieldError::new(
                    "signature",
                    format!(
                        "does not verify for author {} over `custos/signed-read/v2` and the body",
                        author.short()
                    ),
                )
            })?;
        let body = pb::ReadBody::decode(wire.body.as_slice())
            .map_err(|e| FieldError::new("body", format!("not a ReadBody: {e}")))?;
        if body.version != READ_VERSION {
            return Err(FieldError::new(
                "body.version",
                format!("expected {READ_VERSION}, got {}", body.version),
            ));
        }
        if body.author != wire.author {
            return Err(FieldError::new(
                "body.author",
                format!(
                    "must equal the envelope's author {}, got {} bytes naming another key",
                    author.short(),
                    body.author.len()
                ),
            ));
        }
        let nonce: [u8; READ_NONCE_BYTES] = body.nonce.as_slice().try_into().map_err(|_| {
            FieldError::new(
                "body.nonce",
                format!(
                    "expected {READ_NONCE_BYTES} bytes, got {}",
                    body.nonce.len()
                ),
            )
        })?;
        Ok(SignedRead {
            author,
            body: ReadBody {
                chain_id: ChainId::parse(&body.chain_id).map_err(|e| e.within("body"))?,
                method: body.method,
                issued_at: Timestamp(body.issued_at_ms),
                query: body.query,
                nonce: ReadNonce(nonce),
            },
        })
    }

    /// Builds and signs a read of `method` with `query`, issued at `issued_at` with `nonce`
    /// (fresh for every read: see [`ReadNonce::random`]).
    pub fn sign(
        chain_id: &ChainId,
        method: &str,
        issued_at: Timestamp,
        nonce: ReadNonce,
        query: &impl Message,
        key: &SigningKeyPair,
    ) -> pb::SignedRead {
        let author = key.public().as_bytes().to_vec();
        let body = pb::ReadBody {
            version: READ_VERSION,
            chain_id: chain_id.as_str().to_string(),
            method: method.to_string(),
            issued_at_ms: issued_at.0,
            query: query.encode_to_vec(),
            nonce: nonce.0.to_vec(),
            author: author.clone(),
        }
        .encode_to_vec();
        let signature = key.sign_in(SIGNED_READ, &body);
        pb::SignedRead {
            body,
            author,
            signature: signature.to_bytes().to_vec(),
        }
    }

    /// Checks that the read is for `chain` and `method` and was issued within
    /// [`READ_WINDOW_MS`] of `now`, the clock of `server` (named in the refusal).
    pub fn check_for(
        &self,
        chain: &ChainId,
        method: &str,
        now: Timestamp,
        server: &str,
    ) -> Result<(), FieldError> {
        if &self.body.chain_id != chain {
            return Err(FieldError::new(
                "body.chain_id",
                format!("read is for `{}`, this is `{chain}`", self.body.chain_id),
            ));
        }
        if self.body.method != method {
            return Err(FieldError::new(
                "body.method",
                format!("signed for `{}`, called `{method}`", self.body.method),
            ));
        }
        let skew = now.0.saturating_sub(self.body.issued_at.0).saturating_abs();
        if skew > READ_WINDOW_MS {
            return Err(FieldError::new(
                "body.issued_at_ms",
                format!(
                    "signed {skew} ms away from the {server}'s clock; at most {READ_WINDOW_MS} ms"
                ),
            ));
        }
        Ok(())
    }

    /// Decodes the query as `Q`.
    pub fn query<Q: Message + Default>(&self) -> Result<Q, FieldError> {
        Q::decode(self.body.query.as_slice())
            .map_err(|e| FieldError::new("body.query", format!("malformed query: {e}")))
    }
}

/// Why a [`ReplayGuard`] refused a read.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum ReplayError {
    /// The (author, nonce) was accepted before, within the window.
    #[error("body.nonce: this read was already used (author {author}); sign a new one")]
    Replayed {
        /// The author, shortened.
        author: String,
    },
    /// The author has as many live reads as it may hold.
    #[error(
        "body.nonce: author {author} has {limit} reads within the last {window_s} s, the most \
         one author may; retry later"
    )]
    AuthorFull {
        /// The author, shortened.
        author: String,
        /// The per-author limit.
        limit: usize,
        /// The window in seconds.
        window_s: i64,
    },
    /// The guard holds as many reads as it may.
    #[error("body.nonce: the server holds {limit} live reads, the most it remembers; retry later")]
    Full {
        /// The total limit.
        limit: usize,
    },
}

/// Remembers the reads a server accepted within the freshness window, so that each
/// (author, nonce) is accepted once.
///
/// Reads are forgotten once they fall out of the window (they would be refused as stale
/// anyway), so memory is bounded by the reads accepted in one window. Beyond that it is bounded
/// outright: at most `per_author` live reads of one author and `capacity` in all. When either is
/// reached, further reads are refused until older ones expire: a server fails closed rather than
/// forget a nonce that could then be replayed. Only reads whose signature verified and whose
/// author is registered should be offered, so an outsider cannot fill it.
#[derive(Debug)]
pub struct ReplayGuard {
    seen: BTreeSet<(PartyId, ReadNonce)>,
    // Expiry time (issued_at + window) → the reads expiring then.
    expiry: BTreeMap<(i64, PartyId, ReadNonce), ()>,
    per_author: BTreeMap<PartyId, usize>,
    author_limit: usize,
    capacity: usize,
}

/// Default [`ReplayGuard`] capacity: some 16,000 reads a second sustained over the window, at
/// about 200 bytes each (some 200 MB at most).
pub const REPLAY_CAPACITY: usize = 1_000_000;

/// Default most live reads per author: 500 a second, sustained over the window.
pub const REPLAY_PER_AUTHOR: usize = 30_000;

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::new(REPLAY_CAPACITY, REPLAY_PER_AUTHOR)
    }
}

impl ReplayGuard {
    /// A guard remembering at most `capacity` reads, `per_author` of one author.
    pub fn new(capacity: usize, per_author: usize) -> Self {
        ReplayGuard {
            seen: BTreeSet::new(),
            expiry: BTreeMap::new(),
            per_author: BTreeMap::new(),
            author_limit: per_author,
            capacity,
        }
    }

    /// Number of reads remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no read is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Accepts `read` once: forgets reads that expired by `now`, then refuses a replay or a
    /// read beyond the limits, and otherwise remembers it until `issued_at + READ_WINDOW_MS`.
    /// Call only after [`SignedRead::check_for`] accepted its time.
    pub fn admit(&mut self, read: &SignedRead, now: Timestamp) -> Result<(), ReplayError> {
        self.expire(now);
        let key = (read.author, read.body.nonce);
        if self.seen.contains(&key) {
            return Err(ReplayError::Replayed {
                author: read.author.short(),
            });
        }
        let mine = self.per_author.get(&read.author).copied().unwrap_or(0);
        if mine >= self.author_limit {
            return Err(ReplayError::AuthorFull {
                author: read.author.short(),
                limit: self.author_limit,
                window_s: READ_WINDOW_MS / 1000,
            });
        }
        if self.seen.len() >= self.capacity {
            return Err(ReplayError::Full {
                limit: self.capacity,
            });
        }
        let until = read.body.issued_at.0.saturating_add(READ_WINDOW_MS);
        self.seen.insert(key);
        self.expiry.insert((until, key.0, key.1), ());
        *self.per_author.entry(read.author).or_insert(0) += 1;
        Ok(())
    }

    fn expire(&mut self, now: Timestamp) {
        while let Some(entry) = self.expiry.first_entry() {
            let (until, author, nonce) = *entry.key();
            if until >= now.0 {
                break;
            }
            entry.remove();
            self.seen.remove(&(author, nonce));
            if let Some(count) = self.per_author.get_mut(&author) {
                *count -= 1;
                if *count == 0 {
                    self.per_author.remove(&author);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use custos_crypto::context::TRANSACTION;

    fn key(seed: u8) -> SigningKeyPair {
        let secret = custos_crypto::SecretKey::from_slice(&[seed; 32]).expect("32 bytes");
        SigningKeyPair::from_secret(&secret)
    }

    fn chain() -> ChainId {
        ChainId::parse("custos-test").expect("a valid chain id")
    }

    fn read(k: &SigningKeyPair, nonce: u8, at: i64) -> pb::SignedRead {
        SignedRead::sign(
            &chain(),
            "/custos.ledger.v1.LedgerService/GetBlock",
            Timestamp(at),
            ReadNonce([nonce; READ_NONCE_BYTES]),
            &pb::GetBlockRequest { height: 1 },
            k,
        )
    }

    #[test]
    fn a_signed_read_verifies_and_names_its_author() {
        let k = key(1);
        let parsed = SignedRead::from_wire(&read(&k, 7, 1_000)).expect("a valid read");
        assert_eq!(parsed.author, PartyId(k.public()));
        assert_eq!(parsed.body.nonce, ReadNonce([7; READ_NONCE_BYTES]));
        assert_eq!(parsed.body.issued_at, Timestamp(1_000));
    }

    #[test]
    fn a_read_signed_without_the_context_is_refused() {
        let k = key(1);
        let mut wire = read(&k, 7, 1_000);
        wire.signature = k.sign(&wire.body).to_bytes().to_vec();
        let e = SignedRead::from_wire(&wire).expect_err("no context");
        assert_eq!(e.field, "signature");
    }

    #[test]
    fn a_transaction_signature_is_not_a_read() {
        let k = key(1);
        let mut wire = read(&k, 7, 1_000);
        wire.signature = k.sign_in(TRANSACTION, &wire.body).to_bytes().to_vec();
        let e = SignedRead::from_wire(&wire).expect_err("a transaction's context");
        assert_eq!(e.field, "signature");
    }

    #[test]
    fn a_body_naming_another_author_is_refused() {
        let (k, other) = (key(1), key(2));
        let mut body = pb::ReadBody::decode(read(&k, 7, 1_000).body.as_slice()).expect("decodes");
        body.author = other.public().as_bytes().to_vec();
        let bytes = body.encode_to_vec();
        let wire = pb::SignedRead {
            signature: k.sign_in(SIGNED_READ, &bytes).to_bytes().to_vec(),
            body: bytes,
            author: k.public().as_bytes().to_vec(),
        };
        let e = SignedRead::from_wire(&wire).expect_err("another author in the body");
        assert_eq!(e.field, "body.author");
    }

    #[test]
    fn a_v1_body_or_a_short_nonce_is_refused() {
        let k = key(1);
        for (change, field) in [
            (
                Box::new(|b: &mut pb::ReadBody| b.version = 1) as Box<dyn Fn(&mut pb::ReadBody)>,
                "body.version",
            ),
            (
                Box::new(|b: &mut pb::ReadBody| b.nonce.truncate(15)),
                "body.nonce",
            ),
        ] {
            let mut body =
                pb::ReadBody::decode(read(&k, 7, 1_000).body.as_slice()).expect("decodes");
            change(&mut body);
            let bytes = body.encode_to_vec();
            let wire = pb::SignedRead {
                signature: k.sign_in(SIGNED_READ, &bytes).to_bytes().to_vec(),
                body: bytes,
                author: k.public().as_bytes().to_vec(),
            };
            assert_eq!(SignedRead::from_wire(&wire).expect_err(field).field, field);
        }
    }

    #[test]
    fn freshness_is_sixty_seconds_either_way() {
        let parsed = SignedRead::from_wire(&read(&key(1), 7, 100_000)).expect("valid");
        let method = "/custos.ledger.v1.LedgerService/GetBlock";
        for now in [40_000, 100_000, 160_000] {
            parsed
                .check_for(&chain(), method, Timestamp(now), "node")
                .expect("inside");
        }
        for now in [39_999, 160_001] {
            let e = parsed
                .check_for(&chain(), method, Timestamp(now), "node")
                .expect_err("outside");
            assert_eq!(e.field, "body.issued_at_ms");
        }
        let e = parsed
            .check_for(
                &chain(),
                "/custos.ledger.v1.LedgerService/GetEntry",
                Timestamp(100_000),
                "node",
            )
            .expect_err("another method");
        assert_eq!(e.field, "body.method");
    }

    #[test]
    fn a_replayed_read_is_refused_until_it_expires() {
        let mut guard = ReplayGuard::default();
        let k = key(1);
        let first = SignedRead::from_wire(&read(&k, 7, 100_000)).expect("valid");
        guard.admit(&first, Timestamp(100_000)).expect("first use");
        assert!(matches!(
            guard.admit(&first, Timestamp(150_000)),
            Err(ReplayError::Replayed { .. })
        ));
        // Another nonce of the same author, or another author's same nonce, is a new read.
        let other_nonce = SignedRead::from_wire(&read(&k, 8, 100_000)).expect("valid");
        guard
            .admit(&other_nonce, Timestamp(100_000))
            .expect("new nonce");
        let other_author = SignedRead::from_wire(&read(&key(2), 7, 100_000)).expect("valid");
        guard
            .admit(&other_author, Timestamp(100_000))
            .expect("new author");
        assert_eq!(guard.len(), 3);
        // Past the window every one is forgotten (a server refuses them as stale by then).
        let later = SignedRead::from_wire(&read(&k, 9, 170_000)).expect("valid");
        guard
            .admit(&later, Timestamp(160_001))
            .expect("a later read");
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn a_full_guard_refuses_until_reads_expire() {
        let mut guard = ReplayGuard::new(3, 2);
        let (a, b) = (key(1), key(2));
        let parse = |k: &SigningKeyPair, n: u8| SignedRead::from_wire(&read(k, n, 100_000));
        guard
            .admit(&parse(&a, 1).expect("valid"), Timestamp(100_000))
            .expect("a 1");
        guard
            .admit(&parse(&a, 2).expect("valid"), Timestamp(100_000))
            .expect("a 2");
        assert!(matches!(
            guard.admit(&parse(&a, 3).expect("valid"), Timestamp(100_000)),
            Err(ReplayError::AuthorFull { limit: 2, .. })
        ));
        guard
            .admit(&parse(&b, 1).expect("valid"), Timestamp(100_000))
            .expect("b 1");
        assert!(matches!(
            guard.admit(&parse(&b, 2).expect("valid"), Timestamp(100_000)),
            Err(ReplayError::Full { limit: 3 })
        ));
        assert_eq!(guard.len(), 3);
        guard
            .admit(&parse(&b, 2).expect("valid"), Timestamp(160_001))
            .expect("room again once the window passed");
        assert_eq!(guard.len(), 1);
    }
}
