use custos_fhe::{
    Cohort, EncryptedResult, Error, NoProgress, Payload, decrypt_checked, evaluate, explain,
};

use crate::common::{client_key, demo_table, random_cohort, random_records};

fn setup() -> (custos_fhe::EncryptedTable, Cohort) {
    let records = random_records(21, 3000);
    (demo_table(&records), random_cohort(22, 3000, 0.75))
}

#[test]
fn a_cohort_below_k_is_refused_before_decryption() {
    let (table, _) = setup();
    let cohort = Cohort::from_sorted_rows(&[1, 2, 3]).expect("valid");
    let plan = explain(table.schema(), "SUM bmi").expect("plans");
    let result = evaluate(&plan, &table, &cohort, None, &NoProgress).expect("evaluates");
    let e = decrypt_checked(client_key(), &plan, &table, &cohort, &result, 10).expect_err("k=10");
    assert!(
        matches!(e, Error::CohortTooSmall { k_min: 10, got: 3 }),
        "{e}"
    );
}

#[test]
fn a_predicate_matching_fewer_than_k_rows_is_refused() {
    let (table, cohort) = setup();
    let plan = explain(
        table.schema(),
        "COUNT WHERE age >= 18 AND age < 30 AND diabetes = 1",
    )
    .expect("plans");
    let result = evaluate(&plan, &table, &cohort, None, &NoProgress).expect("evaluates");
    let e = decrypt_checked(client_key(), &plan, &table, &cohort, &result, 2000)
        .expect_err("too few match");
    assert!(matches!(e, Error::CohortTooSmall { .. }), "{e}");
}

#[test]
fn a_single_rows_ciphertext_returned_as_the_sum_is_refused() {
    let (table, cohort) = setup();
    let plan = explain(table.schema(), "SUM bmi WHERE diabetes = 1").expect("plans");
    let honest = evaluate(&plan, &table, &cohort, None, &NoProgress).expect("evaluates");
    let first = cohort.rows().next().expect("non-empty");
    let one = Cohort::from_sorted_rows(&[first]).expect("valid");
    let single = evaluate(&plan, &table, &one, None, &NoProgress).expect("evaluates");
    let mut forged = honest.clone();
    for i in 0..2 {
        forged.tamper(i, single.outputs()[i].1.clone());
    }
    let e = decrypt_checked(client_key(), &plan, &table, &cohort, &forged, 5).expect_err("forged");
    assert!(matches!(e, Error::Provenance(_)), "{e}");
    assert!(decrypt_checked(client_key(), &plan, &table, &cohort, &honest, 5).is_ok());
}

#[test]
fn a_result_for_another_cohort_is_refused() {
    let (table, cohort) = setup();
    let plan = explain(table.schema(), "COUNT WHERE smoker = 1").expect("plans");
    let other = random_cohort(99, 3000, 0.75);
    let result = evaluate(&plan, &table, &other, None, &NoProgress).expect("evaluates");
    let e = decrypt_checked(client_key(), &plan, &table, &cohort, &result, 5)
        .expect_err("other cohort");
    assert!(matches!(e, Error::Provenance(_)), "{e}");
}

#[test]
fn a_result_for_another_plan_or_a_flipped_bit_is_refused() {
    let (table, cohort) = setup();
    let plan = explain(table.schema(), "COUNT WHERE smoker = 1").expect("plans");
    let other = explain(table.schema(), "COUNT WHERE smoker = 0").expect("plans");
    let result = evaluate(&other, &table, &cohort, None, &NoProgress).expect("evaluates");
    assert!(matches!(
        decrypt_checked(client_key(), &plan, &table, &cohort, &result, 5),
        Err(Error::Provenance(_))
    ));
    let mut result = evaluate(&plan, &table, &cohort, None, &NoProgress).expect("evaluates");
    let Payload::Lwe(mut v) = result.outputs()[0].1.clone() else {
        panic!("additive output")
    };
    v[2048] ^= 1 << 40;
    result.tamper(0, Payload::Lwe(v));
    let bytes = result.to_bytes().expect("serializes");
    let result = EncryptedResult::from_bytes(&bytes).expect("loads");
    assert!(matches!(
        decrypt_checked(client_key(), &plan, &table, &cohort, &result, 5),
        Err(Error::Provenance(_))
    ));
}
