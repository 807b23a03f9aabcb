//! Build files read the way their tools would, for what dockerfile-gen needs: which artifact
//! the build makes (Maven `artifactId`/`version`/`finalName`/`packaging`, Gradle's static
//! `archiveFileName`, Ant's `<jar destfile>`), the main class, and a parse error with file and
//! line when a file is broken.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::error::DetectError;

/// The build tool of a Java build file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tool {
    Maven,
    Gradle,
    Ant,
}

impl Tool {
    pub fn as_str(self) -> &'static str {
        match self {
            Tool::Maven => "Maven",
            Tool::Gradle => "Gradle",
            Tool::Ant => "Ant",
        }
    }
}

/// What a `pom.xml` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MavenProject {
    pub artifact_id: String,
    pub version: Option<String>,
    /// `jar` unless the pom says otherwise.
    pub packaging: String,
    /// `<build><finalName>`, when it is static (or uses only the pom's own properties).
    pub final_name: Option<String>,
    /// The manifest main class configured for the jar (maven-jar-plugin, or any plugin's
    /// `<mainClass>`).
    pub main_class: Option<String>,
    /// `<modules>` of an aggregator pom.
    pub modules: Vec<String>,
}

impl MavenProject {
    /// The artifact `mvn package` leaves, relative to the project root.
    pub fn artifact(&self) -> String {
        let base = match (&self.final_name, &self.version) {
            (Some(f), _) => f.clone(),
            (None, Some(v)) => format!("{}-{v}", self.artifact_id),
            (None, None) => self.artifact_id.clone(),
        };
        format!("target/{base}.{}", self.packaging)
    }
}

fn xml_error(file: &str, e: &roxmltree::Error) -> DetectError {
    let pos = e.pos();
    DetectError::BuildFileSyntax {
        file: file.to_string(),
        line: pos.row,
        column: pos.col,
        detail: format!("not well-formed XML: {e}"),
    }
}

/// The line and column of a byte offset in `text` (1-based).
pub fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() as u32 + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u32 + 1;
    (line, col)
}

fn child<'a>(node: roxmltree::Node<'a, 'a>, name: &str) -> Option<roxmltree::Node<'a, 'a>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn child_text(node: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name)
        .and_then(|c| c.text())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// `${name}` references resolved from `props`; `None` when one is left unresolved.
fn interpolate(value: &str, props: &HashMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = value;
    for _ in 0..32 {
        let Some(start) = rest.find("${") else {
            out.push_str(rest);
            return Some(out);
        };
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}')? + start;
        let key = &rest[start + 2..end];
        out.push_str(&interpolate(props.get(key)?, props)?);
        rest = &rest[end + 1..];
    }
    None
}

/// Parses `pom.xml` (its text; `file` names it in errors).
pub fn maven(file: &str, text: &str) -> Result<MavenProject, DetectError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| xml_error(file, &e))?;
    let root = doc.root_element();
    let at = |node: roxmltree::Node<'_, '_>| line_col(text, node.range().start);
    if root.tag_name().name() != "project" {
        let (line, column) = at(root);
        return Err(DetectError::BuildFileSyntax {
            file: file.into(),
            line,
            column,
            detail: format!(
                "the root element is <{}>, a pom's is <project>",
                root.tag_name().name()
            ),
        });
    }
    let Some(artifact_id) = child_text(root, "artifactId") else {
        let (line, column) = at(root);
        return Err(DetectError::BuildFileSyntax {
            file: file.into(),
            line,
            column,
            detail: "<project> has no <artifactId>".into(),
        });
    };
    let parent = child(root, "parent");
    let version =
        child_text(root, "version").or_else(|| parent.and_then(|p| child_text(p, "version")));
    let mut props: HashMap<String, String> = HashMap::new();
    if let Some(p) = child(root, "properties") {
        for prop in p.children().filter(|c| c.is_element()) {
            props.insert(
                prop.tag_name().name().to_string(),
                prop.text().unwrap_or_default().trim().to_string(),
            );
        }
    }
    props.insert("project.artifactId".into(), artifact_id.clone());
    props.insert("artifactId".into(), artifact_id.clone());
    if let Some(v) = &version {
        props.insert("project.version".into(), v.clone());
        props.insert("version".into(), v.clone());
    }
    let version = version.and_then(|v| interpolate(&v, &props));
    let packaging = child_text(root, "packaging").unwrap_or_else(|| "jar".into());
    let build = child(root, "build");
    let final_name = build
        .and_then(|b| child_text(b, "finalName"))
        .and_then(|f| interpolate(&f, &props));
    let main_class = build.and_then(|b| {
        b.descendants()
            .find(|n| n.is_element() && n.tag_name().name() == "mainClass")
            .and_then(|n| n.text())
            .map(|t| t.trim().to_string())
            .and_then(|t| interpolate(&t, &props))
            .filter(|t| !t.is_empty())
    });
    let modules = child(root, "modules")
        .map(|m| {
            m.children()
                .filter(|c| c.is_element() && c.tag_name().name() == "module")
                .filter_map(|c| c.text().map(|t| t.trim().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok(MavenProject {
        artifact_id,
        version,
        packaging,
        final_name,
        main_class,
        modules,
    })
}

/// The first string literal assigned to `key` (`key = "x"`, `key = 'x'`, `key.set("x")`,
/// `key "x"`), if it has no `$` (Groovy/Kotlin interpolation: not static).
fn gradle_string(text: &str, key: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with("//") {
            continue;
        }
        let Some(i) = line.find(key) else { continue };
        let before_ok = line[..i]
            .chars()
            .last()
            .is_none_or(|c| !c.is_alphanumeric() && c != '_');
        if !before_ok {
            continue;
        }
        let rest = line[i + key.len()..].trim_start();
        let rest = rest
            .strip_prefix(".set(")
            .or_else(|| rest.strip_prefix('='))
            .or_else(|| rest.strip_prefix('('))
            .unwrap_or(rest)
            .trim_start();
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
        let value: String = rest[1..].chars().take_while(|c| *c != quote).collect();
        return (!value.contains('$') && !value.is_empty()).then_some(value);
    }
    None
}

/// The artifact a Gradle build names, when it says so statically: `archiveFileName`, else
/// `archiveBaseName` (or settings' `rootProject.name`) with `version`, in `build/libs/`.
pub fn gradle(build_text: &str, settings_text: Option<&str>) -> Option<String> {
    let ext = if [
        "id 'war'",
        "id \"war\"",
        "id(\"war\")",
        "plugin: 'war'",
        "plugin: \"war\"",
    ]
    .iter()
    .any(|p| build_text.contains(p))
    {
        "war"
    } else {
        "jar"
    };
    if let Some(name) = gradle_string(build_text, "archiveFileName") {
        return Some(format!("build/libs/{name}"));
    }
    let base = gradle_string(build_text, "archiveBaseName")
        .or_else(|| settings_text.and_then(|s| gradle_string(s, "rootProject.name")))?;
    let version = build_text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("version"))
        .and_then(|l| gradle_string(l, "version"));
    Some(match version {
        Some(v) => format!("build/libs/{base}-{v}.{ext}"),
        None => format!("build/libs/{base}.{ext}"),
    })
}

/// The archives an Ant `build.xml` makes with a static `destfile` (after its own
/// `<property name value>`s), relative to the project root.
pub fn ant(file: &str, text: &str) -> Result<Vec<String>, DetectError> {
    let doc = roxmltree::Document::parse(text).map_err(|e| xml_error(file, &e))?;
    let mut props = HashMap::new();
    for p in doc
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "property")
    {
        if let (Some(n), Some(v)) = (p.attribute("name"), p.attribute("value")) {
            props.insert(n.to_string(), v.to_string());
        }
    }
    props.insert("basedir".into(), ".".into());
    Ok(doc
        .descendants()
        .filter(|n| n.is_element() && matches!(n.tag_name().name(), "jar" | "war"))
        .filter_map(|n| n.attribute("destfile").or_else(|| n.attribute("jarfile")))
        .filter_map(|d| interpolate(d, &props))
        .map(|d| d.trim_start_matches("./").to_string())
        .collect())
}

/// Checks that `package.json` is JSON (file and line when not).
pub fn package_json(file: &str, text: &str) -> Result<(), DetectError> {
    serde_json::from_str::<serde_json::Value>(text)
        .map(|_| ())
        .map_err(|e| DetectError::BuildFileSyntax {
            file: file.into(),
            line: e.line() as u32,
            column: e.column() as u32,
            detail: format!("not valid JSON: {e}"),
        })
}

/// Checks that `pyproject.toml` is TOML (file and line when not).
pub fn pyproject(file: &str, text: &str) -> Result<(), DetectError> {
    toml::from_str::<toml::Value>(text)
        .map(|_| ())
        .map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            DetectError::BuildFileSyntax {
                file: file.into(),
                line,
                column,
                detail: format!("not valid TOML: {}", e.message()),
            }
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const POM: &str = r#"<?xml version="1.0"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>demo</groupId>
  <artifactId>greeter</artifactId>
  <version>1.2</version>
  <properties><app.name>greeter-app</app.name></properties>
  <build>
    <finalName>${app.name}-${project.version}</finalName>
    <plugins><plugin><artifactId>maven-jar-plugin</artifactId>
      <configuration><archive><manifest><mainClass>demo.Main</mainClass></manifest></archive></configuration>
    </plugin></plugins>
  </build>
</project>
"#;

    #[test]
    fn pom_names_its_artifact_and_main_class() {
        let p = maven("pom.xml", POM).unwrap();
        assert_eq!(p.artifact(), "target/greeter-app-1.2.jar");
        assert_eq!(p.main_class.as_deref(), Some("demo.Main"));
        let plain = maven(
            "pom.xml",
            "<project><artifactId>a</artifactId><version>1</version><packaging>war</packaging></project>",
        )
        .unwrap();
        assert_eq!(plain.artifact(), "target/a-1.war");
    }

    #[test]
    fn broken_pom_names_file_and_line() {
        let e = maven(
            "pom.xml",
            "<project>\n  <artifactId>a</artifactId>\n  <build>\n</project>\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("pom.xml:4:"), "{e}");
        let e = maven("pom.xml", "<project>\n</project>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no <artifactId>"), "{e}");
    }

    #[test]
    fn gradle_static_names() {
        assert_eq!(
            gradle("bootJar {\n  archiveFileName = 'app.jar'\n}\n", None).as_deref(),
            Some("build/libs/app.jar")
        );
        assert_eq!(
            gradle("tasks.jar { archiveFileName.set(\"svc.jar\") }\n", None).as_deref(),
            Some("build/libs/svc.jar")
        );
        assert_eq!(
            gradle("version = '2.0'\n", Some("rootProject.name = 'shop'\n")).as_deref(),
            Some("build/libs/shop-2.0.jar")
        );
        assert_eq!(
            gradle("jar { archiveFileName = \"${x}.jar\" }\n", None),
            None
        );
    }

    #[test]
    fn ant_destfile_and_json_toml_errors() {
        let names = ant(
            "build.xml",
            "<project><property name=\"dist\" value=\"dist\"/><target name=\"j\"><jar destfile=\"${dist}/app.jar\"/></target></project>",
        )
        .unwrap();
        assert_eq!(names, ["dist/app.jar"]);
        let e = package_json("package.json", "{\n \"a\": ,\n}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("package.json:2:"), "{e}");
        let e = pyproject("pyproject.toml", "[project]\nname = \n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("pyproject.toml:2:"), "{e}");
    }
}
