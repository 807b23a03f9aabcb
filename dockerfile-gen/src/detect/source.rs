//! The app as found on disk: one file (a jar, a war, a tarball, a binary) or a directory with
//! the listing of its files. Detectors read the app through this, never through a raw path.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::DetectError;

/// Directories never looked into nor copied: VCS data, caches, local virtualenvs.
pub const IGNORED_DIRS: &[&str] = &[
    ".git",
    ".hg",
    ".svn",
    ".idea",
    ".vscode",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    ".venv",
    "venv",
    "node_modules",
];

/// Files never copied: the generator's own output and editor/OS litter.
pub const IGNORED_FILES: &[&str] = &["Dockerfile", ".dockerignore", ".DS_Store"];

/// Suffixes of files never copied.
pub const IGNORED_SUFFIXES: &[&str] = &[".pyc", ".swp", "~"];

/// How many entries a directory may have before we stop listing (a home directory given by
/// mistake should fail fast, not hash gigabytes).
const MAX_ENTRIES: usize = 200_000;

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Zip,
    Gzip,
    Elf,
    Other,
}

/// One file or directory of a directory source, relative to its root with `/` separators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub rel: String,
    pub is_dir: bool,
    pub is_symlink: bool,
    pub mode: u32,
    pub size: u64,
}

impl Entry {
    pub fn executable(&self) -> bool {
        self.mode & 0o111 != 0
    }
}

/// The shape of the app on disk.
#[derive(Debug, Clone)]
pub enum Shape {
    File { name: String, format: FileFormat },
    Dir { entries: Vec<Entry> },
}

/// The app: where it is, what shape it has. `root` is the build context (the directory itself,
/// or the directory that holds the file).
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    pub root: PathBuf,
    pub shape: Shape,
    /// Files that are part of the build context but not of the app (context path, file on
    /// disk): the Maven settings given with `--maven-settings`.
    pub extra: Vec<(String, PathBuf)>,
}

impl Source {
    /// Opens `path`: a missing path or an empty directory is bad input.
    pub fn open(path: &Path) -> Result<Self, DetectError> {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(DetectError::NotFound(path.to_path_buf()))
            }
            Err(e) => {
                return Err(DetectError::Io {
                    path: path.to_path_buf(),
                    source: e,
                })
            }
        };
        let abs = std::fs::canonicalize(path).map_err(|e| DetectError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        if meta.is_dir() {
            let entries = list_dir(&abs)?;
            if !entries.iter().any(|e| !e.is_dir) {
                return Err(DetectError::EmptyDir(path.to_path_buf()));
            }
            return Ok(Source {
                path: abs.clone(),
                root: abs,
                shape: Shape::Dir { entries },
                extra: Vec::new(),
            });
        }
        let name = abs
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let root = abs.parent().map(Path::to_path_buf).unwrap_or_default();
        let format = sniff(&abs)?;
        Ok(Source {
            path: abs,
            root,
            shape: Shape::File { name, format },
            extra: Vec::new(),
        })
    }

    /// The name the user would recognise: the file name or the directory name.
    pub fn display_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "app".to_string())
    }

    pub fn entries(&self) -> &[Entry] {
        match &self.shape {
            Shape::Dir { entries } => entries,
            Shape::File { .. } => &[],
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.shape, Shape::Dir { .. })
    }

    /// The entry at `rel` (directory sources only).
    pub fn entry(&self, rel: &str) -> Option<&Entry> {
        self.entries().iter().find(|e| e.rel == rel)
    }

    /// A regular file (or symlink to one) at `rel`.
    pub fn file(&self, rel: &str) -> Option<&Entry> {
        self.entry(rel).filter(|e| !e.is_dir)
    }

    pub fn has_dir(&self, rel: &str) -> bool {
        self.entry(rel).is_some_and(|e| e.is_dir)
    }

    /// Files directly in the root directory whose name ends with `suffix`.
    pub fn top_files_ending(&self, suffix: &str) -> Vec<&Entry> {
        self.entries()
            .iter()
            .filter(|e| !e.is_dir && !e.rel.contains('/') && e.rel.ends_with(suffix))
            .collect()
    }

    /// Absolute path of a file relative to the root.
    pub fn abs(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Reads at most `limit` bytes of a file relative to the root.
    pub fn read_limited(&self, rel: &str, limit: u64) -> Result<Vec<u8>, DetectError> {
        read_limited(&self.abs(rel), limit)
    }

    /// Reads a text file relative to the root (at most 1 MiB, lossy UTF-8).
    pub fn read_text(&self, rel: &str) -> Result<String, DetectError> {
        let bytes = self.read_limited(rel, 1 << 20)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

pub fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, DetectError> {
    let io = |e| DetectError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let file = File::open(path).map_err(io)?;
    let mut buf = Vec::new();
    file.take(limit).read_to_end(&mut buf).map_err(io)?;
    Ok(buf)
}

/// Whether a path component or file name is left out of listings and build contexts.
pub fn ignored(name: &str, is_dir: bool) -> bool {
    if is_dir {
        IGNORED_DIRS.contains(&name)
    } else {
        IGNORED_FILES.contains(&name) || IGNORED_SUFFIXES.iter().any(|s| name.ends_with(s))
    }
}

pub(crate) fn list_dir(root: &Path) -> Result<Vec<Entry>, DetectError> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let io = |e| DetectError::Io {
            path: dir.clone(),
            source: e,
        };
        for item in std::fs::read_dir(&dir).map_err(io)? {
            let item = item.map_err(io)?;
            let name = item.file_name().to_string_lossy().into_owned();
            let meta = std::fs::symlink_metadata(item.path()).map_err(io)?;
            let is_symlink = meta.file_type().is_symlink();
            // A symlink counts as what it points to; a dangling one as a file.
            let target = if is_symlink {
                std::fs::metadata(item.path()).ok()
            } else {
                Some(meta.clone())
            };
            let is_dir = target.as_ref().is_some_and(|m| m.is_dir()) && !is_symlink;
            if ignored(&name, is_dir || target.as_ref().is_some_and(|m| m.is_dir())) {
                continue;
            }
            let rel = if prefix.is_empty() {
                name
            } else {
                format!("{prefix}/{name}")
            };
            let m = target.unwrap_or(meta);
            out.push(Entry {
                rel: rel.clone(),
                is_dir,
                is_symlink,
                mode: m.permissions().mode() & 0o7777,
                size: if is_dir { 0 } else { m.len() },
            });
            if is_dir {
                stack.push((item.path(), rel));
            }
            if out.len() > MAX_ENTRIES {
                return Err(DetectError::Io {
                    path: root.to_path_buf(),
                    source: std::io::Error::other(format!(
                        "more than {MAX_ENTRIES} files: this does not look like one app's directory"
                    )),
                });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// Reads the magic bytes of a file.
pub fn sniff(path: &Path) -> Result<FileFormat, DetectError> {
    let head = read_limited(path, 4)?;
    Ok(format_of(&head))
}

pub fn format_of(head: &[u8]) -> FileFormat {
    match head {
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => FileFormat::Zip,
        [0x1f, 0x8b, ..] => FileFormat::Gzip,
        [0x7f, b'E', b'L', b'F', ..] => FileFormat::Elf,
        _ => FileFormat::Other,
    }
}

/// Describes unknown leading bytes for an error message ("a zip archive", "plain tar", ...).
pub fn describe_head(head: &[u8]) -> String {
    match format_of(head) {
        FileFormat::Zip => "it is a zip archive".to_string(),
        FileFormat::Elf => "it is an ELF binary".to_string(),
        FileFormat::Gzip => "it is gzip".to_string(),
        FileFormat::Other if head.len() >= 262 && &head[257..262] == b"ustar" => {
            "it is an uncompressed tar archive".to_string()
        }
        FileFormat::Other if head.starts_with(b"BZh") => "it is bzip2-compressed".to_string(),
        FileFormat::Other if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) => {
            "it is xz-compressed".to_string()
        }
        FileFormat::Other if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) => {
            "it is zstd-compressed".to_string()
        }
        FileFormat::Other if head.is_empty() => "it is empty".to_string(),
        FileFormat::Other => format!(
            "it starts with bytes {}",
            head.iter()
                .take(4)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn missing_path_and_empty_dir_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            Source::open(&missing),
            Err(DetectError::NotFound(_))
        ));
        std::fs::create_dir(dir.path().join("empty")).unwrap();
        std::fs::create_dir(dir.path().join("empty/sub")).unwrap();
        std::fs::write(dir.path().join("empty/Dockerfile"), "FROM x").unwrap();
        assert!(matches!(
            Source::open(&dir.path().join("empty")),
            Err(DetectError::EmptyDir(_))
        ));
    }

    #[test]
    fn listing_skips_vcs_and_caches_and_is_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "b.txt",
            "a/x.py",
            ".git/HEAD",
            "a/__pycache__/x.pyc",
            "a/y.pyc",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x").unwrap();
        }
        let src = Source::open(dir.path()).unwrap();
        let rels: Vec<_> = src.entries().iter().map(|e| e.rel.as_str()).collect();
        assert_eq!(rels, ["a", "a/x.py", "b.txt"]);
    }

    #[test]
    fn sniffs_formats() {
        assert_eq!(format_of(b"PK\x03\x04rest"), FileFormat::Zip);
        assert_eq!(format_of(&[0x1f, 0x8b, 8, 0]), FileFormat::Gzip);
        assert_eq!(format_of(b"\x7fELF"), FileFormat::Elf);
        assert_eq!(format_of(b"hello"), FileFormat::Other);
        assert!(describe_head(b"BZh91AY").contains("bzip2"));
    }
}
