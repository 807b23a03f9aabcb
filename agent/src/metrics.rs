//! `/metrics` in the Prometheus text format, built with the `prometheus` crate from what the
//! agent last observed (nothing is probed to answer): per workload whether its app runs, the
//! supervisord programs of rich containers and the health verdict; per container the
//! collector's cgroup figures under cAdvisor's names and units (`container_*`, labels `pool`,
//! `name`, `role`, `node`, plus `interface` or `device`); the node's figures (`machine_*` as
//! cAdvisor, `caas_node_*` for what cAdvisor has no name for). A fresh registry per scrape
//! means a removed container's series are simply not there any more.

use std::collections::BTreeMap;

use caas_api::stats::{ContainerStats, NodeStats};
use caas_api::{HealthState, WorkloadKey, WorkloadState, WorkloadStatus};
use prometheus::{CounterVec, Encoder, GaugeVec, Opts, Registry, TextEncoder};

use crate::stats::Snapshot;

/// Families of one scrape, created on first use.
struct Exposition {
    registry: Registry,
    counters: BTreeMap<&'static str, CounterVec>,
    gauges: BTreeMap<&'static str, GaugeVec>,
}

impl Exposition {
    fn new() -> Self {
        Self {
            registry: Registry::new(),
            counters: BTreeMap::new(),
            gauges: BTreeMap::new(),
        }
    }

    fn counter(&mut self, name: &'static str, help: &str, labels: &[(&str, &str)], value: f64) {
        let names: Vec<&str> = labels.iter().map(|(k, _)| *k).collect();
        let values: Vec<&str> = labels.iter().map(|(_, v)| *v).collect();
        let family = match self.counters.get(name) {
            Some(f) => f.clone(),
            None => match CounterVec::new(Opts::new(name, help), &names) {
                Ok(f) => {
                    if let Err(e) = self.registry.register(Box::new(f.clone())) {
                        tracing::warn!(metric = name, error = %e, "metric family refused");
                    }
                    self.counters.insert(name, f.clone());
                    f
                }
                Err(e) => {
                    tracing::warn!(metric = name, error = %e, "metric family refused");
                    return;
                }
            },
        };
        if let Ok(c) = family.get_metric_with_label_values(&values) {
            c.inc_by(value.max(0.0));
        }
    }

    fn gauge(&mut self, name: &'static str, help: &str, labels: &[(&str, &str)], value: f64) {
        let names: Vec<&str> = labels.iter().map(|(k, _)| *k).collect();
        let values: Vec<&str> = labels.iter().map(|(_, v)| *v).collect();
        let family = match self.gauges.get(name) {
            Some(f) => f.clone(),
            None => match GaugeVec::new(Opts::new(name, help), &names) {
                Ok(f) => {
                    if let Err(e) = self.registry.register(Box::new(f.clone())) {
                        tracing::warn!(metric = name, error = %e, "metric family refused");
                    }
                    self.gauges.insert(name, f.clone());
                    f
                }
                Err(e) => {
                    tracing::warn!(metric = name, error = %e, "metric family refused");
                    return;
                }
            },
        };
        if let Ok(g) = family.get_metric_with_label_values(&values) {
            g.set(value);
        }
    }

    fn finish(self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "encoding the metrics failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics text for `statuses`, the collector's latest `stats` and the agent's own
/// figures (open terminal sessions).
pub fn render(
    statuses: &BTreeMap<WorkloadKey, WorkloadStatus>,
    stats: &Snapshot,
    terminal_sessions: usize,
) -> String {
    let mut x = Exposition::new();
    x.gauge(
        "caas_agent_terminal_sessions",
        "Terminal sessions open on this agent.",
        &[],
        terminal_sessions as f64,
    );
    workloads(&mut x, statuses);
    for (key, w) in &stats.workloads {
        for c in &w.containers {
            container(&mut x, key, &w.node, c);
        }
    }
    if let Some(node) = &stats.node {
        node_metrics(&mut x, node);
        x.gauge(
            "caas_stats_sweep_seconds",
            "Wall time of the collector's last sweep over all containers.",
            &[("node", &node.node)],
            stats.sweep_seconds,
        );
    }
    x.finish()
}

fn workloads(x: &mut Exposition, statuses: &BTreeMap<WorkloadKey, WorkloadStatus>) {
    for (key, s) in statuses {
        let base = [("pool", key.pool.as_str()), ("name", key.name.as_str())];
        x.gauge(
            "caas_workload_running",
            "1 when the workload's app container runs.",
            &base,
            f64::from(u8::from(s.state == WorkloadState::Running)),
        );
        for p in &s.programs {
            x.gauge(
                "caas_program_up",
                "1 when the supervisord program is RUNNING.",
                &[base[0], base[1], ("program", &p.name), ("state", &p.state)],
                f64::from(u8::from(p.state == "RUNNING")),
            );
            x.counter(
                "caas_program_restarts_total",
                "Starts of the program that followed a crash.",
                &[base[0], base[1], ("program", &p.name)],
                p.restarts as f64,
            );
        }
        if let Some(h) = &s.health {
            let value = match h.state {
                HealthState::Healthy => 1.0,
                HealthState::Unhealthy => 0.0,
                HealthState::Starting => -1.0,
            };
            x.gauge(
                "caas_health_status",
                "1 healthy, 0 unhealthy, -1 not probed yet.",
                &base,
                value,
            );
        }
    }
}

fn container(x: &mut Exposition, key: &WorkloadKey, node: &str, c: &ContainerStats) {
    let l = [
        ("pool", key.pool.as_str()),
        ("name", key.name.as_str()),
        ("role", c.role.as_str()),
        ("node", node),
    ];
    let cpu = &c.cpu;
    x.counter(
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        &l,
        cpu.usage_seconds,
    );
    x.counter(
        "container_cpu_user_seconds_total",
        "Cumulative user cpu time consumed in seconds.",
        &l,
        cpu.user_seconds,
    );
    x.counter(
        "container_cpu_system_seconds_total",
        "Cumulative system cpu time consumed in seconds.",
        &l,
        cpu.system_seconds,
    );
    x.counter(
        "container_cpu_cfs_periods_total",
        "Number of elapsed enforcement period intervals.",
        &l,
        cpu.periods as f64,
    );
    x.counter(
        "container_cpu_cfs_throttled_periods_total",
        "Number of throttled period intervals.",
        &l,
        cpu.throttled_periods as f64,
    );
    x.counter(
        "container_cpu_cfs_throttled_seconds_total",
        "Total time duration the container has been throttled.",
        &l,
        cpu.throttled_seconds,
    );
    if let Some(cores) = cpu.limit_cores {
        x.gauge(
            "container_spec_cpu_limit_cores",
            "CPU limit of the container in cores (CFS quota / period).",
            &l,
            cores,
        );
    }
    let m = &c.memory;
    x.gauge(
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed.",
        &l,
        m.usage_bytes as f64,
    );
    x.gauge(
        "container_memory_working_set_bytes",
        "Current working set in bytes (usage minus inactive file pages).",
        &l,
        m.working_set_bytes as f64,
    );
    x.gauge(
        "container_memory_rss",
        "Size of RSS in bytes.",
        &l,
        m.rss_bytes as f64,
    );
    x.gauge(
        "container_memory_cache",
        "Number of bytes of page cache memory.",
        &l,
        m.cache_bytes as f64,
    );
    x.counter(
        "container_memory_failures_total",
        "Number of times the memory limit was hit (failcnt).",
        &l,
        m.failcnt as f64,
    );
    x.counter(
        "container_oom_events_total",
        "Count of out of memory events observed for the container.",
        &l,
        m.oom_kills as f64,
    );
    if let Some(limit) = m.limit_bytes {
        x.gauge(
            "container_spec_memory_limit_bytes",
            "Memory limit for the container.",
            &l,
            limit as f64,
        );
    }
    x.gauge(
        "container_processes",
        "Number of processes running inside the container.",
        &l,
        c.pids.current as f64,
    );
    if let Some(limit) = c.pids.limit {
        x.gauge(
            "container_processes_limit",
            "Most processes the container may run (pids.max).",
            &l,
            limit as f64,
        );
    }
    for d in &c.blkio {
        let dl = [l[0], l[1], l[2], l[3], ("device", d.device.as_str())];
        x.counter(
            "container_fs_reads_bytes_total",
            "Cumulative count of bytes read.",
            &dl,
            d.read_bytes as f64,
        );
        x.counter(
            "container_fs_writes_bytes_total",
            "Cumulative count of bytes written.",
            &dl,
            d.write_bytes as f64,
        );
        x.counter(
            "container_fs_reads_total",
            "Cumulative count of reads completed.",
            &dl,
            d.reads as f64,
        );
        x.counter(
            "container_fs_writes_total",
            "Cumulative count of writes completed.",
            &dl,
            d.writes as f64,
        );
    }
    for i in &c.network {
        let il = [l[0], l[1], l[2], l[3], ("interface", i.interface.as_str())];
        network(x, &il, i, "container");
    }
}

fn network(
    x: &mut Exposition,
    labels: &[(&str, &str)],
    i: &caas_api::stats::InterfaceStats,
    scope: &str,
) {
    let node = scope == "node";
    let pick = |c: &'static str, n: &'static str| if node { n } else { c };
    x.counter(
        pick(
            "container_network_receive_bytes_total",
            "caas_node_network_receive_bytes_total",
        ),
        "Cumulative count of bytes received.",
        labels,
        i.rx_bytes as f64,
    );
    x.counter(
        pick(
            "container_network_receive_packets_total",
            "caas_node_network_receive_packets_total",
        ),
        "Cumulative count of packets received.",
        labels,
        i.rx_packets as f64,
    );
    x.counter(
        pick(
            "container_network_receive_errors_total",
            "caas_node_network_receive_errors_total",
        ),
        "Cumulative count of errors encountered while receiving.",
        labels,
        i.rx_errors as f64,
    );
    x.counter(
        pick(
            "container_network_receive_packets_dropped_total",
            "caas_node_network_receive_packets_dropped_total",
        ),
        "Cumulative count of packets dropped while receiving.",
        labels,
        i.rx_dropped as f64,
    );
    x.counter(
        pick(
            "container_network_transmit_bytes_total",
            "caas_node_network_transmit_bytes_total",
        ),
        "Cumulative count of bytes transmitted.",
        labels,
        i.tx_bytes as f64,
    );
    x.counter(
        pick(
            "container_network_transmit_packets_total",
            "caas_node_network_transmit_packets_total",
        ),
        "Cumulative count of packets transmitted.",
        labels,
        i.tx_packets as f64,
    );
    x.counter(
        pick(
            "container_network_transmit_errors_total",
            "caas_node_network_transmit_errors_total",
        ),
        "Cumulative count of errors encountered while transmitting.",
        labels,
        i.tx_errors as f64,
    );
    x.counter(
        pick(
            "container_network_transmit_packets_dropped_total",
            "caas_node_network_transmit_packets_dropped_total",
        ),
        "Cumulative count of packets dropped while transmitting.",
        labels,
        i.tx_dropped as f64,
    );
}

fn node_metrics(x: &mut Exposition, n: &NodeStats) {
    let l = [("node", n.node.as_str())];
    x.gauge(
        "machine_cpu_cores",
        "Number of logical CPU cores.",
        &l,
        f64::from(n.cpus),
    );
    x.gauge(
        "machine_memory_bytes",
        "Amount of memory installed on the machine.",
        &l,
        n.memory_total_bytes as f64,
    );
    x.gauge(
        "caas_node_cpu_usage_ratio",
        "Share of all CPUs busy since the previous sample (0..1).",
        &l,
        n.cpu_usage_ratio,
    );
    x.gauge(
        "caas_node_memory_used_bytes",
        "Memory in use on the node.",
        &l,
        n.memory_used_bytes as f64,
    );
    x.gauge(
        "caas_node_memory_available_bytes",
        "Memory available for new work on the node.",
        &l,
        n.memory_available_bytes as f64,
    );
    x.gauge("caas_node_load1", "1-minute load average.", &l, n.load1);
    x.gauge("caas_node_load5", "5-minute load average.", &l, n.load5);
    x.gauge("caas_node_load15", "15-minute load average.", &l, n.load15);
    x.gauge(
        "caas_node_containers",
        "Containers the collector sampled in its last sweep.",
        &l,
        n.containers as f64,
    );
    for f in &n.filesystems {
        let fl = [
            l[0],
            ("mountpoint", f.mountpoint.as_str()),
            ("device", f.device.as_str()),
        ];
        x.gauge(
            "caas_node_filesystem_size_bytes",
            "Size of the filesystem.",
            &fl,
            f.total_bytes as f64,
        );
        x.gauge(
            "caas_node_filesystem_avail_bytes",
            "Space available to unprivileged users.",
            &fl,
            f.available_bytes as f64,
        );
    }
    for i in &n.network {
        let il = [l[0], ("interface", i.interface.as_str())];
        network(x, &il, i, "node");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use caas_api::stats::{BlkioStats, InterfaceStats, WorkloadStats};

    #[test]
    fn programs_and_health_become_series() {
        let status: WorkloadStatus = serde_json::from_value(serde_json::json!({
            "version": 1, "pool": "p", "name": "w", "node": "n", "state": "running",
            "generation": 1, "app_hash": "h", "containers": {}, "observed_at": 0,
            "programs": [{"name": "app", "state": "BACKOFF", "restarts": 2}],
            "health": {"state": "unhealthy", "consecutive_failures": 3, "message": "x"}
        }))
        .unwrap();
        let text = render(
            &[(WorkloadKey::new("p", "w"), status)].into_iter().collect(),
            &Snapshot::default(),
            3,
        );
        for line in [
            "caas_agent_terminal_sessions 3",
            "caas_workload_running{name=\"w\",pool=\"p\"} 1",
            "caas_program_up{name=\"w\",pool=\"p\",program=\"app\",state=\"BACKOFF\"} 0",
            "caas_program_restarts_total{name=\"w\",pool=\"p\",program=\"app\"} 2",
            "caas_health_status{name=\"w\",pool=\"p\"} 0",
            "# TYPE caas_program_restarts_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }

    #[test]
    fn container_series_carry_cadvisor_names_and_vanish_with_the_container() {
        let key = WorkloadKey::new("p", "w");
        let mut c = ContainerStats {
            role: "sandbox".into(),
            ..Default::default()
        };
        c.cpu.usage_seconds = 1.5;
        c.memory.working_set_bytes = 4096;
        c.blkio.push(BlkioStats {
            device: "vda".into(),
            read_bytes: 7,
            ..Default::default()
        });
        c.network.push(InterfaceStats {
            interface: "eth0".into(),
            rx_bytes: 99,
            ..Default::default()
        });
        let mut snapshot = Snapshot::default();
        snapshot.workloads.insert(
            key.clone(),
            WorkloadStats {
                pool: "p".into(),
                name: "w".into(),
                node: "n1".into(),
                containers: vec![c],
            },
        );
        let text = render(&BTreeMap::new(), &snapshot, 0);
        for line in [
            "container_cpu_usage_seconds_total{name=\"w\",node=\"n1\",pool=\"p\",role=\"sandbox\"} 1.5",
            "container_memory_working_set_bytes{name=\"w\",node=\"n1\",pool=\"p\",role=\"sandbox\"} 4096",
            "container_fs_reads_bytes_total{device=\"vda\",name=\"w\",node=\"n1\",pool=\"p\",role=\"sandbox\"} 7",
            "container_network_receive_bytes_total{interface=\"eth0\",name=\"w\",node=\"n1\",pool=\"p\",role=\"sandbox\"} 99",
            "# TYPE container_cpu_usage_seconds_total counter",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        snapshot.workloads.clear();
        let text = render(&BTreeMap::new(), &snapshot, 0);
        assert!(!text.contains("container_"), "{text}");
    }
}
