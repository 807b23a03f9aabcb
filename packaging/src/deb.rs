//! Writes a package as a .deb: an ar archive of debian-binary, control.tar.gz (control,
//! conffiles, md5sums, maintainer scripts) and data.tar.gz, with the Debian copyright and
//! changelog files lintian expects.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use md5::{Digest, Md5};

use crate::error::PackageError;
use crate::spec::{Build, File, Kind, Package, LICENSE, URL};

/// Where Debian bookworm keeps packaged units.
const UNIT_DIR: &str = "/lib/systemd/system";

fn deb_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Debian's RFC 5322 date of `secs` since the epoch (UTC).
fn rfc5322(secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

struct TarWriter {
    tar: tar::Builder<Vec<u8>>,
    mtime: u64,
}

impl TarWriter {
    fn new(mtime: u64) -> Self {
        Self {
            tar: tar::Builder::new(Vec::new()),
            mtime,
        }
    }

    fn header(&self, mode: u32, size: u64, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        let _ = h.set_username("root");
        let _ = h.set_groupname("root");
        h
    }

    fn dir(&mut self, path: &str) -> std::io::Result<()> {
        let mut h = self.header(0o755, 0, tar::EntryType::Directory);
        self.tar.append_data(&mut h, path, std::io::empty())
    }

    fn file(&mut self, path: &str, mode: u32, content: &[u8]) -> std::io::Result<()> {
        let mut h = self.header(mode, content.len() as u64, tar::EntryType::Regular);
        self.tar.append_data(&mut h, path, content)
    }

    fn finish(self) -> std::io::Result<Vec<u8>> {
        self.tar.into_inner()
    }
}

/// The DEP-5 copyright file.
fn copyright(package: &Package) -> String {
    format!(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
         Upstream-Name: caas\n\
         Source: {URL}\n\n\
         Files: *\n\
         Copyright: 2026 The caas authors\n\
         License: {LICENSE}\n\n\
         License: {LICENSE}\n\
         \x20On Debian systems, the full text of the Apache License, Version 2.0 can be\n\
         \x20found in /usr/share/common-licenses/Apache-2.0.\n\
         \x20{} is licensed under the Apache License, Version 2.0.\n",
        package.name
    )
}

fn changelog(package: &Package, build: &Build, version: &str) -> String {
    format!(
        "{} ({version}) unstable; urgency=medium\n\n  * {}\n\n -- {}  {}\n",
        package.name,
        build.change(),
        build.packager,
        rfc5322(build.date)
    )
}

/// The installed files: the package's own plus copyright and changelog.
fn installed(package: &Package, build: &Build, version: &str) -> Vec<File> {
    let mut files: Vec<File> = package
        .files
        .iter()
        .map(|f| match f.kind {
            Kind::Unit => File {
                dest: format!("{UNIT_DIR}/{}", f.dest),
                ..f.clone()
            },
            _ => f.clone(),
        })
        .collect();
    let doc = format!("/usr/share/doc/{}", package.name);
    files.push(File {
        dest: format!("{doc}/copyright"),
        content: copyright(package).into_bytes(),
        mode: 0o644,
        kind: Kind::Doc,
    });
    files.push(File {
        dest: format!("{doc}/changelog.Debian.gz"),
        content: gzip(changelog(package, build, version).as_bytes()),
        mode: 0o644,
        kind: Kind::Doc,
    });
    files.sort_by(|a, b| a.dest.cmp(&b.dest));
    files
}

fn control(package: &Package, build: &Build, version: &str, installed_kib: u64) -> String {
    let mut depends = vec![format!("libc6 (>= {})", build.glibc), "libgcc-s1".into()];
    depends.extend(package.deb_depends.iter().map(|d| d.to_string()));
    let mut long = String::new();
    for line in package.description.lines() {
        if line.is_empty() {
            long.push_str(" .\n");
        } else {
            long.push(' ');
            long.push_str(line);
            long.push('\n');
        }
    }
    format!(
        "Package: {}\nVersion: {version}\nArchitecture: {}\nMaintainer: {}\n\
         Installed-Size: {installed_kib}\nDepends: {}\nSection: {}\nPriority: optional\n\
         Homepage: {URL}\nDescription: {}\n{long}",
        package.name,
        deb_arch(),
        build.packager,
        depends.join(", "),
        package.section,
        package.summary,
    )
}

pub fn write(package: &Package, build: &Build, out: &Path) -> Result<PathBuf, PackageError> {
    let version = format!("{}-{}", build.version, build.release);
    let files = installed(package, build, &version);
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PackageError::Write { path, source }
    };
    let path = out.join(format!("{}_{version}_{}.deb", package.name, deb_arch()));

    // data.tar.gz: every parent directory, then the files.
    let mut dirs = BTreeSet::new();
    for f in &files {
        let mut p = Path::new(&f.dest).parent();
        while let Some(dir) = p.filter(|d| *d != Path::new("/")) {
            dirs.insert(dir.to_string_lossy().into_owned());
            p = dir.parent();
        }
    }
    let mut data = TarWriter::new(build.date);
    data.dir("./").map_err(io(&path))?;
    for dir in &dirs {
        data.dir(&format!(".{dir}/")).map_err(io(&path))?;
    }
    for f in &files {
        data.file(&format!(".{}", f.dest), f.mode, &f.content)
            .map_err(io(&path))?;
    }
    let data = gzip(&data.finish().map_err(io(&path))?);

    // Installed-Size in KiB, as dpkg-gencontrol counts: each file and directory rounded up.
    let installed_kib = files
        .iter()
        .map(|f| (f.content.len() as u64).div_ceil(1024))
        .sum::<u64>()
        + dirs.len() as u64;

    let mut ctl = TarWriter::new(build.date);
    ctl.dir("./").map_err(io(&path))?;
    ctl.file(
        "./control",
        0o644,
        control(package, build, &version, installed_kib).as_bytes(),
    )
    .map_err(io(&path))?;
    let conffiles: String = files
        .iter()
        .filter(|f| f.kind == Kind::Config)
        .map(|f| format!("{}\n", f.dest))
        .collect();
    if !conffiles.is_empty() {
        ctl.file("./conffiles", 0o644, conffiles.as_bytes())
            .map_err(io(&path))?;
    }
    let md5sums: String = files
        .iter()
        .map(|f| {
            let digest = Md5::digest(&f.content);
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            format!("{hex}  {}\n", f.dest.trim_start_matches('/'))
        })
        .collect();
    ctl.file("./md5sums", 0o644, md5sums.as_bytes())
        .map_err(io(&path))?;
    if let Some(unit) = package.unit {
        let [postinst, prerm, postrm] = crate::scripts::deb(unit);
        for (name, text) in [("postinst", postinst), ("prerm", prerm), ("postrm", postrm)] {
            ctl.file(&format!("./{name}"), 0o755, text.as_bytes())
                .map_err(io(&path))?;
        }
    }
    let ctl = gzip(&ctl.finish().map_err(io(&path))?);

    let mut ar = ar::Builder::new(Vec::new());
    for (name, content) in [
        ("debian-binary", b"2.0\n".to_vec()),
        ("control.tar.gz", ctl),
        ("data.tar.gz", data),
    ] {
        let mut h = ar::Header::new(name.as_bytes().to_vec(), content.len() as u64);
        h.set_mode(0o100644);
        h.set_mtime(build.date);
        ar.append(&h, content.as_slice()).map_err(io(&path))?;
    }
    let bytes = ar.into_inner().map_err(io(&path))?;
    std::fs::write(&path, bytes).map_err(io(&path))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc5322() {
        assert_eq!(rfc5322(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322(1_796_622_600), "Mon, 07 Dec 2026 05:50:00 +0000");
        assert_eq!(rfc5322(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }
}
