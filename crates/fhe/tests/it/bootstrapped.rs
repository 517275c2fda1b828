use custos_fhe::{
    AggregateValue, Error, NoProgress, Payload, Query, decrypt_checked, evaluate, explain,
};

use crate::common::{client_key, demo_table, plaintext, random_cohort, random_records, server_key};

/// PBS costs ~10-20 ms each, so the bootstrapped path runs on a handful of rows.
#[test]
fn bootstrapped_plans_equal_the_plaintext_aggregate_on_a_few_rows() {
    let records = random_records(31, 6);
    let table = demo_table(&records);
    let cohort = random_cohort(32, 6, 0.6);
    for query in [
        "COUNT WHERE smoker = 1 AND diabetes = 0",
        "COUNT WHERE bmi >= 27.3",
        "MEAN bmi WHERE smoker = 1 AND sex != male",
    ] {
        let plan = explain(table.schema(), query).expect("plans");
        assert!(plan.needs_bootstrapping(), "{plan}");
        assert!(matches!(
            evaluate(&plan, &table, &cohort, None, &NoProgress),
            Err(Error::MissingServerKey)
        ));
        let result =
            evaluate(&plan, &table, &cohort, Some(server_key()), &NoProgress).expect("evaluates");
        let value =
            decrypt_checked(client_key(), &plan, &table, &cohort, &result, 0).expect("checks");
        let (count, sum) = plaintext(
            table.schema(),
            &records,
            &cohort,
            &Query::parse(query).expect("parses"),
        );
        match value {
            AggregateValue::Count(c) => assert_eq!(c, count, "{query}"),
            AggregateValue::Sum {
                units, count: c, ..
            }
            | AggregateValue::Mean {
                units, count: c, ..
            } => {
                assert_eq!((c, units), (count, sum), "{query}")
            }
        }
        if query.starts_with("MEAN") {
            // A worker that swaps the outputs is caught by the recomputation.
            let mut forged = result.clone();
            let (a, b) = (result.outputs()[0].1.clone(), result.outputs()[1].1.clone());
            forged.tamper(0, b);
            forged.tamper(1, a);
            let e = decrypt_checked(client_key(), &plan, &table, &cohort, &forged, 0)
                .expect_err("forged");
            assert!(matches!(e, Error::Provenance(_)), "{e}");
            assert!(matches!(forged.outputs()[0].1, Payload::Radix(_)));
        }
    }
}
