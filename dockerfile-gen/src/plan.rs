//! The plan: everything the renderer and the builder need, as data. It is serialisable (what
//! `dockerfile-gen plan -o json` prints), deterministic for the same app and flags (no
//! timestamps, no absolute paths) and identified by its hash.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::detect::{Alternative, Evidence, Kind};

/// Version of the plan format.
pub const SCHEMA: &str = "dfgen/1";
/// The base image contract the generated images rely on (supervisor-images/CONTRACT.md).
pub const CONTRACT: &str = "sofa/1";

/// Paths of the sofa contract.
pub const HOME: &str = "/home/admin";
pub const LOGS: &str = "/home/admin/logs";
pub const APP_DIR: &str = "/home/admin/app";
pub const RELEASE_RUN: &str = "/home/admin/release/run";
pub const RELEASE_APP: &str = "/home/admin/release/app";
pub const TOMCAT_BASE: &str = "/home/admin/tomcat";
pub const TOMCAT_WEBAPPS: &str = "/home/admin/tomcat/webapps";
pub const TOMCAT_PORT: u16 = 8080;

/// Image labels the generator sets.
pub const LABEL_PLAN_HASH: &str = "caas.dfgen.plan-hash";
pub const LABEL_DETECTOR: &str = "caas.dfgen.detector";
pub const LABEL_VERSION: &str = "caas.dfgen.version";
/// The plan's health check as JSON (the shape of caas workload specs' `health_check`).
pub const LABEL_HEALTH: &str = "caas.dfgen.health";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub schema: String,
    /// Short name of the app (image name, container names).
    pub name: String,
    /// The file or directory name that was given (never an absolute path).
    pub source: String,
    pub detector: Kind,
    pub evidence: Vec<Evidence>,
    pub alternatives: Vec<Alternative>,
    /// Why each decision was taken.
    pub reasons: Vec<String>,
    /// Things the user should check.
    pub warnings: Vec<String>,
    pub base_image: String,
    pub contract: String,
    pub start_mode: StartMode,
    pub copies: Vec<Copy>,
    pub build_steps: Vec<BuildStep>,
    pub workdir: String,
    pub env: Vec<EnvVar>,
    pub ports: Vec<u16>,
    /// The image `CMD` (the app command); `None` in package and base-image mode.
    pub command: Option<Vec<String>>,
    pub health: Option<HealthCheck>,
    pub volumes: Vec<String>,
    /// Digest of every file the Dockerfile copies.
    pub content: Content,
    /// How the app was found in a project directory (build files, outputs, the choice).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<crate::detect::project::ProjectInfo>,
    /// The builder stage that compiles the project (`build --compile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder: Option<Builder>,
    /// sha256 of this plan with an empty `hash` (hex).
    pub hash: String,
}

/// How the app is started under the sofa contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartMode {
    /// The image `CMD` is the app command; supervisord's `app` program runs it as admin.
    Command,
    /// No command: `sofa-app` unpacks the newest `/home/admin/release/run/*.tgz` and runs its
    /// start script.
    Package,
    /// The base image's own command starts the app (Tomcat for wars and sites).
    BaseImage,
}

/// One `COPY` (or `ADD` with `extract`) from the build context into the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Copy {
    /// Path in the build context; `.` or ending in `/` for a directory.
    pub src: String,
    pub dest: String,
    /// Unpack a tarball (`ADD`) instead of copying it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub extract: bool,
    /// Copy from this build stage instead of the build context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_stage: Option<String>,
    pub why: String,
}

/// Name of the builder stage in generated Dockerfiles.
pub const BUILD_STAGE: &str = "build";
/// Where the builder stage compiles.
pub const BUILD_DIR: &str = "/build";
/// Where the build context's Maven settings go (`--maven-settings`): only the builder stage
/// reads the file.
pub const SETTINGS_IN_CONTEXT: &str = ".dfgen-maven-settings.xml";

/// The builder stage: the project is compiled with its own build tool in a build image, and
/// only the artifact reaches the final stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Builder {
    pub tool: String,
    pub image: String,
    /// Copied first (settings, the build file), then `resolve` runs: the dependency layer,
    /// reused while the build file does not change.
    pub setup: Vec<Copy>,
    pub resolve: BuildStep,
    /// The sources, then `compile`.
    pub sources: Vec<Copy>,
    pub compile: BuildStep,
    /// Build arguments the builder stage declares (names only; values are given at build).
    pub args: Vec<String>,
    /// Where dependencies come from.
    pub repository: String,
    /// Whether the builder stage has network (a mirror); otherwise the build runs with `none`.
    pub network: bool,
}

/// A `RUN` step of the build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildStep {
    pub user: String,
    pub run: Vec<String>,
    pub why: String,
}

/// An environment variable the app reads, with the image's default. `default: None` is
/// documented only: each environment sets it at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub default: Option<String>,
    pub why: String,
}

/// The health check, in the shape of caas workload specs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub probe: Probe,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
    /// Grace time after start before failures count.
    pub start_period_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Probe {
    Tcp { port: u16 },
    Http { port: u16, path: String },
    Command(Vec<String>),
}

impl Probe {
    pub fn describe(&self) -> String {
        match self {
            Probe::Tcp { port } => format!("tcp connect to port {port}"),
            Probe::Http { port, path } => format!("http GET :{port}{path} answers 2xx/3xx"),
            Probe::Command(c) => format!("command `{}` exits 0", c.join(" ")),
        }
    }
}

/// What the build copies, summarised.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub files: u64,
    pub bytes: u64,
    pub sha256: String,
}

impl Plan {
    /// Sets `hash` from the rest of the plan.
    pub fn seal(mut self) -> Self {
        self.hash = String::new();
        // Serialising a plain struct of strings and numbers cannot fail.
        let bytes = serde_json::to_vec(&self).unwrap_or_default();
        self.hash = hex::encode(Sha256::digest(&bytes));
        self
    }

    /// The first 12 hex digits of the hash (image tags).
    pub fn short_hash(&self) -> &str {
        self.hash.get(..12).unwrap_or(&self.hash)
    }

    /// The image tag used when none is given.
    pub fn default_tag(&self) -> String {
        format!("dfgen/{}:{}", self.name, self.short_hash())
    }

    /// The first port, which health checks and URLs use.
    pub fn main_port(&self) -> Option<u16> {
        match self.health.as_ref().map(|h| &h.probe) {
            Some(Probe::Tcp { port }) | Some(Probe::Http { port, .. }) => Some(*port),
            _ => self.ports.first().copied(),
        }
    }
}
