//! `NetlinkBackend`: the `NetworkBackend` on the kernel, through rtnetlink (netlink messages, no
//! `ip`/`bridge` commands). The agent's own namespace has one long-lived connection; a sandbox's
//! namespace gets one per wiring (`SandboxNet`), opened by a thread of its own that `setns`es
//! into `/proc/<pid>/ns/net` and exits (a socket stays in the namespace it was opened in, and no
//! runtime thread ever leaves the agent's namespace). Devices are looked up by name; only full
//! passes dump. nftables goes through `nft -f -`.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;

use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use ipnet::Ipv4Net;
use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_REPLACE,
    NLM_F_REQUEST,
};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, InfoVlan, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use rtnetlink::packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, LinkVlan, LinkVxlan,
    RouteMessageBuilder,
};

use super::{
    FdbEntry, InterfaceConfig, LinkChange, LinkKind, LinkState, NeighbourEntry, NetError,
    NetworkBackend, SandboxNet, SandboxState, VethPair, VxlanInfo,
};

const EOPNOTSUPP: i32 = 95;
const ENOENT: i32 = 2;
const ENODEV: i32 = 19;
const EEXIST: i32 = 17;
const ESRCH: i32 = 3;
const EADDRNOTAVAIL: i32 = 99;

/// The kernel through netlink, in the agent's network namespace.
#[derive(Clone)]
pub struct NetlinkBackend {
    handle: Handle,
}

impl std::fmt::Debug for NetlinkBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NetlinkBackend")
    }
}

fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

fn failed(what: impl std::fmt::Display, e: rtnetlink::Error) -> NetError {
    match e {
        rtnetlink::Error::NetlinkError(m) => NetError::Failed(format!("{what}: {}", m.to_io())),
        other => NetError::Failed(format!("{what}: {other}")),
    }
}

impl NetlinkBackend {
    /// Opens the connection; must run inside the tokio runtime.
    pub fn new() -> Result<Self, NetError> {
        let (connection, handle, _) = rtnetlink::new_connection()
            .map_err(|e| NetError::Failed(format!("opening a netlink socket: {e}")))?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// A connection inside the network namespace of process `pid`; closed when the returned
    /// guard drops (an open socket would keep a removed sandbox's namespace, and the veth
    /// pair in it, alive).
    async fn in_sandbox(pid: u32) -> Result<SandboxConnection, NetError> {
        let path = format!("/proc/{pid}/ns/net");
        let netns = std::fs::File::open(&path).map_err(|_| NetError::SandboxGone(pid))?;
        let runtime = tokio::runtime::Handle::current();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // setns changes the calling thread only: a thread of our own enters the namespace,
        // opens the socket there (registered with the runtime's reactor) and ends.
        std::thread::Builder::new()
            .name("caas-netns".into())
            .spawn(move || {
                let result = nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(|e| NetError::Failed(format!("entering the sandbox's namespace: {e}")))
                    .and_then(|()| {
                        let _guard = runtime.enter();
                        rtnetlink::new_connection().map_err(|e| {
                            NetError::Failed(format!("netlink socket in the sandbox: {e}"))
                        })
                    });
                let _ = tx.send(result);
            })
            .map_err(|e| NetError::Failed(format!("starting a namespace thread: {e}")))?;
        let (connection, handle, _) = rx
            .await
            .map_err(|_| NetError::Failed("the namespace thread died".into()))??;
        Ok(SandboxConnection {
            handle,
            task: tokio::spawn(connection),
        })
    }

    /// One device by name (the kernel looks it up; nothing is dumped), without addresses.
    async fn link_by_name(handle: &Handle, name: &str) -> Result<Option<LinkState>, NetError> {
        let mut links = handle.link().get().match_name(name.to_string()).execute();
        match links.try_next().await {
            Ok(link) => Ok(link.map(link_state)),
            Err(e) if matches!(errno(&e), Some(ENODEV)) => Ok(None),
            Err(e) => Err(failed(format!("looking up {name}"), e)),
        }
    }

    async fn index_of(handle: &Handle, name: &str) -> Result<u32, NetError> {
        Self::link_by_name(handle, name)
            .await?
            .map(|l| l.index)
            .ok_or_else(|| NetError::Failed(format!("no device {name}")))
    }

    /// The address messages of one device.
    async fn address_messages(
        handle: &Handle,
        index: u32,
    ) -> Result<Vec<AddressMessage>, NetError> {
        let all: Vec<AddressMessage> = handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(|e| failed("listing addresses", e))?;
        Ok(all
            .into_iter()
            .filter(|m| m.header.index == index)
            .collect())
    }

    /// Removes one IPv4 address from a device, if it has it.
    async fn remove_address(handle: &Handle, index: u32, address: Ipv4Net) -> Result<(), NetError> {
        for m in Self::address_messages(handle, index).await? {
            let matches = m.header.prefix_len == address.prefix_len()
                && m.attributes.iter().any(|a| {
                    matches!(a, AddressAttribute::Local(IpAddr::V4(ip)) if *ip == address.addr())
                });
            if matches {
                match handle.address().del(m).execute().await {
                    Err(e) if matches!(errno(&e), Some(EADDRNOTAVAIL)) => {}
                    r => r.map_err(|e| failed(format!("removing {address}"), e))?,
                }
            }
        }
        Ok(())
    }

    async fn list_links(handle: &Handle) -> Result<Vec<LinkState>, NetError> {
        let mut links: Vec<LinkState> = handle
            .link()
            .get()
            .execute()
            .map_ok(link_state)
            .try_collect()
            .await
            .map_err(|e| failed("listing devices", e))?;
        let addresses: Vec<AddressMessage> = handle
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(|e| failed("listing addresses", e))?;
        for a in addresses {
            if let (Some(link), Some(net)) = (
                links.iter_mut().find(|l| l.index == a.header.index),
                ipv4_of(&a),
            ) {
                link.addresses.push(net);
            }
        }
        Ok(links)
    }

    async fn neighbour_dump(
        &self,
        device: &str,
        family: AddressFamily,
    ) -> Result<Vec<NeighbourMessage>, NetError> {
        let index = Self::index_of(&self.handle, device).await?;
        // The dump is not filtered by the kernel (an AF_BRIDGE dump parses its header
        // differently); entries of other devices are dropped here.
        let request = self.handle.neighbours().get().set_address_family(family);
        let all: Vec<NeighbourMessage> = request
            .execute()
            .try_collect()
            .await
            .map_err(|e| failed(format!("listing entries of {device}"), e))?;
        Ok(all
            .into_iter()
            .filter(|n| n.header.ifindex == index)
            .collect())
    }

    /// Sends a neighbour message with the given flags and waits for the kernel's answer.
    /// Sends one FDB/neighbour request and waits for the kernel's answer. With `absent_ok`, the
    /// kernel's ENOENT (a delete of an entry that is already gone) counts as success.
    async fn neighbour_request(
        &self,
        message: RouteNetlinkMessage,
        flags: u16,
        absent_ok: bool,
        what: String,
    ) -> Result<(), NetError> {
        let mut request = NetlinkMessage::from(message);
        request.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let mut handle = self.handle.clone();
        let mut answers = handle.request(request).map_err(|e| failed(&what, e))?;
        while let Some(answer) = answers.next().await {
            if let NetlinkPayload::Error(e) = answer.payload {
                match e.code {
                    Some(code)
                        if absent_ok && code.get() == -(nix::errno::Errno::ENOENT as i32) => {}
                    Some(_) => return Err(failed(&what, rtnetlink::Error::NetlinkError(e))),
                    None => {}
                }
            }
        }
        Ok(())
    }

    fn fdb_message(index: u32, entry: FdbEntry) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Bridge;
        m.header.ifindex = index;
        m.header.state = NeighbourState::Permanent;
        m.header.flags = NeighbourFlags::Own;
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(entry.mac.to_vec()));
        m.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                entry.vtep,
            )));
        m
    }

    fn neigh_message(index: u32, entry: NeighbourEntry) -> NeighbourMessage {
        let mut m = NeighbourMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.ifindex = index;
        m.header.state = NeighbourState::Permanent;
        m.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
                entry.ip,
            )));
        m.attributes
            .push(NeighbourAttribute::LinkLayerAddress(entry.mac.to_vec()));
        m
    }

    async fn default_gateway(handle: &Handle) -> Result<Option<Ipv4Addr>, NetError> {
        let routes: Vec<_> = handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(|e| failed("listing routes", e))?;
        Ok(routes
            .iter()
            .filter(|r| r.header.destination_prefix_length == 0 && r.header.table == 254)
            .find_map(|r| {
                r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(RouteAddress::Inet(gw)) => Some(*gw),
                    _ => None,
                })
            }))
    }

    async fn set_link_on(handle: &Handle, name: &str, change: &LinkChange) -> Result<(), NetError> {
        let index = Self::index_of(handle, name).await?;
        let mut builder = LinkUnspec::new_with_index(index);
        if let Some(mac) = change.mac {
            builder = builder.address(mac.to_vec());
        }
        if let Some(mtu) = change.mtu {
            builder = builder.mtu(mtu);
        }
        if let Some(master) = change.master {
            builder = builder.controller(master);
        }
        if change.up {
            builder = builder.up();
        }
        handle
            .link()
            .set(builder.build())
            .execute()
            .await
            .map_err(|e| failed(format!("setting {name} {change:?}"), e))
    }
}

/// A netlink connection inside a sandbox; the socket closes on drop.
struct SandboxConnection {
    handle: Handle,
    task: tokio::task::JoinHandle<()>,
}

impl std::ops::Deref for SandboxConnection {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for SandboxConnection {
    fn drop(&mut self) {
        // A netlink-proto connection runs until its socket fails; the agent ends it.
        self.task.abort();
    }
}

/// The IPv4 address an address message carries.
fn ipv4_of(m: &AddressMessage) -> Option<Ipv4Net> {
    m.attributes.iter().find_map(|attr| match attr {
        AddressAttribute::Local(IpAddr::V4(ip)) => Ipv4Net::new(*ip, m.header.prefix_len).ok(),
        _ => None,
    })
}

fn link_state(m: LinkMessage) -> LinkState {
    let mut state = LinkState {
        index: m.header.index,
        name: String::new(),
        kind: LinkKind::Other(String::new()),
        mtu: 0,
        mac: None,
        up: m.header.flags.contains(LinkFlags::Up),
        master: None,
        addresses: Vec::new(),
    };
    let mut parent = None;
    for attr in m.attributes {
        match attr {
            LinkAttribute::Link(index) => parent = Some(index),
            LinkAttribute::IfName(name) => state.name = name,
            LinkAttribute::Mtu(mtu) => state.mtu = mtu,
            LinkAttribute::Controller(master) => state.master = Some(master),
            LinkAttribute::Address(mac) if mac.len() == 6 => {
                let mut m = [0u8; 6];
                m.copy_from_slice(&mac);
                state.mac = Some(m);
            }
            LinkAttribute::LinkInfo(infos) => {
                let mut vxlan = None;
                for info in infos {
                    match info {
                        LinkInfo::Kind(InfoKind::Bridge) => state.kind = LinkKind::Bridge,
                        LinkInfo::Kind(InfoKind::Veth) => state.kind = LinkKind::Veth,
                        // The kernel sends Kind before Data; Data fills in the id.
                        LinkInfo::Kind(InfoKind::Vlan) => {
                            state.kind = LinkKind::Vlan {
                                id: 0,
                                parent: None,
                            };
                        }
                        LinkInfo::Data(InfoData::Vlan(data)) => {
                            for d in data {
                                if let InfoVlan::Id(id) = d {
                                    state.kind = LinkKind::Vlan { id, parent: None };
                                }
                            }
                        }
                        LinkInfo::Kind(InfoKind::Vxlan) => {
                            vxlan.get_or_insert(VxlanInfo {
                                vni: 0,
                                local: None,
                                port: 0,
                                learning: true,
                                proxy: false,
                            });
                        }
                        LinkInfo::Kind(other) => state.kind = LinkKind::Other(other.to_string()),
                        LinkInfo::Data(InfoData::Vxlan(data)) => {
                            let v = vxlan.get_or_insert(VxlanInfo {
                                vni: 0,
                                local: None,
                                port: 0,
                                learning: true,
                                proxy: false,
                            });
                            for d in data {
                                match d {
                                    InfoVxlan::Id(id) => v.vni = id,
                                    InfoVxlan::Local(ip) => v.local = Some(ip),
                                    InfoVxlan::Port(port) => v.port = port,
                                    InfoVxlan::Learning(on) => v.learning = on,
                                    InfoVxlan::Proxy(on) => v.proxy = on,
                                    _ => {}
                                }
                            }
                        }
                        _ => {}
                    }
                }
                if let Some(v) = vxlan {
                    state.kind = LinkKind::Vxlan(v);
                }
            }
            _ => {}
        }
    }
    if let LinkKind::Vlan { parent: p, .. } = &mut state.kind {
        *p = parent;
    }
    state
}

#[async_trait]
impl NetworkBackend for NetlinkBackend {
    async fn links(&self) -> Result<Vec<LinkState>, NetError> {
        Self::list_links(&self.handle).await
    }

    async fn link(&self, name: &str) -> Result<Option<LinkState>, NetError> {
        Self::link_by_name(&self.handle, name).await
    }

    async fn addresses(&self, index: u32) -> Result<Vec<Ipv4Net>, NetError> {
        Ok(Self::address_messages(&self.handle, index)
            .await?
            .iter()
            .filter_map(ipv4_of)
            .collect())
    }

    async fn add_bridge(&self, name: &str) -> Result<(), NetError> {
        self.handle
            .link()
            .add(LinkBridge::new(name).build())
            .execute()
            .await
            .map_err(|e| match errno(&e) {
                Some(EOPNOTSUPP) => NetError::Unsupported(format!(
                    "the kernel cannot create bridge devices (module bridge missing?): {e}"
                )),
                _ => failed(format!("creating bridge {name}"), e),
            })
    }

    async fn add_vxlan(
        &self,
        name: &str,
        vni: u32,
        local: Ipv4Addr,
        port: u16,
    ) -> Result<(), NetError> {
        let message = LinkVxlan::new(name, vni)
            .local(local)
            .port(port)
            .learning(false)
            .proxy(true)
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|e| match errno(&e) {
                Some(EOPNOTSUPP) => NetError::Unsupported(format!(
                    "the kernel cannot create VXLAN devices (module vxlan missing?): {e}"
                )),
                _ => failed(format!("creating VXLAN device {name} (vni {vni})"), e),
            })
    }

    async fn add_vlan(&self, name: &str, parent: u32, vlan_id: u16) -> Result<(), NetError> {
        self.handle
            .link()
            .add(LinkVlan::new(name, parent, vlan_id).build())
            .execute()
            .await
            .map_err(|e| match errno(&e) {
                Some(EOPNOTSUPP) => NetError::Unsupported(format!(
                    "the kernel cannot create 802.1Q VLAN sub-interfaces (module 8021q \
                     missing): {e}"
                )),
                _ => failed(
                    format!("creating VLAN sub-interface {name} (id {vlan_id})"),
                    e,
                ),
            })
    }

    async fn add_veth(&self, pair: &VethPair) -> Result<(), NetError> {
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(pair.peer.clone())
            .address(pair.peer_mac.to_vec())
            .mtu(pair.mtu)
            .setns_by_pid(pair.pid)
            .build();
        let message = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(pair.host.clone())
            .mtu(pair.mtu)
            .controller(pair.bridge)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.handle
            .link()
            .add(message)
            .execute()
            .await
            .map_err(|e| match errno(&e) {
                Some(EOPNOTSUPP) => NetError::Unsupported(format!(
                    "the kernel cannot create veth pairs (module veth missing?): {e}"
                )),
                Some(ESRCH) => NetError::SandboxGone(pair.pid),
                _ => failed(
                    format!(
                        "creating veth pair {}/{} (pid {})",
                        pair.host, pair.peer, pair.pid
                    ),
                    e,
                ),
            })
    }

    async fn set_link(&self, name: &str, change: &LinkChange) -> Result<(), NetError> {
        Self::set_link_on(&self.handle, name, change).await
    }

    async fn add_address(&self, name: &str, address: Ipv4Net) -> Result<(), NetError> {
        let index = Self::index_of(&self.handle, name).await?;
        match self
            .handle
            .address()
            .add(index, IpAddr::V4(address.addr()), address.prefix_len())
            .execute()
            .await
        {
            Err(e) if errno(&e) == Some(EEXIST) => Ok(()),
            r => r.map_err(|e| failed(format!("adding {address} to {name}"), e)),
        }
    }

    async fn del_address(&self, name: &str, address: Ipv4Net) -> Result<(), NetError> {
        let index = Self::index_of(&self.handle, name).await?;
        Self::remove_address(&self.handle, index, address)
            .await
            .map_err(|e| NetError::Failed(format!("{name}: {e}")))
    }

    async fn del_link(&self, name: &str) -> Result<(), NetError> {
        let index = match Self::index_of(&self.handle, name).await {
            Ok(index) => index,
            Err(_) => return Ok(()),
        };
        match self.handle.link().del(index).execute().await {
            Err(e) if matches!(errno(&e), Some(ENODEV | ENOENT)) => Ok(()),
            r => r.map_err(|e| failed(format!("deleting {name}"), e)),
        }
    }

    async fn fdb(&self, device: &str) -> Result<Vec<FdbEntry>, NetError> {
        let entries = self.neighbour_dump(device, AddressFamily::Bridge).await?;
        Ok(entries
            .into_iter()
            .filter(|n| n.header.state == NeighbourState::Permanent)
            .filter_map(|n| {
                let mut mac = None;
                let mut vtep = None;
                for a in &n.attributes {
                    match a {
                        NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                            let mut m = [0u8; 6];
                            m.copy_from_slice(l);
                            mac = Some(m);
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
                            vtep = Some(*ip)
                        }
                        // An AF_BRIDGE entry's destination is not parsed as IPv4.
                        NeighbourAttribute::Destination(NeighbourAddress::Other(b))
                            if b.len() == 4 =>
                        {
                            vtep = Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
                        }
                        _ => {}
                    }
                }
                Some(FdbEntry {
                    mac: mac?,
                    vtep: vtep?,
                })
            })
            .collect())
    }

    async fn add_fdb(&self, device: &str, entry: FdbEntry) -> Result<(), NetError> {
        let index = Self::index_of(&self.handle, device).await?;
        // The all-zero MAC lists every VTEP (append); a unicast MAC has one (replace).
        let flags = if entry.mac == super::ZERO_MAC {
            NLM_F_CREATE | NLM_F_APPEND
        } else {
            NLM_F_CREATE | NLM_F_REPLACE
        };
        self.neighbour_request(
            RouteNetlinkMessage::NewNeighbour(Self::fdb_message(index, entry)),
            flags,
            false,
            format!("adding FDB entry {entry:?} on {device}"),
        )
        .await
    }

    async fn del_fdb(&self, device: &str, entry: FdbEntry) -> Result<(), NetError> {
        let index = Self::index_of(&self.handle, device).await?;
        self.neighbour_request(
            RouteNetlinkMessage::DelNeighbour(Self::fdb_message(index, entry)),
            0,
            true,
            format!("deleting FDB entry {entry:?} on {device}"),
        )
        .await
    }

    async fn neighbours(&self, device: &str) -> Result<Vec<NeighbourEntry>, NetError> {
        let entries = self.neighbour_dump(device, AddressFamily::Inet).await?;
        Ok(entries
            .into_iter()
            .filter(|n| n.header.state == NeighbourState::Permanent)
            .filter_map(|n| {
                let mut mac = None;
                let mut ip = None;
                for a in &n.attributes {
                    match a {
                        NeighbourAttribute::LinkLayerAddress(l) if l.len() == 6 => {
                            let mut m = [0u8; 6];
                            m.copy_from_slice(l);
                            mac = Some(m);
                        }
                        NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
                        _ => {}
                    }
                }
                Some(NeighbourEntry { ip: ip?, mac: mac? })
            })
            .collect())
    }

    async fn add_neighbour(&self, device: &str, entry: NeighbourEntry) -> Result<(), NetError> {
        let index = Self::index_of(&self.handle, device).await?;
        self.neighbour_request(
            RouteNetlinkMessage::NewNeighbour(Self::neigh_message(index, entry)),
            NLM_F_CREATE | NLM_F_REPLACE,
            false,
            format!("adding neighbour {entry:?} on {device}"),
        )
        .await
    }

    async fn del_neighbour(&self, device: &str, entry: NeighbourEntry) -> Result<(), NetError> {
        let index = Self::index_of(&self.handle, device).await?;
        self.neighbour_request(
            RouteNetlinkMessage::DelNeighbour(Self::neigh_message(index, entry)),
            0,
            true,
            format!("deleting neighbour {entry:?} on {device}"),
        )
        .await
    }

    async fn bridge_rules_state(&self) -> Result<super::bridge_rules::Installed, NetError> {
        super::bridge_rules::read_installed().await
    }

    async fn apply_bridge_rules(&self, script: &str) -> Result<(), NetError> {
        super::bridge_rules::run_restore(script).await
    }

    async fn resolve_mac(
        &self,
        device: &str,
        source_mac: super::Mac,
        ip: Ipv4Addr,
    ) -> Result<Option<super::Mac>, NetError> {
        let device = device.to_string();
        tokio::task::spawn_blocking(move || {
            super::arp_probe::probe(&device, source_mac, ip, super::arp_probe::PROBE_TIMEOUT)
        })
        .await
        .map_err(|e| NetError::Failed(format!("ARP probe task: {e}")))?
    }

    async fn enter_sandbox(&self, pid: u32) -> Result<Box<dyn SandboxNet>, NetError> {
        Ok(Box::new(Self::in_sandbox(pid).await?))
    }

    async fn enable_forwarding(&self) -> Result<bool, NetError> {
        const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
        let now = tokio::fs::read_to_string(PATH)
            .await
            .map_err(|e| NetError::Failed(format!("reading {PATH}: {e}")))?;
        if now.trim() == "1" {
            return Ok(false);
        }
        tokio::fs::write(PATH, b"1")
            .await
            .map_err(|e| NetError::Failed(format!("enabling IPv4 forwarding ({PATH}): {e}")))?;
        Ok(true)
    }

    async fn apply_firewall(&self, ruleset: Option<&str>) -> Result<(), NetError> {
        let script = super::firewall::transaction(ruleset);
        super::firewall::run_nft(&script).await
    }

    async fn docker_forward(&self, wanted: bool) -> Result<bool, NetError> {
        Ok(super::docker_forward::apply(wanted).await? == super::docker_forward::Outcome::Changed)
    }
}

#[async_trait]
impl SandboxNet for SandboxConnection {
    async fn state(&self) -> Result<SandboxState, NetError> {
        Ok(SandboxState {
            links: NetlinkBackend::list_links(&self.handle).await?,
            default_gateway: NetlinkBackend::default_gateway(&self.handle).await?,
        })
    }

    async fn link(&self, name: &str) -> Result<Option<LinkState>, NetError> {
        NetlinkBackend::link_by_name(&self.handle, name).await
    }

    async fn configure(
        &self,
        state: &SandboxState,
        current: &LinkState,
        config: &InterfaceConfig,
    ) -> Result<(), NetError> {
        let handle = &self.handle;
        if let Some(lo) = state.links.iter().find(|l| l.name == "lo" && !l.up) {
            handle
                .link()
                .set(LinkUnspec::new_with_index(lo.index).up().build())
                .execute()
                .await
                .map_err(|e| failed("bringing lo up", e))?;
        }
        let index = current.index;
        if current.name != config.name || current.mac != Some(config.mac) {
            // Renaming and changing the MAC need the interface down.
            let builder = LinkUnspec::new_with_index(index)
                .down()
                .name(config.name.clone())
                .address(config.mac.to_vec());
            handle
                .link()
                .set(builder.build())
                .execute()
                .await
                .map_err(|e| failed(format!("renaming {} to {}", current.name, config.name), e))?;
        }
        for stale in current.addresses.iter().filter(|a| **a != config.address) {
            NetlinkBackend::remove_address(handle, index, *stale).await?;
        }
        let renamed = current.name != config.name || current.mac != Some(config.mac);
        if !current.up || current.mtu != config.mtu || renamed {
            let mut builder = LinkUnspec::new_with_index(index).up();
            if current.mtu != config.mtu {
                builder = builder.mtu(config.mtu);
            }
            handle
                .link()
                .set(builder.build())
                .execute()
                .await
                .map_err(|e| failed(format!("bringing {} up", config.name), e))?;
        }
        if !current.addresses.contains(&config.address) {
            match handle
                .address()
                .add(
                    index,
                    IpAddr::V4(config.address.addr()),
                    config.address.prefix_len(),
                )
                .execute()
                .await
            {
                Err(e) if errno(&e) == Some(EEXIST) => {}
                r => r.map_err(|e| failed(format!("adding {}", config.address), e))?,
            }
        }
        if let Some(gw) = config.default_gateway {
            // A fresh interface was down: the kernel dropped any route through it, so the
            // route is (re)placed whenever the interface was not already up and right.
            if state.default_gateway != Some(gw) || !current.up || renamed {
                let route = RouteMessageBuilder::<Ipv4Addr>::new()
                    .gateway(gw)
                    .output_interface(index)
                    .build();
                handle
                    .route()
                    .add(route)
                    .replace()
                    .execute()
                    .await
                    .map_err(|e| failed(format!("default route via {gw}"), e))?;
            }
        }
        Ok(())
    }

    async fn del_link(&self, name: &str) -> Result<(), NetError> {
        let Some(link) = NetlinkBackend::link_by_name(&self.handle, name).await? else {
            return Ok(());
        };
        match self.handle.link().del(link.index).execute().await {
            Err(e) if matches!(errno(&e), Some(ENODEV | ENOENT)) => Ok(()),
            r => r.map_err(|e| failed(format!("deleting {name} in the sandbox"), e)),
        }
    }
}
