use custos_fhe::{Error, Schema, explain};

fn err(q: &str) -> Error {
    explain(&Schema::demo(), q).expect_err(q)
}

#[test]
fn an_unknown_attribute_is_named_in_the_error() {
    let e = err("COUNT WHERE weight > 3");
    assert!(
        matches!(e, Error::UnknownAttribute { ref name, .. } if name == "weight"),
        "{e}"
    );
}

#[test]
fn an_ordering_on_a_boolean_is_a_type_mismatch() {
    let e = err("COUNT WHERE diabetes >= 3.5");
    assert!(matches!(e, Error::TypeMismatch { .. }), "{e}");
    assert!(
        e.to_string().contains("diabetes") && e.to_string().contains(">= 3.5"),
        "{e}"
    );
}

#[test]
fn a_bound_off_the_bucket_edges_without_radix_encoding_is_refused() {
    let e = err("COUNT WHERE age >= 45");
    assert!(matches!(e, Error::TypeMismatch { .. }), "{e}");
    assert!(e.to_string().contains("bucket edges"), "{e}");
}

#[test]
fn a_bound_finer_than_the_scale_is_refused() {
    let e = err("COUNT WHERE bmi >= 27.35");
    assert!(matches!(e, Error::TypeMismatch { .. }), "{e}");
}

#[test]
fn empty_oversized_and_overlong_queries_are_refused() {
    assert!(matches!(err(""), Error::QuerySize { .. }));
    assert!(matches!(
        err(&"COUNT ".repeat(300)),
        Error::QuerySize { .. }
    ));
    let many = format!("COUNT WHERE {}", ["age >= 18"; 9].join(" AND "));
    assert!(matches!(
        err(&many),
        Error::TooManyClauses { max: 8, got: 9 }
    ));
}

#[test]
fn syntax_errors_say_what_was_expected() {
    let e = err("COUNT WHERE age 40");
    assert!(e.to_string().contains("comparison operator"), "{e}");
    let e = err("TOTAL bmi");
    assert!(e.to_string().contains("COUNT, SUM or MEAN"), "{e}");
}

#[test]
fn sum_of_a_category_is_a_type_mismatch() {
    assert!(matches!(err("SUM sex"), Error::TypeMismatch { .. }));
}

#[test]
fn an_unknown_label_is_a_type_mismatch() {
    let e = err("COUNT WHERE sex = robot");
    assert!(e.to_string().contains("female"), "{e}");
}
