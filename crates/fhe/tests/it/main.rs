//! Integration tests of custos-fhe: plans agree with plaintext, limits hold, forgeries fail.

mod additive;
mod bootstrapped;
mod common;
mod errors;
mod provenance;
mod stored;
