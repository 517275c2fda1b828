//! The crate's error type.

/// Errors of schema handling, ingestion, planning, evaluation and checked decryption.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The query text could not be parsed.
    #[error("query syntax: expected {expected} at byte {position}, found {found:?}")]
    Syntax {
        /// What the parser expected.
        expected: String,
        /// Byte offset of the offending token.
        position: usize,
        /// The offending token.
        found: String,
    },
    /// The query is empty or too long.
    #[error("query size: expected 1..={max} bytes, got {got}")]
    QuerySize {
        /// Largest accepted length.
        max: usize,
        /// Length received.
        got: usize,
    },
    /// The query has too many WHERE clauses.
    #[error("too many clauses: expected at most {max}, got {got}")]
    TooManyClauses {
        /// Largest accepted number of clauses.
        max: usize,
        /// Number received.
        got: usize,
    },
    /// The query or a record names an attribute the schema does not have.
    #[error("unknown attribute {name:?} (expected one of {known})")]
    UnknownAttribute {
        /// The name received.
        name: String,
        /// The schema's attribute names.
        known: String,
    },
    /// An operator or literal does not fit the attribute's type or encoding.
    #[error("type mismatch on {attribute}: expected {expected}, got {got}")]
    TypeMismatch {
        /// Attribute concerned.
        attribute: String,
        /// What fits the attribute.
        expected: String,
        /// What came.
        got: String,
    },
    /// The query cannot be evaluated with the table's encodings.
    #[error("unsupported query: {0}")]
    Unsupported(String),
    /// The schema is malformed.
    #[error("invalid schema: {0}")]
    Schema(String),
    /// A record does not fit the schema.
    #[error("invalid record: {0}")]
    Record(String),
    /// The table would exceed its capacity.
    #[error("table capacity: expected at most {max} rows, got {got}")]
    Capacity {
        /// Largest supported row count.
        max: usize,
        /// Rows requested.
        got: usize,
    },
    /// A cohort row index is out of range or the cohort is not strictly increasing.
    #[error("invalid cohort: {0}")]
    Cohort(String),
    /// The cohort (or the matching rows) is smaller than the k-anonymity threshold.
    #[error("cohort too small: expected at least {k_min} rows, got {got}")]
    CohortTooSmall {
        /// Threshold.
        k_min: u64,
        /// Rows in the cohort or matching the predicate.
        got: u64,
    },
    /// The result is not the honest evaluation of the plan over the table and cohort.
    #[error("provenance check failed: {0}")]
    Provenance(String),
    /// The noise budget would not guarantee a correct decryption.
    #[error("noise budget: failure bound 2^{log2_failure:.1} above the accepted 2^{max:.0}")]
    NoiseBudget {
        /// log2 of the failure probability bound.
        log2_failure: f64,
        /// Accepted maximum.
        max: f64,
    },
    /// A Fourier product did not round to integers (should never happen within the limits).
    #[error("fourier rounding margin: expected at most 0.25, got {margin}")]
    Precision {
        /// Largest distance to the nearest integer seen.
        margin: f64,
    },
    /// A serialized object is malformed.
    #[error("decoding {what}: {reason}")]
    Decode {
        /// Object being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// A key does not match the object it is used with.
    #[error("key mismatch: {0}")]
    KeyMismatch(String),
    /// A bootstrapped plan was evaluated without a server key.
    #[error("missing server key: the plan needs bootstrapping")]
    MissingServerKey,
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
