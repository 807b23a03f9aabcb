//! `caas registry-proxy add|ls|rm` (the registry proxies a pool's nodes pull images through)
//! and `caas image prewarm|prewarms|status|prewarm-rm` (pulling an image ahead of a deploy).

use std::io::Write;
use std::path::PathBuf;

use caas_client::{AddRegistryProxyRequest, CentralClient};
use clap::{Args, Subcommand};

use super::render;
use super::CliError;

#[derive(Debug, Subcommand)]
pub enum RegistryProxyCommand {
    /// Declare a registry proxy: a registry in pull-through cache mode in front of the image
    /// center. The pool's nodes then pull every image named by the center
    /// (CENTER/team/app:1.4) through it; nodes of other pools never use it.
    Add(ProxyAddArgs),
    /// List the pool's registry proxies (passwords are never shown).
    #[command(visible_alias = "list")]
    Ls,
    /// Remove a registry proxy (images already on the nodes stay).
    #[command(visible_alias = "remove")]
    Rm { name: String },
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Pull IMAGE (named by the image center) on the pool's nodes now, through the pool's
    /// proxy, so a later create or upgrade starts without a pull. The image stays on the
    /// nodes while the prewarm exists.
    Prewarm {
        /// e.g. center.example:5000/team/app:1.4
        image: String,
        /// Only nodes with this label (key==value or key!=value); repeat for more.
        #[arg(short = 'c', long = "constraint", value_name = "KEY==VALUE")]
        constraints: Vec<String>,
        /// Follow every node's progress until all are done or failed (exit 1 if any failed).
        #[arg(long)]
        watch: bool,
    },
    /// List the pool's prewarms with their nodes' states.
    Prewarms,
    /// Show one prewarm's nodes: waiting, pulling (layers, bytes), done or failed.
    Status {
        id: String,
        /// Follow until every node is done or failed (exit 1 if any failed).
        #[arg(long)]
        watch: bool,
    },
    /// Forget a prewarm (its images stay on the nodes until pruned).
    #[command(name = "prewarm-rm")]
    PrewarmRm { id: String },
}

#[derive(Debug, Clone, Args)]
pub struct ProxyAddArgs {
    /// Proxy name (lowercase letters, digits and '-').
    pub name: String,
    /// The proxy as the pool's nodes reach it: https://host:port.
    #[arg(value_name = "URL")]
    pub proxy_url: String,
    /// The image center it caches (host:port); images named by it go through this proxy.
    #[arg(long, value_name = "HOST:PORT")]
    pub center: String,
    /// PEM file of the CA that signed the proxy's certificate (agents install it for the
    /// engine); not needed when the nodes' system store trusts it.
    #[arg(long, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// User the nodes present to the proxy (its htpasswd); needs --password-file.
    #[arg(long, value_name = "USER", requires = "password_file")]
    pub username: Option<String>,
    /// File holding that user's password (never on the command line).
    #[arg(long, value_name = "FILE", requires = "username")]
    pub password_file: Option<PathBuf>,
}

impl ProxyAddArgs {
    pub fn to_request(&self) -> Result<AddRegistryProxyRequest, CliError> {
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read_to_string(path)
                .map_err(|e| CliError::bad_argument(format!("--{flag} {}: {e}", path.display())))
        };
        let ca_pem = self
            .ca_file
            .as_ref()
            .map(|p| read("ca-file", p))
            .transpose()?;
        let password = self
            .password_file
            .as_ref()
            .map(|p| read("password-file", p).map(|s| s.trim_end_matches(['\n', '\r']).to_string()))
            .transpose()?;
        let request = AddRegistryProxyRequest {
            name: self.name.clone(),
            url: self.proxy_url.clone(),
            center: self.center.clone(),
            ca_pem,
            username: self.username.clone(),
            password,
        };
        // Checked here with central's own rules, so a typo never reaches it.
        request.validate().map_err(|e| {
            let flag = match e.field.as_str() {
                "ca_pem" => "--ca-file".to_string(),
                "password" => "--password-file".to_string(),
                "name" => "NAME".to_string(),
                "url" => "URL".to_string(),
                other => format!("--{other}"),
            };
            CliError::bad_argument(format!("{flag}: {}", e.message))
        })?;
        Ok(request)
    }
}

pub async fn registry_proxy(
    client: &CentralClient,
    json: bool,
    pool: &str,
    cmd: &RegistryProxyCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        RegistryProxyCommand::Add(args) => {
            let view = client.add_registry_proxy(pool, &args.to_request()?).await?;
            if json {
                write!(out, "{}", render::json(&view))?;
            } else {
                writeln!(
                    out,
                    "registry proxy {} added to pool {}: its nodes pull {}/... through {}",
                    view.name, view.pool, view.center, view.url
                )?;
            }
        }
        RegistryProxyCommand::Ls => {
            let list = client.list_registry_proxies(pool).await?;
            if json {
                write!(out, "{}", render::json(&list))?;
            } else {
                let rows = list
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.url.clone(),
                            p.center.clone(),
                            if p.ca { "yes" } else { "system" }.into(),
                            p.username.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                write!(
                    out,
                    "{}",
                    render::table(&["NAME", "URL", "CENTER", "CA", "USER"], rows)
                )?;
            }
        }
        RegistryProxyCommand::Rm { name } => {
            client.remove_registry_proxy(pool, name).await?;
            if !json {
                writeln!(out, "registry proxy {name} removed")?;
            }
        }
    }
    Ok(())
}

/// How often `--watch` asks central.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);
/// `--watch` (and an upgrade's prewarm) gives up after this long: a node whose agent is down
/// would otherwise be waited for forever.
const WATCH_LIMIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

pub async fn image(
    client: &CentralClient,
    json: bool,
    pool: &str,
    cmd: &ImageCommand,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    match cmd {
        ImageCommand::Prewarm {
            image,
            constraints,
            watch,
        } => {
            let request = caas_api::image::CreatePrewarmRequest {
                image: image.clone(),
                constraints: constraints.clone(),
                nodes: Vec::new(),
            };
            caas_api::ImageRef::parse("image", image)
                .map_err(|e| CliError::bad_argument(format!("IMAGE: {}", e.message)))?;
            let view = client.create_prewarm(pool, &request).await?;
            if *watch {
                if !json {
                    writeln!(
                        out,
                        "prewarm {} of {} on {} node(s):",
                        view.id,
                        view.image,
                        view.nodes.len()
                    )?;
                }
                return follow(client, json, pool, &view.id, out).await;
            }
            if json {
                write!(out, "{}", render::json(&view))?;
            } else {
                writeln!(
                    out,
                    "prewarm {} started: {} on {} node(s) ({}); follow it with                      `caas --pool={pool} image status {} --watch`",
                    view.id,
                    view.image,
                    view.nodes.len(),
                    view.nodes
                        .iter()
                        .map(|n| n.node.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    view.id
                )?;
            }
            Ok(0)
        }
        ImageCommand::Prewarms => {
            let list = client.list_prewarms(pool).await?;
            if json {
                write!(out, "{}", render::json(&list))?;
            } else {
                let rows = list
                    .iter()
                    .map(|p| {
                        let count = |s: caas_api::image::PrewarmState| {
                            p.nodes.iter().filter(|n| n.state == s).count()
                        };
                        vec![
                            p.id.clone(),
                            p.image.clone(),
                            p.nodes.len().to_string(),
                            count(caas_api::image::PrewarmState::Done).to_string(),
                            count(caas_api::image::PrewarmState::Failed).to_string(),
                        ]
                    })
                    .collect();
                write!(
                    out,
                    "{}",
                    render::table(&["ID", "IMAGE", "NODES", "DONE", "FAILED"], rows)
                )?;
            }
            Ok(0)
        }
        ImageCommand::Status { id, watch } => {
            if *watch {
                return follow(client, json, pool, id, out).await;
            }
            let view = client.get_prewarm(pool, id).await?;
            if json {
                write!(out, "{}", render::json(&view))?;
            } else {
                for node in &view.nodes {
                    writeln!(out, "{}", node_line(node))?;
                }
            }
            Ok(u8::from(
                view.nodes
                    .iter()
                    .any(|n| n.state == caas_api::image::PrewarmState::Failed),
            ))
        }
        ImageCommand::PrewarmRm { id } => {
            client.delete_prewarm(pool, id).await?;
            if !json {
                writeln!(out, "prewarm {id} removed")?;
            }
            Ok(0)
        }
    }
}

/// `caas container upgrade`: prewarm on the nodes running NAME (or its replicas), then switch
/// the image in one commit; stops with nothing changed if a node cannot get the image.
pub async fn upgrade(
    client: &CentralClient,
    json: bool,
    pool: &str,
    name: &str,
    image: &str,
    no_prewarm: bool,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    caas_api::ImageRef::parse("image", image)
        .map_err(|e| CliError::bad_argument(format!("--image: {}", e.message)))?;
    // The prewarm is forgotten only once the assignments name the image (until then it keeps
    // the image on the nodes: nothing prunes it in between).
    let mut prewarm = None;
    if !no_prewarm {
        let containers = client.list_containers(pool).await?;
        let mut nodes: Vec<String> = containers
            .iter()
            .filter(|c| c.name == name || c.app == name)
            .filter(|c| c.placement == caas_api::central::Placement::Placed)
            .map(|c| c.node.clone())
            .collect();
        nodes.sort();
        nodes.dedup();
        if !nodes.is_empty() {
            let request = caas_api::image::CreatePrewarmRequest {
                image: image.to_string(),
                constraints: Vec::new(),
                nodes,
            };
            let view = client.create_prewarm(pool, &request).await?;
            if !json {
                writeln!(
                    out,
                    "prewarming {image} on {} node(s) before anything changes (prewarm {}):",
                    view.nodes.len(),
                    view.id
                )?;
            }
            let mut sink = std::io::sink();
            let code = follow(
                client,
                json,
                pool,
                &view.id,
                if json { &mut sink } else { out },
            )
            .await?;
            prewarm = Some(view.id.clone());
            if code != 0 {
                let _ = client.delete_prewarm(pool, &view.id).await;
                writeln!(
                    out,
                    "not upgraded: a node could not get {image} (see above); nothing changed"
                )?;
                return Ok(1);
            }
        }
    }
    let result = client.set_image(pool, name, image).await;
    if let Some(id) = &prewarm {
        let _ = client.delete_prewarm(pool, id).await;
    }
    let views = result?;
    if json {
        write!(out, "{}", render::json(&views))?;
    } else {
        writeln!(
            out,
            "{name}: {} container(s) now on {image}; each node replaces its app now",
            views.len()
        )?;
    }
    Ok(0)
}

/// One node's state as a line: `n1: pulling 2/5 layers, 12.0/120.0 MB via proxy:5001`.
pub fn node_line(node: &caas_api::image::PrewarmNodeStatus) -> String {
    use caas_api::image::PrewarmState;
    match (node.state, &node.progress, &node.error) {
        (PrewarmState::Pulling, Some(p), _) => {
            format!("{}: {} via {}", node.node, render::pull_text(p), p.via)
        }
        (PrewarmState::Failed, _, Some(e)) => {
            format!("{}: failed ({}): {}", node.node, e.code, e.message)
        }
        (state, _, _) => format!("{}: {}", node.node, state.as_str()),
    }
}

/// Prints each node's line when it changes until every node is done or failed.
async fn follow(
    client: &CentralClient,
    json: bool,
    pool: &str,
    id: &str,
    out: &mut dyn Write,
) -> Result<u8, CliError> {
    let mut shown: std::collections::BTreeMap<String, String> = Default::default();
    let started = std::time::Instant::now();
    loop {
        let view = client.get_prewarm(pool, id).await?;
        if started.elapsed() >= WATCH_LIMIT && !view.finished() {
            let open: Vec<&str> = view
                .nodes
                .iter()
                .filter(|n| !n.state.finished())
                .map(|n| n.node.as_str())
                .collect();
            writeln!(
                out,
                "prewarm {id}: stopped following after {} min; not finished on {} (is their \
                 agent up? see caas node ls)",
                WATCH_LIMIT.as_secs() / 60,
                open.join(", ")
            )?;
            return Ok(1);
        }
        if !json {
            for node in &view.nodes {
                let line = node_line(node);
                if shown.get(&node.node) != Some(&line) {
                    writeln!(out, "{line}")?;
                    out.flush()?;
                    shown.insert(node.node.clone(), line);
                }
            }
        }
        if view.finished() {
            if json {
                write!(out, "{}", render::json(&view))?;
            }
            let failed = view
                .nodes
                .iter()
                .filter(|n| n.state == caas_api::image::PrewarmState::Failed)
                .count();
            if !json {
                writeln!(
                    out,
                    "prewarm {id}: {} of {} node(s) have {}{}",
                    view.nodes.len() - failed,
                    view.nodes.len(),
                    view.image,
                    if failed > 0 {
                        format!(", {failed} failed")
                    } else {
                        String::new()
                    }
                )?;
            }
            return Ok(u8::from(failed > 0));
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> ProxyAddArgs {
        let mut full = vec!["caas", "--pool", "p1", "registry-proxy", "add"];
        full.extend_from_slice(args);
        let cli = crate::Cli::try_parse_from(full).unwrap();
        let crate::Command::RegistryProxy(RegistryProxyCommand::Add(a)) = cli.command else {
            panic!("not an add")
        };
        a
    }

    #[test]
    fn add_reads_the_files_and_checks_locally_naming_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let args = parse(&[
            "site1",
            "https://198.18.0.1:5001",
            "--center",
            "198.18.0.1:5000",
            "--ca-file",
            ca.to_str().unwrap(),
            "--username",
            "pool1",
            "--password-file",
            pw.to_str().unwrap(),
        ]);
        let req = args.to_request().unwrap();
        assert_eq!(
            req.password.as_deref(),
            Some("s3cret"),
            "the newline is not the password"
        );
        assert!(req.ca_pem.unwrap().contains("BEGIN CERTIFICATE"));

        let bad = parse(&["site1", "http://p:1", "--center", "c:1"]);
        let err = bad.to_request().unwrap_err().to_string();
        assert!(err.starts_with("URL:") && err.contains("https"), "{err}");
        let bad = parse(&[
            "site1",
            "https://p:1",
            "--center",
            "c:1",
            "--ca-file",
            "/nonexistent",
        ]);
        assert!(bad
            .to_request()
            .unwrap_err()
            .to_string()
            .contains("--ca-file /nonexistent"));
        // A password only with a user, and never on the command line.
        let mut full = vec![
            "caas",
            "--pool",
            "p1",
            "registry-proxy",
            "add",
            "s",
            "https://p:1",
            "--center",
            "c:1",
            "--username",
            "u",
        ];
        assert!(crate::Cli::try_parse_from(full.clone()).is_err());
        full.extend(["--password", "x"]);
        assert!(crate::Cli::try_parse_from(full).is_err());
    }
}
