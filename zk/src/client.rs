//! Opening one ZooKeeper session from configuration, and creating persistent directory paths.

use std::time::Duration;

use zookeeper_client::{Acls, Client, CreateMode, Error as ZkErr};

use crate::path::{self, PathError};

/// Where and how to open ZooKeeper sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZkConfig {
    /// Connect string: `host:port,host:port`, optionally followed by a chroot path.
    pub servers: String,
    /// Session timeout asked from the servers; they clamp it to their min/max.
    pub session_timeout: Duration,
    /// Upper bound for establishing one session in [`connect`].
    pub connect_timeout: Duration,
}

impl ZkConfig {
    /// A config with a 10s session timeout and a 10s connect timeout.
    pub fn new(servers: impl Into<String>) -> Self {
        Self {
            servers: servers.into(),
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }

    pub fn validate(&self) -> Result<(), ClientError> {
        let invalid = |reason| {
            Err(ClientError::InvalidConfig {
                servers: self.servers.clone(),
                reason,
            })
        };
        if self.servers.trim().is_empty() {
            return invalid("servers must not be empty");
        }
        if check_servers(&self.servers).is_err() {
            return invalid("each server must be host:port");
        }
        if self.session_timeout.is_zero() {
            return invalid("session_timeout must be positive");
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout must be positive");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ClientError {
    #[error("invalid ZooKeeper config for {servers:?}: {reason}")]
    InvalidConfig {
        servers: String,
        reason: &'static str,
    },
    #[error("connecting to ZooKeeper at {servers}: {source}")]
    Connect { servers: String, source: ZkErr },
    #[error("no ZooKeeper session established with {servers} within {timeout:?}")]
    ConnectTimeout { servers: String, timeout: Duration },
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("creating path {path}: {source}")]
    EnsurePath { path: String, source: ZkErr },
}

/// Opens a new session. The returned client reconnects by itself after disconnects; it becomes
/// useless only when its session expires (see [`crate::ZkSession`] for a replacing owner).
/// Checks a connect string (`host:port[,host:port...]`); the error names the bad entry. Config
/// loaders call it to refuse a bad ensemble before anything starts.
pub fn check_servers(servers: &str) -> Result<(), String> {
    for server in servers.split(',') {
        let ok = server.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
        });
        if !ok {
            return Err(format!("{server:?} is not host:port (in {servers:?})"));
        }
    }
    Ok(())
}

pub async fn connect(config: &ZkConfig) -> Result<Client, ClientError> {
    config.validate()?;
    let connecting = Client::connector()
        .with_session_timeout(config.session_timeout)
        .connect(&config.servers);
    match tokio::time::timeout(config.connect_timeout, connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(source)) => Err(ClientError::Connect {
            servers: config.servers.clone(),
            source,
        }),
        Err(_) => Err(ClientError::ConnectTimeout {
            servers: config.servers.clone(),
            timeout: config.connect_timeout,
        }),
    }
}

/// Creates `path` and its missing ancestors as persistent, open-ACL nodes; existing ones are fine.
pub async fn ensure_path(client: &Client, path: &str) -> Result<(), ClientError> {
    path::validate(path)?;
    if path == "/" {
        return Ok(());
    }
    let options = CreateMode::Persistent.with_acls(Acls::anyone_all());
    client
        .mkdir(path, &options)
        .await
        .map_err(|source| ClientError::EnsurePath {
            path: path.to_string(),
            source,
        })
}

/// Whether an error means the session is over for good, so the caller needs a new client.
pub(crate) fn is_session_lost(err: &ZkErr) -> bool {
    matches!(
        err,
        ZkErr::SessionExpired | ZkErr::ClientClosed | ZkErr::AuthFailed | ZkErr::SessionMoved
    )
}

/// Whether requests can be served right now (as opposed to queued until a reconnect).
pub(crate) fn is_connected(client: &Client) -> bool {
    use zookeeper_client::SessionState::*;
    matches!(client.state(), SyncConnected | ConnectedReadOnly)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_validation() {
        assert!(ZkConfig::new("127.0.0.1:2181").validate().is_ok());
        assert!(ZkConfig::new(" ").validate().is_err());
        let mut c = ZkConfig::new("127.0.0.1:2181");
        c.session_timeout = Duration::ZERO;
        assert!(c.validate().is_err());
    }
}
