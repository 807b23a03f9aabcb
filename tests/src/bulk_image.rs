//! Large deterministic test images, built without any registry: the busybox rootfs (as in
//! [`crate::images`], plus a file naming the image, so no two specs share a layer) and layers of
//! incompressible pseudo-random data from a seeded generator. The image is written as a
//! docker-archive (config and manifest made here, every timestamp 0) straight into
//! `docker load` on the host's engine, and tagged with a hash of everything that goes into it,
//! so it is built once per machine and reused by every later run.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use crate::images::BUSYBOX_PATH;

/// Bumped when the layout below changes, so an old image is not taken for a new one.
const FORMAT: &str = "caas-bulk-image-v1";

/// What goes into an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BulkSpec {
    /// Repository on the host's engine, e.g. `caas-test/bulk-300m`.
    pub repo: String,
    /// Seeds the data (and names the image in its base layer).
    pub seed: u64,
    /// One data layer per entry, with a file of this many pseudo-random bytes.
    pub data_layers: Vec<u64>,
}

impl BulkSpec {
    /// Bytes of pseudo-random data over all layers.
    pub fn data_bytes(&self) -> u64 {
        self.data_layers.iter().sum()
    }
}

/// SplitMix64: tiny, fast, and fixed forever (unlike `rand`'s StdRng, which may change between
/// versions); its output does not compress.
struct SplitMix {
    state: u64,
    left: u64,
    buffer: [u8; 8],
    used: usize,
}

impl SplitMix {
    fn new(seed: u64, len: u64) -> Self {
        Self {
            state: seed,
            left: len,
            buffer: [0; 8],
            used: 8,
        }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Read for SplitMix {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let mut n = 0;
        while n < want {
            if self.used == 8 {
                self.buffer = self.next().to_le_bytes();
                self.used = 0;
            }
            let take = (8 - self.used).min(want - n);
            buf[n..n + take].copy_from_slice(&self.buffer[self.used..self.used + take]);
            self.used += take;
            n += take;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A writer that hashes what goes through it.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn header(size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    h
}

fn dir_header() -> tar::Header {
    let mut h = header(0, 0o755);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_cksum();
    h
}

/// Writes one layer tar into `path`; returns its digest (`sha256:...`, the diff id) and size.
fn write_layer(
    path: &Path,
    fill: impl FnOnce(
        &mut tar::Builder<&mut Hashing<std::io::BufWriter<std::fs::File>>>,
    ) -> anyhow::Result<()>,
) -> anyhow::Result<(String, u64)> {
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = Hashing {
        inner: std::io::BufWriter::with_capacity(1 << 20, file),
        hasher: Sha256::new(),
        len: 0,
    };
    {
        let mut b = tar::Builder::new(&mut out);
        fill(&mut b)?;
        b.finish()?;
    }
    out.flush()?;
    let digest = format!("sha256:{}", hex::encode(out.hasher.finalize_reset()));
    Ok((digest, out.len))
}

fn busybox_layer(
    b: &mut tar::Builder<impl Write>,
    busybox: &[u8],
    applets: &str,
    marker: &str,
) -> anyhow::Result<()> {
    for dir in ["bin", "etc", "data"] {
        b.append_data(&mut dir_header(), format!("{dir}/"), std::io::empty())?;
    }
    let mut tmp = dir_header();
    tmp.set_mode(0o1777);
    tmp.set_cksum();
    b.append_data(&mut tmp, "tmp/", std::io::empty())?;
    b.append_data(
        &mut header(busybox.len() as u64, 0o755),
        "bin/busybox",
        busybox,
    )?;
    for applet in applets.lines() {
        if applet == "busybox" || applet.is_empty() {
            continue;
        }
        let mut h = header(0, 0o777);
        h.set_entry_type(tar::EntryType::Symlink);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    for (path, text) in [
        ("etc/passwd", "root:x:0:0:root:/:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
        ("etc/caas-bulk-image", marker),
    ] {
        b.append_data(&mut header(text.len() as u64, 0o644), path, text.as_bytes())?;
    }
    Ok(())
}

fn docker_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `REPO:<hash>` on the host's engine, built and loaded if missing. Returns the reference.
pub fn ensure(spec: &BulkSpec) -> anyhow::Result<String> {
    let busybox = std::fs::read(BUSYBOX_PATH).with_context(|| {
        format!("{BUSYBOX_PATH} is missing: install Debian's busybox-static (scripts/install-deps does)")
    })?;
    let mut hasher = Sha256::new();
    hasher.update(FORMAT.as_bytes());
    hasher.update(&busybox);
    hasher.update(format!("{spec:?}").as_bytes());
    let tag = hex::encode(hasher.finalize())[..12].to_string();
    let reference = format!("{}:{tag}", spec.repo);
    let present = Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", &reference])
        .output()
        .context("running the docker CLI")?;
    if present.status.success() {
        return Ok(reference);
    }
    let applets = Command::new(BUSYBOX_PATH)
        .arg("--list")
        .output()
        .context("busybox --list")?;
    let applets = String::from_utf8_lossy(&applets.stdout).into_owned();
    let work = tempfile::Builder::new()
        .prefix("caas-bulk-image-")
        .tempdir()?;
    let marker = format!("{reference} seed {}\n", spec.seed);
    let mut layers = vec![write_layer(&work.path().join("0.tar"), |b| {
        busybox_layer(b, &busybox, &applets, &marker)
    })?];
    for (i, &size) in spec.data_layers.iter().enumerate() {
        let seed = spec
            .seed
            .wrapping_mul(0x2545_F491_4F6C_DD1D)
            .wrapping_add(i as u64 + 1);
        layers.push(write_layer(
            &work.path().join(format!("{}.tar", i + 1)),
            |b| {
                let name = format!("data/blob-{}.bin", i + 1);
                b.append_data(&mut header(size, 0o644), name, SplitMix::new(seed, size))?;
                Ok(())
            },
        )?);
    }
    let diff_ids: Vec<&str> = layers.iter().map(|(d, _)| d.as_str()).collect();
    let mut history = vec![serde_json::json!({
        "created": "1970-01-01T00:00:00Z",
        "created_by": "caas-tests bulk_image: busybox-static rootfs",
    })];
    for (i, size) in spec.data_layers.iter().enumerate() {
        history.push(serde_json::json!({
            "created": "1970-01-01T00:00:00Z",
            "created_by": format!("caas-tests bulk_image: /data/blob-{}.bin, {size} pseudo-random bytes", i + 1),
        }));
    }
    let config = serde_json::json!({
        "architecture": docker_arch(),
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/bin"],
            "Cmd": ["/bin/sh"],
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    let config = serde_json::to_vec(&config)?;
    let config_name = format!("{}.json", hex::encode(Sha256::digest(&config)));
    let layer_names: Vec<String> = layers
        .iter()
        .map(|(d, _)| format!("{}/layer.tar", d.trim_start_matches("sha256:")))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": config_name,
        "RepoTags": [reference],
        "Layers": layer_names,
    }]))?;

    let mut load = Command::new("docker")
        .args(["load", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running `docker load`")?;
    let written = (|| -> anyhow::Result<()> {
        let stdin = load.stdin.take().context("docker load's stdin")?;
        let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, stdin));
        b.append_data(
            &mut header(config.len() as u64, 0o644),
            &config_name,
            config.as_slice(),
        )?;
        for (i, name) in layer_names.iter().enumerate() {
            let path = work.path().join(format!("{i}.tar"));
            let file = std::fs::File::open(&path)?;
            let len = file.metadata()?.len();
            if let Some(dir) = name.split('/').next() {
                b.append_data(&mut dir_header(), format!("{dir}/"), std::io::empty())?;
            }
            b.append_data(&mut header(len, 0o644), name, file)?;
        }
        b.append_data(
            &mut header(manifest.len() as u64, 0o644),
            "manifest.json",
            manifest.as_slice(),
        )?;
        b.into_inner()?.flush()?;
        Ok(())
    })();
    let out = load.wait_with_output().context("waiting for docker load")?;
    if !out.status.success() {
        bail!(
            "docker load of {reference}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    written.with_context(|| format!("writing {reference} into docker load"))?;
    Ok(reference)
}

#[cfg(test)]
mod tests {
    use super::SplitMix;
    use std::io::Read;

    #[test]
    fn the_generator_is_fixed_and_stops_at_its_length() {
        let mut a = Vec::new();
        SplitMix::new(7, 21).read_to_end(&mut a).ok();
        assert_eq!(a.len(), 21);
        let mut b = vec![0u8; 21];
        let mut g = SplitMix::new(7, 21);
        // Odd-sized reads give the same stream.
        let (x, y) = b.split_at_mut(5);
        assert_eq!(g.read(x).ok(), Some(5));
        assert_eq!(g.read(y).ok(), Some(16));
        assert_eq!(a, b);
        // SplitMix64's published first output for seed 0.
        assert_eq!(SplitMix::new(0, 8).next(), 0xE220_A839_7B1D_CDAF);
    }
}
