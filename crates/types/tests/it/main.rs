//! Integration tests of `custos-types`.

mod purpose_hl7;
