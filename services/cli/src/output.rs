//! Human output by default, JSON with `--json`.

use serde_json::Value;

/// Where results go.
pub(crate) struct Output {
    json: bool,
}

impl Output {
    pub(crate) fn new(json: bool) -> Self {
        Output { json }
    }

    /// Whether results go out as JSON (`--json`).
    pub(crate) fn is_json(&self) -> bool {
        self.json
    }

    /// Prints a result: `human` for people, `value` for scripts.
    pub(crate) fn result(&self, human: impl FnOnce() -> String, value: Value) {
        if self.json {
            println!("{value}");
        } else {
            println!("{}", human());
        }
    }

    /// Prints a narrative line (human output only).
    pub(crate) fn say(&self, line: impl AsRef<str>) {
        if !self.json {
            println!("{}", line.as_ref());
        }
    }

    /// Prints an error: the whole cause chain, on stderr.
    pub(crate) fn error(&self, error: &anyhow::Error) {
        if self.json {
            let chain: Vec<String> = error.chain().map(|e| e.to_string()).collect();
            eprintln!("{}", serde_json::json!({ "error": chain.join(": ") }));
        } else {
            eprintln!("error: {error:#}");
        }
    }
}
