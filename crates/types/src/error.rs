//! Validation errors that name the field they refuse.

use std::fmt;

/// A field of a wire message that failed validation: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FieldError {
    /// Path of the field, e.g. `body.grant_consent.consent.purposes[1]`.
    pub field: String,
    /// What was expected and what came.
    pub reason: String,
}

impl FieldError {
    /// A refusal of `field` for `reason`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The same error under a parent path: `parent.field`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_string()
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Extension to prefix a field path onto a `Result`'s error.
pub trait Within<T> {
    /// Prefixes `parent` to the error's field path.
    fn within(self, parent: &str) -> Result<T, FieldError>;
}

impl<T> Within<T> for Result<T, FieldError> {
    fn within(self, parent: &str) -> Result<T, FieldError> {
        self.map_err(|e| e.within(parent))
    }
}

/// Requires a message field to be present.
pub fn required<T>(value: Option<T>, field: &str) -> Result<T, FieldError> {
    value.ok_or_else(|| FieldError::new(field, "required field is missing"))
}
