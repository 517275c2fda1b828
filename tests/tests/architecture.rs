//! ARCHITECTURE.md's dependency graph is the one the Cargo.toml files declare.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace crates a manifest lists under `[dependencies]` (not dev or build).
fn normal_custos_deps(manifest: &str) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps
            && line.starts_with("custos-")
            && let Some(name) = line.split(['=', '.', ' ']).next()
        {
            deps.insert(name.to_string());
        }
    }
    deps
}

fn package_name(manifest: &str) -> String {
    manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("name = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .expect("package name")
        .to_string()
}

#[test]
fn architecture_graph_matches_the_cargo_manifests() {
    let root = root();
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let members: Vec<String> = workspace
        .split("members = [")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap()
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect();
    let mut declared = BTreeSet::new();
    let mut crates = BTreeSet::new();
    for member in &members {
        let manifest = std::fs::read_to_string(root.join(member).join("Cargo.toml")).unwrap();
        let name = package_name(&manifest);
        crates.insert(name.clone());
        if name == "custos-tests" {
            continue;
        }
        for dep in normal_custos_deps(&manifest) {
            declared.insert((name.clone(), dep));
        }
    }
    let doc = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let graph = doc
        .split("```mermaid")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .unwrap();
    let drawn: BTreeSet<(String, String)> = graph
        .lines()
        .filter_map(|l| l.trim().split_once(" --> "))
        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        .collect();
    assert_eq!(
        drawn, declared,
        "ARCHITECTURE.md's mermaid graph differs from the manifests"
    );
    for name in &crates {
        assert!(
            doc.contains(&format!("`{name}`")),
            "ARCHITECTURE.md does not list {name}"
        );
    }
}
