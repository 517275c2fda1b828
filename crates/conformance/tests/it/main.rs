//! The checked-in vectors are what the product produces, and the independent Python checker
//! agrees with them.

mod cross_checks;
mod pinned;
mod python;
