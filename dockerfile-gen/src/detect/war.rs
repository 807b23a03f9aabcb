//! Web applications for Tomcat: a `.war` file (a zip with `WEB-INF/`) or an exploded war
//! directory (`WEB-INF/` at its root).

use super::java;
use super::source::{FileFormat, Shape, Source};
use super::{AppModel, Candidate, Evidence, Kind, Outcome};
use crate::error::DetectError;

/// A war as file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WarSource {
    /// A `.war` file, relative to the build context.
    File(String),
    /// The build context is the exploded war.
    Exploded,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarApp {
    pub source: WarSource,
    pub name: String,
    pub display_name: Option<String>,
    /// There is something to serve at `/` (index.html/index.jsp or a welcome-file-list).
    pub has_welcome: bool,
    pub java: Option<u16>,
}

pub fn detect(src: &Source) -> Outcome {
    match &src.shape {
        Shape::File { name, format } => {
            if *format != FileFormat::Zip {
                return Outcome::Miss(None);
            }
            if !name.ends_with(".war") {
                // A jar with WEB-INF/ but an executable manifest is the jar detector's.
                return Outcome::Miss(None);
            }
            file_war(src, name, name)
        }
        Shape::Dir { .. } => {
            if src.has_dir("WEB-INF") {
                return exploded(src);
            }
            let wars = src.top_files_ending(".war");
            match wars.as_slice() {
                [] => Outcome::Miss(None),
                [one] => file_war(src, &one.rel, &one.rel),
                many => Outcome::Refused(DetectError::Ambiguous {
                    files: many.iter().map(|e| e.rel.clone()).collect(),
                }),
            }
        }
    }
}

fn file_war(src: &Source, rel: &str, display: &str) -> Outcome {
    let path = if src.is_dir() {
        src.abs(rel)
    } else {
        src.path.clone()
    };
    let corrupt = |detail: String| DetectError::CorruptWar {
        file: display.to_string(),
        detail,
    };
    let mut zip = match java::open(&path) {
        Ok(z) => z,
        Err(e) => return Outcome::Refused(corrupt(e)),
    };
    let names = java::names(&zip);
    if !names.iter().any(|n| n.starts_with("WEB-INF/")) {
        return Outcome::Refused(DetectError::NoWebInf {
            file: display.to_string(),
        });
    }
    let web_xml = match java::read_entry(&mut zip, "WEB-INF/web.xml", 1 << 20) {
        Ok(b) => b.map(|b| String::from_utf8_lossy(&b).into_owned()),
        Err(e) => return Outcome::Refused(corrupt(e)),
    };
    let class = names
        .iter()
        .find(|n| n.starts_with("WEB-INF/classes/") && n.ends_with(".class"))
        .cloned();
    let major = match class.as_deref().map(|c| java::class_major(&mut zip, c)) {
        Some(Ok(m)) => m,
        Some(Err(e)) => return Outcome::Refused(corrupt(e)),
        None => None,
    };
    let name = rel
        .trim_end_matches(".war")
        .rsplit('/')
        .next()
        .unwrap_or("app");
    build(
        WarSource::File(rel.to_string()),
        name,
        &names,
        web_xml.as_deref(),
        major,
        class.as_deref(),
        display,
    )
}

fn exploded(src: &Source) -> Outcome {
    let names: Vec<String> = src
        .entries()
        .iter()
        .map(|e| {
            if e.is_dir {
                format!("{}/", e.rel)
            } else {
                e.rel.clone()
            }
        })
        .collect();
    let web_xml = if src.file("WEB-INF/web.xml").is_some() {
        match src.read_text("WEB-INF/web.xml") {
            Ok(t) => Some(t),
            Err(e) => return Outcome::Refused(e),
        }
    } else {
        None
    };
    if web_xml.is_none() && !src.has_dir("WEB-INF/classes") && !src.has_dir("WEB-INF/lib") {
        return Outcome::Refused(DetectError::NoWebInf {
            file: src.display_name(),
        });
    }
    let class = names
        .iter()
        .find(|n| n.starts_with("WEB-INF/classes/") && n.ends_with(".class"))
        .cloned();
    let major = match &class {
        Some(c) => match src.read_limited(c, 8) {
            Ok(head) => java::class_major_of(&head),
            Err(e) => return Outcome::Refused(e),
        },
        None => None,
    };
    build(
        WarSource::Exploded,
        &src.display_name(),
        &names,
        web_xml.as_deref(),
        major,
        class.as_deref(),
        "",
    )
}

fn build(
    source: WarSource,
    name: &str,
    names: &[String],
    web_xml: Option<&str>,
    major: Option<u16>,
    class: Option<&str>,
    prefix: &str,
) -> Outcome {
    let at = |f: &str| {
        if prefix.is_empty() {
            f.to_string()
        } else {
            format!("{prefix}!{f}")
        }
    };
    if let Some(m) = major.filter(|m| *m > java::MAX_CLASS_MAJOR) {
        return Outcome::Refused(DetectError::JavaTooNew {
            file: at(class.unwrap_or("WEB-INF/classes")),
            major: m,
            needed: java::java_release(m),
        });
    }
    let mut evidence = Vec::new();
    let display_name = web_xml.and_then(|x| xml_text(x, "display-name"));
    match web_xml {
        Some(x) if x.contains("<web-app") => evidence.push(Evidence::new(
            at("WEB-INF/web.xml"),
            match &display_name {
                Some(d) => format!("deployment descriptor <web-app>, display-name \"{d}\""),
                None => "deployment descriptor <web-app>".to_string(),
            },
        )),
        Some(_) => evidence.push(Evidence::new(
            at("WEB-INF/web.xml"),
            "present, but without a <web-app> element",
        )),
        None => evidence.push(Evidence::new(
            at("WEB-INF/"),
            "WEB-INF/ without web.xml (annotation-configured servlets)",
        )),
    }
    let count = |pred: &dyn Fn(&str) -> bool| names.iter().filter(|n| pred(n)).count();
    let classes = count(&|n| n.starts_with("WEB-INF/classes/") && n.ends_with(".class"));
    let libs = count(&|n| n.starts_with("WEB-INF/lib/") && n.ends_with(".jar"));
    let pages = count(&|n| {
        !n.starts_with("WEB-INF/")
            && !n.starts_with("META-INF/")
            && (n.ends_with(".jsp") || n.ends_with(".html") || n.ends_with(".htm"))
    });
    evidence.push(Evidence::new(
        at(""),
        format!("{classes} classes, {libs} libraries, {pages} pages"),
    ));
    if let (Some(m), Some(c)) = (major, class) {
        evidence.push(Evidence::new(
            at(c),
            format!("compiled for Java {}", java::java_release(m)),
        ));
    }
    let has_welcome = names
        .iter()
        .any(|n| matches!(n.as_str(), "index.html" | "index.htm" | "index.jsp"))
        || web_xml.is_some_and(|x| x.contains("<welcome-file"));
    Outcome::Match(Candidate {
        kind: Kind::War,
        evidence,
        app: AppModel::War(WarApp {
            source,
            name: name.to_string(),
            display_name,
            has_welcome,
            java: major.map(java::java_release),
        }),
    })
}

/// The text of the first `<tag>...</tag>` (good enough for display-name; not an XML parser).
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    let text = xml[start..end].trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::fixtures;

    #[test]
    fn war_file_with_web_xml() {
        let dir = tempfile::tempdir().unwrap();
        let war = dir.path().join("shop.war");
        fixtures::write_zip(
            &war,
            &[
                ("WEB-INF/web.xml", fixtures::WEB_XML.as_bytes()),
                ("WEB-INF/classes/a/S.class", &fixtures::class_bytes(52)),
                ("index.jsp", b"<%= 1 %>"),
            ],
        )
        .unwrap();
        let Outcome::Match(c) = detect(&Source::open(&war).unwrap()) else {
            panic!()
        };
        let AppModel::War(app) = c.app else { panic!() };
        assert_eq!(app.source, WarSource::File("shop.war".into()));
        assert_eq!(app.display_name.as_deref(), Some("hello"));
        assert!(app.has_welcome);
        assert_eq!(app.java, Some(8));
    }

    #[test]
    fn war_without_web_inf_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let war = dir.path().join("bad.war");
        fixtures::write_zip(&war, &[("index.html", b"hi")]).unwrap();
        let Outcome::Refused(e) = detect(&Source::open(&war).unwrap()) else {
            panic!()
        };
        assert!(e.to_string().contains("no WEB-INF"), "{e}");
    }

    #[test]
    fn exploded_war_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("WEB-INF")).unwrap();
        std::fs::write(dir.path().join("WEB-INF/web.xml"), fixtures::WEB_XML).unwrap();
        std::fs::write(dir.path().join("index.html"), "hi").unwrap();
        let Outcome::Match(c) = detect(&Source::open(dir.path()).unwrap()) else {
            panic!()
        };
        let AppModel::War(app) = c.app else { panic!() };
        assert_eq!(app.source, WarSource::Exploded);
    }
}
