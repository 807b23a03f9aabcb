//! Releases: a gzip tarball or a directory with a start script (`bin/start.sh`,
//! `bin/startup.sh`, `start.sh`, `run.sh`, the order `sofa-app` uses) or a `Procfile`, and the
//! config directories that come with it.

use std::io::Read;

use flate2::read::GzDecoder;

use super::source::{describe_head, read_limited, FileFormat, Shape, Source};
use super::{
    port_in_properties, port_in_shell, AppModel, Candidate, Evidence, Kind, Outcome, PortHint,
};
use crate::error::DetectError;

/// Start scripts in the order the rich images' `sofa-app` looks for them.
pub const START_SCRIPTS: &[&str] = &["bin/start.sh", "bin/startup.sh", "start.sh", "run.sh"];
/// Directories that hold a release's configuration.
pub const CONFIG_DIRS: &[&str] = &["conf", "config", "etc", "cfg"];

/// How the release is packaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packaging {
    /// A `.tgz` file (relative to the build context); `top` is its single top-level directory.
    Tarball { file: String, top: Option<String> },
    /// The build context is the release directory.
    Directory,
}

/// How the release starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// A start script, relative to the release root.
    Script(String),
    /// The `web` process of a Procfile.
    Procfile(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseApp {
    pub name: String,
    pub packaging: Packaging,
    pub start: Start,
    pub config_dirs: Vec<String>,
    /// Why the release needs Java (a jar inside, `java` in the start script), if it does.
    pub java: Option<String>,
    pub port: Option<PortHint>,
}

/// A file inside the release as the detector sees it.
struct Item {
    rel: String,
    is_dir: bool,
    mode: u32,
    /// Text of small files the detector reads (start scripts, Procfile, config).
    text: Option<String>,
}

fn wanted_text(rel: &str) -> bool {
    START_SCRIPTS.contains(&rel)
        || rel == "Procfile"
        || CONFIG_DIRS.iter().any(|d| {
            rel.strip_prefix(d)
                .and_then(|r| r.strip_prefix('/'))
                .is_some_and(|f| {
                    !f.contains('/')
                        && [
                            ".properties",
                            ".conf",
                            ".env",
                            ".cfg",
                            ".ini",
                            ".yml",
                            ".yaml",
                        ]
                        .iter()
                        .any(|s| f.ends_with(s))
                })
        })
}

pub fn detect(src: &Source) -> Outcome {
    match &src.shape {
        Shape::File { name, format } => {
            let looks_like_tarball =
                name.ends_with(".tgz") || name.ends_with(".tar.gz") || name.ends_with(".tar");
            if *format != FileFormat::Gzip {
                if looks_like_tarball {
                    let head = read_limited(&src.path, 512).unwrap_or_default();
                    return Outcome::Refused(DetectError::NotGzip {
                        file: name.clone(),
                        found: describe_head(&head),
                    });
                }
                return Outcome::Miss(None);
            }
            match tarball_items(src, name) {
                Ok(items) => {
                    let (top, items) = strip_single_top(items);
                    let packaging = Packaging::Tarball {
                        file: name.clone(),
                        top,
                    };
                    let base = name
                        .trim_end_matches(".tgz")
                        .trim_end_matches(".tar.gz")
                        .to_string();
                    analyze(base, packaging, &items, &format!("{name}!"))
                }
                Err(e) => Outcome::Refused(e),
            }
        }
        Shape::Dir { entries } => {
            // Directories carry only the files we need to read as text.
            let mut items = Vec::with_capacity(entries.len());
            for e in entries {
                let text = if !e.is_dir && wanted_text(&e.rel) && e.size < (1 << 20) {
                    match src.read_text(&e.rel) {
                        Ok(t) => Some(t),
                        Err(err) => return Outcome::Refused(err),
                    }
                } else {
                    None
                };
                items.push(Item {
                    rel: e.rel.clone(),
                    is_dir: e.is_dir,
                    mode: e.mode,
                    text,
                });
            }
            analyze(src.display_name(), Packaging::Directory, &items, "")
        }
    }
}

fn tarball_items(src: &Source, name: &str) -> Result<Vec<Item>, DetectError> {
    let corrupt = |detail: String| DetectError::CorruptTarball {
        file: name.to_string(),
        detail,
    };
    let file = std::fs::File::open(&src.path).map_err(|e| DetectError::Io {
        path: src.path.clone(),
        source: e,
    })?;
    let mut archive = tar::Archive::new(GzDecoder::new(std::io::BufReader::new(file)));
    let mut items = Vec::new();
    for entry in archive.entries().map_err(|e| corrupt(e.to_string()))? {
        let mut entry = entry.map_err(|e| corrupt(e.to_string()))?;
        let path = entry.path().map_err(|e| corrupt(e.to_string()))?;
        let rel = path
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if rel.is_empty() || rel == "." {
            continue;
        }
        let header = entry.header();
        let is_dir = header.entry_type().is_dir();
        let mode = header.mode().map_err(|e| corrupt(e.to_string()))?;
        let size = header.size().map_err(|e| corrupt(e.to_string()))?;
        items.push(Item {
            rel,
            is_dir,
            mode,
            text: None,
        });
        let last = items.len() - 1;
        // Decide on reading after the top directory is known: read candidates at any depth.
        let tail = items[last].rel.split_once('/').map(|(_, t)| t.to_string());
        let wanted = wanted_text(&items[last].rel) || tail.as_deref().is_some_and(wanted_text);
        if !is_dir && wanted && size < (1 << 20) {
            let mut text = String::new();
            entry
                .read_to_string(&mut text)
                .map_err(|e| corrupt(e.to_string()))?;
            items[last].text = Some(text);
        }
    }
    if items.is_empty() {
        return Err(corrupt("the archive has no files".into()));
    }
    Ok(items)
}

/// `app-1.0/bin/start.sh` -> (`app-1.0`, `bin/start.sh`) when everything is under one directory.
fn strip_single_top(items: Vec<Item>) -> (Option<String>, Vec<Item>) {
    let first = |rel: &str| rel.split('/').next().unwrap_or("").to_string();
    let Some(top) = items.first().map(|i| first(&i.rel)) else {
        return (None, items);
    };
    let single = items.iter().all(|i| first(&i.rel) == top)
        && items.iter().any(|i| i.rel.starts_with(&format!("{top}/")));
    if !single {
        return (None, items);
    }
    let prefix = format!("{top}/");
    let items = items
        .into_iter()
        .filter_map(|mut i| {
            let rest = i.rel.strip_prefix(&prefix)?.to_string();
            i.rel = rest;
            Some(i)
        })
        .collect();
    (Some(top), items)
}

fn analyze(name: String, packaging: Packaging, items: &[Item], at: &str) -> Outcome {
    let find = |rel: &str| items.iter().find(|i| i.rel == rel && !i.is_dir);
    let tarball = matches!(packaging, Packaging::Tarball { .. });
    let top = match &packaging {
        Packaging::Tarball { top: Some(t), .. } => format!("{t}/"),
        _ => String::new(),
    };
    let shown = |rel: &str| format!("{at}{top}{rel}");
    let mut evidence = Vec::new();
    let start = if let Some(script) = START_SCRIPTS.iter().find_map(|s| find(s)) {
        if script.mode & 0o111 == 0 {
            return Outcome::Refused(DetectError::NotExecutable {
                script: shown(&script.rel),
                mode: script.mode,
                repack: if tarball {
                    " in the release and pack it again"
                } else {
                    ""
                },
            });
        }
        evidence.push(Evidence::new(
            shown(&script.rel),
            format!("start script (mode {:o})", script.mode),
        ));
        Start::Script(script.rel.clone())
    } else if let Some(procfile) = find("Procfile") {
        let text = procfile.text.as_deref().unwrap_or_default();
        let Some(web) = procfile_web(text) else {
            return Outcome::Miss(Some(format!("{} has no `web:` process", shown("Procfile"))));
        };
        evidence.push(Evidence::new(shown("Procfile"), format!("web: {web}")));
        Start::Procfile(web)
    } else if tarball {
        return Outcome::Miss(Some(format!(
            "{at} is a tarball without bin/start.sh, bin/startup.sh, start.sh, run.sh or Procfile \
             at its root (or in its single top-level directory)"
        )));
    } else {
        return Outcome::Miss(None);
    };
    let config_dirs: Vec<String> = CONFIG_DIRS
        .iter()
        .filter(|d| {
            items.iter().any(|i| i.rel == **d && i.is_dir)
                || items.iter().any(|i| i.rel.starts_with(&format!("{d}/")))
        })
        .map(|d| d.to_string())
        .collect();
    for d in &config_dirs {
        let n = items
            .iter()
            .filter(|i| !i.is_dir && i.rel.starts_with(&format!("{d}/")))
            .count();
        evidence.push(Evidence::new(
            shown(&format!("{d}/")),
            format!("config directory ({n} files)"),
        ));
    }
    let start_text = match &start {
        Start::Script(s) => find(s).and_then(|i| i.text.clone()).unwrap_or_default(),
        Start::Procfile(cmd) => cmd.clone(),
    };
    let jars: Vec<&Item> = items
        .iter()
        .filter(|i| !i.is_dir && i.rel.ends_with(".jar"))
        .collect();
    let java = if let Some(j) = jars.first() {
        Some(format!("{} jar(s), e.g. {}", jars.len(), shown(&j.rel)))
    } else if mentions_java(&start_text) {
        Some("the start command runs java".to_string())
    } else {
        None
    };
    if let Some(j) = &java {
        evidence.push(Evidence::new(
            match &start {
                Start::Script(s) if jars.is_empty() => shown(s),
                Start::Procfile(_) if jars.is_empty() => shown("Procfile"),
                _ => shown(""),
            },
            format!("needs Java: {j}"),
        ));
    }
    let mut port = port_in_shell(&start_text).map(|p| PortHint {
        port: p,
        from: match &start {
            Start::Script(s) => shown(s),
            Start::Procfile(_) => shown("Procfile"),
        },
    });
    if port.is_none() {
        for i in items
            .iter()
            .filter(|i| i.text.is_some() && !START_SCRIPTS.contains(&i.rel.as_str()))
        {
            let text = i.text.as_deref().unwrap_or_default();
            if let Some(p) = port_in_properties(
                text,
                &["server.port", "http.port", "port", "PORT", "listen.port"],
            ) {
                port = Some(PortHint {
                    port: p,
                    from: shown(&i.rel),
                });
                break;
            }
        }
    }
    if let Some(p) = &port {
        evidence.push(Evidence::new(p.from.clone(), format!("port {}", p.port)));
    }
    Outcome::Match(Candidate {
        kind: Kind::Release,
        evidence,
        app: AppModel::Release(ReleaseApp {
            name,
            packaging,
            start,
            config_dirs,
            java,
            port,
        }),
    })
}

fn mentions_java(text: &str) -> bool {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .any(|l| {
            l.split(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '/')
                .any(|w| w == "java" || w.starts_with("$JAVA_HOME") || w.starts_with("${JAVA_HOME"))
        })
}

/// The `web:` process of a Procfile (`name: command` lines).
pub fn procfile_web(text: &str) -> Option<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "web")
        .map(|(_, v)| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::fixtures;

    #[test]
    fn tarball_with_start_script_config_and_jar() {
        let dir = tempfile::tempdir().unwrap();
        let tgz = dir.path().join("shop-1.0.tgz");
        fixtures::write_tgz(
            &tgz,
            &[
                (
                    "shop-1.0/bin/start.sh",
                    0o755,
                    b"#!/bin/sh\nexec java -jar lib/shop.jar --port ${PORT:-8181}\n",
                ),
                ("shop-1.0/conf/app.properties", 0o644, b"greeting=hi\n"),
                ("shop-1.0/lib/shop.jar", 0o644, b"PK"),
            ],
        )
        .unwrap();
        let Outcome::Match(c) = detect(&Source::open(&tgz).unwrap()) else {
            panic!()
        };
        let AppModel::Release(app) = c.app else {
            panic!()
        };
        assert_eq!(
            app.packaging,
            Packaging::Tarball {
                file: "shop-1.0.tgz".into(),
                top: Some("shop-1.0".into())
            }
        );
        assert_eq!(app.start, Start::Script("bin/start.sh".into()));
        assert_eq!(app.config_dirs, ["conf"]);
        assert!(app.java.is_some());
        assert_eq!(app.port.unwrap().port, 8181);
    }

    #[test]
    fn tarball_that_is_not_gzip_and_script_not_executable() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("app.tgz");
        std::fs::write(&bad, b"PK\x03\x04zip").unwrap();
        let Outcome::Refused(e) = detect(&Source::open(&bad).unwrap()) else {
            panic!()
        };
        assert!(
            e.to_string().contains("not a gzip-compressed tarball"),
            "{e}"
        );

        let tgz = dir.path().join("x.tgz");
        fixtures::write_tgz(&tgz, &[("bin/start.sh", 0o644, b"#!/bin/sh\n")]).unwrap();
        let Outcome::Refused(e) = detect(&Source::open(&tgz).unwrap()) else {
            panic!()
        };
        assert!(e.to_string().contains("not executable"), "{e}");
    }

    #[test]
    fn directory_with_procfile_and_without_java() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Procfile"), "web: ./server --port $PORT\n").unwrap();
        std::fs::write(dir.path().join("server"), "x").unwrap();
        let Outcome::Match(c) = detect(&Source::open(dir.path()).unwrap()) else {
            panic!()
        };
        let AppModel::Release(app) = c.app else {
            panic!()
        };
        assert_eq!(app.start, Start::Procfile("./server --port $PORT".into()));
        assert_eq!(app.java, None);
    }

    #[test]
    fn directory_script_must_be_executable() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("run.sh"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let Outcome::Refused(e) = detect(&Source::open(dir.path()).unwrap()) else {
            panic!()
        };
        assert!(e.to_string().contains("chmod +x run.sh"), "{e}");
    }

    #[test]
    fn java_in_scripts() {
        assert!(mentions_java("exec java -cp x Main"));
        assert!(mentions_java("exec \"$JAVA_HOME/bin/java\" -jar a.jar"));
        assert!(!mentions_java("# java\nexec python3 x.py"));
    }
}
