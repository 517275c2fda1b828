//! Custodian side: k-anonymity threshold, provenance check, decryption.

use std::collections::BTreeMap;

use tfhe::core_crypto::prelude::{CiphertextModulus, LweCiphertextOwned};
use tfhe::integer::RadixCiphertext;

use crate::error::{Error, Result};
use crate::eval::{Cohort, EncryptedResult, NoProgress, Payload, evaluate};
use crate::keys::ClientKey;
use crate::params::CHUNK_ROWS;
use crate::plan::{Plan, PlanBody, RowPredicate};
use crate::query::Aggregate;
use crate::schema::{AttributeKind, ColumnKey, Factor};
use crate::table::EncryptedTable;

/// A decrypted, checked aggregate.
#[derive(Clone, Debug, PartialEq)]
pub enum AggregateValue {
    /// COUNT.
    Count(u64),
    /// SUM: the total in the attribute's unit, its integer units, and the matching count.
    Sum {
        /// Total as a number (units / scale).
        total: f64,
        /// Total in integer units.
        units: u64,
        /// Matching rows.
        count: u64,
    },
    /// MEAN = SUM / COUNT.
    Mean {
        /// The mean (None when nothing matched).
        mean: Option<f64>,
        /// Total in integer units.
        units: u64,
        /// Matching rows.
        count: u64,
    },
}

/// Checks and decrypts a worker's result.
///
/// Refuses when the cohort has fewer than `k_min` rows, when the result is not bound to this
/// plan, cohort and table, when the plan is not the planner's plan for its own query, when the
/// result differs from the custodian's recomputation (bit-exact for additive plans; on the
/// decrypted values for bootstrapped plans, recomputed in clear from the stored ciphertexts), and
/// when fewer than `k_min` rows match the WHERE clause.
pub fn decrypt_checked(
    key: &ClientKey,
    plan: &Plan,
    table: &EncryptedTable,
    cohort: &Cohort,
    result: &EncryptedResult,
    k_min: u64,
) -> Result<AggregateValue> {
    if table.key_id() != key.id() || result.key_id != key.id() {
        return Err(Error::KeyMismatch(format!(
            "expected table and result under key {}, got {} and {}",
            key.id(),
            table.key_id(),
            result.key_id
        )));
    }
    if (cohort.len() as u64) < k_min {
        return Err(Error::CohortTooSmall {
            k_min,
            got: cohort.len() as u64,
        });
    }
    let provenance = |what: &str| Err(Error::Provenance(what.to_string()));
    if result.plan_digest != plan.digest() {
        return provenance("the result was computed for another plan");
    }
    if result.cohort_digest != cohort.digest() || result.cohort_len != cohort.len() as u64 {
        return provenance("the result was computed for another cohort");
    }
    if result.table_rows != table.rows() {
        return provenance("the result was computed over another table");
    }
    if Plan::new(table.schema(), plan.query())?.digest() != plan.digest() {
        return provenance("the plan is not the planner's plan for its query");
    }
    let (count, sum) = match plan.body() {
        PlanBody::Additive { .. } => {
            let honest = evaluate(plan, table, cohort, None, &NoProgress)?;
            if honest.outputs.len() != result.outputs.len() {
                return provenance("the result has the wrong number of outputs");
            }
            let mut values = BTreeMap::new();
            for ((name, mine), (theirs_name, theirs)) in honest.outputs.iter().zip(&result.outputs)
            {
                if name != theirs_name || mine != theirs {
                    return Err(Error::Provenance(format!(
                        "output {theirs_name} differs from the recomputed aggregate"
                    )));
                }
                let Payload::Lwe(v) = mine else {
                    return provenance("an additive output must be an LWE ciphertext");
                };
                values.insert(name.clone(), decrypt_lwe(key, v)?);
            }
            (
                values.get("count").copied().unwrap_or(0),
                values.get("sum").copied(),
            )
        }
        PlanBody::Bootstrapped { predicates, sum } => {
            let (count, total) = plain_bootstrapped(key, plan, table, cohort, predicates, *sum)?;
            let ik = key.integer_key();
            let mut got = BTreeMap::new();
            for (name, payload) in &result.outputs {
                let Payload::Radix(bytes) = payload else {
                    return provenance("a bootstrapped output must be a radix ciphertext");
                };
                let ct: RadixCiphertext =
                    postcard::from_bytes(bytes).map_err(|e| Error::Decode {
                        what: "radix ciphertext",
                        reason: e.to_string(),
                    })?;
                let expected_blocks = if name == "count" {
                    crate::eval::blocks_for(cohort.len() as u64)
                } else {
                    crate::eval::blocks_for((cohort.len() as u64).max(1) * crate::params::MAX_VALUE)
                };
                if tfhe::integer::IntegerCiphertext::blocks(&ct).len() != expected_blocks {
                    return provenance("a radix output has the wrong width");
                }
                got.insert(name.clone(), ik.get().decrypt_radix::<u64>(&ct));
            }
            if got.get("count") != Some(&count) || got.get("sum").copied() != total {
                return provenance("the result differs from the recomputed aggregate");
            }
            (count, total)
        }
    };
    if count < k_min {
        return Err(Error::CohortTooSmall { k_min, got: count });
    }
    let scale = match &plan.query().aggregate {
        Aggregate::Sum(a) | Aggregate::Mean(a) => {
            match &table.schema().attributes()[table.schema().index_of(a)?].kind {
                AttributeKind::Numeric { scale, .. } => f64::from(*scale),
                _ => 1.0,
            }
        }
        Aggregate::Count => 1.0,
    };
    Ok(match (&plan.query().aggregate, sum) {
        (Aggregate::Count, _) => AggregateValue::Count(count),
        (Aggregate::Sum(_), Some(units)) => AggregateValue::Sum {
            total: units as f64 / scale,
            units,
            count,
        },
        (Aggregate::Mean(_), Some(units)) => AggregateValue::Mean {
            mean: (count > 0).then(|| units as f64 / scale / count as f64),
            units,
            count,
        },
        _ => return provenance("the result lacks its sum output"),
    })
}

fn decrypt_lwe(key: &ClientKey, v: &[u64]) -> Result<u64> {
    if v.len() != CHUNK_ROWS + 1 {
        return Err(Error::Decode {
            what: "LWE output",
            reason: format!("expected {} words, got {}", CHUNK_ROWS + 1, v.len()),
        });
    }
    let ct = LweCiphertextOwned::from_container(v.to_vec(), CiphertextModulus::new_native());
    Ok(key.decrypt_lwe(&ct))
}

/// The bootstrapped plan's aggregate computed in clear from the decrypted stored columns.
fn plain_bootstrapped(
    key: &ClientKey,
    plan: &Plan,
    table: &EncryptedTable,
    cohort: &Cohort,
    predicates: &[RowPredicate],
    sum: Option<(u16, u16)>,
) -> Result<(u64, Option<u64>)> {
    let mut cols: BTreeMap<ColumnKey, Vec<u64>> = BTreeMap::new();
    for c in plan.columns() {
        let v = table.decrypt_column(key, &c)?;
        cols.insert(c, v);
    }
    let digit_value = |attr: u16, digits: u16, row: usize| -> u64 {
        (0..digits)
            .map(|k| {
                let d = cols
                    .get(&ColumnKey(vec![Factor::Digit(attr, k)]))
                    .map_or(0, |v| v[row]);
                d << (2 * k)
            })
            .sum()
    };
    let (mut count, mut total) = (0u64, 0u64);
    for row in cohort.rows() {
        let row = row as usize;
        let mut bit = true;
        for p in predicates {
            let b = match p {
                RowPredicate::Linear { terms, constant } => {
                    let v: i64 = terms
                        .iter()
                        .map(|(k, c)| c * cols.get(k).map_or(0, |v| v[row] as i64))
                        .sum::<i64>()
                        + constant;
                    v == 1
                }
                RowPredicate::Radix {
                    attr,
                    digits,
                    lo,
                    hi,
                } => {
                    let v = digit_value(*attr, *digits, row);
                    lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v < hi)
                }
            };
            bit &= b;
        }
        if bit {
            count += 1;
            if let Some((attr, digits)) = sum {
                total += digit_value(attr, digits, row);
            }
        }
    }
    Ok((count, sum.map(|_| total)))
}
