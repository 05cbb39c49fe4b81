//! The error of parsing or validating a record.

use std::fmt;

use validator::{ValidationErrors, ValidationErrorsKind};

/// The key under which `validator` files struct-level (cross-field) errors.
const STRUCT_LEVEL_KEY: &str = "__all__";

/// The name this crate gives to struct-level (cross-field) rules, as in the
/// original test's validation cases.
pub const SCHEMA_FIELD: &str = "schema";

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    /// The text is not JSON, or not JSON of the record's shape (a missing
    /// field, a wrong type).
    #[error("malformed record JSON at line {line}, column {column}: {message}")]
    Malformed {
        /// 1-based line of the error in the input.
        line: usize,
        /// 1-based column of the error in the input.
        column: usize,
        /// What serde_json found wrong, naming the field where it can.
        message: String,
    },
    /// The record is well-formed but breaks one or more validation rules.
    #[error("invalid record: {}", Violations(.violations))]
    Invalid {
        /// Every rule the record breaks, ordered by field name.
        violations: Vec<Violation>,
    },
}

impl ModelError {
    /// The names of the offending fields (`"schema"` for a cross-field
    /// rule), sorted, without repeats. Empty for [`ModelError::Malformed`].
    pub fn fields(&self) -> Vec<&str> {
        match self {
            ModelError::Malformed { .. } => Vec::new(),
            ModelError::Invalid { violations } => {
                let mut fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
                fields.dedup();
                fields
            }
        }
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The field, or `"schema"` for a rule that spans fields.
    pub field: String,
    /// The rule's code, e.g. `range` or `processed_before_timestamp`.
    pub rule: String,
    /// A sentence saying what is wrong, with the offending value.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.message, self.rule)
    }
}

struct Violations<'a>(&'a [Violation]);

impl fmt::Display for Violations<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, violation) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{violation}")?;
        }
        Ok(())
    }
}

impl From<serde_json::Error> for ModelError {
    fn from(error: serde_json::Error) -> Self {
        // serde_json's Display appends " at line L column C"; keep the bare message.
        let full = error.to_string();
        let message = match full.rfind(" at line ") {
            Some(cut) => full[..cut].to_owned(),
            None => full,
        };
        ModelError::Malformed {
            line: error.line(),
            column: error.column(),
            message,
        }
    }
}

impl From<ValidationErrors> for ModelError {
    fn from(errors: ValidationErrors) -> Self {
        let mut violations = Vec::new();
        for (field, kind) in errors.errors() {
            let field = if field == STRUCT_LEVEL_KEY {
                SCHEMA_FIELD
            } else {
                field.as_ref()
            };
            // ProcessedRecord has no nested structs or lists, so only field
            // errors occur; the other kinds are reported by their field name.
            let ValidationErrorsKind::Field(errors) = kind else {
                violations.push(Violation {
                    field: field.to_owned(),
                    rule: "nested".to_owned(),
                    message: "nested value is invalid".to_owned(),
                });
                continue;
            };
            for error in errors {
                let mut message = error
                    .message
                    .as_deref()
                    .unwrap_or("breaks a validation rule")
                    .to_owned();
                if let Some(value) = error.params.get("value") {
                    message.push_str(&format!(", got {value}"));
                }
                violations.push(Violation {
                    field: field.to_owned(),
                    rule: error.code.to_string(),
                    message,
                });
            }
        }
        violations.sort_by(|a, b| (&a.field, &a.rule).cmp(&(&b.field, &b.rule)));
        ModelError::Invalid { violations }
    }
}
