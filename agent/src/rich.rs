//! What the agent knows of the rich ("sofa") image contract (supervisor-images/CONTRACT.md):
//! recognising a rich image, the files it hands in (authorized keys, app packages) as tar
//! archives with admin's ownership, checking a package before it is copied, and reading the
//! in-container monitor's view of the supervisord programs.

use std::io::Read;

use caas_api::ProgramStatus;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Image label naming the contract an image keeps.
pub const CONTRACT_LABEL: &str = "caas.image.contract";
/// Contract versions this agent understands start with this.
pub const CONTRACT_PREFIX: &str = "sofa/";
/// The monitor's status file inside the app container.
pub const MONITOR_STATUS: &str = "/run/caas/status.json";
/// Where a deployed package goes (the newest `*.tgz` there is the app).
pub const PACKAGE_DIR: &str = "home/admin/release/run";
/// Start scripts looked for in a package, in order.
pub const START_SCRIPTS: [&str; 4] = ["bin/start.sh", "bin/startup.sh", "start.sh", "run.sh"];
/// The supervisord program running the app.
pub const APP_PROGRAM: &str = "app";
/// Default of the most a deploy package may unpack to (`deploy_max_unpacked_mib`).
pub const DEFAULT_MAX_UNPACKED_MIB: u64 = 512;
/// uid and gid of `admin` in every rich image.
const ADMIN_ID: u64 = 1000;

/// Whether an image's labels say it keeps a contract this agent understands.
pub fn is_rich_image(labels: &std::collections::BTreeMap<String, String>) -> bool {
    labels
        .get(CONTRACT_LABEL)
        .is_some_and(|v| v.starts_with(CONTRACT_PREFIX))
}

/// Identifies a set of keys, to notice when the pool's keys changed.
pub fn keys_fingerprint(keys: &[String]) -> String {
    hex::encode(&Sha256::digest(keys.join("\n").as_bytes())[..8])
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_uid(ADMIN_ID);
    h.set_gid(ADMIN_ID);
    h.set_mtime(mtime);
    h.set_cksum();
    h
}

/// A tar (to extract at `/`) holding `home/admin/.ssh/authorized_keys`, owned by admin.
pub fn authorized_keys_tar(keys: &[String]) -> std::io::Result<Vec<u8>> {
    let mut text = keys.join("\n");
    text.push('\n');
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = header(tar::EntryType::Directory, 0o700, 0, 0);
    b.append_data(&mut dir, "home/admin/.ssh/", std::io::empty())?;
    let mut file = header(tar::EntryType::Regular, 0o600, text.len() as u64, 0);
    b.append_data(
        &mut file,
        "home/admin/.ssh/authorized_keys",
        text.as_bytes(),
    )?;
    b.into_inner()
}

/// A tar (to extract at `/`) putting `package` at `home/admin/release/run/app.tgz`.
pub fn package_tar(package: &[u8], mtime: u64) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut file = header(tar::EntryType::Regular, 0o644, package.len() as u64, mtime);
    b.append_data(&mut file, format!("{PACKAGE_DIR}/app.tgz"), package)?;
    b.into_inner()
}

/// Why a package cannot be deployed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PackageError {
    #[error("the package is not a gzip file; build it with `tar czf app.tgz -C DIR .`")]
    NotGzip,
    #[error("the package is not a readable gzip tarball ({0}); build it with `tar czf app.tgz -C DIR .`")]
    Corrupt(String),
    #[error(
        "the package has no start script: looked for {} at its root and in its single top-level \
         directory; add one that runs the app in the foreground",
        START_SCRIPTS.join(", ")
    )]
    NoStartScript,
    #[error("the start script {0} is not executable; `chmod +x {0}` before packing")]
    NotExecutable(String),
    #[error(
        "the package unpacks to more than {} MiB, the most this agent accepts \
         (deploy_max_unpacked_mib in its agent.toml); leave logs, caches and build output out of \
         the package, or raise deploy_max_unpacked_mib on the agents",
        limit >> 20
    )]
    TooLarge { limit: u64 },
}

/// A reader that counts what came through it into `read` and fails once that is more than
/// `limit`.
struct Capped<R> {
    inner: R,
    read: std::rc::Rc<std::cell::Cell<u64>>,
    limit: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.read.get().saturating_add(n as u64);
        self.read.set(total);
        if total > self.limit {
            return Err(std::io::Error::other("more than the unpacked size limit"));
        }
        Ok(n)
    }
}

/// What a valid package holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageInfo {
    /// Path of the start script inside the package.
    pub start_script: String,
    pub sha256: String,
}

/// Checks a package the way the image's `sofa-app` will use it: a gzip tarball with an
/// executable start script at its root or in its single top-level directory, unpacking to at
/// most `max_unpacked` bytes. The archive is only streamed through (nothing is written), and the
/// size is counted as it goes: an entry whose header claims more than is left is refused before
/// its content is read, so a zip bomb costs at most `max_unpacked` bytes of decompression.
/// CPU-bound (gunzip and sha256 of up to hundreds of MiB): call it from a blocking thread.
pub fn inspect_package(package: &[u8], max_unpacked: u64) -> Result<PackageInfo, PackageError> {
    if !package.starts_with(&[0x1f, 0x8b]) {
        return Err(PackageError::NotGzip);
    }
    let too_large = PackageError::TooLarge {
        limit: max_unpacked,
    };
    // Everything gunzip produces counts (headers too: a million empty files is a bomb as well);
    // the entries' own sizes count separately, since sparse entries expand beyond the stream.
    let streamed = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let stream = Capped {
        inner: flate2::read::MultiGzDecoder::new(package),
        read: streamed.clone(),
        limit: max_unpacked,
    };
    let mut archive = tar::Archive::new(stream);
    let mut entries: Vec<(String, u32, bool)> = Vec::new();
    let mut unpacked: u64 = 0;
    // The tar reader wraps the errors of the stream, so the cap is told apart by the count.
    let corrupt = |e: std::io::Error| {
        if streamed.get() > max_unpacked {
            PackageError::TooLarge {
                limit: max_unpacked,
            }
        } else {
            PackageError::Corrupt(e.to_string())
        }
    };
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let left = max_unpacked.saturating_sub(unpacked);
        if entry.size() > left {
            return Err(too_large);
        }
        let path = entry.path().map_err(corrupt)?.to_string_lossy().to_string();
        let path = path.trim_start_matches("./").to_string();
        let mode = entry.header().mode().map_err(corrupt)?;
        let is_file = entry.header().entry_type().is_file();
        // Reading to the end checks the compressed data, not only the headers.
        let read = std::io::copy(&mut entry.by_ref().take(left + 1), &mut std::io::sink())
            .map_err(corrupt)?;
        unpacked += read;
        if unpacked > max_unpacked {
            return Err(too_large);
        }
        if !path.is_empty() {
            entries.push((path, mode, is_file));
        }
    }
    let tops: std::collections::BTreeSet<&str> = entries
        .iter()
        .filter_map(|(p, _, _)| p.split('/').next())
        .filter(|p| !p.is_empty())
        .collect();
    let mut roots = vec![String::new()];
    if tops.len() == 1 {
        if let Some(top) = tops.iter().next() {
            roots.push(format!("{top}/"));
        }
    }
    for root in &roots {
        for script in START_SCRIPTS {
            let wanted = format!("{root}{script}");
            if let Some((path, mode, _)) = entries.iter().find(|(p, _, f)| *f && *p == wanted) {
                if mode & 0o111 == 0 {
                    return Err(PackageError::NotExecutable(path.clone()));
                }
                return Ok(PackageInfo {
                    start_script: path.clone(),
                    sha256: hex::encode(Sha256::digest(package)),
                });
            }
        }
    }
    Err(PackageError::NoStartScript)
}

#[derive(Debug, Deserialize)]
struct MonitorFile {
    #[serde(default)]
    programs: Vec<MonitorProgram>,
}

#[derive(Debug, Deserialize)]
struct MonitorProgram {
    name: String,
    state: String,
    #[serde(default)]
    pid: Option<u64>,
    #[serde(default)]
    restarts: u64,
    #[serde(default)]
    description: String,
    #[serde(default)]
    log_tail: Vec<String>,
}

/// The programs in the monitor's status file.
pub fn parse_monitor(bytes: &[u8]) -> Result<Vec<ProgramStatus>, serde_json::Error> {
    let file: MonitorFile = serde_json::from_slice(bytes)?;
    Ok(file
        .programs
        .into_iter()
        .map(|p| ProgramStatus {
            // A running program's description is "pid N, uptime H:MM:SS": it changes every
            // second and would turn every pass into a ZooKeeper write. The pid says it all.
            description: if p.state == "RUNNING" {
                String::new()
            } else {
                p.description
            },
            name: p.name,
            state: p.state,
            restarts: p.restarts,
            pid: p.pid.filter(|pid| *pid > 0),
            log_tail: p.log_tail,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A tar.gz with a start script and one file of `size` zero bytes, streamed (never held
    /// unpacked in memory): it compresses about a thousand to one.
    fn zeros_tgz(size: u64) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(10);
        h.set_cksum();
        b.append_data(&mut h, "app/bin/start.sh", &b"#!/bin/sh\n"[..])
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(size);
        h.set_cksum();
        b.append_data(&mut h, "app/lib/zeros", std::io::repeat(0).take(size))
            .unwrap();
        b.into_inner().unwrap().finish().unwrap()
    }

    /// A tar.gz of `count` files of `size` zero bytes each (no start script needed: the cap
    /// refuses it first).
    fn many_tgz(count: usize, size: u64) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for i in 0..count {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(size);
            h.set_cksum();
            b.append_data(&mut h, format!("app/f{i}"), std::io::repeat(0).take(size))
                .unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn the_unpacked_size_is_capped_while_streaming() {
        // Within the cap: fine, and the sha256 is of the package as sent.
        let fits = zeros_tgz(3 * MIB);
        let info = inspect_package(&fits, 4 * MIB).unwrap();
        assert_eq!(info.start_script, "app/bin/start.sh");
        assert_eq!(info.sha256, hex::encode(Sha256::digest(&fits)));
        // One entry larger than the cap: refused on its header.
        let bomb = zeros_tgz(8 * MIB);
        // A bomb: fifty times smaller than what it unpacks to (the exact size depends on
        // the deflate backend flate2 is built with).
        assert!(
            bomb.len() < (8 * MIB as usize) / 50,
            "{} bytes compressed",
            bomb.len()
        );
        assert_eq!(
            inspect_package(&bomb, 4 * MIB),
            Err(PackageError::TooLarge { limit: 4 * MIB })
        );
        // Many entries that each fit but together do not.
        assert_eq!(
            inspect_package(&many_tgz(10, MIB / 2), 4 * MIB),
            Err(PackageError::TooLarge { limit: 4 * MIB })
        );
        // Many empty files: the headers count too.
        assert_eq!(
            inspect_package(&many_tgz(20_000, 0), 4 * MIB),
            Err(PackageError::TooLarge { limit: 4 * MIB })
        );
        let message = PackageError::TooLarge { limit: 512 * MIB }.to_string();
        assert!(
            message.contains("512 MiB") && message.contains("deploy_max_unpacked_mib"),
            "{message}"
        );
    }

    #[test]
    fn a_header_claiming_a_huge_entry_is_refused_before_reading_it() {
        // A 1 TiB entry of which only the header exists: refused at once, not read as corrupt.
        let mut h = tar::Header::new_gnu();
        h.set_path("app/huge").unwrap();
        h.set_mode(0o644);
        h.set_size(1 << 40);
        h.set_cksum();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, h.as_bytes()).unwrap();
        let package = gz.finish().unwrap();
        assert_eq!(
            inspect_package(&package, 512 * MIB),
            Err(PackageError::TooLarge { limit: 512 * MIB })
        );
    }

    #[test]
    fn a_second_gzip_member_is_checked_too() {
        // gzip(1) in the container reads every member; so does the check. A first member with
        // a start script and a second one with more data than the cap must not pass.
        let mut first = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(10);
        h.set_cksum();
        first
            .append_data(&mut h, "bin/start.sh", &b"#!/bin/sh\n"[..])
            .unwrap();
        let mut first = first.into_inner().unwrap();
        first.truncate(first.len() - 1024); // without the end-of-archive blocks
        let mut second = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(2 * MIB);
        h.set_cksum();
        second
            .append_data(&mut h, "lib/zeros", std::io::repeat(0).take(2 * MIB))
            .unwrap();
        let second = second.into_inner().unwrap();
        let mut package = Vec::new();
        for part in [first, second] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, &part).unwrap();
            package.extend(gz.finish().unwrap());
        }
        assert_eq!(
            inspect_package(&package, MIB),
            Err(PackageError::TooLarge { limit: MIB })
        );
    }

    fn tgz(entries: &[(&str, u32, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, mode, body) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(*mode);
            h.set_size(body.len() as u64);
            h.set_cksum();
            b.append_data(&mut h, path, body.as_bytes()).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn packages_are_checked_like_sofa_app_uses_them() {
        let ok = tgz(&[
            ("app-1.0/bin/start.sh", 0o755, "#!/bin/sh\n"),
            ("app-1.0/conf/a", 0o644, ""),
        ]);
        assert_eq!(
            inspect_package(&ok, MIB).unwrap().start_script,
            "app-1.0/bin/start.sh"
        );
        let root = tgz(&[("./run.sh", 0o755, "x"), ("./lib/a.jar", 0o644, "")]);
        assert_eq!(inspect_package(&root, MIB).unwrap().start_script, "run.sh");
        assert_eq!(
            inspect_package(&tgz(&[("bin/start.sh", 0o644, "x")]), MIB),
            Err(PackageError::NotExecutable("bin/start.sh".into()))
        );
        assert_eq!(
            inspect_package(&tgz(&[("README", 0o644, "x")]), MIB),
            Err(PackageError::NoStartScript)
        );
        assert_eq!(
            inspect_package(b"PK\x03\x04 a zip", MIB),
            Err(PackageError::NotGzip)
        );
        let mut truncated = ok.clone();
        truncated.truncate(ok.len() / 2);
        assert!(matches!(
            inspect_package(&truncated, MIB),
            Err(PackageError::Corrupt(_))
        ));
    }

    #[test]
    fn monitor_status_becomes_program_status() {
        let json = br#"{"contract":"sofa/1","updated_at":1,"programs":[
            {"name":"app","state":"FATAL","pid":0,"restarts":3,"description":"Exited too quickly",
             "exit_status":78,"log_tail":["sofa-app: no start script"]},
            {"name":"sshd","state":"RUNNING","pid":12,"restarts":0,"description":"pid 12"}]}"#;
        let programs = parse_monitor(json).unwrap();
        assert_eq!(programs[0].state, "FATAL");
        assert_eq!(programs[0].pid, None);
        assert_eq!(programs[0].restarts, 3);
        assert_eq!(programs[1].pid, Some(12));
        assert_eq!(
            programs[1].description, "",
            "uptime would change the status every pass"
        );
        assert_eq!(programs[0].description, "Exited too quickly");
    }

    #[test]
    fn keys_tar_is_owned_by_admin() {
        let tar = authorized_keys_tar(&["ssh-ed25519 AAAA k".into()]).unwrap();
        let mut archive = tar::Archive::new(tar.as_slice());
        let entries: Vec<_> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().to_string(),
                    e.header().uid().unwrap(),
                    e.header().mode().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            entries[1],
            ("home/admin/.ssh/authorized_keys".to_string(), 1000, 0o600)
        );
    }
}
