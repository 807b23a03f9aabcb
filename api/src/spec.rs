//! `WorkloadSpec`: what should run (image, command, env, limits, volumes), as central writes it
//! into `/caas/assign/<node>/<pool>.<name>` and agents read it. Validation lives here so central
//! and agent refuse the same things with the same words.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::health::HealthCheck;
use crate::name::validate_dns_label;
use crate::quantity::{parse_cpu, parse_memory};
use crate::ValidationError;

/// Where rich images keep their logs (supervisor-images/CONTRACT.md).
pub const RICH_LOGS_DIR: &str = "/home/admin/logs";

/// Most processes one workload may be limited to; beyond this a limit means nothing.
pub const MAX_PIDS: i64 = 4_194_304;

/// Least CPU a limit may ask for: a hundredth of a core, what the engine can enforce.
pub const MIN_CPU_MILLIS: u64 = 10;

/// Desired state of one workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    #[serde(default = "crate::payload_version")]
    pub version: u32,
    pub pool: String,
    pub name: String,
    pub image: String,
    /// Replaces the image's CMD when not empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub restart: RestartPolicy,
    /// User labels, copied onto the app container. Keys under `caas.` are reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Absolute paths inside the container that live in the workload's data container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// Hostname of the sandbox; defaults to the workload name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Runs on a rich ("sofa") image: supervisord keeps the app alive, sshd takes the pool's
    /// keys, and the agent reads the programs' state. Implied by an image labelled
    /// `caas.image.contract=sofa/...`; saying it of any other image is an error.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rich: bool,
    /// Probed by the agent; the result shows in the status. Changing it never restarts the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// Bumped by central on every change; agents report which generation they run.
    #[serde(default)]
    pub generation: u64,
    /// The workload's interfaces (`eth0`, ...), addresses allocated by central. Empty: the
    /// sandbox has no network but loopback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<crate::network::Endpoint>,
    /// The app's root file system is read-only: only its volumes and a `/tmp` tmpfs can be
    /// written. Not for rich images (they write host keys and supervisord's state at start).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only_root: bool,
}

/// Resource limits as written by people (`"500m"`, `"256Mi"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
}

/// Parsed resource limits; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceRequest {
    pub cpu_millis: Option<u64>,
    pub memory_bytes: Option<u64>,
    pub pids: Option<i64>,
}

impl Resources {
    pub fn parse(&self) -> Result<ResourceRequest, ValidationError> {
        let cpu_millis = self
            .cpu
            .as_deref()
            .map(|c| parse_cpu("resources.cpu", c))
            .transpose()?;
        let memory_bytes = self
            .memory
            .as_deref()
            .map(|m| parse_memory("resources.memory", m))
            .transpose()?;
        if let Some(millis) = cpu_millis {
            // The engine cannot enforce less than a hundredth of a CPU (the kernel's smallest
            // CFS quota, 1 ms per 100 ms period); say so before Docker does.
            if millis < MIN_CPU_MILLIS {
                return Err(ValidationError::new(
                    "resources.cpu",
                    format!(
                        "{millis}m is below {MIN_CPU_MILLIS}m, the least CPU the Docker engine can enforce; ask for at least \"{MIN_CPU_MILLIS}m\""
                    ),
                ));
            }
        }
        if let Some(memory) = memory_bytes {
            // Docker refuses less than 6 MiB; say so before Docker does.
            if memory < 6 << 20 {
                return Err(ValidationError::new(
                    "resources.memory",
                    "must be at least 6Mi (the Docker engine's minimum)",
                ));
            }
        }
        if let Some(pids) = self.pids {
            if !(1..=MAX_PIDS).contains(&pids) {
                return Err(ValidationError::new(
                    "resources.pids",
                    format!("{pids} is out of range; use 1..={MAX_PIDS}"),
                ));
            }
        }
        Ok(ResourceRequest {
            cpu_millis,
            memory_bytes,
            pids: self.pids,
        })
    }
}

/// What Docker does when the app exits. The agent does not restart apps itself; it leaves that
/// to the engine so an agent outage never stops restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    Never,
    OnFailure,
    #[default]
    Always,
}

impl WorkloadSpec {
    /// Hostname the sandbox gets.
    pub fn effective_hostname(&self) -> &str {
        self.hostname.as_deref().unwrap_or(&self.name)
    }

    /// Checks everything that can be checked without the engine; the first problem found is
    /// returned with the field it concerns.
    pub fn validate(&self) -> Result<ResourceRequest, ValidationError> {
        if self.version > crate::PAYLOAD_VERSION {
            return Err(ValidationError::new(
                "version",
                format!(
                    "payload version {} is newer than this build understands ({}); upgrade",
                    self.version,
                    crate::PAYLOAD_VERSION
                ),
            ));
        }
        validate_dns_label("pool", &self.pool)?;
        validate_dns_label("name", &self.name)?;
        if let Some(hostname) = &self.hostname {
            validate_dns_label("hostname", hostname)?;
        }
        crate::ImageRef::parse("image", &self.image)?;
        crate::network::validate_endpoints(&self.networks)?;
        for key in self.env.keys() {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(ValidationError::new(
                    format!("env.{key}"),
                    "environment variable names must be non-empty and contain no '=' or NUL",
                ));
            }
        }
        for (key, value) in &self.env {
            refuse_nul(&format!("env.{key}"), value)?;
        }
        for (i, arg) in self.command.iter().enumerate() {
            refuse_nul(&format!("command[{i}]"), arg)?;
        }
        for (key, value) in &self.labels {
            if key.is_empty() || key.starts_with("caas.") {
                return Err(ValidationError::new(
                    format!("labels.{key}"),
                    "label keys must be non-empty and must not start with \"caas.\" (reserved)",
                ));
            }
            refuse_nul(&format!("labels.{key}"), key)?;
            refuse_nul(&format!("labels.{key}"), value)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, path) in self.volumes.iter().enumerate() {
            validate_volume_path(&format!("volumes[{i}]"), path)?;
            if !seen.insert(path.trim_end_matches('/')) {
                return Err(ValidationError::new(
                    format!("volumes[{i}]"),
                    format!("{path:?} is listed twice"),
                ));
            }
        }
        if let Some(check) = &self.health_check {
            check.validate("health_check")?;
        }
        if self.read_only_root && self.rich {
            return Err(ValidationError::new(
                "read_only_root",
                "a rich container writes its SSH host keys and supervisord's state at start, so \
                 its root cannot be read-only; use it for plain apps (volumes and /tmp stay writable)",
            ));
        }
        self.resources.parse()
    }

    /// Hash of everything that shapes the app container; a change means the app is recreated.
    /// Volumes are not part of it: they belong to the data container, which is never recreated
    /// implicitly.
    pub fn app_hash(&self) -> String {
        #[derive(Serialize)]
        struct AppShape<'a> {
            image: &'a str,
            command: &'a [String],
            env: &'a BTreeMap<String, String>,
            resources: &'a Resources,
            restart: RestartPolicy,
            labels: &'a BTreeMap<String, String>,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            rich: bool,
            // Skipped when false, so the hashes of existing specs (and their containers) stay.
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            read_only_root: bool,
        }
        short_hash(&AppShape {
            image: &self.image,
            command: &self.command,
            env: &self.env,
            resources: &self.resources,
            restart: self.restart,
            labels: &self.labels,
            rich: self.rich,
            read_only_root: self.read_only_root,
        })
    }

    /// Hash of what shapes the sandbox (its hostname). Changing it means a new network identity.
    pub fn sandbox_hash(&self) -> String {
        short_hash(&self.effective_hostname())
    }

    /// Hash of the data container's shape (its volume list).
    pub fn data_hash(&self) -> String {
        volumes_hash(&self.volumes)
    }
}

/// A NUL byte ends a C string: the kernel would cut the value there (or the engine refuse the
/// container at every start), so such a value can never run as written.
fn refuse_nul(field: &str, value: &str) -> Result<(), ValidationError> {
    if value.contains('\0') {
        return Err(ValidationError::new(
            field,
            "contains a NUL byte, which a process's arguments and environment cannot carry; remove it",
        ));
    }
    Ok(())
}

/// Hash of a data container's volume list (order and trailing slashes do not matter).
pub fn volumes_hash(volumes: &[String]) -> String {
    let mut volumes: Vec<&str> = volumes.iter().map(|v| v.trim_end_matches('/')).collect();
    volumes.sort_unstable();
    short_hash(&volumes)
}

impl WorkloadSpec {
    /// The directories of the data container: the spec's volumes, plus the log directory of
    /// rich images (`/home/admin/logs`), so logs survive recreating the app.
    pub fn data_volumes(&self, rich: bool) -> Vec<String> {
        let mut volumes = self.volumes.clone();
        if rich
            && !volumes
                .iter()
                .any(|v| v.trim_end_matches('/') == RICH_LOGS_DIR)
        {
            volumes.push(RICH_LOGS_DIR.to_string());
        }
        volumes
    }
}

fn short_hash<T: Serialize>(value: &T) -> String {
    // Serialising plain structs, strings and BTreeMaps cannot fail.
    let json = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..8])
}

/// Image references: `name[:tag][@digest]` with no whitespace. Whether the image exists is the
/// engine's business; this only catches what can never be a reference.
pub fn validate_image(field: &str, image: &str) -> Result<(), ValidationError> {
    if image.is_empty() {
        return Err(ValidationError::new(
            field,
            "is required, e.g. \"caas/app:1.0\"",
        ));
    }
    if image.chars().any(|c| c.is_whitespace() || c.is_control()) || image.len() > 255 {
        return Err(ValidationError::new(
            field,
            format!("{image:?} is not an image reference (no spaces, at most 255 chars)"),
        ));
    }
    if image.chars().any(|c| c.is_ascii_uppercase()) && !image.contains(':') {
        return Err(ValidationError::new(
            field,
            format!("{image:?}: repository names must be lowercase"),
        ));
    }
    Ok(())
}

/// Volume paths are absolute, normalised container paths (Docker would treat anything else as
/// a named volume or a bind mount, which data containers replace).
pub fn validate_volume_path(field: &str, path: &str) -> Result<(), ValidationError> {
    if !path.starts_with('/') {
        return Err(ValidationError::new(
            field,
            format!(
                "{path:?} is not an absolute path; write it as \"/{}\"",
                path.trim_start_matches("./")
            ),
        ));
    }
    if path == "/" || path.split('/').any(|part| part == ".." || part == ".") {
        return Err(ValidationError::new(
            field,
            format!("{path:?} must be a normalised directory below / (no \".\" or \"..\")"),
        ));
    }
    if path.contains(':') || path.contains(',') || path.chars().any(|c| c.is_control()) {
        return Err(ValidationError::new(
            field,
            format!(
                "{path:?} contains ':' or ',' or control characters; data volumes are plain paths"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec() -> WorkloadSpec {
        serde_json::from_value(serde_json::json!({
            "pool": "p1", "name": "web", "image": "busybox:1",
            "resources": {"cpu": "500m", "memory": "64Mi", "pids": 100},
            "volumes": ["/data"]
        }))
        .unwrap()
    }

    #[test]
    fn valid_spec_parses_resources() {
        let req = spec().validate().unwrap();
        assert_eq!(req.cpu_millis, Some(500));
        assert_eq!(req.memory_bytes, Some(64 << 20));
        assert_eq!(req.pids, Some(100));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_value::<WorkloadSpec>(serde_json::json!({
            "pool": "p", "name": "n", "image": "i", "imagee": "typo"
        }))
        .unwrap_err();
        assert!(err.to_string().contains("imagee"), "{err}");
    }

    #[test]
    fn each_bad_field_is_named() {
        type Mutation = Box<dyn Fn(&mut WorkloadSpec)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("name", Box::new(|s| s.name = "Bad_Name".into())),
            (
                "resources.memory",
                Box::new(|s| s.resources.memory = Some("12XB".into())),
            ),
            (
                "resources.cpu",
                Box::new(|s| s.resources.cpu = Some("lots".into())),
            ),
            ("resources.pids", Box::new(|s| s.resources.pids = Some(0))),
            (
                "resources.cpu",
                Box::new(|s| s.resources.cpu = Some("1m".into())),
            ),
            (
                "env.PASSWORD",
                Box::new(|s| {
                    s.env.insert("PASSWORD".into(), "se\0cret".into());
                }),
            ),
            (
                "command[1]",
                Box::new(|s| s.command = vec!["sh".into(), "-c\0".into()]),
            ),
            (
                "labels.team",
                Box::new(|s| {
                    s.labels.insert("team".into(), "a\0b".into());
                }),
            ),
            (
                "read_only_root",
                Box::new(|s| {
                    s.rich = true;
                    s.read_only_root = true;
                }),
            ),
            ("volumes[0]", Box::new(|s| s.volumes = vec!["data".into()])),
            (
                "volumes[1]",
                Box::new(|s| s.volumes = vec!["/a".into(), "/a/".into()]),
            ),
            ("image", Box::new(|s| s.image = "has space".into())),
            (
                "labels.caas.pool",
                Box::new(|s| {
                    s.labels.insert("caas.pool".into(), "x".into());
                }),
            ),
        ];
        for (field, mutate) in cases {
            let mut s = spec();
            mutate(&mut s);
            assert_eq!(s.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn the_least_enforceable_cpu_is_accepted() {
        let mut s = spec();
        s.resources.cpu = Some("10m".into());
        assert_eq!(s.validate().unwrap().cpu_millis, Some(10));
        s.resources.cpu = Some("9m".into());
        let err = s.validate().unwrap_err();
        assert!(err.message.contains("at least \"10m\""), "{err:?}");
    }

    #[test]
    fn a_read_only_root_changes_the_app_hash_only_when_set() {
        let plain = spec();
        let before = plain.app_hash();
        // Serialised without the field, so existing containers keep their hash.
        assert!(!serde_json::to_string(&plain)
            .unwrap()
            .contains("read_only_root"));
        let mut ro = spec();
        ro.read_only_root = true;
        assert_ne!(ro.app_hash(), before);
        assert!(ro.validate().is_ok());
    }

    #[test]
    fn hashes_track_what_they_cover() {
        let a = spec();
        let mut b = spec();
        b.image = "busybox:2".into();
        assert_ne!(a.app_hash(), b.app_hash());
        assert_eq!(a.sandbox_hash(), b.sandbox_hash());
        assert_eq!(a.data_hash(), b.data_hash());
        b.generation = 9;
        let mut c = b.clone();
        c.generation = 10;
        assert_eq!(
            b.app_hash(),
            c.app_hash(),
            "generation alone does not recreate"
        );
    }
}
