//! The rich ("sofa") images for end-to-end tests: built once per machine by
//! `supervisor-images/build` (content-hashed, flock-serialised, a no-op when up to date), with
//! the agent binary under test providing caas/pause and caas/data. Also SSH key pairs and app
//! packages made on the fly.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context};

/// Path of `supervisor-images/build` in this checkout.
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("supervisor-images")
        .join("build")
}

/// Runs the image build (once per test process) and returns its output.
pub fn ensure_images() -> anyhow::Result<String> {
    static DONE: OnceLock<Result<String, String>> = OnceLock::new();
    DONE.get_or_init(|| run_build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

fn run_build() -> anyhow::Result<String> {
    let agent = crate::binaries::agent()?;
    let out = Command::new(build_script())
        .env("CAAS_AGENT_BIN", &agent)
        .output()
        .context("running supervisor-images/build")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!("supervisor-images/build failed:\n{text}");
    }
    Ok(text)
}

/// An ed25519 key pair in `dir`: (private key path, public key line).
pub fn ssh_keypair(dir: &Path, name: &str) -> anyhow::Result<(PathBuf, String)> {
    let key = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .context("running ssh-keygen (Debian: openssh-client)")?;
    if !status.success() {
        bail!("ssh-keygen failed");
    }
    let public = std::fs::read_to_string(key.with_extension("pub"))?;
    Ok((key, public.trim().to_string()))
}

/// A gzip tarball with the given (path, mode, content) entries.
pub fn tgz(entries: &[(&str, u32, &str)]) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, body) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(*mode);
        h.set_size(body.len() as u64);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, path, body.as_bytes())?;
    }
    let tar = b.into_inner()?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar)?;
    Ok(gz.finish()?)
}

/// A deploy package `dir/<name>.tgz` holding `app/bin/start.sh` (runs `start`) and
/// `app/lib/zeros`, `size` zero bytes. The big file is sparse and the tarball is made by tar and
/// `gzip -1`, so nothing big is written or held in memory: 1 GiB packs to a few MB in seconds.
pub fn zeros_package(dir: &Path, name: &str, size: u64, start: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let tree = dir.join(format!("{name}.tree"));
    std::fs::create_dir_all(tree.join("app/bin"))?;
    std::fs::create_dir_all(tree.join("app/lib"))?;
    let script = tree.join("app/bin/start.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{start}\n"))?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    std::fs::File::create(tree.join("app/lib/zeros"))?.set_len(size)?;
    let out = dir.join(format!("{name}.tgz"));
    let status = Command::new("bash")
        .arg("-c")
        .arg(r#"set -o pipefail; tar -C "$1" -cf - app | gzip -1 > "$2""#)
        .args([
            "bash",
            &tree.display().to_string(),
            &out.display().to_string(),
        ])
        .status()
        .context("running tar | gzip")?;
    std::fs::remove_dir_all(&tree)?;
    anyhow::ensure!(status.success(), "tar | gzip for {name} failed: {status}");
    Ok(out)
}

/// Runs `args` inside the network namespace of process `pid` (a container's).
pub fn in_netns_of(pid: i64, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .args(args)
        .output()
        .context("running nsenter (Debian: util-linux)")
}
