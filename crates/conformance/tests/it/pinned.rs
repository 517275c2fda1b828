//! `docs/spec/vectors.json` is exactly what the generator produces today.

use std::path::PathBuf;

/// The workspace root (two levels above this crate).
pub(crate) fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

#[test]
fn checked_in_vectors_are_what_the_product_produces() {
    let path = workspace_root().join(custos_conformance::VECTORS_PATH);
    let fresh = custos_conformance::document_text();
    if std::env::var_os("CUSTOS_REGENERATE_VECTORS").is_some() {
        std::fs::write(&path, &fresh).expect("write the vectors");
        return;
    }
    let pinned = std::fs::read_to_string(&path).unwrap_or_default();
    if pinned != fresh {
        let line = pinned
            .lines()
            .zip(fresh.lines())
            .position(|(a, b)| a != b)
            .map_or(pinned.lines().count().min(fresh.lines().count()) + 1, |i| {
                i + 1
            });
        panic!(
            "{} differs from what the product produces now (first difference at line {line}).\n\
             A signed or hashed format changed. If that change is deliberate, regenerate the \
             vectors and review the diff:\n    \
             CUSTOS_REGENERATE_VECTORS=1 cargo test -p custos-conformance\n\
             then update docs/spec for the new format version.",
            path.display()
        );
    }
}

#[test]
fn every_vector_has_a_unique_name_and_every_name_is_in_the_specification() {
    let doc = custos_conformance::document();
    let vectors = doc["vectors"].as_array().expect("vectors");
    let spec: String = std::fs::read_dir(workspace_root().join("docs/spec"))
        .expect("docs/spec")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "md"))
        .map(|e| std::fs::read_to_string(e.path()).expect("read a spec page"))
        .collect();
    let mut names = std::collections::BTreeSet::new();
    for v in vectors {
        let name = v["name"].as_str().expect("name");
        assert!(names.insert(name.to_string()), "{name} appears twice");
        let page = v["spec"].as_str().expect("spec page");
        assert!(
            workspace_root().join("docs/spec").join(page).exists(),
            "{name} names a missing page {page}"
        );
        // Grammar vectors are named as a family (`grammar/accepted-*`); the others one by one.
        if !name.starts_with("grammar/") && !name.starts_with("tx/same-fields-two-authors-") {
            assert!(
                spec.contains(&format!("`{name}`")),
                "docs/spec never names {name}"
            );
        }
    }
    assert_eq!(doc["count"].as_u64(), Some(vectors.len() as u64));
}

#[test]
fn negative_vectors_carry_the_products_reason_and_positive_ones_none() {
    for v in custos_conformance::vectors() {
        assert_eq!(v.valid, v.why.is_none(), "{}", v.name);
        assert_eq!(
            v.valid,
            !v.name.contains("/neg-") && !v.name.starts_with("grammar/refused"),
            "{}: {:?}",
            v.name,
            v.why
        );
    }
}

#[test]
fn every_hash_quoted_in_the_specification_is_in_the_vectors() {
    let vectors = std::fs::read_to_string(workspace_root().join(custos_conformance::VECTORS_PATH))
        .expect("read the vectors");
    let mut quoted = 0;
    for entry in std::fs::read_dir(workspace_root().join("docs/spec")).expect("docs/spec") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|x| x != "md") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read a spec page");
        // Runs of at least 32 hex digits, not all decimal: the worked examples' hashes, keys and
        // signatures (not the group order's decimal digits).
        for run in text.split(|c: char| !c.is_ascii_hexdigit()) {
            if run.len() >= 32 && !run.bytes().all(|b| b.is_ascii_digit()) {
                quoted += 1;
                assert!(
                    vectors.contains(&run.to_ascii_lowercase()),
                    "{} quotes {run}, which no vector holds: regenerate the worked example",
                    path.display()
                );
            }
        }
    }
    assert!(quoted >= 10, "only {quoted} hex values quoted in docs/spec");
}
