//! Predicate-proof bench (placeholder).

fn main() {}
