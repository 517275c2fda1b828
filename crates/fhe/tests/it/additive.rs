use custos_fhe::{
    AggregateValue, Attribute, AttributeKind, ClientKey, Cohort, Cross, EncryptedTable, Family,
    NoProgress, Query, Schema, decrypt_checked, evaluate, explain,
};
use proptest::prelude::*;

use crate::common::{client_key, demo_table, plaintext, random_cohort, random_records};

const TEMPLATES: &[&str] = &[
    "COUNT",
    "COUNT WHERE diabetes = 1",
    "COUNT WHERE diabetes = false",
    "COUNT WHERE sex = male",
    "COUNT WHERE sex != female",
    "COUNT WHERE age >= {lo} AND age < {hi}",
    "COUNT WHERE age >= {lo}",
    "COUNT WHERE age < {hi}",
    "COUNT WHERE hba1c >= 6.5",
    "COUNT WHERE age >= {lo} AND age < {hi} AND hba1c >= 6.5",
    "COUNT WHERE age >= {lo} AND age < {hi} AND diabetes = 1",
    "COUNT WHERE bmi >= 25 AND bmi < 30",
    "SUM bmi",
    "SUM age",
    "SUM hba1c",
    "MEAN bmi WHERE age >= {lo} AND age < {hi}",
    "SUM bmi WHERE diabetes = true",
    "MEAN bmi WHERE age >= {lo} AND age < {hi} AND hba1c >= 6.5",
    "SUM bmi WHERE hba1c >= 5.7 AND hba1c < 6.5 AND age >= {lo}",
];
const EDGES: &[u32] = &[18, 30, 40, 50, 60, 70, 80];

fn check(records_seed: u64, rows: usize, density: f64, query: &str) {
    let records = random_records(records_seed, rows);
    let table = demo_table(&records);
    let cohort = random_cohort(records_seed ^ 0x5eed, rows, density);
    let plan = explain(table.schema(), query).expect("plans");
    assert!(
        !plan.needs_bootstrapping(),
        "{query} should be additive:\n{plan}"
    );
    let result = evaluate(&plan, &table, &cohort, None, &NoProgress).expect("evaluates");
    let value = decrypt_checked(client_key(), &plan, &table, &cohort, &result, 0).expect("checks");
    let q = Query::parse(query).expect("parses");
    let (count, sum) = plaintext(table.schema(), &records, &cohort, &q);
    match value {
        AggregateValue::Count(c) => assert_eq!(c, count, "{query}"),
        AggregateValue::Sum {
            units, count: c, ..
        }
        | AggregateValue::Mean {
            units, count: c, ..
        } => {
            assert_eq!((c, units), (count, sum), "{query}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn every_additive_plan_equals_the_plaintext_aggregate(
        seed in any::<u64>(),
        rows in 1usize..4500,
        density in 0.0f64..1.0,
        template in 0..TEMPLATES.len(),
        lo in 0..EDGES.len(),
        span in 1..EDGES.len(),
    ) {
        let hi = (lo + span).min(EDGES.len() - 1).max(lo + 1).min(EDGES.len() - 1);
        prop_assume!(hi > lo);
        let query = TEMPLATES[template]
            .replace("{lo}", &EDGES[lo].to_string())
            .replace("{hi}", &EDGES[hi].to_string());
        check(seed, rows, density, &query);
    }
}

#[test]
fn the_headline_query_is_additive_with_the_demo_crosses() {
    let schema = Schema::demo();
    let plan = explain(
        &schema,
        "MEAN bmi WHERE age >= 40 AND age < 60 AND hba1c >= 6.5",
    )
    .expect("plans");
    assert!(!plan.needs_bootstrapping());
    let text = plan.to_string();
    assert!(
        text.contains("additive") && text.contains("bmi*[age>=40]*[hba1c>=6.5]"),
        "{text}"
    );
    check(
        11,
        3000,
        0.75,
        "MEAN bmi WHERE age >= 40 AND age < 60 AND hba1c >= 6.5",
    );
}

#[test]
fn appending_in_batches_re_encrypts_the_tail_chunk_and_keeps_every_row() {
    let records = random_records(3, 2100);
    let mut table = EncryptedTable::new(Schema::demo(), client_key());
    for part in [
        &records[..5],
        &records[5..2047],
        &records[2047..2049],
        &records[2049..],
    ] {
        table.append(client_key(), part).expect("appends");
    }
    assert_eq!(table.rows(), 2100);
    let cohort = random_cohort(4, 2100, 0.5);
    let plan = explain(table.schema(), "SUM bmi WHERE age >= 40 AND age < 60").expect("plans");
    let result = evaluate(&plan, &table, &cohort, None, &NoProgress).expect("evaluates");
    let value = decrypt_checked(client_key(), &plan, &table, &cohort, &result, 1).expect("checks");
    let (count, sum) = plaintext(table.schema(), &records, &cohort, plan.query());
    assert_eq!(
        value,
        AggregateValue::Sum {
            total: sum as f64 / 10.0,
            units: sum,
            count
        }
    );
}

#[test]
fn a_table_survives_a_bytes_round_trip_and_a_projection() {
    let records = random_records(5, 300);
    let table = demo_table(&records);
    let bytes = table.to_bytes().expect("serializes");
    let loaded = EncryptedTable::from_bytes(&bytes).expect("loads");
    assert_eq!(loaded, table);
    assert_eq!(loaded.to_bytes().expect("serializes"), bytes);
    let plan = explain(table.schema(), "COUNT WHERE diabetes = 1").expect("plans");
    let projected = loaded.project(&plan).expect("projects");
    assert_eq!(projected.column_count(), 1);
    let cohort = random_cohort(6, 300, 0.9);
    let on_projection = evaluate(&plan, &projected, &cohort, None, &NoProgress).expect("evaluates");
    let on_full = evaluate(&plan, &table, &cohort, None, &NoProgress).expect("evaluates");
    assert_eq!(
        on_projection, on_full,
        "evaluation is deterministic and needs only the plan's columns"
    );
    assert!(EncryptedTable::from_bytes(&bytes[..bytes.len() - 3]).is_err());
}

#[test]
fn storage_costs_at_most_eight_bytes_per_record_per_column_for_full_chunks() {
    let records = random_records(8, 2048);
    let table = demo_table(&records);
    let b = table.bytes_per_record_per_column();
    assert!(b <= 8.0, "{b} bytes per record per column");
}

#[test]
fn progress_reports_every_chunk() {
    let records = random_records(9, 5000);
    let table = demo_table(&records);
    let cohort = random_cohort(10, 5000, 1.0);
    let plan = explain(table.schema(), "COUNT WHERE smoker = 1").expect("plans");
    let seen = std::sync::Mutex::new(Vec::new());
    let sink = |done: u64, total: u64| {
        if let Ok(mut s) = seen.lock() {
            s.push((done, total));
        }
    };
    evaluate(&plan, &table, &cohort, None, &sink).expect("evaluates");
    let mut seen = seen.into_inner().expect("not poisoned");
    seen.sort();
    assert_eq!(seen, vec![(1, 3), (2, 3), (3, 3)]);
}

/// The maximal table: 2^20 rows all holding the largest value, all selected.
#[test]
fn the_largest_supported_cohort_with_maximal_values_still_decrypts_exactly() {
    let key = ClientKey::generate();
    let schema = Schema::new(
        vec![
            Attribute {
                name: "v".into(),
                kind: AttributeKind::Numeric {
                    scale: 1,
                    max_units: custos_fhe::params::MAX_VALUE,
                    edges: vec![512],
                    sum: true,
                    radix: false,
                },
            },
            Attribute {
                name: "w".into(),
                kind: AttributeKind::Boolean,
            },
        ],
        vec![
            Cross {
                families: vec![Family::Value("v".into()), Family::Indicators("w".into())],
            },
            Cross {
                families: vec![
                    Family::Indicators("v".into()),
                    Family::Indicators("w".into()),
                ],
            },
        ],
    )
    .expect("valid schema");
    let rows = custos_fhe::params::MAX_ROWS;
    let mut table = EncryptedTable::new(schema, &key);
    let units = vec![vec![custos_fhe::params::MAX_VALUE, 1]; rows];
    table.append_units(&key, &units).expect("fits");
    let all: Vec<u64> = (0..rows as u64).collect();
    let cohort = Cohort::from_sorted_rows(&all).expect("valid");
    let max_sum = custos_fhe::params::MAX_VALUE * rows as u64;
    for (query, expected) in [
        ("SUM v", max_sum),
        ("SUM v WHERE w = 1", max_sum),
        ("COUNT WHERE v >= 512 AND w = 1", rows as u64),
        // (1 − T)(1 − W) = 1 − T − W + T·W: true value 0, noise of three full columns.
        ("COUNT WHERE v < 512 AND w = 0", 0),
    ] {
        let plan = explain(table.schema(), query).expect("plans");
        assert!(!plan.needs_bootstrapping(), "{plan}");
        let result = evaluate(&plan, &table, &cohort, None, &NoProgress).expect("evaluates");
        let value = decrypt_checked(&key, &plan, &table, &cohort, &result, 0).expect("checks");
        let got = match value {
            AggregateValue::Count(c) => c,
            AggregateValue::Sum { units, .. } | AggregateValue::Mean { units, .. } => units,
        };
        assert_eq!(got, expected, "{query}");
    }
    assert!(
        table.append_units(&key, &[vec![0, 0]]).is_err(),
        "capacity is enforced"
    );
}
