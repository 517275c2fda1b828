//! The bootstrapped path on tfhe's CUDA backend (feature `gpu`).
//!
//! Row blocks are extracted from the packed columns on the CPU exactly as in the CPU path, moved
//! to the GPU, and the per-row comparisons, AND, selection and the final radix sum run there.
//! Additive plans stay on the CPU (they are bound by memory, not by bootstrapping).

use tfhe::core_crypto::gpu::CudaStreams;
use tfhe::integer::gpu::CudaServerKey;
use tfhe::integer::gpu::ciphertext::CudaUnsignedRadixCiphertext;
use tfhe::integer::gpu::ciphertext::boolean_value::CudaBooleanBlock;
use tfhe::integer::{BooleanBlock, RadixCiphertext};

use crate::error::{Error, Result};
use crate::eval::{Cohort, EncryptedResult, Payload, ProgressSink, blocks_for};
use crate::keys::{CompressedServerKey, KeyId};
use crate::params::MAX_VALUE;
use crate::plan::{Plan, PlanBody, RowPredicate};
use crate::table::EncryptedTable;

/// A server key decompressed onto the GPU(s).
pub struct GpuServerKey {
    id: KeyId,
    key: CudaServerKey,
    streams: CudaStreams,
}

impl GpuServerKey {
    /// Decompresses a compressed server key onto every visible GPU.
    pub fn new(compressed: &CompressedServerKey) -> Self {
        let streams = CudaStreams::new_multi_gpu();
        let key = CudaServerKey::decompress_from_cpu(compressed.inner(), &streams);
        Self {
            id: compressed.id(),
            key,
            streams,
        }
    }
}

/// Evaluates a plan: bootstrapped plans on the GPU, additive plans on the CPU. The result is the
/// same format as [`crate::evaluate`]'s and passes the same checks.
pub fn evaluate_gpu(
    plan: &Plan,
    table: &EncryptedTable,
    cohort: &Cohort,
    key: &GpuServerKey,
    progress: &dyn ProgressSink,
) -> Result<EncryptedResult> {
    let PlanBody::Bootstrapped { predicates, sum } = plan.body() else {
        return crate::eval::evaluate(plan, table, cohort, None, progress);
    };
    if key.id != table.key_id() {
        return Err(Error::KeyMismatch(format!(
            "table is under key {}, GPU server key is {}",
            table.key_id(),
            key.id
        )));
    }
    let (sks, s) = (&key.key, &key.streams);
    let n = cohort.len() as u64;
    let count_blocks = blocks_for(n);
    let sum_blocks = blocks_for(n.max(1) * MAX_VALUE);
    let mut counts = Vec::new();
    let mut sums = Vec::new();
    for (done, row) in cohort.rows().enumerate() {
        let row = row as usize;
        let mut bit: Option<CudaBooleanBlock> = None;
        for p in predicates {
            let b = match p {
                RowPredicate::Linear { terms, constant } => {
                    let cpu = BooleanBlock::new_unchecked(crate::eval::block(
                        table, terms, *constant, row, 1,
                    )?);
                    CudaBooleanBlock::from_boolean_block(&cpu, s)
                }
                RowPredicate::Radix {
                    attr,
                    digits,
                    lo,
                    hi,
                } => {
                    let cpu = crate::eval::digits_radix(table, *attr, *digits, row)?;
                    let v = CudaUnsignedRadixCiphertext::from_radix_ciphertext(&cpu, s);
                    let ge = lo.map(|lo| sks.scalar_ge(&v, lo, s));
                    let lt = hi.map(|hi| sks.scalar_lt(&v, hi, s));
                    match (ge, lt) {
                        (Some(a), Some(b)) => sks.boolean_bitand(&a, &b, s),
                        (Some(a), None) | (None, Some(a)) => a,
                        (None, None) => sks.scalar_ge(&v, 0u64, s),
                    }
                }
            };
            bit = Some(match bit {
                None => b,
                Some(a) => sks.boolean_bitand(&a, &b, s),
            });
        }
        let Some(bit) = bit else {
            return Err(Error::Unsupported(
                "a bootstrapped plan without predicates".into(),
            ));
        };
        if let Some((attr, digits)) = sum {
            let cpu = crate::eval::digits_radix(table, *attr, *digits, row)?;
            let v = CudaUnsignedRadixCiphertext::from_radix_ciphertext(&cpu, s);
            let v = sks.cast_to_unsigned(v, sum_blocks, s);
            let zero: CudaUnsignedRadixCiphertext = sks.create_trivial_zero_radix(sum_blocks, s);
            sums.push(sks.if_then_else(&bit, &v, &zero, s));
        }
        counts.push(sks.cast_to_unsigned(bit.0, count_blocks, s));
        progress.progress(done as u64 + 1, n);
    }
    let total = |cts: Vec<CudaUnsignedRadixCiphertext>, blocks: usize| -> Result<Vec<u8>> {
        let ct: RadixCiphertext = match sks.sum_ciphertexts(cts, s) {
            Some(ct) => ct.to_radix_ciphertext(s),
            None => sks
                .create_trivial_zero_radix::<CudaUnsignedRadixCiphertext>(blocks, s)
                .to_radix_ciphertext(s),
        };
        postcard::to_stdvec(&ct).map_err(|e| Error::Decode {
            what: "radix ciphertext",
            reason: e.to_string(),
        })
    };
    let mut outputs = vec![(
        "count".to_string(),
        Payload::Radix(total(counts, count_blocks)?),
    )];
    if sum.is_some() {
        outputs.push(("sum".to_string(), Payload::Radix(total(sums, sum_blocks)?)));
    }
    Ok(EncryptedResult {
        key_id: table.key_id(),
        plan_digest: plan.digest(),
        cohort_digest: cohort.digest(),
        cohort_len: n,
        table_rows: table.rows(),
        outputs,
    })
}
