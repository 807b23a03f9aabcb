//! Placement constraints on node labels (`key==value`, `key!=value`): parsing and matching.
//! Central's scheduler matches them; the CLI parses them to refuse a bad `-c` before sending.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Characters that can form an operator. Keys and values may not contain them, so that a typo
/// such as `rack=r1` or `rack~=r1` is reported instead of being read as a strange key or value.
const OPERATOR_CHARS: &[char] = &['=', '!', '<', '>', '~'];

/// The operators users can write; listed in error messages.
const SUPPORTED: &str = "`==` and `!=`";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConstraintOp {
    /// The node has the label with exactly this value.
    Eq,
    /// The node does not have the label with this value (a missing label passes).
    Ne,
}

impl ConstraintOp {
    fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "==",
            Self::Ne => "!=",
        }
    }
}

/// A constraint on one node label. Serialized as its text form, e.g. `"rack!=r1"`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Constraint {
    pub key: String,
    pub op: ConstraintOp,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConstraintError {
    #[error(
        "constraint {text:?} has no operator; supported operators are {SUPPORTED} (e.g. rack==r1)"
    )]
    MissingOperator { text: String },
    #[error(
        "constraint {text:?} uses unsupported operator {op:?}; supported operators are {SUPPORTED}"
    )]
    UnsupportedOperator { text: String, op: String },
    #[error("constraint {text:?} has an empty label key")]
    EmptyKey { text: String },
    #[error("constraint {text:?} has an empty value")]
    EmptyValue { text: String },
}

impl Constraint {
    pub fn parse(text: &str) -> Result<Self, ConstraintError> {
        let Some(start) = text.find(OPERATOR_CHARS) else {
            return Err(ConstraintError::MissingOperator {
                text: text.to_string(),
            });
        };
        // The whole run of operator characters is the operator, so `rack===r1` or `rack!==r1`
        // are rejected rather than parsed with a value starting with `=`.
        let rest = &text[start..];
        let op_len = rest
            .find(|c| !OPERATOR_CHARS.contains(&c))
            .unwrap_or(rest.len());
        let (op_text, value) = rest.split_at(op_len);
        let op = match op_text {
            "==" => ConstraintOp::Eq,
            "!=" => ConstraintOp::Ne,
            other => {
                return Err(ConstraintError::UnsupportedOperator {
                    text: text.to_string(),
                    op: other.to_string(),
                })
            }
        };
        let key = text[..start].trim();
        if key.is_empty() {
            return Err(ConstraintError::EmptyKey {
                text: text.to_string(),
            });
        }
        let value = value.trim();
        if value.is_empty() {
            return Err(ConstraintError::EmptyValue {
                text: text.to_string(),
            });
        }
        if let Some(pos) = value.find(OPERATOR_CHARS) {
            // A second operator, e.g. `a==b!=c`.
            let op_end = value[pos..]
                .find(|c| !OPERATOR_CHARS.contains(&c))
                .map_or(value.len(), |end| pos + end);
            return Err(ConstraintError::UnsupportedOperator {
                text: text.to_string(),
                op: value[pos..op_end].to_string(),
            });
        }
        Ok(Self {
            key: key.to_string(),
            op,
            value: value.to_string(),
        })
    }

    /// Whether a node with these labels satisfies the constraint.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let equal = labels.get(&self.key).is_some_and(|v| *v == self.value);
        match self.op {
            ConstraintOp::Eq => equal,
            ConstraintOp::Ne => !equal,
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.key, self.op.as_str(), self.value)
    }
}

impl FromStr for Constraint {
    type Err = ConstraintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Constraint {
    type Error = ConstraintError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Constraint> for String {
    fn from(c: Constraint) -> Self {
        c.to_string()
    }
}

#[cfg(test)]
#[path = "constraint_tests.rs"]
mod tests;
