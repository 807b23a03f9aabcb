//! An in-process world for central's tests: one in-memory store, any number of central
//! instances on it (each with its own caches), agents played by ephemeral registrations, and
//! requests through the real warp routes. Plus the invariants every test checks.
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed set-up is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use caas_api::central::{ContainerRecord, NodeRecord, PoolView};
use caas_api::{Assignment, Capacity, Desired, NodeInfo, WorkloadKey, ZkLayout};
use caas_central::agent_link::AgentLink;
use caas_central::state::Central;
use caas_central::store::{MemStore, SessionId, Store};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use warp::test::RequestBuilder;

pub const ADMIN: &str = "admin-token-0123456789";

type Reply = Pin<Box<dyn Future<Output = warp::http::Response<bytes::Bytes>> + Send>>;

/// One central instance on the shared store.
pub struct Instance {
    pub store: MemStore,
    pub central: Arc<Central>,
    /// Its routes, built once.
    routes: Arc<dyn Fn(RequestBuilder) -> Reply + Send + Sync>,
}

impl Instance {
    fn new(store: MemStore) -> Self {
        let central = Central::new(Arc::new(store.clone()), ADMIN);
        let routes = caas_central::api::routes(central.clone(), Arc::new(AgentLink::new(None)));
        Self {
            store,
            central,
            routes: Arc::new(move |request: RequestBuilder| {
                let routes = routes.clone();
                Box::pin(async move { request.reply(&routes).await })
            }),
        }
    }

    /// Any request through the routes, answered as it is.
    pub async fn raw(&self, request: RequestBuilder) -> warp::http::Response<bytes::Bytes> {
        (self.routes)(request).await
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = warp::test::request()
            .method(method)
            .path(path)
            .header("authorization", format!("Bearer {token}"));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = (self.routes)(request).await;
        let value = serde_json::from_slice(response.body()).unwrap_or(Value::Null);
        (response.status().as_u16(), value)
    }
}

pub struct World {
    pub store: MemStore,
    pub layout: ZkLayout,
    /// Agent sessions by node id.
    pub sessions: BTreeMap<String, SessionId>,
    pub infos: BTreeMap<String, NodeInfo>,
}

pub fn node_info(id: &str, pool: &str, cpu_millis: u64, memory_bytes: u64) -> NodeInfo {
    NodeInfo {
        version: caas_api::PAYLOAD_VERSION,
        node_id: id.to_string(),
        pool: pool.to_string(),
        api_addr: "127.0.0.1:9".into(),
        underlay: None,
        capacity: Capacity {
            cpu_millis,
            memory_bytes,
        },
        labels: BTreeMap::new(),
        agent_version: "test".into(),
        hostname: id.to_string(),
        started_at: 0,
        engine_ready: true,
        networks: Default::default(),
    }
}

impl World {
    pub fn new() -> Self {
        let layout = ZkLayout::new("/caas").unwrap();
        Self {
            store: MemStore::new(layout.clone()),
            layout,
            sessions: BTreeMap::new(),
            infos: BTreeMap::new(),
        }
    }

    /// A central instance with its own caches.
    pub fn instance(&self) -> Instance {
        Instance::new(self.store.handle())
    }

    /// An agent registers (a new session).
    pub fn register(&mut self, info: NodeInfo) {
        let session = self.store.new_session();
        self.store.register(&info, session).unwrap();
        self.sessions.insert(info.node_id.clone(), session);
        self.infos.insert(info.node_id.clone(), info);
    }

    /// An agent's session ends (the node dies or is partitioned past the session timeout).
    pub fn kill(&mut self, node: &str) {
        if let Some(session) = self.sessions.remove(node) {
            self.store.end_session(session);
        }
    }

    /// A killed node's agent comes back with a new session.
    pub fn revive(&mut self, node: &str) {
        if !self.sessions.contains_key(node) {
            let info = self.infos[node].clone();
            self.register(info);
        }
    }

    /// Creates a pool through the API and returns its token.
    pub async fn pool(&self, at: &Instance, name: &str) -> String {
        let (status, body) = at
            .call(
                "POST",
                "/v1/pools",
                ADMIN,
                Some(serde_json::json!({"name": name})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let view: PoolView = serde_json::from_value(body).unwrap();
        view.token.unwrap()
    }

    pub async fn records(&self, pool: &str) -> Vec<ContainerRecord> {
        let store: &dyn Store = &self.store;
        store
            .containers(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect()
    }

    pub async fn inventory(&self) -> BTreeMap<String, NodeRecord> {
        let store: &dyn Store = &self.store;
        let mut out = BTreeMap::new();
        for id in store.children(&self.layout.inventory_root()).await.unwrap() {
            if let Some((r, _)) = store.inventory(&id).await.unwrap() {
                out.insert(id, r);
            }
        }
        out
    }

    /// Run assignments by workload key: the nodes that are told to run it.
    pub async fn running_assignments(&self) -> BTreeMap<String, Vec<String>> {
        let store: &dyn Store = &self.store;
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for node in store.children(&self.layout.assign_root()).await.unwrap() {
            for key in store
                .children(&self.layout.assign_dir(&node))
                .await
                .unwrap()
            {
                let path = format!("{}/{key}", self.layout.assign_dir(&node));
                let (a, _): (Assignment, _) = store.get(&path).await.unwrap().unwrap();
                if a.desired == Desired::Run {
                    out.entry(key).or_default().push(node.clone());
                }
            }
        }
        out
    }

    /// What must hold after any sequence of requests, races and failures:
    /// - no node's allocation exceeds its capacity, and it equals the sum of its workloads;
    /// - every container record's node accounts for it, and no node accounts for a workload
    ///   whose record says it lives elsewhere or does not exist;
    /// - every (pool, name) is assigned to run on at most one node, the one in its record.
    pub async fn check_invariants(&self, pools: &[&str]) {
        let inventory = self.inventory().await;
        let mut records: BTreeMap<String, ContainerRecord> = BTreeMap::new();
        for pool in pools {
            for r in self.records(pool).await {
                records.insert(WorkloadKey::new(&r.spec.pool, &r.spec.name).to_string(), r);
            }
        }
        for (id, node) in &inventory {
            let sum = node.workloads.values().fold((0u64, 0u64), |acc, w| {
                (
                    acc.0 + w.allocation.cpu_millis,
                    acc.1 + w.allocation.memory_bytes,
                )
            });
            assert_eq!(
                (node.allocated.cpu_millis, node.allocated.memory_bytes),
                sum,
                "node {id}: allocated is the sum of its workloads"
            );
            assert!(
                node.allocated.cpu_millis <= node.info.capacity.cpu_millis
                    && node.allocated.memory_bytes <= node.info.capacity.memory_bytes,
                "node {id} over-committed: {:?} of {:?}",
                node.allocated,
                node.info.capacity
            );
            for key in node.workloads.keys() {
                let record = records
                    .get(key)
                    .unwrap_or_else(|| panic!("node {id} accounts for {key}, which has no record"));
                assert_eq!(
                    &record.node, id,
                    "{key} is accounted on {id} but recorded on {}",
                    record.node
                );
            }
        }
        for (key, record) in &records {
            let node = inventory.get(&record.node).unwrap_or_else(|| {
                panic!("{key} is on {}, which has no inventory record", record.node)
            });
            assert!(
                node.workloads.contains_key(key),
                "{key} missing from {}'s inventory",
                record.node
            );
        }
        let assigned = self.running_assignments().await;
        let mut seen = BTreeSet::new();
        for (key, nodes) in &assigned {
            assert!(nodes.len() <= 1, "{key} is assigned to run on {nodes:?}");
            if let Some(record) = records.get(key) {
                assert_eq!(
                    nodes,
                    &vec![record.node.clone()],
                    "{key} runs where its record says"
                );
            }
            seen.insert(key.clone());
        }
        for key in records.keys() {
            assert!(seen.contains(key), "{key} has a record but no assignment");
        }
    }
}

impl World {
    /// A network's address allocations agree with the records: each belongs to a workload
    /// that has that address on that network and lives on the node the allocation names, and
    /// every endpoint of a record has its allocation.
    pub async fn check_addresses(&self, pool: &str, network: &str) {
        let store: &dyn Store = &self.store;
        let records = self.records(pool).await;
        let ips = store
            .children(&self.layout.ips(pool, network))
            .await
            .unwrap();
        for ip in &ips {
            let (a, _): (caas_api::network::IpAllocation, _) = store
                .get(&self.layout.ip(pool, network, ip))
                .await
                .unwrap()
                .unwrap();
            let record = records
                .iter()
                .find(|r| r.spec.name == a.workload)
                .unwrap_or_else(|| {
                    panic!("{ip} is allocated to {}, which has no record", a.workload)
                });
            assert_eq!(
                record.node, a.node,
                "{ip}: allocation and record disagree on the node"
            );
            assert!(
                record
                    .spec
                    .networks
                    .iter()
                    .any(|e| e.network == network && e.ip == *ip),
                "{ip} is allocated to {} but not in its spec",
                a.workload
            );
        }
        for r in &records {
            for e in r.spec.networks.iter().filter(|e| e.network == network) {
                assert!(
                    ips.contains(&e.ip),
                    "{} has {} without an allocation",
                    r.spec.name,
                    e.ip
                );
            }
        }
    }
}

pub fn container(name: &str, cpu: &str, memory: &str) -> Value {
    serde_json::json!({
        "name": name,
        "image": "caas/test:1",
        "resources": {"cpu": cpu, "memory": memory},
    })
}
