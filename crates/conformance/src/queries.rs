//! Predicate-mode queries, aggregate scopes and the aggregate query grammar.

use custos_crypto::sha256;
use custos_types::aggregate::AggregateScope;
use serde_json::{Value, json};

use crate::Vector;
use crate::json::hx;

const SPEC: &str = "queries.md";

/// Version byte of the predicate encoding.
const PREDICATE_VERSION: u8 = 1;
/// Clause slots of the predicate encoding.
const SLOTS: usize = 8;

/// One clause: attribute index, op code and its (1 to 4) constants as written.
type Clause = (u8, u8, &'static [u32]);

/// The canonical encoding of docs/spec/queries.md: version, then 8 slots of index, op and four
/// big-endian u32 constants; sets sorted, deduplicated and padded with their smallest element.
/// (`tests/it/predicate.rs` checks it against the predicate circuit's own encoder.)
pub(crate) fn encode_predicate(clauses: &[Clause]) -> Vec<u8> {
    let mut out = vec![PREDICATE_VERSION];
    for slot in 0..SLOTS {
        let (index, op, constants) = clauses.get(slot).copied().unwrap_or((0, 0, &[]));
        let mut c = [0u32; 4];
        if op == 5 || op == 6 {
            let mut set = constants.to_vec();
            set.sort_unstable();
            set.dedup();
            let smallest = set.first().copied().unwrap_or(0);
            for (i, v) in c.iter_mut().enumerate() {
                *v = set.get(i).copied().unwrap_or(smallest);
            }
        } else if let Some(first) = constants.first() {
            c[0] = *first;
        }
        out.push(index);
        out.push(op);
        for v in c {
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    out
}

/// `age>=18 && smoker=0 && bmi_x10<300`.
pub(crate) const ADULT_NON_SMOKER: &[Clause] = &[(0, 1, &[18]), (1, 3, &[0]), (2, 2, &[300])];
/// `sex in {2,1} && postcode_region not in {7}`.
pub(crate) const SET_PREDICATE: &[Clause] = &[(6, 5, &[2, 1]), (7, 6, &[7])];

/// The canonical bytes of [`ADULT_NON_SMOKER`].
pub(crate) fn adult_non_smoker() -> Vec<u8> {
    encode_predicate(ADULT_NON_SMOKER)
}

fn clauses_json(clauses: &[Clause]) -> Value {
    Value::Array(
        clauses
            .iter()
            .map(|(index, op, values)| json!({ "index": index, "op": op, "values": values }))
            .collect(),
    )
}

fn predicate_vector(name: &str, text: &str, clauses: &[Clause]) -> Vector {
    let bytes = encode_predicate(clauses);
    Vector::valid(
        name,
        "predicate",
        SPEC,
        json!({ "text": text, "clauses": clauses_json(clauses) }),
        json!({ "bytes": hx(&bytes), "digest": hx(sha256(&bytes)) }),
    )
}

/// The predicate texts and whether the aggregate grammar accepts them.
pub(crate) const GRAMMAR: &[(&str, &str, bool)] = &[
    ("grammar/accepted-count", "COUNT", true),
    (
        "grammar/accepted-count-star-where",
        "count(*) where age >= 40 and age < 60",
        true,
    ),
    (
        "grammar/accepted-mean",
        "MEAN bmi WHERE age >= 40 AND age < 60 AND hba1c >= 6.5",
        true,
    ),
    (
        "grammar/accepted-sum-label",
        "SUM(age) WHERE sex = 'female' AND smoker = false",
        true,
    ),
    ("grammar/accepted-avg-ne", "AVG bmi WHERE sex <> male", true),
    ("grammar/refused-count-where", "COUNT WHERE", false),
    (
        "grammar/refused-missing-operator",
        "MEAN bmi WHERE age",
        false,
    ),
    ("grammar/refused-sum-without-attribute", "SUM", false),
    ("grammar/refused-trailing-word", "COUNT age", false),
    (
        "grammar/refused-unclosed-quote",
        "COUNT WHERE sex = 'female",
        false,
    ),
    (
        "grammar/refused-or",
        "COUNT WHERE age >= 40 OR age < 20",
        false,
    ),
];

pub(crate) fn vectors() -> Vec<Vector> {
    let scope: AggregateScope = crate::transactions::scope();
    let scope_bytes = scope.to_query();
    let decoded = AggregateScope::from_query(&scope_bytes);
    let mut non_canonical = encode_predicate(&[(6, 5, &[1, 2])]);
    // Pad the set with 0 instead of its smallest element: decodes, but is not canonical.
    // Slot 0 starts after the version byte; constant i sits after its index and op bytes.
    for i in [2, 3] {
        let at = 1 + 2 + 4 * i;
        non_canonical[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
    }
    let mut out = vec![
        predicate_vector(
            "query/predicate-adult-non-smoker",
            "age>=18 && smoker=0 && bmi_x10<300",
            ADULT_NON_SMOKER,
        ),
        predicate_vector(
            "query/predicate-set",
            "sex in {2,1} && postcode_region not in {7}",
            SET_PREDICATE,
        ),
        predicate_vector("query/predicate-true", "true", &[]),
        Vector::invalid(
            "query/neg-predicate-non-canonical-set",
            "predicate-bytes",
            SPEC,
            "a set padded with 0 instead of its smallest element is not the canonical encoding",
            json!({ "bytes": hx(&non_canonical) }),
        ),
        Vector::verdict(
            "query/aggregate-scope",
            "aggregate-scope",
            SPEC,
            decoded,
            json!({
                "custodian": hx(scope.custodian.0.as_bytes()),
                "category": scope.category.as_str(),
                "text": scope.text,
            }),
            json!({
                "bytes": hx(&scope_bytes),
                "cohort_id": hx(scope.cohort_id().0),
            }),
        ),
    ];
    for (name, text, accepted) in GRAMMAR {
        let inputs = json!({ "text": text });
        out.push(if *accepted {
            Vector::valid(name, "aggregate-query", SPEC, inputs, json!({}))
        } else {
            Vector::invalid(
                name,
                "aggregate-query",
                SPEC,
                "not a sentence of the aggregate query grammar",
                inputs,
            )
        });
    }
    out
}
