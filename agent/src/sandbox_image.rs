//! The sandbox image (`caas/pause:<hash>`) without a registry: the agent binary carries the static
//! `pause` program (compiled by build.rs from supervisor-images/pause/pause.c) and imports it into
//! the local engine at start when the tag is missing. The tag is a content hash, so a new pause
//! program means a new tag and old sandboxes keep running on the old one.

use sha2::{Digest, Sha256};

use crate::runtime::{ContainerRuntime, RuntimeError};

/// The static pause binary.
pub const PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

/// `caas/pause:<first 12 hex digits of the binary's sha256>`.
pub fn sandbox_image_tag() -> String {
    let digest = Sha256::digest(PAUSE_BINARY);
    format!("caas/pause:{}", &hex::encode(digest)[..12])
}

/// A rootfs tarball holding only `/pause`.
pub fn pause_rootfs() -> Result<Vec<u8>, std::io::Error> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(PAUSE_BINARY.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, "pause", PAUSE_BINARY)?;
    builder.into_inner()
}

/// Makes sure the sandbox image exists in the engine; returns its tag.
pub async fn ensure_sandbox_image<R: ContainerRuntime + ?Sized>(
    runtime: &R,
) -> Result<String, RuntimeError> {
    let tag = sandbox_image_tag();
    if runtime.image_exists(&tag).await? {
        return Ok(tag);
    }
    tracing::info!(image = %tag, "importing the sandbox image from the agent binary");
    let rootfs = pause_rootfs().map_err(|e| RuntimeError::Refused {
        op: "import",
        target: tag.clone(),
        message: format!("building the pause rootfs: {e}"),
    })?;
    runtime
        .import_image(
            &tag,
            rootfs,
            vec![
                r#"CMD ["/pause"]"#.to_string(),
                "LABEL caas.image=pause".to_string(),
            ],
        )
        .await?;
    Ok(tag)
}
