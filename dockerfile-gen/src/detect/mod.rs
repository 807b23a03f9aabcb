//! Detection: every detector looks at the app; the matches are ranked by priority and one is
//! chosen, with the evidence for it and a note for each candidate that was passed over.

pub mod buildfile;
pub mod jar;
pub mod java;
pub mod native;
pub mod node;
pub mod project;
pub mod python;
pub mod release;
pub mod source;
pub mod static_site;
pub mod war;

use serde::{Deserialize, Serialize};

use crate::error::DetectError;
pub use source::Source;

/// The kinds of app dockerfile-gen knows. `Command` is not detected: it is what `--start`
/// gives when nothing else matched.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Release,
    War,
    Jar,
    Python,
    Node,
    Native,
    Static,
    Command,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Release => "release",
            Kind::War => "war",
            Kind::Jar => "jar",
            Kind::Python => "python",
            Kind::Node => "node",
            Kind::Native => "native",
            Kind::Static => "static",
            Kind::Command => "command",
        }
    }

    /// Higher wins. A start script is the author's own word on how to start the app, so it
    /// beats everything; a war beats a jar (Spring Boot wars are also jars); a static site is
    /// whatever is left.
    pub fn priority(self) -> u8 {
        match self {
            Kind::Release => 90,
            Kind::War => 80,
            Kind::Jar => 70,
            Kind::Python => 60,
            Kind::Node => 50,
            Kind::Native => 40,
            Kind::Static => 10,
            Kind::Command => 0,
        }
    }

    /// Why this kind cannot be containerised on the rich images, if it cannot.
    pub fn unsupported(self) -> Option<&'static str> {
        match self {
            Kind::Node => Some(
                "no rich base image has a Node.js runtime (caas/sofa-* ship Java 17 and the \
                 python3 that supervisord uses, nothing else) and builds cannot download one; \
                 add a Node image to supervisor-images, or ship the app as a static native \
                 binary (--kind native) or with its own runtime in a release directory \
                 (bin/start.sh)",
            ),
            _ => None,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One fact a detector relied on: the file and what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub file: String,
    pub fact: String,
}

impl Evidence {
    pub fn new(file: impl Into<String>, fact: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            fact: fact.into(),
        }
    }
}

/// A port the app listens on and where that came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortHint {
    pub port: u16,
    pub from: String,
}

/// What a detector learned about the app, for the planner.
#[derive(Debug, Clone)]
pub enum AppModel {
    Jar(jar::JarApp),
    War(war::WarApp),
    Release(release::ReleaseApp),
    Python(python::PythonApp),
    Node(node::NodeApp),
    Native(native::NativeApp),
    Static(static_site::StaticApp),
}

/// A detector's match.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub kind: Kind,
    pub evidence: Vec<Evidence>,
    pub app: AppModel,
}

/// What a detector says about an app.
#[derive(Debug)]
pub enum Outcome {
    /// It is this kind of app.
    Match(Candidate),
    /// It is not; the note (if any) says what was close ("requirements.txt but no main.py").
    Miss(Option<String>),
    /// It is this kind, but broken: a corrupt jar, a script that is not executable.
    Refused(DetectError),
}

/// A candidate that was not chosen, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alternative {
    pub kind: Kind,
    pub note: String,
}

/// The result of detection: the chosen candidate and the others.
#[derive(Debug, Clone)]
pub struct Detection {
    pub chosen: Candidate,
    pub alternatives: Vec<Alternative>,
}

type DetectFn = fn(&Source) -> Outcome;

fn detector(kind: Kind) -> Option<DetectFn> {
    Some(match kind {
        Kind::Release => release::detect,
        Kind::War => war::detect,
        Kind::Jar => jar::detect,
        Kind::Python => python::detect,
        Kind::Node => node::detect,
        Kind::Native => native::detect,
        Kind::Static => static_site::detect,
        Kind::Command => return None,
    })
}

const ALL: &[Kind] = &[
    Kind::Release,
    Kind::War,
    Kind::Jar,
    Kind::Python,
    Kind::Node,
    Kind::Native,
    Kind::Static,
];

/// Runs the detectors (only `forced` when given) and chooses one candidate.
pub fn detect(src: &Source, forced: Option<Kind>) -> Result<Detection, DetectError> {
    if let Some(kind) = forced {
        let Some(f) = detector(kind) else {
            return Err(DetectError::KindMismatch {
                kind: kind.as_str(),
                path: src.path.clone(),
                why: "`command` is not detected; give the command with --start instead".into(),
            });
        };
        return match f(src) {
            Outcome::Match(c) => choose(vec![c], Vec::new()),
            Outcome::Refused(e) => Err(e),
            Outcome::Miss(note) => Err(DetectError::KindMismatch {
                kind: kind.as_str(),
                path: src.path.clone(),
                why: note.unwrap_or_else(|| format!("nothing that looks like a {kind} app")),
            }),
        };
    }
    let mut matches = Vec::new();
    let mut refusals = Vec::new();
    let mut notes = Vec::new();
    for kind in ALL {
        let Some(f) = detector(*kind) else { continue };
        match f(src) {
            Outcome::Match(c) => matches.push(c),
            Outcome::Refused(e) => refusals.push((*kind, e)),
            Outcome::Miss(Some(note)) => notes.push(note),
            Outcome::Miss(None) => {}
        }
    }
    if matches.is_empty() {
        // Something recognisable but broken is the most useful thing to report.
        if let Some((_, e)) = refusals.into_iter().next() {
            return Err(e);
        }
        return Err(DetectError::NothingFound {
            path: src.path.clone(),
            notes,
        });
    }
    choose(matches, refusals)
}

fn choose(
    mut matches: Vec<Candidate>,
    refusals: Vec<(Kind, DetectError)>,
) -> Result<Detection, DetectError> {
    matches.sort_by_key(|c| std::cmp::Reverse(c.kind.priority()));
    let pos = matches.iter().position(|c| c.kind.unsupported().is_none());
    let Some(pos) = pos else {
        // Only unsupported kinds matched: explain the best one.
        let c = &matches[0];
        return Err(DetectError::Unsupported {
            kind: c.kind.as_str(),
            evidence: c
                .evidence
                .iter()
                .map(|e| format!("{}: {}", e.file, e.fact))
                .collect::<Vec<_>>()
                .join("; "),
            why: c.kind.unsupported().unwrap_or_default().to_string(),
        });
    };
    let chosen = matches.remove(pos);
    let mut alternatives: Vec<Alternative> = matches
        .iter()
        .map(|c| Alternative {
            kind: c.kind,
            note: match c.kind.unsupported() {
                Some(why) => format!("also matched, but {why}"),
                None => format!(
                    "also matched ({}), lower priority than {}; choose it with --kind {}",
                    c.evidence
                        .first()
                        .map(|e| format!("{}: {}", e.file, e.fact))
                        .unwrap_or_default(),
                    chosen.kind,
                    c.kind
                ),
            },
        })
        .collect();
    alternatives.extend(refusals.into_iter().map(|(kind, e)| Alternative {
        kind,
        note: format!("looked like one but was refused: {e}"),
    }));
    Ok(Detection {
        chosen,
        alternatives,
    })
}

/// Finds `KEY=NNNN`-style port settings in a properties/env/config text.
pub fn port_in_properties(text: &str, keys: &[&str]) -> Option<u16> {
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((k, v)) = line.split_once(['=', ':']) else {
            continue;
        };
        if keys.iter().any(|key| k.trim() == *key) {
            if let Some(p) = port_value(v.trim()) {
                return Some(p);
            }
        }
    }
    None
}

/// A port from a value: `8080`, `"8080"`, `${PORT:8080}` (Spring), `${PORT:-8080}` (shell).
pub fn port_value(v: &str) -> Option<u16> {
    let v = v.trim().trim_matches(['"', '\'']);
    if let Ok(p) = v.parse::<u16>() {
        return (p > 0).then_some(p);
    }
    let inner = v.strip_prefix("${")?.strip_suffix('}')?;
    let (_, default) = inner.split_once(':')?;
    let default = default.strip_prefix('-').unwrap_or(default);
    default.trim().parse::<u16>().ok().filter(|p| *p > 0)
}

/// `${PORT:-8080}` (or `${PORT:=8080}`) in a shell script: the script's own default port.
pub fn port_in_shell(text: &str) -> Option<u16> {
    for pat in ["${PORT:-", "${PORT:=", "${SERVER_PORT:-", "${HTTP_PORT:-"] {
        if let Some(i) = text.find(pat) {
            let rest = &text[i + pat.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(p) = digits.parse::<u16>() {
                return Some(p);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn ports_from_config_values() {
        assert_eq!(port_value("8081"), Some(8081));
        assert_eq!(port_value("${PORT:9090}"), Some(9090));
        assert_eq!(port_value("${PORT:-7070}"), Some(7070));
        assert_eq!(port_value("abc"), None);
        assert_eq!(
            port_in_properties("# c\nserver.port = 8181\n", &["server.port"]),
            Some(8181)
        );
        assert_eq!(port_in_shell("exec app --port ${PORT:-5000}"), Some(5000));
    }

    #[test]
    fn release_beats_jar_and_node_is_never_chosen() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("index.html"), "<p>hi</p>").unwrap();
        std::fs::write(
            dir.path().join("package.json"),
            r#"{"name":"x","scripts":{"start":"node server.js"}}"#,
        )
        .unwrap();
        let src = Source::open(dir.path()).unwrap();
        let d = detect(&src, None).unwrap();
        assert_eq!(d.chosen.kind, Kind::Static);
        assert!(d.alternatives[0]
            .note
            .contains("no rich base image has a Node.js runtime"));
    }

    #[test]
    fn only_node_is_an_explained_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("package.json"),
            r#"{"name":"x","scripts":{"start":"node server.js"}}"#,
        )
        .unwrap();
        let src = Source::open(dir.path()).unwrap();
        let e = detect(&src, None).unwrap_err().to_string();
        assert!(e.contains("node app detected"), "{e}");
        assert!(e.contains("Node.js runtime"), "{e}");
    }

    #[test]
    fn nothing_found_lists_what_was_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("README.txt"), "hello").unwrap();
        let src = Source::open(dir.path()).unwrap();
        let e = detect(&src, None).unwrap_err().to_string();
        assert!(e.contains("Looked for"), "{e}");
        assert!(e.contains("--kind"), "{e}");
        assert!(e.contains("--start"), "{e}");
    }
}
