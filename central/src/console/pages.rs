//! The console's pages as HTML, from the API's own views (pools, containers, nodes): login,
//! pool list, a pool's containers, a container with its logs, its terminal, the nodes, and
//! error pages. Every dynamic value goes through `html::escape`; which buttons show is decided
//! by the caller (from the roles table), and the server refuses the actions anyway.

use std::fmt::Write as _;

use caas_api::central::{ContainerView, Liveness, NodeView, Placement, PoolView};
use caas_api::{HealthState, WorkloadState};

use super::html::{escape, page, segment, Frame};
use crate::auth::Principal;

const NONE: &str = "—";

/// The login page; `problem` is shown above the form.
pub fn login(csrf: &str, problem: Option<&str>) -> String {
    let mut body = String::from("<section class=\"login\">\n<h1>Log in</h1>\n");
    if let Some(problem) = problem {
        let _ = writeln!(
            body,
            "<p class=\"error\" id=\"login-error\">{}</p>",
            escape(problem)
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/console/login\" autocomplete=\"off\">\n\
         <label for=\"token\">Token</label>\n\
         <input type=\"password\" id=\"token\" name=\"token\" required autofocus \
         autocomplete=\"off\" spellcheck=\"false\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\n\
         <button type=\"submit\" id=\"login\">Log in</button>\n</form>\n\
         <p class=\"hint\">Use the admin token, or a pool's ops or developer token \
         (<code>caas pool token create --role developer</code>).</p>\n</section>",
        escape(csrf)
    );
    page(
        &Frame {
            title: "Log in",
            page: "login",
            ..Default::default()
        },
        &body,
    )
}

/// An error page (with the navigation when a caller is known).
pub fn error(who: Option<(&Principal, &str)>, status: u16, message: &str) -> String {
    let body = format!(
        "<section class=\"problem\">\n<h1>{status}</h1>\n<p class=\"error\" id=\"error\">{}</p>\n\
         <p><a href=\"/console/\">Back to the console</a></p>\n</section>",
        escape(message)
    );
    page(
        &Frame {
            title: "Error",
            page: "error",
            who,
            ..Default::default()
        },
        &body,
    )
}

pub fn pools(who: &Principal, csrf: &str, pools: &[PoolView]) -> String {
    let mut body = String::from("<h1>Pools</h1>\n<table id=\"pools\">\n<thead><tr><th>Pool</th><th>Containers</th><th>Nodes</th></tr></thead>\n<tbody>\n");
    for p in pools {
        let _ = writeln!(
            body,
            "<tr><td><a href=\"/console/pools/{}\">{}</a></td><td>{}</td><td>{}</td></tr>",
            segment(&p.name),
            escape(&p.name),
            p.containers,
            p.nodes
        );
    }
    body.push_str("</tbody>\n</table>");
    if pools.is_empty() {
        body.push_str("\n<p>No pools yet (<code>caas pool create NAME</code>).</p>");
    }
    page(
        &Frame {
            title: "Pools",
            page: "pools",
            who: Some((who, csrf)),
            ..Default::default()
        },
        &body,
    )
}

/// `running`, `exited(1)`, `failed`, `pending`; `not reported` before the agent's first report;
/// `lost` for a workload whose node is lost.
pub fn state(c: &ContainerView) -> String {
    if c.placement == Placement::Lost {
        return "lost".into();
    }
    match &c.status {
        None => "not reported".into(),
        Some(s) => match s.state {
            WorkloadState::Pending => "pending".into(),
            WorkloadState::Running => "running".into(),
            WorkloadState::Exited => match s.exit_code {
                Some(code) => format!("exited({code})"),
                None => "exited".into(),
            },
            WorkloadState::Failed => "failed".into(),
        },
    }
}

pub fn health(c: &ContainerView) -> &'static str {
    match c
        .status
        .as_ref()
        .and_then(|s| s.health.as_ref())
        .map(|h| h.state)
    {
        None => NONE,
        Some(HealthState::Starting) => "starting",
        Some(HealthState::Healthy) => "healthy",
        Some(HealthState::Unhealthy) => "unhealthy",
    }
}

/// The container's addresses: its endpoints, or what the agent reports wired.
pub fn addresses(c: &ContainerView) -> String {
    let mut ips: Vec<String> = c.spec.networks.iter().map(|e| e.ip.clone()).collect();
    if ips.is_empty() {
        if let Some(s) = &c.status {
            ips = s.interfaces.iter().map(|i| i.ip.clone()).collect();
        }
    }
    if ips.is_empty() {
        NONE.into()
    } else {
        ips.join(", ")
    }
}

/// `app RUNNING, sshd RUNNING` for rich containers.
pub fn programs(c: &ContainerView) -> String {
    let list: Vec<String> = c
        .status
        .iter()
        .flat_map(|s| s.programs.iter())
        .map(|p| format!("{} {}", p.name, p.state))
        .collect();
    if list.is_empty() {
        NONE.into()
    } else {
        list.join(", ")
    }
}

pub fn containers(
    who: &Principal,
    csrf: &str,
    pool: &str,
    nodes_link: bool,
    notice: Option<&str>,
    mut list: Vec<ContainerView>,
) -> String {
    list.sort_by(|a, b| a.name.cmp(&b.name));
    let mut body = format!("<h1>Containers of {}</h1>\n", escape(pool));
    if let Some(notice) = notice {
        let _ = writeln!(
            body,
            "<p class=\"notice\" id=\"notice\">{}</p>",
            escape(notice)
        );
    }
    body.push_str(
        "<table id=\"containers\">\n<thead><tr><th>Name</th><th>State</th><th>Health</th>\
         <th>Node</th><th>IP</th><th>Programs</th><th>Image</th></tr></thead>\n<tbody>\n",
    );
    for c in &list {
        let _ = writeln!(
            body,
            "<tr data-name=\"{}\"><td><a class=\"container-link\" href=\"/console/pools/{}/containers/{}\">{}</a>{}</td>\
             <td class=\"state\">{}</td><td class=\"health\">{}</td><td class=\"node\">{}</td>\
             <td class=\"ip\">{}</td><td class=\"programs\">{}</td><td class=\"image\">{}</td></tr>",
            escape(&c.name),
            segment(pool),
            segment(&c.name),
            escape(&c.name),
            if c.spec.rich { " <span class=\"tag\">rich</span>" } else { "" },
            escape(&state(c)),
            health(c),
            escape(&c.node),
            escape(&addresses(c)),
            escape(&programs(c)),
            escape(&c.spec.image)
        );
    }
    body.push_str("</tbody>\n</table>");
    if list.is_empty() {
        body.push_str("\n<p>No containers in this pool.</p>");
    }
    page(
        &Frame {
            title: pool,
            page: "containers",
            who: Some((who, csrf)),
            pool: Some(pool),
            nodes_link,
            ..Default::default()
        },
        &body,
    )
}

/// What the caller may do on a container page (from the roles table).
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    pub terminal: bool,
    pub restart: bool,
    pub delete: bool,
    pub nodes: bool,
}

pub fn container(
    who: &Principal,
    csrf: &str,
    c: &ContainerView,
    allowed: Allowed,
    notice: Option<&str>,
) -> String {
    let pool = c.pool.as_str();
    let base = format!(
        "/console/pools/{}/containers/{}",
        segment(pool),
        segment(&c.name)
    );
    let mut body = format!("<h1 id=\"container-name\">{}</h1>\n", escape(&c.name));
    if let Some(notice) = notice {
        let _ = writeln!(
            body,
            "<p class=\"notice\" id=\"notice\">{}</p>",
            escape(notice)
        );
    }
    let _ = writeln!(
        body,
        "<dl class=\"facts\">\n<dt>State</dt><dd id=\"state\">{}</dd>\n<dt>Health</dt><dd>{}</dd>\n\
         <dt>Node</dt><dd>{}</dd>\n<dt>IP</dt><dd>{}</dd>\n<dt>Image</dt><dd>{}</dd>\n\
         <dt>Hostname</dt><dd>{}</dd>\n<dt>Kind</dt><dd>{}</dd>\n</dl>",
        escape(&state(c)),
        health(c),
        escape(&c.node),
        escape(&addresses(c)),
        escape(&c.spec.image),
        escape(c.spec.hostname.as_deref().unwrap_or(NONE)),
        if c.spec.rich { "rich (supervisord: app, sshd)" } else { "plain" }
    );
    let programs: Vec<_> = c.status.iter().flat_map(|s| s.programs.iter()).collect();
    if !programs.is_empty() {
        body.push_str("<h2>Programs</h2>\n<table id=\"programs\">\n<thead><tr><th>Program</th><th>State</th><th>Restarts</th><th>PID</th></tr></thead>\n<tbody>\n");
        for p in programs {
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&p.name),
                escape(&p.state),
                p.restarts,
                p.pid
                    .map_or_else(|| NONE.to_string(), |pid| pid.to_string())
            );
        }
        body.push_str("</tbody>\n</table>\n");
    }
    body.push_str("<div class=\"actions\">\n");
    if allowed.terminal {
        let _ = writeln!(
            body,
            "<a class=\"button\" id=\"open-terminal\" href=\"{base}/terminal\">Open terminal</a>"
        );
    }
    if allowed.restart && c.spec.rich {
        let _ = writeln!(
            body,
            "<form method=\"post\" action=\"{base}/restart-app\" data-confirm=\"Restart the app program of {}?\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" id=\"restart-app\">Restart app</button></form>",
            escape(&c.name),
            escape(csrf)
        );
    }
    if allowed.delete {
        let _ = writeln!(
            body,
            "<form method=\"post\" action=\"{base}/delete\" data-confirm=\"Delete {} (its data is kept)?\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" class=\"danger\" id=\"delete\">Delete</button></form>",
            escape(&c.name),
            escape(csrf)
        );
    }
    body.push_str("</div>\n");
    body.push_str(
        "<section id=\"logs\">\n<h2>Logs</h2>\n<div class=\"log-controls\">\
         <label for=\"log-source\">Source</label> <select id=\"log-source\">\
         <option value=\"\">app stdout/stderr</option></select> \
         <button type=\"button\" id=\"log-reload\">Reload</button> \
         <span id=\"log-status\" class=\"status\">loading…</span></div>\n\
         <pre id=\"log-output\" tabindex=\"0\"></pre>\n</section>",
    );
    page(
        &Frame {
            title: &c.name,
            page: "container",
            who: Some((who, csrf)),
            pool: Some(pool),
            nodes_link: allowed.nodes,
            data: vec![
                ("logs-url", format!("{base}/logs")),
                ("files-url", format!("{base}/log-files")),
                ("rich", c.spec.rich.to_string()),
            ],
            ..Default::default()
        },
        &body,
    )
}

/// The terminal page; `xterm_problem` replaces the terminal with an explanation.
pub fn terminal(
    who: &Principal,
    csrf: &str,
    pool: &str,
    name: &str,
    nodes_link: bool,
    xterm_problem: Option<&str>,
) -> String {
    let base = format!(
        "/console/pools/{}/containers/{}",
        segment(pool),
        segment(name)
    );
    let mut body = format!(
        "<h1>Terminal: <a href=\"{base}\">{}</a></h1>\n",
        escape(name)
    );
    let (styles, scripts) = match xterm_problem {
        Some(problem) => {
            let _ = writeln!(
                body,
                "<p class=\"error\" id=\"terminal-missing\">{}</p>",
                escape(problem)
            );
            (vec![], vec![])
        }
        None => {
            body.push_str(
                "<p class=\"status\" id=\"terminal-status\">connecting…</p>\n\
                 <div id=\"terminal\"></div>\n\
                 <p class=\"hint\">Everything typed here is recorded in the pool's audit log.</p>",
            );
            (vec!["xterm.css"], vec!["xterm.js"])
        }
    };
    page(
        &Frame {
            title: &format!("Terminal {name}"),
            page: if xterm_problem.is_some() {
                "terminal-missing"
            } else {
                "terminal"
            },
            who: Some((who, csrf)),
            pool: Some(pool),
            nodes_link,
            data: vec![("ws-path", format!("{base}/terminal/ws"))],
            styles,
            scripts,
        },
        &body,
    )
}

pub fn nodes(who: &Principal, csrf: &str, pool: &str, mut list: Vec<NodeView>) -> String {
    list.sort_by(|a, b| a.id.cmp(&b.id));
    let mut body = format!(
        "<h1>Nodes of {}</h1>\n<table id=\"nodes\">\n<thead><tr><th>Node</th><th>Liveness</th>\
         <th>Engine</th><th>CPU (allocated / capacity)</th><th>Memory (allocated / capacity)</th>\
         <th>Containers</th><th>Address</th><th>Agent</th></tr></thead>\n<tbody>\n",
        escape(pool)
    );
    for n in &list {
        let liveness = match n.liveness {
            Liveness::Ready => "ready",
            Liveness::Disconnected => "disconnected",
            Liveness::Lost => "lost",
        };
        let _ = writeln!(
            body,
            "<tr><td>{}</td><td>{liveness}</td><td>{}</td><td>{}m / {}m</td><td>{} / {} MiB</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&n.id),
            if n.engine_ready { "ready" } else { "not ready" },
            n.allocated.cpu_millis,
            n.capacity.cpu_millis,
            n.allocated.memory_bytes >> 20,
            n.capacity.memory_bytes >> 20,
            n.containers,
            escape(n.underlay.as_deref().unwrap_or(&n.api_addr)),
            escape(&n.agent_version)
        );
    }
    body.push_str("</tbody>\n</table>");
    page(
        &Frame {
            title: "Nodes",
            page: "nodes",
            who: Some((who, csrf)),
            pool: Some(pool),
            nodes_link: true,
            ..Default::default()
        },
        &body,
    )
}
