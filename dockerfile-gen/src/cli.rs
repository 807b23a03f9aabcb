//! The command line: `plan`, `generate`, `build`, `run`, `down`; output for people (default)
//! or scripts (`-o json`); exit codes 0 ok, 1 failure, 64 usage or bad input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::build::{self, BuildOptions};
use crate::detect::{self, Kind, Source};
use crate::error::{DetectError, Error, EXIT_USAGE};
use crate::output::{self, Data, OutputFile};
use crate::plan::{Plan, StartMode};
use crate::planner::{self, HealthChoice, PlanOptions};
use crate::progress::{Progress, ProgressMode};
use crate::render;
use crate::run::{self, RunOptions, Selector};
use crate::{central, context, docker};

const EXAMPLES: &str = "\
Examples:
  dockerfile-gen plan target/orders.jar              # what was detected, and why
  dockerfile-gen plan ./billing-2.1.tgz -o json      # the plan for scripts
  dockerfile-gen generate ./shop.war --out build/    # Dockerfile + .dockerignore + the war in build/
  dockerfile-gen build ./site -t site:1.0            # build the image (progress on stderr)
  dockerfile-gen run ./greeter                       # build if needed, start, wait for health
  dockerfile-gen down ./greeter                      # remove what `run` started
  dockerfile-gen plan ./legacy --start 'bin/server -c conf/server.xml' --port 9000

Environment:
  DOCKER_HOST   the Docker engine (unix:///path or tcp://host:port; default the local socket)
  CAAS_URL      run/down through caas central instead of the local engine (with CAAS_POOL,
                CAAS_TOKEN); the image is built on the local engine

Exit codes: 0 ok, 1 failure, 64 bad input or usage.";

#[derive(Debug, Parser)]
#[command(
    name = "dockerfile-gen",
    version,
    about = "Detect a legacy app, plan its image on the caas rich base images, write the Dockerfile, build it and try it.",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// How to show progress (on stderr).
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, global = true)]
    pub progress: ProgressMode,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
}

/// Flags that shape the plan (shared by every command that makes one).
#[derive(Debug, Args, Clone)]
pub struct PlanArgs {
    /// The app: a jar, a war, a release tarball (.tgz), a static binary, or the app's directory.
    pub path: PathBuf,
    /// Use only this detector.
    #[arg(long, value_enum)]
    pub kind: Option<Kind>,
    /// The shell command that starts the app, run from the app directory (overrides detection;
    /// lets a directory that nothing recognises be containerised).
    #[arg(long, value_name = "COMMAND")]
    pub start: Option<String>,
    /// The port the app listens on.
    #[arg(long)]
    pub port: Option<u16>,
    /// Name of the app (image and containers); default from the app.
    #[arg(long)]
    pub name: Option<String>,
    /// A data path besides /home/admin/logs (repeatable), kept in the data container.
    #[arg(long = "volume", value_name = "PATH")]
    pub volumes: Vec<String>,
    /// Health check: none, tcp, tcp:PORT, http:/path, http:PORT/path or cmd:COMMAND.
    #[arg(long, value_parser = parse_health)]
    pub health: Option<HealthChoice>,
    /// Base image tag: `latest`, `hash` (the local image's content-hash tag, pinned) or a tag.
    #[arg(long, default_value = "latest", value_name = "TAG")]
    pub base_tag: String,
}

fn parse_health(s: &str) -> Result<HealthChoice, String> {
    s.parse()
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Detect the app and print the plan (base image, files, ports, env, start, health, reasons).
    Plan {
        #[command(flatten)]
        plan: PlanArgs,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Human)]
        output: Format,
    },
    /// Write the Dockerfile and .dockerignore (next to the app, or a self-contained --out dir).
    Generate {
        #[command(flatten)]
        plan: PlanArgs,
        /// Directory to write into; it becomes a complete build context (the app's files are
        /// copied there too). Default: next to the app.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Overwrite an existing Dockerfile/.dockerignore.
        #[arg(long)]
        force: bool,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Human)]
        output: Format,
    },
    /// Build the image through the Docker engine (no network inside the build).
    Build {
        #[command(flatten)]
        plan: PlanArgs,
        /// Image name and tag; default dfgen/<name>:<plan hash>.
        #[arg(short = 't', long)]
        tag: Option<String>,
        /// Build every step again.
        #[arg(long)]
        no_cache: bool,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Human)]
        output: Format,
    },
    /// Build if needed and start a throwaway environment (app + data container on an internal
    /// network), wait until it is healthy and print how to reach it.
    Run {
        #[command(flatten)]
        plan: PlanArgs,
        /// Image name and tag; default dfgen/<name>:<plan hash>.
        #[arg(short = 't', long)]
        tag: Option<String>,
        /// Build again even if an image of this plan exists.
        #[arg(long)]
        rebuild: bool,
        /// Extra environment for the app (repeatable).
        #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Seconds to wait for the health check.
        #[arg(long, default_value_t = 180)]
        timeout: u64,
        /// Keep the environment when it does not become healthy (to look inside).
        #[arg(long)]
        keep_on_failure: bool,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Human)]
        output: Format,
    },
    /// Remove what `run` started (containers with their volumes, networks), found by label.
    #[command(group = clap::ArgGroup::new("which").required(true).args(["path", "all", "stale"]))]
    Down {
        /// The app path given to `run`.
        path: Option<PathBuf>,
        /// Every environment dockerfile-gen started.
        #[arg(long)]
        all: bool,
        /// Environments whose app path no longer exists.
        #[arg(long)]
        stale: bool,
        #[arg(short = 'o', long, value_enum, default_value_t = Format::Human)]
        output: Format,
    },
}

/// Parses, runs and returns the exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => EXIT_USAGE,
            };
            let _ = e.print();
            return code;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dockerfile-gen: cannot start the async runtime: {e}");
            return crate::error::EXIT_FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(run(cli, &mut stdout)) {
        Ok(()) => 0,
        Err(Error::Stdout(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("dockerfile-gen: error: {e}");
            e.exit_code()
        }
    }
}

fn out(w: &mut dyn Write, text: &str) -> Result<(), Error> {
    w.write_all(text.as_bytes()).map_err(Error::Stdout)
}

fn json_out<T: serde::Serialize>(w: &mut dyn Write, v: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(v).map_err(|e| Error::Stdout(e.into()))?;
    out(w, &format!("{text}\n"))
}

/// Runs a parsed command line.
pub async fn run(cli: Cli, w: &mut dyn Write) -> Result<(), Error> {
    let progress = Progress::new(cli.progress);
    match cli.command {
        Command::Plan { plan, output } => {
            let (plan, _) = make_plan(&plan).await?;
            match output {
                Format::Json => json_out(w, &plan),
                Format::Human => out(w, &human_plan(&plan)),
            }
        }
        Command::Generate {
            plan: args,
            out: out_dir,
            force,
            output,
        } => {
            let (plan, src) = make_plan(&args).await?;
            let written = generate(&plan, &src, out_dir.as_deref(), force)?;
            match output {
                Format::Json => json_out(
                    w,
                    &serde_json::json!({
                        "files": written,
                        "plan_hash": plan.hash,
                        "detector": plan.detector,
                    }),
                ),
                Format::Human => {
                    let mut s = format!(
                        "detected {} ({}); wrote:\n",
                        plan.detector,
                        plan.evidence
                            .first()
                            .map(|e| format!("{}: {}", e.file, e.fact))
                            .unwrap_or_default()
                    );
                    for p in &written {
                        s.push_str(&format!("  {}\n", p.display()));
                    }
                    s.push_str(&format!(
                        "next: dockerfile-gen build {} -t {}\n",
                        args.path.display(),
                        plan.default_tag()
                    ));
                    out(w, &s)
                }
            }
        }
        Command::Build {
            plan: args,
            tag,
            no_cache,
            output,
        } => {
            let (plan, src) = make_plan(&args).await?;
            let engine = docker::connect().await?;
            let tag = tag.unwrap_or_else(|| plan.default_tag());
            let built = build_image(&engine.docker, &plan, &src, &tag, no_cache, &progress).await?;
            match output {
                Format::Json => json_out(
                    w,
                    &serde_json::json!({
                        "image": built.tag,
                        "id": built.image_id,
                        "plan_hash": plan.hash,
                        "detector": plan.detector,
                        "steps": built.steps,
                        "context_bytes": built.context_bytes,
                    }),
                ),
                Format::Human => out(w, &format!("{} {}\n", built.tag, built.image_id)),
            }
        }
        Command::Run {
            plan: args,
            tag,
            rebuild,
            env,
            timeout,
            keep_on_failure,
            output,
        } => {
            let (plan, src) = make_plan(&args).await?;
            let engine = docker::connect().await?;
            let tag = tag.unwrap_or_else(|| plan.default_tag());
            let central = central::target()?;
            match build::existing_image(&engine.docker, &tag, &plan).await? {
                Some(_) if !rebuild => {
                    progress.stage(&format!("{tag} is up to date with the plan"))
                }
                _ => {
                    build_image(&engine.docker, &plan, &src, &tag, false, &progress).await?;
                }
            }
            if let Some(t) = central {
                let info = central::up(
                    &t,
                    &plan,
                    &tag,
                    &env,
                    Duration::from_secs(timeout),
                    &progress,
                )
                .await?;
                return match output {
                    Format::Json => json_out(w, &info),
                    Format::Human => out(
                        w,
                        &format!(
                            "{}/{} is {} on node {} (through {})\n  remove it with: dockerfile-gen down {}\n",
                            info.pool,
                            info.name,
                            info.health,
                            info.node,
                            info.central,
                            args.path.display()
                        ),
                    ),
                };
            }
            let info = run::up(
                &engine.docker,
                &plan,
                &tag,
                &args.path,
                &RunOptions {
                    timeout: Duration::from_secs(timeout),
                    env,
                    keep_on_failure,
                },
                &progress,
            )
            .await?;
            match output {
                Format::Json => json_out(w, &info),
                Format::Human => out(
                    w,
                    &format!(
                        "{} is up: {}\n  app container {} (image {}), data container {}\n  \
                         network {} is internal: reachable from this host only\n  \
                         remove it with: dockerfile-gen down {}\n",
                        plan.name,
                        info.url.clone().unwrap_or_else(|| info.ip.clone()),
                        info.app_container,
                        info.image,
                        info.data_container,
                        info.network,
                        args.path.display()
                    ),
                ),
            }
        }
        Command::Down {
            path,
            all,
            stale,
            output,
        } => {
            if let (Some(t), Some(p), false, false) = (central::target()?, &path, all, stale) {
                let args = PlanArgs {
                    path: p.clone(),
                    kind: None,
                    start: None,
                    port: None,
                    name: None,
                    volumes: Vec::new(),
                    health: None,
                    base_tag: "latest".into(),
                };
                let (plan, _) = make_plan(&args).await?;
                central::down(&t, &plan.name).await?;
                return match output {
                    Format::Json => json_out(w, &serde_json::json!({"deleted": [plan.name]})),
                    Format::Human => out(
                        w,
                        &format!("deleted {}/{} (with its data)\n", t.pool, plan.name),
                    ),
                };
            }
            let engine = docker::connect().await?;
            let sel = match (path, all, stale) {
                (_, true, _) => Selector::All,
                (_, _, true) => Selector::Stale,
                (Some(p), _, _) => Selector::Path(p),
                (None, false, false) => {
                    return Err(Error::Usage("give the app path, --all or --stale".into()))
                }
            };
            let report = run::down(&engine.docker, &sel).await?;
            match output {
                Format::Json => json_out(w, &report),
                Format::Human if report.containers.is_empty() && report.networks.is_empty() => {
                    out(w, "nothing to remove\n")
                }
                Format::Human => {
                    let mut s = String::new();
                    for c in &report.containers {
                        s.push_str(&format!("removed container {c}\n"));
                    }
                    for n in &report.networks {
                        s.push_str(&format!("removed network {n}\n"));
                    }
                    out(w, &s)
                }
            }
        }
    }
}

/// Detects and plans; with `--base-tag hash` the base image's content-hash tag is resolved
/// through the engine.
pub async fn make_plan(args: &PlanArgs) -> Result<(Plan, Source), Error> {
    let src = Source::open(&args.path)?;
    let mut opts = PlanOptions {
        name: args.name.clone(),
        port: args.port,
        start: args.start.clone(),
        volumes: args.volumes.clone(),
        health: args.health.clone(),
        base_tag: match args.base_tag.as_str() {
            "latest" | "hash" => None,
            t => Some(t.to_string()),
        },
    };
    let mut plan = plan_with(&src, args, &opts)?;
    if args.base_tag == "hash" {
        let engine = docker::connect().await?;
        let image = plan.base_image.clone();
        opts.base_tag = Some(build::hash_tag(&engine.docker, &image).await?);
        plan = plan_with(&src, args, &opts)?;
    }
    Ok((plan, src))
}

fn plan_with(src: &Source, args: &PlanArgs, opts: &PlanOptions) -> Result<Plan, Error> {
    match detect::detect(src, args.kind) {
        Ok(det) => Ok(planner::plan(&det, src, opts)?),
        Err(DetectError::NothingFound { .. }) if args.start.is_some() && args.kind.is_none() => Ok(
            planner::plan_command(src, opts, args.start.as_deref().unwrap_or_default())?,
        ),
        Err(e) => Err(e.into()),
    }
}

/// Renders and writes the generated files. Next to the app, only the Dockerfile and
/// `.dockerignore`; into `--out`, also copies of the app's files so the directory is a
/// complete build context.
pub fn generate(
    plan: &Plan,
    src: &Source,
    out_dir: Option<&Path>,
    force: bool,
) -> Result<Vec<PathBuf>, Error> {
    let rendered = render::render(plan);
    let mut files: Vec<OutputFile> = rendered
        .files()
        .into_iter()
        .map(|(rel, bytes)| OutputFile {
            rel,
            data: Data::Bytes(bytes),
        })
        .collect();
    let dir = match out_dir {
        None => src.root.clone(),
        Some(d) => {
            let same = std::fs::canonicalize(d).ok().as_deref() == Some(src.root.as_path());
            if !same {
                for f in context::files_for(src, &plan.copies)
                    .into_iter()
                    .filter(|f| !f.is_dir)
                {
                    files.push(OutputFile {
                        rel: f.rel.clone(),
                        data: Data::CopyOf {
                            path: f.abs.clone(),
                            executable: f.executable,
                        },
                    });
                }
            }
            d.to_path_buf()
        }
    };
    Ok(output::write_all(&dir, &files, force)?)
}

/// Renders the plan and builds it.
pub async fn build_image(
    docker: &bollard::Docker,
    plan: &Plan,
    src: &Source,
    tag: &str,
    nocache: bool,
    progress: &Progress,
) -> Result<build::Built, Error> {
    let rendered = render::render(plan);
    let files = context::files_for(src, &plan.copies);
    build::build(
        docker,
        plan,
        files,
        &rendered,
        &BuildOptions {
            tag: tag.to_string(),
            nocache,
        },
        progress,
    )
    .await
}

/// The plan for people.
pub fn human_plan(p: &Plan) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<10} {v}\n"));
    line("app:", format!("{} (from {})", p.name, p.source));
    line("detector:", p.detector.to_string());
    let mut s2 = String::new();
    for e in &p.evidence {
        s2.push_str(&format!("             {}: {}\n", e.file, e.fact));
    }
    s.push_str(&s2);
    let mut line = |k: &str, v: String| s.push_str(&format!("{k:<10} {v}\n"));
    for a in &p.alternatives {
        line("also:", format!("{}: {}", a.kind, a.note));
    }
    line(
        "base:",
        format!("{} (contract {})", p.base_image, p.contract),
    );
    line(
        "start:",
        match (&p.start_mode, &p.command) {
            (_, Some(c)) => format!("command: {}", shell_words(c)),
            (StartMode::Package, None) => {
                "package mode: sofa-app unpacks and runs the start script".into()
            }
            (_, None) => "the base image's command".into(),
        },
    );
    for (i, c) in p.copies.iter().enumerate() {
        line(
            if i == 0 { "files:" } else { "" },
            format!(
                "{} {} -> {} ({})",
                if c.extract { "unpack" } else { "copy" },
                c.src,
                c.dest,
                c.why
            ),
        );
    }
    for (i, b) in p.build_steps.iter().enumerate() {
        line(
            if i == 0 { "steps:" } else { "" },
            format!("as {}: {} ({})", b.user, shell_words(&b.run), b.why),
        );
    }
    line("workdir:", p.workdir.clone());
    line(
        "ports:",
        p.ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    );
    for (i, e) in p.env.iter().enumerate() {
        line(
            if i == 0 { "env:" } else { "" },
            match &e.default {
                Some(d) => format!("{}={d} ({})", e.name, e.why),
                None => format!("{} unset ({})", e.name, e.why),
            },
        );
    }
    line(
        "health:",
        match &p.health {
            Some(h) => format!(
                "{}, every {}s, timeout {}s, unhealthy after {} failures, {}s grace",
                h.probe.describe(),
                h.interval_seconds,
                h.timeout_seconds,
                h.failure_threshold,
                h.start_period_seconds
            ),
            None => "none".into(),
        },
    );
    line("volumes:", p.volumes.join(", "));
    line(
        "content:",
        format!(
            "{} files, {} bytes, sha256 {}",
            p.content.files,
            p.content.bytes,
            &p.content.sha256[..12.min(p.content.sha256.len())]
        ),
    );
    s.push_str("why:\n");
    for r in &p.reasons {
        s.push_str(&format!("  - {r}\n"));
    }
    if !p.warnings.is_empty() {
        s.push_str("warnings:\n");
        for w in &p.warnings {
            s.push_str(&format!("  ! {w}\n"));
        }
    }
    s.push_str(&format!("plan hash: {}\n", p.hash));
    s
}

fn shell_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if w.is_empty() || w.contains(|c: char| c.is_whitespace() || "'\"$;&|()<>".contains(c))
            {
                format!("'{}'", w.replace('\'', "'\\''"))
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
