//! Which role each route needs: the one table the router checks every request against
//! (`need`) and the OpenAPI document is annotated from (`x-caas-role`). A route missing here
//! needs the admin token, so forgetting an entry fails closed.

use caas_api::roles::Need;

/// `(method, path template, least role)`; `{x}` matches one path segment.
pub const ROUTES: &[(&str, &str, Need)] = &[
    ("GET", "/v1/pools", Need::Developer),
    ("POST", "/v1/pools", Need::Admin),
    ("GET", "/v1/pools/{pool}", Need::Developer),
    ("DELETE", "/v1/pools/{pool}", Need::Admin),
    ("PUT", "/v1/pools/{pool}/ssh-keys", Need::Ops),
    ("POST", "/v1/pools/{pool}/tokens", Need::Ops),
    ("GET", "/v1/pools/{pool}/tokens", Need::Ops),
    ("DELETE", "/v1/pools/{pool}/tokens/{id}", Need::Ops),
    ("GET", "/v1/pools/{pool}/audit", Need::Ops),
    ("GET", "/v1/nodes", Need::Ops),
    ("GET", "/v1/nodes/{id}", Need::Ops),
    ("GET", "/v1/stats/nodes", Need::Ops),
    ("GET", "/v1/pools/{pool}/stats", Need::Developer),
    ("GET", "/v1/pools/{pool}/containers", Need::Developer),
    ("POST", "/v1/pools/{pool}/containers", Need::Ops),
    ("GET", "/v1/pools/{pool}/containers/{name}", Need::Developer),
    ("DELETE", "/v1/pools/{pool}/containers/{name}", Need::Ops),
    (
        "POST",
        "/v1/pools/{pool}/containers/{name}/reschedule",
        Need::Ops,
    ),
    ("POST", "/v1/pools/{pool}/containers/{name}/exec", Need::Ops),
    (
        "POST",
        "/v1/pools/{pool}/containers/{name}/deploy",
        Need::Ops,
    ),
    (
        "POST",
        "/v1/pools/{pool}/containers/{name}/restart-app",
        Need::Ops,
    ),
    ("PUT", "/v1/pools/{pool}/containers/{name}/image", Need::Ops),
    (
        "GET",
        "/v1/pools/{pool}/containers/{name}/stats",
        Need::Developer,
    ),
    (
        "GET",
        "/v1/pools/{pool}/containers/{name}/logs",
        Need::Developer,
    ),
    (
        "GET",
        "/v1/pools/{pool}/containers/{name}/log-files",
        Need::Developer,
    ),
    (
        "GET",
        "/v1/pools/{pool}/containers/{name}/terminal",
        Need::Developer,
    ),
    ("GET", "/v1/pools/{pool}/networks", Need::Ops),
    ("POST", "/v1/pools/{pool}/networks", Need::Ops),
    ("GET", "/v1/pools/{pool}/networks/{name}", Need::Ops),
    ("DELETE", "/v1/pools/{pool}/networks/{name}", Need::Ops),
    ("GET", "/v1/pools/{pool}/registry-proxies", Need::Ops),
    ("POST", "/v1/pools/{pool}/registry-proxies", Need::Ops),
    (
        "DELETE",
        "/v1/pools/{pool}/registry-proxies/{name}",
        Need::Ops,
    ),
    ("GET", "/v1/pools/{pool}/prewarms", Need::Ops),
    ("POST", "/v1/pools/{pool}/prewarms", Need::Ops),
    ("GET", "/v1/pools/{pool}/prewarms/{id}", Need::Ops),
    ("DELETE", "/v1/pools/{pool}/prewarms/{id}", Need::Ops),
    ("GET", "/v1/pools/{pool}/dns", Need::Ops),
    ("POST", "/v1/pools/{pool}/dns", Need::Ops),
    ("DELETE", "/v1/pools/{pool}/dns/{name}", Need::Ops),
    ("GET", "/v1/pools/{pool}/lbs", Need::Ops),
    ("POST", "/v1/pools/{pool}/lbs", Need::Ops),
    ("GET", "/v1/pools/{pool}/lbs/{name}", Need::Ops),
    ("DELETE", "/v1/pools/{pool}/lbs/{name}", Need::Ops),
    ("POST", "/v1/pools/{pool}/lbs/{name}/backends", Need::Ops),
    (
        "DELETE",
        "/v1/pools/{pool}/lbs/{name}/backends/{container}",
        Need::Ops,
    ),
];

/// Whether a concrete path (`/v1/pools/p1/containers`) matches a template.
fn matches(template: &str, path: &str) -> bool {
    let mut t = template.trim_end_matches('/').split('/');
    let mut p = path.trim_end_matches('/').split('/');
    loop {
        match (t.next(), p.next()) {
            (None, None) => return true,
            (Some(ts), Some(ps)) => {
                let wildcard = ts.starts_with('{') && ts.ends_with('}');
                if !(wildcard && !ps.is_empty() || ts == ps) {
                    return false;
                }
            }
            _ => return false,
        }
    }
}

/// The least role a request needs; `Admin` for anything not in the table.
pub fn need(method: &str, path: &str) -> Need {
    ROUTES
        .iter()
        .find(|(m, t, _)| *m == method && matches(t, path))
        .map_or(Need::Admin, |(_, _, need)| *need)
}

/// The table's entry for a documented operation (exact template), if any.
pub fn documented_need(method: &str, template: &str) -> Option<Need> {
    ROUTES
        .iter()
        .find(|(m, t, _)| m.eq_ignore_ascii_case(method) && *t == template)
        .map(|(_, _, need)| *need)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concrete_paths_find_their_role() {
        assert_eq!(need("GET", "/v1/pools/p1/containers"), Need::Developer);
        assert_eq!(need("POST", "/v1/pools/p1/containers"), Need::Ops);
        assert_eq!(
            need("GET", "/v1/pools/p1/containers/web-1/logs"),
            Need::Developer
        );
        assert_eq!(need("POST", "/v1/pools/p1/containers/web/exec"), Need::Ops);
        assert_eq!(need("DELETE", "/v1/pools/p1"), Need::Admin);
        assert_eq!(need("GET", "/v1/pools//containers"), Need::Admin);
        assert_eq!(need("GET", "/v1/unknown"), Need::Admin);
        assert_eq!(need("PATCH", "/v1/pools/p1/containers"), Need::Admin);
    }

    #[test]
    fn every_documented_operation_has_a_role_and_every_role_is_documented() {
        let doc = super::super::openapi::document();
        let mut documented = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths").iter() {
            for (method, op) in item.as_object().expect("operations").iter() {
                if path == "/healthz" || path == "/v1/openapi.json" {
                    continue;
                }
                let role = documented_need(method, path)
                    .unwrap_or_else(|| panic!("{method} {path} has no entry in ROUTES"));
                assert_eq!(op["x-caas-role"], role.as_str(), "{method} {path}");
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
        for (method, template, _) in ROUTES {
            assert!(
                documented.contains(&(method.to_string(), template.to_string())),
                "{method} {template} is in ROUTES but not in the OpenAPI document"
            );
        }
    }
}
