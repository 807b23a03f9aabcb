//! Python apps, read the way pip and the interpreter would: `pyproject.toml` (PEP 621
//! `[project.scripts]`, or Poetry's `[tool.poetry.scripts]`) names the entry point
//! `module:function`; otherwise `requirements.txt` (or a pyproject without scripts) with a
//! `__main__.py`, `main.py` or `app.py` to run.

use super::source::Source;
use super::{AppModel, Candidate, Evidence, Kind, Outcome, PortHint};
use crate::error::DetectError;

/// Files that make a directory a Python app when there is no entry point in pyproject.
pub const MAIN_FILES: &[&str] = &["__main__.py", "main.py", "app.py", "server.py"];

/// How the app starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// `name = "module:function"` from pyproject.
    Script {
        name: String,
        module: String,
        function: String,
    },
    /// A file to run with `python3 <file>` (relative to the app root).
    File(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PythonApp {
    pub name: Option<String>,
    pub entry: Entry,
    /// `src` for the src layout (the package lives in `src/`).
    pub src_dir: Option<String>,
    pub requires_python: Option<String>,
    /// Third-party distributions the app declares (pyproject or requirements.txt).
    pub dependencies: Vec<String>,
    /// A `vendor/` directory holding installed dependencies.
    pub vendor: Option<String>,
    pub port: Option<PortHint>,
}

pub fn detect(src: &Source) -> Outcome {
    let pyproject = src.file("pyproject.toml").is_some();
    let requirements = src.file("requirements.txt").is_some();
    if !src.is_dir() || (!pyproject && !requirements) {
        return Outcome::Miss(None);
    }
    match analyze(src, pyproject, requirements) {
        Ok(Some(c)) => Outcome::Match(c),
        Ok(None) => Outcome::Miss(Some(format!(
            "{} found, but no entry point: add [project.scripts] to pyproject.toml or a \
             main.py/app.py/__main__.py",
            if pyproject {
                "pyproject.toml"
            } else {
                "requirements.txt"
            }
        ))),
        Err(e) => Outcome::Refused(e),
    }
}

fn analyze(
    src: &Source,
    pyproject: bool,
    requirements: bool,
) -> Result<Option<Candidate>, DetectError> {
    let mut evidence = Vec::new();
    let mut name = None;
    let mut requires_python = None;
    let mut dependencies = Vec::new();
    let mut scripts: Vec<(String, String)> = Vec::new();
    if pyproject {
        let text = src.read_text("pyproject.toml")?;
        let doc: toml::Table = toml::from_str(&text).map_err(|e| DetectError::BadManifest {
            file: "pyproject.toml".into(),
            problem: format!("is not valid TOML: {}", e.message()),
        })?;
        let project = doc.get("project").and_then(|v| v.as_table());
        let poetry = doc
            .get("tool")
            .and_then(|t| t.get("poetry"))
            .and_then(|v| v.as_table());
        name = project
            .or(poetry)
            .and_then(|p| p.get("name"))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        requires_python = project
            .and_then(|p| p.get("requires-python"))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        if let Some(deps) = project
            .and_then(|p| p.get("dependencies"))
            .and_then(|v| v.as_array())
        {
            dependencies.extend(deps.iter().filter_map(|d| d.as_str()).map(dist_name));
        }
        for table in [project, poetry].into_iter().flatten() {
            if let Some(s) = table.get("scripts").and_then(|v| v.as_table()) {
                for (k, v) in s {
                    if let Some(target) = v.as_str() {
                        scripts.push((k.clone(), target.to_string()));
                    }
                }
            }
        }
    }
    if requirements {
        let text = src.read_text("requirements.txt")?;
        let reqs = parse_requirements(&text);
        evidence.push(Evidence::new(
            "requirements.txt",
            if reqs.is_empty() {
                "no third-party requirements".to_string()
            } else {
                format!("requires {}", reqs.join(", "))
            },
        ));
        for r in reqs {
            if !dependencies.contains(&r) {
                dependencies.push(r);
            }
        }
    }
    let src_dir = src.has_dir("src").then(|| "src".to_string());
    let entry = if let Some((script, target)) = pick_script(&scripts, name.as_deref()) {
        let (module, function) =
            target
                .split_once(':')
                .ok_or_else(|| DetectError::BadManifest {
                    file: "pyproject.toml".into(),
                    problem: format!(
                        "script `{script}` = \"{target}\" is not of the form \"module:function\""
                    ),
                })?;
        let (module, function) = (module.trim().to_string(), function.trim().to_string());
        let found = module_file(src, &module, src_dir.as_deref()).ok_or_else(|| {
            DetectError::BadManifest {
                file: "pyproject.toml".into(),
                problem: format!(
                    "script `{script}` names module {module}, but neither {p}.py nor \
                     {p}/__init__.py exists (nor under src/); fix [project.scripts]",
                    p = module.replace('.', "/")
                ),
            }
        })?;
        evidence.insert(
            0,
            Evidence::new(
                "pyproject.toml",
                format!("[project.scripts] {script} = \"{module}:{function}\""),
            ),
        );
        evidence.insert(
            1,
            Evidence::new(found, format!("defines the entry point module {module}")),
        );
        if scripts.len() > 1 {
            evidence.push(Evidence::new(
                "pyproject.toml",
                format!("{} scripts; using `{script}`", scripts.len()),
            ));
        }
        Entry::Script {
            name: script.to_string(),
            module,
            function,
        }
    } else if let Some(main) = MAIN_FILES.iter().find(|f| src.file(f).is_some()) {
        evidence.insert(
            0,
            Evidence::new(*main, "the program to run (python3 main file)"),
        );
        Entry::File(main.to_string())
    } else {
        return Ok(None);
    };
    if let Some(rp) = &requires_python {
        evidence.push(Evidence::new(
            "pyproject.toml",
            format!("requires-python {rp}"),
        ));
    }
    let vendor = src.has_dir("vendor").then(|| "vendor".to_string());
    let port = entry_port(src, &entry, src_dir.as_deref());
    if let Some(p) = &port {
        evidence.push(Evidence::new(p.from.clone(), format!("port {}", p.port)));
    }
    Ok(Some(Candidate {
        kind: Kind::Python,
        evidence,
        app: AppModel::Python(PythonApp {
            name,
            entry,
            src_dir,
            requires_python,
            dependencies,
            vendor,
            port,
        }),
    }))
}

/// The script to run: the one named like the project, else the only one, else the first by name.
fn pick_script<'a>(
    scripts: &'a [(String, String)],
    name: Option<&str>,
) -> Option<(&'a str, &'a str)> {
    let by_name = name.and_then(|n| scripts.iter().find(|(k, _)| k == n));
    by_name
        .or_else(|| scripts.iter().min_by(|a, b| a.0.cmp(&b.0)))
        .map(|(k, v)| (k.as_str(), v.as_str()))
}

/// The file that defines `module` (`a.b` -> `a/b.py` or `a/b/__init__.py`), at the root or in `src/`.
fn module_file(src: &Source, module: &str, src_dir: Option<&str>) -> Option<String> {
    let p = module.replace('.', "/");
    let bases = std::iter::once(String::new()).chain(src_dir.map(|d| format!("{d}/")));
    for base in bases {
        for cand in [format!("{base}{p}.py"), format!("{base}{p}/__init__.py")] {
            if src.file(&cand).is_some() {
                return Some(cand);
            }
        }
    }
    None
}

/// `os.environ.get("PORT", "8000")`-style defaults in the entry file.
fn entry_port(src: &Source, entry: &Entry, src_dir: Option<&str>) -> Option<PortHint> {
    let file = match entry {
        Entry::File(f) => f.clone(),
        Entry::Script { module, .. } => module_file(src, module, src_dir)?,
    };
    let text = src.read_text(&file).ok()?;
    for pat in ["\"PORT\",", "'PORT',"] {
        if let Some(i) = text.find(pat) {
            let rest = text[i + pat.len()..].trim_start();
            let digits: String = rest
                .trim_start_matches(['"', '\''])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(port) = digits.parse::<u16>() {
                return Some(PortHint {
                    port,
                    from: format!("{file} (PORT default)"),
                });
            }
        }
    }
    None
}

/// The distribution names of a requirements file, as pip reads it: comments and blank lines
/// skipped, options (`-r`, `--index-url`, ...) skipped, markers and versions stripped.
pub fn parse_requirements(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split(" #").next().unwrap_or(l).trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('-'))
        .map(dist_name)
        .filter(|n| !n.is_empty())
        .collect()
}

/// `requests[socks]>=2; python_version>"3"` -> `requests`.
fn dist_name(spec: &str) -> String {
    spec.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .next()
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn app(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    #[test]
    fn pyproject_entry_point_in_src_layout() {
        let dir = app(&[
            (
                "pyproject.toml",
                "[project]\nname = \"hello\"\nrequires-python = \">=3.9\"\ndependencies = [\"flask>=2\"]\n[project.scripts]\nhello = \"hello.server:main\"\n",
            ),
            ("src/hello/__init__.py", ""),
            ("src/hello/server.py", "PORT = int(os.environ.get(\"PORT\", \"8000\"))\n"),
        ]);
        let Outcome::Match(c) = detect(&Source::open(dir.path()).unwrap()) else {
            panic!()
        };
        let AppModel::Python(app) = c.app else {
            panic!()
        };
        assert_eq!(
            app.entry,
            Entry::Script {
                name: "hello".into(),
                module: "hello.server".into(),
                function: "main".into()
            }
        );
        assert_eq!(app.src_dir.as_deref(), Some("src"));
        assert_eq!(app.dependencies, ["flask"]);
        assert_eq!(app.port.unwrap().port, 8000);
    }

    #[test]
    fn requirements_with_main_file() {
        let dir = app(&[
            (
                "requirements.txt",
                "# deps\nrequests[socks]>=2.0 ; python_version > '3'\n-r other.txt\n\n",
            ),
            ("app.py", "print('hi')\n"),
        ]);
        let Outcome::Match(c) = detect(&Source::open(dir.path()).unwrap()) else {
            panic!()
        };
        let AppModel::Python(app) = c.app else {
            panic!()
        };
        assert_eq!(app.entry, Entry::File("app.py".into()));
        assert_eq!(app.dependencies, ["requests"]);
    }

    #[test]
    fn bad_pyproject_and_missing_module() {
        let dir = app(&[("pyproject.toml", "[project\nname=")]);
        let Outcome::Refused(e) = detect(&Source::open(dir.path()).unwrap()) else {
            panic!()
        };
        assert!(e.to_string().contains("not valid TOML"), "{e}");
        let dir = app(&[(
            "pyproject.toml",
            "[project]\nname=\"x\"\n[project.scripts]\nx = \"nope.mod:main\"\n",
        )]);
        let Outcome::Refused(e) = detect(&Source::open(dir.path()).unwrap()) else {
            panic!()
        };
        assert!(e.to_string().contains("nope/mod.py"), "{e}");
    }

    #[test]
    fn requirements_without_entry_is_a_note() {
        let dir = app(&[("requirements.txt", "flask\n"), ("lib.py", "")]);
        assert!(matches!(
            detect(&Source::open(dir.path()).unwrap()),
            Outcome::Miss(Some(_))
        ));
    }
}
