//! Static files under `/console/static/`: the console's own script and stylesheet (compiled
//! in) and xterm.js with its stylesheet, read from a Debian package's directory on first use
//! (no CDN). Debian 12's `libjs-xterm` ships only a stub `xterm.js` that `require`s modules it
//! does not contain; `node-xterm` ships those modules (CommonJS), so central wraps them into
//! one browser script with a tiny module loader. A directory holding a browser build (a
//! `xterm.js` that loads no modules) is served as it is.

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const CONSOLE_JS: &str = include_str!("static/console.js");
pub const CONSOLE_CSS: &str = include_str!("static/console.css");

/// Where xterm.js is looked for when `console_xterm_dir` is not set: Debian's `node-xterm`
/// (the modules) and `libjs-xterm`.
pub const DEFAULT_XTERM_DIRS: &[&str] =
    &["/usr/share/nodejs/xterm/lib", "/usr/share/javascript/xterm"];

/// The most bytes of JavaScript read from the directory (xterm.js 3.8 is ~400 KB).
const MAX_BUNDLE: u64 = 8 << 20;
/// Directory levels walked below the xterm directory.
const MAX_DEPTH: usize = 6;

/// xterm.js ready to serve.
#[derive(Debug)]
pub struct Xterm {
    /// One script defining `window.CaasXterm = {Terminal, fit}`.
    pub js: bytes::Bytes,
    pub css: bytes::Bytes,
    pub dir: PathBuf,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum XtermError {
    #[error(
        "xterm.js was not found in {0}: install Debian's node-xterm (and libjs-xterm), or set \
         console_xterm_dir in central.toml to a directory holding xterm.js and xterm.css"
    )]
    Missing(String),
    #[error(
        "{0}/xterm.js is the stub of Debian's libjs-xterm, which loads modules the package does \
         not ship: install Debian's node-xterm (central serves its modules as one script)"
    )]
    Stub(String),
    #[error("reading xterm.js from {dir}: {message}")]
    Io { dir: String, message: String },
}

/// Reads xterm.js from the first usable directory (blocking: run it off the async workers).
pub fn load(dirs: &[PathBuf]) -> Result<Xterm, XtermError> {
    let mut errors = Vec::new();
    for dir in dirs {
        match load_dir(dir) {
            Ok(x) => return Ok(x),
            Err(e) => errors.push(e),
        }
    }
    // A stub or a read error says more than "missing" in another directory.
    if let Some(e) = errors.iter().find(|e| !matches!(e, XtermError::Missing(_))) {
        return Err(e.clone());
    }
    let tried: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(XtermError::Missing(tried.join(", ")))
}

fn io(dir: &Path, e: impl std::fmt::Display) -> XtermError {
    XtermError::Io {
        dir: dir.display().to_string(),
        message: e.to_string(),
    }
}

fn load_dir(dir: &Path) -> Result<Xterm, XtermError> {
    let shown = dir.display().to_string();
    let entry = dir.join("xterm.js");
    if !entry.is_file() {
        return Err(XtermError::Missing(shown));
    }
    let css =
        std::fs::read(dir.join("xterm.css")).map_err(|e| io(dir, format!("xterm.css: {e}")))?;
    let js = if dir.join("public").join("Terminal.js").is_file() {
        bundle(dir)?
    } else {
        let text = std::fs::read_to_string(&entry).map_err(|e| io(dir, e))?;
        if text.contains("require(\"./") || text.contains("require('./") {
            return Err(XtermError::Stub(shown));
        }
        // A browser build defines `Terminal` (xterm 3) or `Terminal.Terminal` (later).
        format!(
            "{text}\n;(function () {{ var T = window.Terminal; if (T && T.Terminal) {{ T = T.Terminal; }}\n\
             window.CaasXterm = {{ Terminal: T, fit: null }}; }})();\n"
        )
    };
    Ok(Xterm {
        js: js.into(),
        css: css.into(),
        dir: dir.to_path_buf(),
    })
}

/// The module files below `dir`: (module id without `.js`, path). Tests and addons other than
/// `fit` are left out.
fn modules(dir: &Path) -> Result<Vec<(String, PathBuf)>, XtermError> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), String::new(), 0usize)];
    while let Some((path, prefix, depth)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&path)
            .map_err(|e| io(dir, e))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let id = format!("{prefix}{name}");
            // Follows symlinks: node-xterm's `addons` links to libjs-xterm's.
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue;
            };
            if meta.is_dir() {
                let wanted = id == "addons" || id == "addons/fit" || !id.starts_with("addons/");
                if depth < MAX_DEPTH && wanted && !name.starts_with('.') {
                    stack.push((entry.path(), format!("{id}/"), depth + 1));
                }
            } else if let Some(module) = id.strip_suffix(".js") {
                let addon = module.starts_with("addons/");
                if module.ends_with(".test")
                    || module.contains("TestUtils")
                    || addon && module != "addons/fit/fit"
                {
                    continue;
                }
                out.push((module.to_string(), entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The loader: `require` resolves relative ids against the requiring module's directory.
const LOADER: &str = r#"(function () {
var defs = Object.create(null), cache = Object.create(null);
function resolve(from, request) {
  if (request.charAt(0) !== '.') { throw new Error('xterm bundle: cannot load ' + request); }
  var parts = from.split('/'); parts.pop();
  request.replace(/\.js$/, '').split('/').forEach(function (p) {
    if (p === '..') { parts.pop(); } else if (p !== '.' && p !== '') { parts.push(p); }
  });
  return parts.join('/');
}
function load(id) {
  if (cache[id]) { return cache[id].exports; }
  var def = defs[id];
  if (!def) { throw new Error('xterm bundle: no module ' + id); }
  var module = { exports: {} };
  cache[id] = module;
  def.call(module.exports, function (request) { return load(resolve(id, request)); }, module, module.exports);
  return module.exports;
}
"#;

fn bundle(dir: &Path) -> Result<String, XtermError> {
    let mut out = format!(
        "/* xterm.js from {}, its CommonJS modules wrapped into one script by caas-central. */\n{LOADER}",
        dir.display().to_string().replace("*/", "")
    );
    let mut total = 0u64;
    for (id, path) in modules(dir)? {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| io(dir, format!("{}: {e}", path.display())))?;
        total += text.len() as u64;
        if total > MAX_BUNDLE {
            return Err(io(
                dir,
                format!("more than {MAX_BUNDLE} bytes of JavaScript"),
            ));
        }
        let id_json = serde_json::to_string(&id).map_err(|e| io(dir, e))?;
        out.push_str(&format!(
            "defs[{id_json}] = function (require, module, exports) {{\n"
        ));
        for line in text
            .lines()
            .filter(|l| !l.starts_with("//# sourceMappingURL="))
        {
            out.push_str(line);
            out.push('\n');
        }
        out.push_str("};\n");
    }
    out.push_str(
        "var T = load('public/Terminal');\n\
         window.CaasXterm = { Terminal: T.Terminal || T, fit: defs['addons/fit/fit'] ? load('addons/fit/fit') : null };\n\
         })();\n",
    );
    Ok(out)
}

/// xterm.js loaded once, on first use; a failure is tried again on the next request (the
/// package may have been installed since).
#[derive(Debug)]
pub struct XtermCache {
    dirs: Vec<PathBuf>,
    loaded: tokio::sync::Mutex<Option<Arc<Xterm>>>,
}

impl XtermCache {
    pub fn new(dirs: Vec<PathBuf>) -> Self {
        Self {
            dirs,
            loaded: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn get(&self) -> Result<Arc<Xterm>, XtermError> {
        let mut loaded = self.loaded.lock().await;
        if let Some(x) = loaded.as_ref() {
            return Ok(x.clone());
        }
        let dirs = self.dirs.clone();
        let x = tokio::task::spawn_blocking(move || load(&dirs))
            .await
            .map_err(|e| XtermError::Io {
                dir: "(reader task)".into(),
                message: e.to_string(),
            })??;
        let x = Arc::new(x);
        if let Some(dir) = x.dir.to_str() {
            tracing::info!(dir, bytes = x.js.len(), "console: xterm.js loaded");
        }
        *loaded = Some(x.clone());
        Ok(x)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn write(dir: &Path, path: &str, text: &str) {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn commonjs_modules_become_one_script() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        write(
            d,
            "xterm.js",
            "module.exports = require('./public/Terminal').Terminal;\n",
        );
        write(d, "xterm.css", ".xterm {}\n");
        write(d, "public/Terminal.js", "var core = require(\"../Terminal\");\nexports.Terminal = core.Terminal;\n//# sourceMappingURL=Terminal.js.map\n");
        write(d, "Terminal.js", "exports.Terminal = function () {};\n");
        write(d, "Terminal.test.js", "require('chai');\n");
        write(d, "addons/fit/fit.js", "exports.fit = function () {};\n");
        write(d, "addons/search/search.js", "exports.x = 1;\n");
        let x = load(&[d.to_path_buf()]).unwrap();
        let js = std::str::from_utf8(&x.js).unwrap();
        assert!(js.contains("defs[\"public/Terminal\"]") && js.contains("defs[\"Terminal\"]"));
        assert!(js.contains("defs[\"addons/fit/fit\"]"));
        assert!(!js.contains("chai") && !js.contains("search") && !js.contains("sourceMappingURL"));
        assert_eq!(&x.css[..], b".xterm {}\n");
    }

    #[test]
    fn the_libjs_xterm_stub_and_a_missing_package_say_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let stub = dir.path().join("stub");
        write(
            &stub,
            "xterm.js",
            "var Terminal_1 = require(\"./public/Terminal\");\n",
        );
        write(&stub, "xterm.css", "");
        let missing = dir.path().join("missing");
        let e = load(&[missing.clone(), stub.clone()]).unwrap_err();
        assert!(matches!(e, XtermError::Stub(_)), "{e}");
        assert!(e.to_string().contains("node-xterm"));
        let e = load(&[missing]).unwrap_err();
        assert!(matches!(e, XtermError::Missing(_)), "{e}");
        assert!(e.to_string().contains("console_xterm_dir"));
        // A browser build is served as it is, with the shim.
        let build = dir.path().join("build");
        write(&build, "xterm.js", "window.Terminal = function () {};\n");
        write(&build, "xterm.css", "");
        let x = load(&[build]).unwrap();
        assert!(std::str::from_utf8(&x.js)
            .unwrap()
            .contains("window.CaasXterm"));
    }

    #[test]
    fn debians_node_xterm_when_installed() {
        let dir = Path::new(DEFAULT_XTERM_DIRS[0]);
        if !dir.join("public/Terminal.js").is_file() {
            return; // not installed here; the end-to-end test needs it
        }
        let x = load(&[dir.to_path_buf()]).unwrap();
        let js = std::str::from_utf8(&x.js).unwrap();
        assert!(js.contains("defs[\"InputHandler\"]") && js.contains("defs[\"addons/fit/fit\"]"));
    }
}
