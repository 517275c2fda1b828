//! Aggregate queries over encrypted cohorts with tfhe-rs.
