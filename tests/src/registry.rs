//! The image center and per-pool registry proxies of tests: Debian's `docker-registry`
//! (distribution 2.8) started through `scripts/image-center`, with TLS from a dev CA and htpasswd
//! auth, optionally inside a network namespace; their storage and access logs, to prove what was
//! fetched from where; and pushing images from the host's engine into the center with skopeo.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::process::ChildGuard;

/// How long a registry may take to answer `/v2/` after it was started.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// `scripts/image-center` in this repository.
pub fn image_center_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("image-center")
}

fn run_script(args: &[&str]) -> anyhow::Result<()> {
    let script = image_center_script();
    let out = std::process::Command::new(&script)
        .args(args)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "scripts/image-center {}: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A development CA (`scripts/image-center ca`) in a directory that also holds the certificates,
/// configs, htpasswd files, storage and logs of the registries started with it.
#[derive(Debug)]
pub struct DevCa {
    dir: PathBuf,
    pem: String,
}

impl DevCa {
    /// Makes the CA in `dir` (created if missing; an existing CA there is kept).
    pub fn create(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir_text = dir.to_str().context("the CA directory is not UTF-8")?;
        run_script(&["ca", dir_text])?;
        let pem = std::fs::read_to_string(dir.join("ca.crt"))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            pem,
        })
    }

    /// The directory of the CA and of every registry started with it.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM).
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Path of the CA certificate (`DIR/ca.crt`), e.g. for `curl --cacert`.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A directory holding only the CA certificate, for skopeo's `--dest-cert-dir` /
    /// `--src-cert-dir` (skopeo would take any `*.key` there for a client key).
    pub fn cert_dir(&self) -> PathBuf {
        self.dir.join("certs")
    }

    /// Issues the server certificate `DIR/NAME.crt` for `hosts` (IP addresses or DNS names).
    pub fn issue(&self, name: &str, hosts: &[&str]) -> anyhow::Result<()> {
        let dir = self.dir.to_str().context("the CA directory is not UTF-8")?;
        let mut args = vec!["cert", dir, name];
        args.extend_from_slice(hosts);
        run_script(&args)
    }
}

/// Whether a registry is the image center or a pool's pull-through proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryKind {
    Center,
    Proxy,
}

impl RegistryKind {
    fn as_str(self) -> &'static str {
        match self {
            RegistryKind::Center => "center",
            RegistryKind::Proxy => "proxy",
        }
    }
}

/// One request of a registry's access log (Apache combined format), e.g.
/// `198.18.0.1 - - [07/Dec/2026:17:06:16 +0000] "GET /v2/team/app/blobs/sha256:62… HTTP/2.0" 200 1083635 "" "Go-http-client/2.0"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    pub remote: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub bytes: u64,
    pub user_agent: String,
}

impl AccessEntry {
    /// Parses one access-log line; None for the registry's other (logrus `time=...`) lines.
    pub fn parse(line: &str) -> Option<Self> {
        let (remote, rest) = line.split_once(' ')?;
        remote.parse::<std::net::IpAddr>().ok()?;
        let (_, rest) = rest.split_once("] \"")?;
        let (request, rest) = rest.split_once("\" ")?;
        let mut request = request.split(' ');
        let method = request.next()?.to_string();
        let path = request.next()?.to_string();
        if !request.next()?.starts_with("HTTP/") {
            return None;
        }
        let mut fields = rest.splitn(3, ' ');
        let status = fields.next()?.parse().ok()?;
        let bytes = fields.next()?.parse().unwrap_or(0);
        let user_agent = fields
            .next()
            .and_then(|quoted| quoted.rsplit('"').nth(1))
            .unwrap_or_default()
            .to_string();
        Some(Self {
            remote: remote.to_string(),
            method,
            path,
            status,
            bytes,
            user_agent,
        })
    }
}

/// A running image center or proxy (`docker-registry serve`); killed on drop.
#[derive(Debug)]
pub struct Registry {
    kind: RegistryKind,
    name: String,
    dir: PathBuf,
    netns: Option<String>,
    listen: SocketAddr,
    ca_path: PathBuf,
    ca_pem: String,
    log: PathBuf,
    child: Option<ChildGuard>,
}

impl Registry {
    /// Starts an image center listening on `listen` (inside `netns` when given), TLS with a
    /// certificate from `ca` for the listen address, every request authenticated as
    /// `user`/`password`. Returns once `/v2/` answers.
    pub async fn start_center(
        netns: Option<&str>,
        listen: SocketAddr,
        ca: &DevCa,
        user: &str,
        password: &str,
    ) -> anyhow::Result<Self> {
        Self::start(
            RegistryKind::Center,
            netns,
            listen,
            ca,
            &[("--user", user), ("--password", password)],
        )
        .await
    }

    /// Starts a pull-through proxy of `center` on `listen` (inside `netns` when given): clients
    /// authenticate as `proxy_user`/`proxy_password`, the proxy fetches from the center as
    /// `center_user`/`center_password`. The center must be up (a 2.8 proxy exits at start when
    /// its remote does not answer).
    #[allow(clippy::too_many_arguments)]
    pub async fn start_proxy(
        netns: Option<&str>,
        listen: SocketAddr,
        ca: &DevCa,
        center: &Registry,
        center_user: &str,
        center_password: &str,
        proxy_user: &str,
        proxy_password: &str,
    ) -> anyhow::Result<Self> {
        let remote = center.url();
        Self::start(
            RegistryKind::Proxy,
            netns,
            listen,
            ca,
            &[
                ("--user", proxy_user),
                ("--password", proxy_password),
                ("--remote", &remote),
                ("--remote-user", center_user),
                ("--remote-password", center_password),
            ],
        )
        .await
    }

    async fn start(
        kind: RegistryKind,
        netns: Option<&str>,
        listen: SocketAddr,
        ca: &DevCa,
        options: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "{}{}-{}",
            kind.as_str(),
            SEQ.fetch_add(1, Ordering::SeqCst),
            listen.port()
        );
        let ip = listen.ip().to_string();
        ca.issue(&name, &[&ip])?;
        let dir = ca.dir().to_str().context("the CA directory is not UTF-8")?;
        let listen_text = listen.to_string();
        let mut args = vec![
            "config",
            kind.as_str(),
            dir,
            "--listen",
            &listen_text,
            "--name",
            &name,
        ];
        for (flag, value) in options {
            args.push(flag);
            args.push(value);
        }
        run_script(&args)?;
        let mut registry = Self {
            kind,
            log: ca.dir().join(format!("{name}.log")),
            name,
            dir: ca.dir().to_path_buf(),
            netns: netns.map(str::to_string),
            listen,
            ca_path: ca.cert_path(),
            ca_pem: ca.pem().to_string(),
            child: None,
        };
        registry.spawn().await?;
        Ok(registry)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let dir = self.dir.display().to_string();
        let child = ChildGuard::spawn(
            &format!("registry {}", self.name),
            self.netns.as_deref(),
            &image_center_script(),
            &["run".to_string(), dir, self.name.clone()],
            &[],
            &self.log,
        )?;
        self.child = Some(child);
        self.wait_up().await
    }

    /// Waits until `/v2/` answers over TLS (401 counts: the registry is up and asks for
    /// credentials), failing early when the process exits.
    async fn wait_up(&mut self) -> anyhow::Result<()> {
        let url = format!("{}/v2/", self.url());
        let what = format!("{} {} to answer {url}", self.kind.as_str(), self.name);
        let child = &mut self.child;
        let (netns, ca_path) = (self.netns.clone(), self.ca_path.clone());
        let result = crate::wait::until(&what, START_TIMEOUT, || {
            let running = child.as_mut().is_some_and(ChildGuard::is_running);
            let probe = curl_status(netns.as_deref(), &ca_path, &url);
            async move {
                if !running {
                    bail!("the registry exited");
                }
                let status = probe.await?;
                Ok(matches!(status, 200 | 401).then_some(()))
            }
        })
        .await;
        result.map_err(|e| {
            let tail = self
                .child
                .as_ref()
                .map(|c| c.log_tail(30))
                .unwrap_or_default();
            anyhow::anyhow!("{e:#}\nregistry log:\n{tail}")
        })
    }

    pub fn kind(&self) -> RegistryKind {
        self.kind
    }

    /// The name of its files in the CA directory (`NAME.yml`, `NAME.log`, `NAME-data`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip:port`, as image references and certs.d directories name the registry.
    pub fn host(&self) -> String {
        self.listen.to_string()
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen
    }

    /// `https://ip:port`.
    pub fn url(&self) -> String {
        format!("https://{}", self.listen)
    }

    /// The CA certificate (PEM) clients must trust, e.g. in `certs.d/HOST:PORT/ca.crt`.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The storage root (`rootdirectory`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join(format!("{}-data", self.name))
    }

    /// Blobs in storage: files named `data` under `docker/registry/v2/blobs`.
    pub fn blob_count(&self) -> usize {
        fn count(dir: &Path) -> usize {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => count(&e.path()),
                    Ok(t) if t.is_file() && e.file_name() == "data" => 1,
                    _ => 0,
                })
                .sum()
        }
        count(&self.data_dir().join("docker/registry/v2/blobs"))
    }

    /// Everything the registry wrote (stdout and stderr, across restarts): the access log in
    /// Apache combined format and the logrus `time=... level=... msg=...` lines.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The parsed access-log lines.
    pub fn access_entries(&self) -> Vec<AccessEntry> {
        self.access_log()
            .lines()
            .filter_map(AccessEntry::parse)
            .collect()
    }

    /// Successful (2xx) GETs whose path contains `path_substring`, e.g. `/blobs/sha256:` for
    /// blob fetches or `/manifests/1` for a tag's manifest. HEADs, 401s and 404s do not count.
    pub fn count_fetches(&self, path_substring: &str) -> usize {
        self.access_entries()
            .iter()
            .filter(|e| {
                e.method == "GET"
                    && (200..300).contains(&e.status)
                    && e.path.contains(path_substring)
            })
            .count()
    }

    /// The last `lines` lines of the registry's log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.access_log();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(ChildGuard::is_running)
    }

    /// Kills the registry (SIGKILL): "the center is down". Storage and log stay.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }

    /// Starts it again with the same config, storage and log; returns once `/v2/` answers.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn().await
    }
}

/// GET `url` with curl (inside `netns` when given) trusting `ca_path`; the HTTP status.
fn curl_status(
    netns: Option<&str>,
    ca_path: &Path,
    url: &str,
) -> impl std::future::Future<Output = anyhow::Result<u16>> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, "curl"]);
            c
        }
        None => tokio::process::Command::new("curl"),
    };
    cmd.args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(["--noproxy", "*", "--max-time", "2", "--cacert"])
        .arg(ca_path)
        .arg(url)
        .kill_on_drop(true);
    async move {
        let out = cmd.output().await.context("running curl")?;
        let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            bail!("curl: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        code.parse()
            .with_context(|| format!("curl printed status {code:?}"))
    }
}

/// Copies `local_image` from the host's engine into `center` as `repo_tag` (e.g. `team/app:1`)
/// with skopeo, authenticated as `user`/`password`, trusting `ca`. skopeo runs in `netns` (where
/// the center listens) through `nsenter --net`, so it still reaches the host's
/// `/var/run/docker.sock`. Returns the pushed reference `HOST:PORT/REPO:TAG`.
pub async fn push_local_image(
    ca: &DevCa,
    center: &Registry,
    user: &str,
    password: &str,
    local_image: &str,
    repo_tag: &str,
    netns: Option<&str>,
) -> anyhow::Result<String> {
    let reference = format!("{}/{repo_tag}", center.host());
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}"))
                .args(["--", "skopeo"]);
            c
        }
        None => tokio::process::Command::new("skopeo"),
    };
    cmd.args(["--insecure-policy", "copy", "--retry-times", "0"])
        .arg("--dest-creds")
        .arg(format!("{user}:{password}"))
        .arg("--dest-cert-dir")
        .arg(ca.cert_dir())
        .arg(format!("docker-daemon:{local_image}"))
        .arg(format!("docker://{reference}"))
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .context("skopeo copy took over 120 s")?
        .context("running skopeo (scripts/install-deps installs it)")?;
    if !out.status.success() {
        bail!(
            "skopeo copy {local_image} -> {reference}: {}{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(reference)
}

#[cfg(test)]
mod tests {
    use super::AccessEntry;

    #[test]
    fn parses_access_lines() {
        let line = r#"198.18.0.1 - - [07/Dec/2026:17:06:16 +0000] "GET /v2/team/app/blobs/sha256:621e HTTP/2.0" 200 1083635 "" "Go-http-client/2.0""#;
        assert_eq!(
            AccessEntry::parse(line),
            Some(AccessEntry {
                remote: "198.18.0.1".into(),
                method: "GET".into(),
                path: "/v2/team/app/blobs/sha256:621e".into(),
                status: 200,
                bytes: 1083635,
                user_agent: "Go-http-client/2.0".into(),
            })
        );
        let logrus =
            r#"time="2026-12-07T17:05:41Z" level=info msg="listening on 127.0.0.1:5301, tls""#;
        assert_eq!(AccessEntry::parse(logrus), None);
    }
}
