//! Groth16 predicate proofs over a Poseidon commitment to a record's attributes (BN254).
