//! Fixed parameters of the packed additive encoding and its noise budget.

/// Ring degree N: rows packed per GLWE ciphertext (one chunk).
pub const CHUNK_ROWS: usize = 2048;
/// log2 of the scale Δ that multiplies every packed plaintext.
pub const LOG_DELTA: u32 = 34;
/// Plaintext space of a packed column and of every aggregate: integers mod 2^30.
pub const PLAINTEXT_BITS: u32 = 64 - LOG_DELTA;
/// Largest value a numeric attribute (in scaled units) or a cross column may hold.
pub const MAX_VALUE: u64 = 1023;
/// Most rows a table (and therefore a cohort) may hold: MAX_VALUE × MAX_ROWS < 2^30.
pub const MAX_ROWS: usize = 1 << 20;
/// Fresh noise is TUniform with this bound exponent: |e| ≤ 2^17 (tfhe's 2048/k=1 parameters).
pub const NOISE_BOUND_LOG2: u32 = 17;
/// Low body bits dropped at rest (bodies are stored as 56-bit words), rounding error ≤ 2^7.
pub const DROPPED_BODY_BITS: u32 = 8;
/// Bytes stored per packed body coefficient.
pub const BODY_BYTES: usize = 7;
/// Refuse any aggregate whose decryption-failure bound exceeds 2^-64.
pub const MAX_LOG2_FAILURE: f64 = -64.0;

/// Rigorous bound on log2 of the probability that an aggregate decrypts wrongly.
///
/// The aggregate's noise is Σ c_j (e_i + r_i) over the selected rows i and columns j with integer
/// coefficients c_j. Rounding |r_i| ≤ 2^7 is bounded deterministically by l1·rows·2^7; the fresh
/// noise terms are independent and bounded by 2^17, so Hoeffding gives
/// P(|Σ c_j e_i| ≥ t) ≤ 2·exp(−t² / (2·B²·rows·l2)) with t = Δ/2 − l1·rows·2^7.
pub fn log2_failure_bound(rows: usize, l1: u64, l2: u64) -> f64 {
    if rows == 0 || l1 == 0 {
        return f64::NEG_INFINITY;
    }
    let rows = rows as f64;
    let half_delta = 2f64.powi(LOG_DELTA as i32 - 1);
    let rounding = l1 as f64 * rows * 2f64.powi(DROPPED_BODY_BITS as i32 - 1);
    let t = half_delta - rounding;
    if t <= 0.0 {
        return 0.0;
    }
    let b2 = 2f64.powi(2 * NOISE_BOUND_LOG2 as i32);
    let exponent = t * t / (2.0 * b2 * rows * l2 as f64);
    // log2(2·e^{-x}) = 1 − x·log2(e)
    (1.0 - exponent * std::f64::consts::LOG2_E).min(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_table_with_a_two_attribute_range_stays_far_below_the_failure_threshold() {
        let bound = log2_failure_bound(MAX_ROWS, 4, 4);
        assert!(bound < -600.0, "bound {bound}");
        assert!(log2_failure_bound(MAX_ROWS, 16, 16) < MAX_LOG2_FAILURE);
    }

    #[test]
    fn the_plaintext_space_holds_the_largest_sum() {
        assert!((MAX_VALUE as u128) * (MAX_ROWS as u128) < (1u128 << PLAINTEXT_BITS));
    }
}
