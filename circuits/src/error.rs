//! The crate's error type.

use ark_relations::gr1cs::SynthesisError;

/// Everything that can go wrong while committing, parsing predicates, handling keys, proving or
/// verifying.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A predicate named an attribute the schema does not have.
    #[error("unknown attribute `{name}`: expected one of {known}")]
    UnknownAttribute {
        /// The name that was given.
        name: String,
        /// The schema's names, comma-separated.
        known: String,
    },
    /// An attribute index outside `0..N_ATTRS`.
    #[error("attribute index out of range: expected 0..{max}, got {got}")]
    AttributeIndexOutOfRange {
        /// The exclusive upper bound (`N_ATTRS`).
        max: usize,
        /// The index that was given.
        got: usize,
    },
    /// A predicate with more clauses than the circuit has slots.
    #[error("too many clauses: expected at most {max}, got {got}")]
    TooManyClauses {
        /// `MAX_CLAUSES`.
        max: usize,
        /// The number of clauses that was given.
        got: usize,
    },
    /// A constant that does not fit the 32-bit range the circuit compares over.
    #[error("constant out of range: expected an integer in 0..={max}, got `{got}`")]
    ConstantOutOfRange {
        /// The largest accepted constant (`u32::MAX`).
        max: u32,
        /// The text that was given.
        got: String,
    },
    /// A set-membership clause with more constants than the circuit has slots.
    #[error("set too big: expected at most {max} distinct constants, got {got}")]
    SetTooBig {
        /// `MAX_SET`.
        max: usize,
        /// The number of distinct constants that was given.
        got: usize,
    },
    /// A set-membership clause with no constants.
    #[error("empty set in clause `{clause}`: expected 1 to {max} constants")]
    EmptySet {
        /// The clause as written.
        clause: String,
        /// `MAX_SET`.
        max: usize,
    },
    /// Text that is not a predicate.
    #[error("cannot parse clause `{clause}`: {reason}")]
    Syntax {
        /// The clause as written.
        clause: String,
        /// What was expected.
        reason: String,
    },
    /// A schema that is not a list of distinct identifiers.
    #[error("invalid schema: {0}")]
    InvalidSchema(String),
    /// Bytes that are not the canonical encoding of a BN254 scalar.
    #[error(
        "invalid {what}: expected the 32-byte canonical little-endian encoding of a BN254 scalar below the modulus, got {got}"
    )]
    NonCanonicalScalar {
        /// What was being decoded (commitment, salt...).
        what: &'static str,
        /// The bytes, hex-encoded, or a description of their length.
        got: String,
    },
    /// A key artifact whose SHA-256 is not the expected id.
    #[error("key artifact id mismatch: expected {expected}, got {got}")]
    KeyIdMismatch {
        /// The expected id, hex.
        expected: String,
        /// The id of the bytes that were given, hex.
        got: String,
    },
    /// A key artifact with a wrong or unsupported header.
    #[error("invalid key artifact header: expected {expected}, got {got}")]
    KeyHeader {
        /// What the header should have been.
        expected: String,
        /// What it was.
        got: String,
    },
    /// A key artifact whose body does not decode, or does not match the circuit's shape.
    #[error("invalid key artifact body: {0}")]
    KeyBody(String),
    /// Proof bytes of the wrong length.
    #[error("invalid proof length: expected {expected} bytes, got {got}")]
    ProofLength {
        /// `PROOF_BYTES`.
        expected: usize,
        /// The length that was given.
        got: usize,
    },
    /// Proof bytes of the right length that are not valid curve points.
    #[error(
        "invalid proof encoding: expected three compressed points in the prime-order subgroups (A, C in G1, B in G2), got {0}"
    )]
    ProofEncoding(String),
    /// A proof that does not verify for the given public inputs and key.
    #[error(
        "proof rejected: it does not prove the statement for this commitment, predicate, request binding and verifying key"
    )]
    ProofRejected,
    /// A batch in which at least one proof does not verify.
    #[error("batch rejected: at least one of the {count} proofs does not verify")]
    BatchRejected {
        /// The number of proofs in the batch.
        count: usize,
    },
    /// The prover's attributes and salt do not open the public commitment.
    #[error(
        "witness does not open the commitment: expected {expected}, the attributes and salt commit to {got}"
    )]
    CommitmentMismatch {
        /// The public commitment, hex.
        expected: String,
        /// The commitment of the private witness, hex.
        got: String,
    },
    /// The prover's attributes do not satisfy the predicate.
    #[error("attributes do not satisfy the predicate `{predicate}`")]
    PredicateNotSatisfied {
        /// The predicate, in the default schema's textual form.
        predicate: String,
    },
    /// The constraint system refused the circuit.
    #[error("constraint synthesis failed: {0}")]
    Synthesis(#[from] SynthesisError),
    /// A file could not be read or written.
    #[error("i/o error on {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// JSON could not be produced.
    #[error("json error: {0}")]
    Json(#[from] serde_json::Error),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
