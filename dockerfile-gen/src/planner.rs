//! From a detected app (and the user's flags) to a [`Plan`]: base image, files, start command,
//! ports, environment, health check and volumes, each with the reason it was chosen.

use crate::context;
use crate::detect::jar::JarApp;
use crate::detect::python::{Entry, PythonApp};
use crate::detect::release::{Packaging, ReleaseApp, Start};
use crate::detect::source::Source;
use crate::detect::war::{WarApp, WarSource};
use crate::detect::{AppModel, Detection, Kind};
use crate::error::PlanError;
use crate::plan::*;

/// Default port when the app does not say which one it uses.
pub const DEFAULT_PORT: u16 = 8080;

/// The user's choices that shape a plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Image/app name (default: from the app).
    pub name: Option<String>,
    /// The port the app listens on.
    pub port: Option<u16>,
    /// A shell command that starts the app (overrides the detected one).
    pub start: Option<String>,
    /// Data paths besides /home/admin/logs.
    pub volumes: Vec<String>,
    /// Health check override.
    pub health: Option<HealthChoice>,
    /// Tag of the base images (default `latest`).
    pub base_tag: Option<String>,
    /// `--maven-settings FILE` was given (the file goes into the build context).
    pub maven_settings: bool,
    /// `--maven-mirror URL`.
    pub maven_mirror: Option<String>,
    /// `--build-network`: the builder stage may use the network.
    pub build_network: bool,
}

/// `--health` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthChoice {
    None,
    Tcp(Option<u16>),
    Http(Option<u16>, String),
    Command(String),
}

impl std::str::FromStr for HealthChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "--health {s:?}: use none, tcp, tcp:PORT, http:/path, http:PORT/path or cmd:COMMAND"
            )
        };
        if s == "none" {
            return Ok(HealthChoice::None);
        }
        if s == "tcp" {
            return Ok(HealthChoice::Tcp(None));
        }
        if let Some(p) = s.strip_prefix("tcp:") {
            return p
                .parse()
                .map(|p| HealthChoice::Tcp(Some(p)))
                .map_err(|_| bad());
        }
        if let Some(rest) = s.strip_prefix("http:") {
            let (port, path) = match rest.find('/') {
                Some(0) => (None, rest.to_string()),
                Some(i) => (
                    Some(rest[..i].parse().map_err(|_| bad())?),
                    rest[i..].to_string(),
                ),
                None if rest.is_empty() => (None, "/".to_string()),
                None => (Some(rest.parse().map_err(|_| bad())?), "/".to_string()),
            };
            return Ok(HealthChoice::Http(port, path));
        }
        if let Some(cmd) = s.strip_prefix("cmd:").filter(|c| !c.trim().is_empty()) {
            return Ok(HealthChoice::Command(cmd.to_string()));
        }
        Err(bad())
    }
}

/// What the kind-specific part decides; the common part adds the rest.
struct Draft {
    name: String,
    image: &'static str,
    mode: StartMode,
    copies: Vec<Copy>,
    steps: Vec<BuildStep>,
    workdir: String,
    env: Vec<EnvVar>,
    port: u16,
    command: Option<Vec<String>>,
    probe: Probe,
    start_period: u32,
    reasons: Vec<String>,
    warnings: Vec<String>,
}

fn env(name: &str, default: Option<&str>, why: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        default: default.map(str::to_string),
        why: why.into(),
    }
}

fn copy(src: &str, dest: &str, why: &str) -> Copy {
    Copy {
        src: src.into(),
        dest: dest.into(),
        extract: false,
        from_stage: None,
        why: why.into(),
    }
}

fn port_env(port: u16) -> EnvVar {
    env(
        "PORT",
        Some(&port.to_string()),
        "the port the app listens on (Procfile/12-factor convention); change it per environment if needed",
    )
}

/// Chooses the port: the flag, then what the app says, then the default, with the reason.
fn choose_port(
    opts: &PlanOptions,
    hint: Option<&crate::detect::PortHint>,
    reasons: &mut Vec<String>,
) -> u16 {
    if let Some(p) = opts.port {
        reasons.push(format!("port {p}: given with --port"));
        return p;
    }
    if let Some(h) = hint {
        reasons.push(format!("port {}: found in {}", h.port, h.from));
        return h.port;
    }
    reasons.push(format!(
        "port {DEFAULT_PORT}: the app does not say which port it uses, so the default is assumed \
         (PORT={DEFAULT_PORT} is set for apps that read it); pass --port if it differs"
    ));
    DEFAULT_PORT
}

/// Makes the plan for a detection.
pub fn plan(det: &Detection, src: &Source, opts: &PlanOptions) -> Result<Plan, PlanError> {
    let c = &det.chosen;
    let mut draft = match &c.app {
        AppModel::Jar(app) => jar(app, opts),
        AppModel::War(app) => war(app, opts)?,
        AppModel::Release(app) => release(app, opts),
        AppModel::Python(app) => python(app, opts),
        AppModel::Native(app) => native(&app.file, &app.machine, opts),
        AppModel::Static(app) => static_site(&app.name, &app.dir, opts)?,
        AppModel::Node(_) => {
            return Err(PlanError::BadOption(
                Kind::Node.unsupported().unwrap_or_default().to_string(),
            ))
        }
    };
    if let Some(start) = &opts.start {
        override_start(&mut draft, start);
    }
    finish(draft, c.kind, det, src, opts, None)
}

/// The plan when nothing was detected but the user gave `--start`.
pub fn plan_command(src: &Source, opts: &PlanOptions, start: &str) -> Result<Plan, PlanError> {
    let java = src
        .entries()
        .iter()
        .any(|e| e.rel.ends_with(".jar") || e.rel.ends_with(".class"));
    let mut reasons = vec![if java {
        "base caas/sofa-jdk17: the directory holds .jar/.class files".to_string()
    } else {
        "base caas/sofa-base: no Java found in the directory".to_string()
    }];
    let port = choose_port(opts, None, &mut reasons);
    let src_spec = if src.is_dir() { "." } else { "" };
    let file_name = src.display_name();
    let mut draft = Draft {
        name: src.display_name(),
        image: if java {
            "caas/sofa-jdk17"
        } else {
            "caas/sofa-base"
        },
        mode: StartMode::Command,
        copies: vec![copy(
            if src_spec.is_empty() {
                &file_name
            } else {
                src_spec
            },
            &format!("{APP_DIR}/"),
            "the app's files",
        )],
        steps: Vec::new(),
        workdir: APP_DIR.into(),
        env: vec![port_env(port)],
        port,
        command: None,
        probe: Probe::Tcp { port },
        start_period: 30,
        reasons,
        warnings: Vec::new(),
    };
    override_start(&mut draft, start);
    let det = Detection {
        chosen: crate::detect::Candidate {
            kind: Kind::Command,
            evidence: vec![crate::detect::Evidence::new("--start", start)],
            // Only the kind and evidence are read from here.
            app: AppModel::Static(crate::detect::static_site::StaticApp {
                name: String::new(),
                dir: String::new(),
            }),
        },
        alternatives: Vec::new(),
    };
    finish(draft, Kind::Command, &det, src, opts, None)
}

fn override_start(draft: &mut Draft, start: &str) {
    draft.command = Some(vec!["/bin/sh".into(), "-c".into(), format!("exec {start}")]);
    draft.mode = StartMode::Command;
    draft.reasons.push(format!(
        "start command: given with --start, run by sh in {} (the image's WORKDIR, where sofa-app starts the app)",
        draft.workdir
    ));
}

fn jar(app: &JarApp, opts: &PlanOptions) -> Draft {
    let file_name = app.file.rsplit('/').next().unwrap_or(&app.file).to_string();
    let jar_path = format!("{APP_DIR}/{file_name}");
    let mut reasons = vec![format!(
        "base caas/sofa-jdk17: an executable jar needs a Java runtime{}",
        app.java
            .map(|j| format!(" (compiled for Java {j}, the image has 17)"))
            .unwrap_or_default()
    )];
    let port = choose_port(opts, app.port.as_ref(), &mut reasons);
    let mut copies = vec![copy(&app.file, &jar_path, "the executable jar")];
    let jar_dir = std::path::Path::new(&app.file)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let in_app = |rel: &str| {
        rel.strip_prefix(&jar_dir)
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(rel)
            .to_string()
    };
    if let Some(lib) = &app.lib_dir {
        copies.push(copy(
            &format!("{lib}/"),
            &format!("{APP_DIR}/{}/", in_app(lib)),
            "the libraries next to the jar (copied with it so the app starts)",
        ));
        reasons.push(format!(
            "libraries: {lib}/ is copied with the jar{}",
            if app.class_path.is_empty() {
                " and put on the class path (the manifest has no Class-Path)"
            } else {
                " (the manifest's Class-Path names its jars)"
            }
        ));
    }
    for cp in &app.class_path {
        if app
            .lib_dir
            .as_ref()
            .is_some_and(|lib| cp.starts_with(&format!("{lib}/")))
        {
            continue;
        }
        copies.push(copy(
            cp,
            &format!("{APP_DIR}/{}", in_app(cp)),
            "on the jar's manifest Class-Path",
        ));
    }
    let mut warnings: Vec<String> = Vec::new();
    let mut env_vars = vec![
        port_env(port),
        env(
            "JDK_JAVA_OPTIONS",
            None,
            "extra JVM flags such as -Xmx512m, read by the java launcher itself; set per environment",
        ),
    ];
    let probe = match &app.spring_boot {
        Some(sb) => {
            env_vars.insert(
                1,
                env(
                    "SERVER_PORT",
                    Some(&port.to_string()),
                    "Spring Boot's server.port, from the environment",
                ),
            );
            if sb.actuator {
                reasons.push(
                    "health: http /actuator/health (spring-boot-actuator is packaged)".into(),
                );
                Probe::Http {
                    port,
                    path: "/actuator/health".into(),
                }
            } else {
                reasons.push("health: tcp (no actuator, and / may not answer 2xx)".into());
                Probe::Tcp { port }
            }
        }
        None => {
            reasons.push("health: tcp (nothing says which HTTP path answers)".into());
            Probe::Tcp { port }
        }
    };
    reasons.push(
        "start: `java -jar` as the image CMD; supervisord's app program runs it as admin".into(),
    );
    if app.java.is_none() {
        warnings.push("could not read the Java version of the main class".into());
    }
    Draft {
        name: app
            .title
            .clone()
            .unwrap_or_else(|| file_name.trim_end_matches(".jar").to_string()),
        image: "caas/sofa-jdk17",
        mode: StartMode::Command,
        copies,
        steps: Vec::new(),
        workdir: APP_DIR.into(),
        env: env_vars,
        port,
        command: Some(match (&app.lib_dir, app.class_path.is_empty()) {
            (Some(lib), true) => vec![
                "java".into(),
                "-cp".into(),
                format!("{jar_path}:{APP_DIR}/{}/*", in_app(lib)),
                app.main_class.clone(),
            ],
            _ => vec!["java".into(), "-jar".into(), jar_path],
        }),
        probe,
        start_period: 60,
        reasons,
        warnings,
    }
}

fn tomcat_port(opts: &PlanOptions, what: &str) -> Result<(), PlanError> {
    match opts.port {
        Some(p) if p != TOMCAT_PORT => Err(PlanError::BadOption(format!(
            "--port {p}: a {what} is served by Tomcat in caas/sofa-tomcat, which listens on \
             {TOMCAT_PORT}; drop --port"
        ))),
        _ => Ok(()),
    }
}

fn war(app: &WarApp, opts: &PlanOptions) -> Result<Draft, PlanError> {
    tomcat_port(opts, "war")?;
    let (src, dest, why) = match &app.source {
        WarSource::File(f) => (
            f.clone(),
            format!("{TOMCAT_WEBAPPS}/ROOT.war"),
            "deployed as ROOT.war, so the app answers at / (Tomcat unpacks it at start)",
        ),
        WarSource::Exploded => (
            ".".to_string(),
            format!("{TOMCAT_WEBAPPS}/ROOT/"),
            "the exploded war, deployed as the ROOT context",
        ),
    };
    let mut reasons = vec![
        "base caas/sofa-tomcat: a war needs a servlet container (Tomcat 9, Java 17)".to_string(),
        format!("port {TOMCAT_PORT}: Tomcat's connector in caas/sofa-tomcat"),
        "start: the base image's CMD (sofa-tomcat) runs Tomcat as admin under supervisord".into(),
    ];
    let probe = if app.has_welcome {
        reasons.push("health: http / (the app has a welcome page)".into());
        Probe::Http {
            port: TOMCAT_PORT,
            path: "/".into(),
        }
    } else {
        reasons.push("health: tcp (no welcome page, / may answer 404)".into());
        Probe::Tcp { port: TOMCAT_PORT }
    };
    Ok(Draft {
        name: app.display_name.clone().unwrap_or_else(|| app.name.clone()),
        image: "caas/sofa-tomcat",
        mode: StartMode::BaseImage,
        copies: vec![copy(&src, &dest, why)],
        steps: Vec::new(),
        workdir: TOMCAT_BASE.into(),
        env: vec![env(
            "CATALINA_OPTS",
            None,
            "extra JVM flags for Tomcat such as -Xmx512m; set per environment",
        )],
        port: TOMCAT_PORT,
        command: None,
        probe,
        start_period: 90,
        reasons,
        warnings: Vec::new(),
    })
}

fn static_site(name: &str, dir: &str, opts: &PlanOptions) -> Result<Draft, PlanError> {
    tomcat_port(opts, "static site")?;
    let src = if dir.is_empty() {
        ".".to_string()
    } else {
        format!("{dir}/")
    };
    Ok(Draft {
        name: name.to_string(),
        image: "caas/sofa-tomcat",
        mode: StartMode::BaseImage,
        copies: vec![copy(
            &src,
            &format!("{TOMCAT_WEBAPPS}/ROOT/"),
            "the site, served as Tomcat's ROOT context",
        )],
        steps: Vec::new(),
        workdir: TOMCAT_BASE.into(),
        env: Vec::new(),
        port: TOMCAT_PORT,
        command: None,
        probe: Probe::Http {
            port: TOMCAT_PORT,
            path: "/".into(),
        },
        start_period: 90,
        reasons: vec![
            "base caas/sofa-tomcat: a production-grade static file server already in the rich \
             images (python's http.server is documented as not for production)"
                .into(),
            format!("port {TOMCAT_PORT}: Tomcat's connector in caas/sofa-tomcat"),
            "health: http / (index.html)".into(),
        ],
        warnings: Vec::new(),
    })
}

fn release(app: &ReleaseApp, opts: &PlanOptions) -> Draft {
    let image = if app.java.is_some() {
        "caas/sofa-jdk17"
    } else {
        "caas/sofa-base"
    };
    let mut reasons = vec![match &app.java {
        Some(why) => format!("base caas/sofa-jdk17: the release needs Java ({why})"),
        None => {
            "base caas/sofa-base: the release has no jars and its start command does not run java"
                .into()
        }
    }];
    let port = choose_port(opts, app.port.as_ref(), &mut reasons);
    let mut warnings = Vec::new();
    let top = match &app.packaging {
        Packaging::Tarball { top: Some(t), .. } => format!("/{t}"),
        _ => String::new(),
    };
    let (mode, copies, command, workdir) = match (&app.packaging, &app.start) {
        (Packaging::Tarball { file, .. }, Start::Script(script)) => {
            reasons.push(format!(
                "start: package mode: the tarball goes to {RELEASE_RUN}/, sofa-app unpacks it to \
                 {RELEASE_APP}/ and runs {script} (a new package can be deployed without a new image)"
            ));
            (
                StartMode::Package,
                vec![copy(
                    file,
                    &format!("{RELEASE_RUN}/{file}"),
                    "the release package",
                )],
                None,
                RELEASE_APP.to_string(),
            )
        }
        (Packaging::Tarball { file, .. }, Start::Procfile(web)) => {
            reasons.push(
                "start: the Procfile's web process (sofa-app's package mode only knows start \
                 scripts, so the tarball is unpacked at build time)"
                    .into(),
            );
            let dir = format!("{RELEASE_APP}{top}");
            (
                StartMode::Command,
                vec![Copy {
                    src: file.clone(),
                    dest: format!("{RELEASE_APP}/"),
                    extract: true,
                    from_stage: None,
                    why: "the release, unpacked".into(),
                }],
                Some(vec!["/bin/sh".into(), "-c".into(), format!("exec {web}")]),
                dir,
            )
        }
        (Packaging::Directory, start) => {
            let command = match start {
                Start::Script(s) => {
                    reasons.push(format!(
                        "start: {s} as the image CMD, run from the release root (the WORKDIR, \
                         where sofa-app starts the app)"
                    ));
                    vec![format!("{RELEASE_APP}/{s}")]
                }
                Start::Procfile(web) => {
                    reasons.push(
                        "start: the Procfile's web process, run by sh from the release root".into(),
                    );
                    vec!["/bin/sh".into(), "-c".into(), format!("exec {web}")]
                }
            };
            (
                StartMode::Command,
                vec![copy(
                    ".",
                    &format!("{RELEASE_APP}/"),
                    "the release directory",
                )],
                Some(command),
                RELEASE_APP.to_string(),
            )
        }
    };
    if !app.config_dirs.is_empty() {
        reasons.push(format!(
            "config: {} baked in as shipped (defaults); per-environment values come from the \
             environment at start, or mount a volume over it with --volume",
            app.config_dirs
                .iter()
                .map(|d| format!("{d}/"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        warnings.push(format!(
            "check {} for environment-specific values (hosts, passwords): they must not be baked into the image",
            app.config_dirs.join("/, ") + "/"
        ));
    }
    reasons.push("health: tcp (nothing says which HTTP path answers)".into());
    let mut env_vars = vec![port_env(port)];
    if app.java.is_some() {
        env_vars.push(env(
            "JAVA_OPTS",
            None,
            "JVM flags for start scripts that pass $JAVA_OPTS; set per environment",
        ));
    }
    Draft {
        name: app.name.clone(),
        image,
        mode,
        copies,
        steps: Vec::new(),
        workdir,
        env: env_vars,
        port,
        command,
        probe: Probe::Tcp { port },
        start_period: 60,
        reasons,
        warnings,
    }
}

fn python(app: &PythonApp, opts: &PlanOptions) -> Draft {
    let mut reasons = vec![
        "base caas/sofa-base: it has python3 (Debian bookworm's 3.11, the one supervisord runs on) \
         and no pip"
            .to_string(),
    ];
    let port = choose_port(opts, app.port.as_ref(), &mut reasons);
    let mut path = vec![APP_DIR.to_string()];
    if let Some(s) = &app.src_dir {
        path.insert(0, format!("{APP_DIR}/{s}"));
    }
    if let Some(v) = &app.vendor {
        path.push(format!("{APP_DIR}/{v}"));
    }
    let command = match &app.entry {
        Entry::Script {
            name,
            module,
            function,
        } => {
            reasons.push(format!(
                "start: the [project.scripts] entry point `{name}` ({module}:{function}), called \
                 the way pip's console script wrapper would"
            ));
            vec![
                "python3".into(),
                "-c".into(),
                format!("import sys; from {module} import {function}; sys.exit({function}())"),
            ]
        }
        Entry::File(f) => {
            reasons.push(format!("start: python3 {f}"));
            vec!["python3".into(), format!("{APP_DIR}/{f}")]
        }
    };
    let mut warnings = Vec::new();
    if !app.dependencies.is_empty() {
        let vendored = app.vendor.is_some();
        warnings.push(format!(
            "the app declares dependencies ({}); builds have no network and the image no pip, so \
             they are not installed{}",
            app.dependencies.join(", "),
            if vendored {
                ": vendor/ is put on PYTHONPATH, make sure it holds them"
            } else {
                ": install them into vendor/ (`pip install --target vendor -r requirements.txt`) \
                 and generate again"
            }
        ));
    }
    if let Some(rp) = &app.requires_python {
        if !python_311_ok(rp) {
            warnings.push(format!(
                "requires-python {rp} may exclude the image's Python 3.11"
            ));
        }
    }
    reasons.push("health: tcp (nothing says which HTTP path answers)".into());
    Draft {
        name: app.name.clone().unwrap_or_else(|| "python-app".into()),
        image: "caas/sofa-base",
        mode: StartMode::Command,
        copies: vec![copy(".", &format!("{APP_DIR}/"), "the app's source tree")],
        steps: vec![BuildStep {
            user: "admin".into(),
            run: vec![
                "python3".into(),
                "-m".into(),
                "compileall".into(),
                "-q".into(),
                APP_DIR.into(),
            ],
            why: "byte-compile as admin (who owns the tree): a syntax error fails the build, not the first start".into(),
        }],
        workdir: APP_DIR.into(),
        env: vec![
            port_env(port),
            env("PYTHONPATH", Some(&path.join(":")), "where the app's modules are"),
            env(
                "PYTHONUNBUFFERED",
                Some("1"),
                "print() reaches the logs at once (supervisord captures stdout)",
            ),
        ],
        port,
        command: Some(command),
        probe: Probe::Tcp { port },
        start_period: 20,
        reasons,
        warnings,
    }
}

/// Whether a simple `requires-python` specifier admits 3.11.
fn python_311_ok(spec: &str) -> bool {
    let v = |s: &str| -> Option<(u32, u32)> {
        let mut it = s.trim().split('.');
        Some((
            it.next()?.trim().parse().ok()?,
            it.next().unwrap_or("0").trim().parse().ok()?,
        ))
    };
    spec.split(',').all(|part| {
        let part = part.trim();
        let ok = |op: &str, f: fn((u32, u32)) -> bool| part.strip_prefix(op).and_then(v).map(f);
        ok(">=", |x| x <= (3, 11))
            .or_else(|| ok(">", |x| x < (3, 11)))
            .or_else(|| ok("<=", |x| x >= (3, 11)))
            .or_else(|| ok("<", |x| x > (3, 11)))
            .or_else(|| ok("==", |x| x == (3, 11) || x == (3, 0)))
            .unwrap_or(true)
    })
}

fn native(file: &str, machine: &str, opts: &PlanOptions) -> Draft {
    let name = file.rsplit('/').next().unwrap_or(file).to_string();
    let dest = format!("{APP_DIR}/{file}");
    let mut reasons = vec!["base caas/sofa-base: a static binary needs no runtime".to_string()];
    let port = choose_port(opts, None, &mut reasons);
    reasons.push(format!("start: {dest} as the image CMD"));
    reasons.push(
        "health: tcp (nothing says which HTTP path answers; use --health none for a non-server)"
            .into(),
    );
    let mut warnings = Vec::new();
    if machine != std::env::consts::ARCH {
        warnings.push(format!(
            "{file} is built for {machine}, this host is {}",
            std::env::consts::ARCH
        ));
    }
    Draft {
        name,
        image: "caas/sofa-base",
        mode: StartMode::Command,
        copies: vec![copy(file, &dest, "the binary")],
        steps: Vec::new(),
        workdir: APP_DIR.into(),
        env: vec![port_env(port)],
        port,
        command: Some(vec![dest]),
        probe: Probe::Tcp { port },
        start_period: 10,
        reasons,
        warnings,
    }
}

/// The Maven settings the builder stage uses, the repository they name, the build argument it
/// declares and whether it needs the network.
fn maven_settings(
    opts: &PlanOptions,
    reasons: &mut Vec<String>,
) -> (String, String, Vec<String>, bool) {
    match (&opts.maven_mirror, opts.maven_settings) {
        (Some(url), _) => {
            reasons.push(format!(
                "dependencies: through the mirror {url} (--maven-mirror), given to the builder \
                 stage as the build argument MAVEN_MIRROR, which the final stage never sees; the \
                 builder stage has network for it"
            ));
            (
                format!("{MAVEN_SHARE}/mirror-settings.xml"),
                url.clone(),
                vec!["MAVEN_MIRROR".to_string()],
                true,
            )
        }
        (None, true) => {
            reasons.push(format!(
                "dependencies: as your settings say (--maven-settings): the file goes into the \
                 build context as {SETTINGS_IN_CONTEXT} and only the builder stage copies it, so it \
                 never reaches the final image; {}",
                if opts.build_network {
                    "the builder stage has network (--build-network)"
                } else {
                    "no network in the build (add --build-network if they name a remote repository)"
                }
            ));
            (
                format!("{BUILD_DIR}/{SETTINGS_IN_CONTEXT}"),
                "the repositories of --maven-settings".to_string(),
                Vec::new(),
                opts.build_network,
            )
        }
        (None, false) => {
            reasons.push(
                "dependencies: from Debian's packaged Maven repository in the builder image \
                 (/usr/share/maven-repo: the libmaven-*-plugin-java packages), without network; \
                 name another with --maven-mirror URL or --maven-settings FILE"
                    .into(),
            );
            (
                format!("{MAVEN_SHARE}/maven-settings.xml"),
                "file:///usr/share/maven-repo (Debian's packaged Maven repository)".to_string(),
                Vec::new(),
                opts.build_network,
            )
        }
    }
}

/// Where caas/sofa-jdk17-build keeps its Maven settings.
pub const MAVEN_SHARE: &str = "/usr/share/caas/maven";

/// The plan that compiles a Maven project in a builder stage (`build --compile`, or a project
/// that was never built).
pub fn plan_maven(
    m: &crate::detect::buildfile::MavenProject,
    src: &Source,
    opts: &PlanOptions,
    why: &str,
) -> Result<Plan, PlanError> {
    if !m.modules.is_empty() {
        return Err(PlanError::BadOption(format!(
            "pom.xml aggregates the modules {}: point dockerfile-gen at the module that makes the \
             app (and build it with `mvn package` there, or use --compile in it)",
            m.modules.join(", ")
        )));
    }
    if !src.has_dir("src") {
        return Err(PlanError::BadOption(
            "pom.xml has no src/ next to it: there is nothing to compile; give the directory that \
             holds pom.xml and src/"
                .into(),
        ));
    }
    let tag = opts.base_tag.as_deref().unwrap_or("latest");
    let mut reasons = vec![format!(
        "compile: {why}; `mvn package` runs in a builder stage on caas/sofa-jdk17-build (JDK 17 \
         and Maven from Debian); only {} reaches the final image (no JDK, Maven or sources)",
        m.artifact()
    )];
    let (settings, repository, args, network) = maven_settings(opts, &mut reasons);
    reasons.push(
        "layers: pom.xml is copied and its dependencies resolved before the sources are copied, \
         so a build whose pom.xml did not change reuses the dependency layer; tests are skipped \
         (-DskipTests): run them in your CI"
            .into(),
    );
    let mvn = format!("mvn -B -ntp -s {settings} -DskipTests package");
    let mut setup = Vec::new();
    if opts.maven_settings {
        setup.push(copy(
            SETTINGS_IN_CONTEXT,
            &format!("{BUILD_DIR}/{SETTINGS_IN_CONTEXT}"),
            "the Maven settings given with --maven-settings (builder stage only)",
        ));
    }
    setup.push(copy(
        "pom.xml",
        &format!("{BUILD_DIR}/pom.xml"),
        "the build file, alone: the dependency layer depends on it only",
    ));
    let builder = Builder {
        tool: "maven".into(),
        image: format!("caas/sofa-jdk17-build:{tag}"),
        setup,
        resolve: BuildStep {
            user: "root".into(),
            run: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("{mvn} && rm -rf target"),
            ],
            why: "the dependency layer: the build's plugins and dependencies, resolved with the \
                  pom alone (an empty package run)"
                .into(),
        },
        sources: vec![copy("src/", &format!("{BUILD_DIR}/src/"), "the sources")],
        compile: BuildStep {
            user: "root".into(),
            run: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!(
                    "{mvn} && mkdir -p {BUILD_DIR}/dist/lib && cp {} {BUILD_DIR}/dist/ && \
                     if [ -d target/lib ]; then cp -R target/lib/. {BUILD_DIR}/dist/lib/; fi",
                    m.artifact()
                ),
            ],
            why: "compile and package; the artifact and target/lib/ (the libraries the build \
                  put there, if any) are gathered in dist/ for one copy into the final stage"
                .into(),
        },
        args,
        repository,
        network,
    };
    let from = |src: &str, dest: &str, why: &str| Copy {
        from_stage: Some(BUILD_STAGE.into()),
        ..copy(src, dest, why)
    };
    let evidence = vec![crate::detect::Evidence::new(
        "pom.xml",
        format!(
            "Maven project {} ({} packaging), not built: compiled in a builder stage",
            m.artifact_id, m.packaging
        ),
    )];
    let (kind, draft) = match m.packaging.as_str() {
        "jar" => {
            let Some(main) = &m.main_class else {
                return Err(PlanError::BadOption(
                    "pom.xml names no main class (<mainClass> in maven-jar-plugin's \
                     <archive><manifest>): the jar would not start; add it, or give the start \
                     command with --start"
                        .into(),
                ));
            };
            reasons.insert(0, "base caas/sofa-jdk17: the jar needs a Java runtime (a JRE: the JDK stays in the builder stage)".into());
            let port = choose_port(opts, None, &mut reasons);
            let file = m
                .artifact()
                .rsplit('/')
                .next()
                .unwrap_or("app.jar")
                .to_string();
            let jar_path = format!("{APP_DIR}/{file}");
            reasons.push(format!(
                "start: java with {file} and lib/* on the class path, main class {main} (from pom.xml)"
            ));
            reasons.push("health: tcp (nothing says which HTTP path answers)".into());
            (
                Kind::Jar,
                Draft {
                    name: m.artifact_id.clone(),
                    image: "caas/sofa-jdk17",
                    mode: StartMode::Command,
                    copies: vec![from(
                        &format!("{BUILD_DIR}/dist/"),
                        &format!("{APP_DIR}/"),
                        &format!("the jar the builder stage made ({file}) and its lib/"),
                    )],
                    steps: Vec::new(),
                    workdir: APP_DIR.into(),
                    env: vec![
                        port_env(port),
                        env(
                            "JDK_JAVA_OPTIONS",
                            None,
                            "extra JVM flags such as -Xmx512m, read by the java launcher itself; set per environment",
                        ),
                    ],
                    port,
                    command: Some(vec![
                        "java".into(),
                        "-cp".into(),
                        format!("{jar_path}:{APP_DIR}/lib/*"),
                        main.clone(),
                    ]),
                    probe: Probe::Tcp { port },
                    start_period: 60,
                    reasons,
                    warnings: Vec::new(),
                },
            )
        }
        "war" => {
            tomcat_port(opts, "war")?;
            reasons.insert(
                0,
                "base caas/sofa-tomcat: a war needs a servlet container (Tomcat 9, Java 17)".into(),
            );
            reasons.push(format!(
                "port {TOMCAT_PORT}: Tomcat's connector in caas/sofa-tomcat"
            ));
            reasons.push("health: tcp (the war is not read before it is built)".into());
            (
                Kind::War,
                Draft {
                    name: m.artifact_id.clone(),
                    image: "caas/sofa-tomcat",
                    mode: StartMode::BaseImage,
                    copies: vec![from(
                        &format!("{BUILD_DIR}/{}", m.artifact()),
                        &format!("{TOMCAT_WEBAPPS}/ROOT.war"),
                        "the war the builder stage made, deployed as ROOT",
                    )],
                    steps: Vec::new(),
                    workdir: TOMCAT_BASE.into(),
                    env: vec![env(
                        "CATALINA_OPTS",
                        None,
                        "extra JVM flags for Tomcat such as -Xmx512m; set per environment",
                    )],
                    port: TOMCAT_PORT,
                    command: None,
                    probe: Probe::Tcp { port: TOMCAT_PORT },
                    start_period: 90,
                    reasons,
                    warnings: Vec::new(),
                },
            )
        }
        other => {
            return Err(PlanError::BadOption(format!(
                "pom.xml has <packaging>{other}</packaging>: dockerfile-gen compiles jar and war \
                 projects; package the app as one of those"
            )))
        }
    };
    let mut draft = draft;
    if let Some(start) = &opts.start {
        override_start(&mut draft, start);
    }
    let det = Detection {
        chosen: crate::detect::Candidate {
            kind,
            evidence,
            app: AppModel::Static(crate::detect::static_site::StaticApp {
                name: String::new(),
                dir: String::new(),
            }),
        },
        alternatives: Vec::new(),
    };
    finish(draft, kind, &det, src, opts, Some(builder))
}

/// Validates a `--volume` path.
pub fn check_volume(v: &str) -> Result<(), PlanError> {
    let bad = |why: &str| Err(PlanError::BadOption(format!("--volume {v:?}: {why}")));
    if !v.starts_with('/') {
        return bad("must be an absolute path inside the container, e.g. /home/admin/data");
    }
    if v == "/" || v.split('/').any(|c| c == ".." || c == ".") {
        return bad("must be a plain absolute path without . or .. and not /");
    }
    if v.contains(':') || v.contains(char::is_whitespace) || v.contains('"') {
        return bad("must not contain ':', quotes or whitespace");
    }
    Ok(())
}

/// A name usable in image references and container names.
pub fn sanitize_name(raw: &str) -> String {
    let mut out = String::new();
    for c in raw.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out = out.trim_end_matches('-');
    let out: String = out.chars().take(40).collect();
    if out.is_empty() {
        "app".into()
    } else {
        out.trim_end_matches('-').to_string()
    }
}

fn finish(
    mut d: Draft,
    kind: Kind,
    det: &Detection,
    src: &Source,
    opts: &PlanOptions,
    builder: Option<Builder>,
) -> Result<Plan, PlanError> {
    let mut volumes = vec![LOGS.to_string()];
    for v in &opts.volumes {
        check_volume(v)?;
        if !volumes.contains(v) {
            volumes.push(v.clone());
        }
    }
    let extra: Vec<&str> = volumes.iter().skip(1).map(String::as_str).collect();
    if !extra.is_empty() {
        d.env.push(env(
            "CAAS_VOLUMES",
            Some(&extra.join(":")),
            "data paths sofa-init creates and gives to admin at start",
        ));
    }
    d.reasons.push(format!(
        "volumes: {} (data the app writes lives in the data container, so it survives \
         recreating the app)",
        volumes.join(", ")
    ));
    let probe = match &opts.health {
        None => Some(d.probe.clone()),
        Some(HealthChoice::None) => None,
        Some(HealthChoice::Tcp(p)) => Some(Probe::Tcp {
            port: p.unwrap_or(d.port),
        }),
        Some(HealthChoice::Http(p, path)) => Some(Probe::Http {
            port: p.unwrap_or(d.port),
            path: path.clone(),
        }),
        Some(HealthChoice::Command(c)) => Some(Probe::Command(vec![
            "/bin/sh".into(),
            "-c".into(),
            c.clone(),
        ])),
    };
    if opts.health.is_some() {
        d.reasons.push("health: given with --health".into());
    }
    let name = match &opts.name {
        Some(n) => {
            let s = sanitize_name(n);
            if s != *n {
                return Err(PlanError::BadOption(format!(
                    "--name {n:?}: use lowercase letters, digits and dashes (e.g. {s})"
                )));
            }
            s
        }
        None => sanitize_name(&d.name),
    };
    let tag = opts.base_tag.as_deref().unwrap_or("latest");
    d.reasons.push(
        "user: the app runs as admin (supervisord's app program); files are copied with \
         --chown=admin:admin; the image's user stays root because sofa-init must start as root"
            .into(),
    );
    let files = context::files_for(src, &context::context_copies(&d.copies, builder.as_ref()));
    let content = context::digest(&files)?;
    let plan = Plan {
        schema: SCHEMA.into(),
        name,
        source: src.display_name(),
        detector: kind,
        evidence: det.chosen.evidence.clone(),
        alternatives: det.alternatives.clone(),
        reasons: d.reasons,
        warnings: d.warnings,
        base_image: format!("{}:{tag}", d.image),
        contract: CONTRACT.into(),
        start_mode: d.mode,
        copies: d.copies,
        build_steps: d.steps,
        workdir: d.workdir,
        env: d.env,
        ports: vec![d.port],
        command: d.command,
        health: probe.map(|probe| HealthCheck {
            probe,
            interval_seconds: 5,
            timeout_seconds: 2,
            failure_threshold: 3,
            start_period_seconds: d.start_period,
        }),
        volumes,
        content,
        project: None,
        builder,
        hash: String::new(),
    };
    Ok(plan.seal())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn health_choices_parse() {
        assert_eq!("none".parse(), Ok(HealthChoice::None));
        assert_eq!("tcp:9000".parse(), Ok(HealthChoice::Tcp(Some(9000))));
        assert_eq!(
            "http:/ping".parse(),
            Ok(HealthChoice::Http(None, "/ping".into()))
        );
        assert_eq!(
            "http:81/x".parse(),
            Ok(HealthChoice::Http(Some(81), "/x".into()))
        );
        assert!("bogus".parse::<HealthChoice>().is_err());
    }

    #[test]
    fn volumes_and_names_are_checked() {
        assert!(check_volume("/home/admin/data").is_ok());
        assert!(check_volume("data").is_err());
        assert!(check_volume("/a/../b").is_err());
        assert!(check_volume("/a:b").is_err());
        assert_eq!(sanitize_name("My App_2.0"), "my-app-2-0");
        assert_eq!(sanitize_name("..."), "app");
    }

    #[test]
    fn requires_python() {
        assert!(python_311_ok(">=3.9"));
        assert!(!python_311_ok(">=3.12"));
        assert!(python_311_ok(">=3.8,<4"));
    }
}
