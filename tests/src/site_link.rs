//! A remote site behind a WAN-like link: a network namespace of its own (e.g. for the image
//! center) joined to a fabric's bridge by one veth, whose site end can be shaped with `tc tbf`
//! (the rate the site can send at). The bytes each end of the link sent are readable, so a test
//! can tell what crossed the link.
//!
//! The namespace is named like [`crate::netns::Topology`]'s (`c<pid>x...`), so a later run sweeps
//! it when the process that made it died; deleting it deletes the veth.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context};

fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running `{program}` (install iproute2)"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Byte and packet counters of one interface (`ip -s link`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkCounters {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub rx_packets: u64,
}

/// A namespace joined to a fabric bridge by a veth; deleted (with the veth) on drop.
#[derive(Debug)]
pub struct SiteLink {
    /// The site's namespace.
    pub netns: String,
    /// The site's address on the fabric's subnet.
    pub ip: Ipv4Addr,
    /// The veth end inside the site (`eth0`).
    device: String,
}

impl SiteLink {
    /// Creates namespace `c<pid>xs<seq>-site` with `eth0` holding `ip/prefix`, its peer a port of
    /// bridge `bridge` in namespace `fabric`. Unshaped until [`SiteLink::shape`].
    pub fn create(fabric: &str, bridge: &str, ip: Ipv4Addr, prefix: u8) -> anyhow::Result<Self> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let tag = format!(
            "c{}xs{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let netns = format!("{tag}-site");
        run("ip", &["netns", "add", &netns])?;
        let link = Self {
            netns,
            ip,
            device: "eth0".into(),
        };
        // Both ends are made in their namespaces: nothing is ever left in the host's.
        let outer = format!("{tag}f");
        let inner = format!("{tag}s");
        run(
            "ip",
            &[
                "link",
                "add",
                &outer,
                "netns",
                fabric,
                "type",
                "veth",
                "peer",
                "name",
                &inner,
                "netns",
                &link.netns,
            ],
        )?;
        run(
            "ip",
            &["-n", fabric, "link", "set", &outer, "master", bridge, "up"],
        )?;
        let ns = link.netns.as_str();
        run("ip", &["-n", ns, "link", "set", "lo", "up"])?;
        run(
            "ip",
            &["-n", ns, "link", "set", &inner, "name", &link.device],
        )?;
        run(
            "ip",
            &[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/{prefix}"),
                "dev",
                &link.device,
            ],
        )?;
        run("ip", &["-n", ns, "link", "set", &link.device, "up"])?;
        Ok(link)
    }

    /// Limits what the site sends into the fabric: `tc qdisc replace dev eth0 root tbf rate RATE
    /// burst BURST latency LATENCY` inside the site (e.g. `100mbit`, `256kb`, `50ms`).
    pub fn shape(&self, rate: &str, burst: &str, latency: &str) -> anyhow::Result<()> {
        run(
            "tc",
            &[
                "-n",
                &self.netns,
                "qdisc",
                "replace",
                "dev",
                &self.device,
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                burst,
                "latency",
                latency,
            ],
        )
        .map(drop)
    }

    /// Removes the shaping (the veth's default qdisc again).
    pub fn unshape(&self) -> anyhow::Result<()> {
        run(
            "tc",
            &[
                "-n",
                &self.netns,
                "qdisc",
                "del",
                "dev",
                &self.device,
                "root",
            ],
        )
        .map(drop)
    }

    /// `tc -s qdisc show` of the site's end (rate, drops, overlimits), for reports.
    pub fn qdisc_stats(&self) -> anyhow::Result<String> {
        run(
            "tc",
            &[
                "-n",
                &self.netns,
                "-s",
                "qdisc",
                "show",
                "dev",
                &self.device,
            ],
        )
    }

    /// The counters of the site's end: `tx_bytes` is what the site sent toward the fabric.
    pub fn counters(&self) -> anyhow::Result<LinkCounters> {
        let text = run(
            "ip",
            &[
                "-n",
                &self.netns,
                "-s",
                "-j",
                "link",
                "show",
                "dev",
                &self.device,
            ],
        )?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing `ip -s -j link` output {text:?}"))?;
        let stats = &value[0]["stats64"];
        let field = |dir: &str, name: &str| {
            stats[dir][name]
                .as_u64()
                .with_context(|| format!("no stats64.{dir}.{name} in {text:?}"))
        };
        Ok(LinkCounters {
            tx_bytes: field("tx", "bytes")?,
            rx_bytes: field("rx", "bytes")?,
            tx_packets: field("tx", "packets")?,
            rx_packets: field("rx", "packets")?,
        })
    }
}

impl Drop for SiteLink {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .output();
    }
}
