//! Integration tests of `custos-types`.

mod aggregate;
mod authorship;
mod purpose_hl7;

mod encoding;
