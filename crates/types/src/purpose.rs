//! Validates HL7 PurposeOfUse codes and decides which purposes a consent covers.
//!
//! Purposes of use are codes of the HL7 code system [`PURPOSE_SYSTEM`] (`v3-ActReason`, HL7
//! Terminology 4.0.0; the source file is `crates/types/data/hl7/ActReason.xml`). The valid
//! purposes are exactly the descendants of the abstract concept `PurposeOfUse`, held in a static
//! table written once from that file and checked against it by the `purpose_hl7` integration test.
//! There is no XML parsing at run time.
//!
//! # Hierarchy
//!
//! The code system's hierarchy means *is-a* (`hierarchyMeaning`); in 4.0.0 it is given by
//! `subsumedBy` properties only (no nested `<concept>` elements). Seven codes sit directly under
//! `PurposeOfUse` and have no parents here: `TREAT`, `HPAYMT`, `HOPERAT`, `HRESCH`, `HMARKT`,
//! `PUBHLTH` and `PATRQT`. Everything else hangs below them, for example `ETREAT` under `TREAT`,
//! `BTG` and `ERTREAT` under `ETREAT`, `COVAUTH` under `HPAYMT`, `CLINTRCH` under `HRESCH`.
//!
//! Consent given for a code covers that code and all its descendants, never its parent or its
//! siblings: a consent for `TREAT` admits an `ETREAT` or `BTG` request, a consent for `ETREAT`
//! does not admit `TREAT`, and a consent for `HPAYMT` does not admit `HMARKT`
//! ([`Purpose::covers`]). Break-glass purposes are `ETREAT` and its descendants, which include
//! `BTG` ([`Purpose::is_break_glass`]).
//!
//! # Choices
//!
//! - **Abstract codes.** `PurposeOfUse` and its not-selectable ancestors
//!   (`_ActHealthInformationManagementReason`, `_ActInformationManagementReason`) are refused with
//!   [`PurposeError::Abstract`]. No descendant of `PurposeOfUse` is marked not-selectable in 4.0.0;
//!   one that was would be left out of the table.
//! - **Retired and deprecated codes.** Retired codes are refused (left out of the table): HL7 no
//!   longer intends them to be used, and a ledger should not record new consents with them.
//!   Deprecated codes would be accepted, since they remain valid. In 4.0.0 every descendant of
//!   `PurposeOfUse` is `active`, so all 62 are accepted.
//! - **Multiple parents.** The table allows a code to name several parents, and coverage follows
//!   every parent path (ancestor-or-self through any parent). No descendant of `PurposeOfUse` has
//!   more than one parent in 4.0.0.
//! - **Parsing** is exact and case-sensitive (the code system is `caseSensitive`): no trimming, no
//!   case folding. Input longer than [`MAX_CODE_LEN`] bytes is refused without being echoed.
//!
//! The table is checked at compile time: sorted, unique, every parent resolves, no cycles.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// HL7 v3-ActReason code system URI.
pub const PURPOSE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";

/// The longest input, in bytes, that [`Purpose::parse`] looks up; longer input is refused as
/// [`PurposeError::TooLong`] without being echoed.
pub const MAX_CODE_LEN: usize = 64;

/// Examples named in error messages.
const EXAMPLES: &str = "such as TREAT, HPAYMT, HMARKT";

/// A valid HL7 PurposeOfUse code (a descendant of the abstract `PurposeOfUse`).
///
/// Ordering is the byte order of the codes. Serialized as the code string; deserializing
/// validates it with [`Purpose::parse`].
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Purpose(u8);

/// A string that is not a valid purpose code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PurposeError {
    /// The empty string.
    #[error("empty purpose code (expected an HL7 PurposeOfUse code {EXAMPLES})")]
    Empty,
    /// Longer than [`MAX_CODE_LEN`] bytes; only the length is kept.
    #[error(
        "purpose code too long ({len} bytes, at most {MAX_CODE_LEN}; expected an HL7 \
         PurposeOfUse code {EXAMPLES})"
    )]
    TooLong {
        /// The input's length in bytes.
        len: usize,
    },
    /// An abstract (not-selectable) concept: `PurposeOfUse` itself or one of its ancestors.
    #[error(
        "`{0}` is an abstract HL7 concept, not a purpose of use (use one of the PurposeOfUse \
         codes {EXAMPLES})"
    )]
    Abstract(String),
    /// Not a PurposeOfUse code (unknown, another branch of ActReason, or wrongly cased).
    #[error(
        "unknown purpose code `{}` (expected an HL7 PurposeOfUse code {EXAMPLES})",
        .0.escape_debug()
    )]
    Unknown(String),
}

/// One row of the table.
struct Entry {
    code: &'static str,
    display: &'static str,
    /// Direct parents inside `PurposeOfUse`; empty for the top-level codes.
    parents: &'static [&'static str],
}

const fn entry(
    code: &'static str,
    display: &'static str,
    parents: &'static [&'static str],
) -> Entry {
    Entry {
        code,
        display,
        parents,
    }
}

/// Every descendant of `PurposeOfUse` in v3-ActReason 4.0.0, sorted by code (byte order), with
/// its display name and its parents (`subsumedBy`, minus `PurposeOfUse` itself).
const TABLE: [Entry; 62] = [
    entry("BIORCH", "biomedical research", &["HRESCH"]),
    entry("BTG", "break the glass", &["ETREAT"]),
    entry("CAREMGT", "care management", &["HOPERAT"]),
    entry("CLINTRCH", "clinical trial research", &["HRESCH"]),
    entry(
        "CLINTRCHNPC",
        "clinical trial research without patient care",
        &["CLINTRCH"],
    ),
    entry(
        "CLINTRCHPC",
        "clinical trial research with patient care",
        &["CLINTRCH"],
    ),
    entry("CLINTRL", "clinical trial", &["TREAT"]),
    entry("CLMATTCH", "claim attachment", &["HPAYMT"]),
    entry("COC", "coordination of care", &["TREAT"]),
    entry("COVAUTH", "coverage authorization", &["HPAYMT"]),
    entry("COVERAGE", "coverage under policy or program", &["HPAYMT"]),
    entry("DISASTER", "disaster", &["PUBHLTH"]),
    entry("DONAT", "donation", &["HOPERAT"]),
    entry("DSRCH", "disease specific healthcare research", &["HRESCH"]),
    entry("ELIGDTRM", "eligibility determination", &["COVERAGE"]),
    entry("ELIGVER", "eligibility verification", &["COVERAGE"]),
    entry("ENROLLM", "enrollment", &["COVERAGE"]),
    entry("ERTREAT", "emergency room treatment", &["ETREAT"]),
    entry("ETREAT", "Emergency Treatment", &["TREAT"]),
    entry("FAMRQT", "family requested", &["PATRQT"]),
    entry("FRAUD", "fraud", &["HOPERAT"]),
    entry("GOV", "government", &["HOPERAT"]),
    entry("HACCRED", "health accreditation", &["HOPERAT"]),
    entry("HCOMPL", "health compliance", &["HOPERAT"]),
    entry("HDECD", "decedent", &["HOPERAT"]),
    entry("HDIRECT", "directory", &["HOPERAT"]),
    entry("HDM", "healthcare delivery management", &["HOPERAT"]),
    entry("HLEGAL", "legal", &["HOPERAT"]),
    entry("HMARKT", "healthcare marketing", &[]),
    entry("HOPERAT", "healthcare operations", &[]),
    entry("HOUTCOMS", "health outcome measure", &["HOPERAT"]),
    entry("HPAYMT", "healthcare payment", &[]),
    entry("HPRGRP", "health program reporting", &["HOPERAT"]),
    entry("HQUALIMP", "health quality improvement", &["HOPERAT"]),
    entry("HRESCH", "healthcare research", &[]),
    entry("HSYSADMIN", "health system administration", &["HOPERAT"]),
    entry("HTEST", "test health data", &["SYSDEV"]),
    entry("LABELING", "labeling", &["HSYSADMIN"]),
    entry("MEMADMIN", "member administration", &["HOPERAT"]),
    entry("METAMGT", "metadata management", &["HSYSADMIN"]),
    entry("MILCDM", "military command", &["HOPERAT"]),
    entry("MILDCRG", "military discharge", &["COVERAGE"]),
    entry("MLTRAINING", "machine learning training", &["HOPERAT"]),
    entry("PATADMIN", "patient administration", &["HOPERAT"]),
    entry("PATRQT", "patient requested", &[]),
    entry("PATSFTY", "patient safety", &["HOPERAT"]),
    entry("PERFMSR", "performance measure", &["HOPERAT"]),
    entry(
        "PMTDS",
        "decision support assisted payment decision",
        &["HPAYMT"],
    ),
    entry(
        "POARCH",
        "population origins or ancestry healthcare research",
        &["HRESCH"],
    ),
    entry("POPHLTH", "population health", &["TREAT"]),
    entry("PRECLINTRCH", "preclinical trial research", &["CLINTRCH"]),
    entry("PUBHLTH", "public health", &[]),
    entry("PWATRNY", "power of attorney", &["PATRQT"]),
    entry("RECORDMGT", "records management", &["HOPERAT"]),
    entry("REMITADV", "remittance advice", &["HPAYMT"]),
    entry("SUPNWK", "support network", &["PATRQT"]),
    entry("SYSDEV", "system development", &["HOPERAT"]),
    entry("THREAT", "threat", &["PUBHLTH"]),
    entry("TRAIN", "training", &["HOPERAT"]),
    entry("TRANSRCH", "translational healthcare research", &["HRESCH"]),
    entry("TREAT", "treatment", &[]),
    entry(
        "TREATDS",
        "decision support assisted treatment decision",
        &["TREAT"],
    ),
];

/// Abstract (not-selectable) concepts refused as [`PurposeError::Abstract`]: `PurposeOfUse` and
/// its ancestors.
const ABSTRACT: [&str; 3] = [
    "PurposeOfUse",
    "_ActHealthInformationManagementReason",
    "_ActInformationManagementReason",
];

/// Number of codes; the relation masks below hold one bit per code.
const N: usize = TABLE.len();

/// `PARENTS[i]` has bit `j` set iff `TABLE[j]` is a direct parent of `TABLE[i]`.
const PARENTS: [u128; N] = parent_masks();
/// `ANCESTORS[i]` has bit `j` set iff `TABLE[j]` is a strict ancestor of `TABLE[i]` (any path).
const ANCESTORS: [u128; N] = ancestor_masks();
/// `DESCENDANTS[i]` has bit `j` set iff `TABLE[j]` is a strict descendant of `TABLE[i]`.
const DESCENDANTS: [u128; N] = descendant_masks();

// Compile-time checks of the table (a failure here is a build error, never a run-time panic).
const _: () = {
    assert!(N <= 128, "relation masks are u128");
    let mut i = 0;
    while i < N {
        assert!(!TABLE[i].code.is_empty() && TABLE[i].code.len() <= MAX_CODE_LEN);
        assert!(
            i == 0 || str_lt(TABLE[i - 1].code, TABLE[i].code),
            "TABLE not sorted/unique"
        );
        assert!(ANCESTORS[i] & (1 << i) == 0, "cycle in TABLE");
        i += 1;
    }
    let mut a = 0;
    while a < ABSTRACT.len() {
        assert!(
            index_of(ABSTRACT[a]).is_none(),
            "an abstract code is in TABLE"
        );
        a += 1;
    }
};

const fn str_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Byte-order `a < b`.
const fn str_lt(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] != b[i] {
            return a[i] < b[i];
        }
        i += 1;
    }
    a.len() < b.len()
}

const fn index_of(code: &str) -> Option<usize> {
    let mut i = 0;
    while i < N {
        if str_eq(TABLE[i].code, code) {
            return Some(i);
        }
        i += 1;
    }
    None
}

const fn parent_masks() -> [u128; N] {
    let mut masks = [0u128; N];
    let mut i = 0;
    while i < N {
        let parents = TABLE[i].parents;
        let mut p = 0;
        while p < parents.len() {
            match index_of(parents[p]) {
                Some(j) => masks[i] |= 1 << j,
                None => panic!("a parent in TABLE is not in TABLE"),
            }
            p += 1;
        }
        i += 1;
    }
    masks
}

const fn ancestor_masks() -> [u128; N] {
    let mut masks = PARENTS;
    let mut changed = true;
    while changed {
        changed = false;
        let mut i = 0;
        while i < N {
            let mut grown = masks[i];
            let mut j = 0;
            while j < N {
                if masks[i] & (1 << j) != 0 {
                    grown |= masks[j];
                }
                j += 1;
            }
            if grown != masks[i] {
                masks[i] = grown;
                changed = true;
            }
            i += 1;
        }
    }
    masks
}

const fn descendant_masks() -> [u128; N] {
    let mut masks = [0u128; N];
    let mut i = 0;
    while i < N {
        let mut j = 0;
        while j < N {
            if ANCESTORS[j] & (1 << i) != 0 {
                masks[i] |= 1 << j;
            }
            j += 1;
        }
        i += 1;
    }
    masks
}

/// The purpose for a code known to be in the table; evaluated only in constants, where a missing
/// code fails the build.
const fn known(code: &str) -> Purpose {
    match index_of(code) {
        // N <= 128 (checked above), so the index fits in a u8.
        Some(i) => Purpose(i as u8),
        None => panic!("code not in TABLE"),
    }
}

/// The purposes whose bits are set in `mask`, in code order.
fn purposes_in(mask: u128) -> impl Iterator<Item = Purpose> {
    (0..N)
        .filter(move |&i| mask & (1 << i) != 0)
        .map(|i| Purpose(i as u8))
}

impl Purpose {
    /// `TREAT`: treatment.
    pub const TREAT: Purpose = known("TREAT");
    /// `ETREAT`: emergency treatment (break-glass, under `TREAT`).
    pub const ETREAT: Purpose = known("ETREAT");
    /// `BTG`: break the glass (under `ETREAT`).
    pub const BTG: Purpose = known("BTG");
    /// `HPAYMT`: healthcare payment.
    pub const HPAYMT: Purpose = known("HPAYMT");
    /// `HOPERAT`: healthcare operations.
    pub const HOPERAT: Purpose = known("HOPERAT");
    /// `HRESCH`: healthcare research.
    pub const HRESCH: Purpose = known("HRESCH");
    /// `HMARKT`: healthcare marketing.
    pub const HMARKT: Purpose = known("HMARKT");
    /// `PUBHLTH`: public health.
    pub const PUBHLTH: Purpose = known("PUBHLTH");
    /// `PATRQT`: patient requested.
    pub const PATRQT: Purpose = known("PATRQT");

    /// Parses a PurposeOfUse code: exact and case-sensitive, no trimming.
    pub fn parse(code: &str) -> Result<Purpose, PurposeError> {
        if code.is_empty() {
            return Err(PurposeError::Empty);
        }
        if code.len() > MAX_CODE_LEN {
            return Err(PurposeError::TooLong { len: code.len() });
        }
        match TABLE.binary_search_by(|entry| entry.code.cmp(code)) {
            // N <= 128 (checked at compile time), so the index fits in a u8.
            Ok(i) => Ok(Purpose(i as u8)),
            Err(_) if ABSTRACT.contains(&code) => Err(PurposeError::Abstract(code.to_owned())),
            Err(_) => Err(PurposeError::Unknown(code.to_owned())),
        }
    }

    fn entry(&self) -> &'static Entry {
        &TABLE[usize::from(self.0)]
    }

    fn bit(&self) -> u128 {
        1 << self.0
    }

    /// The HL7 code, e.g. `"TREAT"`.
    pub fn code(&self) -> &'static str {
        self.entry().code
    }

    /// The HL7 display name, e.g. `"treatment"`.
    pub fn display(&self) -> &'static str {
        self.entry().display
    }

    /// The direct parents within `PurposeOfUse`, in code order; none for the top-level codes
    /// (`TREAT`, `HPAYMT`, `HOPERAT`, `HRESCH`, `HMARKT`, `PUBHLTH`, `PATRQT`).
    pub fn parents(&self) -> impl Iterator<Item = Purpose> + use<> {
        purposes_in(PARENTS[usize::from(self.0)])
    }

    /// Whether consent for `self` covers a request for `requested`: true iff they are equal or
    /// `self` is an ancestor of `requested` (through any parent path). Never covers a parent or
    /// a sibling.
    pub fn covers(&self, requested: Purpose) -> bool {
        *self == requested || ANCESTORS[usize::from(requested.0)] & self.bit() != 0
    }

    /// Whether this is an emergency (break-glass) purpose: `ETREAT`, `BTG`, or a descendant of
    /// either (in 4.0.0: `ETREAT`, `BTG`, `ERTREAT`).
    pub fn is_break_glass(&self) -> bool {
        Purpose::ETREAT.covers(*self) || Purpose::BTG.covers(*self)
    }

    /// Every valid purpose, in code order.
    pub fn all() -> impl Iterator<Item = Purpose> {
        (0..N).map(|i| Purpose(i as u8))
    }

    /// `self` and all its descendants, in code order: the requested purposes a consent for
    /// `self` covers (for audit queries).
    pub fn descendants(&self) -> impl Iterator<Item = Purpose> + use<> {
        purposes_in(DESCENDANTS[usize::from(self.0)] | self.bit())
    }
}

impl fmt::Debug for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Purpose({})", self.code())
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.code())
    }
}

impl FromStr for Purpose {
    type Err = PurposeError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Purpose::parse(code)
    }
}

impl Serialize for Purpose {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Purpose {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CodeVisitor;

        impl de::Visitor<'_> for CodeVisitor {
            type Value = Purpose;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "an HL7 PurposeOfUse code {EXAMPLES}")
            }

            fn visit_str<E: de::Error>(self, code: &str) -> Result<Purpose, E> {
                Purpose::parse(code).map_err(E::custom)
            }
        }

        deserializer.deserialize_str(CodeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::de::IntoDeserializer;
    use serde::de::value::{Error as DeError, StrDeserializer};

    use super::*;

    fn p(code: &str) -> Purpose {
        Purpose::parse(code).unwrap()
    }

    #[test]
    fn table_has_every_code_once_in_order() {
        assert_eq!(Purpose::all().count(), 62);
        for (i, purpose) in Purpose::all().enumerate() {
            assert_eq!(p(purpose.code()), purpose);
            assert_eq!(TABLE[i].code, purpose.code());
        }
        let codes: Vec<_> = Purpose::all().map(|p| p.code()).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(codes, sorted);
        // Ord follows the code order.
        assert!(Purpose::BTG < Purpose::TREAT);
    }

    #[test]
    fn hpaymt_does_not_cover_hmarkt() {
        assert!(!Purpose::HPAYMT.covers(Purpose::HMARKT));
        assert!(!Purpose::HMARKT.covers(Purpose::HPAYMT));
        assert!(Purpose::HPAYMT.covers(p("COVAUTH")));
        assert!(Purpose::HPAYMT.covers(p("ELIGVER")));
    }

    #[test]
    fn treat_covers_etreat_not_the_reverse() {
        assert!(Purpose::TREAT.covers(Purpose::ETREAT));
        assert!(Purpose::TREAT.covers(Purpose::BTG));
        assert!(Purpose::ETREAT.covers(Purpose::BTG));
        assert!(!Purpose::ETREAT.covers(Purpose::TREAT));
        assert!(!Purpose::BTG.covers(Purpose::ETREAT));
        // Siblings do not cover each other.
        assert!(!Purpose::BTG.covers(p("ERTREAT")));
        assert!(!Purpose::ETREAT.covers(p("COC")));
        for purpose in Purpose::all() {
            assert!(purpose.covers(purpose));
        }
    }

    #[test]
    fn parents_and_descendants() {
        assert_eq!(
            Purpose::BTG.parents().collect::<Vec<_>>(),
            [Purpose::ETREAT]
        );
        assert_eq!(
            Purpose::ETREAT.parents().collect::<Vec<_>>(),
            [Purpose::TREAT]
        );
        assert_eq!(p("HTEST").parents().collect::<Vec<_>>(), [p("SYSDEV")]);
        for top in [
            Purpose::TREAT,
            Purpose::HPAYMT,
            Purpose::HOPERAT,
            Purpose::HRESCH,
            Purpose::HMARKT,
            Purpose::PUBHLTH,
            Purpose::PATRQT,
        ] {
            assert_eq!(top.parents().count(), 0, "{top}");
        }
        let etreat: Vec<_> = Purpose::ETREAT.descendants().map(|p| p.code()).collect();
        assert_eq!(etreat, ["BTG", "ERTREAT", "ETREAT"]);
        assert_eq!(
            Purpose::HMARKT.descendants().collect::<Vec<_>>(),
            [Purpose::HMARKT]
        );
        let treat: Vec<_> = Purpose::TREAT.descendants().map(|p| p.code()).collect();
        assert_eq!(
            treat,
            [
                "BTG", "CLINTRL", "COC", "ERTREAT", "ETREAT", "POPHLTH", "TREAT", "TREATDS"
            ]
        );
        for a in Purpose::all() {
            for b in Purpose::all() {
                assert_eq!(a.covers(b), a.descendants().any(|d| d == b));
            }
        }
    }

    #[test]
    fn break_glass() {
        let glass: Vec<_> = Purpose::all()
            .filter(Purpose::is_break_glass)
            .map(|p| p.code())
            .collect();
        assert_eq!(glass, ["BTG", "ERTREAT", "ETREAT"]);
        assert!(!Purpose::TREAT.is_break_glass());
    }

    #[test]
    fn abstract_purpose_of_use_refused() {
        assert_eq!(
            Purpose::parse("PurposeOfUse"),
            Err(PurposeError::Abstract("PurposeOfUse".into()))
        );
        assert!(matches!(
            Purpose::parse("_ActInformationManagementReason"),
            Err(PurposeError::Abstract(_))
        ));
    }

    #[test]
    fn unknown_code_refused() {
        let err = Purpose::parse("NOPE").unwrap_err();
        assert_eq!(err, PurposeError::Unknown("NOPE".into()));
        assert_eq!(
            err.to_string(),
            "unknown purpose code `NOPE` (expected an HL7 PurposeOfUse code such as TREAT, \
             HPAYMT, HMARKT)"
        );
        // ActReason codes outside PurposeOfUse are not purposes.
        assert!(matches!(
            Purpose::parse("OPERAT"),
            Err(PurposeError::Unknown(_))
        ));
        assert!(matches!(
            Purpose::parse("_ActCoverageReason"),
            Err(PurposeError::Unknown(_))
        ));
        assert_eq!(Purpose::parse(""), Err(PurposeError::Empty));
        assert!(matches!(
            Purpose::parse(" TREAT"),
            Err(PurposeError::Unknown(_))
        ));
        assert!(matches!(
            Purpose::parse("TREAT\n"),
            Err(PurposeError::Unknown(_))
        ));
        let shown = Purpose::parse("A\nB").unwrap_err().to_string();
        assert!(shown.contains("`A\\nB`"), "{shown}");
    }

    #[test]
    fn lowercase_refused() {
        for code in ["treat", "Treat", "btg", "purposeofuse", "hpaymt"] {
            assert!(
                matches!(Purpose::parse(code), Err(PurposeError::Unknown(_))),
                "{code}"
            );
        }
    }

    #[test]
    fn overlong_input_refused() {
        let long = "TREAT".repeat(1000);
        let err = Purpose::parse(&long).unwrap_err();
        assert_eq!(err, PurposeError::TooLong { len: 5000 });
        assert!(!err.to_string().contains("TREATTREAT"));
        assert!(Purpose::parse(&"X".repeat(MAX_CODE_LEN + 1)).is_err());
        assert!(matches!(
            Purpose::parse(&"X".repeat(MAX_CODE_LEN)),
            Err(PurposeError::Unknown(_))
        ));
    }

    #[test]
    fn text_round_trip() {
        for purpose in Purpose::all() {
            assert_eq!(purpose.to_string(), purpose.code());
            assert_eq!(purpose.code().parse::<Purpose>(), Ok(purpose));
            assert!(!purpose.display().is_empty());
        }
        assert_eq!(Purpose::BTG.display(), "break the glass");
        assert_eq!(format!("{:>6}", Purpose::BTG), "   BTG");
        assert_eq!(format!("{:?}", Purpose::ETREAT), "Purpose(ETREAT)");
    }

    #[test]
    fn deserialize_validates() {
        let de: StrDeserializer<'_, DeError> = "HMARKT".into_deserializer();
        assert_eq!(Purpose::deserialize(de), Ok(Purpose::HMARKT));
        let de: StrDeserializer<'_, DeError> = "PurposeOfUse".into_deserializer();
        assert!(Purpose::deserialize(de).is_err());
        let de: StrDeserializer<'_, DeError> = "treat".into_deserializer();
        assert!(Purpose::deserialize(de).is_err());
    }
}
