//! `caas dns create|ls|rm` and `caas lb create|ls|inspect|rm|add_container|remove_container`:
//! the arguments in the seed's shapes (`-x NETWORK`, `-l Key=Value`, `--type=slb`), checked
//! locally with the same `caas-api` functions central uses, and their output.

use std::io::Write;

use caas_api::name::validate_dns_label;
use caas_api::service::{
    parse_forward, refuse_slb_key, validate_domain, validate_port, validate_weight,
    AddBackendRequest, CreateDnsRequest, CreateLbRequest, LbView,
};
use caas_client::CentralClient;
use clap::{Args, Subcommand};

use super::render;
use super::CliError;

#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Create a network's DNS service: every node carrying the network answers on its gateway
    /// address, port 53 (hostnames, --public-service names, load balancers).
    Create(DnsCreateArgs),
    /// List the pool's DNS services.
    #[command(visible_alias = "list")]
    Ls,
    /// Remove a DNS service.
    #[command(visible_alias = "remove")]
    Rm { name: String },
}

#[derive(Debug, Clone, Args)]
pub struct DnsCreateArgs {
    /// DNS service name (lowercase letters, digits and '-').
    pub name: String,
    /// The network it serves.
    #[arg(short = 'x', long = "network")]
    pub network: String,
    /// Domain=caas.local (the search domain), Forward=IP[:port] (resolver for other names).
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum LbCommand {
    /// Create a load balancer: a virtual IP of the network and a port.
    Create(LbCreateArgs),
    /// List the pool's load balancers.
    #[command(visible_alias = "list")]
    Ls,
    /// Show one load balancer as JSON, with its backends' addresses and states.
    Inspect { name: String },
    /// Remove a load balancer and release its VIP.
    #[command(visible_alias = "remove")]
    Rm { name: String },
    /// Add a container of the LB's network as a backend (-l Port=N, -l Weight=N).
    #[command(name = "add_container", visible_alias = "add-container")]
    AddContainer(LbMemberArgs),
    /// Remove a backend; its open connections finish.
    #[command(name = "remove_container", visible_alias = "remove-container")]
    RemoveContainer(LbMemberArgs),
}

#[derive(Debug, Clone, Args)]
pub struct LbCreateArgs {
    pub name: String,
    /// The network of the VIP and the backends.
    #[arg(short = 'x', long = "network")]
    pub network: String,
    /// Port=N (required), Vip=IP, Publish=N, Protocol=tcp|udp.
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Balancer type; only the built-in `slb` exists.
    #[arg(long = "type", default_value = "slb")]
    pub kind: String,
}

#[derive(Debug, Clone, Args)]
pub struct LbMemberArgs {
    /// The load balancer.
    pub lb: String,
    /// The container (or -l container=NAME).
    pub container: Option<String>,
    /// Balancer type; only the built-in `slb` exists.
    #[arg(long = "type", default_value = "slb")]
    pub kind: String,
    /// Port=N (the container's port; the LB's by default), Weight=N, container=NAME.
    #[arg(short = 'l', long = "label", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
}

fn bad(message: impl Into<String>) -> CliError {
    CliError::bad_argument(message)
}

/// `-l` options as (lowercase key, value), refusing unknown keys and the seed's `slb.*` keys.
fn options<'a>(
    items: &'a [String],
    known: &[&str],
    what: &str,
) -> Result<Vec<(String, &'a str)>, CliError> {
    let mut out: Vec<(String, &str)> = Vec::new();
    for item in items {
        let (key, value) = item.split_once('=').ok_or_else(|| {
            bad(format!(
                "-l {item:?}: expected KEY=VALUE ({})",
                known.join(", ")
            ))
        })?;
        refuse_slb_key("label", key).map_err(|e| bad(format!("-l {item}: {}", e.message)))?;
        let lower = key.to_ascii_lowercase();
        if !known.iter().any(|k| k.to_ascii_lowercase() == lower) {
            return Err(bad(format!(
                "-l {item:?}: unknown key {key:?}; {what} takes {} (keys in any case)",
                known.join(", ")
            )));
        }
        if let Some((_, earlier)) = out.iter().find(|(k, _)| *k == lower) {
            if *earlier != value.trim() {
                return Err(bad(format!(
                    "-l {key} is given twice ({earlier} and {value}); give it once"
                )));
            }
        }
        out.push((lower, value.trim()));
    }
    Ok(out)
}

fn get<'a>(options: &[(String, &'a str)], key: &str) -> Option<&'a str> {
    options.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

fn number(key: &str, text: &str) -> Result<u32, CliError> {
    text.parse()
        .map_err(|_| bad(format!("-l {key}={text}: not a number")))
}

fn check_type(kind: &str) -> Result<(), CliError> {
    if kind.eq_ignore_ascii_case("slb") {
        Ok(())
    } else {
        Err(bad(format!(
            "--type={kind}: only the built-in balancer exists; use --type=slb or leave it out"
        )))
    }
}

fn label(field: &str, value: &str) -> Result<(), CliError> {
    validate_dns_label(field, value).map_err(|e| bad(format!("{field}: {}", e.message)))
}

impl DnsCreateArgs {
    pub fn to_request(&self) -> Result<CreateDnsRequest, CliError> {
        label("DNS service name", &self.name)?;
        label("-x network", &self.network)?;
        let opts = options(&self.options, &["Domain", "Forward"], "dns create")?;
        let domain = get(&opts, "domain")
            .map(|d| {
                validate_domain("domain", d)
                    .map_err(|e| bad(format!("-l Domain={d}: {}", e.message)))
            })
            .transpose()?;
        let forward = get(&opts, "forward")
            .map(|f| {
                parse_forward("forward", f)
                    .map(|a| a.to_string())
                    .map_err(|e| bad(format!("-l Forward={f}: {}", e.message)))
            })
            .transpose()?;
        Ok(CreateDnsRequest {
            name: self.name.clone(),
            network: self.network.clone(),
            domain,
            forward,
        })
    }
}

impl LbCreateArgs {
    pub fn to_request(&self) -> Result<CreateLbRequest, CliError> {
        check_type(&self.kind)?;
        label("load balancer name", &self.name)?;
        label("-x network", &self.network)?;
        let opts = options(
            &self.options,
            &["Port", "Vip", "Publish", "Protocol"],
            "lb create",
        )?;
        let port = get(&opts, "port")
            .ok_or_else(|| bad("lb create needs a port: add -l Port=N, e.g. -l Port=80"))?;
        let port = number("Port", port)?;
        validate_port("port", port).map_err(|e| bad(format!("-l Port: {}", e.message)))?;
        let publish = get(&opts, "publish")
            .map(|p| number("Publish", p))
            .transpose()?;
        if let Some(p) = publish {
            validate_port("publish", p).map_err(|e| bad(format!("-l Publish: {}", e.message)))?;
        }
        let vip = get(&opts, "vip").map(str::to_string);
        if let Some(v) = &vip {
            v.parse::<std::net::Ipv4Addr>()
                .map_err(|_| bad(format!("-l Vip={v}: not an IPv4 address")))?;
        }
        Ok(CreateLbRequest {
            name: self.name.clone(),
            network: self.network.clone(),
            port,
            vip,
            publish,
            protocol: get(&opts, "protocol").map(str::to_string),
        })
    }
}

impl LbMemberArgs {
    fn container(&self, opts: &[(String, &str)]) -> Result<String, CliError> {
        let named = get(opts, "container");
        let container =
            match (&self.container, named) {
                (Some(a), Some(b)) if a != b => {
                    return Err(bad(format!(
                        "the container is given twice ({a} and -l container={b}); give it once"
                    )))
                }
                (Some(a), _) => a.clone(),
                (None, Some(b)) => b.to_string(),
                (None, None) => return Err(bad(
                    "name the container: caas lb add_container LB CONTAINER (or -l container=NAME)",
                )),
            };
        label("container", &container)?;
        Ok(container)
    }

    pub fn to_request(&self) -> Result<AddBackendRequest, CliError> {
        check_type(&self.kind)?;
        label("load balancer name", &self.lb)?;
        let opts = options(
            &self.options,
            &["Port", "Weight", "container"],
            "lb add_container",
        )?;
        let container = self.container(&opts)?;
        let port = get(&opts, "port").map(|p| number("Port", p)).transpose()?;
        if let Some(p) = port {
            validate_port("port", p).map_err(|e| bad(format!("-l Port: {}", e.message)))?;
        }
        let weight = get(&opts, "weight")
            .map(|w| number("Weight", w))
            .transpose()?;
        if let Some(w) = weight {
            validate_weight("weight", w).map_err(|e| bad(format!("-l Weight: {}", e.message)))?;
        }
        Ok(AddBackendRequest {
            container,
            port,
            weight,
        })
    }

    pub fn removal(&self) -> Result<String, CliError> {
        check_type(&self.kind)?;
        label("load balancer name", &self.lb)?;
        let opts = options(&self.options, &["container"], "lb remove_container")?;
        self.container(&opts)
    }
}

fn lbs_table(lbs: &[LbView]) -> String {
    let rows = lbs
        .iter()
        .map(|l| {
            let up = l.members.iter().filter(|m| m.state == "up").count();
            vec![
                l.spec.name.clone(),
                l.spec.network.clone(),
                l.spec.vip.clone(),
                format!("{}/{}", l.spec.port, l.spec.protocol.as_str()),
                l.spec.publish.map_or("-".into(), |p| p.to_string()),
                format!("{up}/{}", l.members.len()),
            ]
        })
        .collect();
    render::table(
        &["NAME", "NETWORK", "VIP", "PORT", "PUBLISH", "BACKENDS UP"],
        rows,
    )
}

pub async fn dns(
    client: &CentralClient,
    json: bool,
    pool: &str,
    cmd: &DnsCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        DnsCommand::Create(args) => {
            let spec = client.create_dns(pool, &args.to_request()?).await?;
            if json {
                write!(out, "{}", render::json(&spec))?;
            } else {
                writeln!(
                    out,
                    "DNS service {} created on network {}: domain {}, {}",
                    spec.name,
                    spec.network,
                    spec.domain,
                    spec.forward
                        .as_deref()
                        .map_or("other names refused".into(), |f| format!(
                            "other names forwarded to {f}"
                        ))
                )?;
            }
        }
        DnsCommand::Ls => {
            let list = client.list_dns(pool).await?;
            if json {
                write!(out, "{}", render::json(&list))?;
            } else {
                let rows = list
                    .iter()
                    .map(|d| {
                        vec![
                            d.name.clone(),
                            d.network.clone(),
                            d.domain.clone(),
                            d.forward.clone().unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect();
                write!(
                    out,
                    "{}",
                    render::table(&["NAME", "NETWORK", "DOMAIN", "FORWARD"], rows)
                )?;
            }
        }
        DnsCommand::Rm { name } => {
            client.delete_dns(pool, name).await?;
            if !json {
                writeln!(out, "DNS service {name} removed")?;
            }
        }
    }
    Ok(())
}

pub async fn lb(
    client: &CentralClient,
    json: bool,
    pool: &str,
    cmd: &LbCommand,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    match cmd {
        LbCommand::Create(args) => {
            let spec = client.create_lb(pool, &args.to_request()?).await?;
            if json {
                write!(out, "{}", render::json(&spec))?;
            } else {
                writeln!(
                    out,
                    "load balancer {} created on network {}: VIP {}:{}/{}{}",
                    spec.name,
                    spec.network,
                    spec.vip,
                    spec.port,
                    spec.protocol.as_str(),
                    spec.publish.map_or(String::new(), |p| format!(
                        ", published on every node at {p}"
                    ))
                )?;
            }
        }
        LbCommand::Ls => {
            let list = client.list_lbs(pool).await?;
            if json {
                write!(out, "{}", render::json(&list))?;
            } else {
                write!(out, "{}", lbs_table(&list))?;
            }
        }
        LbCommand::Inspect { name } => {
            write!(out, "{}", render::json(&client.get_lb(pool, name).await?))?;
        }
        LbCommand::Rm { name } => {
            client.delete_lb(pool, name).await?;
            if !json {
                writeln!(out, "load balancer {name} removed")?;
            }
        }
        LbCommand::AddContainer(args) => {
            let request = args.to_request()?;
            let spec = client.add_lb_backend(pool, &args.lb, &request).await?;
            if json {
                write!(out, "{}", render::json(&spec))?;
            } else {
                writeln!(
                    out,
                    "container {} added to load balancer {} ({} backend(s))",
                    request.container,
                    spec.name,
                    spec.backends.len()
                )?;
            }
        }
        LbCommand::RemoveContainer(args) => {
            let container = args.removal()?;
            let spec = client.remove_lb_backend(pool, &args.lb, &container).await?;
            if json {
                write!(out, "{}", render::json(&spec))?;
            } else {
                writeln!(
                    out,
                    "container {container} removed from load balancer {} ({} backend(s) left)",
                    spec.name,
                    spec.backends.len()
                )?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn seed_shapes_parse() {
        let cli = parse(&[
            "caas",
            "--pool=pool2",
            "dns",
            "create",
            "dns1",
            "-x",
            "myvxlan",
        ]);
        let crate::Command::Dns(DnsCommand::Create(a)) = &cli.command else {
            panic!("{cli:?}")
        };
        let r = a.to_request().unwrap();
        assert_eq!(
            (r.network.as_str(), r.domain, r.forward),
            ("myvxlan", None, None)
        );

        let cli = parse(&[
            "caas",
            "--pool=pool2",
            "lb",
            "create",
            "web-lb",
            "-x",
            "myvxlan",
            "-l",
            "Port=80",
            "-l",
            "Vip=192.168.31.100",
            "-l",
            "Publish=8080",
        ]);
        let crate::Command::Lb(LbCommand::Create(a)) = &cli.command else {
            panic!("{cli:?}")
        };
        let r = a.to_request().unwrap();
        assert_eq!(
            (r.port, r.publish, r.vip.as_deref()),
            (80, Some(8080), Some("192.168.31.100"))
        );

        let cli = parse(&[
            "caas",
            "--pool=pool2",
            "lb",
            "add_container",
            "web-lb",
            "web-2",
            "--type=slb",
            "-l",
            "Port=8080",
        ]);
        let crate::Command::Lb(LbCommand::AddContainer(a)) = &cli.command else {
            panic!("{cli:?}")
        };
        let r = a.to_request().unwrap();
        assert_eq!(
            (r.container.as_str(), r.port, r.weight),
            ("web-2", Some(8080), None)
        );
    }

    #[test]
    fn bad_input_is_refused_locally() {
        let cases: &[(&[&str], &str)] = &[
            (&["lb", "create", "w", "-x", "n"], "needs a port"),
            (
                &["lb", "create", "w", "-x", "n", "-l", "Port=0"],
                "not a port",
            ),
            (
                &["lb", "create", "w", "-x", "n", "-l", "Port=70000"],
                "not a port",
            ),
            (
                &[
                    "lb",
                    "create",
                    "w",
                    "-x",
                    "n",
                    "-l",
                    "Port=80",
                    "-l",
                    "slb.listener=x",
                ],
                "only the built-in",
            ),
            (
                &["lb", "create", "Bad", "-x", "n", "-l", "Port=80"],
                "not a valid name",
            ),
            (
                &["lb", "add_container", "w", "c", "-l", "Weight=0"],
                "not a weight",
            ),
            (
                &["lb", "add_container", "w", "c", "--type=alb"],
                "only the built-in",
            ),
            (
                &["dns", "create", "d", "-x", "n", "-l", "Forward=nowhere"],
                "not an IPv4",
            ),
            (
                &["dns", "create", "d", "-x", "n", "-l", "Color=red"],
                "unknown key",
            ),
        ];
        for (args, words) in cases {
            let mut full = vec!["caas", "--pool=p"];
            full.extend_from_slice(args);
            let cli = parse(&full);
            let err = match &cli.command {
                crate::Command::Dns(DnsCommand::Create(a)) => a.to_request().map(|_| ()),
                crate::Command::Lb(LbCommand::Create(a)) => a.to_request().map(|_| ()),
                crate::Command::Lb(LbCommand::AddContainer(a)) => a.to_request().map(|_| ()),
                other => panic!("{other:?}"),
            }
            .unwrap_err();
            assert!(err.to_string().contains(words), "{args:?}: {err}");
            assert_eq!(err.exit_code(), 64, "{args:?}");
        }
    }
}
