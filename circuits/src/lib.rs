//! Groth16 predicate proofs over a Poseidon commitment to a record's attributes (BN254).
//!
//! A record's eight `u32` attributes are committed with Poseidon under a random salt
//! ([`AttributeCommitment`]); the ledger stores the 32-byte [`Commitment`]. A vault that holds
//! the attributes and salt proves, with [`PredicateProof::prove`], that they satisfy a
//! [`Predicate`] (`age>=18 && smoker=0`), bound to one request and partner ([`RequestBinding`]),
//! revealing nothing else. A partner verifies with [`PredicateProof::verify`] under the
//! verifying key whose [`KeyId`] governance registered. One circuit of fixed shape serves every
//! predicate, so one [`setup`] is enough.
//!
//! Modules: [`attributes`] (schema, values, salt), [`commitment`] (Poseidon, native and
//! gadget), [`predicate`] (native twin and clause gadget), [`predicate_proof`] (the statement),
//! [`keys`] (identified artifacts), [`snarkjs`] (interoperable JSON export).

pub mod attributes;
pub mod commitment;
mod error;
mod field;
pub mod keys;
pub mod predicate;
pub mod predicate_proof;
pub mod snarkjs;

pub use attributes::{Attributes, DEFAULT_SCHEMA_NAMES, N_ATTRS, Salt, Schema};
pub use commitment::{AttributeCommitment, Commitment};
pub use error::{Error, Result};
pub use keys::{KeyId, ProvingKeyArtifact, VerifyingKeyArtifact, setup};
pub use predicate::{Clause, Condition, ConstSet, MAX_CLAUSES, MAX_SET, Op, Predicate};
pub use predicate_proof::{
    NUM_PUBLIC_INPUTS, PROOF_BYTES, PredicateCircuit, PredicatePrivate, PredicateProof,
    PredicatePublic, RequestBinding,
};
