//! `caas container stats` (one shot, or `--watch` redrawing the table in place as
//! `docker stats` does) and `caas node top` (nodes by CPU, then memory, use): the tables and
//! the watch loop. The figures come from the agents through central.

use std::io::Write;
use std::time::Duration;

use caas_api::stats::{NodeStatsEntry, WorkloadStats};
use caas_client::CentralClient;

use super::render::{json, table};
use super::{format, CliError};

/// Placeholder for a figure not sampled (yet).
const NONE: &str = "-";

/// Clears the terminal and puts the cursor home, so each refresh replaces the last.
const CLEAR: &str = "\x1b[2J\x1b[H";

fn percent(value: f64) -> String {
    format!("{value:.2}%")
}

/// The `container stats` table: the app container's CPU, memory and processes, the
/// workload's network (its sandbox's interfaces but loopback) and block I/O of all its
/// containers.
pub fn containers_table(stats: &[WorkloadStats]) -> String {
    let rows = stats
        .iter()
        .map(|w| {
            let app = w.role("app");
            let cpu = app
                .and_then(|a| a.rates.as_ref())
                .map_or_else(|| NONE.to_string(), |r| percent(r.cpu_cores * 100.0));
            let (mem, mem_pct) = match app {
                Some(a) => {
                    let used = a.memory.working_set_bytes;
                    match a.memory.limit_bytes {
                        Some(limit) if limit > 0 => (
                            format!("{} / {}", format::memory(used), format::memory(limit)),
                            percent(used as f64 * 100.0 / limit as f64),
                        ),
                        _ => (format!("{} / -", format::memory(used)), NONE.to_string()),
                    }
                }
                None => (NONE.to_string(), NONE.to_string()),
            };
            let sampled = !w.containers.is_empty();
            let io = |(a, b): (u64, u64)| {
                if sampled {
                    format!("{} / {}", format::memory(a), format::memory(b))
                } else {
                    NONE.to_string()
                }
            };
            vec![
                w.name.clone(),
                w.node.clone(),
                cpu,
                mem,
                mem_pct,
                io(w.network_io()),
                io(w.blkio()),
                app.map_or_else(|| NONE.to_string(), |a| a.pids.current.to_string()),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "NODE",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS",
        ],
        rows,
    )
}

/// The `node top` table, busiest first.
pub fn nodes_table(entries: &[NodeStatsEntry]) -> String {
    let mut entries: Vec<&NodeStatsEntry> = entries.iter().collect();
    let key = |e: &NodeStatsEntry| {
        e.stats.as_ref().map_or((-1.0, -1.0), |s| {
            let mem = if s.memory_total_bytes == 0 {
                0.0
            } else {
                s.memory_used_bytes as f64 / s.memory_total_bytes as f64
            };
            (s.cpu_usage_ratio, mem)
        })
    };
    entries.sort_by(|a, b| {
        key(b)
            .partial_cmp(&key(a))
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.node.cmp(&b.node))
    });
    let rows = entries
        .iter()
        .map(|e| match &e.stats {
            Some(s) => {
                let mem_pct = if s.memory_total_bytes == 0 {
                    NONE.to_string()
                } else {
                    percent(s.memory_used_bytes as f64 * 100.0 / s.memory_total_bytes as f64)
                };
                vec![
                    e.node.clone(),
                    e.pool.clone(),
                    percent(s.cpu_usage_ratio * 100.0),
                    s.cpus.to_string(),
                    format!(
                        "{} / {}",
                        format::memory(s.memory_used_bytes),
                        format::memory(s.memory_total_bytes)
                    ),
                    mem_pct,
                    format!("{:.2} {:.2} {:.2}", s.load1, s.load5, s.load15),
                    s.containers.to_string(),
                    "ok".to_string(),
                ]
            }
            None => {
                let mut row = vec![e.node.clone(), e.pool.clone()];
                row.extend(std::iter::repeat_n(NONE.to_string(), 6));
                row.push(e.error.clone().unwrap_or_else(|| "no figures".into()));
                row
            }
        })
        .collect();
    table(
        &[
            "NODE",
            "POOL",
            "CPU %",
            "CPUS",
            "MEM USED / TOTAL",
            "MEM %",
            "LOAD 1 5 15",
            "CONTAINERS",
            "STATUS",
        ],
        rows,
    )
}

/// The figures of `names` (every container of the pool when empty).
async fn fetch(
    client: &CentralClient,
    pool: &str,
    names: &[String],
) -> Result<Vec<WorkloadStats>, CliError> {
    if names.is_empty() {
        return Ok(client.pool_stats(pool).await?);
    }
    let mut out = Vec::new();
    for name in names {
        out.push(client.container_stats(pool, name).await?);
    }
    Ok(out)
}

/// `caas container stats`.
pub async fn container_stats(
    client: &CentralClient,
    json_output: bool,
    pool: &str,
    names: &[String],
    watch: bool,
    interval: Duration,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    loop {
        let stats = fetch(client, pool, names).await?;
        if json_output {
            write!(out, "{}", json(&stats))?;
        } else {
            if watch {
                write!(out, "{CLEAR}")?;
            }
            write!(out, "{}", containers_table(&stats))?;
        }
        out.flush()?;
        if !watch {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// `caas node top`.
pub async fn node_top(
    client: &CentralClient,
    json_output: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let entries = client.node_stats().await?;
    if json_output {
        write!(out, "{}", json(&entries))?;
    } else {
        write!(out, "{}", nodes_table(&entries))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use caas_api::stats::{ContainerRates, ContainerStats, InterfaceStats, NodeStats};

    #[test]
    fn container_rows_read_like_docker_stats() {
        let mut app = ContainerStats {
            role: "app".into(),
            rates: Some(ContainerRates {
                cpu_cores: 0.5,
                ..Default::default()
            }),
            ..Default::default()
        };
        app.memory.working_set_bytes = 32 << 20;
        app.memory.limit_bytes = Some(128 << 20);
        app.pids.current = 3;
        let mut sandbox = ContainerStats {
            role: "sandbox".into(),
            ..Default::default()
        };
        for (name, rx) in [("lo", 999_999), ("eth0", 2048)] {
            sandbox.network.push(InterfaceStats {
                interface: name.into(),
                rx_bytes: rx,
                tx_bytes: 1024,
                ..Default::default()
            });
        }
        let stats = vec![
            WorkloadStats {
                pool: "p".into(),
                name: "web".into(),
                node: "n1".into(),
                containers: vec![app, sandbox],
            },
            WorkloadStats {
                pool: "p".into(),
                name: "idle".into(),
                node: "n2".into(),
                containers: vec![],
            },
        ];
        let text = containers_table(&stats);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{text}");
        let web: Vec<&str> = lines[1]
            .split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(
            web,
            [
                "web",
                "n1",
                "50.00%",
                "32Mi / 128Mi",
                "25.00%",
                "2Ki / 1Ki",
                "0 / 0",
                "3"
            ],
            "{text}"
        );
        assert!(
            lines[2].starts_with("idle") && lines[2].contains(" - "),
            "{text}"
        );
    }

    #[test]
    fn nodes_sort_by_cpu_then_memory_and_show_unreachable_ones() {
        let node = |name: &str, cpu: f64| NodeStatsEntry {
            node: name.into(),
            pool: "p".into(),
            stats: Some(NodeStats {
                node: name.into(),
                cpus: 2,
                cpu_usage_ratio: cpu,
                memory_total_bytes: 4 << 30,
                memory_used_bytes: 1 << 30,
                ..Default::default()
            }),
            error: None,
        };
        let entries = vec![
            node("n1", 0.1),
            NodeStatsEntry {
                node: "n0".into(),
                pool: "p".into(),
                stats: None,
                error: Some("the agent did not answer".into()),
            },
            node("n2", 0.9),
        ];
        let text = nodes_table(&entries);
        let order: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(order, ["n2", "n1", "n0"], "{text}");
        assert!(text.contains("90.00%") && text.contains("1Gi / 4Gi") && text.contains("25.00%"));
        assert!(text.contains("the agent did not answer"), "{text}");
    }
}
