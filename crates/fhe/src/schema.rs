//! Attributes, their encodings and the packed columns derived from them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::params::MAX_VALUE;

/// How one attribute is typed and encoded at ingestion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttributeKind {
    /// A non-negative number stored in integer units of 1/`scale` (bmi 27.3 at scale 10 is 273).
    Numeric {
        /// Units per 1.0.
        scale: u32,
        /// Largest value in units (at most [`MAX_VALUE`]).
        max_units: u64,
        /// Bucket edges in units, strictly increasing: one thermometer column `[x ≥ edge]` each.
        edges: Vec<u64>,
        /// Store the value itself, for additive SUM/MEAN.
        sum: bool,
        /// Store the value's base-4 digits, for bootstrapped comparisons at any bound and
        /// bootstrapped sums.
        radix: bool,
    },
    /// true/false (also written 1/0): one indicator column.
    Boolean,
    /// One of a fixed set of labels: one indicator column per label (one-hot).
    Categorical {
        /// The labels.
        values: Vec<String>,
    },
}

/// A named attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    /// Name used in records and queries.
    pub name: String,
    /// Type and encoding.
    pub kind: AttributeKind,
}

/// One factor family of a cross column set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Family {
    /// The value of a numeric attribute with `sum`.
    Value(String),
    /// The indicator columns of an attribute (thermometer, boolean or one-hot).
    Indicators(String),
}

/// Products of factor families stored as extra columns so that conjunctions across attributes
/// (or SUM with a predicate) stay additive: one column per combination of family members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cross {
    /// The families multiplied (distinct attributes, at most one `Value`).
    pub families: Vec<Family>,
}

/// A factor of a packed column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Factor {
    /// The value of attribute `attr`.
    Value(u16),
    /// Base-4 digit `k` of attribute `attr`.
    Digit(u16, u16),
    /// Indicator `member` of attribute `attr` (thermometer edge, the boolean, or a label).
    Ind(u16, u16),
}

/// Identifies a packed column: the product of its factors (sorted).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ColumnKey(pub(crate) Vec<Factor>);

/// An attribute value of one record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// A number (numeric attributes).
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// A label (categorical attributes).
    Category(String),
}

/// A record's attributes by name, as the vault ingests them.
pub type Record = BTreeMap<String, Value>;

/// The table's attributes, their encodings and the derived packed columns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schema {
    attributes: Vec<Attribute>,
    crosses: Vec<Cross>,
    #[serde(skip)]
    columns: Vec<ColumnKey>,
}

/// Number of base-4 digits needed for values up to `max_units`.
pub(crate) fn digit_count(max_units: u64) -> u16 {
    let bits = 64 - max_units.max(1).leading_zeros();
    bits.div_ceil(2) as u16
}

impl Schema {
    /// Validates attributes and crosses and derives the column layout.
    pub fn new(attributes: Vec<Attribute>, crosses: Vec<Cross>) -> Result<Self> {
        if attributes.is_empty() || attributes.len() > 64 {
            return Err(Error::Schema(format!(
                "expected 1..=64 attributes, got {}",
                attributes.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for a in &attributes {
            if !is_ident(&a.name) || !seen.insert(a.name.clone()) {
                return Err(Error::Schema(format!(
                    "attribute names must be unique identifiers, got {:?}",
                    a.name
                )));
            }
            match &a.kind {
                AttributeKind::Numeric {
                    scale,
                    max_units,
                    edges,
                    ..
                } => {
                    if *scale == 0 || *max_units == 0 || *max_units > MAX_VALUE {
                        return Err(Error::Schema(format!(
                            "{}: expected scale ≥ 1 and 1 ≤ max_units ≤ {MAX_VALUE}, got scale {scale}, max_units {max_units}",
                            a.name
                        )));
                    }
                    if edges.windows(2).any(|w| w[0] >= w[1])
                        || edges.iter().any(|e| *e == 0 || e > max_units)
                    {
                        return Err(Error::Schema(format!(
                            "{}: expected strictly increasing edges in 1..={max_units}, got {edges:?}",
                            a.name
                        )));
                    }
                }
                AttributeKind::Boolean => {}
                AttributeKind::Categorical { values } => {
                    let distinct: std::collections::BTreeSet<_> = values.iter().collect();
                    if values.is_empty()
                        || values.len() > 64
                        || distinct.len() != values.len()
                        || !values.iter().all(|v| is_ident(v))
                    {
                        return Err(Error::Schema(format!(
                            "{}: expected 1..=64 distinct identifier labels, got {values:?}",
                            a.name
                        )));
                    }
                }
            }
        }
        let mut schema = Schema {
            attributes,
            crosses,
            columns: Vec::new(),
        };
        for cross in &schema.crosses {
            schema.check_cross(cross)?;
        }
        schema.columns = schema.derive_columns()?;
        Ok(schema)
    }

    fn check_cross(&self, cross: &Cross) -> Result<()> {
        if cross.families.len() < 2 || cross.families.len() > 4 {
            return Err(Error::Schema(format!(
                "a cross multiplies 2..=4 families, got {}",
                cross.families.len()
            )));
        }
        let mut attrs = std::collections::BTreeSet::new();
        let mut values = 0;
        for f in &cross.families {
            let (name, is_value) = match f {
                Family::Value(n) => (n, true),
                Family::Indicators(n) => (n, false),
            };
            let idx = self.index_of(name)?;
            if !attrs.insert(idx) {
                return Err(Error::Schema(format!(
                    "a cross names each attribute once, {name} repeats"
                )));
            }
            if is_value {
                values += 1;
                if !matches!(
                    self.attributes[idx].kind,
                    AttributeKind::Numeric { sum: true, .. }
                ) {
                    return Err(Error::Schema(format!(
                        "cross value family {name}: expected a numeric attribute with sum"
                    )));
                }
            } else if self.members(idx) == 0 {
                return Err(Error::Schema(format!(
                    "cross indicator family {name}: the attribute has no indicator columns"
                )));
            }
        }
        if values > 1 {
            return Err(Error::Schema(
                "a cross holds at most one value family".to_string(),
            ));
        }
        Ok(())
    }

    /// The attributes in declaration order.
    pub fn attributes(&self) -> &[Attribute] {
        &self.attributes
    }

    /// The declared crosses.
    pub fn crosses(&self) -> &[Cross] {
        &self.crosses
    }

    /// Every packed column, in storage order.
    pub fn columns(&self) -> &[ColumnKey] {
        &self.columns
    }

    /// Index of an attribute by name.
    pub(crate) fn index_of(&self, name: &str) -> Result<usize> {
        self.attributes
            .iter()
            .position(|a| a.name == name)
            .ok_or_else(|| Error::UnknownAttribute {
                name: name.to_string(),
                known: self
                    .attributes
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Number of indicator members of an attribute.
    pub(crate) fn members(&self, idx: usize) -> usize {
        match &self.attributes[idx].kind {
            AttributeKind::Numeric { edges, .. } => edges.len(),
            AttributeKind::Boolean => 1,
            AttributeKind::Categorical { values } => values.len(),
        }
    }

    fn derive_columns(&self) -> Result<Vec<ColumnKey>> {
        let mut cols = Vec::new();
        for (i, a) in self.attributes.iter().enumerate() {
            let i = i as u16;
            for m in 0..self.members(i as usize) {
                cols.push(ColumnKey(vec![Factor::Ind(i, m as u16)]));
            }
            if let AttributeKind::Numeric {
                sum,
                radix,
                max_units,
                ..
            } = &a.kind
            {
                if *sum {
                    cols.push(ColumnKey(vec![Factor::Value(i)]));
                }
                if *radix {
                    for k in 0..digit_count(*max_units) {
                        cols.push(ColumnKey(vec![Factor::Digit(i, k)]));
                    }
                }
            }
        }
        for cross in &self.crosses {
            let mut combos: Vec<Vec<Factor>> = vec![Vec::new()];
            for f in &cross.families {
                let members: Vec<Factor> = match f {
                    Family::Value(n) => vec![Factor::Value(self.index_of(n)? as u16)],
                    Family::Indicators(n) => {
                        let idx = self.index_of(n)?;
                        (0..self.members(idx))
                            .map(|m| Factor::Ind(idx as u16, m as u16))
                            .collect()
                    }
                };
                combos = combos
                    .into_iter()
                    .flat_map(|c| {
                        members.iter().map(move |m| {
                            let mut c = c.clone();
                            c.push(*m);
                            c
                        })
                    })
                    .collect();
            }
            for mut c in combos {
                c.sort();
                let key = ColumnKey(c);
                if !cols.contains(&key) {
                    cols.push(key);
                }
            }
        }
        Ok(cols)
    }

    /// Rebuilds the derived layout after deserialization.
    pub(crate) fn rebuild(mut self) -> Result<Self> {
        let crosses = std::mem::take(&mut self.crosses);
        Schema::new(self.attributes, crosses)
    }

    /// The canonical encoding (what [`Schema::digest`] hashes), for publishing the schema.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        postcard::to_stdvec(self).map_err(|e| Error::Decode {
            what: "schema",
            reason: e.to_string(),
        })
    }

    /// Loads and validates a schema written by [`Schema::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let s: Schema = postcard::from_bytes(bytes).map_err(|e| Error::Decode {
            what: "schema",
            reason: e.to_string(),
        })?;
        s.rebuild()
    }

    /// SHA-256 of the schema's canonical encoding.
    pub fn digest(&self) -> [u8; 32] {
        let bytes = postcard::to_stdvec(self).unwrap_or_default();
        Sha256::digest(bytes).into()
    }

    /// Human-readable name of a column, e.g. `age>=40`, `bmi*[age>=40]`, `bmi.d2`.
    pub fn column_name(&self, key: &ColumnKey) -> String {
        let parts: Vec<String> = key.0.iter().map(|f| self.factor_name(*f)).collect();
        parts.join("*")
    }

    fn factor_name(&self, f: Factor) -> String {
        match f {
            Factor::Value(a) => self.attributes[a as usize].name.clone(),
            Factor::Digit(a, k) => format!("{}.d{k}", self.attributes[a as usize].name),
            Factor::Ind(a, m) => {
                let attr = &self.attributes[a as usize];
                match &attr.kind {
                    AttributeKind::Numeric { edges, scale, .. } => {
                        format!(
                            "[{}>={}]",
                            attr.name,
                            units_to_string(edges[m as usize], *scale)
                        )
                    }
                    AttributeKind::Boolean => format!("[{}]", attr.name),
                    AttributeKind::Categorical { values } => {
                        format!("[{}={}]", attr.name, values[m as usize])
                    }
                }
            }
        }
    }

    /// Encoded value of one factor for a record already validated by [`Schema::encode`].
    fn factor_value(&self, f: Factor, units: &[u64]) -> u64 {
        match f {
            Factor::Value(a) => units[a as usize],
            Factor::Digit(a, k) => (units[a as usize] >> (2 * k)) & 3,
            Factor::Ind(a, m) => match &self.attributes[a as usize].kind {
                AttributeKind::Numeric { edges, .. } => {
                    u64::from(units[a as usize] >= edges[m as usize])
                }
                AttributeKind::Boolean => units[a as usize],
                AttributeKind::Categorical { .. } => u64::from(units[a as usize] == m as u64),
            },
        }
    }

    /// Plain value of a column for a record's attribute units.
    pub(crate) fn column_value(&self, key: &ColumnKey, units: &[u64]) -> u64 {
        key.0.iter().map(|f| self.factor_value(*f, units)).product()
    }

    /// Validates a record and returns its per-attribute units (numbers scaled, booleans 0/1,
    /// labels by index).
    pub fn encode(&self, record: &Record) -> Result<Vec<u64>> {
        for name in record.keys() {
            self.index_of(name)?;
        }
        self.attributes
            .iter()
            .map(|a| {
                let v = record
                    .get(&a.name)
                    .ok_or_else(|| Error::Record(format!("missing attribute {}", a.name)))?;
                match (&a.kind, v) {
                    (
                        AttributeKind::Numeric {
                            scale, max_units, ..
                        },
                        Value::Number(x),
                    ) => {
                        let units = to_units(*x, *scale).ok_or_else(|| {
                            Error::Record(format!(
                                "{}: expected a number with at most 1/{scale} precision, got {x}",
                                a.name
                            ))
                        })?;
                        if units > *max_units as i64 || units < 0 {
                            return Err(Error::Record(format!(
                                "{}: expected 0..={}, got {x}",
                                a.name,
                                units_to_string(*max_units, *scale)
                            )));
                        }
                        Ok(units as u64)
                    }
                    (AttributeKind::Boolean, Value::Bool(b)) => Ok(u64::from(*b)),
                    (AttributeKind::Categorical { values }, Value::Category(c)) => values
                        .iter()
                        .position(|v| v == c)
                        .map(|p| p as u64)
                        .ok_or_else(|| {
                            Error::Record(format!(
                                "{}: expected one of {values:?}, got {c:?}",
                                a.name
                            ))
                        }),
                    (kind, v) => Err(Error::Record(format!(
                        "{}: expected a {} value, got {v:?}",
                        a.name,
                        kind_name(kind)
                    ))),
                }
            })
            .collect()
    }

    /// The demo schema: age (thermometer every 10 years plus 18, value), bmi (×10, value, radix,
    /// buckets 18.5/25/30), hba1c (×10, value, edges 5.7 and 6.5), diabetes, smoker, sex; crosses
    /// age×hba1c, age×diabetes, bmi×age, bmi×diabetes and bmi×age×hba1c.
    pub fn demo() -> Self {
        let numeric = |scale, max_units, edges: &[u64], sum, radix| AttributeKind::Numeric {
            scale,
            max_units,
            edges: edges.to_vec(),
            sum,
            radix,
        };
        let attrs = vec![
            Attribute {
                name: "age".into(),
                kind: numeric(1, 127, &[18, 30, 40, 50, 60, 70, 80], true, false),
            },
            Attribute {
                name: "bmi".into(),
                kind: numeric(10, 1023, &[185, 250, 300], true, true),
            },
            Attribute {
                name: "hba1c".into(),
                kind: numeric(10, 255, &[57, 65], true, false),
            },
            Attribute {
                name: "diabetes".into(),
                kind: AttributeKind::Boolean,
            },
            Attribute {
                name: "smoker".into(),
                kind: AttributeKind::Boolean,
            },
            Attribute {
                name: "sex".into(),
                kind: AttributeKind::Categorical {
                    values: vec!["female".into(), "male".into(), "other".into()],
                },
            },
        ];
        let ind = |n: &str| Family::Indicators(n.into());
        let val = |n: &str| Family::Value(n.into());
        let crosses = vec![
            Cross {
                families: vec![ind("age"), ind("hba1c")],
            },
            Cross {
                families: vec![ind("age"), ind("diabetes")],
            },
            Cross {
                families: vec![val("bmi"), ind("age")],
            },
            Cross {
                families: vec![val("bmi"), ind("diabetes")],
            },
            Cross {
                families: vec![val("bmi"), ind("age"), ind("hba1c")],
            },
        ];
        match Schema::new(attrs, crosses) {
            Ok(s) => s,
            Err(e) => unreachable!("the demo schema is valid: {e}"),
        }
    }
}

fn kind_name(kind: &AttributeKind) -> &'static str {
    match kind {
        AttributeKind::Numeric { .. } => "numeric",
        AttributeKind::Boolean => "boolean",
        AttributeKind::Categorical { .. } => "categorical",
    }
}

pub(crate) fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `x` in integer units of 1/scale when it is (within 1e-9) a multiple of 1/scale.
pub(crate) fn to_units(x: f64, scale: u32) -> Option<i64> {
    if !x.is_finite() || x.abs() > 1e12 {
        return None;
    }
    let scaled = x * f64::from(scale);
    let r = scaled.round();
    ((scaled - r).abs() <= 1e-9 * scaled.abs().max(1.0)).then_some(r as i64)
}

/// Formats units as a decimal number at the given scale.
pub(crate) fn units_to_string(units: u64, scale: u32) -> String {
    if scale == 1 {
        units.to_string()
    } else {
        let v = units as f64 / f64::from(scale);
        let digits = (f64::from(scale)).log10().ceil() as usize;
        format!("{v:.digits$}")
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} attributes, {} columns",
            self.attributes.len(),
            self.columns.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_schema_derives_thermometer_value_digit_and_cross_columns() {
        let s = Schema::demo();
        let names: Vec<String> = s.columns().iter().map(|c| s.column_name(c)).collect();
        for want in [
            "[age>=40]",
            "bmi",
            "bmi.d4",
            "[sex=male]",
            "bmi*[age>=40]",
            "[age>=60]*[hba1c>=6.5]",
        ] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
    }

    #[test]
    fn numbers_finer_than_the_scale_are_rejected() {
        let s = Schema::demo();
        let mut r = Record::new();
        r.insert("age".into(), Value::Number(40.5));
        assert!(s.encode(&r).is_err());
    }
}
