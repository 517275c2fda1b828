//! Integration tests of custos-consent, in one binary so that they link once.
//!
//! Each module drives the state machine through scenarios built with [`fixture`]; test names
//! read as the rule they check.

mod aggregate;
mod authority;
mod break_glass;
mod decisions;
mod determinism;
mod fixture;
mod governance;
mod pinned;
mod registration;
mod release;
mod scope;
mod validators;
