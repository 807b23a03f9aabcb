//! What each package holds, said once for both formats: its metadata, its files (binaries,
//! config, units, docs), its dependencies and the systemd unit its scriptlets manage.

use std::path::{Path, PathBuf};

use crate::error::PackageError;

/// What every package of one build shares.
#[derive(Debug, Clone)]
pub struct Build {
    /// Workspace version, e.g. "0.1.0".
    pub version: String,
    /// Release counter (RPM Release, deb revision).
    pub release: u32,
    pub git_revision: String,
    /// Seconds since the epoch: file times, changelog date.
    pub date: u64,
    /// Lowest glibc the binaries need.
    pub glibc: String,
    /// "Name <email>".
    pub packager: String,
}

impl Build {
    /// The changelog entry text of this build.
    pub fn change(&self) -> String {
        format!(
            "Release {}-{} of caas, built from git revision {}.",
            self.version, self.release, self.git_revision
        )
    }
}

/// Placeholder until the project has a public home: set it here.
pub const URL: &str = "https://caas.example.org/";
pub const LICENSE: &str = "Apache-2.0";

/// What a file is to the package managers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An executable in /usr/bin.
    Binary,
    /// Edited by ops: kept on upgrade (%config(noreplace), a deb conffile).
    Config,
    /// A systemd unit (its directory differs between RPM and deb systems).
    Unit,
    /// Under /usr/share/doc/<package>.
    Doc,
}

#[derive(Debug, Clone)]
pub struct File {
    /// Install path; for units, the unit's file name only.
    pub dest: String,
    pub content: Vec<u8>,
    pub mode: u32,
    pub kind: Kind,
}

#[derive(Debug, Clone)]
pub struct Package {
    pub name: &'static str,
    pub summary: &'static str,
    /// Paragraphs of at most 79 columns per line.
    pub description: &'static str,
    pub files: Vec<File>,
    /// Systemd unit the scriptlets enable, restart and stop.
    pub unit: Option<&'static str>,
    /// RPM Requires beyond the C library (rich dependencies allowed).
    pub rpm_requires: &'static [&'static str],
    /// deb Depends beyond the C library.
    pub deb_depends: &'static [&'static str],
    /// deb Section.
    pub section: &'static str,
}

impl Package {
    /// Directories the package owns (created on install, removed when empty).
    pub fn owned_dirs(&self) -> Vec<String> {
        let mut dirs = vec![format!("/usr/share/doc/{}", self.name)];
        if self.files.iter().any(|f| f.kind == Kind::Config) {
            dirs.push("/etc/caas".to_string());
        }
        dirs
    }
}

fn read(path: PathBuf) -> Result<Vec<u8>, PackageError> {
    std::fs::read(&path).map_err(|source| PackageError::Read { path, source })
}

/// The three packages, reading binaries from `bin_dir`, agent.toml and central.toml from
/// `config_dir` and the rest from `root`.
pub fn packages(
    root: &Path,
    bin_dir: &Path,
    config_dir: &Path,
) -> Result<Vec<Package>, PackageError> {
    let pkg = root.join("packaging");
    let bin = |name: &str| -> Result<File, PackageError> {
        Ok(File {
            dest: format!("/usr/bin/{name}"),
            content: read(bin_dir.join(name))?,
            mode: 0o755,
            kind: Kind::Binary,
        })
    };
    let config = |name: &str| -> Result<File, PackageError> {
        Ok(File {
            dest: format!("/etc/caas/{name}"),
            content: read(config_dir.join(name))?,
            mode: 0o644,
            kind: Kind::Config,
        })
    };
    let unit = |name: &str| -> Result<File, PackageError> {
        Ok(File {
            dest: name.to_string(),
            content: read(pkg.join(name))?,
            mode: 0o644,
            kind: Kind::Unit,
        })
    };
    let readme = read(root.join("README.md"))?;
    let docs = |package: &str| -> Vec<File> {
        vec![File {
            dest: format!("/usr/share/doc/{package}/README.md"),
            content: readme.clone(),
            mode: 0o644,
            kind: Kind::Doc,
        }]
    };

    let mut agent_files = vec![
        bin("caas-agent")?,
        config("agent.toml")?,
        unit("caas-agent.service")?,
    ];
    agent_files.extend(docs("caas-agent"));
    let mut central_files = vec![
        bin("caas-central")?,
        config("central.toml")?,
        unit("caas-central.service")?,
        // The image center and registry proxies run Debian's docker-registry; these units are
        // not enabled by the package (each needs its config, from the examples).
        unit("caas-image-center.service")?,
        unit("caas-registry-proxy@.service")?,
    ];
    central_files.extend(docs("caas-central"));
    for example in ["image-center.yml", "registry-proxy.yml"] {
        central_files.push(File {
            dest: format!("/usr/share/doc/caas-central/examples/{example}"),
            content: read(pkg.join(example))?,
            mode: 0o644,
            kind: Kind::Doc,
        });
    }
    let mut cli_files = vec![bin("caas")?];
    cli_files.extend(docs("caas-cli"));

    Ok(vec![
        Package {
            name: "caas-agent",
            summary: "Node agent of caas: runs the node's assigned containers on Docker",
            description: "The caas node agent registers this node in ZooKeeper and runs the \
                          workloads\ncentral assigns to it as Docker containers (sandbox, data \
                          and app), wires\ntheir overlay networks and reports their status. \
                          Containers keep running when\nthe agent stops, restarts or is \
                          upgraded; a restarted agent adopts them.\n\nSet pool and zk in \
                          /etc/caas/agent.toml, then start caas-agent.service.",
            files: agent_files,
            unit: Some("caas-agent.service"),
            rpm_requires: &["(docker-ce or moby-engine or docker)", "nftables"],
            deb_depends: &["docker.io | docker-ce | moby-engine", "nftables"],
            section: "admin",
        },
        Package {
            name: "caas-central",
            summary: "REST API and scheduler of a caas cluster",
            description: "caas central is the stateless REST API and scheduler of a caas \
                          cluster: it\nplaces containers on nodes and records desired state in \
                          ZooKeeper, where all\nstate lives. Run any number of instances \
                          behind one address.\n\nSet zk and admin_token_file in \
                          /etc/caas/central.toml, then start\ncaas-central.service.",
            files: central_files,
            unit: Some("caas-central.service"),
            rpm_requires: &[],
            deb_depends: &[],
            section: "admin",
        },
        Package {
            name: "caas-cli",
            summary: "Command-line tool (caas) that drives caas central",
            description: "caas is the command-line tool ops use to drive caas central: pools, \
                          nodes,\nnetworks, containers and cluster templates.",
            files: cli_files,
            unit: None,
            rpm_requires: &[],
            deb_depends: &[],
            section: "admin",
        },
    ])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_package_is_described_within_79_columns_and_configs_are_marked() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["caas-agent", "caas-central", "caas"] {
            std::fs::write(dir.path().join(name), b"\x7fELF").unwrap();
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let packages = packages(root, dir.path(), &root.join("packaging")).unwrap();
        assert_eq!(packages.len(), 3);
        for p in &packages {
            assert!(p.summary.len() < 80, "{}", p.name);
            for line in p.description.lines() {
                assert!(line.len() <= 79, "{}: {line:?}", p.name);
            }
            for f in &p.files {
                assert_eq!(
                    f.dest.starts_with("/etc/"),
                    f.kind == Kind::Config,
                    "{}",
                    f.dest
                );
            }
            assert_eq!(
                p.unit.is_some(),
                p.files.iter().any(|f| f.kind == Kind::Unit)
            );
        }
    }
}
