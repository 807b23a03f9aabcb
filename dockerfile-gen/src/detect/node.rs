//! Node.js apps: `package.json` with a start script (what `npm start` would run). Detected so
//! the user hears why it cannot be containerised here: no rich image has a Node runtime.

use super::source::Source;
use super::{AppModel, Candidate, Evidence, Kind, Outcome};
use crate::error::DetectError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeApp {
    pub name: Option<String>,
    /// What `npm start` runs.
    pub start: String,
}

pub fn detect(src: &Source) -> Outcome {
    if src.file("package.json").is_none() {
        return Outcome::Miss(None);
    }
    let text = match src.read_text("package.json") {
        Ok(t) => t,
        Err(e) => return Outcome::Refused(e),
    };
    let json: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return Outcome::Refused(DetectError::BadManifest {
                file: "package.json".into(),
                problem: format!("is not valid JSON ({e}); fix it the way `npm` would report"),
            })
        }
    };
    let name = json
        .get("name")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    let script = json
        .pointer("/scripts/start")
        .and_then(|v| v.as_str())
        .map(str::to_string);
    // npm's default start script when none is given.
    let start = match script {
        Some(s) => s,
        None if src.file("server.js").is_some() => "node server.js".to_string(),
        None => {
            return Outcome::Miss(Some(
                "package.json has no scripts.start and there is no server.js".into(),
            ))
        }
    };
    Outcome::Match(Candidate {
        kind: Kind::Node,
        evidence: vec![Evidence::new(
            "package.json",
            format!("npm start runs `{start}`"),
        )],
        app: AppModel::Node(NodeApp { name, start }),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn start_script_and_npm_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("package.json"), r#"{"name":"a"}"#).unwrap();
        assert!(matches!(
            detect(&Source::open(dir.path()).unwrap()),
            Outcome::Miss(Some(_))
        ));
        std::fs::write(dir.path().join("server.js"), "x").unwrap();
        let Outcome::Match(c) = detect(&Source::open(dir.path()).unwrap()) else {
            panic!()
        };
        assert!(c.evidence[0].fact.contains("node server.js"));
        std::fs::write(dir.path().join("package.json"), "{not json").unwrap();
        assert!(matches!(
            detect(&Source::open(dir.path()).unwrap()),
            Outcome::Refused(_)
        ));
    }
}
