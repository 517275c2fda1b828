//! A record's attributes, the schema that names them, and the commitment salt.

use std::fmt;

use ark_bn254::Fr;
use ark_ff::UniformRand;
use rand_core::{CryptoRng, RngCore};

use crate::field::{fr_from_bytes, fr_to_bytes};
use crate::{Error, Result};

/// The number of attributes committed per record (the circuit's fixed width).
pub const N_ATTRS: usize = 8;

/// The names of the default schema, in index order.
///
/// | index | name | meaning and expected range |
/// |---|---|---|
/// | 0 | `age` | age in whole years, 0..=127 |
/// | 1 | `smoker` | 0 = no, 1 = yes |
/// | 2 | `bmi_x10` | body-mass index × 10 (245 = 24.5), 0..=1000 |
/// | 3 | `systolic_bp` | systolic blood pressure in mmHg, 0..=300 |
/// | 4 | `hba1c_x10` | HbA1c in % × 10 (57 = 5.7 %), 0..=200 |
/// | 5 | `cholesterol` | total cholesterol in mg/dL, 0..=1000 |
/// | 6 | `sex` | ISO/IEC 5218: 0 not known, 1 male, 2 female, 9 not applicable |
/// | 7 | `postcode_region` | a numeric region code, 0..=99999 |
///
/// The ranges are documentation: the circuit accepts any `u32` for every attribute.
pub const DEFAULT_SCHEMA_NAMES: [&str; N_ATTRS] = [
    "age",
    "smoker",
    "bmi_x10",
    "systolic_bp",
    "hba1c_x10",
    "cholesterol",
    "sex",
    "postcode_region",
];

/// Names the `N_ATTRS` attribute slots, so predicates can be written and displayed with names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schema {
    names: [String; N_ATTRS],
}

impl Default for Schema {
    fn default() -> Self {
        Self {
            names: DEFAULT_SCHEMA_NAMES.map(str::to_owned),
        }
    }
}

impl Schema {
    /// A schema with the given names; each must be a distinct identifier
    /// (ASCII letters, digits and `_`, not starting with a digit, not `in`, `not` or `true`).
    pub fn new(names: [&str; N_ATTRS]) -> Result<Self> {
        for (i, name) in names.iter().enumerate() {
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !matches!(*name, "in" | "not" | "true");
            if !valid {
                return Err(Error::InvalidSchema(format!(
                    "expected an identifier at index {i}, got `{name}`"
                )));
            }
            if names[..i].contains(name) {
                return Err(Error::InvalidSchema(format!(
                    "expected distinct names, got `{name}` twice"
                )));
            }
        }
        Ok(Self {
            names: names.map(str::to_owned),
        })
    }

    /// The index of the attribute called `name`.
    pub fn index_of(&self, name: &str) -> Result<usize> {
        self.names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| Error::UnknownAttribute {
                name: name.to_owned(),
                known: self.names.join(", "),
            })
    }

    /// The name of attribute `index`.
    pub fn name(&self, index: usize) -> Result<&str> {
        self.names
            .get(index)
            .map(String::as_str)
            .ok_or(Error::AttributeIndexOutOfRange {
                max: N_ATTRS,
                got: index,
            })
    }

    /// All names, in index order.
    pub fn names(&self) -> &[String; N_ATTRS] {
        &self.names
    }
}

/// A record's `N_ATTRS` numeric attributes, in schema order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Attributes(pub [u32; N_ATTRS]);

impl Attributes {
    /// Attributes from their values in schema order.
    pub fn new(values: [u32; N_ATTRS]) -> Self {
        Self(values)
    }

    /// Attributes from `(name, value)` pairs; every attribute of `schema` must be named exactly
    /// once.
    pub fn from_named<'a>(
        schema: &Schema,
        pairs: impl IntoIterator<Item = (&'a str, u32)>,
    ) -> Result<Self> {
        let mut values = [None; N_ATTRS];
        for (name, value) in pairs {
            let index = schema.index_of(name)?;
            if values[index].replace(value).is_some() {
                return Err(Error::InvalidSchema(format!(
                    "expected each attribute once, got `{name}` twice"
                )));
            }
        }
        let mut out = [0u32; N_ATTRS];
        for (i, value) in values.iter().enumerate() {
            out[i] = value.ok_or_else(|| {
                Error::InvalidSchema(format!(
                    "expected a value for every attribute, got none for `{}`",
                    schema.names[i]
                ))
            })?;
        }
        Ok(Self(out))
    }

    /// The value of attribute `index`.
    pub fn get(&self, index: usize) -> Result<u32> {
        self.0
            .get(index)
            .copied()
            .ok_or(Error::AttributeIndexOutOfRange {
                max: N_ATTRS,
                got: index,
            })
    }

    /// The values in schema order.
    pub fn values(&self) -> &[u32; N_ATTRS] {
        &self.0
    }

    /// A fixed big-endian encoding (`N_ATTRS` × 4 bytes), e.g. for hashing.
    pub fn to_bytes(&self) -> [u8; 4 * N_ATTRS] {
        let mut out = [0u8; 4 * N_ATTRS];
        for (chunk, v) in out.chunks_exact_mut(4).zip(self.0) {
            chunk.copy_from_slice(&v.to_be_bytes());
        }
        out
    }
}

/// The commitment's blinding: a uniformly random BN254 scalar, kept secret with the attributes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Salt(pub(crate) Fr);

impl Salt {
    /// A fresh uniformly random salt.
    pub fn random<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(Fr::rand(rng))
    }

    /// The canonical 32-byte little-endian encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        fr_to_bytes(&self.0)
    }

    /// Decodes a canonical 32-byte little-endian scalar.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self> {
        fr_from_bytes(bytes, "salt").map(Self)
    }
}

impl fmt::Debug for Salt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Salt(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schema_names_resolve_to_their_indices() {
        let schema = Schema::default();
        for (i, name) in DEFAULT_SCHEMA_NAMES.iter().enumerate() {
            assert_eq!(schema.index_of(name).unwrap(), i);
            assert_eq!(schema.name(i).unwrap(), *name);
        }
        assert!(matches!(
            schema.index_of("weight"),
            Err(Error::UnknownAttribute { .. })
        ));
    }

    #[test]
    fn schema_refuses_duplicates_and_non_identifiers() {
        let mut names = DEFAULT_SCHEMA_NAMES;
        names[1] = "age";
        assert!(Schema::new(names).is_err());
        names[1] = "1abc";
        assert!(Schema::new(names).is_err());
        names[1] = "in";
        assert!(Schema::new(names).is_err());
        names[1] = "smokes";
        assert!(Schema::new(names).is_ok());
    }

    #[test]
    fn named_attributes_need_every_name_once() {
        let schema = Schema::default();
        let pairs: Vec<(&str, u32)> = DEFAULT_SCHEMA_NAMES
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, i as u32))
            .collect();
        let attrs = Attributes::from_named(&schema, pairs.clone()).unwrap();
        assert_eq!(attrs.values(), &[0, 1, 2, 3, 4, 5, 6, 7]);
        assert!(Attributes::from_named(&schema, pairs[..7].to_vec()).is_err());
        let mut twice = pairs.clone();
        twice.push(("age", 3));
        assert!(Attributes::from_named(&schema, twice).is_err());
    }

    #[test]
    fn salt_bytes_roundtrip_and_non_canonical_bytes_are_refused() {
        let salt = Salt::random(&mut rand::thread_rng());
        assert!(Salt::from_bytes(&salt.to_bytes()).unwrap() == salt);
        assert!(Salt::from_bytes(&[0xff; 32]).is_err());
        assert_eq!(format!("{salt:?}"), "Salt(<secret>)");
    }
}
