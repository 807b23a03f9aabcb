//! Images from the image center: how an image reference splits into registry and repository,
//! and the registry proxies a pool declares (`/caas/pools/<pool>/registry-proxies/<name>`), through
//! which its nodes pull what the center holds.

use serde::{Deserialize, Serialize};

use crate::name::validate_dns_label;
use crate::ValidationError;

/// An image reference split the way Docker splits it: the first path component is a registry
/// host only when it contains `.` or `:` or is `localhost`; everything else is Docker Hub's
/// (never pulled here: no node may reach it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// `host[:port]` when the reference names one.
    pub registry: Option<String>,
    /// The repository path, e.g. `team/app`.
    pub repository: String,
    pub tag: Option<String>,
    /// `algorithm:hex`.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses `[host[:port]/]path[:tag][@digest]`; `field` names the input in the error.
    pub fn parse(field: &str, text: &str) -> Result<Self, ValidationError> {
        let bad = |why: &str| {
            ValidationError::new(
                field,
                format!(
                    "{text:?} is not an image reference ({why}); write it as \
                     [host[:port]/]repository[:tag][@sha256:digest], e.g. \
                     center.example:5000/team/app:1.4"
                ),
            )
        };
        crate::spec::validate_image(field, text)?;
        let (name, digest) = match text.split_once('@') {
            Some((name, digest)) => (name, Some(digest)),
            None => (text, None),
        };
        if let Some(digest) = digest {
            let valid = digest.split_once(':').is_some_and(|(algorithm, hex)| {
                !algorithm.is_empty()
                    && algorithm
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c))
                    && hex.len() >= 32
                    && hex.chars().all(|c| c.is_ascii_hexdigit())
            });
            if !valid {
                return Err(bad("the digest is not algorithm:hex"));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (Some(first), rest)
            }
            _ => (None, name),
        };
        // A tag follows the last ':' of the path (the registry's port was split off above).
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repository, tag)) => (repository, Some(tag)),
            None => (path, None),
        };
        if let Some(registry) = registry {
            validate_registry_host(field, registry).map_err(|_| bad("the registry host"))?;
        }
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
                && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && c.ends_with(|ch: char| ch.is_ascii_alphanumeric())
        };
        if !repository.split('/').all(component_ok) {
            return Err(bad(
                "repository components are lowercase letters, digits and . _ - separators",
            ));
        }
        if let Some(tag) = tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !valid {
                return Err(bad("a tag is at most 128 of A-Z a-z 0-9 . _ -"));
            }
        }
        Ok(Self {
            registry: registry.map(str::to_string),
            repository: repository.to_string(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// The same image named on another registry (the proxy that mirrors this one's registry).
    pub fn on_registry(&self, host: &str) -> String {
        let mut text = format!("{host}/{}", self.repository);
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(digest);
        }
        text
    }

    /// The tag Docker pulls when neither tag nor digest is given.
    pub fn tag_or_latest(&self) -> &str {
        self.tag.as_deref().unwrap_or("latest")
    }
}

/// `host[:port]`: a DNS name or IPv4 address and an optional port 1..65535.
pub fn validate_registry_host(field: &str, host: &str) -> Result<(), ValidationError> {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if name_ok && port_ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("{host:?} is not host[:port], e.g. \"center.example:5000\""),
        ))
    }
}

/// A registry proxy of a pool: a registry in pull-through cache mode in front of the image
/// center. The pool's nodes pull images whose registry is `center` from `host` instead.
/// `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryProxy {
    #[serde(default = "crate::payload_version")]
    pub version: u32,
    pub name: String,
    pub pool: String,
    /// `host:port` of the proxy, as the pool's nodes reach it (always HTTPS).
    pub host: String,
    /// `host:port` of the image center it mirrors: image references naming it are pulled here.
    pub center: String,
    /// PEM of the CA that signed the proxy's certificate, when not in the nodes' system store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    /// Credentials the nodes present to the proxy (the proxy's htpasswd): without them another
    /// pool's nodes, which never receive them, are refused by the proxy itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    pub created_at: u64,
}

/// Body of `POST /v1/pools/{pool}/registry-proxies`. `Debug` never shows the password.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddRegistryProxyRequest {
    pub name: String,
    /// `https://host:port` (or bare `host:port`).
    pub url: String,
    /// `host:port` of the image center the proxy caches.
    pub center: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl std::fmt::Debug for RegistryProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryProxy")
            .field("name", &self.name)
            .field("pool", &self.pool)
            .field("host", &self.host)
            .field("center", &self.center)
            .field("ca", &self.ca_pem.is_some())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl std::fmt::Debug for AddRegistryProxyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddRegistryProxyRequest")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("center", &self.center)
            .field("ca", &self.ca_pem.is_some())
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// A registry proxy as the API shows it: never its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryProxyView {
    pub name: String,
    pub pool: String,
    pub url: String,
    pub center: String,
    pub ca: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    pub created_at: u64,
}

impl RegistryProxy {
    pub fn view(&self) -> RegistryProxyView {
        RegistryProxyView {
            name: self.name.clone(),
            pool: self.pool.clone(),
            url: format!("https://{}", self.host),
            center: self.center.clone(),
            ca: self.ca_pem.is_some(),
            username: self.username.clone(),
            created_at: self.created_at,
        }
    }
}

impl AddRegistryProxyRequest {
    /// Checks every field before anything is read or written; returns the proxy's `host:port`.
    pub fn validate(&self) -> Result<String, ValidationError> {
        validate_dns_label("name", &self.name)?;
        let host = match self.url.split_once("://") {
            Some(("https", rest)) => rest.trim_end_matches('/'),
            Some((scheme, _)) => {
                return Err(ValidationError::new(
                    "url",
                    format!(
                        "{:?}: scheme {scheme:?} is not supported; registry proxies are reached \
                         over https (https://host:port)",
                        self.url
                    ),
                ))
            }
            None => self.url.trim_end_matches('/'),
        };
        if host.contains('/') || !host.contains(':') {
            return Err(ValidationError::new(
                "url",
                format!(
                    "{:?} is not a proxy URL; write https://host:port, e.g. \
                     https://proxy.pool1.example:5001",
                    self.url
                ),
            ));
        }
        validate_registry_host("url", host)?;
        validate_registry_host("center", &self.center)?;
        if host == self.center {
            return Err(ValidationError::new(
                "center",
                "is the proxy itself; name the image center the proxy caches",
            ));
        }
        if let Some(pem) = &self.ca_pem {
            let looks_like_pem = pem.contains("-----BEGIN CERTIFICATE-----")
                && pem.contains("-----END CERTIFICATE-----");
            if !looks_like_pem || pem.len() > 64 * 1024 {
                return Err(ValidationError::new(
                    "ca_pem",
                    "is not a PEM certificate (-----BEGIN CERTIFICATE----- ...), at most 64 KiB",
                ));
            }
        }
        match (&self.username, &self.password) {
            (Some(user), Some(password)) => {
                if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
                    return Err(ValidationError::new(
                        "username",
                        "must be non-empty, without ':' or control characters",
                    ));
                }
                if password.is_empty() || password.chars().any(char::is_control) {
                    return Err(ValidationError::new(
                        "password",
                        "must be non-empty, without control characters (e.g. a trailing newline)",
                    ));
                }
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(ValidationError::new(
                    "password",
                    "is required with username (give both or neither)",
                ))
            }
            (None, Some(_)) => {
                return Err(ValidationError::new(
                    "username",
                    "is required with password (give both or neither)",
                ))
            }
        }
        Ok(host.to_string())
    }
}

/// How far an image pull has come, as the agent reports it in the workload's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullProgress {
    /// The image as the workload names it.
    pub image: String,
    /// The registry it is pulled from (the pool's proxy).
    pub via: String,
    pub layers_total: u32,
    pub layers_done: u32,
    pub bytes_total: u64,
    pub bytes_done: u64,
}

/// `pools/<pool>/prewarms/<id>`: pull `image` on `nodes` ahead of a deploy. The agents of the
/// named nodes pull it (through the pool's proxy, which fetches it once) and keep it: an image a
/// prewarm names is never pruned while the prewarm exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prewarm {
    #[serde(default = "crate::payload_version")]
    pub version: u32,
    pub id: String,
    pub pool: String,
    pub image: String,
    /// The nodes chosen when the prewarm was made (the pool's nodes matching its constraints).
    pub nodes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    pub created_at: u64,
}

/// Body of `POST /v1/pools/{pool}/prewarms`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePrewarmRequest {
    pub image: String,
    /// Node label constraints (`key==value`, `key!=value`); every node of the pool without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// These nodes of the pool only (ids), e.g. the nodes an upgrade will change.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
}

/// Body of `PUT /v1/pools/{pool}/containers/{name}/image`: a new image for a container (or
/// every replica of an app), applied by each node once the image is there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetImageRequest {
    pub image: String,
}

/// How far one node is with a prewarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PrewarmState {
    /// The node's agent has not reported yet (or the node is down), or it waits for the
    /// prewarm's first node (its seed) to pull first, so the proxy fetches the image once.
    Waiting,
    Pulling,
    Done,
    Failed,
}

impl PrewarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Pulling => "pulling",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
    /// Nothing more will happen without a change (done, or failed until the next retry).
    pub fn finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed)
    }
}

/// `pools/<pool>/prewarms/<id>/<node>`: written only by that node's agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrewarmNodeStatus {
    pub node: String,
    pub state: PrewarmState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<PullProgress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::StatusError>,
}

/// A prewarm as the API shows it: the record and every chosen node's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrewarmView {
    pub id: String,
    pub pool: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    pub created_at: u64,
    pub nodes: Vec<PrewarmNodeStatus>,
}

impl PrewarmView {
    /// Every node is done or failed.
    pub fn finished(&self) -> bool {
        self.nodes.iter().all(|n| n.state.finished())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_like_docker() {
        let r = ImageRef::parse("image", "center.example:5000/team/app:1.4").unwrap();
        assert_eq!(r.registry.as_deref(), Some("center.example:5000"));
        assert_eq!(r.repository, "team/app");
        assert_eq!(r.tag.as_deref(), Some("1.4"));
        assert_eq!(r.on_registry("proxy:5001"), "proxy:5001/team/app:1.4");

        let r = ImageRef::parse("image", "caas/sofa-jdk17:abc").unwrap();
        assert_eq!(r.registry, None);
        assert_eq!(r.repository, "caas/sofa-jdk17");

        let r = ImageRef::parse("image", "localhost/app").unwrap();
        assert_eq!(r.registry.as_deref(), Some("localhost"));
        assert_eq!(r.tag_or_latest(), "latest");

        let digest = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse("image", &format!("10.0.0.5:5000/app@{digest}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(r.tag, None);
        assert_eq!(r.on_registry("p:1"), format!("p:1/app@{digest}"));
    }

    #[test]
    fn bad_references_name_the_field() {
        for bad in [
            "center:5000/App:1",
            "center:5000/app:",
            "center:5000//app",
            "app@sha256:xyz",
            "center:99999/app",
            "app:-x",
            "a b",
        ] {
            let err = ImageRef::parse("image", bad).unwrap_err();
            assert_eq!(err.field, "image", "{bad}");
        }
    }

    fn request() -> AddRegistryProxyRequest {
        AddRegistryProxyRequest {
            name: "site1".into(),
            url: "https://proxy.example:5001".into(),
            center: "center.example:5000".into(),
            ..Default::default()
        }
    }

    #[test]
    fn proxy_requests_are_checked_field_by_field() {
        assert_eq!(request().validate().unwrap(), "proxy.example:5001");
        let cases: Vec<(AddRegistryProxyRequest, &str)> = vec![
            (
                AddRegistryProxyRequest {
                    url: "http://p:1".into(),
                    ..request()
                },
                "url",
            ),
            (
                AddRegistryProxyRequest {
                    url: "not a url".into(),
                    ..request()
                },
                "url",
            ),
            (
                AddRegistryProxyRequest {
                    url: "https://p:1/v2".into(),
                    ..request()
                },
                "url",
            ),
            (
                AddRegistryProxyRequest {
                    center: "center.example:5000".into(),
                    url: "https://center.example:5000".into(),
                    ..request()
                },
                "center",
            ),
            (
                AddRegistryProxyRequest {
                    ca_pem: Some("hello".into()),
                    ..request()
                },
                "ca_pem",
            ),
            (
                AddRegistryProxyRequest {
                    username: Some("u".into()),
                    ..request()
                },
                "password",
            ),
            (
                AddRegistryProxyRequest {
                    name: "Bad_Name".into(),
                    ..request()
                },
                "name",
            ),
        ];
        for (case, field) in cases {
            assert_eq!(case.validate().unwrap_err().field, field, "{case:?}");
        }
    }
}
