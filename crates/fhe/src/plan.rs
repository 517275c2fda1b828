//! The planner: additive plans over packed columns where the encodings allow, bootstrapped
//! plans (tfhe integer API) otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::sha256;
use crate::params::{MAX_LOG2_FAILURE, MAX_ROWS, log2_failure_bound};
use crate::query::{Aggregate, Clause, Literal, Op, Query};
use crate::schema::{
    AttributeKind, ColumnKey, Factor, Schema, digit_count, to_units, units_to_string,
};

/// Measured cost of one column over one 2048-row chunk on one core of the reference machine
/// (mask expansion, four limb FFTs, multiply-accumulate, body sum), in microseconds.
pub(crate) const COLUMN_CHUNK_MICROS: f64 = 30.0;
/// Measured cost of one programmable bootstrap on the reference machine (2 cores), in ms.
pub(crate) const PBS_MILLIS: f64 = 12.0;

/// A linear combination of packed column sums (plus a multiple of the cohort size).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearOutput {
    /// Output name: `count` or `sum`.
    pub name: String,
    /// Columns and integer coefficients.
    pub terms: Vec<(ColumnKey, i64)>,
    /// Coefficient of the cohort size (the all-ones column, known in clear).
    pub constant: i64,
}

impl LinearOutput {
    /// l1 norm of the coefficients.
    pub fn l1(&self) -> u64 {
        self.terms.iter().map(|(_, c)| c.unsigned_abs()).sum()
    }

    /// Sum of squared coefficients.
    pub fn l2(&self) -> u64 {
        self.terms
            .iter()
            .map(|(_, c)| c.unsigned_abs().pow(2))
            .sum()
    }
}

/// A per-row predicate of a bootstrapped plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowPredicate {
    /// A 0/1-valued linear combination of indicator columns (no bootstrapping to form it).
    Linear {
        /// Columns and coefficients.
        terms: Vec<(ColumnKey, i64)>,
        /// Constant (0 or 1).
        constant: i64,
    },
    /// `lo ≤ x < hi` on the base-4 digits of a numeric attribute (bootstrapped comparisons).
    Radix {
        /// Attribute index.
        attr: u16,
        /// Digit count.
        digits: u16,
        /// Inclusive lower bound in units, if any.
        lo: Option<u64>,
        /// Exclusive upper bound in units, if any.
        hi: Option<u64>,
    },
}

/// How the plan is evaluated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlanBody {
    /// Polynomial products and additions only.
    Additive {
        /// The outputs (`count`, and `sum` for SUM/MEAN).
        outputs: Vec<LinearOutput>,
    },
    /// Per-row bootstrapped AND (and selection of a value), then encrypted summation.
    Bootstrapped {
        /// Conjunction of row predicates.
        predicates: Vec<RowPredicate>,
        /// Attribute summed (index, digits), for SUM/MEAN.
        sum: Option<(u16, u16)>,
    },
}

/// A plan for one query over one schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    query: Query,
    schema_digest: [u8; 32],
    body: PlanBody,
    #[serde(skip)]
    display: String,
}

type Form = Vec<(Option<Factor>, i64)>;

enum AttrPred {
    Interval { lo: u64, hi: u64 },
    Indicator(Form),
}

impl Plan {
    /// Plans `query` over `schema`, choosing the cheapest available evaluation.
    pub fn new(schema: &Schema, query: &Query) -> Result<Plan> {
        let mut by_attr: BTreeMap<usize, Vec<&Clause>> = BTreeMap::new();
        for c in &query.clauses {
            by_attr
                .entry(schema.index_of(&c.attribute)?)
                .or_default()
                .push(c);
        }
        let target = match &query.aggregate {
            Aggregate::Count => None,
            Aggregate::Sum(a) | Aggregate::Mean(a) => {
                let idx = schema.index_of(a)?;
                match &schema.attributes()[idx].kind {
                    AttributeKind::Numeric { .. } => Some(idx),
                    _ => {
                        return Err(Error::TypeMismatch {
                            attribute: a.clone(),
                            expected: "a numeric attribute for SUM/MEAN".into(),
                            got: "a non-numeric attribute".into(),
                        });
                    }
                }
            }
        };
        let mut preds = Vec::new();
        for (idx, clauses) in &by_attr {
            preds.push((*idx, attr_pred(schema, *idx, clauses)?));
        }
        let body = match additive(schema, target, &preds)? {
            Some(outputs) => PlanBody::Additive { outputs },
            None => bootstrapped(schema, target, &preds)?,
        };
        let mut plan = Plan {
            query: query.clone(),
            schema_digest: schema.digest(),
            body,
            display: String::new(),
        };
        plan.display = plan.render(schema);
        Ok(plan)
    }

    /// The planned query.
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// How the plan is evaluated.
    pub fn body(&self) -> &PlanBody {
        &self.body
    }

    /// Whether evaluation needs bootstrapping (and a server key).
    pub fn needs_bootstrapping(&self) -> bool {
        matches!(self.body, PlanBody::Bootstrapped { .. })
    }

    pub(crate) fn schema_digest(&self) -> [u8; 32] {
        self.schema_digest
    }

    /// Every column the plan reads, sorted.
    pub fn columns(&self) -> Vec<ColumnKey> {
        let mut set = BTreeSet::new();
        match &self.body {
            PlanBody::Additive { outputs } => {
                for o in outputs {
                    set.extend(o.terms.iter().map(|(k, _)| k.clone()));
                }
            }
            PlanBody::Bootstrapped { predicates, sum } => {
                for p in predicates {
                    match p {
                        RowPredicate::Linear { terms, .. } => {
                            set.extend(terms.iter().map(|(k, _)| k.clone()));
                        }
                        RowPredicate::Radix { attr, digits, .. } => {
                            set.extend(
                                (0..*digits).map(|k| ColumnKey(vec![Factor::Digit(*attr, k)])),
                            );
                        }
                    }
                }
                if let Some((attr, digits)) = sum {
                    set.extend((0..*digits).map(|k| ColumnKey(vec![Factor::Digit(*attr, k)])));
                }
            }
        }
        set.into_iter().collect()
    }

    /// SHA-256 of the plan's canonical encoding.
    pub fn digest(&self) -> [u8; 32] {
        let bytes = postcard::to_stdvec(self).unwrap_or_default();
        sha256(&[b"custos-fhe plan v1", &bytes])
    }

    /// Estimated throughput in rows per second on the reference 2-core machine.
    pub fn estimated_rows_per_second(&self) -> f64 {
        match &self.body {
            PlanBody::Additive { .. } => {
                let cols = self.columns().len().max(1) as f64;
                2.0 * 2048.0 / (cols * COLUMN_CHUNK_MICROS) * 1e6
            }
            PlanBody::Bootstrapped { .. } => 1000.0 / (self.pbs_per_row() * PBS_MILLIS),
        }
    }

    fn pbs_per_row(&self) -> f64 {
        match &self.body {
            PlanBody::Additive { .. } => 0.0,
            PlanBody::Bootstrapped { predicates, sum } => {
                let mut pbs = predicates.len().saturating_sub(1) as f64;
                for p in predicates {
                    if let RowPredicate::Radix { digits, lo, hi, .. } = p {
                        let cmp = f64::from(*digits) + 2.0;
                        pbs += cmp * (u32::from(lo.is_some()) + u32::from(hi.is_some())) as f64;
                    }
                }
                pbs += 11.0 / 2.0;
                if let Some((_, d)) = sum {
                    pbs += 2.0 * f64::from(*d) + 15.0 / 2.0;
                }
                pbs
            }
        }
    }

    fn render(&self, schema: &Schema) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let cols = self.columns();
        let _ = writeln!(s, "query: {}", self.query);
        match &self.body {
            PlanBody::Additive { outputs } => {
                let _ = writeln!(s, "plan: additive (no bootstrapping)");
                for o in outputs {
                    let mut line = String::new();
                    for (k, c) in &o.terms {
                        let sign = if *c < 0 { "-" } else { "+" };
                        let mag = if c.abs() == 1 {
                            String::new()
                        } else {
                            format!("{}·", c.abs())
                        };
                        let _ = write!(line, " {sign} {mag}Σ {}", schema.column_name(k));
                    }
                    if o.constant != 0 {
                        let _ = write!(
                            line,
                            " {} {}·|cohort|",
                            if o.constant < 0 { "-" } else { "+" },
                            o.constant.abs()
                        );
                    }
                    let _ = writeln!(
                        s,
                        "  {} ={}   (noise l1 {}, failure ≤ 2^{:.0} at {} rows)",
                        o.name,
                        line,
                        o.l1(),
                        log2_failure_bound(MAX_ROWS, o.l1(), o.l2()),
                        MAX_ROWS
                    );
                }
                let _ = writeln!(
                    s,
                    "  per 2048-row chunk: 1 selector FFT, then per column 1 AES mask expansion, 4 limb FFTs, 4 Fourier MACs, 1 body sum; 4 inverse FFTs per column at the end"
                );
            }
            PlanBody::Bootstrapped { predicates, sum } => {
                let _ = writeln!(s, "plan: bootstrapped (tfhe integer API, PBS per row)");
                for p in predicates {
                    match p {
                        RowPredicate::Linear { terms, constant } => {
                            let names: Vec<String> = terms
                                .iter()
                                .map(|(k, c)| format!("{c:+}·{}", schema.column_name(k)))
                                .collect();
                            let _ = writeln!(
                                s,
                                "  row bit = {} {constant:+} (sample extraction, no PBS)",
                                names.join(" ")
                            );
                        }
                        RowPredicate::Radix {
                            attr,
                            lo,
                            hi,
                            digits,
                        } => {
                            let a = &schema.attributes()[*attr as usize];
                            let scale = match a.kind {
                                AttributeKind::Numeric { scale, .. } => scale,
                                _ => 1,
                            };
                            let lo = lo.map_or("-inf".into(), |v| units_to_string(v, scale));
                            let hi = hi.map_or("+inf".into(), |v| units_to_string(v, scale));
                            let _ = writeln!(
                                s,
                                "  row bit = {lo} <= {} < {hi} (radix compare over {digits} digits, PBS)",
                                a.name
                            );
                        }
                    }
                }
                let _ = writeln!(
                    s,
                    "  AND of row bits (PBS), count = Σ bits (encrypted radix sum)"
                );
                if let Some((attr, _)) = sum {
                    let _ = writeln!(
                        s,
                        "  sum = Σ bit ? {} : 0 (cmux + radix sum)",
                        schema.attributes()[*attr as usize].name
                    );
                }
                let _ = writeln!(s, "  ≈ {:.0} PBS per row", self.pbs_per_row());
            }
        }
        let names: Vec<String> = cols.iter().map(|k| schema.column_name(k)).collect();
        let _ = writeln!(s, "columns read ({}): {}", cols.len(), names.join(", "));
        let _ = write!(
            s,
            "estimated: {:.0} rows/s on 2 cores; bootstrapping: {}",
            self.estimated_rows_per_second(),
            if self.needs_bootstrapping() {
                "yes"
            } else {
                "no"
            }
        );
        s
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

/// Parses and plans a query text.
pub fn explain(schema: &Schema, query: &str) -> Result<Plan> {
    Plan::new(schema, &Query::parse(query)?)
}

fn mismatch(schema: &Schema, idx: usize, expected: impl Into<String>, c: &Clause) -> Error {
    Error::TypeMismatch {
        attribute: schema.attributes()[idx].name.clone(),
        expected: expected.into(),
        got: format!("{} {}", c.op, c.literal),
    }
}

fn attr_pred(schema: &Schema, idx: usize, clauses: &[&Clause]) -> Result<AttrPred> {
    let a = &schema.attributes()[idx];
    let single = |what: &str| -> Result<&Clause> {
        if clauses.len() != 1 {
            return Err(Error::Unsupported(format!(
                "expected one clause on {what} {}, got {}",
                a.name,
                clauses.len()
            )));
        }
        Ok(clauses[0])
    };
    match &a.kind {
        AttributeKind::Numeric {
            scale, max_units, ..
        } => {
            let (mut lo, mut hi) = (0i64, *max_units as i64 + 1);
            for c in clauses {
                let Literal::Number(x) = c.literal else {
                    return Err(mismatch(schema, idx, "a number", c));
                };
                let u = to_units(x, *scale).ok_or_else(|| {
                    mismatch(
                        schema,
                        idx,
                        format!("a number with at most 1/{scale} precision"),
                        c,
                    )
                })?;
                match c.op {
                    Op::Ge => lo = lo.max(u),
                    Op::Gt => lo = lo.max(u + 1),
                    Op::Le => hi = hi.min(u + 1),
                    Op::Lt => hi = hi.min(u),
                    Op::Eq => {
                        lo = lo.max(u);
                        hi = hi.min(u + 1);
                    }
                    Op::Ne => return Err(mismatch(schema, idx, "one of = < <= > >=", c)),
                }
            }
            if lo >= hi {
                return Err(Error::Unsupported(format!(
                    "the clauses on {} select an empty range",
                    a.name
                )));
            }
            Ok(AttrPred::Interval {
                lo: lo.max(0) as u64,
                hi: hi as u64,
            })
        }
        AttributeKind::Boolean => {
            let c = single("boolean")?;
            let b = match (&c.op, &c.literal) {
                (Op::Eq | Op::Ne, Literal::Bool(b)) => *b,
                (Op::Eq | Op::Ne, Literal::Number(x)) if *x == 0.0 || *x == 1.0 => *x == 1.0,
                _ => return Err(mismatch(schema, idx, "= or != with true, false, 0 or 1", c)),
            };
            let ind = Factor::Ind(idx as u16, 0);
            Ok(AttrPred::Indicator(if b == (c.op == Op::Eq) {
                vec![(Some(ind), 1)]
            } else {
                vec![(None, 1), (Some(ind), -1)]
            }))
        }
        AttributeKind::Categorical { values } => {
            let c = single("categorical")?;
            let label = match &c.literal {
                Literal::Label(l) => l,
                _ => {
                    return Err(mismatch(
                        schema,
                        idx,
                        format!("= or != with one of {values:?}"),
                        c,
                    ));
                }
            };
            let m = values
                .iter()
                .position(|v| v == label)
                .ok_or_else(|| mismatch(schema, idx, format!("one of {values:?}"), c))?;
            let ind = Factor::Ind(idx as u16, m as u16);
            match c.op {
                Op::Eq => Ok(AttrPred::Indicator(vec![(Some(ind), 1)])),
                Op::Ne => Ok(AttrPred::Indicator(vec![(None, 1), (Some(ind), -1)])),
                _ => Err(mismatch(schema, idx, "= or !=", c)),
            }
        }
    }
}

/// The thermometer form of `lo ≤ x < hi`, if both bounds are edges (or open).
fn interval_form(schema: &Schema, idx: usize, lo: u64, hi: u64) -> Option<Form> {
    let AttributeKind::Numeric {
        edges, max_units, ..
    } = &schema.attributes()[idx].kind
    else {
        return None;
    };
    enum T {
        One,
        Zero,
        Col(Factor),
    }
    // [x ≥ u] as a constant or a thermometer column; None when u is not an edge.
    let t = |u: u64| -> Option<T> {
        if u == 0 {
            Some(T::One)
        } else if u > *max_units {
            Some(T::Zero)
        } else {
            edges
                .iter()
                .position(|e| *e == u)
                .map(|j| T::Col(Factor::Ind(idx as u16, j as u16)))
        }
    };
    let mut form = Form::new();
    for (bound, sign) in [(lo, 1), (hi, -1)] {
        match t(bound)? {
            T::One => form.push((None, sign)),
            T::Zero => {}
            T::Col(f) => form.push((Some(f), sign)),
        }
    }
    Some(form)
}

fn pred_form(schema: &Schema, idx: usize, p: &AttrPred) -> Option<Form> {
    match p {
        AttrPred::Indicator(f) => Some(f.clone()),
        AttrPred::Interval { lo, hi } => interval_form(schema, idx, *lo, *hi),
    }
}

/// Expands Π forms into monomials (sorted factor lists) with coefficients.
fn expand(forms: &[Form], seed: Vec<Factor>) -> BTreeMap<Vec<Factor>, i64> {
    let mut acc: BTreeMap<Vec<Factor>, i64> = BTreeMap::from([(seed, 1)]);
    for form in forms {
        let mut next = BTreeMap::new();
        for (mono, c) in &acc {
            for (f, k) in form {
                let mut m = mono.clone();
                if let Some(f) = f {
                    m.push(*f);
                }
                m.sort();
                *next.entry(m).or_insert(0) += c * k;
            }
        }
        acc = next.into_iter().filter(|(_, c)| *c != 0).collect();
    }
    acc
}

fn linear_output(
    schema: &Schema,
    name: &str,
    monos: BTreeMap<Vec<Factor>, i64>,
) -> Option<LinearOutput> {
    let mut terms = Vec::new();
    let mut constant = 0;
    for (m, c) in monos {
        if m.is_empty() {
            constant += c;
            continue;
        }
        let key = ColumnKey(m);
        if !schema.columns().contains(&key) {
            return None;
        }
        terms.push((key, c));
    }
    Some(LinearOutput {
        name: name.into(),
        terms,
        constant,
    })
}

fn additive(
    schema: &Schema,
    target: Option<usize>,
    preds: &[(usize, AttrPred)],
) -> Result<Option<Vec<LinearOutput>>> {
    let mut forms = Vec::new();
    for (idx, p) in preds {
        match pred_form(schema, *idx, p) {
            Some(f) => forms.push(f),
            None => return Ok(None),
        }
    }
    let mut outputs = Vec::new();
    let Some(count) = linear_output(schema, "count", expand(&forms, Vec::new())) else {
        return Ok(None);
    };
    outputs.push(count);
    if let Some(t) = target {
        let Some(sum) = linear_output(schema, "sum", expand(&forms, vec![Factor::Value(t as u16)]))
        else {
            return Ok(None);
        };
        if sum.constant != 0 {
            return Ok(None);
        }
        outputs.push(sum);
    }
    for o in &outputs {
        let bound = log2_failure_bound(MAX_ROWS, o.l1(), o.l2());
        if bound > MAX_LOG2_FAILURE {
            return Err(Error::NoiseBudget {
                log2_failure: bound,
                max: MAX_LOG2_FAILURE,
            });
        }
    }
    Ok(Some(outputs))
}

fn bootstrapped(
    schema: &Schema,
    target: Option<usize>,
    preds: &[(usize, AttrPred)],
) -> Result<PlanBody> {
    let mut predicates = Vec::new();
    for (idx, p) in preds {
        let a = &schema.attributes()[*idx];
        if let Some(form) = pred_form(schema, *idx, p)
            && let Some(LinearOutput {
                terms, constant, ..
            }) = linear_output(schema, "bit", expand(&[form], Vec::new()))
        {
            predicates.push(RowPredicate::Linear { terms, constant });
            continue;
        }
        match (&a.kind, p) {
            (
                AttributeKind::Numeric {
                    radix: true,
                    max_units,
                    ..
                },
                AttrPred::Interval { lo, hi },
            ) => predicates.push(RowPredicate::Radix {
                attr: *idx as u16,
                digits: digit_count(*max_units),
                lo: (*lo > 0).then_some(*lo),
                hi: (*hi <= *max_units).then_some(*hi),
            }),
            (AttributeKind::Numeric { edges, scale, .. }, AttrPred::Interval { .. }) => {
                let edges: Vec<String> =
                    edges.iter().map(|e| units_to_string(*e, *scale)).collect();
                return Err(Error::TypeMismatch {
                    attribute: a.name.clone(),
                    expected: format!(
                        "bounds on bucket edges [{}] ({} has no radix encoding for other bounds)",
                        edges.join(", "),
                        a.name
                    ),
                    got: "a bound between edges".into(),
                });
            }
            _ => {
                return Err(Error::Unsupported(format!(
                    "no encoding of {} supports this predicate",
                    a.name
                )));
            }
        }
    }
    let sum = match target {
        None => None,
        Some(t) => match &schema.attributes()[t].kind {
            AttributeKind::Numeric {
                radix: true,
                max_units,
                ..
            } => Some((t as u16, digit_count(*max_units))),
            _ => {
                return Err(Error::Unsupported(format!(
                    "SUM/MEAN {} with this WHERE needs a cross column or {}'s radix encoding",
                    schema.attributes()[t].name,
                    schema.attributes()[t].name
                )));
            }
        },
    };
    Ok(PlanBody::Bootstrapped { predicates, sum })
}
