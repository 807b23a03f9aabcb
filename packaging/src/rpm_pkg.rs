//! Writes a package as an RPM with the `rpm` crate (no rpmbuild): files with their modes and
//! config marking, dependencies, scriptlets and a changelog entry.

use std::path::{Path, PathBuf};

use rpm::{Dependency, FileOptions, PackageBuilder};

use crate::error::PackageError;
use crate::spec::{Build, Kind, Package, LICENSE, URL};

/// Where RPM-based systems keep packaged units.
const UNIT_DIR: &str = "/usr/lib/systemd/system";

/// The RPM architecture of this build.
fn arch() -> &'static str {
    std::env::consts::ARCH
}

/// This machine's name (the RPM BuildHost tag), "localhost" when it cannot be read.
fn build_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

pub fn write(package: &Package, build: &Build, out: &Path) -> Result<PathBuf, PackageError> {
    let date = u32::try_from(build.date).unwrap_or(u32::MAX);
    let config = rpm::BuildConfig::default()
        .compression(rpm::CompressionWithLevel::Gzip(9))
        .source_date(date);
    let mut b = PackageBuilder::new(
        package.name,
        &build.version,
        LICENSE,
        arch(),
        package.summary,
    );
    b.using_config(config)
        .release(build.release.to_string())
        .url(URL)
        .vendor("caas")
        .packager(&build.packager)
        .group("System Environment/Daemons")
        .build_host(build_host())
        .description(package.description)
        .add_changelog_entry(
            format!("{} - {}-{}", build.packager, build.version, build.release),
            format!("- {}", build.change()),
            date,
        );
    for dir in package.owned_dirs() {
        b.with_dir_entry(FileOptions::dir(dir).permissions(0o755))?;
    }
    for file in &package.files {
        let dest = match file.kind {
            Kind::Unit => format!("{UNIT_DIR}/{}", file.dest),
            _ => file.dest.clone(),
        };
        let options = FileOptions::new(dest).permissions(file.mode as u16);
        let options = match file.kind {
            Kind::Config => options.config().noreplace(),
            Kind::Doc => options.doc(),
            Kind::Binary | Kind::Unit => options,
        };
        b.with_file_contents(file.content.clone(), options)?;
    }
    b.requires(Dependency::greater_eq("glibc", build.glibc.clone()));
    for req in package.rpm_requires {
        b.requires(Dependency::any(*req));
    }
    if let Some(unit) = package.unit {
        let [post, preun, postun] = crate::scripts::rpm(unit);
        b.post_install_script(post)
            .pre_uninstall_script(preun)
            .post_uninstall_script(postun);
        b.requires(Dependency::script_post("systemd"))
            .requires(Dependency::script_preun("systemd"))
            .requires(Dependency::script_postun("systemd"));
    }
    let pkg = b.build()?;
    let path = out.join(format!(
        "{}-{}-{}.{}.rpm",
        package.name,
        build.version,
        build.release,
        arch()
    ));
    pkg.write_file(&path)?;
    Ok(path)
}
