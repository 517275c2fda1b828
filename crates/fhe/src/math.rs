//! Exact negacyclic products in Z_{2^64}[X]/(X^N+1) through tfhe's f64 FFT, and seeded masks.
//!
//! A 64-bit mask polynomial is split into four 16-bit limbs; each limb times a polynomial with
//! small coefficients (a selector with entries in {0, ±1}, or a binary secret key) has integer
//! coefficients below 2^16·N per product, so even after summing the products of 512 chunks in the
//! Fourier domain the values stay below 2^36 and round back to the exact integers (f64 has 53 bits;
//! the rounding margin is checked on every inverse transform).

use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::Duration;

use tfhe::core_crypto::commons::computation_buffers::ComputationBuffers;
use tfhe::core_crypto::fft_impl::fft64::c64;
use tfhe::core_crypto::fft_impl::fft64::math::fft::{Method, Plan};
use tfhe_csprng::generators::aes_ctr::{AES_CALLS_PER_BATCH, Aes128Key, AesBlockCipher};
use tfhe_csprng::generators::default::DefaultAes128BlockCipher;

use crate::error::{Error, Result};
use crate::params::CHUNK_ROWS;

/// Number of complex points of one negacyclic transform.
pub(crate) const HALF: usize = CHUNK_ROWS / 2;
/// Limbs a 64-bit mask coefficient is split into.
pub(crate) const LIMBS: usize = 4;
const LIMB_BITS: u32 = 16;
/// Largest accepted distance between an inverse-transformed value and its nearest integer.
const ROUNDING_MARGIN: f64 = 0.25;

struct Fft {
    plan: Plan,
    twist_re: Vec<f64>,
    twist_im: Vec<f64>,
    scratch_bytes: usize,
}

fn fft() -> &'static Fft {
    static FFT: OnceLock<Fft> = OnceLock::new();
    FFT.get_or_init(|| {
        let plan = Plan::new(HALF, Method::Measure(Duration::from_millis(5)));
        let scratch_bytes = plan.fft_scratch().unaligned_bytes_required();
        let n = CHUNK_ROWS as f64;
        let (twist_re, twist_im) = (0..HALF)
            .map(|j| {
                let angle = std::f64::consts::PI * j as f64 / n;
                (angle.cos(), angle.sin())
            })
            .unzip();
        Fft {
            plan,
            twist_re,
            twist_im,
            scratch_bytes,
        }
    })
}

thread_local! {
    static SCRATCH: RefCell<ComputationBuffers> = RefCell::new(ComputationBuffers::new());
}

fn with_stack<R>(f: impl FnOnce(&Plan, &mut tfhe::core_crypto::prelude::PodStack) -> R) -> R {
    let fft = fft();
    SCRATCH.with(|cell| {
        let mut buffers = cell.borrow_mut();
        buffers.resize(fft.scratch_bytes);
        f(&fft.plan, buffers.stack())
    })
}

/// A polynomial in the (twisted, permuted) Fourier domain: N/2 complex points.
pub(crate) type Fourier = Vec<c64>;

pub(crate) fn zero_fourier() -> Fourier {
    vec![c64::new(0.0, 0.0); HALF]
}

/// Forward negacyclic transform of a polynomial given by its coefficient function.
pub(crate) fn forward_with(out: &mut [c64], coeff: impl Fn(usize) -> f64) {
    let fft = fft();
    for (j, o) in out.iter_mut().enumerate().take(HALF) {
        let (re, im) = (coeff(j), coeff(j + HALF));
        let (tr, ti) = (fft.twist_re[j], fft.twist_im[j]);
        *o = c64::new(re * tr - im * ti, re * ti + im * tr);
    }
    with_stack(|plan, stack| plan.fwd(out, stack));
}

/// `acc += a ⊙ b` pointwise.
pub(crate) fn mul_acc(acc: &mut [c64], a: &[c64], b: &[c64]) {
    for ((acc, a), b) in acc.iter_mut().zip(a).zip(b) {
        *acc += *a * *b;
    }
}

/// `acc += a` pointwise.
pub(crate) fn add_assign(acc: &mut [c64], a: &[c64]) {
    for (acc, a) in acc.iter_mut().zip(a) {
        *acc += *a;
    }
}

/// Inverse negacyclic transform rounded to exact integers (checked margin).
pub(crate) fn backward_round(fourier: &[c64], out: &mut [i64]) -> Result<()> {
    let fft = fft();
    let mut buf = fourier.to_vec();
    with_stack(|plan, stack| plan.inv(&mut buf, stack));
    let norm = 1.0 / HALF as f64;
    let mut worst = 0.0f64;
    for j in 0..HALF {
        let v = buf[j] * norm;
        let (tr, ti) = (fft.twist_re[j], -fft.twist_im[j]);
        let re = v.re * tr - v.im * ti;
        let im = v.re * ti + v.im * tr;
        let (rr, ri) = (re.round(), im.round());
        worst = worst.max((re - rr).abs()).max((im - ri).abs());
        out[j] = rr as i64;
        out[j + HALF] = ri as i64;
    }
    if worst > ROUNDING_MARGIN {
        return Err(Error::Precision { margin: worst });
    }
    Ok(())
}

/// Transforms the four 16-bit limbs of a 64-bit polynomial.
pub(crate) fn forward_limbs(poly: &[u64], out: &mut [Fourier; LIMBS]) {
    for (l, limb) in out.iter_mut().enumerate() {
        let shift = LIMB_BITS * l as u32;
        forward_with(limb, |j| ((poly[j] >> shift) & 0xffff) as f64);
    }
}

/// Recombines rounded limb products into a polynomial mod 2^64.
pub(crate) fn recombine_limbs(limbs: &[Fourier; LIMBS], out: &mut [u64]) -> Result<()> {
    out.iter_mut().for_each(|x| *x = 0);
    let mut tmp = vec![0i64; CHUNK_ROWS];
    for (l, limb) in limbs.iter().enumerate() {
        backward_round(limb, &mut tmp)?;
        let shift = LIMB_BITS * l as u32;
        for (o, t) in out.iter_mut().zip(&tmp) {
            *o = o.wrapping_add((*t as u64).wrapping_shl(shift));
        }
    }
    Ok(())
}

/// Exact negacyclic product of a 64-bit polynomial by a small one given in Fourier form.
pub(crate) fn mul_by_small(poly: &[u64], small: &[c64], out: &mut [u64]) -> Result<()> {
    let mut limbs: [Fourier; LIMBS] = std::array::from_fn(|_| zero_fourier());
    forward_limbs(poly, &mut limbs);
    for limb in limbs.iter_mut() {
        for (x, s) in limb.iter_mut().zip(small) {
            *x *= *s;
        }
    }
    recombine_limbs(&limbs, out)
}

/// Expands a 128-bit seed into a uniform mask polynomial with tfhe's AES-128-CTR block cipher.
pub(crate) fn expand_mask(seed: u128, out: &mut [u64]) {
    let mut cipher = DefaultAes128BlockCipher::new(Aes128Key::new(seed));
    let words_per_batch = AES_CALLS_PER_BATCH * 2;
    for (batch, words) in out.chunks_mut(words_per_batch).enumerate() {
        let base = (batch * AES_CALLS_PER_BATCH) as u128;
        let counters: [u128; AES_CALLS_PER_BATCH] = std::array::from_fn(|k| base + k as u128);
        let bytes = cipher.generate_batch(counters);
        for (w, b) in words.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut le = [0u8; 8];
            le.copy_from_slice(b);
            *w = u64::from_le_bytes(le);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn schoolbook(a: &[u64], b: &[i64]) -> Vec<u64> {
        let n = a.len();
        let mut out = vec![0u64; n];
        for i in 0..n {
            for j in 0..n {
                let p = a[i].wrapping_mul(b[j] as u64);
                if i + j < n {
                    out[i + j] = out[i + j].wrapping_add(p);
                } else {
                    out[i + j - n] = out[i + j - n].wrapping_sub(p);
                }
            }
        }
        out
    }

    #[test]
    fn fourier_product_of_a_64_bit_polynomial_by_a_ternary_one_is_exact() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let a: Vec<u64> = (0..CHUNK_ROWS).map(|_| rng.r#gen()).collect();
        let b: Vec<i64> = (0..CHUNK_ROWS).map(|_| rng.gen_range(-1..=1)).collect();
        let mut bf = zero_fourier();
        forward_with(&mut bf, |j| b[j] as f64);
        let mut out = vec![0u64; CHUNK_ROWS];
        mul_by_small(&a, &bf, &mut out).expect("rounding margin");
        assert_eq!(out, schoolbook(&a, &b));
    }

    #[test]
    fn mask_expansion_is_deterministic_and_seed_dependent() {
        let mut a = vec![0u64; CHUNK_ROWS];
        let mut b = vec![0u64; CHUNK_ROWS];
        let mut c = vec![0u64; CHUNK_ROWS];
        expand_mask(1, &mut a);
        expand_mask(1, &mut b);
        expand_mask(2, &mut c);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a[0], a[1]);
    }
}
