//! Evaluation of plans over an encrypted table and a consent cohort.

use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tfhe::core_crypto::prelude::{
    CiphertextModulus, GlweCiphertext, LweCiphertextOwned, LweSize, MonomialDegree, PolynomialSize,
    extract_lwe_sample_from_glwe_ciphertext,
};
use tfhe::integer::{BooleanBlock, IntegerCiphertext, RadixCiphertext};
use tfhe::shortint::ciphertext::{Degree, NoiseLevel};
use tfhe::shortint::parameters::{CarryModulus, MessageModulus};
use tfhe::shortint::{AtomicPatternKind, PBSOrder};

use crate::error::{Error, Result};
use crate::keys::{KeyId, ServerKey, sha256};
use crate::math::{self, Fourier, LIMBS};
use crate::params::{CHUNK_ROWS, LOG_DELTA, MAX_ROWS, MAX_VALUE};
use crate::plan::{LinearOutput, Plan, PlanBody, RowPredicate};
use crate::schema::{ColumnKey, Factor};
use crate::table::{EncryptedTable, PackedChunk};

const RESULT_MAGIC: &[u8; 8] = b"CFHE-RS1";
/// Scale of tfhe's 2-bit message + 2-bit carry encoding (with padding bit): 2^59.
const SHORTINT_LOG_DELTA: u32 = 59;

/// Receives progress of long evaluations: `done` of `total` units (chunks or rows).
pub trait ProgressSink: Sync {
    /// Called from worker threads as units complete.
    fn progress(&self, done: u64, total: u64);
}

impl<F: Fn(u64, u64) + Sync> ProgressSink for F {
    fn progress(&self, done: u64, total: u64) {
        self(done, total)
    }
}

/// A sink that ignores progress.
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn progress(&self, _: u64, _: u64) {}
}

/// The consent-selected rows: strictly increasing row indices.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cohort {
    rows: Vec<u32>,
}

impl Cohort {
    /// From sorted, distinct row indices (what the vault maps the ledger's record ids to).
    pub fn from_sorted_rows(rows: &[u64]) -> Result<Self> {
        if rows.len() > MAX_ROWS {
            return Err(Error::Cohort(format!(
                "expected at most {MAX_ROWS} rows, got {}",
                rows.len()
            )));
        }
        if let Some(w) = rows.windows(2).find(|w| w[0] >= w[1]) {
            return Err(Error::Cohort(format!(
                "expected strictly increasing rows, got {} then {}",
                w[0], w[1]
            )));
        }
        if let Some(last) = rows.last()
            && *last >= MAX_ROWS as u64
        {
            return Err(Error::Cohort(format!(
                "expected rows below {MAX_ROWS}, got {last}"
            )));
        }
        Ok(Self {
            rows: rows.iter().map(|r| *r as u32).collect(),
        })
    }

    /// Every row of a table of `rows` rows (a repacked table: see
    /// [`crate::EncryptedTable::repack`]).
    pub fn all(rows: u64) -> Result<Self> {
        let rows: Vec<u64> = (0..rows).collect();
        Self::from_sorted_rows(&rows)
    }

    /// From a bitmap over the table's rows.
    pub fn from_bitmap(bits: &[bool]) -> Result<Self> {
        let rows: Vec<u64> = bits
            .iter()
            .enumerate()
            .filter(|(_, b)| **b)
            .map(|(i, _)| i as u64)
            .collect();
        Self::from_sorted_rows(&rows)
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the cohort is empty.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows.
    pub fn rows(&self) -> impl Iterator<Item = u64> + '_ {
        self.rows.iter().map(|r| u64::from(*r))
    }

    /// SHA-256 of the rows.
    pub fn digest(&self) -> [u8; 32] {
        let bytes: Vec<u8> = self.rows.iter().flat_map(|r| r.to_le_bytes()).collect();
        sha256(&[b"custos-fhe cohort v1", &bytes])
    }

    fn check(&self, table: &EncryptedTable) -> Result<()> {
        match self.rows.last() {
            Some(last) if u64::from(*last) >= table.rows() => Err(Error::Cohort(format!(
                "expected rows below the table's {}, got {last}",
                table.rows()
            ))),
            _ => Ok(()),
        }
    }

    /// Rows grouped by chunk: (chunk index, local indices).
    fn by_chunk(&self) -> Vec<(usize, Vec<u16>)> {
        let mut out: Vec<(usize, Vec<u16>)> = Vec::new();
        for r in &self.rows {
            let (c, i) = (*r as usize / CHUNK_ROWS, (*r as usize % CHUNK_ROWS) as u16);
            match out.last_mut() {
                Some((lc, v)) if *lc == c => v.push(i),
                _ => out.push((c, vec![i])),
            }
        }
        out
    }
}

/// One encrypted output of a result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// An LWE ciphertext (dimension 2048, mask then body) under the custodian's key.
    Lwe(Vec<u64>),
    /// A tfhe radix ciphertext (postcard of tfhe's serde form).
    Radix(Vec<u8>),
}

/// The encrypted aggregate returned by the worker: a few ciphertexts bound to plan and cohort.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedResult {
    pub(crate) key_id: KeyId,
    pub(crate) plan_digest: [u8; 32],
    pub(crate) cohort_digest: [u8; 32],
    pub(crate) cohort_len: u64,
    pub(crate) table_rows: u64,
    pub(crate) outputs: Vec<(String, Payload)>,
}

impl EncryptedResult {
    /// Versioned encoding.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        postcard::to_extend(self, RESULT_MAGIC.to_vec()).map_err(|e| Error::Decode {
            what: "result",
            reason: e.to_string(),
        })
    }

    /// Loads a result written by [`EncryptedResult::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 8 || &bytes[..8] != RESULT_MAGIC {
            return Err(Error::Decode {
                what: "result",
                reason: format!("expected magic {:?}", String::from_utf8_lossy(RESULT_MAGIC)),
            });
        }
        postcard::from_bytes(&bytes[8..]).map_err(|e| Error::Decode {
            what: "result",
            reason: e.to_string(),
        })
    }

    /// SHA-256 of the encoding (for logs and the ledger).
    pub fn digest(&self) -> Result<[u8; 32]> {
        Ok(sha256(&[&self.to_bytes()?]))
    }

    /// Output names and payloads.
    pub fn outputs(&self) -> &[(String, Payload)] {
        &self.outputs
    }

    /// Replaces an output's payload (tests of the provenance check; a dishonest worker).
    #[doc(hidden)]
    pub fn tamper(&mut self, index: usize, payload: Payload) {
        if let Some(o) = self.outputs.get_mut(index) {
            o.1 = payload;
        }
    }
}

/// Evaluates `plan` over `table` restricted to `cohort`. Additive plans need no server key;
/// bootstrapped plans need one. Deterministic for additive plans.
pub fn evaluate(
    plan: &Plan,
    table: &EncryptedTable,
    cohort: &Cohort,
    server_key: Option<&ServerKey>,
    progress: &dyn ProgressSink,
) -> Result<EncryptedResult> {
    if plan.schema_digest() != table.schema().digest() {
        return Err(Error::KeyMismatch(
            "the plan was made for another schema".into(),
        ));
    }
    cohort.check(table)?;
    let outputs = match plan.body() {
        PlanBody::Additive { outputs } => additive_outputs(outputs, table, cohort, progress)?
            .into_iter()
            .map(|(n, l)| (n, Payload::Lwe(l)))
            .collect(),
        PlanBody::Bootstrapped { predicates, sum } => {
            let sk = server_key.ok_or(Error::MissingServerKey)?;
            if sk.id() != table.key_id() {
                return Err(Error::KeyMismatch(format!(
                    "table is under key {}, server key is {}",
                    table.key_id(),
                    sk.id()
                )));
            }
            bootstrapped_outputs(predicates, *sum, table, cohort, sk, progress)?
        }
    };
    Ok(EncryptedResult {
        key_id: table.key_id(),
        plan_digest: plan.digest(),
        cohort_digest: cohort.digest(),
        cohort_len: cohort.len() as u64,
        table_rows: table.rows(),
        outputs,
    })
}

struct Acc {
    limbs: Vec<[Fourier; LIMBS]>,
    body: Vec<u64>,
}

impl Acc {
    fn new(cols: usize) -> Self {
        Self {
            limbs: (0..cols)
                .map(|_| std::array::from_fn(|_| math::zero_fourier()))
                .collect(),
            body: vec![0; cols],
        }
    }

    fn merge(mut self, other: Acc) -> Acc {
        for (a, b) in self.limbs.iter_mut().zip(&other.limbs) {
            for (x, y) in a.iter_mut().zip(b) {
                math::add_assign(x, y);
            }
        }
        for (a, b) in self.body.iter_mut().zip(&other.body) {
            *a = a.wrapping_add(*b);
        }
        self
    }
}

/// Σ over the cohort of each column, as LWE ciphertexts (mask ‖ body).
pub(crate) fn column_sums(
    table: &EncryptedTable,
    cols: &[ColumnKey],
    cohort: &Cohort,
    progress: &dyn ProgressSink,
) -> Result<Vec<Vec<u64>>> {
    let data: Vec<&[PackedChunk]> = cols
        .iter()
        .map(|c| table.column(c))
        .collect::<Result<_>>()?;
    let groups = cohort.by_chunk();
    let total = groups.len() as u64;
    let done = AtomicU64::new(0);
    let acc = groups
        .par_iter()
        .with_min_len(4)
        .fold(
            || {
                (
                    Acc::new(cols.len()),
                    vec![0u64; CHUNK_ROWS],
                    std::array::from_fn::<Fourier, LIMBS, _>(|_| math::zero_fourier()),
                    math::zero_fourier(),
                    vec![0i8; CHUNK_ROWS],
                )
            },
            |(mut acc, mut mask, mut limbs, mut sel_f, mut sel), (chunk, local)| {
                sel.iter_mut().for_each(|s| *s = 0);
                for &i in local {
                    if i == 0 {
                        sel[0] = 1;
                    } else {
                        sel[CHUNK_ROWS - i as usize] = -1;
                    }
                }
                math::forward_with(&mut sel_f, |j| f64::from(sel[j]));
                for (c, col) in data.iter().enumerate() {
                    let ch = &col[*chunk];
                    let mut b = 0u64;
                    for &i in local {
                        b = b.wrapping_add(ch.body_at(i as usize));
                    }
                    acc.body[c] = acc.body[c].wrapping_add(b);
                    math::expand_mask(ch.seed, &mut mask);
                    math::forward_limbs(&mask, &mut limbs);
                    for (a, l) in acc.limbs[c].iter_mut().zip(&limbs) {
                        math::mul_acc(a, l, &sel_f);
                    }
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress.progress(d, total);
                (acc, mask, limbs, sel_f, sel)
            },
        )
        .map(|t| t.0)
        .reduce(|| Acc::new(cols.len()), Acc::merge);
    let modulus = CiphertextModulus::new_native();
    acc.limbs
        .par_iter()
        .zip(&acc.body)
        .map(|(limbs, body)| {
            let mut glwe = vec![0u64; 2 * CHUNK_ROWS];
            math::recombine_limbs(limbs, &mut glwe[..CHUNK_ROWS])?;
            glwe[CHUNK_ROWS] = *body;
            let glwe = GlweCiphertext::from_container(glwe, PolynomialSize(CHUNK_ROWS), modulus);
            let mut lwe = LweCiphertextOwned::new(0u64, LweSize(CHUNK_ROWS + 1), modulus);
            extract_lwe_sample_from_glwe_ciphertext(&glwe, &mut lwe, MonomialDegree(0));
            Ok(lwe.into_container())
        })
        .collect()
}

fn additive_outputs(
    outputs: &[LinearOutput],
    table: &EncryptedTable,
    cohort: &Cohort,
    progress: &dyn ProgressSink,
) -> Result<Vec<(String, Vec<u64>)>> {
    let mut cols: Vec<ColumnKey> = outputs
        .iter()
        .flat_map(|o| o.terms.iter().map(|(k, _)| k.clone()))
        .collect();
    cols.sort();
    cols.dedup();
    let sums = column_sums(table, &cols, cohort, progress)?;
    Ok(outputs
        .iter()
        .map(|o| {
            let mut out = vec![0u64; CHUNK_ROWS + 1];
            for (k, c) in &o.terms {
                let Ok(i) = cols.binary_search(k) else {
                    continue;
                };
                for (x, y) in out.iter_mut().zip(&sums[i]) {
                    *x = x.wrapping_add(y.wrapping_mul(*c as u64));
                }
            }
            let constant = (o.constant as u64).wrapping_mul(cohort.len() as u64);
            out[CHUNK_ROWS] = out[CHUNK_ROWS].wrapping_add(constant << LOG_DELTA);
            (o.name.clone(), out)
        })
        .collect())
}

/// Extracts row `row` of a packed column as an LWE ciphertext (mask ‖ body).
fn extract_row(chunk: &PackedChunk, local: usize) -> LweCiphertextOwned<u64> {
    let mut glwe = vec![0u64; 2 * CHUNK_ROWS];
    math::expand_mask(chunk.seed, &mut glwe[..CHUNK_ROWS]);
    for i in 0..CHUNK_ROWS {
        glwe[CHUNK_ROWS + i] = chunk.body_at(i);
    }
    let modulus = CiphertextModulus::new_native();
    let glwe = GlweCiphertext::from_container(glwe, PolynomialSize(CHUNK_ROWS), modulus);
    let mut lwe = LweCiphertextOwned::new(0u64, LweSize(CHUNK_ROWS + 1), modulus);
    extract_lwe_sample_from_glwe_ciphertext(&glwe, &mut lwe, MonomialDegree(local));
    lwe
}

/// A linear combination of packed rows re-encoded as a shortint block (Δ 2^34 → 2^59).
pub(crate) fn block(
    table: &EncryptedTable,
    terms: &[(ColumnKey, i64)],
    constant: i64,
    row: usize,
    degree: u64,
) -> Result<tfhe::shortint::Ciphertext> {
    let (c, i) = (row / CHUNK_ROWS, row % CHUNK_ROWS);
    let mut acc = vec![0u64; CHUNK_ROWS + 1];
    for (k, coef) in terms {
        let lwe = extract_row(&table.column(k)?[c], i);
        for (a, x) in acc.iter_mut().zip(lwe.as_ref()) {
            *a = a.wrapping_add(x.wrapping_mul(*coef as u64));
        }
    }
    acc[CHUNK_ROWS] = acc[CHUNK_ROWS].wrapping_add((constant as u64) << LOG_DELTA);
    let shift = SHORTINT_LOG_DELTA - LOG_DELTA;
    acc.iter_mut().for_each(|x| *x = x.wrapping_shl(shift));
    let lwe = LweCiphertextOwned::from_container(acc, CiphertextModulus::new_native());
    Ok(tfhe::shortint::Ciphertext::new(
        lwe,
        Degree::new(degree),
        NoiseLevel::NOMINAL,
        MessageModulus(4),
        CarryModulus(4),
        AtomicPatternKind::Standard(PBSOrder::KeyswitchBootstrap),
    ))
}

pub(crate) fn digits_radix(
    table: &EncryptedTable,
    attr: u16,
    digits: u16,
    row: usize,
) -> Result<RadixCiphertext> {
    let blocks = (0..digits)
        .map(|k| {
            block(
                table,
                &[(ColumnKey(vec![Factor::Digit(attr, k)]), 1)],
                0,
                row,
                3,
            )
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RadixCiphertext::from_blocks(blocks))
}

/// Radix blocks needed to hold values up to `max`.
pub(crate) fn blocks_for(max: u64) -> usize {
    ((64 - max.max(1).leading_zeros()) as usize).div_ceil(2)
}

fn bootstrapped_outputs(
    predicates: &[RowPredicate],
    sum: Option<(u16, u16)>,
    table: &EncryptedTable,
    cohort: &Cohort,
    sk: &ServerKey,
    progress: &dyn ProgressSink,
) -> Result<Vec<(String, Payload)>> {
    let sks = &sk.inner;
    let n = cohort.len() as u64;
    let count_blocks = blocks_for(n);
    let sum_blocks = blocks_for(n.max(1) * MAX_VALUE);
    let mut counts = Vec::with_capacity(cohort.len());
    let mut sums = Vec::new();
    for (done, row) in cohort.rows().enumerate() {
        let row = row as usize;
        let mut bit: Option<BooleanBlock> = None;
        for p in predicates {
            let b = match p {
                RowPredicate::Linear { terms, constant } => {
                    BooleanBlock::new_unchecked(block(table, terms, *constant, row, 1)?)
                }
                RowPredicate::Radix {
                    attr,
                    digits,
                    lo,
                    hi,
                } => {
                    let v = digits_radix(table, *attr, *digits, row)?;
                    let ge = lo.map(|lo| sks.scalar_ge_parallelized(&v, lo));
                    let lt = hi.map(|hi| sks.scalar_lt_parallelized(&v, hi));
                    match (ge, lt) {
                        (Some(a), Some(b)) => sks.boolean_bitand(&a, &b),
                        (Some(a), None) | (None, Some(a)) => a,
                        (None, None) => sks.create_trivial_boolean_block(true),
                    }
                }
            };
            bit = Some(match bit {
                None => b,
                Some(a) => sks.boolean_bitand(&a, &b),
            });
        }
        let bit = bit.unwrap_or_else(|| sks.create_trivial_boolean_block(true));
        if let Some((attr, digits)) = sum {
            let mut v = digits_radix(table, attr, digits, row)?;
            sks.extend_radix_with_trivial_zero_blocks_msb_assign(
                &mut v,
                sum_blocks - digits as usize,
            );
            let zero: RadixCiphertext = sks.create_trivial_zero_radix(sum_blocks);
            sums.push(sks.cmux_parallelized(&bit, &v, &zero));
        }
        counts.push(bit.into_radix::<RadixCiphertext>(count_blocks, sks));
        progress.progress(done as u64 + 1, n);
    }
    let total = |cts: Vec<RadixCiphertext>, blocks: usize| -> Result<Vec<u8>> {
        let ct = sks
            .sum_ciphertexts_parallelized(&cts)
            .unwrap_or_else(|| sks.create_trivial_zero_radix(blocks));
        postcard::to_stdvec(&ct).map_err(|e| Error::Decode {
            what: "radix ciphertext",
            reason: e.to_string(),
        })
    };
    let mut out = vec![(
        "count".to_string(),
        Payload::Radix(total(counts, count_blocks)?),
    )];
    if sum.is_some() {
        out.push(("sum".to_string(), Payload::Radix(total(sums, sum_blocks)?)));
    }
    Ok(out)
}
