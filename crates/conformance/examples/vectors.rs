//! Prints the conformance vectors (`docs/spec/vectors.json`) to stdout.

fn main() {
    print!("{}", custos_conformance::document_text());
}
