//! `docker build` through bollard: checks the base image is local (nothing can be pulled),
//! streams the build context as a tar while it is written, follows the classic builder's log
//! with a progress bar, labels the image with the plan's hash and detector, and reports a
//! failed build with the failing step and its output. Builds run with network mode `none`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bollard::query_parameters::{BuildImageOptions, BuilderVersion};
use bollard::Docker;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::context::{self, ContextFile};
use crate::docker::{api, is_not_found};
use crate::error::{BuildError, DockerError, Error};
use crate::plan::{Plan, LABEL_PLAN_HASH};
use crate::progress::Progress;
use crate::render::Rendered;

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub tag: String,
    /// Build every step again (`docker build --no-cache`).
    pub nocache: bool,
    /// Values of the builder stage's build arguments (`MAVEN_MIRROR`).
    pub build_args: HashMap<String, String>,
}

/// A finished build.
#[derive(Debug, Clone)]
pub struct Built {
    pub image_id: String,
    pub tag: String,
    pub steps: u64,
    pub context_bytes: u64,
}

/// Fails with a clear message when `image` is not in the local engine.
pub async fn ensure_image(docker: &Docker, image: &str) -> Result<(), DockerError> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Err(DockerError::BaseImageMissing {
            image: image.to_string(),
        }),
        Err(e) => Err(api(format!("inspect image {image}"))(e)),
    }
}

/// The id of `tag` if it exists and was built from this very plan.
pub async fn existing_image(
    docker: &Docker,
    tag: &str,
    plan: &Plan,
) -> Result<Option<String>, DockerError> {
    match docker.inspect_image(tag).await {
        Ok(img) => {
            let hash = img
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(LABEL_PLAN_HASH))
                .cloned();
            Ok((hash.as_deref() == Some(plan.hash.as_str())).then(|| img.id.unwrap_or_default()))
        }
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(api(format!("inspect image {tag}"))(e)),
    }
}

/// Resolves `caas/sofa-x:latest` to its content-hash tag (`caas.image.inputs` label), so a
/// plan can pin the exact base image.
pub async fn hash_tag(docker: &Docker, image: &str) -> Result<String, DockerError> {
    let img = docker.inspect_image(image).await.map_err(|e| {
        if is_not_found(&e) {
            DockerError::BaseImageMissing {
                image: image.to_string(),
            }
        } else {
            api(format!("inspect image {image}"))(e)
        }
    })?;
    let inputs = img
        .config
        .and_then(|c| c.labels)
        .and_then(|l| l.get("caas.image.inputs").cloned())
        .ok_or_else(|| DockerError::Api {
            action: format!("resolve the hash tag of {image}"),
            detail:
                "the image has no caas.image.inputs label; rebuild it with supervisor-images/build"
                    .into(),
        })?;
    Ok(inputs.chars().take(12).collect())
}

/// A `Write` that hands chunks of the tar to the request body as they are produced.
struct ChannelWriter {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
    sent: Arc<AtomicU64>,
}

const CHUNK: usize = 256 * 1024;

impl ChannelWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        let n = chunk.len() as u64;
        self.tx.blocking_send(Ok(chunk)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the engine stopped reading the build context",
            )
        })?;
        self.sent.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Builds the image of `plan` from `files` (the app) and `rendered` (Dockerfile etc.).
pub async fn build(
    docker: &Docker,
    plan: &Plan,
    files: Vec<ContextFile>,
    rendered: &Rendered,
    opts: &BuildOptions,
    progress: &Progress,
) -> Result<Built, Error> {
    ensure_image(docker, &plan.base_image).await?;
    if let Some(b) = &plan.builder {
        ensure_image(docker, &b.image).await?;
    }
    let network = plan.builder.as_ref().is_some_and(|b| b.network);
    progress.stage(&format!("building {} from {}", opts.tag, plan.base_image));

    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let sent = Arc::new(AtomicU64::new(0));
    let generated = rendered.files();
    let writer = ChannelWriter {
        tx: tx.clone(),
        buf: Vec::with_capacity(CHUNK),
        sent: sent.clone(),
    };
    let producer = tokio::task::spawn_blocking(move || {
        let result = context::write_tar(writer, &generated, &files).and_then(|mut w| w.flush());
        if let Err(e) = &result {
            // Makes the request body fail, so the engine drops the build.
            let _ = tx.blocking_send(Err(std::io::Error::new(e.kind(), e.to_string())));
        }
        result.map_err(|e| e.to_string())
    });
    let body = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));

    let options = BuildImageOptions {
        dockerfile: "Dockerfile".into(),
        t: Some(opts.tag.clone()),
        nocache: opts.nocache,
        rm: true,
        forcerm: true,
        // No `labels` here: the classic builder turns each into an extra build step; the
        // Dockerfile's single LABEL carries the plan hash and the detector.
        // No traffic out of the machine unless a builder stage needs its mirror: RUN steps
        // get no network by default.
        networkmode: Some(if network { "default" } else { "none" }.into()),
        buildargs: (!opts.build_args.is_empty()).then(|| opts.build_args.clone()),
        // The classic builder: Docker 20.10 has no BuildKit session support in bollard's path.
        version: BuilderVersion::BuilderV1,
        ..Default::default()
    };
    let mut stream = docker.build_image(options, None, Some(bollard::body_try_stream(body)));

    let mut log = BuildLog::default();
    let mut image_id = None;
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(text) = info.stream.as_deref() {
                    for line in log.feed(text) {
                        if let Some((n, total, instr)) = parse_step(&line) {
                            progress.step(n, total, instr);
                        } else if !is_builder_noise(&line) {
                            progress.log(&line);
                        }
                        if let Some(id) = line.strip_prefix("Successfully built ") {
                            image_id.get_or_insert_with(|| id.trim().to_string());
                        }
                    }
                }
                if let Some(id) = info.aux.as_ref().and_then(|a| a.id.clone()) {
                    image_id = Some(id);
                }
                let message = info.error_detail.as_ref().and_then(|d| d.message.clone());
                if let Some(message) = message {
                    progress.abandon();
                    return Err(log.failure(message).into());
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                progress.abandon();
                return Err(log.failure(error).into());
            }
            Err(e) => {
                progress.abandon();
                // A broken context upload shows up as a failed request: report its cause.
                if let Ok(Err(ctx)) = producer.await {
                    return Err(BuildError::Context(ctx).into());
                }
                return Err(api("build")(e).into());
            }
        }
    }
    if let Ok(Err(ctx)) = producer.await {
        return Err(BuildError::Context(ctx).into());
    }
    let Some(image_id) = image_id else {
        progress.abandon();
        return Err(BuildError::NoImage.into());
    };
    progress.finish(&format!("built {} ({})", opts.tag, short_id(&image_id)));
    Ok(Built {
        image_id,
        tag: opts.tag.clone(),
        steps: log.steps,
        context_bytes: sent.load(Ordering::Relaxed),
    })
}

/// The classic builder's own bookkeeping lines (layer ids, intermediate containers): not
/// worth a line each on the console.
fn is_builder_noise(line: &str) -> bool {
    line.starts_with(" ---> ") || line.starts_with("Removing intermediate container ")
}

fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

/// "Step 3/9 : COPY a b" -> (3, 9, "COPY a b").
pub fn parse_step(line: &str) -> Option<(u64, u64, &str)> {
    let rest = line.strip_prefix("Step ")?;
    let (nums, instr) = rest.split_once(" : ")?;
    let (n, total) = nums.split_once('/')?;
    Some((n.parse().ok()?, total.parse().ok()?, instr))
}

/// The artifact and repository of Maven's "Could not find artifact X in R" (or offline mode's
/// "Cannot access R in offline mode and the artifact X has not been downloaded").
pub fn maven_missing(line: &str) -> Option<(String, String)> {
    if let Some(i) = line.find("Could not find artifact ") {
        let rest = &line[i + "Could not find artifact ".len()..];
        let (artifact, rest) = rest.split_once(" in ")?;
        let repo = rest.split(" -> ").next().unwrap_or(rest).trim();
        return Some((artifact.trim().to_string(), repo.to_string()));
    }
    let i = line.find("Cannot access ")?;
    let rest = &line[i + "Cannot access ".len()..];
    let (repo, rest) = rest.split_once(" in offline mode and the artifact ")?;
    let artifact = rest.split(" has not been downloaded").next()?;
    Some((artifact.trim().to_string(), repo.trim().to_string()))
}

/// The build log split into lines, remembering the current step and its output.
#[derive(Debug, Default)]
pub struct BuildLog {
    partial: String,
    step: Option<String>,
    step_output: Vec<String>,
    steps: u64,
}

impl BuildLog {
    /// Adds streamed text; returns the complete lines.
    pub fn feed(&mut self, text: &str) -> Vec<String> {
        self.partial.push_str(text);
        let mut lines = Vec::new();
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            let line = line.trim_end().to_string();
            if line.is_empty() {
                continue;
            }
            if parse_step(&line).is_some() {
                self.step = Some(line.clone());
                self.step_output.clear();
                self.steps += 1;
            } else {
                self.step_output.push(line.clone());
            }
            lines.push(line);
        }
        lines
    }

    /// The error for a failed build: the failing step and (the tail of) its output.
    pub fn failure(&mut self, message: String) -> BuildError {
        if !self.partial.trim().is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.step_output.push(rest.trim_end().to_string());
        }
        let tail: Vec<&str> = self
            .step_output
            .iter()
            .map(String::as_str)
            .filter(|l| !l.starts_with(" ---> "))
            .collect();
        let step = self
            .step
            .clone()
            .unwrap_or_else(|| "the start of the build".into());
        if let Some((artifact, repository)) = tail.iter().find_map(|l| maven_missing(l)) {
            return BuildError::MavenDependencyMissing {
                step,
                artifact,
                repository,
                output: tail
                    .iter()
                    .filter(|l| l.starts_with("[ERROR]"))
                    .take(10)
                    .map(|l| format!("  | {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            };
        }
        // Maven says what failed in its [ERROR] lines: those, rather than the last lines.
        let errors: Vec<&str> = tail
            .iter()
            .copied()
            .filter(|l| l.starts_with("[ERROR]") && l.len() > "[ERROR] ".len())
            .collect();
        let tail = if errors.is_empty() { tail } else { errors };
        let skip = tail.len().saturating_sub(40);
        BuildError::StepFailed {
            step,
            output: tail[skip..]
                .iter()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n"),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn failing_step_and_its_output() {
        let mut log = BuildLog::default();
        log.feed(
            "Step 1/3 : FROM x\n ---> abc\nStep 2/3 : RUN [\"python3\", \"-m\", \"compileall\"]\n",
        );
        log.feed(" ---> Running in 123\n  File \"a.py\", line 1\nSyntaxError: invalid syn");
        let e = log
            .failure("The command returned a non-zero code: 1".into())
            .to_string();
        assert!(e.contains("Step 2/3 : RUN"), "{e}");
        assert!(e.contains("SyntaxError: invalid syn"), "{e}");
        assert!(!e.contains("Running in"), "{e}");
        assert_eq!(log.steps, 2);
    }

    #[test]
    fn maven_errors_name_the_missing_artifact() {
        let mut log = BuildLog::default();
        log.feed("Step 5/12 : RUN [\"/bin/sh\", \"-c\", \"mvn package\"]\n");
        log.feed("[INFO] Building greeter 1.0\n[ERROR] Failed to execute goal on project greeter: Could not resolve dependencies for project demo:greeter:jar:1.0: Could not find artifact com.acme:missing:jar:1.0 in central (file:///usr/share/maven-repo) -> [Help 1]\n");
        let e = log
            .failure("returned a non-zero code: 1".into())
            .to_string();
        assert!(e.contains("Maven dependency com.acme:missing:jar:1.0 is not in central (file:///usr/share/maven-repo)"), "{e}");
        assert!(e.contains("Step 5/12"), "{e}");
        assert_eq!(
            maven_missing("[ERROR] Cannot access central (https://x) in offline mode and the artifact a:b:jar:1 has not been downloaded from it before."),
            Some(("a:b:jar:1".into(), "central (https://x)".into()))
        );
    }

    #[test]
    fn steps() {
        assert_eq!(parse_step("Step 3/9 : COPY a b"), Some((3, 9, "COPY a b")));
        assert_eq!(parse_step(" ---> x"), None);
    }
}
