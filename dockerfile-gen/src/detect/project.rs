//! Project roots: where a developer stands. Reads the build files (`pom.xml`, `build.gradle`,
//! `build.gradle.kts`, `build.xml`, `Makefile`, `package.json`, `pyproject.toml`), looks for
//! build outputs in their conventional places (`target/`, `build/libs/`, `dist/`, `release/`,
//! `out/`), prefers the artifact a build file names, looks into a folder that holds exactly one
//! directory, and decides between an artifact, the directory itself, or compiling first.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::buildfile::{self, MavenProject, Tool};
use super::release::START_SCRIPTS;
use super::source::{ignored, Source};
use super::{Evidence, Kind};
use crate::error::DetectError;

/// Build files, in the order the plan lists them.
pub const BUILD_FILES: &[&str] = &[
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "build.xml",
    "Makefile",
    "package.json",
    "pyproject.toml",
];

/// Where builds leave their outputs.
pub const OUTPUT_DIRS: &[&str] = &["target", "build/libs", "dist", "release", "out"];

/// Build outputs that are never the app: sources, docs, tests, the pre-repackage jar.
const NOT_APPS: &[&str] = &["-sources.jar", "-javadoc.jar", "-tests.jar", "-plain.jar"];

/// One build output considered, and its claim to be the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactCandidate {
    /// Relative to the project directory.
    pub path: String,
    /// What it was detected as (`None`: not an app).
    pub kind: Option<Kind>,
    pub claim: String,
}

/// What the project search found, for the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectInfo {
    /// The project directory relative to the path given (`.`, or the one directory looked into).
    pub dir: String,
    pub build_files: Vec<Evidence>,
    pub candidates: Vec<ArtifactCandidate>,
    /// The artifact used (relative to `dir`), `.` for the directory itself, or `compile`.
    pub chosen: String,
    pub why: String,
}

/// The user's choices.
#[derive(Debug, Clone, Default)]
pub struct LocateOptions {
    /// `--artifact PATH`.
    pub artifact: Option<PathBuf>,
    /// `--compile`.
    pub compile: bool,
}

/// Compile the project with its build tool in a builder stage.
#[derive(Debug, Clone)]
pub struct Compile {
    pub tool: Tool,
    pub maven: MavenProject,
    pub why: String,
}

/// Where the app is.
#[derive(Debug, Clone)]
pub struct Located {
    /// What to detect: an artifact file or directory, or the project directory.
    pub path: PathBuf,
    /// `None` when the path given is used as before (a file, or a plain app directory).
    pub info: Option<ProjectInfo>,
    /// Set when the project is compiled first (then `path` is the project directory).
    pub compile: Option<Compile>,
}

struct BuildFiles {
    evidence: Vec<Evidence>,
    maven: Option<MavenProject>,
    /// Gradle or Ant build file present (tool, file).
    other_java: Option<(Tool, String)>,
    /// Artifacts the build files name, relative to the project directory.
    named: Vec<(String, String)>,
}

fn read(dir: &Path, name: &str) -> Result<String, DetectError> {
    let path = dir.join(name);
    let bytes = super::source::read_limited(&path, 4 << 20)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn build_files(dir: &Path) -> Result<BuildFiles, DetectError> {
    let mut bf = BuildFiles {
        evidence: Vec::new(),
        maven: None,
        other_java: None,
        named: Vec::new(),
    };
    for name in BUILD_FILES {
        if !dir.join(name).is_file() {
            continue;
        }
        let text = read(dir, name)?;
        let fact = match *name {
            "pom.xml" => {
                let p = buildfile::maven(name, &text)?;
                let fact = format!(
                    "Maven project {} ({} packaging): `mvn package` makes {}",
                    p.artifact_id,
                    p.packaging,
                    p.artifact()
                );
                bf.named.push((p.artifact(), "named by pom.xml".into()));
                bf.maven = Some(p);
                fact
            }
            "build.gradle" | "build.gradle.kts" => {
                let settings = ["settings.gradle", "settings.gradle.kts"]
                    .iter()
                    .find(|s| dir.join(s).is_file())
                    .map(|s| read(dir, s))
                    .transpose()?;
                bf.other_java
                    .get_or_insert((Tool::Gradle, name.to_string()));
                match buildfile::gradle(&text, settings.as_deref()) {
                    Some(a) => {
                        bf.named.push((a.clone(), format!("named by {name}")));
                        format!("Gradle build: makes {a}")
                    }
                    None => {
                        "Gradle build (its archive name is not static: build/libs/ is searched)"
                            .into()
                    }
                }
            }
            "build.xml" => {
                let names = buildfile::ant(name, &text)?;
                bf.other_java.get_or_insert((Tool::Ant, name.to_string()));
                for n in &names {
                    bf.named.push((n.clone(), "named by build.xml".into()));
                }
                if names.is_empty() {
                    "Ant build (no static <jar destfile>)".into()
                } else {
                    format!("Ant build: makes {}", names.join(", "))
                }
            }
            "package.json" => {
                buildfile::package_json(name, &text)?;
                "npm project".into()
            }
            "pyproject.toml" => {
                buildfile::pyproject(name, &text)?;
                "Python project".into()
            }
            _ => "Makefile (what it makes is not read; its outputs are searched)".into(),
        };
        bf.evidence.push(Evidence::new(*name, fact));
    }
    Ok(bf)
}

fn is_archive(name: &str) -> bool {
    (name.ends_with(".jar") && !NOT_APPS.iter().any(|s| name.ends_with(s)))
        || name.ends_with(".war")
        || name.ends_with(".tgz")
        || name.ends_with(".tar.gz")
}

/// Build outputs in the conventional places: archives directly in them, and directories in
/// them that hold a start script (an unpacked release).
fn outputs(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for o in OUTPUT_DIRS {
        let Ok(items) = std::fs::read_dir(dir.join(o)) else {
            continue;
        };
        let mut found: Vec<String> = Vec::new();
        for item in items.flatten() {
            let name = item.file_name().to_string_lossy().into_owned();
            let path = item.path();
            let archive = path.is_file() && is_archive(&name);
            let release_dir = path.is_dir()
                && !ignored(&name, true)
                && START_SCRIPTS.iter().any(|s| path.join(s).is_file());
            if archive || release_dir {
                found.push(format!("{o}/{name}"));
            }
        }
        found.sort();
        out.extend(found);
    }
    out
}

/// The only entry of a directory, when it is a directory (ignored names do not count).
fn single_subdir(dir: &Path) -> Option<String> {
    let mut entries = std::fs::read_dir(dir).ok()?.flatten().filter(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let is_dir = e.path().is_dir();
        !ignored(&name, is_dir)
    });
    let first = entries.next()?;
    if entries.next().is_some() || !first.path().is_dir() {
        return None;
    }
    Some(first.file_name().to_string_lossy().into_owned())
}

/// Finds the app for `path`.
pub fn locate(path: &Path, opts: &LocateOptions) -> Result<Located, DetectError> {
    if !path.is_dir() {
        if let Some(a) = &opts.artifact {
            return Err(DetectError::BadArtifact {
                path: a.display().to_string(),
                why: format!(
                    "{} is a file, not a project directory; give the artifact itself as the path",
                    path.display()
                ),
            });
        }
        if opts.compile {
            return Err(DetectError::CannotCompile {
                file: path.display().to_string(),
                why: "--compile needs the project directory (the one with pom.xml)".into(),
            });
        }
        return Ok(Located {
            path: path.to_path_buf(),
            info: None,
            compile: None,
        });
    }
    let mut dir = path.to_path_buf();
    let mut rel_dir = ".".to_string();
    let mut descended = None;
    // Looked into only when the folder is nothing itself (a bin/ with a start script is a
    // release, a bin/ with a static binary a native app).
    let is_nothing = || {
        matches!(
            Source::open(&dir).and_then(|s| super::detect(&s, None)),
            Err(DetectError::NothingFound { .. })
        )
    };
    if build_files(&dir)?.evidence.is_empty() && outputs(&dir).is_empty() && is_nothing() {
        if let Some(sub) = single_subdir(&dir) {
            dir = dir.join(&sub);
            rel_dir = sub.clone();
            descended = Some(format!(
                "the folder given holds only the directory {sub}/, so it was looked into"
            ));
        }
    }
    let bf = build_files(&dir)?;
    let info = |candidates: Vec<ArtifactCandidate>, chosen: &str, why: String| ProjectInfo {
        dir: rel_dir.clone(),
        build_files: bf.evidence.clone(),
        candidates,
        chosen: chosen.to_string(),
        why: match &descended {
            Some(d) => format!("{d}; {why}"),
            None => why,
        },
    };

    if let Some(a) = &opts.artifact {
        let p = if a.is_absolute() || a.exists() && !dir.join(a).exists() {
            a.clone()
        } else {
            dir.join(a)
        };
        if !p.exists() {
            return Err(DetectError::BadArtifact {
                path: a.display().to_string(),
                why: format!("it does not exist (looked in {})", display(&dir)),
            });
        }
        if opts.compile {
            return Err(DetectError::BadArtifact {
                path: a.display().to_string(),
                why: "--artifact uses an existing build output; drop --compile or --artifact"
                    .into(),
            });
        }
        let rel = a.display().to_string();
        return Ok(Located {
            path: p,
            info: Some(info(Vec::new(), &rel, "chosen with --artifact".into())),
            compile: None,
        });
    }

    if opts.compile {
        return match (&bf.maven, &bf.other_java) {
            (Some(m), _) => Ok(Located {
                path: dir.clone(),
                info: Some(info(
                    Vec::new(),
                    "compile",
                    "asked with --compile: compiled with Maven in a builder stage".into(),
                )),
                compile: Some(Compile {
                    tool: Tool::Maven,
                    maven: m.clone(),
                    why: "asked with --compile".into(),
                }),
            }),
            (None, Some((tool, file))) => Err(DetectError::CannotCompile {
                file: file.clone(),
                why: cannot_compile(*tool),
            }),
            (None, None) => Err(DetectError::CannotCompile {
                file: display(&dir),
                why: "no pom.xml here: dockerfile-gen compiles Maven projects only".into(),
            }),
        };
    }

    // The outputs and their claims.
    let mut candidates = Vec::new();
    for rel in outputs(&dir) {
        let named = bf
            .named
            .iter()
            .find(|(n, _)| *n == rel)
            .map(|(_, why)| why.clone());
        let detected = Source::open(&dir.join(&rel)).and_then(|s| super::detect(&s, None));
        let (kind, claim) = match (&detected, named) {
            (Ok(d), Some(why)) => (Some(d.chosen.kind), why),
            (Ok(d), None) => (
                Some(d.chosen.kind),
                format!("a {} in {}/", d.chosen.kind, output_dir(&rel)),
            ),
            (Err(e), _) => (None, format!("not an app: {e}")),
        };
        candidates.push(ArtifactCandidate {
            path: rel,
            kind,
            claim,
        });
    }
    let named_ok: Vec<&ArtifactCandidate> = candidates
        .iter()
        .filter(|c| c.kind.is_some() && c.claim.starts_with("named by"))
        .collect();
    let top: Vec<&ArtifactCandidate> = if named_ok.is_empty() {
        candidates.iter().filter(|c| c.kind.is_some()).collect()
    } else {
        named_ok
    };
    match top.len() {
        1 => {
            let c = top[0].clone();
            let why = if c.claim.starts_with("named by") {
                format!("{} is {}", c.path, c.claim)
            } else {
                format!(
                    "{} is the only build output that is an app ({})",
                    c.path, c.claim
                )
            };
            return Ok(Located {
                path: dir.join(&c.path),
                info: Some(info(candidates.clone(), &c.path, why)),
                compile: None,
            });
        }
        0 => {}
        _ => {
            return Err(DetectError::AmbiguousArtifacts {
                root: display(path),
                candidates: top
                    .iter()
                    .map(|c| format!("{} ({})", c.path, c.claim))
                    .collect(),
            })
        }
    }
    // No output that is an app.
    if let Some(m) = &bf.maven {
        let named = m.artifact();
        if let Some(c) = candidates.iter().find(|c| c.path == named) {
            // Built, but not an app: compiling again would not help.
            return Err(DetectError::CannotCompile {
                file: c.path.clone(),
                why: c.claim.clone(),
            });
        }
        let why = format!(
            "no build output: {named} does not exist (`mvn package` has not run), so the project is \
             compiled with Maven in a builder stage"
        );
        return Ok(Located {
            path: dir.clone(),
            info: Some(info(candidates.clone(), "compile", why.clone())),
            compile: Some(Compile {
                tool: Tool::Maven,
                maven: m.clone(),
                why,
            }),
        });
    }
    if let Some((tool, file)) = &bf.other_java {
        // The directory itself may still be an app (a start script, a site).
        let own = Source::open(&dir).and_then(|s| super::detect(&s, None));
        if own.is_err() {
            return Err(DetectError::CannotCompile {
                file: file.clone(),
                why: format!(
                    "no build output in {} ({}). {}",
                    OUTPUT_DIRS.join("/, ") + "/",
                    if candidates.is_empty() {
                        "nothing there".to_string()
                    } else {
                        candidates
                            .iter()
                            .map(|c| format!("{}: {}", c.path, c.claim))
                            .collect::<Vec<_>>()
                            .join("; ")
                    },
                    cannot_compile(*tool)
                ),
            });
        }
    }
    let why = "no build output is an app, so the directory itself is the app".to_string();
    let info = (descended.is_some() || !bf.evidence.is_empty() || !candidates.is_empty())
        .then(|| info(candidates.clone(), ".", why));
    Ok(Located {
        path: dir,
        info,
        compile: None,
    })
}

fn output_dir(rel: &str) -> &str {
    OUTPUT_DIRS
        .iter()
        .find(|o| rel.starts_with(&format!("{o}/")))
        .copied()
        .unwrap_or(".")
}

fn cannot_compile(tool: Tool) -> String {
    match tool {
        Tool::Gradle => "dockerfile-gen compiles Maven projects only (Debian's Gradle is 4.4, too \
                         old for today's builds, and nothing can be downloaded); run `gradle build` \
                         and run dockerfile-gen again: build/libs/ is used"
            .into(),
        Tool::Ant | Tool::Maven => "dockerfile-gen compiles Maven projects only; run `ant` and \
                                    run dockerfile-gen again: the jar it makes is used"
            .into(),
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::fixtures;

    fn put(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    const POM: &str = "<project><artifactId>app</artifactId><version>1.0</version>\
        <build><finalName>app</finalName></build></project>";

    #[test]
    fn maven_output_named_by_the_pom_wins() {
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "pom.xml", POM);
        std::fs::create_dir_all(d.path().join("target")).unwrap();
        fixtures::executable_jar(&d.path().join("target/app.jar"), "a.Main", 61).unwrap();
        fixtures::executable_jar(&d.path().join("target/other.jar"), "a.Main", 61).unwrap();
        let l = locate(d.path(), &LocateOptions::default()).unwrap();
        assert!(l.path.ends_with("target/app.jar"));
        let info = l.info.unwrap();
        assert_eq!(info.chosen, "target/app.jar");
        assert_eq!(info.candidates.len(), 2);
        assert!(info.why.contains("named by pom.xml"), "{}", info.why);
    }

    #[test]
    fn two_equal_outputs_are_ambiguous_and_artifact_picks_one() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("dist")).unwrap();
        fixtures::executable_jar(&d.path().join("dist/a.jar"), "a.Main", 61).unwrap();
        fixtures::executable_jar(&d.path().join("dist/b.jar"), "a.Main", 61).unwrap();
        let e = locate(d.path(), &LocateOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dist/a.jar") && e.contains("dist/b.jar") && e.contains("--artifact"),
            "{e}"
        );
        let l = locate(
            d.path(),
            &LocateOptions {
                artifact: Some("dist/b.jar".into()),
                compile: false,
            },
        )
        .unwrap();
        assert!(l.path.ends_with("dist/b.jar"));
    }

    #[test]
    fn unbuilt_maven_project_is_compiled_and_gradle_is_explained() {
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "pom.xml", POM);
        put(d.path(), "src/main/java/a/Main.java", "class Main {}");
        let l = locate(d.path(), &LocateOptions::default()).unwrap();
        assert!(l.compile.is_some());
        assert!(l
            .info
            .unwrap()
            .why
            .contains("target/app.jar does not exist"));

        let g = tempfile::tempdir().unwrap();
        put(g.path(), "build.gradle", "plugins { id 'java' }\n");
        let e = locate(g.path(), &LocateOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("gradle build"), "{e}");
    }

    #[test]
    fn one_directory_is_looked_into() {
        let d = tempfile::tempdir().unwrap();
        put(d.path(), "opsware/bin/start.sh", "#!/bin/sh\n");
        let l = locate(d.path(), &LocateOptions::default()).unwrap();
        assert!(l.path.ends_with("opsware"));
        assert!(l
            .info
            .unwrap()
            .why
            .contains("holds only the directory opsware/"));
    }

    #[test]
    fn broken_build_file_is_named_with_its_line() {
        let d = tempfile::tempdir().unwrap();
        put(
            d.path(),
            "pom.xml",
            "<project>\n<artifactId>x</artifactId>\n<build>\n</project>",
        );
        let e = locate(d.path(), &LocateOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("pom.xml:4:"), "{e}");
    }
}
