//! Records the git revision the binaries are built from as `CAAS_GIT_REVISION`.
//!
//! Never fails the build: without git, outside a git checkout, or when git refuses the
//! repository (e.g. "dubious ownership" when the tree belongs to another user), the revision is
//! "unknown". `CAAS_GIT_REVISION` in the environment wins (builds from a source tarball).
//! Reruns only when HEAD moves: it watches HEAD and the ref HEAD points to (loose or packed).

use std::path::{Path, PathBuf};
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=CAAS_GIT_REVISION");
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(rev) = std::env::var("CAAS_GIT_REVISION") {
        if !rev.trim().is_empty() {
            println!("cargo:rustc-env=CAAS_GIT_REVISION={}", rev.trim());
            return;
        }
    }
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let revision = git(&dir, &["rev-parse", "--short=12", "HEAD"]);
    if revision.is_some() {
        // HEAD itself (branch switches, detached commits) and what it points to.
        let abs = |p: String| {
            let p = PathBuf::from(p);
            if p.is_absolute() {
                p
            } else {
                dir.join(p)
            }
        };
        if let Some(head) = git(&dir, &["rev-parse", "--git-path", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", abs(head).display());
        }
        if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
            if let Some(loose) = git(&dir, &["rev-parse", "--git-path", &branch]) {
                let loose = abs(loose);
                // A watched path that does not exist reruns the script every build; watch
                // packed-refs instead while the ref is packed.
                if loose.exists() {
                    println!("cargo:rerun-if-changed={}", loose.display());
                } else if let Some(parent) = loose.parent().filter(|p| p.exists()) {
                    // The next commit creates the loose ref there.
                    println!("cargo:rerun-if-changed={}", parent.display());
                }
            }
            if let Some(packed) = git(&dir, &["rev-parse", "--git-path", "packed-refs"]) {
                let packed = abs(packed);
                if packed.exists() {
                    println!("cargo:rerun-if-changed={}", packed.display());
                }
            }
        }
    }
    println!(
        "cargo:rustc-env=CAAS_GIT_REVISION={}",
        revision.as_deref().unwrap_or("unknown")
    );
}
