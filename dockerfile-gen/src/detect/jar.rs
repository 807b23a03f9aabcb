//! Executable jars: a plain jar whose manifest names a `Main-Class`, or a Spring Boot fat jar
//! (`org.springframework.boot.loader...JarLauncher` with a `Start-Class`).

use std::path::Path;

use super::java::{self, Archive};
use super::source::{FileFormat, Shape, Source};
use super::{port_in_properties, AppModel, Candidate, Evidence, Kind, Outcome, PortHint};
use crate::error::DetectError;

/// What the jar says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JarApp {
    /// The jar, relative to the build context.
    pub file: String,
    pub main_class: String,
    pub title: Option<String>,
    pub spring_boot: Option<SpringBoot>,
    /// `Class-Path` entries of the manifest, relative to the build context (they must be
    /// copied; each exists, or the jar is refused).
    pub class_path: Vec<String>,
    /// A `lib/` directory next to the jar (Maven's `target/lib/`, a release's `lib/`), relative
    /// to the build context: copied with the jar.
    pub lib_dir: Option<String>,
    pub port: Option<PortHint>,
    /// Java release the main class was compiled for.
    pub java: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpringBoot {
    pub version: Option<String>,
    pub start_class: String,
    /// spring-boot-actuator is on the class path: `/actuator/health` exists.
    pub actuator: bool,
}

pub fn detect(src: &Source) -> Outcome {
    match &src.shape {
        Shape::File { name, format } => {
            if *format != FileFormat::Zip {
                return Outcome::Miss(None);
            }
            if name.ends_with(".war") {
                return Outcome::Miss(None);
            }
            if name.ends_with(".zip") {
                return Outcome::Refused(DetectError::NotGzip {
                    file: name.clone(),
                    found: "it is a zip archive".into(),
                });
            }
            match analyze(&src.path, name, &src.root) {
                Ok(app) => matched(app),
                Err(e) => Outcome::Refused(e),
            }
        }
        Shape::Dir { .. } => {
            let jars = src.top_files_ending(".jar");
            if jars.is_empty() {
                return Outcome::Miss(None);
            }
            let mut apps = Vec::new();
            let mut first_error = None;
            for entry in jars {
                match analyze(&src.abs(&entry.rel), &entry.rel, &src.root) {
                    Ok(app) => apps.push(app),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            match apps.len() {
                0 => first_error.map_or(Outcome::Miss(None), Outcome::Refused),
                1 => apps.pop().map_or(Outcome::Miss(None), matched),
                _ => Outcome::Refused(DetectError::Ambiguous {
                    files: apps.into_iter().map(|a| a.file).collect(),
                }),
            }
        }
    }
}

fn matched(app: JarApp) -> Outcome {
    let mut evidence = vec![Evidence::new(
        format!("{}!META-INF/MANIFEST.MF", app.file),
        format!("Main-Class: {}", app.main_class),
    )];
    if let Some(sb) = &app.spring_boot {
        evidence.push(Evidence::new(
            format!("{}!META-INF/MANIFEST.MF", app.file),
            format!(
                "Spring Boot fat jar{}, Start-Class: {}",
                sb.version
                    .as_ref()
                    .map(|v| format!(" (Spring-Boot-Version {v})"))
                    .unwrap_or_default(),
                sb.start_class
            ),
        ));
        if sb.actuator {
            evidence.push(Evidence::new(
                format!("{}!BOOT-INF/lib/", app.file),
                "spring-boot-actuator is on the class path (/actuator/health)",
            ));
        }
    }
    if let Some(java) = app.java {
        evidence.push(Evidence::new(
            format!("{}!{}", app.file, main_entry(&app)),
            format!("compiled for Java {java}"),
        ));
    }
    if let Some(p) = &app.port {
        evidence.push(Evidence::new(p.from.clone(), format!("port {}", p.port)));
    }
    Outcome::Match(Candidate {
        kind: Kind::Jar,
        evidence,
        app: AppModel::Jar(app),
    })
}

fn main_entry(app: &JarApp) -> String {
    match &app.spring_boot {
        Some(sb) => format!("BOOT-INF/classes/{}", java::class_entry(&sb.start_class)),
        None => java::class_entry(&app.main_class),
    }
}

/// Reads a jar. `rel` is its path relative to `root` (the build context).
pub fn analyze(path: &Path, rel: &str, root: &Path) -> Result<JarApp, DetectError> {
    let corrupt = |detail: String| DetectError::CorruptJar {
        file: rel.to_string(),
        detail,
    };
    let mut zip = java::open(path).map_err(corrupt)?;
    let manifest = java::manifest(&mut zip)
        .map_err(corrupt)?
        .unwrap_or_default();
    let Some(main_class) = manifest.get("Main-Class").map(str::to_string) else {
        return Err(DetectError::NoMainClass {
            file: rel.to_string(),
        });
    };
    let spring_boot = if main_class.starts_with("org.springframework.boot.loader.") {
        let start_class = manifest
            .get("Start-Class")
            .map(str::to_string)
            .ok_or_else(|| DetectError::BadManifest {
                file: rel.to_string(),
                problem: "Spring Boot launcher without a Start-Class in META-INF/MANIFEST.MF; \
                          repackage it with the spring-boot plugin"
                    .into(),
            })?;
        let names = java::names(&zip);
        Some(SpringBoot {
            version: manifest.get("Spring-Boot-Version").map(str::to_string),
            actuator: names
                .iter()
                .any(|n| n.starts_with("BOOT-INF/lib/spring-boot-actuator-")),
            start_class,
        })
    } else {
        None
    };
    let mut app = JarApp {
        file: rel.to_string(),
        main_class: main_class.clone(),
        title: manifest
            .get("Implementation-Title")
            .or_else(|| manifest.get("Bundle-SymbolicName"))
            .map(str::to_string),
        spring_boot,
        class_path: Vec::new(),
        lib_dir: None,
        port: None,
        java: None,
    };
    let entry = main_entry(&app);
    let major = java::class_major(&mut zip, &entry).map_err(corrupt)?;
    let Some(major) = major else {
        let class = app
            .spring_boot
            .as_ref()
            .map_or(main_class, |sb| sb.start_class.clone());
        return Err(DetectError::MainClassMissing {
            file: rel.to_string(),
            class,
            entry,
        });
    };
    if major > java::MAX_CLASS_MAJOR {
        return Err(DetectError::JavaTooNew {
            file: rel.to_string(),
            major,
            needed: java::java_release(major),
        });
    }
    app.java = Some(java::java_release(major));
    if app.spring_boot.is_some() {
        app.port = spring_port(&mut zip, rel).map_err(corrupt)?;
    }
    // Class-Path entries are relative to the jar's directory.
    let jar_dir = Path::new(rel).parent().unwrap_or(Path::new(""));
    for cp in manifest
        .get("Class-Path")
        .unwrap_or_default()
        .split_whitespace()
    {
        let rel_cp = jar_dir.join(cp).to_string_lossy().into_owned();
        let outside = cp.contains("://") || cp.starts_with('/') || cp.split('/').any(|c| c == "..");
        if outside || !root.join(&rel_cp).exists() {
            return Err(DetectError::ClassPathMissing {
                file: rel.to_string(),
                entry: cp.to_string(),
                resolved: if outside {
                    format!("{cp} (outside the jar's directory)")
                } else {
                    rel_cp
                },
            });
        }
        app.class_path.push(rel_cp);
    }
    let lib = jar_dir.join("lib");
    if app.spring_boot.is_none() && root.join(&lib).is_dir() {
        app.lib_dir = Some(lib.to_string_lossy().into_owned());
    }
    Ok(app)
}

/// `server.port` of a Spring Boot app's packaged `application.properties` / `.yml`.
fn spring_port(zip: &mut Archive, rel: &str) -> Result<Option<PortHint>, String> {
    for name in [
        "BOOT-INF/classes/application.properties",
        "BOOT-INF/classes/application.yml",
        "BOOT-INF/classes/application.yaml",
    ] {
        let Some(bytes) = java::read_entry(zip, name, 1 << 20)? else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let port = if name.ends_with(".properties") {
            port_in_properties(&text, &["server.port"])
        } else {
            yaml_server_port(&text)
        };
        if let Some(port) = port {
            return Ok(Some(PortHint {
                port,
                from: format!("{rel}!{name}"),
            }));
        }
    }
    Ok(None)
}

/// `server:\n  port: 8081` in a simple YAML file (block style, as Spring Boot docs write it).
fn yaml_server_port(text: &str) -> Option<u16> {
    let mut in_server = false;
    for line in text.lines() {
        let trimmed = line.trim_end();
        if trimmed.trim_start().starts_with('#') || trimmed.is_empty() {
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            in_server = trimmed == "server:";
            if let Some(v) = trimmed.strip_prefix("server.port:") {
                return super::port_value(v);
            }
            continue;
        }
        if in_server {
            if let Some(v) = trimmed.trim_start().strip_prefix("port:") {
                return super::port_value(v);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::fixtures;

    fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        dir
    }

    #[test]
    fn plain_executable_jar() {
        let dir = tempfile::tempdir().unwrap();
        let jar = dir.path().join("hello.jar");
        fixtures::executable_jar(&jar, "com.example.Hello", 61).unwrap();
        let src = Source::open(&jar).unwrap();
        let Outcome::Match(c) = detect(&src) else {
            panic!("no match")
        };
        let AppModel::Jar(app) = c.app else { panic!() };
        assert_eq!(app.main_class, "com.example.Hello");
        assert_eq!(app.java, Some(17));
        assert!(c.evidence[0].fact.contains("Main-Class: com.example.Hello"));
    }

    #[test]
    fn spring_boot_fat_jar_with_port_and_actuator() {
        let dir = tempfile::tempdir().unwrap();
        let jar = dir.path().join("svc.jar");
        fixtures::spring_boot_jar(&jar, "com.example.Svc", "server.port=${PORT:9090}\n", true)
            .unwrap();
        let src = Source::open(&jar).unwrap();
        let Outcome::Match(c) = detect(&src) else {
            panic!("no match")
        };
        let AppModel::Jar(app) = c.app else { panic!() };
        let sb = app.spring_boot.unwrap();
        assert_eq!(sb.start_class, "com.example.Svc");
        assert!(sb.actuator);
        assert_eq!(app.port.unwrap().port, 9090);
    }

    #[test]
    fn library_jar_corrupt_jar_and_too_new_java_are_refused() {
        let dir = dir_with(&[("broken.jar", b"PK\x03\x04 this is not a zip")]);
        let src = Source::open(&dir.path().join("broken.jar")).unwrap();
        let Outcome::Refused(e) = detect(&src) else {
            panic!()
        };
        assert!(e.to_string().contains("corrupt jar"), "{e}");

        let lib = dir.path().join("lib.jar");
        fixtures::write_zip(
            &lib,
            &[("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n")],
        )
        .unwrap();
        let Outcome::Refused(e) = detect(&Source::open(&lib).unwrap()) else {
            panic!()
        };
        assert!(e.to_string().contains("no Main-Class"), "{e}");

        let new = dir.path().join("new.jar");
        fixtures::executable_jar(&new, "A", 65).unwrap();
        let Outcome::Refused(e) = detect(&Source::open(&new).unwrap()) else {
            panic!()
        };
        assert!(e.to_string().contains("needs Java 21"), "{e}");
    }

    #[test]
    fn main_class_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        let jar = dir.path().join("x.jar");
        fixtures::write_zip(&jar, &[("META-INF/MANIFEST.MF", b"Main-Class: a.B\n")]).unwrap();
        let Outcome::Refused(e) = detect(&Source::open(&jar).unwrap()) else {
            panic!()
        };
        assert!(e.to_string().contains("a/B.class"), "{e}");
    }

    #[test]
    fn directory_with_one_executable_jar_and_class_path() {
        let dir = tempfile::tempdir().unwrap();
        fixtures::write_zip(
            &dir.path().join("app.jar"),
            &[
                (
                    "META-INF/MANIFEST.MF",
                    b"Main-Class: M\nClass-Path: lib/dep.jar lib/gone.jar\n",
                ),
                ("M.class", &fixtures::class_bytes(55)),
            ],
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("lib")).unwrap();
        fixtures::write_zip(&dir.path().join("lib/dep.jar"), &[("d.txt", b"d")]).unwrap();
        let Outcome::Refused(e) = detect(&Source::open(dir.path()).unwrap()) else {
            panic!()
        };
        assert!(
            e.to_string()
                .contains("Class-Path entry lib/gone.jar points nowhere"),
            "{e}"
        );
        fixtures::write_zip(&dir.path().join("lib/gone.jar"), &[("g.txt", b"g")]).unwrap();
        let Outcome::Match(c) = detect(&Source::open(dir.path()).unwrap()) else {
            panic!()
        };
        let AppModel::Jar(app) = c.app else { panic!() };
        assert_eq!(app.class_path, ["lib/dep.jar", "lib/gone.jar"]);
        assert_eq!(app.lib_dir.as_deref(), Some("lib"));
        assert_eq!(app.java, Some(11));
    }

    #[test]
    fn yaml_port() {
        assert_eq!(yaml_server_port("server:\n  port: 8181\n"), Some(8181));
        assert_eq!(yaml_server_port("spring:\n  port: 1\n"), None);
    }
}
