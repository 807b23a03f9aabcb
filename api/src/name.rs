//! Names of pools, workloads and nodes: DNS-1123 labels, so they are valid hostnames, DNS names
//! and safe inside Docker container names and ZooKeeper paths.

use crate::ValidationError;

/// Longest DNS-1123 label.
pub const MAX_NAME_LEN: usize = 63;

/// Checks that `value` is a DNS-1123 label: 1-63 chars of `a-z`, `0-9` and `-`, starting and
/// ending with a letter or digit.
pub fn validate_dns_label(field: &str, value: &str) -> Result<(), ValidationError> {
    let fail = |why: &str| {
        Err(ValidationError::new(
            field,
            format!(
                "{value:?} is not a valid name: {why}; use 1-{MAX_NAME_LEN} lowercase letters, \
                 digits or '-', starting and ending with a letter or digit (e.g. \"web-1\")"
            ),
        ))
    };
    if value.is_empty() {
        return fail("it is empty");
    }
    if value.len() > MAX_NAME_LEN {
        return fail("it is too long");
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return fail(&format!("it contains {bad:?}"));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return fail("it starts or ends with '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_labels() {
        for ok in ["a", "web-1", "0abc", &"x".repeat(63)] {
            assert!(validate_dns_label("name", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_non_labels_naming_the_field() {
        for bad in ["", "Web", "-a", "a-", "a.b", "a_b", &"x".repeat(64), "ä"] {
            let err = validate_dns_label("spec.name", bad).unwrap_err();
            assert_eq!(err.field, "spec.name");
            assert!(err.message.contains("not a valid name"), "{err}");
        }
    }
}
