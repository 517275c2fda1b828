//! Predicates over a record's attributes: the native twin (parse, display, evaluate, encode)
//! and the clause gadget the predicate circuit instantiates [`MAX_CLAUSES`] times.
//!
//! A predicate is a conjunction of at most [`MAX_CLAUSES`] clauses `attribute op constant`, with
//! `op` one of `>=`, `<`, `=`, `!=`, `in {…}`, `not in {…}` (sets of 1 to [`MAX_SET`] constants).
//! Constants are `u32`. The textual form is `age>=18 && smoker=0 && bmi_x10<300`; `true` is the
//! empty predicate.
//!
//! # Encoding (what the circuit sees)
//!
//! Every predicate is padded to [`MAX_CLAUSES`] slots with [`Op::Always`]. Slot `j` becomes four
//! public field elements `[head, c1, c2, c3]`:
//! `head = index + 8·op + 64·c0` (3 + 3 + 32 bits), where `c0` is the comparison constant (or the
//! smallest set element) and `c1..c3` are the other set elements. Sets are sorted, deduplicated
//! and padded by repeating their smallest element; unused constants are 0. The circuit decomposes
//! `head` into exactly 38 bits, which both range-checks `c0` (< 2^32) and makes the index and the
//! op code bounded bit patterns.

use std::fmt;
use std::str::FromStr;

use ark_bn254::Fr;
use ark_ff::{BigInteger, PrimeField};
use ark_r1cs_std::GR1CSVar;
use ark_r1cs_std::alloc::AllocVar;
use ark_r1cs_std::boolean::Boolean;
use ark_r1cs_std::eq::EqGadget;
use ark_r1cs_std::fields::FieldVar;
use ark_r1cs_std::fields::fp::FpVar;
use ark_r1cs_std::select::CondSelectGadget;
use ark_relations::gr1cs::{ConstraintSystemRef, SynthesisError};
use sha2::{Digest, Sha256};

use crate::attributes::{Attributes, N_ATTRS, Schema};
use crate::{Error, Result};

/// The number of clause slots in the circuit.
pub const MAX_CLAUSES: usize = 8;
/// The number of constants a set-membership clause can hold.
pub const MAX_SET: usize = 4;
/// Public field elements per clause slot (`head`, `c1`, `c2`, `c3`).
pub const FIELDS_PER_CLAUSE: usize = 1 + (MAX_SET - 1);
/// Version byte at the start of [`Predicate::to_canonical_bytes`].
pub const PREDICATE_ENCODING_VERSION: u8 = 1;
/// Length of [`Predicate::to_canonical_bytes`]: version, then per slot index, op and 4 × u32.
pub const PREDICATE_BYTES: usize = 1 + MAX_CLAUSES * (2 + 4 * MAX_SET);

/// Bits of the attribute index inside `head`.
const INDEX_BITS: usize = 3;
/// Bits of the op code inside `head`.
const OP_BITS: usize = 3;
/// Bits of every attribute and constant.
pub(crate) const VALUE_BITS: usize = 32;

/// A clause's operator code, as encoded in the circuit's public inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Op {
    /// Padding: always true.
    Always = 0,
    /// `attribute >= c0`.
    Ge = 1,
    /// `attribute < c0`.
    Lt = 2,
    /// `attribute = c0`.
    Eq = 3,
    /// `attribute != c0`.
    Ne = 4,
    /// `attribute ∈ {c0, c1, c2, c3}`.
    In = 5,
    /// `attribute ∉ {c0, c1, c2, c3}`.
    NotIn = 6,
}

impl Op {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::Always,
            1 => Self::Ge,
            2 => Self::Lt,
            3 => Self::Eq,
            4 => Self::Ne,
            5 => Self::In,
            6 => Self::NotIn,
            _ => return None,
        })
    }
}

/// A set of 1 to [`MAX_SET`] distinct constants, kept sorted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ConstSet(Vec<u32>);

impl ConstSet {
    /// Sorts and deduplicates `values`; refuses an empty set or more than [`MAX_SET`] distinct
    /// values.
    pub fn new(values: impl IntoIterator<Item = u32>) -> Result<Self> {
        let mut v: Vec<u32> = values.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        if v.is_empty() {
            return Err(Error::EmptySet {
                clause: "{}".into(),
                max: MAX_SET,
            });
        }
        if v.len() > MAX_SET {
            return Err(Error::SetTooBig {
                max: MAX_SET,
                got: v.len(),
            });
        }
        Ok(Self(v))
    }

    /// The constants, ascending.
    pub fn values(&self) -> &[u32] {
        &self.0
    }

    fn contains(&self, x: u32) -> bool {
        self.0.binary_search(&x).is_ok()
    }

    fn padded(&self) -> [u32; MAX_SET] {
        let mut out = [self.0[0]; MAX_SET];
        out[..self.0.len()].copy_from_slice(&self.0);
        out
    }
}

/// What a clause asks of its attribute.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    /// `>= c`.
    Ge(u32),
    /// `< c`.
    Lt(u32),
    /// `= c`.
    Eq(u32),
    /// `!= c`.
    Ne(u32),
    /// `in {…}`.
    In(ConstSet),
    /// `not in {…}`.
    NotIn(ConstSet),
}

impl Condition {
    /// Whether `x` satisfies the condition.
    pub fn holds(&self, x: u32) -> bool {
        match self {
            Self::Ge(c) => x >= *c,
            Self::Lt(c) => x < *c,
            Self::Eq(c) => x == *c,
            Self::Ne(c) => x != *c,
            Self::In(set) => set.contains(x),
            Self::NotIn(set) => !set.contains(x),
        }
    }

    fn encode(&self) -> (Op, [u32; MAX_SET]) {
        match self {
            Self::Ge(c) => (Op::Ge, [*c, 0, 0, 0]),
            Self::Lt(c) => (Op::Lt, [*c, 0, 0, 0]),
            Self::Eq(c) => (Op::Eq, [*c, 0, 0, 0]),
            Self::Ne(c) => (Op::Ne, [*c, 0, 0, 0]),
            Self::In(set) => (Op::In, set.padded()),
            Self::NotIn(set) => (Op::NotIn, set.padded()),
        }
    }
}

/// One clause: an attribute index and a condition on it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Clause {
    attr: usize,
    condition: Condition,
}

impl Clause {
    /// A clause on attribute `attr` (`< N_ATTRS`).
    pub fn new(attr: usize, condition: Condition) -> Result<Self> {
        if attr >= N_ATTRS {
            return Err(Error::AttributeIndexOutOfRange {
                max: N_ATTRS,
                got: attr,
            });
        }
        Ok(Self { attr, condition })
    }

    /// The attribute index.
    pub fn attr(&self) -> usize {
        self.attr
    }

    /// The condition.
    pub fn condition(&self) -> &Condition {
        &self.condition
    }
}

/// One encoded clause slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EncodedClause {
    pub(crate) index: u8,
    pub(crate) op: Op,
    pub(crate) constants: [u32; MAX_SET],
}

impl EncodedClause {
    const ALWAYS: Self = Self {
        index: 0,
        op: Op::Always,
        constants: [0; MAX_SET],
    };

    /// `[head, c1, c2, c3]`.
    fn to_fields(self) -> [Fr; FIELDS_PER_CLAUSE] {
        let head = u64::from(self.index)
            + (u64::from(self.op as u8) << INDEX_BITS)
            + (u64::from(self.constants[0]) << (INDEX_BITS + OP_BITS));
        [
            Fr::from(head),
            Fr::from(self.constants[1]),
            Fr::from(self.constants[2]),
            Fr::from(self.constants[3]),
        ]
    }
}

/// A conjunction of at most [`MAX_CLAUSES`] clauses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Predicate {
    clauses: Vec<Clause>,
}

impl Predicate {
    /// The predicate with the given clauses, in that order.
    pub fn new(clauses: Vec<Clause>) -> Result<Self> {
        if clauses.len() > MAX_CLAUSES {
            return Err(Error::TooManyClauses {
                max: MAX_CLAUSES,
                got: clauses.len(),
            });
        }
        Ok(Self { clauses })
    }

    /// The predicate with no clauses (always true).
    pub fn always() -> Self {
        Self::default()
    }

    /// The clauses, in order.
    pub fn clauses(&self) -> &[Clause] {
        &self.clauses
    }

    /// Parses the textual form (`age>=18 && smoker=0 && sex in {1,2}`) against `schema`.
    pub fn parse(text: &str, schema: &Schema) -> Result<Self> {
        let text = text.trim();
        if text == "true" {
            return Ok(Self::always());
        }
        let parts: Vec<&str> = text.split("&&").collect();
        if parts.len() > MAX_CLAUSES {
            return Err(Error::TooManyClauses {
                max: MAX_CLAUSES,
                got: parts.len(),
            });
        }
        let clauses = parts
            .iter()
            .map(|part| parse_clause(part.trim(), schema))
            .collect::<Result<Vec<_>>>()?;
        Self::new(clauses)
    }

    /// Displays the predicate with `schema`'s names.
    pub fn display<'a>(&'a self, schema: &'a Schema) -> impl fmt::Display + 'a {
        Displayed {
            predicate: self,
            schema,
        }
    }

    /// The native twin of the circuit: whether `attrs` satisfy every clause.
    pub fn evaluate(&self, attrs: &Attributes) -> bool {
        self.clauses
            .iter()
            .all(|c| c.condition.holds(attrs.values()[c.attr]))
    }

    /// The [`MAX_CLAUSES`] encoded slots, padded with [`Op::Always`].
    pub(crate) fn encode(&self) -> [EncodedClause; MAX_CLAUSES] {
        let mut out = [EncodedClause::ALWAYS; MAX_CLAUSES];
        for (slot, clause) in out.iter_mut().zip(&self.clauses) {
            let (op, constants) = clause.condition.encode();
            *slot = EncodedClause {
                // `attr < N_ATTRS = 8` by construction.
                index: clause.attr as u8,
                op,
                constants,
            };
        }
        out
    }

    /// The predicate's public inputs: [`FIELDS_PER_CLAUSE`] per slot, slot by slot.
    pub fn to_field_elements(&self) -> Vec<Fr> {
        self.encode().iter().flat_map(|e| e.to_fields()).collect()
    }

    /// The canonical encoding ([`PREDICATE_BYTES`] bytes): version byte, then per padded slot the
    /// attribute index (u8), the op code (u8) and four big-endian u32 constants. It is exactly
    /// what the circuit's public inputs encode.
    pub fn to_canonical_bytes(&self) -> [u8; PREDICATE_BYTES] {
        let mut out = [0u8; PREDICATE_BYTES];
        out[0] = PREDICATE_ENCODING_VERSION;
        for (chunk, slot) in out[1..]
            .chunks_exact_mut(2 + 4 * MAX_SET)
            .zip(self.encode())
        {
            chunk[0] = slot.index;
            chunk[1] = slot.op as u8;
            for (c, v) in chunk[2..].chunks_exact_mut(4).zip(slot.constants) {
                c.copy_from_slice(&v.to_be_bytes());
            }
        }
        out
    }

    /// Decodes [`Self::to_canonical_bytes`]'s output, refusing any non-canonical encoding.
    pub fn from_canonical_bytes(bytes: &[u8]) -> Result<Self> {
        let malformed = |reason: String| Error::Syntax {
            clause: hex::encode(bytes),
            reason,
        };
        if bytes.len() != PREDICATE_BYTES || bytes[0] != PREDICATE_ENCODING_VERSION {
            return Err(malformed(format!(
                "expected {PREDICATE_BYTES} bytes starting with version {PREDICATE_ENCODING_VERSION}"
            )));
        }
        let mut clauses = Vec::new();
        for chunk in bytes[1..].chunks_exact(2 + 4 * MAX_SET) {
            let op = Op::from_code(chunk[1])
                .ok_or_else(|| malformed(format!("unknown op code {}", chunk[1])))?;
            let mut constants = [0u32; MAX_SET];
            for (v, c) in constants.iter_mut().zip(chunk[2..].chunks_exact(4)) {
                let mut word = [0u8; 4];
                word.copy_from_slice(c);
                *v = u32::from_be_bytes(word);
            }
            let condition = match op {
                Op::Always => continue,
                Op::Ge => Condition::Ge(constants[0]),
                Op::Lt => Condition::Lt(constants[0]),
                Op::Eq => Condition::Eq(constants[0]),
                Op::Ne => Condition::Ne(constants[0]),
                Op::In => Condition::In(ConstSet::new(constants)?),
                Op::NotIn => Condition::NotIn(ConstSet::new(constants)?),
            };
            clauses.push(Clause::new(usize::from(chunk[0]), condition)?);
        }
        let predicate = Self::new(clauses)?;
        if predicate.to_canonical_bytes().as_slice() != bytes {
            return Err(malformed("expected the canonical encoding".into()));
        }
        Ok(predicate)
    }

    /// SHA-256 of [`Self::to_canonical_bytes`]: the predicate's identifier.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.to_canonical_bytes()).into()
    }
}

impl FromStr for Predicate {
    type Err = Error;

    /// Parses against the default schema.
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s, &Schema::default())
    }
}

/// Displays with the default schema's names.
impl fmt::Display for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display(&Schema::default()).fmt(f)
    }
}

struct Displayed<'a> {
    predicate: &'a Predicate,
    schema: &'a Schema,
}

impl fmt::Display for Displayed<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.predicate.clauses.is_empty() {
            return f.write_str("true");
        }
        for (i, clause) in self.predicate.clauses.iter().enumerate() {
            if i > 0 {
                f.write_str(" && ")?;
            }
            let name = &self.schema.names()[clause.attr];
            let set = |s: &ConstSet| {
                s.values()
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            };
            match &clause.condition {
                Condition::Ge(c) => write!(f, "{name}>={c}")?,
                Condition::Lt(c) => write!(f, "{name}<{c}")?,
                Condition::Eq(c) => write!(f, "{name}={c}")?,
                Condition::Ne(c) => write!(f, "{name}!={c}")?,
                Condition::In(s) => write!(f, "{name} in {{{}}}", set(s))?,
                Condition::NotIn(s) => write!(f, "{name} not in {{{}}}", set(s))?,
            }
        }
        Ok(())
    }
}

fn parse_clause(text: &str, schema: &Schema) -> Result<Clause> {
    let syntax = |reason: &str| Error::Syntax {
        clause: text.to_owned(),
        reason: reason.to_owned(),
    };
    let name_end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let (name, rest) = text.split_at(name_end);
    if name.is_empty() {
        return Err(syntax("expected `attribute op constant`"));
    }
    let attr = schema.index_of(name)?;
    let rest = rest.trim_start();
    let condition = if let Some(v) = rest.strip_prefix(">=") {
        Condition::Ge(parse_u32(v)?)
    } else if rest.starts_with("<=") || rest.starts_with('>') {
        return Err(syntax(
            "expected one of >=, <, =, !=, in, not in (write `x > c` as `x >= c+1`, `x <= c` as `x < c+1`)",
        ));
    } else if let Some(v) = rest.strip_prefix('<') {
        Condition::Lt(parse_u32(v)?)
    } else if let Some(v) = rest.strip_prefix("!=") {
        Condition::Ne(parse_u32(v)?)
    } else if let Some(v) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        Condition::Eq(parse_u32(v)?)
    } else if let Some(v) = keyword(rest, "in") {
        Condition::In(parse_set(v, text)?)
    } else if let Some(v) = keyword(rest, "not").and_then(|r| keyword(r.trim_start(), "in")) {
        Condition::NotIn(parse_set(v, text)?)
    } else {
        return Err(syntax(
            "expected one of >=, <, =, !=, in, not in after the attribute",
        ));
    };
    Clause::new(attr, condition)
}

/// `s` without its leading keyword `word`, if `word` is followed by a space or `{`.
fn keyword<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    s.strip_prefix(word)
        .filter(|r| r.starts_with(|c: char| c.is_whitespace() || c == '{'))
}

fn parse_u32(text: &str) -> Result<u32> {
    let text = text.trim();
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::Syntax {
            clause: text.to_owned(),
            reason: "expected a decimal constant".into(),
        });
    }
    match text.parse::<u32>() {
        Ok(v) if !text.starts_with('+') => Ok(v),
        _ => Err(Error::ConstantOutOfRange {
            max: u32::MAX,
            got: text.to_owned(),
        }),
    }
}

fn parse_set(text: &str, clause: &str) -> Result<ConstSet> {
    let inner = text
        .trim()
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .ok_or_else(|| Error::Syntax {
            clause: clause.to_owned(),
            reason: "expected a set `{c1,c2,...}`".into(),
        })?;
    if inner.trim().is_empty() {
        return Err(Error::EmptySet {
            clause: clause.to_owned(),
            max: MAX_SET,
        });
    }
    let values = inner
        .split(',')
        .map(parse_u32)
        .collect::<Result<Vec<_>>>()?;
    ConstSet::new(values)
}

/// Allocates `n` little-endian witness bits of `x` and enforces that they recompose to `x`
/// (`n` booleanity constraints + 1). With `n` < 254 the decomposition cannot wrap, so it proves
/// `x < 2^n`.
pub(crate) fn to_bits_le(
    cs: &ConstraintSystemRef<Fr>,
    x: &FpVar<Fr>,
    n: usize,
) -> Result<Vec<Boolean<Fr>>, SynthesisError> {
    let bits = (0..n)
        .map(|i| Boolean::new_witness(cs.clone(), || x.value().map(|v| v.into_bigint().get_bit(i))))
        .collect::<Result<Vec<_>, _>>()?;
    Boolean::le_bits_to_fp(&bits)?.enforce_equal(x)?;
    Ok(bits)
}

/// Selects `values[Σ bits_i 2^i]` with a tree of 2^k − 1 conditional selections (one constraint
/// each). Sound because every `bits_i` is boolean.
fn mux(bits: &[Boolean<Fr>], values: &[FpVar<Fr>]) -> Result<FpVar<Fr>, SynthesisError> {
    debug_assert_eq!(values.len(), 1 << bits.len());
    let mut layer = values.to_vec();
    for bit in bits {
        layer = layer
            .chunks_exact(2)
            .map(|pair| FpVar::conditionally_select(bit, &pair[1], &pair[0]))
            .collect::<Result<Vec<_>, _>>()?;
    }
    layer.pop().ok_or(SynthesisError::Unsatisfiable)
}

/// Enforces that the attributes satisfy one encoded clause slot.
///
/// `attrs` must already be range-checked to 32 bits. `slot` is `[head, c1, c2, c3]`.
pub(crate) fn clause_gadget(
    cs: &ConstraintSystemRef<Fr>,
    attrs: &[FpVar<Fr>; N_ATTRS],
    slot: &[FpVar<Fr>; FIELDS_PER_CLAUSE],
) -> Result<(), SynthesisError> {
    let [head, c1, c2, c3] = slot;
    let head_bits = to_bits_le(cs, head, INDEX_BITS + OP_BITS + VALUE_BITS)?;
    let (index_bits, rest) = head_bits.split_at(INDEX_BITS);
    let (op_bits, c0_bits) = rest.split_at(OP_BITS);
    let c0 = Boolean::le_bits_to_fp(c0_bits)?;

    let x = mux(index_bits, attrs)?;

    // x, c0 < 2^32, so d = x - c0 + 2^32 lies in [1, 2^33) with no wrap-around, and its bit 32
    // is set exactly when x >= c0.
    let d = &x - &c0 + FpVar::Constant(Fr::from(1u64 << VALUE_BITS));
    let d_bits = to_bits_le(cs, &d, VALUE_BITS + 1)?;
    let ge = FpVar::from(d_bits[VALUE_BITS].clone());
    let eq = FpVar::from(x.is_eq(&c0)?);
    let product = (&x - &c0) * (&x - c1) * (&x - c2) * (&x - c3);
    let member = FpVar::from(product.is_zero()?);

    let one = FpVar::one();
    // Indexed by op code; code 7 is no operator and is unsatisfiable.
    let outcomes = [
        one.clone(),
        ge.clone(),
        &one - &ge,
        eq.clone(),
        &one - &eq,
        member.clone(),
        &one - &member,
        FpVar::zero(),
    ];
    mux(op_bits, &outcomes)?.enforce_equal(&one)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Predicate {
        text.parse().unwrap()
    }

    #[test]
    fn textual_form_roundtrips_through_display() {
        for text in [
            "true",
            "age>=18",
            "age>=18 && smoker=0 && bmi_x10<300",
            "sex in {1,2} && postcode_region not in {3,7,9,11} && cholesterol!=0",
        ] {
            assert_eq!(p(text).to_string(), text);
        }
        assert_eq!(
            p("  age >= 18&&sex in { 2 , 1, 2 } && smoker == 0").to_string(),
            "age>=18 && sex in {1,2} && smoker=0"
        );
    }

    #[test]
    fn parse_errors_say_what_was_wrong() {
        assert!(matches!(
            "weight>=3".parse::<Predicate>(),
            Err(Error::UnknownAttribute { .. })
        ));
        assert!(matches!(
            "age>=4294967296".parse::<Predicate>(),
            Err(Error::ConstantOutOfRange { .. })
        ));
        assert!(matches!(
            "age>=-1".parse::<Predicate>(),
            Err(Error::ConstantOutOfRange { .. })
        ));
        assert!(matches!(
            "sex in {1,2,3,4,5}".parse::<Predicate>(),
            Err(Error::SetTooBig { max: 4, got: 5 })
        ));
        assert!(matches!(
            "sex in {}".parse::<Predicate>(),
            Err(Error::EmptySet { .. })
        ));
        let nine = ["age>=1"; 9].join(" && ");
        assert!(matches!(
            nine.parse::<Predicate>(),
            Err(Error::TooManyClauses { max: 8, got: 9 })
        ));
        for bad in ["age>3", "age<=3", "age", ">=3", "age>=x", "age inn {1}", ""] {
            assert!(
                matches!(bad.parse::<Predicate>(), Err(Error::Syntax { .. })),
                "{bad}"
            );
        }
        let message = "weight>=3".parse::<Predicate>().unwrap_err().to_string();
        assert!(message.contains("weight") && message.contains("age, smoker"));
    }

    #[test]
    fn parse_uses_the_given_schema() {
        let mut names = crate::attributes::DEFAULT_SCHEMA_NAMES;
        names[0] = "years";
        let schema = Schema::new(names).unwrap();
        let pred = Predicate::parse("years>=18", &schema).unwrap();
        assert_eq!(pred.display(&schema).to_string(), "years>=18");
        assert_eq!(pred.to_string(), "age>=18");
    }

    #[test]
    fn evaluate_follows_each_operator() {
        let attrs = Attributes::new([30, 0, 245, 120, 57, 190, 2, 75]);
        assert!(p("true").evaluate(&attrs));
        assert!(p("age>=30").evaluate(&attrs));
        assert!(!p("age>=31").evaluate(&attrs));
        assert!(p("age<31").evaluate(&attrs));
        assert!(!p("age<30").evaluate(&attrs));
        assert!(p("sex=2").evaluate(&attrs));
        assert!(!p("sex!=2").evaluate(&attrs));
        assert!(p("postcode_region in {1,75}").evaluate(&attrs));
        assert!(!p("postcode_region not in {1,75}").evaluate(&attrs));
        assert!(!p("age>=18 && smoker=1").evaluate(&attrs));
    }

    #[test]
    fn canonical_bytes_roundtrip_and_refuse_non_canonical_input() {
        let pred = p("age>=18 && sex in {2,1} && smoker!=1");
        let bytes = pred.to_canonical_bytes();
        assert_eq!(Predicate::from_canonical_bytes(&bytes).unwrap(), pred);
        assert_ne!(
            pred.digest(),
            p("age>=19 && sex in {2,1} && smoker!=1").digest()
        );
        let mut unsorted = bytes;
        // Second clause's set {1,2,1,1}: swap the first two constants.
        unsorted[1 + 18 + 2..1 + 18 + 6].copy_from_slice(&2u32.to_be_bytes());
        unsorted[1 + 18 + 6..1 + 18 + 10].copy_from_slice(&1u32.to_be_bytes());
        assert!(Predicate::from_canonical_bytes(&unsorted).is_err());
        let mut bad_op = bytes;
        bad_op[2] = 7;
        assert!(Predicate::from_canonical_bytes(&bad_op).is_err());
        assert!(Predicate::from_canonical_bytes(&bytes[1..]).is_err());
    }

    #[test]
    fn encoding_pads_with_always_and_packs_the_head() {
        let pred = p("bmi_x10<300 && sex in {2,1}");
        let fields = pred.to_field_elements();
        assert_eq!(fields.len(), MAX_CLAUSES * FIELDS_PER_CLAUSE);
        assert_eq!(fields[0], Fr::from(2 + 8 * 2 + 64 * 300u64));
        assert_eq!(
            &fields[4..8],
            &[
                Fr::from(6 + 8 * 5 + 64u64),
                Fr::from(2u64),
                Fr::from(1u64),
                Fr::from(1u64)
            ]
        );
        assert!(fields[8..].iter().all(|f| *f == Fr::from(0u64)));
    }
}
