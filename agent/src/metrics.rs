//! `/metrics` in the Prometheus text format: per workload, whether its app runs, the
//! supervisord programs of rich containers (up, restarts after crashes) and the health check's
//! verdict. Rendered from the statuses the agent last observed; nothing is probed to answer.

use std::collections::BTreeMap;
use std::fmt::Write;

use caas_api::{HealthState, WorkloadKey, WorkloadState, WorkloadStatus};

/// Escapes a label value (`\`, `"` and newlines).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics text for `statuses`.
pub fn render(statuses: &BTreeMap<WorkloadKey, WorkloadStatus>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP caas_workload_running 1 when the workload's app container runs."
    );
    let _ = writeln!(out, "# TYPE caas_workload_running gauge");
    for (key, s) in statuses {
        let running = u8::from(s.state == WorkloadState::Running);
        let _ = writeln!(
            out,
            "caas_workload_running{{pool=\"{}\",name=\"{}\"}} {running}",
            escape(&key.pool),
            escape(&key.name)
        );
    }
    let _ = writeln!(
        out,
        "# HELP caas_program_up 1 when the supervisord program is RUNNING."
    );
    let _ = writeln!(out, "# TYPE caas_program_up gauge");
    let _ = writeln!(
        out,
        "# HELP caas_program_restarts_total Starts of the program that followed a crash."
    );
    let _ = writeln!(out, "# TYPE caas_program_restarts_total counter");
    for (key, s) in statuses {
        for p in &s.programs {
            let labels = format!(
                "pool=\"{}\",name=\"{}\",program=\"{}\"",
                escape(&key.pool),
                escape(&key.name),
                escape(&p.name)
            );
            let _ = writeln!(
                out,
                "caas_program_up{{{labels},state=\"{}\"}} {}",
                escape(&p.state),
                u8::from(p.state == "RUNNING")
            );
            let _ = writeln!(
                out,
                "caas_program_restarts_total{{{labels}}} {}",
                p.restarts
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP caas_health_status 1 healthy, 0 unhealthy, -1 not probed yet."
    );
    let _ = writeln!(out, "# TYPE caas_health_status gauge");
    for (key, s) in statuses {
        if let Some(h) = &s.health {
            let value = match h.state {
                HealthState::Healthy => 1,
                HealthState::Unhealthy => 0,
                HealthState::Starting => -1,
            };
            let _ = writeln!(
                out,
                "caas_health_status{{pool=\"{}\",name=\"{}\"}} {value}",
                escape(&key.pool),
                escape(&key.name)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_and_health_become_series() {
        let status: WorkloadStatus = serde_json::from_value(serde_json::json!({
            "version": 1, "pool": "p", "name": "w", "node": "n", "state": "running",
            "generation": 1, "app_hash": "h", "containers": {}, "observed_at": 0,
            "programs": [{"name": "app", "state": "BACKOFF", "restarts": 2}],
            "health": {"state": "unhealthy", "consecutive_failures": 3, "message": "x"}
        }))
        .unwrap();
        let text = render(&[(WorkloadKey::new("p", "w"), status)].into_iter().collect());
        assert!(
            text.contains("caas_workload_running{pool=\"p\",name=\"w\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "caas_program_up{pool=\"p\",name=\"w\",program=\"app\",state=\"BACKOFF\"} 0"
            ),
            "{text}"
        );
        assert!(
            text.contains("caas_program_restarts_total{pool=\"p\",name=\"w\",program=\"app\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("caas_health_status{pool=\"p\",name=\"w\"} 0"),
            "{text}"
        );
    }
}
