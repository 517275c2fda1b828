//! Integration tests of `custos-types`.

mod purpose_hl7;

mod encoding;
