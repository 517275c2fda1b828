//! The record attributes a vault accepts: their names, units, ranges and codes, and which of them
//! the predicate commitment ([`crate::predicate`]) and the aggregate table ([`crate::aggregate`])
//! use. A put naming any other attribute, or a value outside its range, is refused; a value given
//! by name (`sex=female`, `smoker=no`) is stored as its code.
//!
//! | name | meaning | values | commitment | aggregate row |
//! |---|---|---|---|---|
//! | `age` | age in whole years | 0..=127 | yes | yes |
//! | `smoker` | smokes | 0 `no`, 1 `yes` | yes | yes |
//! | `bmi_x10` | body-mass index × 10 (245 = 24.5) | 0..=1000 | yes | yes |
//! | `systolic_bp` | systolic blood pressure, mmHg | 0..=300 | yes | no |
//! | `hba1c_x10` | HbA1c in % × 10 (57 = 5.7 %) | 0..=200 | yes | yes |
//! | `cholesterol` | total cholesterol, mg/dL | 0..=1000 | yes | no |
//! | `sex` | ISO/IEC 5218 | 0 `not_known`, 1 `male`, 2 `female`, 9 `not_applicable` | yes | yes |
//! | `postcode_region` | a numeric region code | 0..=99999 | yes | no |
//! | `diabetes` | diagnosed diabetes | 0 `no`, 1 `yes` | no | yes |
//!
//! `true` and `false` are accepted for 1 and 0 as well. A record gets an attribute commitment
//! only when it carries all eight committed attributes, and an aggregate row only when it
//! carries all six aggregated ones (the table counts `sex` 1 as `male`, 2 as `female`, 0 and 9 as
//! `other`); [`coverage`] says which are missing. A record may carry no attributes at all.

use custos_proto::vault::v1 as pb;
use custos_types::FieldError;

/// What values an attribute takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Domain {
    /// A whole number in `0..=max`.
    Range {
        /// The largest value.
        max: i64,
    },
    /// 0 or 1, also written `no`/`yes` or `false`/`true`.
    Flag,
    /// One of the listed codes, also written by its name.
    Codes(&'static [(i64, &'static str)]),
}

/// ISO/IEC 5218 codes for `sex`.
pub const SEX_CODES: &[(i64, &str)] = &[
    (0, "not_known"),
    (1, "male"),
    (2, "female"),
    (9, "not_applicable"),
];

const FLAG_NAMES: &[(i64, &str)] = &[(0, "no"), (1, "yes"), (0, "false"), (1, "true")];

/// One attribute a vault accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttributeSpec {
    /// Its name in records and predicates.
    pub name: &'static str,
    /// What it means, with its unit.
    pub meaning: &'static str,
    /// Its values.
    pub domain: Domain,
    /// Whether the predicate commitment covers it.
    pub committed: bool,
    /// Whether the aggregate table holds it.
    pub aggregated: bool,
}

/// Every attribute a vault accepts.
pub static ATTRIBUTES: [AttributeSpec; 9] = [
    spec(
        "age",
        "age in whole years",
        Domain::Range { max: 127 },
        true,
        true,
    ),
    spec("smoker", "smokes", Domain::Flag, true, true),
    spec(
        "bmi_x10",
        "body-mass index × 10",
        Domain::Range { max: 1000 },
        true,
        true,
    ),
    spec(
        "systolic_bp",
        "systolic blood pressure in mmHg",
        Domain::Range { max: 300 },
        true,
        false,
    ),
    spec(
        "hba1c_x10",
        "HbA1c in % × 10",
        Domain::Range { max: 200 },
        true,
        true,
    ),
    spec(
        "cholesterol",
        "total cholesterol in mg/dL",
        Domain::Range { max: 1000 },
        true,
        false,
    ),
    spec(
        "sex",
        "sex, ISO/IEC 5218",
        Domain::Codes(SEX_CODES),
        true,
        true,
    ),
    spec(
        "postcode_region",
        "a numeric region code",
        Domain::Range { max: 99_999 },
        true,
        false,
    ),
    spec("diabetes", "diagnosed diabetes", Domain::Flag, false, true),
];

const fn spec(
    name: &'static str,
    meaning: &'static str,
    domain: Domain,
    committed: bool,
    aggregated: bool,
) -> AttributeSpec {
    AttributeSpec {
        name,
        meaning,
        domain,
        committed,
        aggregated,
    }
}

/// The names of every accepted attribute, comma-separated (for messages and help).
pub fn known_names() -> String {
    ATTRIBUTES
        .iter()
        .map(|a| a.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The attribute called `name`.
pub fn lookup(name: &str) -> Result<&'static AttributeSpec, String> {
    ATTRIBUTES.iter().find(|a| a.name == name).ok_or_else(|| {
        format!(
            "unknown attribute `{}`; expected one of {}",
            name.escape_default(),
            known_names()
        )
    })
}

impl AttributeSpec {
    /// What values it takes, e.g. `0..=127` or `0 (no) or 1 (yes)`.
    pub fn expected(&self) -> String {
        match self.domain {
            Domain::Range { max } => format!("a whole number in 0..={max}"),
            Domain::Flag => "0 (no) or 1 (yes)".to_string(),
            Domain::Codes(codes) => {
                let listed: Vec<String> = codes
                    .iter()
                    .map(|(code, name)| format!("{code} ({name})"))
                    .collect();
                format!("one of {}", listed.join(", "))
            }
        }
    }

    fn names(&self) -> &'static [(i64, &'static str)] {
        match self.domain {
            Domain::Range { .. } => &[],
            Domain::Flag => FLAG_NAMES,
            Domain::Codes(codes) => codes,
        }
    }

    /// Checks a number against the domain.
    pub fn check_number(&self, value: i64) -> Result<i64, String> {
        let ok = match self.domain {
            Domain::Range { max } => (0..=max).contains(&value),
            Domain::Flag => value == 0 || value == 1,
            Domain::Codes(codes) => codes.iter().any(|(code, _)| *code == value),
        };
        if ok {
            Ok(value)
        } else {
            Err(format!(
                "`{}`: expected {}, got {value}",
                self.name,
                self.expected()
            ))
        }
    }

    /// The code of a value given by name (`female`, `no`).
    pub fn code_of(&self, label: &str) -> Result<i64, String> {
        self.names()
            .iter()
            .find(|(_, name)| *name == label)
            .map(|(code, _)| *code)
            .ok_or_else(|| {
                format!(
                    "`{}`: expected {}, got `{}`",
                    self.name,
                    self.expected(),
                    label.escape_default()
                )
            })
    }

    /// The value written as text: a number, or a name.
    pub fn parse(&self, text: &str) -> Result<i64, String> {
        match text.parse::<i64>() {
            Ok(n) => self.check_number(n),
            Err(_) => self.code_of(text),
        }
    }
}

/// Checks wire attributes against [`ATTRIBUTES`] and writes every value as its code; the error
/// names the attribute's field (`attributes[2].name`, `attributes[2].numeric`, …).
pub fn normalize(wire: &[pb::Attribute]) -> Result<Vec<pb::Attribute>, FieldError> {
    if wire.len() > ATTRIBUTES.len() {
        return Err(FieldError::new(
            "attributes",
            format!(
                "at most {} (one of each), got {}",
                ATTRIBUTES.len(),
                wire.len()
            ),
        ));
    }
    let mut out: Vec<pb::Attribute> = Vec::with_capacity(wire.len());
    for (i, attribute) in wire.iter().enumerate() {
        let field = format!("attributes[{i}]");
        let spec =
            lookup(&attribute.name).map_err(|e| FieldError::new(format!("{field}.name"), e))?;
        if out.iter().any(|a| a.name == spec.name) {
            return Err(FieldError::new(
                format!("{field}.name"),
                format!("`{}` appears more than once", spec.name),
            ));
        }
        let code = match &attribute.value {
            Some(pb::attribute::Value::Numeric(n)) => spec
                .check_number(*n)
                .map_err(|e| FieldError::new(format!("{field}.numeric"), e))?,
            Some(pb::attribute::Value::Categorical(label)) => spec
                .code_of(label)
                .map_err(|e| FieldError::new(format!("{field}.categorical"), e))?,
            None => {
                return Err(FieldError::new(
                    format!("{field}.value"),
                    "required field is missing",
                ));
            }
        };
        out.push(pb::Attribute {
            name: spec.name.to_string(),
            value: Some(pb::attribute::Value::Numeric(code)),
        });
    }
    Ok(out)
}

/// An attribute given as `name=value` (a number or a name), as its wire form with the code.
pub fn parse_assignment(text: &str) -> Result<pb::Attribute, String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected name=value, got `{}`", text.escape_default()))?;
    let spec = lookup(name.trim())?;
    let code = spec.parse(value.trim())?;
    Ok(pb::Attribute {
        name: spec.name.to_string(),
        value: Some(pb::attribute::Value::Numeric(code)),
    })
}

/// Which attributes a record lacks for a commitment and for an aggregate row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// Committed attributes the record does not carry (none: it gets a commitment).
    pub commitment_missing: Vec<&'static str>,
    /// Aggregated attributes the record does not carry (none: it gets a row).
    pub aggregate_missing: Vec<&'static str>,
}

/// What a record carrying the attributes called `names` gets.
pub fn coverage<'a>(names: impl IntoIterator<Item = &'a str> + Clone) -> Coverage {
    let carries = |spec: &AttributeSpec| names.clone().into_iter().any(|n| n == spec.name);
    let missing = |used: fn(&AttributeSpec) -> bool| -> Vec<&'static str> {
        ATTRIBUTES
            .iter()
            .filter(|a| used(a) && !carries(a))
            .map(|a| a.name)
            .collect()
    };
    Coverage {
        commitment_missing: missing(|a| a.committed),
        aggregate_missing: missing(|a| a.aggregated),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(name: &str, n: i64) -> pb::Attribute {
        pb::Attribute {
            name: name.into(),
            value: Some(pb::attribute::Value::Numeric(n)),
        }
    }

    fn label(name: &str, text: &str) -> pb::Attribute {
        pb::Attribute {
            name: name.into(),
            value: Some(pb::attribute::Value::Categorical(text.into())),
        }
    }

    #[test]
    fn the_committed_attributes_are_the_circuits_schema() {
        let committed: Vec<&str> = ATTRIBUTES
            .iter()
            .filter(|a| a.committed)
            .map(|a| a.name)
            .collect();
        assert_eq!(committed, custos_circuits::DEFAULT_SCHEMA_NAMES);
    }

    #[test]
    fn names_become_codes_and_numbers_stay() {
        let out = normalize(&[
            label("sex", "female"),
            label("smoker", "no"),
            label("diabetes", "true"),
            numeric("age", 127),
        ])
        .unwrap();
        assert_eq!(
            out,
            vec![
                numeric("sex", 2),
                numeric("smoker", 0),
                numeric("diabetes", 1),
                numeric("age", 127)
            ]
        );
        assert_eq!(
            parse_assignment("sex=not_applicable").unwrap(),
            numeric("sex", 9)
        );
        assert_eq!(
            parse_assignment("bmi_x10=284").unwrap(),
            numeric("bmi_x10", 284)
        );
    }

    #[test]
    fn unknown_names_and_unencodable_values_are_refused_naming_the_field() {
        let cases = [
            (
                vec![numeric("age", 40), numeric("weight", 80)],
                "attributes[1].name",
                "weight",
            ),
            (
                vec![numeric("age", 128)],
                "attributes[0].numeric",
                "0..=127",
            ),
            (vec![numeric("age", -1)], "attributes[0].numeric", "got -1"),
            (
                vec![numeric("sex", 3)],
                "attributes[0].numeric",
                "9 (not_applicable)",
            ),
            (
                vec![label("sex", "robot")],
                "attributes[0].categorical",
                "robot",
            ),
            (
                vec![label("age", "old")],
                "attributes[0].categorical",
                "`age`",
            ),
            (
                vec![numeric("smoker", 2)],
                "attributes[0].numeric",
                "0 (no) or 1 (yes)",
            ),
            (
                vec![numeric("age", 1), label("age", "2")],
                "attributes[1].name",
                "more than once",
            ),
            (
                vec![pb::Attribute {
                    name: "age".into(),
                    value: None,
                }],
                "attributes[0].value",
                "missing",
            ),
        ];
        for (wire, field, says) in cases {
            let e = normalize(&wire).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.reason.contains(says), "{e}");
        }
        let too_many = vec![numeric("age", 1); ATTRIBUTES.len() + 1];
        assert_eq!(normalize(&too_many).unwrap_err().field, "attributes");
        assert!(parse_assignment("age").unwrap_err().contains("name=value"));
        assert!(parse_assignment("weight=3").unwrap_err().contains("weight"));
        assert!(
            parse_assignment("postcode_region=100000")
                .unwrap_err()
                .contains("99999")
        );
    }

    #[test]
    fn coverage_lists_what_a_commitment_and_a_row_still_need() {
        let all: Vec<&str> = ATTRIBUTES.iter().map(|a| a.name).collect();
        assert_eq!(coverage(all.iter().copied()), Coverage::default());
        let aggregate_only = ["age", "bmi_x10", "hba1c_x10", "diabetes", "smoker", "sex"];
        let c = coverage(aggregate_only.iter().copied());
        assert_eq!(
            c.commitment_missing,
            ["systolic_bp", "cholesterol", "postcode_region"]
        );
        assert!(c.aggregate_missing.is_empty());
        let c = coverage(std::iter::empty());
        assert_eq!(c.commitment_missing.len(), 8);
        assert_eq!(c.aggregate_missing.len(), 6);
    }
}
