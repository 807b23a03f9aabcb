//! Turns `caas container create` arguments into a `CreateContainerRequest`, refusing locally
//! (exit 64) what central would refuse anyway, with the flag's name in the message.

use std::collections::BTreeMap;

use caas_api::central::CreateContainerRequest;
use caas_api::spec::validate_volume_path;
use caas_api::{Constraint, HealthCheck, Probe, Resources, RestartPolicy};

use super::{CliError, CreateArgs, RestartArg, StrategyArg};

/// `-l` key that sets the hostname.
const LABEL_HOSTNAME: &str = "Hostname";
/// `-l` key reserved for a static IP on a container network.
const LABEL_IP: &str = "Ip";

impl CreateArgs {
    pub fn to_request(&self) -> Result<CreateContainerRequest, CliError> {
        let env = key_values("-e", &self.env)?;
        let (labels, label_hostname) = self.labels()?;
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
        })
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

    /// User labels, and the hostname given as `-l Hostname=...`.
    fn labels(&self) -> Result<(BTreeMap<String, String>, Option<String>), CliError> {
        let mut labels = key_values("-l", &self.labels)?;
        // The special keys are matched in any case: `-l hostname=x` surely means the hostname.
        let special = |name: &str| {
            labels
                .keys()
                .find(|k| k.eq_ignore_ascii_case(name))
                .cloned()
        };
        if let Some(key) = special(LABEL_IP) {
            return Err(CliError::bad_argument(format!(
                "-l {key}=...: static IPs live on container networks, which are not supported \
                 yet; leave out -l {key}"
            )));
        }
        let hostname = match special(LABEL_HOSTNAME) {
            Some(key) => labels.remove(&key),
            None => None,
        };
        Ok((labels, hostname))
    }
}

/// Parses repeated `KEY=VALUE` arguments; a later repeat of a key wins, as in `docker run`.
fn key_values(flag: &str, items: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    let mut map = BTreeMap::new();
    for item in items {
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
