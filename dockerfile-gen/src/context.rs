//! The build context: which files of the app the plan's copies read, their digest (part of
//! the plan hash, so a changed app means a new image), and the tar stream Docker receives.

use std::io::{Read, Write};
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::detect::source::{list_dir, Source};
use crate::error::PlanError;
use crate::plan::{Builder, Content, Copy};

/// The copies that read the build context: the builder stage's and the final stage's own
/// (copies from a stage read no context).
pub fn context_copies(copies: &[Copy], builder: Option<&Builder>) -> Vec<Copy> {
    let mut out: Vec<Copy> = Vec::new();
    if let Some(b) = builder {
        out.extend(b.setup.iter().cloned());
        out.extend(b.sources.iter().cloned());
    }
    out.extend(copies.iter().filter(|c| c.from_stage.is_none()).cloned());
    out
}

/// One file or directory of the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextFile {
    /// Path inside the context (and in the tar), `/`-separated.
    pub rel: String,
    pub abs: PathBuf,
    pub is_dir: bool,
    pub executable: bool,
    pub size: u64,
}

/// The files the copies read, sorted by path, each once.
pub fn files_for(src: &Source, copies: &[Copy]) -> Vec<ContextFile> {
    let mut out: Vec<ContextFile> = Vec::new();
    let file = |rel: &str, is_dir: bool, executable: bool, size: u64| ContextFile {
        rel: rel.to_string(),
        abs: src.abs(rel),
        is_dir,
        executable,
        size,
    };
    for copy in copies.iter().filter(|c| c.from_stage.is_none()) {
        if let Some((_, abs)) = src.extra.iter().find(|(rel, _)| *rel == copy.src) {
            let size = std::fs::metadata(abs).map_or(0, |m| m.len());
            out.push(ContextFile {
                rel: copy.src.clone(),
                abs: abs.clone(),
                is_dir: false,
                executable: false,
                size,
            });
            continue;
        }
        if copy.src == "." {
            out.extend(
                src.entries()
                    .iter()
                    .map(|e| file(&e.rel, e.is_dir, e.executable(), e.size)),
            );
        } else if let Some(dir) = copy.src.strip_suffix('/') {
            out.push(file(dir, true, true, 0));
            let prefix = format!("{dir}/");
            if src.is_dir() {
                out.extend(
                    src.entries()
                        .iter()
                        .filter(|e| e.rel.starts_with(&prefix))
                        .map(|e| file(&e.rel, e.is_dir, e.executable(), e.size)),
                );
            } else {
                // A directory next to a file source (the lib/ of target/app.jar).
                let entries = list_dir(&src.abs(dir)).unwrap_or_default();
                out.extend(entries.iter().map(|e| {
                    file(
                        &format!("{prefix}{}", e.rel),
                        e.is_dir,
                        e.executable(),
                        e.size,
                    )
                }));
            }
        } else {
            let (exec, size) = match src.entry(&copy.src) {
                Some(e) => (e.executable(), e.size),
                None => {
                    // A file source: its metadata is read at digest time.
                    let meta = std::fs::metadata(src.abs(&copy.src)).ok();
                    (
                        meta.as_ref().is_some_and(|m| {
                            use std::os::unix::fs::PermissionsExt;
                            m.permissions().mode() & 0o111 != 0
                        }),
                        meta.map_or(0, |m| m.len()),
                    )
                }
            };
            // Parent directories of nested files (e.g. lib/ of lib/dep.jar).
            let mut parent = std::path::Path::new(&copy.src).parent();
            while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
                out.push(file(&p.to_string_lossy(), true, true, 0));
                parent = p.parent();
            }
            out.push(file(&copy.src, false, exec, size));
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out.dedup_by(|a, b| a.rel == b.rel);
    out
}

/// Digest of the context files: paths, kinds, the executable bit and contents.
pub fn digest(files: &[ContextFile]) -> Result<Content, PlanError> {
    let mut h = Sha256::new();
    let mut content = Content::default();
    let mut buf = vec![0u8; 64 * 1024];
    for f in files {
        if f.is_dir {
            h.update(b"D\0");
            h.update(f.rel.as_bytes());
            h.update(b"\0");
            continue;
        }
        h.update(if f.executable { b"X\0" } else { b"F\0" });
        h.update(f.rel.as_bytes());
        h.update(b"\0");
        let io = |e| PlanError::Io {
            path: f.abs.clone(),
            source: e,
        };
        let mut file = std::fs::File::open(&f.abs).map_err(io)?;
        let mut len = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            len += n as u64;
        }
        h.update(len.to_le_bytes());
        content.files += 1;
        content.bytes += len;
    }
    content.sha256 = hex::encode(h.finalize());
    Ok(content)
}

/// Writes the build context as a tar: the generated files first, then the app's files.
/// Modes are normalised (0755 for directories and executables, 0644 otherwise) and owners
/// are root: the Dockerfile's `COPY --chown` decides ownership in the image.
pub fn write_tar<W: Write>(
    out: W,
    generated: &[(String, Vec<u8>)],
    files: &[ContextFile],
) -> std::io::Result<W> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    for (name, bytes) in generated {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes.as_slice())?;
    }
    for f in files {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        if f.is_dir {
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_cksum();
            tar.append_data(&mut h, format!("{}/", f.rel), std::io::empty())?;
            continue;
        }
        let file = std::fs::File::open(&f.abs)?;
        let len = file.metadata()?.len();
        h.set_size(len);
        h.set_mode(if f.executable { 0o755 } else { 0o644 });
        h.set_cksum();
        tar.append_data(&mut h, &f.rel, file.take(len))?;
    }
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn digest_changes_with_content_and_exec_bit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "one").unwrap();
        let src = Source::open(dir.path()).unwrap();
        let copies = [Copy {
            src: ".".into(),
            dest: "/x/".into(),
            extract: false,
            from_stage: None,
            why: String::new(),
        }];
        let d1 = digest(&files_for(&src, &copies)).unwrap();
        std::fs::write(dir.path().join("a.txt"), "two").unwrap();
        let d2 = digest(&files_for(&src, &copies)).unwrap();
        assert_ne!(d1.sha256, d2.sha256);
        assert_eq!(d1.files, 1);

        let tar = write_tar(
            Vec::new(),
            &[("Dockerfile".into(), b"FROM x".to_vec())],
            &files_for(&src, &copies),
        )
        .unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["Dockerfile", "a.txt"]);
    }
}
