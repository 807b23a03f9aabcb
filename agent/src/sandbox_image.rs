//! The sandbox image (`caas/pause:<hash>`) and the data-container image (`caas/data:<hash>`)
//! without a registry: the agent binary carries the static `pause` program (compiled by build.rs
//! from supervisor-images/pause/pause.c) and imports both into the local engine at start when a
//! tag is missing (`caas-agent import-images` does it on demand). Tags are content hashes, so a
//! new pause program means new tags and old containers keep running on the old ones.

use sha2::{Digest, Sha256};

use crate::runtime::{ContainerRuntime, RuntimeError};

/// The static pause binary.
pub const PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// `caas/pause:<first 12 hex digits of the binary's sha256>`.
pub fn sandbox_image_tag() -> String {
    let digest = Sha256::digest(PAUSE_BINARY);
    format!("caas/pause:{}", &hex::encode(digest)[..12])
}

/// A tar builder holding `/pause`.
fn with_pause() -> Result<tar::Builder<Vec<u8>>, std::io::Error> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(PAUSE_BINARY.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, "pause", PAUSE_BINARY)?;
    Ok(builder)
}

/// A rootfs tarball holding only `/pause`.
pub fn pause_rootfs() -> Result<Vec<u8>, std::io::Error> {
    with_pause()?.into_inner()
}

/// Version of the data image's layout; bump when `data_rootfs` changes.
const DATA_LAYOUT: &str = "data-1";

/// `caas/data:<hash of the pause binary and the layout>`.
pub fn data_image_tag() -> String {
    let mut hasher = Sha256::new();
    hasher.update(PAUSE_BINARY);
    hasher.update(DATA_LAYOUT.as_bytes());
    format!("caas/data:{}", &hex::encode(hasher.finalize())[..12])
}

/// `/pause` plus `/home/admin/logs` owned by admin (uid 1000), so a data volume created there
/// starts out writable by the rich images' admin user.
pub fn data_rootfs() -> Result<Vec<u8>, std::io::Error> {
    let mut builder = with_pause()?;
    for (dir, owner) in [
        ("home/", 0),
        ("home/admin/", 1000),
        ("home/admin/logs/", 1000),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(owner);
        h.set_gid(owner);
        h.set_size(0);
        h.set_mtime(0);
        h.set_cksum();
        builder.append_data(&mut h, dir, std::io::empty())?;
    }
    builder.into_inner()
}

async fn ensure_image<R: ContainerRuntime + ?Sized>(
    runtime: &R,
    tag: String,
    role: &str,
    rootfs: fn() -> Result<Vec<u8>, std::io::Error>,
) -> Result<String, RuntimeError> {
    if runtime.image_exists(&tag).await? {
        return Ok(tag);
    }
    tracing::info!(image = %tag, "importing the {role} image from the agent binary");
    let rootfs = rootfs().map_err(|e| RuntimeError::Refused {
        op: "import",
        target: tag.clone(),
        message: format!("building the {role} rootfs: {e}"),
    })?;
    runtime
        .import_image(
            &tag,
            rootfs,
            vec![
                r#"CMD ["/pause"]"#.to_string(),
                format!("LABEL caas.image={role}"),
            ],
        )
        .await?;
    Ok(tag)
}

/// Makes sure the sandbox and data images exist in the engine; returns their tags.
pub async fn ensure_sandbox_image<R: ContainerRuntime + ?Sized>(
    runtime: &R,
) -> Result<(String, String), RuntimeError> {
    let pause = ensure_image(runtime, sandbox_image_tag(), "pause", pause_rootfs).await?;
    let data = ensure_image(runtime, data_image_tag(), "data", data_rootfs).await?;
    Ok((pause, data))
}
