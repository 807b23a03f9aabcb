//! What the caas binaries print for `--version`: the workspace version and the git revision
//! they were built from ("unknown" when built outside a git checkout).

/// The workspace version, e.g. "0.1.0".
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision (12 hex digits) the binaries were built from, or "unknown".
pub const GIT_REVISION: &str = env!("CAAS_GIT_REVISION");

/// `--version` text: "0.1.0 (git 0123456789ab)".
pub const VERSION_TEXT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("CAAS_GIT_REVISION"),
    ")"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_text_names_version_and_revision() {
        assert!(VERSION_TEXT.starts_with(VERSION));
        assert!(VERSION_TEXT.contains(GIT_REVISION));
        assert!(
            GIT_REVISION == "unknown"
                || (GIT_REVISION.len() >= 7 && GIT_REVISION.chars().all(|c| c.is_ascii_hexdigit())),
            "{GIT_REVISION}"
        );
    }
}
