//! The ZooKeeper layout under a configurable root, in one place so no component builds a path
//! by hand.

use std::fmt;

use crate::name::validate_dns_label;
use crate::ValidationError;

/// Paths under the caas root (default `/caas`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkLayout {
    root: String,
}

impl ZkLayout {
    /// `root` must be an absolute ZooKeeper path without a trailing slash.
    pub fn new(root: &str) -> Result<Self, ValidationError> {
        let valid = root.starts_with('/')
            && root.len() > 1
            && !root.ends_with('/')
            && !root.contains("//")
            && root
                .split('/')
                .skip(1)
                .all(|p| !p.is_empty() && p != "." && p != "..");
        if !valid {
            return Err(ValidationError::new(
                "zk_root",
                format!("{root:?} is not an absolute ZooKeeper path; use e.g. \"/caas\""),
            ));
        }
        Ok(Self {
            root: root.to_string(),
        })
    }

    pub fn root(&self) -> &str {
        &self.root
    }
    pub fn nodes(&self) -> String {
        format!("{}/nodes", self.root)
    }
    pub fn node(&self, node: &str) -> String {
        format!("{}/nodes/{node}", self.root)
    }
    pub fn assign_root(&self) -> String {
        format!("{}/assign", self.root)
    }
    pub fn assign_dir(&self, node: &str) -> String {
        format!("{}/assign/{node}", self.root)
    }
    pub fn assignment(&self, node: &str, key: &WorkloadKey) -> String {
        format!("{}/assign/{node}/{key}", self.root)
    }
    pub fn status_root(&self) -> String {
        format!("{}/status", self.root)
    }
    pub fn status_dir(&self, node: &str) -> String {
        format!("{}/status/{node}", self.root)
    }
    pub fn status(&self, node: &str, key: &WorkloadKey) -> String {
        format!("{}/status/{node}/{key}", self.root)
    }
    pub fn pools(&self) -> String {
        format!("{}/pools", self.root)
    }
    pub fn pool(&self, pool: &str) -> String {
        format!("{}/pools/{pool}", self.root)
    }
    pub fn containers(&self, pool: &str) -> String {
        format!("{}/pools/{pool}/containers", self.root)
    }
    pub fn container(&self, pool: &str, name: &str) -> String {
        format!("{}/pools/{pool}/containers/{name}", self.root)
    }
    pub fn networks(&self, pool: &str) -> String {
        format!("{}/pools/{pool}/networks", self.root)
    }
    pub fn network(&self, pool: &str, network: &str) -> String {
        format!("{}/pools/{pool}/networks/{network}", self.root)
    }
    /// Directory of a network's address allocations.
    pub fn ips(&self, pool: &str, network: &str) -> String {
        format!("{}/pools/{pool}/networks/{network}/ips", self.root)
    }
    pub fn ip(&self, pool: &str, network: &str, ip: &str) -> String {
        format!("{}/pools/{pool}/networks/{network}/ips/{ip}", self.root)
    }
    /// The network's DNS service (`DnsSpec`), at most one.
    pub fn dns(&self, pool: &str, network: &str) -> String {
        format!("{}/pools/{pool}/networks/{network}/dns", self.root)
    }
    /// Directory of the network's load balancers (`LbSpec` per name).
    pub fn lbs(&self, pool: &str, network: &str) -> String {
        format!("{}/pools/{pool}/networks/{network}/lbs", self.root)
    }
    pub fn lb(&self, pool: &str, network: &str, name: &str) -> String {
        format!("{}/pools/{pool}/networks/{network}/lbs/{name}", self.root)
    }
    /// Cluster-wide VNI claims: `vnis/<vni>` holds the pool and network that own it.
    /// The pool's registry proxies (one znode per proxy).
    pub fn registry_proxies(&self, pool: &str) -> String {
        format!("{}/registry-proxies", self.pool(pool))
    }
    pub fn registry_proxy(&self, pool: &str, name: &str) -> String {
        format!("{}/{name}", self.registry_proxies(pool))
    }
    /// The pool's prewarms (one znode per prewarm, its nodes' states below it).
    pub fn prewarms(&self, pool: &str) -> String {
        format!("{}/prewarms", self.pool(pool))
    }
    pub fn prewarm(&self, pool: &str, id: &str) -> String {
        format!("{}/{id}", self.prewarms(pool))
    }
    pub fn prewarm_node(&self, pool: &str, id: &str, node: &str) -> String {
        format!("{}/{node}", self.prewarm(pool, id))
    }
    /// The pool's audit log: one znode per terminal or exec session, named so that names sort
    /// by time (`<millis>-<random>`). Kept apart from the pool's record so that removing a pool
    /// does not remove its trail.
    pub fn audit(&self, pool: &str) -> String {
        format!("{}/audit/{pool}", self.root)
    }
    pub fn audit_root(&self) -> String {
        format!("{}/audit", self.root)
    }
    pub fn audit_entry(&self, pool: &str, id: &str) -> String {
        format!("{}/{id}", self.audit(pool))
    }
    pub fn vnis(&self) -> String {
        format!("{}/vnis", self.root)
    }
    pub fn vni(&self, vni: u32) -> String {
        format!("{}/vnis/{vni}", self.root)
    }
    /// Cluster-wide VLAN claims: `vlans/<id>` (or `vlans/untagged` for the access port) holds
    /// the pool and network that own the segment; two networks on one segment would be one
    /// broadcast domain, across pools too.
    pub fn vlans(&self) -> String {
        format!("{}/vlans", self.root)
    }
    pub fn vlan(&self, segment: &str) -> String {
        format!("{}/vlans/{segment}", self.root)
    }
    pub fn inventory_root(&self) -> String {
        format!("{}/inventory", self.root)
    }
    pub fn inventory(&self, node: &str) -> String {
        format!("{}/inventory/{node}", self.root)
    }
    pub fn leader(&self) -> String {
        format!("{}/leader", self.root)
    }
}

/// `<pool>.<name>`: how a workload is named in `assign/` and `status/`. Both parts are DNS-1123
/// labels, which contain no dot, so the split is unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadKey {
    pub pool: String,
    pub name: String,
}

impl WorkloadKey {
    pub fn new(pool: &str, name: &str) -> Self {
        Self {
            pool: pool.to_string(),
            name: name.to_string(),
        }
    }

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let (pool, name) = text.split_once('.').ok_or_else(|| {
            ValidationError::new("key", format!("{text:?} is not of the form <pool>.<name>"))
        })?;
        validate_dns_label("pool", pool)?;
        validate_dns_label("name", name)?;
        Ok(Self::new(pool, name))
    }
}

impl fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.pool, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_keys() {
        let l = ZkLayout::new("/t/caas").unwrap();
        let k = WorkloadKey::parse("p1.web-1").unwrap();
        assert_eq!(l.assignment("n1", &k), "/t/caas/assign/n1/p1.web-1");
        assert_eq!(l.status("n1", &k), "/t/caas/status/n1/p1.web-1");
        assert!(WorkloadKey::parse("nodot").is_err());
        assert!(WorkloadKey::parse("p.Bad").is_err());
        for bad in ["caas", "/", "/caas/", "//x", "/a/../b"] {
            assert!(ZkLayout::new(bad).is_err(), "{bad}");
        }
    }
}
