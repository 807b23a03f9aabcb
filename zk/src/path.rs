//! ZooKeeper path syntax: validation, joining and parent lookup, so recipes reject bad paths
//! when they start instead of failing on every request in their background task.

/// A path a recipe cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("invalid ZooKeeper path {path:?}: {reason}")]
    Invalid { path: String, reason: &'static str },
}

/// Checks that `path` is absolute, has no empty segments and no trailing slash (except "/").
pub fn validate(path: &str) -> Result<(), PathError> {
    let invalid = |reason| {
        Err(PathError::Invalid {
            path: path.to_string(),
            reason,
        })
    };
    if !path.starts_with('/') {
        return invalid("must start with '/'");
    }
    if path == "/" {
        return Ok(());
    }
    if path.ends_with('/') {
        return invalid("must not end with '/'");
    }
    if path[1..].split('/').any(str::is_empty) {
        return invalid("must not contain empty segments");
    }
    if path.contains('\0') {
        return invalid("must not contain NUL");
    }
    Ok(())
}

/// Like [`validate`], and also rejects the root, which cannot be created, deleted or owned.
pub fn validate_node(path: &str) -> Result<(), PathError> {
    validate(path)?;
    if path == "/" {
        return Err(PathError::Invalid {
            path: path.to_string(),
            reason: "must not be the root",
        });
    }
    Ok(())
}

/// `parent/child`, without doubling the slash under the root.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// The parent of a validated non-root path.
pub fn parent(path: &str) -> Option<&str> {
    match path.rfind('/') {
        Some(0) if path.len() > 1 => Some("/"),
        Some(0) | None => None,
        Some(i) => Some(&path[..i]),
    }
}

/// The name of `path` when it is a direct child of `parent`.
pub fn child_name<'a>(parent: &str, path: &'a str) -> Option<&'a str> {
    let rest = if parent == "/" {
        path.strip_prefix('/')?
    } else {
        path.strip_prefix(parent)?.strip_prefix('/')?
    };
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(validate("/").is_ok());
        assert!(validate("/caas/nodes").is_ok());
        assert!(validate("caas").is_err());
        assert!(validate("/caas/").is_err());
        assert!(validate("/caas//nodes").is_err());
        assert!(validate_node("/").is_err());
        assert!(validate_node("/a").is_ok());
    }

    #[test]
    fn join_and_parent() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/a/b/c"), Some("/a/b"));
        assert_eq!(parent("/"), None);
    }

    #[test]
    fn direct_children_only() {
        assert_eq!(child_name("/a", "/a/b"), Some("b"));
        assert_eq!(child_name("/a", "/a/b/c"), None);
        assert_eq!(child_name("/a", "/a"), None);
        assert_eq!(child_name("/a", "/ab/c"), None);
        assert_eq!(child_name("/", "/x"), Some("x"));
        assert_eq!(child_name("/", "/x/y"), None);
    }
}
