//! Read budgets: how many signed reads a server serves a second, in all and per author.
//!
//! Reads never decide anything, yet each costs a server CPU (decode, a signature check, a
//! state lookup, often a proof). A server shares its cores with consensus, so an unbounded read
//! load slows every transaction's finality. A [`ReadBudget`] bounds that work with two token
//! buckets:
//! - the server's: every signed read takes a token **before** its signature is checked, so
//!   reads with bad signatures spend the same budget and cannot cost more than it;
//! - the author's: taken after the signature verified and the author is known to be
//!   registered, so one busy reader cannot take the whole server budget from the others.
//!
//! A read beyond either is refused with the time after which a token will be there; the server
//! answers RESOURCE_EXHAUSTED with that hint. Time is passed in (a monotonic [`Instant`]).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::ids::PartyId;

/// The rates a [`ReadBudget`] enforces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ReadLimits {
    /// Signed reads a second the server serves, all authors together.
    pub per_second: u32,
    /// Reads the server may serve at once after a quiet spell.
    pub burst: u32,
    /// Signed reads a second one author may make.
    pub per_author_per_second: u32,
    /// Reads one author may make at once after a quiet spell.
    pub per_author_burst: u32,
}

impl Default for ReadLimits {
    /// 2,000 reads a second per server (bursts of 500), 200 per author (bursts of 100): far
    /// above what auditors, patients and partners make, and on two cores some 10% of the CPU.
    fn default() -> Self {
        ReadLimits {
            per_second: 2_000,
            burst: 500,
            per_author_per_second: 200,
            per_author_burst: 100,
        }
    }
}

impl ReadLimits {
    /// Refuses a zero rate or burst (which would refuse every read), naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("per_second", self.per_second),
            ("burst", self.burst),
            ("per_author_per_second", self.per_author_per_second),
            ("per_author_burst", self.per_author_burst),
        ] {
            if value == 0 {
                return Err(format!(
                    "{name}: must be at least 1 (0 would refuse every read)"
                ));
            }
        }
        Ok(())
    }
}

/// Why a [`ReadBudget`] refused a read.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
pub enum BudgetError {
    /// The server's budget is spent for now.
    #[error(
        "read budget: this server serves at most {per_second} signed reads a second and is at \
         that rate; retry after {} ms",
        retry_after.as_millis()
    )]
    Server {
        /// The server's rate.
        per_second: u32,
        /// When a token will be there.
        retry_after: Duration,
    },
    /// The author's budget is spent for now.
    #[error(
        "read budget: author {author} may make at most {per_second} signed reads a second; \
         retry after {} ms",
        retry_after.as_millis()
    )]
    Author {
        /// The author, shortened.
        author: String,
        /// The per-author rate.
        per_second: u32,
        /// When a token will be there.
        retry_after: Duration,
    },
}

impl BudgetError {
    /// How long to wait before a token is there.
    pub fn retry_after(&self) -> Duration {
        match self {
            BudgetError::Server { retry_after, .. } | BudgetError::Author { retry_after, .. } => {
                *retry_after
            }
        }
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` banked.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(burst),
            at: now,
        }
    }

    fn refill(&mut self, rate: u32, burst: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(rate)).min(f64::from(burst));
        self.at = now;
    }

    /// Takes one token, or says when one will be there.
    fn take(&mut self, rate: u32, burst: u32, now: Instant) -> Result<(), Duration> {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - self.tokens;
        Err(Duration::from_secs_f64(missing / f64::from(rate.max(1))))
    }

    fn is_full(&self, rate: u32, burst: u32, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens + elapsed * f64::from(rate) >= f64::from(burst)
    }
}

/// Authors' buckets kept before idle (full) ones are forgotten; a forgotten bucket is full, so
/// forgetting it changes nothing.
const AUTHORS_KEPT: usize = 4_096;

/// A server's read budget (see the module documentation).
#[derive(Debug)]
pub struct ReadBudget {
    limits: ReadLimits,
    server: Bucket,
    authors: BTreeMap<PartyId, Bucket>,
}

impl ReadBudget {
    /// A budget with `limits`, full at `now`.
    pub fn new(limits: ReadLimits, now: Instant) -> Self {
        ReadBudget {
            limits,
            server: Bucket::full(limits.burst, now),
            authors: BTreeMap::new(),
        }
    }

    /// The limits this budget enforces.
    pub fn limits(&self) -> ReadLimits {
        self.limits
    }

    /// Takes a token from the server's bucket: call before any work on a signed read.
    pub fn take_server(&mut self, now: Instant) -> Result<(), BudgetError> {
        let ReadLimits {
            per_second, burst, ..
        } = self.limits;
        self.server
            .take(per_second, burst, now)
            .map_err(|retry_after| BudgetError::Server {
                per_second,
                retry_after,
            })
    }

    /// Takes a token from `author`'s bucket: call once the read's signature verified and its
    /// author is registered.
    pub fn take_author(&mut self, author: &PartyId, now: Instant) -> Result<(), BudgetError> {
        let ReadLimits {
            per_author_per_second: rate,
            per_author_burst: burst,
            ..
        } = self.limits;
        if self.authors.len() >= AUTHORS_KEPT && !self.authors.contains_key(author) {
            self.authors.retain(|_, b| !b.is_full(rate, burst, now));
        }
        let bucket = self
            .authors
            .entry(*author)
            .or_insert_with(|| Bucket::full(burst, now));
        bucket
            .take(rate, burst, now)
            .map_err(|retry_after| BudgetError::Author {
                author: author.short(),
                per_second: rate,
                retry_after,
            })
    }

    /// Number of authors whose buckets are remembered.
    pub fn authors_remembered(&self) -> usize {
        self.authors.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(i: u32) -> PartyId {
        let mut seed = [7u8; 32];
        seed[..4].copy_from_slice(&i.to_be_bytes());
        let secret = custos_crypto::SecretKey::from_slice(&seed).expect("32 bytes");
        PartyId(custos_crypto::SigningKeyPair::from_secret(&secret).public())
    }

    fn limits() -> ReadLimits {
        ReadLimits {
            per_second: 10,
            burst: 5,
            per_author_per_second: 2,
            per_author_burst: 3,
        }
    }

    #[test]
    fn a_server_serves_its_burst_then_refuses_with_a_retry_hint() {
        let t0 = Instant::now();
        let mut budget = ReadBudget::new(limits(), t0);
        for _ in 0..5 {
            budget.take_server(t0).expect("within the burst");
        }
        let refused = budget.take_server(t0).expect_err("burst spent");
        assert_eq!(refused.retry_after(), Duration::from_millis(100));
        assert!(refused.to_string().contains("10 signed reads a second"));
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_never_beyond_the_burst() {
        let t0 = Instant::now();
        let mut budget = ReadBudget::new(limits(), t0);
        for _ in 0..5 {
            budget.take_server(t0).expect("within the burst");
        }
        // 0.3 s later three tokens are back (10 a second), not four.
        let t1 = t0 + Duration::from_millis(300);
        for _ in 0..3 {
            budget.take_server(t1).expect("refilled");
        }
        assert!(budget.take_server(t1).is_err());
        // An hour later the bucket holds the burst, not 36,000 tokens.
        let t2 = t1 + Duration::from_secs(3600);
        for _ in 0..5 {
            budget.take_server(t2).expect("full again");
        }
        assert!(budget.take_server(t2).is_err());
    }

    #[test]
    fn one_author_cannot_take_another_authors_budget() {
        let t0 = Instant::now();
        let mut budget = ReadBudget::new(limits(), t0);
        let (a, b) = (party(1), party(2));
        for _ in 0..3 {
            budget.take_author(&a, t0).expect("a's burst");
        }
        let refused = budget.take_author(&a, t0).expect_err("a's burst spent");
        assert!(matches!(refused, BudgetError::Author { .. }));
        assert_eq!(refused.retry_after(), Duration::from_millis(500));
        budget.take_author(&b, t0).expect("b has its own bucket");
    }

    #[test]
    fn idle_authors_are_forgotten_so_memory_stays_bounded() {
        let t0 = Instant::now();
        let mut budget = ReadBudget::new(limits(), t0);
        for i in 0..AUTHORS_KEPT as u32 {
            budget.take_author(&party(i), t0).expect("a fresh author");
        }
        assert_eq!(budget.authors_remembered(), AUTHORS_KEPT);
        // Two seconds later every bucket is full again and may be forgotten.
        let later = t0 + Duration::from_secs(2);
        budget
            .take_author(&party(u32::MAX), later)
            .expect("a new author");
        assert_eq!(budget.authors_remembered(), 1);
    }

    #[test]
    fn a_zero_rate_is_refused_by_name() {
        let zero = ReadLimits {
            per_author_burst: 0,
            ..limits()
        };
        let error = zero.validate().expect_err("zero burst");
        assert!(error.starts_with("per_author_burst"), "{error}");
        limits().validate().expect("sane limits");
    }
}
