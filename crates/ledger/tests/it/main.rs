//! Integration tests of custos-ledger, in one binary so that they link once.

mod certificates;
mod merkle_tree;
mod merkle_vectors;
