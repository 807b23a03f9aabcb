//! Every way dockerfile-gen can fail, grouped by stage, with the exit code each maps to
//! (0 ok, 1 failure, 64 usage or bad input).

use std::path::PathBuf;

/// Exit code for bad input or a bad command line (sysexits' `EX_USAGE`).
pub const EXIT_USAGE: u8 = 64;
/// Exit code for everything else that failed.
pub const EXIT_FAILURE: u8 = 1;

/// The app could not be read or is not something dockerfile-gen can containerise.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("{} does not exist; give the path of the app (a jar, a war, a release tarball or the app's directory)", .0.display())]
    NotFound(PathBuf),

    #[error("{} is empty: there is no app to containerise; point at the directory that holds the app's files", .0.display())]
    EmptyDir(PathBuf),

    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{file} is a corrupt jar (not a readable zip archive: {detail}); rebuild it (e.g. `jar --create` or your build tool) or copy it again")]
    CorruptJar { file: String, detail: String },

    #[error("{file} has no Main-Class in META-INF/MANIFEST.MF, so it is a library, not an executable jar; build it with a Main-Class (e.g. `jar --create --main-class=com.example.Main ...`) or give the start command with --start")]
    NoMainClass { file: String },

    #[error(
        "{file}: Main-Class {class} is not in the jar (no {entry}); fix the manifest or the build"
    )]
    MainClassMissing {
        file: String,
        class: String,
        entry: String,
    },

    #[error("{file} needs Java {needed} (class file version {major}), but caas/sofa-jdk17 has Java 17; compile with `--release 17`")]
    JavaTooNew {
        file: String,
        major: u16,
        needed: u16,
    },

    #[error("{file} is a corrupt war (not a readable zip archive: {detail}); rebuild it or copy it again")]
    CorruptWar { file: String, detail: String },

    #[error("{file} is not a web application: it has no WEB-INF/ directory (WEB-INF/web.xml, WEB-INF/classes or WEB-INF/lib); package the war with its WEB-INF/, or if it is an executable jar, rename it to .jar")]
    NoWebInf { file: String },

    #[error("{file} is not a gzip-compressed tarball ({found}); the rich images unpack only .tgz packages: recompress it with `tar czf app.tgz -C <dir> .`")]
    NotGzip { file: String, found: String },

    #[error("{file} is a corrupt tarball ({detail}); repack it with `tar czf`")]
    CorruptTarball { file: String, detail: String },

    #[error(
        "start script {script} is not executable (mode {mode:o}); run `chmod +x {script}`{repack}"
    )]
    NotExecutable {
        script: String,
        mode: u32,
        repack: &'static str,
    },

    #[error("{file}: {problem}")]
    BadManifest { file: String, problem: String },

    #[error("several apps of the same kind: {}; point dockerfile-gen at the one to containerise", .files.join(", "))]
    Ambiguous { files: Vec<String> },

    #[error("{kind} app detected ({evidence}), but {why}")]
    Unsupported {
        kind: &'static str,
        evidence: String,
        why: String,
    },

    #[error("--kind {kind} does not match {}: {why}", .path.display())]
    KindMismatch {
        kind: &'static str,
        path: PathBuf,
        why: String,
    },

    #[error("{}", nothing_found(.path, .notes))]
    NothingFound { path: PathBuf, notes: Vec<String> },

    #[error(
        "{file}:{line}:{column}: {detail}; fix the file (it must parse before anything is built)"
    )]
    BuildFileSyntax {
        file: String,
        line: u32,
        column: u32,
        detail: String,
    },

    #[error("{file}: Class-Path entry {entry} points nowhere ({resolved} does not exist); copy the library next to the jar (e.g. `mvn dependency:copy-dependencies -DoutputDirectory=target/lib`) or fix the manifest")]
    ClassPathMissing {
        file: String,
        entry: String,
        resolved: String,
    },

    #[error("{}", ambiguous_artifacts(.root, .candidates))]
    AmbiguousArtifacts {
        root: String,
        candidates: Vec<String>,
    },

    #[error("--artifact {path}: {why}")]
    BadArtifact { path: String, why: String },

    #[error("{file}: {why}")]
    CannotCompile { file: String, why: String },
}

fn ambiguous_artifacts(root: &str, candidates: &[String]) -> String {
    let mut s = format!(
        "{root}: several build outputs have an equal claim to be the app and no build file names one:"
    );
    for c in candidates {
        s.push_str("\n  - ");
        s.push_str(c);
    }
    s.push_str(&format!(
        "\nChoose one with --artifact PATH (e.g. --artifact {})",
        candidates
            .first()
            .map(String::as_str)
            .unwrap_or("target/app.jar")
    ));
    s
}

fn nothing_found(path: &std::path::Path, notes: &[String]) -> String {
    let mut s = format!(
        "no app found in {}. Looked for:\n\
         \x20 - an executable jar (META-INF/MANIFEST.MF with Main-Class, incl. Spring Boot fat jars)\n\
         \x20 - a war file or an exploded war (WEB-INF/)\n\
         \x20 - a release: a .tgz or a directory with bin/start.sh, bin/startup.sh, start.sh, run.sh or a Procfile\n\
         \x20 - a Python app: pyproject.toml with [project.scripts], or requirements.txt with main.py/app.py/__main__.py\n\
         \x20 - a Node app: package.json with scripts.start\n\
         \x20 - a static native binary (ELF without an interpreter)\n\
         \x20 - a static website (index.html)",
        path.display()
    );
    for note in notes {
        s.push_str("\n  note: ");
        s.push_str(note);
    }
    s.push_str(
        "\nTo help it: name the kind with --kind (jar, war, release, python, native, static), \
         or give the start command with --start '<command>'",
    );
    s
}

/// The plan could not be made from what was detected and the flags given.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    BadOption(String),
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writing the generated files failed; nothing was left half-written.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{} already exists; pass --force to overwrite it, or --out <dir> to write elsewhere", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Talking to the Docker engine failed.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error("the Docker engine is not reachable at {host}: {detail}. Is dockerd running, and is DOCKER_HOST right?")]
    Unreachable { host: String, detail: String },
    #[error(
        "DOCKER_HOST={0} is not supported; use unix:///path/to/docker.sock or tcp://host:port"
    )]
    BadHost(String),
    #[error("base image {image} is not in the local Docker engine (nothing can be pulled here); build it with `supervisor-images/build`")]
    BaseImageMissing { image: String },
    #[error("docker {action} failed: {detail}")]
    Api { action: String, detail: String },
}

/// `docker build` ran but failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("the build failed at {step}:\n{output}\nerror: {message}")]
    StepFailed {
        step: String,
        output: String,
        message: String,
    },
    #[error("the build ended without an image id")]
    NoImage,
    #[error("cannot make the build context: {0}")]
    Context(String),
    #[error("the build failed at {step}: Maven dependency {artifact} is not in {repository}; add it to that repository, or name one that has it (--maven-mirror URL or --maven-settings FILE)\n{output}")]
    MavenDependencyMissing {
        step: String,
        artifact: String,
        repository: String,
        output: String,
    },
}

/// The throwaway environment could not be started or did not become healthy.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{0}")]
    Failed(String),
    #[error("the app did not become healthy within {seconds}s ({probe}): {last}\n{diagnosis}")]
    Unhealthy {
        seconds: u64,
        probe: String,
        last: String,
        diagnosis: String,
    },
    #[error("central at {url}: {detail}")]
    Central { url: String, detail: String },
}

/// Any dockerfile-gen failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Detect(#[from] DetectError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Output(#[from] OutputError),
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error("{0}")]
    Usage(String),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Detect(DetectError::Io { .. }) => EXIT_FAILURE,
            Error::Detect(_) | Error::Plan(PlanError::BadOption(_)) | Error::Usage(_) => EXIT_USAGE,
            Error::Output(OutputError::Exists(_)) => EXIT_USAGE,
            Error::Docker(DockerError::BadHost(_)) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}
