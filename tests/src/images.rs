//! Local test images, built without any registry: a busybox image `FROM scratch` made from
//! Debian's busybox-static binary and imported into the engine. Tags carry a content hash, so
//! an image is imported once per machine and reused by every later run.

use anyhow::{bail, Context};
use bollard::query_parameters::{CreateImageOptions, TagImageOptions};
use bollard::Docker;
use futures::StreamExt;
use sha2::{Digest, Sha256};

/// Where Debian's busybox-static package installs the binary.
pub const BUSYBOX_PATH: &str = "/bin/busybox";

/// Connects to the local engine with a negotiated API version.
pub async fn docker() -> anyhow::Result<Docker> {
    let docker =
        Docker::connect_with_unix("/var/run/docker.sock", 120, bollard::API_DEFAULT_VERSION)?;
    docker
        .negotiate_version()
        .await
        .context("the Docker engine is not reachable at /var/run/docker.sock")
}

fn busybox_binary() -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(BUSYBOX_PATH).with_context(|| {
        format!("{BUSYBOX_PATH} is missing: install Debian's busybox-static (scripts/install-deps does)")
    })?;
    // A dynamically linked busybox would not run in a scratch image.
    let ldd = std::process::Command::new("file")
        .arg(BUSYBOX_PATH)
        .output();
    if let Ok(out) = ldd {
        if String::from_utf8_lossy(&out.stdout).contains("dynamically linked") {
            bail!(
                "{BUSYBOX_PATH} is dynamically linked; install busybox-static instead of busybox"
            );
        }
    }
    Ok(bytes)
}

fn rootfs(busybox: &[u8]) -> anyhow::Result<Vec<u8>> {
    let applets = std::process::Command::new(BUSYBOX_PATH)
        .arg("--list")
        .output()?;
    let mut b = tar::Builder::new(Vec::new());
    for dir in ["bin", "tmp", "etc", "data", "www"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        h.set_size(0);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, format!("{dir}/"), std::io::empty())?;
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(busybox.len() as u64);
    h.set_mode(0o755);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, "bin/busybox", busybox)?;
    for applet in String::from_utf8_lossy(&applets.stdout).lines() {
        if applet == "busybox" || applet.is_empty() {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_mtime(0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    for (path, text) in [
        ("etc/passwd", "root:x:0:0:root:/:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, path, text.as_bytes())?;
    }
    Ok(b.into_inner()?)
}

/// `caas-test/busybox:<hash>`, imported if missing. Returns the tag.
pub async fn ensure_busybox(docker: &Docker) -> anyhow::Result<String> {
    let busybox = busybox_binary()?;
    let tag = hex::encode(Sha256::digest(&busybox))[..12].to_string();
    let image = format!("caas-test/busybox:{tag}");
    if docker.inspect_image(&image).await.is_ok() {
        return Ok(image);
    }
    let options = CreateImageOptions {
        from_src: Some("-".into()),
        repo: Some("caas-test/busybox".into()),
        tag: Some(tag),
        changes: vec![r#"CMD ["/bin/sh"]"#.into(), "ENV PATH=/bin".into()],
        ..Default::default()
    };
    let body = bollard::body_full(bytes::Bytes::from(rootfs(&busybox)?));
    let mut stream = docker.create_image(Some(options), Some(body), None);
    while let Some(progress) = stream.next().await {
        progress.context("importing the busybox test image")?;
    }
    Ok(image)
}

/// Gives `image` an additional tag `repo:tag` (e.g. to simulate a new app version).
pub async fn tag(docker: &Docker, image: &str, repo: &str, tag: &str) -> anyhow::Result<String> {
    let options = TagImageOptions {
        repo: Some(repo.into()),
        tag: Some(tag.into()),
    };
    docker.tag_image(image, Some(options)).await?;
    Ok(format!("{repo}:{tag}"))
}
