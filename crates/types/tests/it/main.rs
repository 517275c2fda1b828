//! Integration tests of `custos-types`.

mod aggregate;
mod purpose_hl7;

mod encoding;
