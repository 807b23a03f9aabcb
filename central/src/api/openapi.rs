//! The OpenAPI 3 document served at `/v1/openapi.json`, written out by hand from the routes in
//! `api/mod.rs` (the request/response schemas are the `caas_api::central` types).

use serde_json::{json, Value};

fn op(summary: &str, body: Option<&str>, ok: &str) -> Value {
    let mut v = json!({
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {
            ok: {"description": "success"},
            "400": {"$ref": "#/components/responses/Error"},
            "401": {"$ref": "#/components/responses/Error"},
            "404": {"$ref": "#/components/responses/Error"},
            "409": {"$ref": "#/components/responses/Error"}
        }
    });
    if let Some(schema) = body {
        v["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    }
    v
}

pub fn document() -> Value {
    let mut doc = unannotated();
    annotate_roles(&mut doc);
    doc
}

/// Marks every operation with the role the router requires (`x-caas-role`, from
/// `roles::ROUTES`, the table the router checks) and says it in the description.
fn annotate_roles(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            let need =
                super::roles::documented_need(method, path).unwrap_or(caas_api::roles::Need::Admin);
            op["x-caas-role"] = json!(need.as_str());
            op["description"] = json!(match need {
                caas_api::roles::Need::Admin => "Needs the admin token.",
                caas_api::roles::Need::Ops => "Needs the admin token or an ops token of the pool.",
                caas_api::roles::Need::Developer =>
                    "Any token of the pool (developer, ops) or the admin token.",
            });
        }
    }
}

fn unannotated() -> Value {
    let mut doc = base_document();
    // Added one by one: a single `json!` of the whole document exceeds the macro's recursion.
    let paths = &mut doc["paths"];
    paths["/v1/pools/{pool}/containers/{name}/exec"] = json!({"post": op(
        "Run a command in the container (non-interactive, through its agent)",
        Some("ExecRequest"),
        "200"
    )});
    paths["/v1/pools/{pool}/containers/{name}/deploy"] = json!({"post": {
        "summary": "Copy an app package (a .tgz with a start script, sent as application/gzip) into a rich container and restart only its app program; every replica of the name in turn",
        "security": [{"bearer": []}],
        "requestBody": {"required": true, "content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {"200": {"description": "ok"}, "default": {"$ref": "#/components/responses/Error"}}
    }});
    paths["/v1/pools/{pool}/ssh-keys"] = json!({"put": op(
        "Replace the pool's SSH keys (rich containers get them in place)",
        Some("SshKeysRequest"),
        "200"
    )});
    paths["/v1/pools/{pool}/stats"] = json!({"get": op(
        "Latest CPU, memory, block I/O, process and network figures of every container of the pool, from their agents",
        None,
        "200"
    )});
    paths["/v1/pools/{pool}/containers/{name}/stats"] = json!({"get": op(
        "Latest figures and rates of one container (app, sandbox and data), from its agent",
        None,
        "200"
    )});
    paths["/v1/stats/nodes"] = json!({"get": op(
        "Latest CPU, memory, load, filesystem and network figures of the nodes the caller sees",
        None,
        "200"
    )});
    paths["/v1/pools/{pool}/audit"] = json!({"get": {
        "summary": "The pool's audit log of terminal and exec sessions, oldest first: who (token id, role), which container, when, how long, the commands typed",
        "security": [{"bearer": []}],
        "parameters": [
            {"name": "container", "in": "query", "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": caas_api::roles::MAX_AUDIT_LIST}}],
        "responses": {"200": {"description": "AuditEntry list"}, "default": {"$ref": "#/components/responses/Error"}}
    }});
    paths["/v1/pools/{pool}/containers/{name}/logs"] = json!({"get": {
        "summary": "The app's stdout and stderr, or a file of /home/admin/logs (file=NAME), as text/plain; follow=true streams new output until the client goes away",
        "security": [{"bearer": []}],
        "parameters": [
            {"name": "tail", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 100000}},
            {"name": "follow", "in": "query", "schema": {"type": "boolean"}},
            {"name": "file", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": {"description": "text/plain", "content": {"text/plain": {}}}, "default": {"$ref": "#/components/responses/Error"}}
    }});
    paths["/v1/pools/{pool}/containers/{name}/log-files"] = json!({"get": op(
        "The files in the container's /home/admin/logs: [{name, size}]",
        None,
        "200"
    )});
    paths["/v1/pools/{pool}/containers/{name}/terminal"] = json!({"get": {
        "summary": "An interactive terminal (WebSocket; protocol in caas_api::terminal). Developers get a terminal as admin in rich containers only; ops choose the user. Every session is audited",
        "security": [{"bearer": []}],
        "responses": {"101": {"description": "switching to the WebSocket protocol"}, "default": {"$ref": "#/components/responses/Error"}}
    }});
    paths["/v1/pools/{pool}/containers/{name}/restart-app"] = json!({"post": op(
        "Restart the app program of a rich container (supervisorctl restart app), leaving the container and its sessions alone",
        None,
        "200"
    )});
    let schemas = &mut doc["components"]["schemas"];
    schemas["CreateTokenRequest"] = json!({"type": "object", "additionalProperties": false, "properties": {
        "role": {"type": "string", "enum": ["ops", "developer"], "default": "ops"},
        "label": {"type": "string", "maxLength": caas_api::roles::MAX_LABEL}}});
    schemas["ExecRequest"] = json!({"type": "object", "additionalProperties": false, "required": ["command"], "properties": {
        "command": {"type": "array", "minItems": 1, "items": {"type": "string"}},
        "user": {"type": "string"},
        "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": caas_api::central::MAX_EXEC_SECONDS}}});
    schemas["SshKeysRequest"] = json!({"type": "object", "additionalProperties": false, "required": ["ssh_keys"], "properties": {
        "ssh_keys": {"type": "array", "items": {"type": "string", "example": "ssh-ed25519 AAAA... ops@example"}}}});
    let create = &mut schemas["CreateContainerRequest"]["properties"];
    create["rich"] = json!({"type": "boolean"});
    create["read_only_root"] = json!({"type": "boolean",
        "description": "the app's root file system is read-only; its volumes and a /tmp tmpfs stay writable (not with rich)"});
    create["health_check"] = json!({"type": "object", "additionalProperties": false, "required": ["probe"], "properties": {
        "probe": {"type": "object", "example": {"http": {"port": 8080, "path": "/health"}},
            "description": "one of {\"tcp\": {\"port\": N}}, {\"http\": {\"port\": N, \"path\": \"/\"}}, {\"command\": [\"argv\"]}"},
        "interval_seconds": {"type": "integer", "minimum": 1, "maximum": 3600},
        "timeout_seconds": {"type": "integer", "minimum": 1},
        "failure_threshold": {"type": "integer", "minimum": 1, "maximum": 100}}});
    create["networks"] = json!({"type": "array", "maxItems": caas_api::network::MAX_ENDPOINTS,
        "description": "networks to join, one interface each (eth0, eth1, ... in order)",
        "items": {"type": "object", "additionalProperties": false, "required": ["network"], "properties": {
            "network": {"type": "string"},
            "service": {"type": "string", "description": "service name published on the network"},
            "ip": {"type": "string", "format": "ipv4", "description": "a requested address; the lowest free one when absent (not with instances > 1)"}}}});
    networks(&mut doc);
    services(&mut doc);
    registry_proxies(&mut doc);
    doc
}

/// The registry proxy routes and their schema.
fn registry_proxies(doc: &mut Value) {
    let paths = &mut doc["paths"];
    paths["/v1/pools/{pool}/registry-proxies"] = json!({
        "get": op("List the pool's registry proxies (never their passwords)", None, "200"),
        "post": op("Declare a registry proxy (a pull-through cache of the image center): the pool's nodes pull images named by the center through it; 409 exists", Some("AddRegistryProxyRequest"), "201")
    });
    paths["/v1/pools/{pool}/registry-proxies/{name}"] = json!({"delete": {
        "summary": "Remove a registry proxy",
        "security": [{"bearer": []}],
        "responses": {"204": {"description": "removed"}, "default": {"$ref": "#/components/responses/Error"}}}});
    paths["/v1/pools/{pool}/prewarms"] = json!({
        "get": op("List the pool's prewarms with every chosen node's state", None, "200"),
        "post": op("Prewarm an image of the image center: the pool's nodes matching the constraints pull it through the pool's proxy ahead of a deploy", Some("CreatePrewarmRequest"), "201")
    });
    paths["/v1/pools/{pool}/prewarms/{id}"] = json!({
        "get": op("A prewarm and each node's state (waiting, pulling with layers and bytes, done, failed with the error)", None, "200"),
        "delete": {
            "summary": "Forget a prewarm (the images stay on the nodes until pruned)",
            "security": [{"bearer": []}],
            "responses": {"204": {"description": "removed"}, "default": {"$ref": "#/components/responses/Error"}}}});
    paths["/v1/pools/{pool}/containers/{name}/image"] = json!({
        "put": op("Set a new image for a container or every replica of an app (one commit; each node keeps the old version running until it has the new image). `caas container upgrade` prewarms the image on the nodes concerned first", Some("SetImageRequest"), "200")});
    doc["components"]["schemas"]["SetImageRequest"] = json!({"type": "object", "additionalProperties": false,
        "required": ["image"], "properties": {"image": {"type": "string"}}});
    doc["components"]["schemas"]["CreatePrewarmRequest"] = json!({"type": "object", "additionalProperties": false,
        "required": ["image"], "properties": {
            "image": {"type": "string", "example": "center.example:5000/team/app:1.4"},
            "constraints": {"type": "array", "items": {"type": "string", "example": "rack==r1"}},
            "nodes": {"type": "array", "items": {"type": "string"}, "description": "only these nodes of the pool"}}});
    doc["components"]["schemas"]["AddRegistryProxyRequest"] = json!({"type": "object", "additionalProperties": false,
        "required": ["name", "url", "center"], "properties": {
            "name": {"type": "string", "description": "DNS label"},
            "url": {"type": "string", "example": "https://proxy.pool1.example:5001", "description": "https://host:port as the pool's nodes reach the proxy"},
            "center": {"type": "string", "example": "center.example:5000", "description": "host:port of the image center the proxy caches; images named by it are pulled through the proxy"},
            "ca_pem": {"type": "string", "description": "PEM of the CA of the proxy's certificate; agents write it to the engine's certs.d"},
            "username": {"type": "string", "description": "the proxy's htpasswd user for this pool's nodes (with password)"},
            "password": {"type": "string", "writeOnly": true}}});
}

/// The DNS and load-balancer routes and their schemas.
fn services(doc: &mut Value) {
    let removed = |summary: &str| {
        json!({"summary": summary, "security": [{"bearer": []}],
            "responses": {"204": {"description": "removed"}, "default": {"$ref": "#/components/responses/Error"}}})
    };
    let paths = &mut doc["paths"];
    paths["/v1/pools/{pool}/dns"] = json!({
        "get": op("List the pool's DNS services", None, "200"),
        "post": op("Create a network's DNS service (one per network), answered by the agents on the network's gateway address, port 53", Some("CreateDnsRequest"), "201")
    });
    paths["/v1/pools/{pool}/dns/{name}"] = json!({"delete": removed("Remove a DNS service")});
    paths["/v1/pools/{pool}/lbs"] = json!({
        "get": op("List the pool's load balancers with their backends' states", None, "200"),
        "post": op("Create a load balancer: a VIP of the network (IPAM unless given), a port, optionally published on every node; 409 exists / address-taken / port-taken", Some("CreateLbRequest"), "201")
    });
    paths["/v1/pools/{pool}/lbs/{name}"] = json!({
        "get": op("Inspect a load balancer: VIP, port, backends with address and state (up, unhealthy, not-running, missing)", None, "200"),
        "delete": removed("Remove a load balancer and release its VIP")
    });
    paths["/v1/pools/{pool}/lbs/{name}/backends"] = json!({"post": op(
        "Add a container of the LB's network as a backend (or change its port and weight)", Some("AddBackendRequest"), "200")});
    paths["/v1/pools/{pool}/lbs/{name}/backends/{container}"] = json!({"delete": op(
        "Remove a backend; its open connections finish", None, "200")});
    let schemas = &mut doc["components"]["schemas"];
    schemas["CreateDnsRequest"] = json!({"type": "object", "additionalProperties": false,
        "required": ["name", "network"], "properties": {
            "name": {"type": "string"},
            "network": {"type": "string"},
            "domain": {"type": "string", "example": caas_api::service::DEFAULT_DOMAIN, "description": "names are answered as NAME.<domain> and, through the search domain, as NAME"},
            "forward": {"type": "string", "example": "10.0.0.53:53", "description": "resolver for other names; without it they are refused"}}});
    schemas["CreateLbRequest"] = json!({"type": "object", "additionalProperties": false,
        "required": ["name", "network", "port"], "properties": {
            "name": {"type": "string"},
            "network": {"type": "string"},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "vip": {"type": "string", "format": "ipv4", "description": "a free host address of the network; allocated when absent"},
            "publish": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "also served on every node's underlay address at this port"},
            "protocol": {"type": "string", "enum": ["tcp", "udp"]}}});
    schemas["AddBackendRequest"] = json!({"type": "object", "additionalProperties": false,
        "required": ["container"], "properties": {
            "container": {"type": "string"},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "the container's port; the LB's port when absent"},
            "weight": {"type": "integer", "minimum": 1, "maximum": 1000}}});
}

/// The network routes and their schemas.
fn networks(doc: &mut Value) {
    let paths = &mut doc["paths"];
    paths["/v1/pools/{pool}/networks"] = json!({
        "get": op("List the pool's networks with their endpoints", None, "200"),
        "post": op("Create a network (vxlan overlay, single-node bridge, or a data-centre vlan on the nodes' uplinks); 409 exists / vni-taken / vlan-taken", Some("CreateNetworkRequest"), "201")
    });
    paths["/v1/pools/{pool}/networks/{name}"] = json!({
        "get": op("Inspect a network: subnet, gateway, VNI, endpoints (IP, MAC, workload, node)", None, "200"),
        "delete": {
            "summary": "Remove a network; 409 not-empty while containers use it",
            "security": [{"bearer": []}],
            "responses": {"204": {"description": "removed"}, "default": {"$ref": "#/components/responses/Error"}}
        }
    });
    doc["components"]["schemas"]["CreateNetworkRequest"] = json!({"type": "object", "additionalProperties": false,
        "required": ["name", "driver", "subnet", "gateway"], "properties": {
            "name": {"type": "string"},
            "driver": {"type": "string", "enum": ["vxlan", "bridge", "vlan"]},
            "subnet": {"type": "string", "example": "192.168.0.0/19", "description": "canonical IPv4 CIDR, /29 or larger, no overlap with the pool's other networks"},
            "gateway": {"type": "string", "example": "192.168.31.254", "description": "inside the subnet, not its network or broadcast address"},
            "vni": {"type": "integer", "minimum": 1, "maximum": caas_api::network::MAX_VNI, "description": "allocated cluster-wide when absent"},
            "vlan_id": {"type": "integer", "minimum": 1, "maximum": caas_api::network::MAX_VLAN_ID, "description": "vlan only: the 802.1Q id, one network per VLAN in the cluster; absent: the uplink itself (access port)"},
            "arp_proxy": {"type": "boolean", "description": "vlan only: nodes answer their containers' ARP for the gateway and known endpoints"},
            "mac_nat": {"type": "boolean", "description": "vlan only: frames leave the uplink with the node's MAC"}}});
}

fn base_document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {"title": "caas central API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Pools, nodes and containers. Errors are {code, message, field?}. A pool token sees only its pool; other pools answer 404. Roles: the admin token does everything; a pool's ops tokens everything within the pool; its developer tokens list and inspect containers, read logs and open terminals as admin in rich containers (403 elsewhere). Each operation's x-caas-role names the least role it needs."},
        "paths": {
            "/v1/pools": {"get": op("List pools", None, "200"), "post": op("Create a pool (admin); returns its first token", Some("CreatePoolRequest"), "201")},
            "/v1/pools/{pool}": {"get": op("Get a pool", None, "200"), "delete": op("Delete an empty pool (admin)", None, "204")},
            "/v1/pools/{pool}/tokens": {
                "post": op("Issue a pool token; the body is optional (no body: an ops token). Ops tokens need the admin token; a pool's ops issue developer tokens", Some("CreateTokenRequest"), "201"),
                "get": op("List the pool's tokens: ids, roles, labels (never the tokens)", None, "200")
            },
            "/v1/pools/{pool}/tokens/{id}": {"delete": op("Revoke a token (ops tokens: admin only)", None, "204")},
            "/v1/nodes": {"get": op("List nodes with capacity, allocation and liveness", None, "200")},
            "/v1/nodes/{id}": {"get": op("Get a node", None, "200")},
            "/v1/pools/{pool}/containers": {
                "get": op("List containers", None, "200"),
                "post": op("Create containers (idempotent on pool+name; instances: N replicas)", Some("CreateContainerRequest"), "201")
            },
            "/v1/pools/{pool}/containers/{name}": {
                "get": op("Inspect a container", None, "200"),
                "delete": {
                    "summary": "Delete a container; purge_data=true also removes its data container",
                    "parameters": [{"name": "purge_data", "in": "query", "schema": {"type": "boolean"}}],
                    "responses": {"204": {"description": "deleted"}, "404": {"$ref": "#/components/responses/Error"}}
                }
            },
            "/v1/pools/{pool}/containers/{name}/reschedule": {"post": op("Re-place a container off a lost node (force: also with data, or off a ready node)", Some("RescheduleRequest"), "200")}
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {"Error": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}},
            "schemas": {
                "ErrorBody": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"}}},
                "CreatePoolRequest": {"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
                    "name": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"},
                    "ssh_keys": {"type": "array", "items": {"type": "string"}}}},
                "RescheduleRequest": {"type": "object", "additionalProperties": false, "properties": {"force": {"type": "boolean"}}},
                "CreateContainerRequest": {"type": "object", "additionalProperties": false, "required": ["name", "image"], "properties": {
                    "name": {"type": "string"}, "image": {"type": "string"},
                    "command": {"type": "array", "items": {"type": "string"}},
                    "env": {"type": "object", "additionalProperties": {"type": "string"}},
                    "resources": {"type": "object", "additionalProperties": false, "properties": {
                        "cpu": {"type": "string", "example": "500m"}, "memory": {"type": "string", "example": "256Mi"}, "pids": {"type": "integer", "minimum": 1}}},
                    "restart": {"type": "string", "enum": ["never", "on-failure", "always"]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "volumes": {"type": "array", "items": {"type": "string"}},
                    "hostname": {"type": "string"},
                    "instances": {"type": "integer", "minimum": 1, "maximum": caas_api::central::MAX_INSTANCES},
                    "constraints": {"type": "array", "items": {"type": "string", "example": "rack==r1"}},
                    "strategy": {"type": "string", "enum": ["spread", "binpack"]}}}
            }
        }
    })
}
