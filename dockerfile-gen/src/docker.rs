//! The connection to the Docker engine: `DOCKER_HOST` (unix or tcp) or the local socket, with
//! the API version negotiated down to the engine's (Debian's docker.io 20.10 speaks 1.41).

use bollard::Docker;

use crate::error::DockerError;

/// Seconds a request may wait for its answer to start (a build answers only once the whole
/// context has arrived).
const TIMEOUT_SECS: u64 = 600;

/// A connected engine and the address it was reached at.
#[derive(Debug, Clone)]
pub struct Engine {
    pub docker: Docker,
    pub host: String,
}

/// The engine address: `DOCKER_HOST`, or the local socket.
pub fn host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string())
}

/// Connects and negotiates the API version; an engine that is not there is a clear error.
pub async fn connect() -> Result<Engine, DockerError> {
    let host = host();
    let docker = if let Some(path) = host.strip_prefix("unix://") {
        Docker::connect_with_unix(path, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else if host.starts_with("tcp://") || host.starts_with("http://") {
        Docker::connect_with_http(&host, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
    } else {
        return Err(DockerError::BadHost(host));
    }
    .map_err(|e| DockerError::Unreachable {
        host: host.clone(),
        detail: innermost(&e),
    })?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| DockerError::Unreachable {
            host: host.clone(),
            detail: innermost(&e),
        })?;
    Ok(Engine { docker, host })
}

/// The innermost cause of an error, which names the real problem ("No such file or directory").
pub fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Maps an engine error to a `DockerError::Api` naming the action.
pub fn api(action: impl Into<String>) -> impl Fn(bollard::errors::Error) -> DockerError {
    let action = action.into();
    move |e| DockerError::Api {
        action: action.clone(),
        detail: match &e {
            bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
            other => innermost(other),
        },
    }
}

/// Whether an engine error is a 404.
pub fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}
