//! caas-central configuration: TOML file (unknown keys rejected) < `CAAS_CENTRAL_*` environment
//! < flags, validated before anything binds or connects.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use caas_api::ZkLayout;
use clap::Parser;
use serde::Deserialize;

use caas_daemon::invalid;
pub use caas_daemon::{ConfigError, EXIT_CONFIG};

#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "caas-central",
    version = caas_buildinfo::VERSION_TEXT,
    about = "caas central: the stateless REST API and scheduler (all state lives in ZooKeeper)",
    long_about = "caas central: the stateless REST API and scheduler.\n\nRun any number of instances \
behind one address; all state lives in ZooKeeper. One instance at a time is elected to do the \
background work (tracking node liveness, re-placing workloads of lost nodes); its writes are \
fenced so a deposed leader cannot write.",
    after_help = "Examples:\n  caas-central --zk 10.0.0.1:2181 --listen 0.0.0.0:8080 --admin-token-file /etc/caas/admin.token\n  \
caas-central --config /etc/caas/central.toml\n\nExit codes: 0 clean shutdown, 64 invalid configuration, 1 runtime failure."
)]
pub struct Flags {
    /// TOML config file
    #[arg(long, env = "CAAS_CENTRAL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// ZooKeeper ensemble, host:port[,host:port...]
    #[arg(long, env = "CAAS_CENTRAL_ZK", value_name = "HOST:PORT,...")]
    pub zk: Option<String>,
    /// ZooKeeper root of this caas cluster [default: /caas]
    #[arg(long, env = "CAAS_CENTRAL_ZK_ROOT", value_name = "PATH")]
    pub zk_root: Option<String>,
    /// Address of the REST API [default: 127.0.0.1:8080]
    #[arg(long, env = "CAAS_CENTRAL_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// File holding the admin bearer token (one line)
    #[arg(long, env = "CAAS_CENTRAL_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// File holding the token agents accept from central for exec and deploy (the agents'
    /// --control-token-file); without it exec and deploy answer 503
    #[arg(long, env = "CAAS_CENTRAL_AGENT_TOKEN_FILE", value_name = "FILE")]
    pub agent_token_file: Option<PathBuf>,
    /// Seconds a node may be unregistered before it is declared lost [default: 30]
    #[arg(long, env = "CAAS_CENTRAL_LOST_GRACE", value_name = "SECS")]
    pub lost_grace: Option<u64>,
    /// Seconds a lost node with no workload left keeps its records before they are removed
    /// [default: 604800, a week]
    #[arg(long, env = "CAAS_CENTRAL_INVENTORY_RETENTION", value_name = "SECS")]
    pub inventory_retention: Option<u64>,
    /// Directory the web console serves xterm.js from [default: Debian's node-xterm modules,
    /// /usr/share/nodejs/xterm/lib, or libjs-xterm's /usr/share/javascript/xterm]
    #[arg(long, env = "CAAS_CENTRAL_CONSOLE_XTERM_DIR", value_name = "DIR")]
    pub console_xterm_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    zk: Option<String>,
    zk_root: Option<String>,
    listen: Option<String>,
    admin_token_file: Option<PathBuf>,
    agent_token_file: Option<PathBuf>,
    lost_grace_secs: Option<u64>,
    inventory_retention_secs: Option<u64>,
    zk_session_timeout_ms: Option<u64>,
    console_xterm_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct CentralConfig {
    pub zk_servers: String,
    pub layout: ZkLayout,
    pub listen: SocketAddr,
    /// The admin token itself (read from the file; only its hash is kept by the server).
    pub admin_token: String,
    /// The token sent to agents for exec and deploy, when configured.
    pub agent_token: Option<String>,
    pub lost_grace: Duration,
    pub inventory_retention: Duration,
    pub zk_session_timeout: Duration,
    /// Where the web console reads xterm.js from (`None`: the Debian packages' directories).
    pub console_xterm_dir: Option<PathBuf>,
}

impl CentralConfig {
    pub fn load(flags: &Flags) -> Result<Self, ConfigError> {
        let file = match &flags.config {
            Some(path) => caas_daemon::read_toml::<FileConfig>(path)?,
            None => FileConfig::default(),
        };
        if flags.zk.is_none()
            && file.zk.is_none()
            && flags.admin_token_file.is_none()
            && file.admin_token_file.is_none()
        {
            // An unedited packaged config: name everything ops must set, at once.
            return Err(invalid(
                "zk, admin_token_file",
                "are required: set `zk = \"host:port,...\"` and `admin_token_file = \"...\"` in \
                 /etc/caas/central.toml (or --zk/--admin-token-file, CAAS_CENTRAL_ZK/\
                 CAAS_CENTRAL_ADMIN_TOKEN_FILE)",
            ));
        }
        let zk_servers = flags.zk.clone().or(file.zk).ok_or_else(|| {
            invalid(
                "zk",
                "is required: the ZooKeeper ensemble as host:port[,...] (--zk or CAAS_CENTRAL_ZK)",
            )
        })?;
        caas_zk::check_servers(&zk_servers).map_err(|e| invalid("zk", e))?;
        let root = flags
            .zk_root
            .clone()
            .or(file.zk_root)
            .unwrap_or_else(|| "/caas".into());
        let layout = ZkLayout::new(&root).map_err(|e| invalid("zk_root", e.message))?;
        let listen_text = flags
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_text.parse().map_err(|_| {
            invalid(
                "listen",
                format!("{listen_text:?} is not ADDR:PORT, e.g. \"0.0.0.0:8080\""),
            )
        })?;
        let token_file = flags.admin_token_file.clone().or(file.admin_token_file).ok_or_else(|| {
            invalid(
                "admin_token_file",
                "is required: a file with the admin token (--admin-token-file or CAAS_CENTRAL_ADMIN_TOKEN_FILE); \
                 create one with e.g. `openssl rand -hex 32 > /etc/caas/admin.token`",
            )
        })?;
        let admin_token = caas_daemon::read_token(&token_file, "admin_token_file")?;
        let agent_token = flags
            .agent_token_file
            .clone()
            .or(file.agent_token_file)
            .map(|path| caas_daemon::read_token(&path, "agent_token_file"))
            .transpose()?;
        let lost_grace =
            Duration::from_secs(flags.lost_grace.or(file.lost_grace_secs).unwrap_or(30));
        if lost_grace.is_zero() {
            return Err(invalid("lost_grace", "must be at least 1 second"));
        }
        let inventory_retention = flags
            .inventory_retention
            .or(file.inventory_retention_secs)
            .map(Duration::from_secs)
            .unwrap_or(crate::leader::DEFAULT_INVENTORY_RETENTION);
        if inventory_retention.is_zero() {
            return Err(invalid(
                "inventory_retention",
                "must be at least 1 second (the default keeps a lost node's records for a week)",
            ));
        }
        let zk_session_timeout = Duration::from_millis(file.zk_session_timeout_ms.unwrap_or(6000));
        let console_xterm_dir = flags.console_xterm_dir.clone().or(file.console_xterm_dir);
        if console_xterm_dir.as_ref().is_some_and(|d| d.is_relative()) {
            return Err(invalid(
                "console_xterm_dir",
                "must be an absolute path, e.g. \"/usr/share/nodejs/xterm/lib\"",
            ));
        }
        Ok(Self {
            zk_servers,
            layout,
            listen,
            admin_token,
            agent_token,
            lost_grace,
            inventory_retention,
            zk_session_timeout,
            console_xterm_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn packaged_config_documents_every_key_and_needs_zk_and_token() {
        use caas_daemon::config_doc::{documented_keys, struct_fields, uncomment_examples};
        let shipped = include_str!("../../packaging/central.toml");
        let dir = tempfile::tempdir().unwrap();
        let documented = documented_keys(shipped);
        for field in struct_fields::<FileConfig>() {
            assert!(
                documented.iter().any(|k| k == field),
                "packaging/central.toml does not document `{field}`"
            );
        }
        for key in &documented {
            assert!(
                struct_fields::<FileConfig>().contains(&key.as_str()),
                "packaging/central.toml documents `{key}`, which central refuses"
            );
        }
        let path = dir.path().join("central.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).unwrap();
            CentralConfig::load(&Flags {
                config: Some(path.clone()),
                ..Default::default()
            })
        };
        // Every documented example parses and validates (token files made here).
        for name in ["admin.token", "control.token"] {
            std::fs::write(dir.path().join(name), "0123456789abcdef0123\n").unwrap();
        }
        let examples = uncomment_examples(shipped)
            .replace("/etc/caas/", &format!("{}/", dir.path().display()));
        let c = load(&examples).unwrap();
        assert!(c.agent_token.is_some());
        match load(shipped) {
            Err(ConfigError::Invalid { field, message }) => {
                assert_eq!(field, "zk, admin_token_file");
                assert!(message.contains("/etc/caas/central.toml"), "{message}");
            }
            other => panic!("expected zk and admin_token_file to be required, got {other:?}"),
        }
        let token = dir.path().join("admin.token");
        std::fs::write(&token, "0123456789abcdef0123\n").unwrap();
        let edited = format!(
            "{shipped}\nzk = \"10.0.0.1:2181\"\nadmin_token_file = \"{}\"\n",
            token.display()
        );
        let c = load(&edited).unwrap();
        assert_eq!(c.zk_servers, "10.0.0.1:2181");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.lost_grace, Duration::from_secs(30));
    }
}
