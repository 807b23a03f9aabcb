//! Agent configuration: a TOML file (unknown keys rejected), overridden by `CAAS_AGENT_*`
//! environment variables, overridden by flags. Validated once, before anything starts.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use caas_api::name::validate_dns_label;
use caas_api::ZkLayout;
use clap::Parser;
use serde::Deserialize;

/// Where the packaged agent reads its configuration.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/caas/agent.toml";

/// Largest `deploy_max_unpacked_mib` accepted (64 GiB): beyond that it is surely a typo.
const MAX_UNPACKED_MIB_LIMIT: u64 = 64 << 10;

/// Longest `terminal_idle_timeout_secs` accepted (a week).
const MAX_TERMINAL_IDLE_SECS: u64 = 7 * 24 * 3600;
/// Default and largest `max_terminal_sessions`.
const DEFAULT_MAX_TERMINAL_SESSIONS: usize = 64;
const MAX_TERMINAL_SESSIONS_LIMIT: usize = 4096;

use caas_daemon::invalid;
pub use caas_daemon::{ConfigError, EXIT_CONFIG};

/// Command line of `caas-agent`. Every flag can also be set through its environment variable;
/// flags win over the environment, the environment wins over the config file.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "caas-agent",
    version = caas_buildinfo::VERSION_TEXT,
    about = "caas node agent: registers this node in ZooKeeper and runs its assigned workloads on Docker",
    long_about = "caas node agent.\n\nRegisters this node ephemerally under <zk-root>/nodes/<node-id>, \
runs the workloads assigned under <zk-root>/assign/<node-id> as Docker containers (sandbox, data, \
app), reports what it sees under <zk-root>/status/<node-id>, and serves a local HTTP API.\n\n\
Containers keep running when the agent stops or restarts; a restarted agent adopts them.",
    after_help = "Examples:\n  caas-agent --config /etc/caas/agent.toml\n  \
caas-agent --node-id n1 --pool pool1 --zk 198.18.0.1:2181 --listen 0.0.0.0:7070 -l rack=r1\n\n\
Exit codes: 0 clean shutdown, 64 invalid configuration, 1 runtime failure."
)]
pub struct Flags {
    /// TOML config file [default: /etc/caas/agent.toml if it exists]
    #[arg(long, env = "CAAS_AGENT_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Node id, a DNS-1123 label unique in the cluster [default: the hostname]
    #[arg(long, env = "CAAS_AGENT_NODE_ID")]
    pub node_id: Option<String>,
    /// Pool (tenant) this node belongs to
    #[arg(long, env = "CAAS_AGENT_POOL")]
    pub pool: Option<String>,
    /// ZooKeeper ensemble, host:port[,host:port...]
    #[arg(long, env = "CAAS_AGENT_ZK", value_name = "HOST:PORT,...")]
    pub zk: Option<String>,
    /// ZooKeeper root of this caas cluster [default: /caas]
    #[arg(long, env = "CAAS_AGENT_ZK_ROOT", value_name = "PATH")]
    pub zk_root: Option<String>,
    /// Address of the agent's HTTP API [default: 127.0.0.1:7070]
    #[arg(long, env = "CAAS_AGENT_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Underlay (VTEP) address of this node for overlay networks
    #[arg(long, env = "CAAS_AGENT_UNDERLAY", value_name = "IP")]
    pub underlay: Option<String>,
    /// Uplink (trunk) interface that vlan networks ride on, e.g. eth1
    #[arg(long, env = "CAAS_AGENT_UPLINK", value_name = "IFNAME")]
    pub uplink: Option<String>,
    /// Node label key=value (repeatable); replaces the file's labels when given
    #[arg(
        short = 'l',
        long = "label",
        env = "CAAS_AGENT_LABELS",
        value_delimiter = ',',
        value_name = "KEY=VALUE"
    )]
    pub labels: Vec<String>,
    /// Docker engine socket [default: /var/run/docker.sock]
    #[arg(long, env = "CAAS_AGENT_DOCKER_SOCKET", value_name = "PATH")]
    pub docker_socket: Option<String>,
    /// Where the engine reads registry CAs; the agent writes the pool's registry proxies' CAs
    /// there as <dir>/<host:port>/ca.crt [default: /etc/docker/certs.d]
    #[arg(long, env = "CAAS_AGENT_DOCKER_CERTS_DIR", value_name = "DIR")]
    pub docker_certs_dir: Option<PathBuf>,
    /// Prefix of Docker container names [default: caas]
    #[arg(long, env = "CAAS_AGENT_NAME_PREFIX")]
    pub name_prefix: Option<String>,
    /// File holding the token central sends on every /v1 request (central's
    /// --agent-token-file); without it the /v1 API is off (/healthz and /metrics stay open)
    #[arg(long, env = "CAAS_AGENT_CONTROL_TOKEN_FILE", value_name = "FILE")]
    pub control_token_file: Option<PathBuf>,
}

/// The config file's shape. Every key is optional here; required ones are checked after merging.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_id: Option<String>,
    pool: Option<String>,
    zk: Option<String>,
    zk_root: Option<String>,
    listen: Option<String>,
    advertise: Option<String>,
    underlay: Option<String>,
    uplink: Option<String>,
    docker_socket: Option<String>,
    docker_certs_dir: Option<PathBuf>,
    image_prune: Option<String>,
    image_prune_interval_secs: Option<u64>,
    name_prefix: Option<String>,
    control_token_file: Option<PathBuf>,
    zk_session_timeout_ms: Option<u64>,
    resync_interval_ms: Option<u64>,
    stats_interval_ms: Option<u64>,
    stop_grace_secs: Option<u64>,
    deploy_max_unpacked_mib: Option<u64>,
    terminal_idle_timeout_secs: Option<u64>,
    max_terminal_sessions: Option<usize>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// Validated agent configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node_id: String,
    pub pool: String,
    pub zk_servers: String,
    pub layout: ZkLayout,
    pub listen: SocketAddr,
    /// Address published in NodeInfo for the API (the listen address unless it is unspecified).
    pub advertise: String,
    pub underlay: Option<std::net::IpAddr>,
    /// The interface vlan networks ride on (their 802.1Q sub-interfaces, or itself untagged).
    pub uplink: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub docker_socket: String,
    /// Where the engine reads registry CAs (`<dir>/<host:port>/ca.crt`).
    pub docker_certs_dir: PathBuf,
    /// How unused images pulled from the image center are pruned.
    pub image_prune: crate::images::prune::PrunePolicy,
    pub image_prune_interval: Duration,
    pub name_prefix: String,
    pub zk_session_timeout: Duration,
    pub resync_interval: Duration,
    /// Housekeeping interval of the stats collector (one sweep over all containers).
    pub stats_interval: Duration,
    pub stop_grace: Duration,
    /// Bearer token the control endpoints (exec, deploy) require; they are off without it.
    pub control_token: Option<String>,
    /// The most a deploy package may unpack to, in bytes (a bigger one is refused unread).
    pub deploy_max_unpacked: u64,
    /// A terminal session with neither input nor output for this long is ended.
    pub terminal_idle_timeout: Duration,
    /// The most terminal sessions at once; more are refused (`busy`).
    pub max_terminal_sessions: usize,
}

impl AgentConfig {
    /// Loads the file (explicit `--config`, or the default path if present), applies flags and
    /// environment, and validates the result.
    pub fn load(flags: &Flags) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                read_file(Path::new(DEFAULT_CONFIG_PATH))?
            }
            None => FileConfig::default(),
        };
        let config = Self::merge(flags, file)?;
        config.check_underlay()?;
        Ok(config)
    }

    /// The underlay must be an address of this machine (of the agent's network namespace): a
    /// VTEP on an address nobody owns would break every tunnel without a word.
    pub fn check_underlay(&self) -> Result<(), ConfigError> {
        match self.underlay {
            Some(ip) => crate::network::probe::check_underlay(ip)
                .map(|_| ())
                .map_err(|message| invalid("underlay", message)),
            None => Ok(()),
        }
    }

    /// Parses config file text (for tests and `--config`).
    pub fn from_toml(flags: &Flags, text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::merge(flags, parse_file(text, path)?)
    }

    fn merge(flags: &Flags, file: FileConfig) -> Result<Self, ConfigError> {
        let node_id = match flags.node_id.clone().or(file.node_id) {
            Some(id) => id,
            None => hostname_label()?,
        };
        validate_dns_label("node_id", &node_id).map_err(|e| invalid("node_id", e.message))?;
        let pool = flags.pool.clone().or(file.pool);
        if pool.is_none() && flags.zk.is_none() && file.zk.is_none() {
            // An unedited packaged config: name everything ops must set, at once.
            return Err(invalid(
                "pool, zk",
                "are required: set `pool = \"...\"` and `zk = \"host:port,...\"` in /etc/caas/agent.toml \
                 (or --pool/--zk, CAAS_AGENT_POOL/CAAS_AGENT_ZK)",
            ));
        }
        let pool = pool.ok_or_else(|| {
            invalid(
                "pool",
                "is required: set `pool = \"...\"` in the file, --pool or CAAS_AGENT_POOL",
            )
        })?;
        validate_dns_label("pool", &pool).map_err(|e| invalid("pool", e.message))?;

        let zk_servers = flags.zk.clone().or(file.zk).ok_or_else(|| {
            invalid("zk", "is required: the ZooKeeper ensemble as host:port[,host:port...] (--zk or CAAS_AGENT_ZK)")
        })?;
        caas_zk::check_servers(&zk_servers).map_err(|e| invalid("zk", e))?;
        let zk_root = flags
            .zk_root
            .clone()
            .or(file.zk_root)
            .unwrap_or_else(|| "/caas".to_string());
        let layout = ZkLayout::new(&zk_root).map_err(|e| invalid("zk_root", e.message))?;

        let listen_text = flags
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:7070".to_string());
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("{listen_text:?} is not ADDR:PORT, e.g. \"0.0.0.0:7070\""),
            )
        })?;
        let underlay = match flags.underlay.clone().or(file.underlay) {
            Some(text) => Some(text.parse::<std::net::IpAddr>().map_err(|_| {
                invalid(
                    "underlay",
                    format!("{text:?} is not an IP address, e.g. \"198.18.0.11\""),
                )
            })?),
            None => None,
        };
        let image_prune = match &file.image_prune {
            Some(text) => crate::images::prune::PrunePolicy::parse(text)
                .map_err(|m| invalid("image_prune", m))?,
            None => crate::images::prune::PrunePolicy::Keep(3),
        };
        let uplink = match flags.uplink.clone().or(file.uplink) {
            Some(name) => Some(check_interface_name(&name).map_err(|m| invalid("uplink", m))?),
            None => None,
        };
        let advertise = match file.advertise {
            Some(a) => a,
            None if listen.ip().is_unspecified() => match underlay {
                Some(ip) => SocketAddr::new(ip, listen.port()).to_string(),
                None => return Err(invalid(
                    "advertise",
                    "listen is a wildcard address, so set `advertise = \"host:port\"` or `underlay` \
                     to tell central how to reach this agent",
                )),
            },
            None => listen.to_string(),
        };

        let labels = if flags.labels.is_empty() {
            file.labels
        } else {
            parse_labels(&flags.labels)?
        };
        for key in labels.keys() {
            if key.is_empty() || key.starts_with("caas.") {
                return Err(invalid(
                    &format!("labels.{key}"),
                    "label keys must be non-empty and not start with \"caas.\"",
                ));
            }
        }

        let name_prefix = flags
            .name_prefix
            .clone()
            .or(file.name_prefix)
            .unwrap_or_else(|| "caas".to_string());
        if name_prefix.is_empty()
            || !name_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "name_prefix",
                format!("{name_prefix:?} must be letters, digits, '-' or '_'"),
            ));
        }
        let zk_session_timeout = Duration::from_millis(file.zk_session_timeout_ms.unwrap_or(6000));
        if zk_session_timeout < Duration::from_millis(200)
            || zk_session_timeout > Duration::from_secs(120)
        {
            return Err(invalid(
                "zk_session_timeout_ms",
                "must be between 200 and 120000",
            ));
        }
        let resync_interval = Duration::from_millis(file.resync_interval_ms.unwrap_or(5000));
        if resync_interval < Duration::from_millis(100) {
            return Err(invalid("resync_interval_ms", "must be at least 100"));
        }
        let stats_interval = Duration::from_millis(file.stats_interval_ms.unwrap_or(10_000));
        if !(Duration::from_millis(100)..=Duration::from_secs(3600)).contains(&stats_interval) {
            return Err(invalid(
                "stats_interval_ms",
                "must be between 100 and 3600000 (milliseconds between stats sweeps; default 10000)",
            ));
        }
        let max_mib = file
            .deploy_max_unpacked_mib
            .unwrap_or(crate::rich::DEFAULT_MAX_UNPACKED_MIB);
        if !(1..=MAX_UNPACKED_MIB_LIMIT).contains(&max_mib) {
            return Err(invalid(
                "deploy_max_unpacked_mib",
                format!(
                    "must be between 1 and {MAX_UNPACKED_MIB_LIMIT} (MiB a deploy package may \
                     unpack to; default {})",
                    crate::rich::DEFAULT_MAX_UNPACKED_MIB
                ),
            ));
        }
        let idle_secs = file
            .terminal_idle_timeout_secs
            .unwrap_or(caas_api::terminal::DEFAULT_IDLE_TIMEOUT_SECS);
        if !(1..=MAX_TERMINAL_IDLE_SECS).contains(&idle_secs) {
            return Err(invalid(
                "terminal_idle_timeout_secs",
                format!(
                    "must be between 1 and {MAX_TERMINAL_IDLE_SECS} (seconds a terminal session \
                     may see neither input nor output; default {})",
                    caas_api::terminal::DEFAULT_IDLE_TIMEOUT_SECS
                ),
            ));
        }
        let max_terminal_sessions = file
            .max_terminal_sessions
            .unwrap_or(DEFAULT_MAX_TERMINAL_SESSIONS);
        if !(1..=MAX_TERMINAL_SESSIONS_LIMIT).contains(&max_terminal_sessions) {
            return Err(invalid(
                "max_terminal_sessions",
                format!(
                    "must be between 1 and {MAX_TERMINAL_SESSIONS_LIMIT} (terminal sessions at \
                     once; default {DEFAULT_MAX_TERMINAL_SESSIONS})"
                ),
            ));
        }
        let control_token = flags
            .control_token_file
            .clone()
            .or(file.control_token_file)
            .map(|path| caas_daemon::read_token(&path, "control_token_file"))
            .transpose()?;
        Ok(Self {
            control_token,
            deploy_max_unpacked: max_mib << 20,
            terminal_idle_timeout: Duration::from_secs(idle_secs),
            max_terminal_sessions,
            node_id,
            pool,
            zk_servers,
            layout,
            listen,
            advertise,
            underlay,
            uplink,
            labels,
            docker_socket: flags
                .docker_socket
                .clone()
                .or(file.docker_socket)
                .unwrap_or_else(|| "/var/run/docker.sock".to_string()),
            docker_certs_dir: flags
                .docker_certs_dir
                .clone()
                .or(file.docker_certs_dir)
                .unwrap_or_else(|| PathBuf::from("/etc/docker/certs.d")),
            image_prune,
            image_prune_interval: Duration::from_secs(
                file.image_prune_interval_secs.unwrap_or(300).max(1),
            ),
            name_prefix,
            zk_session_timeout,
            resync_interval,
            stats_interval,
            stop_grace: Duration::from_secs(file.stop_grace_secs.unwrap_or(10)),
        })
    }
}

/// An interface name the kernel can have: 1..=15 bytes, no '/', ':' or whitespace.
fn check_interface_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() || name.len() > 15 {
        return Err(format!(
            "{name:?} is not an interface name (1 to 15 characters), e.g. \"eth1\""
        ));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "{name:?} is not an interface name ('/', ':' and spaces are not allowed)"
        ));
    }
    Ok(name.to_string())
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    caas_daemon::read_toml(path)
}

fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    caas_daemon::parse_toml(text, path)
}

fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>, ConfigError> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| invalid("label", format!("{item:?} is not KEY=VALUE")))
        })
        .collect()
}

fn hostname_label() -> Result<String, ConfigError> {
    let host = nix::unistd::gethostname().map_err(|e| {
        invalid(
            "node_id",
            format!("not set and the hostname cannot be read: {e}"),
        )
    })?;
    let host = host.to_string_lossy().to_lowercase();
    let label = host.split('.').next().unwrap_or_default().to_string();
    validate_dns_label("node_id", &label).map_err(|e| {
        invalid(
            "node_id",
            format!(
                "not set, and the hostname is not usable: {}; set node_id",
                e.message
            ),
        )
    })?;
    Ok(label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags() -> Flags {
        Flags {
            node_id: Some("n1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn file_then_flags() {
        let text = "pool = \"p1\"\nzk = \"127.0.0.1:2181\"\nlisten = \"127.0.0.1:7071\"\n[labels]\nrack = \"r1\"\n";
        let c = AgentConfig::from_toml(&flags(), text, Path::new("a.toml")).unwrap();
        assert_eq!(c.pool, "p1");
        assert_eq!(c.labels["rack"], "r1");
        assert_eq!(c.layout.root(), "/caas");
        assert_eq!(c.deploy_max_unpacked, 512 << 20);
        assert_eq!(c.stats_interval, Duration::from_secs(10));
        assert_eq!(c.terminal_idle_timeout, Duration::from_secs(15 * 60));
        assert_eq!(c.max_terminal_sessions, 64);
        let mut f = flags();
        f.pool = Some("p2".into());
        f.labels = vec!["rack=r2".into()];
        let c = AgentConfig::from_toml(&f, text, Path::new("a.toml")).unwrap();
        assert_eq!(c.pool, "p2");
        assert_eq!(c.labels["rack"], "r2");
        assert_eq!(c.uplink, None);
        f.uplink = Some("bond0".into());
        let with_uplink = "pool = \"p1\"\nzk = \"127.0.0.1:2181\"\nuplink = \"eth1\"\n";
        let c = AgentConfig::from_toml(&flags(), with_uplink, Path::new("a.toml")).unwrap();
        assert_eq!(c.uplink.as_deref(), Some("eth1"));
        let c = AgentConfig::from_toml(&f, with_uplink, Path::new("a.toml")).unwrap();
        assert_eq!(
            c.uplink.as_deref(),
            Some("bond0"),
            "the flag beats the file"
        );
    }

    #[test]
    fn packaged_config_documents_every_key_and_needs_pool_and_zk() {
        use caas_daemon::config_doc::{documented_keys, struct_fields, uncomment_examples};
        let shipped = include_str!("../../packaging/agent.toml");
        let path = Path::new("packaging/agent.toml");
        let documented = documented_keys(shipped);
        for field in struct_fields::<FileConfig>() {
            assert!(
                documented.iter().any(|k| k == field),
                "packaging/agent.toml does not document `{field}`"
            );
        }
        // Every documented key (examples uncommented) is one the parser accepts, with a value
        // of the right type.
        parse_file(&uncomment_examples(shipped), path).unwrap();
        for key in &documented {
            let top = key.split('.').next().unwrap();
            assert!(
                struct_fields::<FileConfig>().contains(&top),
                "packaging/agent.toml documents `{key}`, which the agent refuses"
            );
        }
        // As shipped it parses, and names exactly what ops must set.
        match AgentConfig::from_toml(&flags(), shipped, path) {
            Err(ConfigError::Invalid { field, message }) => {
                assert_eq!(field, "pool, zk");
                assert!(message.contains("/etc/caas/agent.toml"), "{message}");
            }
            other => panic!("expected pool and zk to be required, got {other:?}"),
        }
        let edited = format!("{shipped}\n").replace(
            "# pool = \"pool1\"",
            "pool = \"pool1\"\nzk = \"10.0.0.1:2181\"",
        );
        let c = AgentConfig::from_toml(&flags(), &edited, path).unwrap();
        assert_eq!(
            (c.pool.as_str(), c.zk_servers.as_str()),
            ("pool1", "10.0.0.1:2181")
        );
        assert_eq!(c.listen.to_string(), "127.0.0.1:7070");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let err = AgentConfig::from_toml(
            &flags(),
            "pool = \"p\"\nzk = \"h:1\"\npoool = 1\n",
            Path::new("x.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("poool"), "{err}");
        for (text, field) in [
            ("zk = \"h:1\"\n", "pool"),
            ("pool = \"P!\"\nzk = \"h:1\"\n", "pool"),
            ("pool = \"p\"\nzk = \"nohost\"\n", "zk"),
            ("pool = \"p\"\nzk = \"h:1\"\nlisten = \"x\"\n", "listen"),
            (
                "pool = \"p\"\nzk = \"h:1\"\nlisten = \"0.0.0.0:1\"\n",
                "advertise",
            ),
            (
                "pool = \"p\"\nzk = \"h:1\"\nzk_root = \"caas\"\n",
                "zk_root",
            ),
            (
                "pool = \"p\"\nzk = \"h:1\"\ndeploy_max_unpacked_mib = 0\n",
                "deploy_max_unpacked_mib",
            ),
            (
                "pool = \"p\"\nzk = \"h:1\"\nstats_interval_ms = 5\n",
                "stats_interval_ms",
            ),
            (
                "pool = \"p\"\nzk = \"h:1\"\nterminal_idle_timeout_secs = 0\n",
                "terminal_idle_timeout_secs",
            ),
            (
                "pool = \"p\"\nzk = \"h:1\"\nmax_terminal_sessions = 0\n",
                "max_terminal_sessions",
            ),
            (
                "pool = \"p\"\nzk = \"h:1\"\nuplink = \"eth1/2\"\n",
                "uplink",
            ),
            (
                "pool = \"p\"\nzk = \"h:1\"\nuplink = \"a-very-long-ifname\"\n",
                "uplink",
            ),
            ("pool = \"p\"\nzk = \"h:1\"\nuplink = \" \"\n", "uplink"),
            (
                "pool = \"p\"\nzk = \"h:1\"\nimage_prune = \"keep\"\n",
                "image_prune",
            ),
        ] {
            match AgentConfig::from_toml(&flags(), text, Path::new("x.toml")) {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field, "{text}"),
                other => panic!("{text}: expected invalid {field}, got {other:?}"),
            }
        }
    }
}
