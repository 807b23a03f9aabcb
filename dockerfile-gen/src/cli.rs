//! The command line: `plan`, `generate`, `build`, `run`, `down`; output for people (default)
//! or scripts (`-o json`); exit codes 0 ok, 1 failure, 64 usage or bad input.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::build::{self, BuildOptions};
use crate::detect::project::{self, LocateOptions};
use crate::detect::{self, Kind, Source};
use crate::error::{DetectError, Error, EXIT_USAGE};
use crate::output::{self, Data, OutputFile};
use crate::plan::SETTINGS_IN_CONTEXT;
use crate::plan::{Plan, StartMode};
use crate::planner::{self, HealthChoice, PlanOptions};
use crate::progress::{Progress, ProgressMode};
use crate::render;
use crate::run::{self, RunOptions, Selector};
use crate::{central, context, docker, forward};

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
    /// In a project directory: the build output to containerise (relative to the project),
    /// when several have an equal claim or another one is wanted.
    #[arg(long, value_name = "PATH")]
    pub artifact: Option<PathBuf>,
    /// Compile the project (Maven) in a builder stage of the Dockerfile, even if it was built.
    #[arg(long)]
    pub compile: bool,
    /// Maven settings for the builder stage (your mirror or repository manager); only the
    /// builder stage reads it, it never reaches the image.
    #[arg(long, value_name = "FILE", conflicts_with = "maven_mirror")]
    pub maven_settings: Option<PathBuf>,
    /// A Maven mirror for the builder stage (a build argument of that stage only); the
    /// builder stage then has network.
    #[arg(long, value_name = "URL")]
    pub maven_mirror: Option<String>,
    /// Let the builder stage use the network (e.g. for the repositories of --maven-settings).
    #[arg(long)]
    pub build_network: bool,
}

impl PlanArgs {
    /// The arguments for a path alone (what `down` needs to find the app's name).
    pub fn for_path(path: PathBuf) -> Self {
        Self {
            path,
            kind: None,
            start: None,
            port: None,
            name: None,
            volumes: Vec::new(),
            health: None,
            base_tag: "latest".into(),
            artifact: None,
            compile: false,
            maven_settings: None,
            maven_mirror: None,
            build_network: false,
        }
    }
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
        /// Extra environment for the app (repeatable; wins over --env-file).
        #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// Environment for the app from a file (KEY=VALUE lines, `#` comments): the
        /// environment-specific values the image must not contain.
        #[arg(long, value_name = "FILE")]
        env_file: Option<PathBuf>,
        /// Forward 127.0.0.1:HOST_PORT to the app's port for your browser, in the foreground
        /// until Ctrl-C (the environment stays up until `down`). (`--port` is the port the app
        /// listens on.)
        #[arg(short = 'p', long, value_name = "HOST_PORT")]
        publish: Option<u16>,
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
            let built = build_image(
                &engine.docker,
                &plan,
                &src,
                &tag,
                &build_options(&args, &tag, no_cache),
                &progress,
            )
            .await?;
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
            env_file,
            publish,
            timeout,
            keep_on_failure,
            output,
        } => {
            // Bad input first: nothing is built or started when these are wrong.
            let mut all_env = match &env_file {
                Some(f) => run::read_env_file(f)?,
                None => Vec::new(),
            };
            all_env.extend(env);
            let env = all_env;
            run::check_env(&env)?;
            let listener = match publish {
                Some(p) => Some(forward::listen(p).await?),
                None => None,
            };
            let (plan, src) = make_plan(&args).await?;
            let engine = docker::connect().await?;
            let tag = tag.unwrap_or_else(|| plan.default_tag());
            let central = central::target()?;
            if central.is_some() && listener.is_some() {
                return Err(Error::Usage(
                    "--publish forwards to the local environment; it does not apply with CAAS_URL"
                        .into(),
                ));
            }
            match build::existing_image(&engine.docker, &tag, &plan).await? {
                Some(_) if !rebuild => {
                    progress.stage(&format!("{tag} is up to date with the plan"))
                }
                _ => {
                    build_image(
                        &engine.docker,
                        &plan,
                        &src,
                        &tag,
                        &build_options(&args, &tag, false),
                        &progress,
                    )
                    .await?;
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
            let mut info = info;
            let target = match (&listener, info.port) {
                (Some(l), Some(port)) => {
                    info.local_url = Some(format!(
                        "http://{}/",
                        l.local_addr()
                            .map_err(|e| Error::Usage(format!("--publish: {e}")))?
                    ));
                    Some((info.ip.clone(), port))
                }
                (Some(_), None) => {
                    return Err(Error::Usage(
                        "--publish: the app has no port to forward to; give it with --port".into(),
                    ))
                }
                _ => None,
            };
            match output {
                Format::Json => json_out(w, &info)?,
                Format::Human => out(
                    w,
                    &format!(
                        "{} is up: {}\n  app container {} (image {}), data container {}\n  \
                         network {} is internal: reachable from this host only\n  \
                         remove it with: dockerfile-gen down {}\n{}",
                        plan.name,
                        info.url.clone().unwrap_or_else(|| info.ip.clone()),
                        info.app_container,
                        info.image,
                        info.data_container,
                        info.network,
                        args.path.display(),
                        info.local_url
                            .as_ref()
                            .map(|u| format!("  forwarding {u} to the app until Ctrl-C (the environment stays up)\n"))
                            .unwrap_or_default()
                    ),
                )?,
            }
            w.flush().map_err(Error::Stdout)?;
            if let (Some(listener), Some(target)) = (listener, target) {
                forward::serve(listener, target).await?;
            }
            Ok(())
        }
        Command::Down {
            path,
            all,
            stale,
            output,
        } => {
            if let (Some(t), Some(p), false, false) = (central::target()?, &path, all, stale) {
                let args = PlanArgs::for_path(p.clone());
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

/// Finds the app (in a project directory: its build outputs, or compiling it), detects and
/// plans; with `--base-tag hash` the base image's content-hash tag is resolved through the
/// engine.
pub async fn make_plan(args: &PlanArgs) -> Result<(Plan, Source), Error> {
    let located = project::locate(
        &args.path,
        &LocateOptions {
            artifact: args.artifact.clone(),
            compile: args.compile,
        },
    )?;
    let compiling = located.compile.is_some();
    if !compiling
        && (args.maven_settings.is_some() || args.maven_mirror.is_some() || args.build_network)
    {
        return Err(Error::Usage(format!(
            "--maven-settings, --maven-mirror and --build-network are for compiling, and {} is \
             used as built ({}); add --compile to compile it",
            args.path.display(),
            located
                .info
                .as_ref()
                .map(|i| i.chosen.clone())
                .unwrap_or_else(|| "the path given".into())
        )));
    }
    if let Some(url) = &args.maven_mirror {
        if !["http://", "https://", "file://"]
            .iter()
            .any(|p| url.starts_with(p))
            || url.contains(char::is_whitespace)
        {
            return Err(Error::Usage(format!(
                "--maven-mirror {url:?}: give the mirror's URL (http://, https:// or file://)"
            )));
        }
    }
    let mut src = Source::open(&located.path)?;
    if let Some(f) = &args.maven_settings {
        let text = std::fs::read_to_string(f).map_err(|e| {
            Error::Usage(format!(
                "--maven-settings {}: cannot read it: {e}",
                f.display()
            ))
        })?;
        let name = f.display().to_string();
        roxmltree::Document::parse(&text).map_err(|e| DetectError::BuildFileSyntax {
            file: name.clone(),
            line: e.pos().row,
            column: e.pos().col,
            detail: format!("not well-formed XML: {e}"),
        })?;
        let abs = std::fs::canonicalize(f)
            .map_err(|e| Error::Usage(format!("--maven-settings {}: {e}", f.display())))?;
        src.extra.push((SETTINGS_IN_CONTEXT.to_string(), abs));
    }
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
        maven_settings: args.maven_settings.is_some(),
        maven_mirror: args.maven_mirror.clone(),
        build_network: args.build_network,
    };
    let mut plan = plan_with(&src, args, &opts, &located)?;
    if args.base_tag == "hash" {
        let engine = docker::connect().await?;
        let image = plan.base_image.clone();
        opts.base_tag = Some(build::hash_tag(&engine.docker, &image).await?);
        plan = plan_with(&src, args, &opts, &located)?;
    }
    Ok((plan, src))
}

fn plan_with(
    src: &Source,
    args: &PlanArgs,
    opts: &PlanOptions,
    located: &project::Located,
) -> Result<Plan, Error> {
    let plan = if let Some(c) = &located.compile {
        planner::plan_maven(&c.maven, src, opts, &c.why)?
    } else {
        match detect::detect(src, args.kind) {
            Ok(det) => planner::plan(&det, src, opts)?,
            Err(DetectError::NothingFound { .. })
                if args.start.is_some() && args.kind.is_none() =>
            {
                planner::plan_command(src, opts, args.start.as_deref().unwrap_or_default())?
            }
            Err(e) => return Err(e.into()),
        }
    };
    Ok(match &located.info {
        Some(info) => Plan {
            project: Some(info.clone()),
            ..plan
        }
        .seal(),
        None => plan,
    })
}

/// The build options for `args`: the tag, and the builder stage's build arguments.
pub fn build_options(args: &PlanArgs, tag: &str, nocache: bool) -> BuildOptions {
    let mut build_args = std::collections::HashMap::new();
    if let Some(url) = &args.maven_mirror {
        build_args.insert("MAVEN_MIRROR".to_string(), url.clone());
    }
    BuildOptions {
        tag: tag.to_string(),
        nocache,
        build_args,
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
    let dir =
        match out_dir {
            None if !src.extra.is_empty() => return Err(Error::Usage(
                "--maven-settings with generate needs --out DIR (a complete build context), so \
                 your settings are never written into the project; or use `dockerfile-gen build`"
                    .into(),
            )),
            None => src.root.clone(),
            Some(d) => {
                let same = std::fs::canonicalize(d).ok().as_deref() == Some(src.root.as_path());
                if !same {
                    for f in context::files_for(
                        src,
                        &context::context_copies(&plan.copies, plan.builder.as_ref()),
                    )
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
    opts: &BuildOptions,
    progress: &Progress,
) -> Result<build::Built, Error> {
    let rendered = render::render(plan);
    let files = context::files_for(
        src,
        &context::context_copies(&plan.copies, plan.builder.as_ref()),
    );
    let opts = BuildOptions {
        tag: tag.to_string(),
        ..opts.clone()
    };
    build::build(docker, plan, files, &rendered, &opts, progress).await
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
    if let Some(pr) = &p.project {
        line("project:", pr.dir.clone());
        for b in &pr.build_files {
            line("", format!("{}: {}", b.file, b.fact));
        }
        for (i, c) in pr.candidates.iter().enumerate() {
            line(
                if i == 0 { "outputs:" } else { "" },
                format!(
                    "{}{}: {}",
                    if c.path == pr.chosen { "* " } else { "  " },
                    c.path,
                    c.claim
                ),
            );
        }
        line("chosen:", format!("{} ({})", pr.chosen, pr.why));
    }
    if let Some(b) = &p.builder {
        line(
            "compile:",
            format!(
                "{} in a builder stage on {}; dependencies from {}; {}",
                b.tool,
                b.image,
                b.repository,
                if b.network {
                    "the builder stage has network"
                } else {
                    "no network"
                }
            ),
        );
        for c in b.setup.iter().chain(&b.sources) {
            line("", format!("copy {} -> {} ({})", c.src, c.dest, c.why));
        }
        for st in [&b.resolve, &b.compile] {
            line("", format!("run {} ({})", shell_words(&st.run), st.why));
        }
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
                "{} {}{} -> {} ({})",
                if c.extract { "unpack" } else { "copy" },
                c.from_stage
                    .as_ref()
                    .map(|st| format!("stage {st}:"))
                    .unwrap_or_default(),
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
