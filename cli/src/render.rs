//! Output: borderless tables for people (like `docker ps`), pretty JSON for scripts, and the
//! `caas: ...` error text.

use caas_api::central::{ContainerView, Liveness, NodeView, Placement, PoolView};
use caas_api::network::NetworkView;
use caas_api::WorkloadState;
use comfy_table::{ContentArrangement, Table, TableComponent};
use serde::Serialize;

use super::error::CliError;
use super::format;

/// Placeholder for "nothing to show" in a cell.
const NONE: &str = "-";

/// Pretty JSON with a trailing newline.
pub fn json<T: Serialize + ?Sized>(value: &T) -> String {
    // The API types are plain structs, strings and maps: serialising them cannot fail.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// Columns separated by three spaces, no borders, no wrapping (pipes to `grep`/`awk` keep one
/// line per row).
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .remove_style(TableComponent::LeftBorder)
        .remove_style(TableComponent::RightBorder)
        .remove_style(TableComponent::VerticalLines)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec())
        .add_rows(rows);
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    let mut text: String = table
        .lines()
        .map(|line| line.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n");
    text.push('\n');
    text
}

pub fn pools_table(pools: &[PoolView]) -> String {
    let mut pools: Vec<&PoolView> = pools.iter().collect();
    pools.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = pools
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.nodes.to_string(),
                p.containers.to_string(),
            ]
        })
        .collect();
    table(&["NAME", "NODES", "CONTAINERS"], rows)
}

pub fn nodes_table(nodes: &[NodeView]) -> String {
    let mut nodes: Vec<&NodeView> = nodes.iter().collect();
    nodes.sort_by(|a, b| (&a.pool, &a.id).cmp(&(&b.pool, &b.id)));
    let rows = nodes
        .iter()
        .map(|n| {
            vec![
                n.id.clone(),
                n.pool.clone(),
                liveness(n.liveness).to_string(),
                format::ratio(
                    format::cpu(n.allocated.cpu_millis),
                    format::cpu(n.capacity.cpu_millis),
                ),
                format::ratio(
                    format::memory(n.allocated.memory_bytes),
                    format::memory(n.capacity.memory_bytes),
                ),
                n.containers.to_string(),
                labels(n.labels.iter()),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "POOL",
            "STATE",
            "CPU",
            "MEMORY",
            "CONTAINERS",
            "LABELS",
        ],
        rows,
    )
}

/// `now` is unix seconds, for the STARTED column.
pub fn containers_table(containers: &[ContainerView], now: u64) -> String {
    let mut containers: Vec<&ContainerView> = containers.iter().collect();
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    let rows = containers
        .iter()
        .map(|c| {
            let resources = &c.spec.resources;
            vec![
                c.name.clone(),
                c.node.clone(),
                // eth0's address; `container inspect` shows every interface.
                c.spec
                    .networks
                    .first()
                    .map_or_else(|| NONE.to_string(), |e| e.ip.clone()),
                placement(c.placement).to_string(),
                container_state(c),
                c.spec.image.clone(),
                resources.cpu.clone().unwrap_or_else(|| NONE.to_string()),
                resources.memory.clone().unwrap_or_else(|| NONE.to_string()),
                started(c, now),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "NODE",
            "IP",
            "PLACEMENT",
            "STATE",
            "IMAGE",
            "CPU",
            "MEMORY",
            "STARTED",
        ],
        rows,
    )
}

pub fn networks_table(networks: &[NetworkView]) -> String {
    let mut networks: Vec<&NetworkView> = networks.iter().collect();
    networks.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
    let rows = networks
        .iter()
        .map(|n| {
            vec![
                n.spec.name.clone(),
                driver_text(&n.spec),
                n.spec.subnet.clone(),
                n.spec.gateway.clone(),
                n.spec.vni.to_string(),
                n.endpoints.len().to_string(),
            ]
        })
        .collect();
    table(
        &["NAME", "DRIVER", "SUBNET", "GATEWAY", "VNI", "ENDPOINTS"],
        rows,
    )
}

/// The driver, with a vlan network's id and options: `vlan 164 arp-proxy,mac-nat`.
pub fn driver_text(spec: &caas_api::network::NetworkSpec) -> String {
    let mut text = spec.driver.as_str().to_string();
    if let Some(v) = &spec.vlan {
        match v.vlan_id {
            Some(id) => text.push_str(&format!(" {id}")),
            None => text.push_str(" untagged"),
        }
        let options: Vec<&str> = [(v.arp_proxy, "arp-proxy"), (v.mac_nat, "mac-nat")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        if !options.is_empty() {
            text.push(' ');
            text.push_str(&options.join(","));
        }
    }
    text
}

/// The error as the CLI prints it on stderr: `caas: <message> (field: x)` and a hint line.
pub fn error_text(err: &CliError) -> String {
    let mut text = format!("caas: {err}");
    if let Some(field) = err.field() {
        text.push_str(&format!(" (field: {field})"));
    }
    if let Some(hint) = err.hint() {
        text.push_str(&format!("\nhint: {hint}"));
    }
    text
}

fn liveness(l: Liveness) -> &'static str {
    match l {
        Liveness::Ready => "ready",
        Liveness::Disconnected => "disconnected",
        Liveness::Lost => "lost",
    }
}

fn placement(p: Placement) -> &'static str {
    match p {
        Placement::Placed => "placed",
        Placement::Lost => "lost",
    }
}

fn labels<'a>(labels: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let text = labels
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    if text.is_empty() {
        NONE.to_string()
    } else {
        text
    }
}

/// The agent's last report: `running`, `exited(1)`, `failed`; `-` before the first report.
/// A report about an older generation of the spec is marked `(updating)`.
fn container_state(c: &ContainerView) -> String {
    let Some(status) = &c.status else {
        return NONE.to_string();
    };
    let mut text = match status.state {
        WorkloadState::Pending => "pending".to_string(),
        WorkloadState::Running => "running".to_string(),
        WorkloadState::Exited => match status.exit_code {
            Some(code) => format!("exited({code})"),
            None => "exited".to_string(),
        },
        WorkloadState::Failed => "failed".to_string(),
    };
    // As `docker ps` does: the health check's verdict, and a supervised app that is not up.
    if let Some(health) = &status.health {
        let verdict = match health.state {
            caas_api::HealthState::Starting => "health: starting",
            caas_api::HealthState::Healthy => "healthy",
            caas_api::HealthState::Unhealthy => "unhealthy",
        };
        text.push_str(&format!(" ({verdict})"));
    }
    if let Some(app) = status
        .programs
        .iter()
        .find(|p| p.name == "app" && p.state != "RUNNING")
    {
        text.push_str(&format!(" app {}", app.state));
    }
    if let Some(pull) = &status.pull {
        text.push_str(&format!(" ({})", pull_text(pull)));
    }
    if status.generation < c.spec.generation {
        text.push_str(" (updating)");
    }
    text
}

/// `pulling 3/5 layers, 41.2/120.0 MB`: a pull's progress as `container ls` shows it.
pub fn pull_text(pull: &caas_api::PullProgress) -> String {
    let mb = |b: u64| b as f64 / 1e6;
    if pull.layers_total == 0 {
        return format!("pulling via {}", pull.via);
    }
    format!(
        "pulling {}/{} layers, {:.1}/{:.1} MB",
        pull.layers_done,
        pull.layers_total,
        mb(pull.bytes_done),
        mb(pull.bytes_total)
    )
}

fn started(c: &ContainerView, now: u64) -> String {
    c.status
        .as_ref()
        .filter(|s| s.state == WorkloadState::Running)
        .and_then(|s| s.started_at.as_deref())
        .and_then(format::parse_rfc3339)
        .map(|at| format!("{} ago", format::age(now.saturating_sub(at))))
        .unwrap_or_else(|| NONE.to_string())
}

#[cfg(test)]
#[path = "render_tests.rs"]
pub(crate) mod tests;
