//! Locates the project's binaries for end-to-end tests, building them once per test process so
//! a test never runs a stale agent.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context};

fn target_dir() -> anyhow::Result<PathBuf> {
    // Test executables live in target/<profile>/deps/.
    let exe = std::env::current_exe()?;
    let deps = exe.parent().context("test executable has no parent dir")?;
    Ok(deps
        .parent()
        .context("no target profile dir")?
        .to_path_buf())
}

fn build(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let dir = target_dir()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", package, "--bin", bin]);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .context("running cargo build for the test binaries")?;
    if !status.success() {
        bail!("cargo build -p {package} --bin {bin} failed");
    }
    let path = dir.join(bin);
    if !path.exists() {
        bail!("{} missing after build", path.display());
    }
    Ok(path)
}

/// Path of the `caas-agent` binary (built on first use).
pub fn agent() -> anyhow::Result<PathBuf> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| build("caas-agent", "caas-agent").map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

/// Path of the `caas-central` binary (built on first use).
pub fn central() -> anyhow::Result<PathBuf> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| build("caas-central", "caas-central").map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

/// Path of the `caas` CLI binary (built on first use).
pub fn cli() -> anyhow::Result<PathBuf> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| build("caas-cli", "caas").map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(|e| anyhow::anyhow!(e))
}

/// Path of the `dockerfile-gen` binary (built on first use).
pub fn dockerfile_gen() -> anyhow::Result<PathBuf> {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PATH.get_or_init(|| {
        build("caas-dockerfile-gen", "dockerfile-gen").map_err(|e| format!("{e:#}"))
    })
    .clone()
    .map_err(|e| anyhow::anyhow!(e))
}
