//! Health checks a workload asks for (`HealthCheck`), what the agent observed of them
//! (`HealthStatus`), and the supervisord programs of rich containers (`ProgramStatus`).

use serde::{Deserialize, Serialize};

use crate::ValidationError;

/// How the agent probes a workload. Probes run from inside the workload's network namespace,
/// so they work whatever network the workload has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    pub probe: Probe,
    /// Seconds between probes.
    #[serde(default = "default_interval")]
    pub interval_seconds: u32,
    /// Seconds one probe may take before it counts as failed.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// Consecutive failures before the workload is unhealthy.
    #[serde(default = "default_threshold")]
    pub failure_threshold: u32,
}

fn default_interval() -> u32 {
    10
}
fn default_timeout() -> u32 {
    3
}
fn default_threshold() -> u32 {
    3
}

/// One probe: a TCP connect, an HTTP GET answered 2xx/3xx, or a command exiting 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Probe {
    Tcp {
        port: u16,
    },
    Http {
        port: u16,
        #[serde(default = "default_path")]
        path: String,
    },
    /// Run in the app container (`docker exec`), without a shell unless the command is one.
    Command(Vec<String>),
}

fn default_path() -> String {
    "/".to_string()
}

impl HealthCheck {
    pub fn new(probe: Probe) -> Self {
        Self {
            probe,
            interval_seconds: default_interval(),
            timeout_seconds: default_timeout(),
            failure_threshold: default_threshold(),
        }
    }

    pub fn validate(&self, field: &str) -> Result<(), ValidationError> {
        match &self.probe {
            Probe::Tcp { port } | Probe::Http { port, .. } if *port == 0 => {
                return Err(ValidationError::new(
                    format!("{field}.probe.port"),
                    "must be 1..=65535",
                ))
            }
            Probe::Http { path, .. }
                if !path.starts_with('/') || path.contains(char::is_whitespace) =>
            {
                return Err(ValidationError::new(
                    format!("{field}.probe.http.path"),
                    format!("{path:?} must start with '/' and contain no spaces, e.g. \"/health\""),
                ))
            }
            Probe::Command(argv) if argv.is_empty() || argv[0].is_empty() => {
                return Err(ValidationError::new(
                    format!("{field}.probe.command"),
                    "needs a program, e.g. [\"/bin/sh\", \"-c\", \"test -f /tmp/ready\"]",
                ))
            }
            _ => {}
        }
        if !(1..=3600).contains(&self.interval_seconds) {
            return Err(ValidationError::new(
                format!("{field}.interval_seconds"),
                "must be 1..=3600",
            ));
        }
        if self.timeout_seconds == 0 || self.timeout_seconds > self.interval_seconds {
            return Err(ValidationError::new(
                format!("{field}.timeout_seconds"),
                format!(
                    "must be 1..=interval_seconds ({}); a probe may not outlast its interval",
                    self.interval_seconds
                ),
            ));
        }
        if !(1..=100).contains(&self.failure_threshold) {
            return Err(ValidationError::new(
                format!("{field}.failure_threshold"),
                "must be 1..=100",
            ));
        }
        Ok(())
    }
}

/// Result of health checking as the agent last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HealthState {
    /// No probe has answered yet since the app (re)started.
    Starting,
    Healthy,
    /// `failure_threshold` probes in a row failed.
    Unhealthy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthStatus {
    pub state: HealthState,
    pub consecutive_failures: u32,
    /// What the last probe saw ("connected", "HTTP 200", "exit 1: ...", "timed out after 3s").
    pub message: String,
    /// When the last probe finished (unix seconds). Not compared when deciding to write.
    #[serde(default)]
    pub checked_at: u64,
}

/// One supervisord program of a rich container, as its in-container monitor reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramStatus {
    pub name: String,
    /// supervisord's state: STOPPED STARTING RUNNING BACKOFF STOPPING EXITED FATAL UNKNOWN.
    pub state: String,
    /// Starts that followed a crash (not deliberate restarts such as a deploy).
    #[serde(default)]
    pub restarts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Last stderr lines of a program that is not running.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_parse_in_their_documented_shapes() {
        let http: HealthCheck = serde_json::from_value(serde_json::json!(
            {"probe": {"http": {"port": 8080}}, "interval_seconds": 5}
        ))
        .unwrap();
        assert_eq!(
            http.probe,
            Probe::Http {
                port: 8080,
                path: "/".into()
            }
        );
        assert_eq!((http.timeout_seconds, http.failure_threshold), (3, 3));
        let cmd: HealthCheck =
            serde_json::from_value(serde_json::json!({"probe": {"command": ["true"]}})).unwrap();
        assert_eq!(cmd.probe, Probe::Command(vec!["true".into()]));
        assert!(serde_json::from_value::<HealthCheck>(
            serde_json::json!({"probe": {"tcp": {"port": 1}}, "intervall": 3})
        )
        .is_err());
    }

    #[test]
    fn bad_checks_name_their_field() {
        let cases = [
            (Probe::Tcp { port: 0 }, "hc.probe.port"),
            (
                Probe::Http {
                    port: 80,
                    path: "health".into(),
                },
                "hc.probe.http.path",
            ),
            (Probe::Command(vec![]), "hc.probe.command"),
        ];
        for (probe, field) in cases {
            assert_eq!(
                HealthCheck::new(probe).validate("hc").unwrap_err().field,
                field
            );
        }
        let mut slow = HealthCheck::new(Probe::Tcp { port: 1 });
        slow.timeout_seconds = 20;
        assert_eq!(slow.validate("hc").unwrap_err().field, "hc.timeout_seconds");
    }
}
