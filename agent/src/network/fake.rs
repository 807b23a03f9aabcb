//! `FakeNetwork`: an in-memory kernel for unit tests of the wiring logic. It keeps devices of
//! the agent's namespace and of each sandbox (by pid), FDB and neighbour entries, the firewall
//! and forwarding, records every call that changes something, and can be told to lack VXLAN or
//! to fail one step.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ipnet::Ipv4Net;

use super::{
    FdbEntry, InterfaceConfig, LinkChange, LinkKind, LinkState, NeighbourEntry, NetError,
    NetworkBackend, SandboxNet, SandboxState, VethPair, VxlanInfo,
};

#[derive(Debug, Default)]
struct State {
    next_index: u32,
    host: Vec<LinkState>,
    sandboxes: BTreeMap<u32, SandboxState>,
    /// veth host end -> (pid, peer name)
    peers: BTreeMap<String, (u32, String)>,
    fdb: BTreeMap<String, BTreeSet<FdbEntry>>,
    neighbours: BTreeMap<String, BTreeSet<NeighbourEntry>>,
    firewall: Option<String>,
    forwarding: bool,
    docker_forward: bool,
    calls: Vec<String>,
    /// Whole-namespace reads: device dumps and FDB/neighbour dumps.
    dumps: usize,
    /// Connections opened into sandboxes.
    sandbox_entries: usize,
    no_vxlan: bool,
    no_vlan: bool,
    fail_configure: bool,
    /// The ebtables nat table as the last restore script left it (the script itself).
    bridge_rules: Option<String>,
    installed: super::bridge_rules::Installed,
    /// Who answers an ARP probe on the segment, and with which MAC.
    segment_macs: BTreeMap<Ipv4Addr, super::Mac>,
    probes: usize,
}

/// The in-memory kernel.
#[derive(Debug, Default)]
pub struct FakeNetwork {
    state: Arc<Mutex<State>>,
}

impl FakeNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        with_state(&self.state, f)
    }

    /// Device and entry dumps so far (a differential pass makes none).
    pub fn dumps(&self) -> usize {
        self.with(|s| s.dumps)
    }

    /// Connections opened into sandboxes so far.
    pub fn sandbox_entries(&self) -> usize {
        self.with(|s| s.sandbox_entries)
    }

    /// Something outside the agent changes the kernel (no call is recorded).
    pub fn tamper(&self, f: impl FnOnce(&mut Vec<LinkState>)) {
        self.with(|s| f(&mut s.host))
    }

    /// A sandbox process with only a loopback interface.
    pub fn add_sandbox(&self, pid: u32) {
        self.with(|s| {
            s.next_index += 1;
            let lo = LinkState {
                index: s.next_index,
                name: "lo".into(),
                kind: LinkKind::Other("loopback".into()),
                mtu: 65536,
                mac: None,
                up: false,
                master: None,
                addresses: Vec::new(),
            };
            s.sandboxes.insert(
                pid,
                SandboxState {
                    links: vec![lo],
                    default_gateway: None,
                },
            );
        })
    }

    /// The sandbox's process exited: its namespace and veth pairs go.
    pub fn remove_sandbox(&self, pid: u32) {
        self.with(|s| {
            s.sandboxes.remove(&pid);
            let gone: Vec<String> = s
                .peers
                .iter()
                .filter(|(_, (p, _))| *p == pid)
                .map(|(h, _)| h.clone())
                .collect();
            for h in gone {
                s.peers.remove(&h);
                s.host.retain(|l| l.name != h);
            }
        })
    }

    /// The kernel has no VXLAN support.
    pub fn without_vxlan(&self) {
        self.with(|s| s.no_vxlan = true)
    }

    /// The kernel has no 802.1Q support.
    pub fn without_vlan(&self) {
        self.with(|s| s.no_vlan = true)
    }

    /// A physical interface (an uplink) with this MAC, up.
    pub fn add_physical(&self, name: &str, mac: super::Mac) {
        self.with(|s| {
            let _ = Self::add_host(s, name, LinkKind::Other("physical".into()));
            if let Some(l) = s.host.last_mut() {
                l.mac = Some(mac);
                l.up = true;
            }
        })
    }

    /// Gives a host device an address (as ops would on a management interface).
    pub fn add_host_address(&self, name: &str, address: Ipv4Net) {
        self.with(|s| {
            if let Some(l) = s.host.iter_mut().find(|l| l.name == name) {
                l.addresses.push(address);
            }
        })
    }

    /// A host on the segment that answers ARP probes for `ip` (a router).
    pub fn answer_arp(&self, ip: Ipv4Addr, mac: super::Mac) {
        self.with(|s| {
            s.segment_macs.insert(ip, mac);
        })
    }

    /// ARP probes sent so far.
    pub fn probes(&self) -> usize {
        self.with(|s| s.probes)
    }

    /// The last ebtables script applied.
    pub fn bridge_rules(&self) -> Option<String> {
        self.with(|s| s.bridge_rules.clone())
    }

    /// Configuring an interface inside a sandbox fails.
    pub fn fail_configure(&self, fail: bool) {
        self.with(|s| s.fail_configure = fail)
    }

    pub fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.clone())
    }

    pub fn clear_calls(&self) {
        self.with(|s| s.calls.clear())
    }

    pub fn host_names(&self) -> Vec<String> {
        self.with(|s| s.host.iter().map(|l| l.name.clone()).collect())
    }

    pub fn host_link(&self, name: &str) -> Option<LinkState> {
        self.with(|s| s.host.iter().find(|l| l.name == name).cloned())
    }

    pub fn sandbox_state(&self, pid: u32) -> Option<SandboxState> {
        self.with(|s| s.sandboxes.get(&pid).cloned())
    }

    pub fn fdb_of(&self, device: &str) -> BTreeSet<FdbEntry> {
        self.with(|s| s.fdb.get(device).cloned().unwrap_or_default())
    }

    pub fn neighbours_of(&self, device: &str) -> BTreeSet<NeighbourEntry> {
        self.with(|s| s.neighbours.get(device).cloned().unwrap_or_default())
    }

    pub fn firewall(&self) -> Option<String> {
        self.with(|s| s.firewall.clone())
    }

    pub fn forwarding(&self) -> bool {
        self.with(|s| s.forwarding)
    }

    /// Whether Docker's FORWARD filter has the bridges' exceptions.
    pub fn docker_forward_allowed(&self) -> bool {
        self.with(|s| s.docker_forward)
    }

    fn add_host(s: &mut State, name: &str, kind: LinkKind) -> Result<(), NetError> {
        if s.host.iter().any(|l| l.name == name) {
            return Err(NetError::Failed(format!("{name}: File exists")));
        }
        s.next_index += 1;
        s.host.push(LinkState {
            index: s.next_index,
            name: name.into(),
            kind,
            mtu: 1500,
            mac: Some([0x02, 0, 0, 0, 0, s.next_index as u8]),
            up: false,
            master: None,
            addresses: Vec::new(),
        });
        Ok(())
    }

    fn host_mut<'a>(s: &'a mut State, name: &str) -> Result<&'a mut LinkState, NetError> {
        s.host
            .iter_mut()
            .find(|l| l.name == name)
            .ok_or_else(|| NetError::Failed(format!("no device {name}")))
    }
}

fn with_state<T>(state: &Mutex<State>, f: impl FnOnce(&mut State) -> T) -> T {
    let mut guard = match state.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    f(&mut guard)
}

/// A connection into one fake sandbox.
struct FakeSandbox {
    state: Arc<Mutex<State>>,
    pid: u32,
}

#[async_trait]
impl NetworkBackend for FakeNetwork {
    async fn links(&self) -> Result<Vec<LinkState>, NetError> {
        Ok(self.with(|s| {
            s.dumps += 1;
            s.host.clone()
        }))
    }

    async fn link(&self, name: &str) -> Result<Option<LinkState>, NetError> {
        Ok(self.with(|s| {
            s.host.iter().find(|l| l.name == name).map(|l| LinkState {
                addresses: Vec::new(),
                ..l.clone()
            })
        }))
    }

    async fn addresses(&self, index: u32) -> Result<Vec<Ipv4Net>, NetError> {
        self.with(|s| {
            s.host
                .iter()
                .find(|l| l.index == index)
                .map(|l| l.addresses.clone())
                .ok_or_else(|| NetError::Failed(format!("no device with index {index}")))
        })
    }

    async fn add_bridge(&self, name: &str) -> Result<(), NetError> {
        self.with(|s| {
            s.calls.push(format!("add_bridge {name}"));
            Self::add_host(s, name, LinkKind::Bridge)
        })
    }

    async fn add_vxlan(
        &self,
        name: &str,
        vni: u32,
        local: Ipv4Addr,
        port: u16,
    ) -> Result<(), NetError> {
        self.with(|s| {
            s.calls.push(format!("add_vxlan {name}"));
            if s.no_vxlan {
                return Err(NetError::Unsupported(
                    "the kernel cannot create VXLAN devices (module vxlan missing?)".into(),
                ));
            }
            Self::add_host(
                s,
                name,
                LinkKind::Vxlan(VxlanInfo {
                    vni,
                    local: Some(local),
                    port,
                    learning: false,
                    proxy: true,
                }),
            )
        })
    }

    async fn add_vlan(&self, name: &str, parent: u32, vlan_id: u16) -> Result<(), NetError> {
        self.with(|s| {
            s.calls.push(format!("add_vlan {name} {vlan_id}"));
            if s.no_vlan {
                return Err(NetError::Unsupported(
                    "the kernel cannot create 802.1Q VLAN sub-interfaces (module 8021q missing)"
                        .into(),
                ));
            }
            if !s.host.iter().any(|l| l.index == parent) {
                return Err(NetError::Failed(format!("no device with index {parent}")));
            }
            let mac = s
                .host
                .iter()
                .find(|l| l.index == parent)
                .and_then(|l| l.mac);
            Self::add_host(
                s,
                name,
                LinkKind::Vlan {
                    id: vlan_id,
                    parent: Some(parent),
                },
            )?;
            if let Some(l) = s.host.last_mut() {
                l.mac = mac;
            }
            Ok(())
        })
    }

    async fn bridge_rules_state(&self) -> Result<super::bridge_rules::Installed, NetError> {
        Ok(self.with(|s| s.installed.clone()))
    }

    async fn apply_bridge_rules(&self, script: &str) -> Result<(), NetError> {
        self.with(|s| {
            s.calls.push("apply_bridge_rules".into());
            let mut installed = s.installed.clone();
            for line in script.lines() {
                if let Some(chain) = line.strip_prefix(':').and_then(|l| l.split(' ').next()) {
                    installed.chains.insert(chain.to_string());
                } else if let Some(chain) = line.strip_prefix("-X ") {
                    installed.chains.remove(chain);
                } else if line.starts_with("-A PREROUTING") {
                    installed.pre_jump = true;
                } else if line.starts_with("-A POSTROUTING") {
                    installed.post_jump = true;
                } else if line.starts_with("-D PREROUTING") {
                    installed.pre_jump = false;
                } else if line.starts_with("-D POSTROUTING") {
                    installed.post_jump = false;
                }
            }
            s.installed = installed;
            s.bridge_rules = Some(script.to_string());
            Ok(())
        })
    }

    async fn resolve_mac(
        &self,
        device: &str,
        _source_mac: super::Mac,
        ip: Ipv4Addr,
    ) -> Result<Option<super::Mac>, NetError> {
        self.with(|s| {
            s.probes += 1;
            if !s.host.iter().any(|l| l.name == device) {
                return Err(NetError::Failed(format!("no device {device}")));
            }
            Ok(s.segment_macs.get(&ip).copied())
        })
    }

    async fn add_veth(&self, pair: &VethPair) -> Result<(), NetError> {
        self.with(|s| {
            s.calls
                .push(format!("add_veth {} {} {}", pair.host, pair.peer, pair.pid));
            let Some(sb) = s.sandboxes.get(&pair.pid) else {
                return Err(NetError::SandboxGone(pair.pid));
            };
            if sb.links.iter().any(|l| l.name == pair.peer) {
                return Err(NetError::Failed(format!("{}: File exists", pair.peer)));
            }
            if !s.host.iter().any(|l| l.index == pair.bridge) {
                return Err(NetError::Failed(format!(
                    "no bridge with index {}",
                    pair.bridge
                )));
            }
            Self::add_host(s, &pair.host, LinkKind::Veth)?;
            if let Some(host) = s.host.last_mut() {
                host.mtu = pair.mtu;
                host.master = Some(pair.bridge);
                host.up = true;
            }
            s.next_index += 1;
            let index = s.next_index;
            if let Some(sb) = s.sandboxes.get_mut(&pair.pid) {
                sb.links.push(LinkState {
                    index,
                    name: pair.peer.clone(),
                    kind: LinkKind::Veth,
                    mtu: pair.mtu,
                    mac: Some(pair.peer_mac),
                    up: false,
                    master: None,
                    addresses: Vec::new(),
                });
            }
            s.peers
                .insert(pair.host.clone(), (pair.pid, pair.peer.clone()));
            Ok(())
        })
    }

    async fn set_link(&self, name: &str, change: &LinkChange) -> Result<(), NetError> {
        self.with(|s| {
            s.calls.push(format!("set_link {name} {change:?}"));
            let link = Self::host_mut(s, name)?;
            if let Some(mac) = change.mac {
                link.mac = Some(mac);
            }
            if let Some(mtu) = change.mtu {
                link.mtu = mtu;
            }
            if let Some(master) = change.master {
                link.master = Some(master);
            }
            if change.up {
                link.up = true;
            }
            Ok(())
        })
    }

    async fn add_address(&self, name: &str, address: Ipv4Net) -> Result<(), NetError> {
        self.with(|s| {
            s.calls.push(format!("add_address {name} {address}"));
            let link = Self::host_mut(s, name)?;
            if !link.addresses.contains(&address) {
                link.addresses.push(address);
            }
            Ok(())
        })
    }

    async fn del_address(&self, name: &str, address: Ipv4Net) -> Result<(), NetError> {
        self.with(|s| {
            s.calls.push(format!("del_address {name} {address}"));
            Self::host_mut(s, name)?.addresses.retain(|a| *a != address);
            Ok(())
        })
    }

    async fn del_link(&self, name: &str) -> Result<(), NetError> {
        self.with(|s| {
            s.calls.push(format!("del_link {name}"));
            let Some(index) = s.host.iter().find(|l| l.name == name).map(|l| l.index) else {
                return Ok(());
            };
            s.host.retain(|l| l.name != name);
            for l in s.host.iter_mut().filter(|l| l.master == Some(index)) {
                l.master = None;
            }
            s.fdb.remove(name);
            s.neighbours.remove(name);
            if let Some((pid, peer)) = s.peers.remove(name) {
                if let Some(sb) = s.sandboxes.get_mut(&pid) {
                    sb.links.retain(|l| l.name != peer);
                }
            }
            Ok(())
        })
    }

    async fn fdb(&self, device: &str) -> Result<Vec<FdbEntry>, NetError> {
        self.with(|s| s.dumps += 1);
        Ok(self.fdb_of(device).into_iter().collect())
    }

    async fn add_fdb(&self, device: &str, entry: FdbEntry) -> Result<(), NetError> {
        self.with(|s| {
            s.calls.push(format!("add_fdb {device} {entry:?}"));
            Self::host_mut(s, device)?;
            let set = s.fdb.entry(device.into()).or_default();
            if entry.mac != super::ZERO_MAC {
                set.retain(|e| e.mac != entry.mac);
            }
            set.insert(entry);
            Ok(())
        })
    }

    async fn del_fdb(&self, device: &str, entry: FdbEntry) -> Result<(), NetError> {
        self.with(|s| {
            s.calls.push(format!("del_fdb {device} {entry:?}"));
            s.fdb.entry(device.into()).or_default().remove(&entry);
            Ok(())
        })
    }

    async fn neighbours(&self, device: &str) -> Result<Vec<NeighbourEntry>, NetError> {
        self.with(|s| s.dumps += 1);
        Ok(self.neighbours_of(device).into_iter().collect())
    }

    async fn add_neighbour(&self, device: &str, entry: NeighbourEntry) -> Result<(), NetError> {
        self.with(|s| {
            s.calls.push(format!("add_neighbour {device} {entry:?}"));
            Self::host_mut(s, device)?;
            let set = s.neighbours.entry(device.into()).or_default();
            set.retain(|e| e.ip != entry.ip);
            set.insert(entry);
            Ok(())
        })
    }

    async fn del_neighbour(&self, device: &str, entry: NeighbourEntry) -> Result<(), NetError> {
        self.with(|s| {
            s.calls.push(format!("del_neighbour {device} {entry:?}"));
            s.neighbours
                .entry(device.into())
                .or_default()
                .remove(&entry);
            Ok(())
        })
    }

    async fn enter_sandbox(&self, pid: u32) -> Result<Box<dyn SandboxNet>, NetError> {
        self.with(|s| {
            if !s.sandboxes.contains_key(&pid) {
                return Err(NetError::SandboxGone(pid));
            }
            s.sandbox_entries += 1;
            Ok(())
        })?;
        Ok(Box::new(FakeSandbox {
            state: self.state.clone(),
            pid,
        }))
    }

    async fn enable_forwarding(&self) -> Result<bool, NetError> {
        self.with(|s| {
            let was_off = !s.forwarding;
            if was_off {
                s.calls.push("enable_forwarding".into());
            }
            s.forwarding = true;
            Ok(was_off)
        })
    }

    async fn apply_firewall(&self, ruleset: Option<&str>) -> Result<(), NetError> {
        self.with(|s| {
            s.calls.push(format!(
                "apply_firewall {}",
                if ruleset.is_some() { "set" } else { "delete" }
            ));
            s.firewall = ruleset.map(str::to_string);
            Ok(())
        })
    }

    async fn docker_forward(&self, wanted: bool) -> Result<bool, NetError> {
        self.with(|s| {
            let changed = s.docker_forward != wanted;
            if changed {
                s.calls.push(format!("docker_forward {wanted}"));
            }
            s.docker_forward = wanted;
            Ok(changed)
        })
    }
}

#[async_trait]
impl SandboxNet for FakeSandbox {
    async fn state(&self) -> Result<SandboxState, NetError> {
        with_state(&self.state, |s| s.sandboxes.get(&self.pid).cloned())
            .ok_or(NetError::SandboxGone(self.pid))
    }

    async fn link(&self, name: &str) -> Result<Option<LinkState>, NetError> {
        with_state(&self.state, |s| {
            let sb = s
                .sandboxes
                .get(&self.pid)
                .ok_or(NetError::SandboxGone(self.pid))?;
            Ok(sb.links.iter().find(|l| l.name == name).map(|l| LinkState {
                addresses: Vec::new(),
                ..l.clone()
            }))
        })
    }

    async fn configure(
        &self,
        _state: &SandboxState,
        current: &LinkState,
        config: &InterfaceConfig,
    ) -> Result<(), NetError> {
        let pid = self.pid;
        let current = current.name.as_str();
        with_state(&self.state, |s| {
            s.calls
                .push(format!("configure_sandbox {pid} {current} {}", config.name));
            if s.fail_configure {
                return Err(NetError::Failed("injected failure".into()));
            }
            let sb = s
                .sandboxes
                .get_mut(&pid)
                .ok_or(NetError::SandboxGone(pid))?;
            for lo in sb.links.iter_mut().filter(|l| l.name == "lo") {
                lo.up = true;
            }
            let link = sb
                .links
                .iter_mut()
                .find(|l| l.name == current)
                .ok_or_else(|| NetError::Failed(format!("no interface {current}")))?;
            link.name = config.name.clone();
            link.mac = Some(config.mac);
            link.mtu = config.mtu;
            link.up = true;
            link.addresses = vec![config.address];
            if let Some(gw) = config.default_gateway {
                sb.default_gateway = Some(gw);
            }
            for peer in s.peers.values_mut() {
                if peer.0 == pid && peer.1 == current {
                    peer.1 = config.name.clone();
                }
            }
            Ok(())
        })
    }

    async fn del_link(&self, name: &str) -> Result<(), NetError> {
        let pid = self.pid;
        with_state(&self.state, |s| {
            s.calls.push(format!("del_sandbox_link {pid} {name}"));
            if let Some(sb) = s.sandboxes.get_mut(&pid) {
                sb.links.retain(|l| l.name != name);
            }
            let host: Vec<String> = s
                .peers
                .iter()
                .filter(|(_, (p, n))| *p == pid && n == name)
                .map(|(h, _)| h.clone())
                .collect();
            for h in host {
                s.peers.remove(&h);
                s.host.retain(|l| l.name != h);
            }
            Ok(())
        })
    }
}
