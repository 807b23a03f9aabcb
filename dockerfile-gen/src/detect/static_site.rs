//! Static websites: an `index.html` at the root or in a usual output directory (`public/`,
//! `dist/`, `build/`, `site/`, `_site/`, `www/`).

use super::source::Source;
use super::{AppModel, Candidate, Evidence, Kind, Outcome};

/// Where static site generators and front-end builds put their output.
pub const SITE_DIRS: &[&str] = &[
    "", "public", "dist", "build", "site", "_site", "www", "html",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticApp {
    pub name: String,
    /// The directory served, relative to the build context ("" = the root).
    pub dir: String,
}

pub fn detect(src: &Source) -> Outcome {
    if !src.is_dir() {
        return Outcome::Miss(None);
    }
    for dir in SITE_DIRS {
        let index = if dir.is_empty() {
            "index.html".to_string()
        } else {
            format!("{dir}/index.html")
        };
        if src.file(&index).is_none() {
            continue;
        }
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let count = |exts: &[&str]| {
            src.entries()
                .iter()
                .filter(|e| !e.is_dir && e.rel.starts_with(&prefix))
                .filter(|e| exts.iter().any(|x| e.rel.ends_with(x)))
                .count()
        };
        let evidence = vec![
            Evidence::new(index, "site entry page"),
            Evidence::new(
                if dir.is_empty() {
                    "./".to_string()
                } else {
                    prefix.clone()
                },
                format!(
                    "{} pages, {} stylesheets, {} scripts",
                    count(&[".html", ".htm"]),
                    count(&[".css"]),
                    count(&[".js", ".mjs"])
                ),
            ),
        ];
        return Outcome::Match(Candidate {
            kind: Kind::Static,
            evidence,
            app: AppModel::Static(StaticApp {
                name: src.display_name(),
                dir: dir.to_string(),
            }),
        });
    }
    Outcome::Miss(None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn index_at_root_or_in_dist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dist")).unwrap();
        std::fs::write(dir.path().join("dist/index.html"), "<h1>x</h1>").unwrap();
        std::fs::write(dir.path().join("dist/a.css"), "").unwrap();
        let Outcome::Match(c) = detect(&Source::open(dir.path()).unwrap()) else {
            panic!()
        };
        let AppModel::Static(app) = c.app else {
            panic!()
        };
        assert_eq!(app.dir, "dist");
        assert!(c.evidence[1].fact.contains("1 stylesheets"));
    }
}
