//! Tables, JSON and error text as people and scripts see them.

use serde_json::json;

use super::*;
use caas_api::network::NetworkView;
use caas_client::{ClientError, ErrorBody, NetworkKind};

/// 2024-05-01T10:20:30Z
const STARTED: u64 = 1_714_558_830;

pub(crate) fn nodes() -> Vec<NodeView> {
    serde_json::from_value(json!([
        {
            "id": "n2", "pool": "pool2", "liveness": "lost",
            "capacity": {"cpu_millis": 4000, "memory_bytes": 8_375_000_000u64},
            "allocated": {"cpu_millis": 0, "memory_bytes": 0},
            "labels": {}, "containers": 0, "api_addr": "198.18.0.12:7070",
            "agent_version": "0.1.0"
        },
        {
            "id": "n1", "pool": "pool2", "liveness": "ready",
            "capacity": {"cpu_millis": 8000, "memory_bytes": 17_179_869_184u64},
            "allocated": {"cpu_millis": 1500, "memory_bytes": 536_870_912u64, "pids": 200},
            "labels": {"rack": "r1", "disk": "ssd"}, "containers": 3,
            "api_addr": "198.18.0.11:7070", "underlay": "198.18.0.11", "agent_version": "0.1.0"
        }
    ]))
    .unwrap()
}

pub(crate) fn containers() -> Vec<ContainerView> {
    let spec = |name: &str, generation: u64| {
        json!({
            "pool": "pool2", "name": name, "image": "caas/app:1.0", "generation": generation,
            "resources": {"cpu": "500m", "memory": "256Mi"}
        })
    };
    let status = |name: &str, state: &str, generation: u64| {
        json!({
            "version": 1, "pool": "pool2", "name": name, "node": "n1", "state": state,
            "generation": generation, "app_hash": "abcd", "containers": {},
            "started_at": "2024-05-01T10:20:30.5Z", "exit_code": 3, "observed_at": STARTED
        })
    };
    let mut web_1 = spec("web-1", 1);
    web_1["networks"] = json!([
        {"interface": "eth0", "network": "myvxlan", "driver": "vxlan", "vni": 4097,
         "subnet": "192.168.0.0/19", "gateway": "192.168.31.254", "ip": "192.168.31.3",
         "mac": "02:ca:c0:a8:1f:03", "service": "web"},
        {"interface": "eth1", "network": "back", "driver": "bridge", "vni": 4098,
         "subnet": "10.2.0.0/24", "gateway": "10.2.0.1", "ip": "10.2.0.2",
         "mac": "02:ca:0a:02:00:02"}
    ]);
    serde_json::from_value(json!([
        {"pool": "pool2", "name": "web-2", "node": "n2", "placement": "lost", "app": "web",
         "spec": spec("web-2", 1)},
        {"pool": "pool2", "name": "web-1", "node": "n1", "placement": "placed", "app": "web",
         "spec": web_1, "status": status("web-1", "running", 1)},
        {"pool": "pool2", "name": "job", "node": "n1", "placement": "placed", "app": "job",
         "spec": {"pool": "pool2", "name": "job", "image": "busybox:1", "generation": 2},
         "status": status("job", "exited", 1)}
    ]))
    .unwrap()
}

#[test]
fn node_table_shows_allocation_over_capacity() {
    let text = nodes_table(&nodes());
    assert_eq!(
        text,
        "\
ID   POOL    STATE   CPU     MEMORY       CONTAINERS   LABELS
n1   pool2   ready   1.5/8   512Mi/16Gi   3            disk=ssd,rack=r1
n2   pool2   lost    0/4     0/7.8Gi      0            -
"
    );
}

#[test]
fn container_table_shows_placement_state_and_age() {
    let text = containers_table(&containers(), STARTED + 3 * 3600 + 5);
    assert_eq!(
        text,
        "\
NAME    NODE   IP             PLACEMENT   STATE                  IMAGE          CPU    MEMORY   STARTED
job     n1     -              placed      exited(3) (updating)   busybox:1      -      -        -
web-1   n1     192.168.31.3   placed      running                caas/app:1.0   500m   256Mi    3h ago
web-2   n2     -              lost        -                      caas/app:1.0   500m   256Mi    -
"
    );
}

pub(crate) fn networks() -> Vec<NetworkView> {
    serde_json::from_value(json!([
        {"version": 1, "pool": "pool2", "name": "myvxlan", "driver": "vxlan",
         "subnet": "192.168.0.0/19", "gateway": "192.168.31.254", "vni": 4097,
         "created_at": STARTED,
         "endpoints": [
             {"ip": "192.168.31.3", "mac": "02:ca:c0:a8:1f:03", "workload": "web-1",
              "node": "n1", "service": "web"},
             {"ip": "192.168.0.1", "mac": "02:ca:c0:a8:00:01", "workload": "core",
              "node": "n2"}
         ]},
        {"pool": "pool2", "name": "back", "driver": "bridge", "subnet": "10.2.0.0/24",
         "gateway": "10.2.0.1", "vni": 4098, "endpoints": []}
    ]))
    .unwrap()
}

#[test]
fn network_table_counts_endpoints() {
    assert_eq!(
        networks_table(&networks()),
        "\
NAME      DRIVER   SUBNET           GATEWAY          VNI    ENDPOINTS
back      bridge   10.2.0.0/24      10.2.0.1         4098   0
myvxlan   vxlan    192.168.0.0/19   192.168.31.254   4097   2
"
    );
    assert_eq!(
        networks_table(&[]),
        "NAME   DRIVER   SUBNET   GATEWAY   VNI   ENDPOINTS\n"
    );
}

#[test]
fn pool_table_and_empty_tables() {
    let pools = vec![
        PoolView {
            name: "b".into(),
            containers: 0,
            nodes: 1,
            token: None,
        },
        PoolView {
            name: "a".into(),
            containers: 12,
            nodes: 3,
            token: None,
        },
    ];
    assert_eq!(
        pools_table(&pools),
        "NAME   NODES   CONTAINERS\na      3       12\nb      1       0\n"
    );
    assert_eq!(nodes_table(&[]).lines().count(), 1, "header only");
    assert!(containers_table(&[], 0).starts_with("NAME"));
}

#[test]
fn json_is_pretty_and_round_trips() {
    let text = json(&nodes());
    assert!(text.starts_with("[\n  {"), "{text}");
    assert!(text.ends_with("]\n"));
    let back: Vec<NodeView> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, nodes());
}

fn api_error(status: u16, code: &str, field: Option<&str>) -> CliError {
    CliError::Client(ClientError::Api {
        status,
        body: ErrorBody {
            code: code.into(),
            message: "something is wrong".into(),
            field: field.map(String::from),
        },
        url: "http://central:8080/".into(),
    })
}

#[test]
fn api_errors_show_message_field_and_hint() {
    let err = api_error(400, "invalid", Some("resources.memory"));
    assert_eq!(
        error_text(&err),
        "caas: something is wrong (field: resources.memory)"
    );
    assert_eq!(err.exit_code(), 1);
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.code(), Some("invalid"));

    let text = error_text(&api_error(401, "unauthorized", None));
    assert!(
        text.starts_with("caas: something is wrong\nhint: "),
        "{text}"
    );
    assert!(text.contains("CAAS_TOKEN"), "{text}");

    let text = error_text(&api_error(404, "not-found", None));
    assert!(text.contains("CAAS_POOL"), "{text}");
    let text = error_text(&api_error(404, "http-404", None));
    assert!(text.contains("does not look like caas central"), "{text}");
    assert!(error_text(&api_error(503, "unavailable", None)).contains("retry"));
    assert!(!error_text(&api_error(409, "conflict", None)).contains("hint"));
}

#[test]
fn network_conflicts_and_fields_get_a_next_step() {
    let hint = |status, code, field| api_error(status, code, field).hint().unwrap_or_default();
    assert!(hint(409, "not-empty", None).contains("caas network inspect"));
    assert!(hint(409, "vni-taken", None).contains("leave out -l Vni"));
    assert!(hint(409, "address-taken", None).contains("leave out -l Ip"));
    assert!(hint(409, "exhausted", None).contains("larger subnet"));
    assert_eq!(
        hint(400, "invalid", Some("networks[1].ip")),
        "networks[1] is the 2nd --public-service (interface eth1); its ip is the one -l Ip \
         asked for"
    );
    assert_eq!(
        hint(400, "invalid", Some("networks[0]")),
        "networks[0] is the 1st --public-service (interface eth0)"
    );
    assert_eq!(hint(400, "invalid", Some("subnet")), "");
    let text = error_text(&api_error(409, "address-taken", Some("networks[0].ip")));
    assert!(
        text.starts_with("caas: something is wrong (field: networks[0].ip)\nhint: leave out"),
        "{text}"
    );
}

#[test]
fn network_and_local_errors() {
    let err = CliError::Client(ClientError::Network {
        kind: NetworkKind::Connect,
        url: "http://127.0.0.1:8080/".into(),
        detail: "Connection refused (os error 111)".into(),
    });
    assert_eq!(
        error_text(&err),
        "caas: cannot connect to central at http://127.0.0.1:8080/: Connection refused (os error \
         111)\nhint: is central running at http://127.0.0.1:8080/? set --url or CAAS_URL to its \
         address"
    );
    assert_eq!(err.exit_code(), 1);

    let err = CliError::bad_argument("-e \"FOO\": expected KEY=VALUE");
    assert_eq!(error_text(&err), "caas: -e \"FOO\": expected KEY=VALUE");
    assert_eq!(err.exit_code(), 64);

    let err = CliError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
    assert!(err.is_broken_pipe());
}

#[test]
fn container_state_shows_health_and_an_app_that_is_not_up() {
    let mut containers = containers();
    let web = containers.iter_mut().find(|c| c.name == "web-1").unwrap();
    let status = web.status.as_mut().unwrap();
    status.health = Some(
        serde_json::from_value(json!(
            {"state": "unhealthy", "consecutive_failures": 3, "message": "tcp 8080: refused"}
        ))
        .unwrap(),
    );
    status.programs = serde_json::from_value(json!([
        {"name": "sshd", "state": "RUNNING"}, {"name": "app", "state": "BACKOFF", "restarts": 2}
    ]))
    .unwrap();
    let text = containers_table(&containers, STARTED + 60);
    assert!(text.contains("running (unhealthy) app BACKOFF"), "{text}");
}

#[test]
fn container_state_shows_a_pull_in_progress() {
    let mut containers = containers();
    let web = containers.iter_mut().find(|c| c.name == "web-1").unwrap();
    let status = web.status.as_mut().unwrap();
    status.state = caas_api::WorkloadState::Pending;
    status.pull = Some(caas_api::PullProgress {
        image: "center:5000/app:1".into(),
        via: "proxy:5001".into(),
        layers_total: 5,
        layers_done: 3,
        bytes_total: 120_000_000,
        bytes_done: 41_200_000,
    });
    let text = containers_table(&containers, STARTED + 60);
    assert!(
        text.contains("pending (pulling 3/5 layers, 41.2/120.0 MB)"),
        "{text}"
    );
}
