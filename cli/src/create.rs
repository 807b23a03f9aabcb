//! Turns `caas container create` arguments into a `CreateContainerRequest`, refusing locally
//! (exit 64) what central would refuse anyway, with the flag's name in the message: labels and
//! their special keys (`Hostname=`, `Ip=`), networks (`--public-service`), health checks.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use caas_api::central::CreateContainerRequest;
use caas_api::name::validate_dns_label;
use caas_api::network::{NetworkAttachment, MAX_ENDPOINTS};
use caas_api::spec::validate_volume_path;
use caas_api::{Constraint, HealthCheck, Probe, Resources, RestartPolicy};

use super::{CliError, CreateArgs, RestartArg, StrategyArg};

/// `-l` key that sets the hostname.
const LABEL_HOSTNAME: &str = "Hostname";
/// `-l` key that sets a static IP on a container network.
const LABEL_IP: &str = "Ip";

/// What the `-l` arguments say: container labels and the special keys.
#[derive(Debug, Default)]
struct Labels {
    labels: BTreeMap<String, String>,
    hostname: Option<String>,
    /// Every `-l Ip=...` value, in order (`IP` or `NETWORK:IP`).
    ips: Vec<String>,
}

impl CreateArgs {
    pub fn to_request(&self) -> Result<CreateContainerRequest, CliError> {
        let env = key_values("-e", &self.env)?;
        let Labels {
            labels,
            hostname: label_hostname,
            ips,
        } = self.labels()?;
        let networks = self.networks(&ips)?;
        let hostname = match (&self.hostname, label_hostname) {
            (Some(flag), Some(label)) if *flag != label => {
                return Err(CliError::bad_argument(format!(
                    "--hostname {flag:?} and -l {LABEL_HOSTNAME}={label:?} disagree; give one"
                )))
            }
            (Some(flag), _) => Some(flag.clone()),
            (None, label) => label,
        };
        for (i, volume) in self.volumes.iter().enumerate() {
            validate_volume_path(&format!("volumes[{i}]"), volume)
                .map_err(|e| CliError::bad_argument(format!("-v: {}", e.message)))?;
        }
        for text in &self.constraints {
            Constraint::parse(text).map_err(|e| CliError::bad_argument(format!("-c: {e}")))?;
        }
        let resources = Resources {
            cpu: self.cpu.clone(),
            memory: self.memory.clone(),
            pids: self.pids,
        };
        resources.parse().map_err(|e| {
            let flag = e.field.strip_prefix("resources.").unwrap_or(&e.field);
            CliError::bad_argument(format!("--{flag}: {}", e.message))
        })?;
        Ok(CreateContainerRequest {
            name: self.name.clone(),
            image: self.image.clone(),
            command: self.command.clone(),
            env,
            resources,
            restart: self.restart.map(RestartPolicy::from).unwrap_or_default(),
            labels,
            volumes: self.volumes.clone(),
            hostname,
            instances: self.instances,
            constraints: self.constraints.clone(),
            strategy: self.strategy.map(|s| s.as_str().to_string()),
            rich: self.rich,
            health_check: self.health_check()?,
            networks,
            read_only_root: self.read_only,
        })
    }

    /// The `--public-service` networks in order, with the addresses `-l Ip=` asks for.
    fn networks(&self, ips: &[String]) -> Result<Vec<NetworkAttachment>, CliError> {
        let mut networks: Vec<NetworkAttachment> = Vec::new();
        for item in &self.networks {
            let attachment = parse_public_service(item)?;
            if networks.iter().any(|n| n.network == attachment.network) {
                return Err(CliError::bad_argument(format!(
                    "--public-service {item:?}: network {} is given twice; a container has one \
                     interface per network",
                    attachment.network
                )));
            }
            networks.push(attachment);
        }
        if networks.len() > MAX_ENDPOINTS {
            return Err(CliError::bad_argument(format!(
                "--public-service is given {} times; a container joins at most {MAX_ENDPOINTS} \
                 networks",
                networks.len()
            )));
        }
        if ips.is_empty() {
            return Ok(networks);
        }
        if let Some(n) = self.instances.filter(|n| *n > 1) {
            return Err(CliError::bad_argument(format!(
                "-l {LABEL_IP}= gives one address, but --instances {n} creates {n} containers; \
                 leave out -l {LABEL_IP} (each gets the lowest free address) or create them one \
                 by one"
            )));
        }
        let names = networks
            .iter()
            .map(|n| n.network.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        for text in ips {
            let (network, ip) = match text.split_once(':') {
                Some((network, ip)) => (network.to_string(), ip),
                None => match networks.as_slice() {
                    [only] => (only.network.clone(), text.as_str()),
                    [] => {
                        return Err(CliError::bad_argument(format!(
                            "-l {LABEL_IP}={text}: a static address needs a network; add \
                             --public-service=.NETWORK (`caas network ls` lists them)"
                        )))
                    }
                    _ => {
                        return Err(CliError::bad_argument(format!(
                            "-l {LABEL_IP}={text}: the container joins {} networks ({}); say \
                             which with -l {LABEL_IP}=NETWORK:{text}",
                            networks.len(),
                            names
                        )))
                    }
                },
            };
            let ip: Ipv4Addr = ip.trim().parse().map_err(|_| {
                CliError::bad_argument(format!(
                    "-l {LABEL_IP}={text}: {ip:?} is not an IPv4 address; write it like \
                     -l {LABEL_IP}=192.168.31.3"
                ))
            })?;
            let Some(attachment) = networks.iter_mut().find(|n| n.network == *network) else {
                let fix = if names.is_empty() {
                    format!("add --public-service=.{network}")
                } else {
                    format!("it joins {names}")
                };
                return Err(CliError::bad_argument(format!(
                    "-l {LABEL_IP}={text}: the container does not join network {network}; {fix}"
                )));
            };
            let ip = ip.to_string();
            match &attachment.ip {
                Some(earlier) if *earlier != ip => {
                    return Err(CliError::bad_argument(format!(
                        "-l {LABEL_IP}: two addresses for network {network} ({earlier} and \
                         {ip}); an interface gets one"
                    )))
                }
                _ => attachment.ip = Some(ip),
            }
        }
        Ok(networks)
    }

    /// The health check the `--health-*` flags describe.
    fn health_check(&self) -> Result<Option<HealthCheck>, CliError> {
        let probe = if let Some(port) = self.health_tcp {
            Probe::Tcp { port }
        } else if let Some(target) = &self.health_http {
            let (port, path) = match target.split_once('/') {
                Some((port, path)) => (port, format!("/{path}")),
                None => (target.as_str(), "/".to_string()),
            };
            let port = port.parse().map_err(|_| {
                CliError::bad_argument(format!(
                    "--health-http {target:?}: expected PORT or PORT/PATH, e.g. 8080/health"
                ))
            })?;
            Probe::Http { port, path }
        } else if let Some(command) = &self.health_cmd {
            Probe::Command(vec!["/bin/sh".into(), "-c".into(), command.clone()])
        } else {
            if self
                .health_interval
                .or(self.health_timeout)
                .or(self.health_retries)
                .is_some()
            {
                return Err(CliError::bad_argument(
                    "--health-interval/--health-timeout/--health-retries need a probe: \
                     --health-tcp, --health-http or --health-cmd",
                ));
            }
            return Ok(None);
        };
        let mut check = HealthCheck::new(probe);
        if let Some(v) = self.health_interval {
            check.interval_seconds = v;
            // The default timeout never outlasts a short interval the user asked for.
            check.timeout_seconds = check.timeout_seconds.min(v.max(1));
        }
        if let Some(v) = self.health_timeout {
            check.timeout_seconds = v;
        }
        if let Some(v) = self.health_retries {
            check.failure_threshold = v;
        }
        check.validate("health_check").map_err(|e| {
            CliError::bad_argument(format!("health check: {}: {}", e.field, e.message))
        })?;
        Ok(Some(check))
    }

    /// User labels, and the special keys. The special keys are matched in any case (`-l
    /// hostname=x` surely means the hostname; seeds write both `Ip=` and `ip=`); repeats of
    /// them must agree.
    fn labels(&self) -> Result<Labels, CliError> {
        let mut out = Labels::default();
        for item in &self.labels {
            let (key, value) = key_value("-l", item)?;
            if key.eq_ignore_ascii_case(LABEL_IP) {
                out.ips.push(value.to_string());
            } else if key.eq_ignore_ascii_case(LABEL_HOSTNAME) {
                match &out.hostname {
                    Some(earlier) if earlier != value => {
                        return Err(CliError::bad_argument(format!(
                            "-l {LABEL_HOSTNAME} is given twice ({earlier} and {value}); give \
                             it once"
                        )))
                    }
                    _ => out.hostname = Some(value.to_string()),
                }
            } else {
                out.labels.insert(key.to_string(), value.to_string());
            }
        }
        Ok(out)
    }
}

/// `[SERVICE].NETWORK`: `web.myvxlan` or `.myvxlan`.
fn parse_public_service(item: &str) -> Result<NetworkAttachment, CliError> {
    let Some((service, network)) = item.split_once('.') else {
        return Err(CliError::bad_argument(format!(
            "--public-service {item:?}: expected [SERVICE].NETWORK; write \
             --public-service=.{item} to join network {item} without a service name"
        )));
    };
    validate_dns_label("network", network).map_err(|e| {
        CliError::bad_argument(format!(
            "--public-service {item:?}: network {}; the form is [SERVICE].NETWORK",
            e.message
        ))
    })?;
    let service = match service {
        "" => None,
        service => {
            validate_dns_label("service", service).map_err(|e| {
                CliError::bad_argument(format!("--public-service {item:?}: service {}", e.message))
            })?;
            Some(service.to_string())
        }
    };
    Ok(NetworkAttachment {
        network: network.to_string(),
        service,
        ip: None,
    })
}

/// Splits one `KEY=VALUE` argument.
fn key_value<'a>(flag: &str, item: &'a str) -> Result<(&'a str, &'a str), CliError> {
    let Some((key, value)) = item.split_once('=') else {
        return Err(CliError::bad_argument(format!(
            "{flag} {item:?}: expected KEY=VALUE (write {flag} {item}= for an empty value)"
        )));
    };
    if key.is_empty() {
        return Err(CliError::bad_argument(format!(
            "{flag} {item:?}: the key before '=' is empty"
        )));
    }
    Ok((key, value))
}

/// Parses repeated `KEY=VALUE` arguments; a later repeat of a key wins, as in `docker run`.
fn key_values(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut map = BTreeMap::new();
    for item in items {
        let (key, value) = key_value(flag, item)?;
        map.insert(key.to_string(), value.to_string());
    }
    Ok(map)
}

impl From<RestartArg> for RestartPolicy {
    fn from(arg: RestartArg) -> Self {
        match arg {
            RestartArg::Never => Self::Never,
            RestartArg::OnFailure => Self::OnFailure,
            RestartArg::Always => Self::Always,
        }
    }
}

impl StrategyArg {
    /// The wire name central expects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spread => "spread",
            Self::Binpack => "binpack",
        }
    }
}
