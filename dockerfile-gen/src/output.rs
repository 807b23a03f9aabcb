//! Writing generated files: all or nothing. Everything is staged in a temporary directory next
//! to the targets and renamed into place; an existing file is never replaced without `force`,
//! and a failure puts back what was there.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::OutputError;

/// What a file is made of.
#[derive(Debug, Clone)]
pub enum Data {
    Bytes(Vec<u8>),
    /// A copy of an app file (for a self-contained `--out` directory).
    CopyOf {
        path: PathBuf,
        executable: bool,
    },
}

#[derive(Debug, Clone)]
pub struct OutputFile {
    /// Path relative to the output directory.
    pub rel: String,
    pub data: Data,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> OutputError + '_ {
    move |e| OutputError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

/// Writes `files` under `dir` atomically. Returns the paths written.
pub fn write_all(
    dir: &Path,
    files: &[OutputFile],
    force: bool,
) -> Result<Vec<PathBuf>, OutputError> {
    let targets: Vec<PathBuf> = files.iter().map(|f| dir.join(&f.rel)).collect();
    if !force {
        if let Some(t) = targets.iter().find(|t| t.symlink_metadata().is_ok()) {
            return Err(OutputError::Exists(t.clone()));
        }
    }
    let created_dir = !dir.exists();
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let result = stage_and_commit(dir, files, &targets);
    if result.is_err() && created_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    result.map(|()| targets)
}

fn stage_and_commit(
    dir: &Path,
    files: &[OutputFile],
    targets: &[PathBuf],
) -> Result<(), OutputError> {
    let staging = tempfile::Builder::new()
        .prefix(".dfgen-")
        .tempdir_in(dir)
        .map_err(io(dir))?;
    let mut staged = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let path = staging.path().join(format!("new-{i}"));
        match &f.data {
            Data::Bytes(bytes) => {
                let mut file = std::fs::File::create(&path).map_err(io(&path))?;
                file.write_all(bytes).map_err(io(&path))?;
                file.sync_all().map_err(io(&path))?;
            }
            Data::CopyOf {
                path: from,
                executable,
            } => {
                std::fs::copy(from, &path).map_err(io(from))?;
                use std::os::unix::fs::PermissionsExt;
                let mode = if *executable { 0o755 } else { 0o644 };
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .map_err(io(&path))?;
            }
        }
        staged.push(path);
    }
    // Commit: move old files aside, new ones in; undo everything on the first failure.
    let mut done: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    for (i, (new, target)) in staged.iter().zip(targets).enumerate() {
        let step = (|| {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let backup = if target.symlink_metadata().is_ok() {
                let b = staging.path().join(format!("old-{i}"));
                std::fs::rename(target, &b).map_err(io(target))?;
                Some(b)
            } else {
                None
            };
            if let Err(e) = std::fs::rename(new, target) {
                if let Some(b) = &backup {
                    let _ = std::fs::rename(b, target);
                }
                return Err(io(target)(e));
            }
            Ok(backup)
        })();
        match step {
            Ok(backup) => done.push((target.clone(), backup)),
            Err(e) => {
                for (t, backup) in done.into_iter().rev() {
                    match backup {
                        Some(b) => {
                            let _ = std::fs::rename(b, &t);
                        }
                        None => {
                            let _ = std::fs::remove_file(&t);
                        }
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn file(rel: &str, text: &str) -> OutputFile {
        OutputFile {
            rel: rel.into(),
            data: Data::Bytes(text.as_bytes().to_vec()),
        }
    }

    #[test]
    fn refuses_to_overwrite_without_force_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "mine").unwrap();
        let err = write_all(
            dir.path(),
            &[file(".dockerignore", "x"), file("Dockerfile", "new")],
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--force"), "{err}");
        assert!(!dir.path().join(".dockerignore").exists());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap(),
            "mine"
        );
        write_all(dir.path(), &[file("Dockerfile", "new")], true).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap(),
            "new"
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no staging dir left: {names:?}");
    }

    #[test]
    fn failed_copy_leaves_no_output() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let err = write_all(
            &out,
            &[
                file("Dockerfile", "x"),
                OutputFile {
                    rel: "app.jar".into(),
                    data: Data::CopyOf {
                        path: dir.path().join("missing.jar"),
                        executable: false,
                    },
                },
            ],
            false,
        );
        assert!(err.is_err());
        assert!(!out.exists());
    }
}
