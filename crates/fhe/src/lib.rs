//! Aggregates encrypted cohorts: COUNT, SUM and MEAN with WHERE conjunctions over packed tfhe-rs
//! ciphertexts, additive (no bootstrapping) where the ingestion encodings allow, bootstrapped
//! with tfhe's integer API otherwise.
//!
//! Flow: the custodian (vault) holds a [`ClientKey`] and appends records to an
//! [`EncryptedTable`] under a [`Schema`]; a query text is planned with [`explain`]; a compute
//! worker runs [`evaluate`] over the table and a consent [`Cohort`]; the custodian releases the
//! value with [`decrypt_checked`] (k-anonymity threshold and provenance check). See the crate's
//! README for the encodings, the noise argument and the provenance argument.

mod decrypt;
mod error;
mod eval;
#[cfg(feature = "gpu")]
pub mod gpu;
mod keys;
mod math;
pub mod params;
mod payload;
mod plan;
mod query;
mod schema;
mod table;

pub use decrypt::{AggregateValue, decrypt_checked};
pub use error::{Error, Result};
pub use eval::{Cohort, EncryptedResult, NoProgress, Payload, ProgressSink, evaluate};
pub use keys::{
    ClientKey, CompressedServerKey, KeyId, KeyReport, PublicKey, ServerKey, measure_keys,
};
pub use payload::{decode_payload, encode_payload};
pub use plan::{LinearOutput, Plan, PlanBody, RowPredicate, explain};
pub use query::{Aggregate, Clause, Literal, MAX_CLAUSES, MAX_QUERY_BYTES, Op, Query};
pub use schema::{
    Attribute, AttributeKind, ColumnKey, Cross, Factor, Family, Record, Schema, Value,
};
pub use table::{EncryptedTable, StoredChunk};
