//! The node's share of the network services (internal DNS and load balancing): a task that
//! follows the pool's networks, DNS services, load balancers, containers and statuses in
//! ZooKeeper (`follow`), computes what this node must serve (`model`) and makes it so: DNS
//! servers on the gateways of the networks it carries (`dns`, its UDP side in `dns_udp`), the `ip caaslb` nftables table
//! and VIP addresses (`lb`), and the containers' resolv.conf (`resolv`). Nothing central is on
//! the data path; every node serves the same answers from the same ZooKeeper state.

pub mod dns;
pub mod dns_udp;
pub mod follow;
pub mod lb;
pub mod model;
pub mod resolv;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use caas_api::ZkLayout;
use caas_zk::ClientWatch;
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::network::netlink::NetlinkBackend;
use crate::network::NetworkBackend;

/// How often the loop runs without a ZooKeeper change: retries of DNS binds that waited for a
/// bridge, VIP addresses on bridges the wiring just created.
const TICK: Duration = Duration::from_secs(1);
/// resolv.conf files are checked at most this often without a change.
const RESOLV_EVERY: u32 = 5;

/// What the resolv.conf files were last written from: the models and each local workload's
/// networks.
type ResolvInputs = (Vec<model::NetModel>, BTreeMap<String, Vec<String>>);

#[derive(Debug, Clone)]
pub struct ServicesConfig {
    pub node_id: String,
    pub pool: String,
    pub layout: ZkLayout,
    pub underlay: Option<Ipv4Addr>,
    pub docker_socket: String,
    pub relist: Duration,
}

impl ServicesConfig {
    pub fn of(config: &AgentConfig) -> Self {
        Self {
            node_id: config.node_id.clone(),
            pool: config.pool.clone(),
            layout: config.layout.clone(),
            underlay: match config.underlay {
                Some(std::net::IpAddr::V4(v4)) => Some(v4),
                _ => None,
            },
            docker_socket: config.docker_socket.clone(),
            relist: config.resync_interval.max(Duration::from_secs(2)) * 5,
        }
    }
}

/// Runs until `cancel`; DNS servers stop with it, the LB table stays (like the containers,
/// connections keep working while the agent restarts).
pub async fn run(clients: ClientWatch, config: ServicesConfig, cancel: CancellationToken) {
    let mut follow = match follow::Follow::start(
        clients,
        config.layout.clone(),
        config.pool.clone(),
        config.relist,
        cancel.clone(),
    ) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "cannot follow network services; this node serves no DNS or load balancing");
            return;
        }
    };
    let backend: Option<Arc<dyn NetworkBackend>> = match NetlinkBackend::new() {
        Ok(b) => Some(Arc::new(b)),
        Err(e) => {
            tracing::warn!(error = %e, "no netlink: load balancer VIPs are not added to bridges");
            None
        }
    };
    lb::ensure_bridge_netfilter().await;
    let changed = follow.changed();
    let mut dns = dns::DnsServers::default();
    let mut applied: Option<Option<String>> = None;
    let mut docker = None;
    let mut last_resolv: Option<ResolvInputs> = None;
    let mut ticks = 0u32;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = changed.notified() => {}
            _ = tick.tick() => { ticks = ticks.wrapping_add(1); }
        }
        follow.refresh().await;
        if !follow.synced() {
            continue;
        }
        let snapshot = follow.snapshot();
        let models = model::build(&snapshot, &config.node_id);

        dns.apply(&models, &cancel).await;

        let ctx = lb::Ctx {
            node_id: config.node_id.clone(),
            underlay: config.underlay,
            underlays: snapshot.underlays.clone(),
        };
        let rules = lb::render(&models, &ctx);
        if applied.as_ref() != Some(&rules) {
            match lb::apply_table(rules.as_deref()).await {
                Ok(()) => {
                    tracing::info!(
                        balancers = models.iter().map(|m| m.balancers.len()).sum::<usize>(),
                        "load balancer table {}",
                        if rules.is_some() {
                            "replaced"
                        } else {
                            "removed"
                        }
                    );
                    applied = Some(rules);
                }
                Err(e) => tracing::warn!(error = %e, "cannot program the load balancer table"),
            }
        }
        if let Some(b) = &backend {
            if let Err(e) = lb::sync_vips(b, &models).await {
                tracing::warn!(error = %e, "cannot keep the VIP addresses on the bridges");
            }
        }

        let networks_of: BTreeMap<String, Vec<String>> = snapshot
            .containers
            .iter()
            .filter(|(_, r)| r.node == config.node_id)
            .map(|(name, r)| {
                (
                    name.clone(),
                    r.spec.networks.iter().map(|e| e.network.clone()).collect(),
                )
            })
            .collect();
        let same = last_resolv
            .as_ref()
            .is_some_and(|(m, n)| *m == models && *n == networks_of);
        if same && !ticks.is_multiple_of(RESOLV_EVERY) {
            continue;
        }
        if docker.is_none() {
            docker = resolv::connect(&config.docker_socket).await;
        }
        if let Some(d) = &docker {
            match resolv::sync(d, &config.node_id, &config.pool, &networks_of, &models).await {
                Ok(()) => last_resolv = Some((models, networks_of)),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot update resolv.conf files");
                    docker = None;
                }
            }
        }
    }
    dns.stop_all();
    follow.shutdown().await;
}
