//! Per-node Docker engines for tests: one `dockerd` (with the containerd it manages) inside a
//! node's network namespace, as each production node has its own engine, with its own data
//! root, socket and `/etc/docker` (so its own `certs.d`). Killed with everything it started
//! (containerd, shims, containers, fuse-overlayfs mounts) on drop, and swept by later runs when
//! the test process that started it died.
//!
//! Only the network namespace is entered (`nsenter --net`): `ip netns exec` remounts /sys for the
//! namespace, which hides the cgroup v1 hierarchies (dockerd then fails "Devices cgroup isn't
//! mounted"). A private mount namespace (`unshare --mount --propagation private`) bind-mounts
//! the engine's own directory over `/etc/docker`; nothing is mounted on the host.
//!
//! [`EngineOptions::data_root_size`] gives an engine a small disk: a tmpfs of that size mounted
//! over its data root inside the same private mount namespace (it goes away with the engine's
//! last process). The host then sees only the empty directory underneath; the engine's view is
//! reachable through `/proc/<dockerd>/root` ([`NodeEngine::data_root`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::process::ChildGuard;

/// How long a node engine may take to answer on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Every live node engine has a symlink here, `<test pid>-<seq>` -> its directory, so a later
/// run can find and sweep the engines of a test process that died.
pub const INDEX_DIR: &str = "/run/caas-tests/node-engines";

/// Engine directories are named `caas-dockerd-<test pid>-<seq>`.
pub const DIR_PREFIX: &str = "caas-dockerd-";

/// How a node engine differs from the default one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineOptions {
    /// Bytes of a tmpfs mounted over the data root in the engine's private mount namespace: a
    /// disk that fills (e.g. during a pull). The engine starts with an empty data root.
    pub data_root_size: Option<u64>,
}

impl EngineOptions {
    /// A data root of `bytes` (a tmpfs; see [`EngineOptions::data_root_size`]).
    pub fn small_data_root(bytes: u64) -> Self {
        Self {
            data_root_size: Some(bytes),
        }
    }
}

/// Space on a file system, from statvfs(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    pub total: u64,
    pub used: u64,
    pub available: u64,
}

/// A dockerd for one node namespace; killed with its containerd, shims and containers on drop.
#[derive(Debug)]
pub struct NodeEngine {
    netns: String,
    dir: PathBuf,
    index_link: PathBuf,
    options: EngineOptions,
    child: Option<ChildGuard>,
}

impl NodeEngine {
    /// Starts an engine inside network namespace `netns`, in a new directory
    /// `parent/caas-dockerd-<pid>-<seq>` (data root, exec root, socket, log, `/etc/docker`), with
    /// the host engine's storage driver, no bridge and no iptables rules. Returns once the engine
    /// answers on its socket.
    pub async fn start(netns: &str, parent: &Path) -> anyhow::Result<Self> {
        Self::start_with(netns, parent, EngineOptions::default()).await
    }

    /// [`NodeEngine::start`] with `options` (e.g. a small data root).
    pub async fn start_with(
        netns: &str,
        parent: &Path,
        options: EngineOptions,
    ) -> anyhow::Result<Self> {
        sweep_stale();
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let parent = std::fs::canonicalize(parent)
            .with_context(|| format!("node engine parent {}", parent.display()))?;
        let dir = parent.join(format!("{DIR_PREFIX}{id}"));
        // containerd's socket, the longest path, must fit a unix socket address (108 bytes).
        let longest = dir.join("exec/containerd/containerd.sock.ttrpc");
        if longest.as_os_str().len() > 100 {
            bail!(
                "node engine directory {} is too deep for unix socket paths",
                dir.display()
            );
        }
        for sub in ["etc/certs.d", "data", "exec"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        std::fs::create_dir_all(INDEX_DIR).with_context(|| format!("creating {INDEX_DIR}"))?;
        let index_link = Path::new(INDEX_DIR).join(&id);
        let _ = std::fs::remove_file(&index_link);
        std::os::unix::fs::symlink(&dir, &index_link)
            .with_context(|| format!("linking {}", index_link.display()))?;
        let mut engine = Self {
            netns: netns.to_string(),
            dir,
            index_link,
            options,
            child: None,
        };
        engine.spawn()?;
        engine.wait_up().await?;
        Ok(engine)
    }

    /// Kills the engine (and everything it started) and starts it again in the same directory,
    /// on the same socket, with `options`; returns once it answers. Clients of the socket (an
    /// agent) reconnect; a new tmpfs data root starts empty (the old data root stays underneath
    /// and comes back when an engine without one starts here).
    pub async fn restart_with(&mut self, options: EngineOptions) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
        kill_engine(&self.dir);
        // The killed engine's runtime state (sockets, pid file, shim and runc state) would only
        // confuse the new one.
        let exec = self.dir.join("exec");
        let _ = std::fs::remove_dir_all(&exec);
        let _ = std::fs::remove_file(self.dir.join("docker.pid"));
        std::fs::create_dir_all(&exec).with_context(|| format!("creating {}", exec.display()))?;
        self.options = options;
        self.spawn()?;
        self.wait_up().await
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let driver = host_storage_driver()?;
        let dir = &self.dir;
        let path = |p: &str| dir.join(p).display().to_string();
        // `sh -c SCRIPT sh ETC [SIZE DATA] DOCKERD_ARGS...`: paths travel as arguments, never
        // quoted.
        let mut script =
            String::from("mkdir -p /etc/docker && mount --bind \"$1\" /etc/docker && shift && ");
        let mut script_args = vec![path("etc")];
        if let Some(size) = self.options.data_root_size {
            script.push_str(
                "mount -t tmpfs -o \"size=$1,mode=0710\" caas-node-data \"$2\" && shift 2 && ",
            );
            script_args.extend([size.to_string(), path("data")]);
        }
        script.push_str("exec dockerd \"$@\"");
        let mut args: Vec<String> = vec![
            format!("--net=/run/netns/{}", self.netns),
            "--".into(),
            "unshare".into(),
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "--".into(),
            "sh".into(),
            "-c".into(),
            script,
            "sh".into(),
        ];
        args.extend(script_args);
        args.extend([
            format!("--data-root={}", path("data")),
            format!("--exec-root={}", path("exec")),
            format!("--host=unix://{}", path("docker.sock")),
            format!("--pidfile={}", path("docker.pid")),
            format!("--storage-driver={driver}"),
            "--bridge=none".into(),
            "--iptables=false".into(),
            "--ip6tables=false".into(),
            "--ip-masq=false".into(),
        ]);
        let child = ChildGuard::spawn(
            &format!("dockerd {}", self.netns),
            None,
            Path::new("nsenter"),
            &args,
            &[],
            &self.dir.join("dockerd.log"),
        )?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_up(&mut self) -> anyhow::Result<()> {
        let socket = self.socket();
        let child = &mut self.child;
        let result = crate::wait::until(
            &format!("the node engine in {} to answer", self.netns),
            START_TIMEOUT,
            || {
                let running = child.as_mut().is_some_and(ChildGuard::is_running);
                let probe = tokio::process::Command::new("docker")
                    .arg("-H")
                    .arg(format!("unix://{}", socket.display()))
                    .args(["version", "--format", "{{.Server.Version}}"])
                    .kill_on_drop(true)
                    .output();
                async move {
                    if !running {
                        bail!("dockerd exited");
                    }
                    let out = probe.await.context("running the docker CLI")?;
                    if out.status.success() {
                        Ok(Some(()))
                    } else {
                        bail!("{}", String::from_utf8_lossy(&out.stderr).trim())
                    }
                }
            },
        )
        .await;
        result.map_err(|e| anyhow::anyhow!("{e:#}\ndockerd log:\n{}", self.log_tail(30)))
    }

    /// The network namespace the engine runs in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// The engine's directory (data root `data`, exec root `exec`, `docker.sock`, `dockerd.log`,
    /// and `etc`, its `/etc/docker`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The engine's API socket (for `docker -H unix://...` or bollard).
    pub fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    /// `unix://<socket>`, for `docker -H` and `DOCKER_HOST`.
    pub fn host_url(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The host path of the engine's `/etc/docker/certs.d`: a registry `HOST:PORT` is trusted
    /// through `certs_dir()/HOST:PORT/ca.crt` (read at each pull, no restart needed).
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.join("etc/certs.d")
    }

    /// Writes `pem` as the CA the engine trusts for registry `host` (`HOST:PORT`).
    pub fn trust_registry(&self, host: &str, pem: &str) -> anyhow::Result<()> {
        let dir = self.certs_dir().join(host);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("ca.crt"), pem)?;
        Ok(())
    }

    /// A bollard client of this engine, with a negotiated API version.
    pub async fn client(&self) -> anyhow::Result<bollard::Docker> {
        let socket = self.socket();
        let socket = socket.to_str().context("socket path is not UTF-8")?;
        let docker = bollard::Docker::connect_with_unix(socket, 120, bollard::API_DEFAULT_VERSION)?;
        docker
            .negotiate_version()
            .await
            .with_context(|| format!("the node engine at {socket} does not answer"))
    }

    /// The dockerd process id (None once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(ChildGuard::pid)
    }

    /// The options the engine runs with.
    pub fn options(&self) -> &EngineOptions {
        &self.options
    }

    /// Where this process sees the engine's data root: `dir()/data`, or, for an engine with a
    /// data root of its own (a tmpfs in its mount namespace), the same path through
    /// `/proc/<dockerd>/root` (while the engine runs).
    pub fn data_root(&self) -> anyhow::Result<PathBuf> {
        let data = self.dir.join("data");
        if self.options.data_root_size.is_none() {
            return Ok(data);
        }
        let pid: u32 = std::fs::read_to_string(self.dir.join("docker.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .or_else(|| self.pid())
            .context("the node engine is not running")?;
        let relative = data.strip_prefix("/").unwrap_or(&data);
        Ok(Path::new(&format!("/proc/{pid}/root")).join(relative))
    }

    /// Size, used and available bytes of the file system holding the engine's data root.
    pub fn data_root_usage(&self) -> anyhow::Result<DiskUsage> {
        let root = self.data_root()?;
        let st = nix::sys::statvfs::statvfs(&root)
            .with_context(|| format!("statvfs {}", root.display()))?;
        // 64-bit Linux: every field is a u64.
        let unit = st.fragment_size();
        let blocks = st.blocks();
        Ok(DiskUsage {
            total: blocks * unit,
            used: blocks.saturating_sub(st.blocks_free()) * unit,
            available: st.blocks_available() * unit,
        })
    }

    /// The last `lines` lines of the dockerd log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Kills the engine and everything it started, removes its cgroups and its directory.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
        kill_engine(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.index_link);
    }
}

impl Drop for NodeEngine {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The host engine's storage driver (`docker info`), which the node engines use too.
fn host_storage_driver() -> anyhow::Result<String> {
    static DRIVER: OnceLock<String> = OnceLock::new();
    if let Some(d) = DRIVER.get() {
        return Ok(d.clone());
    }
    let out = std::process::Command::new("docker")
        .args(["info", "--format", "{{.Driver}}"])
        .output()
        .context("running `docker info`")?;
    let driver = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || driver.is_empty() {
        bail!(
            "docker info: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(DRIVER.get_or_init(|| driver).clone())
}

/// Processes whose command line names a path inside `dir`: dockerd, its containerd, the shims
/// (their `-address` is under the exec root) and fuse-overlayfs (its layers are under the data
/// root).
fn processes_naming(dir: &Path) -> Vec<i32> {
    let mut needle = dir.as_os_str().as_encoded_bytes().to_vec();
    needle.push(b'/');
    let needle = needle.as_slice();
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| cmd.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

/// The cgroup directories (every v1 controller, and the unified hierarchy) of the engine's
/// containers: `/sys/fs/cgroup/*/docker/<id>` for each id under the data root, and for each
/// container runc keeps state of under the exec root (the only place the host sees the running
/// containers of an engine whose data root is a tmpfs in its own mount namespace).
fn container_cgroups(dir: &Path) -> Vec<PathBuf> {
    let mut ids = std::collections::BTreeSet::new();
    for listing in ["data/containers", "exec/runtime-runc/moby"] {
        let Ok(entries) = std::fs::read_dir(dir.join(listing)) else {
            continue;
        };
        ids.extend(
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string)),
        );
    }
    if ids.is_empty() {
        return Vec::new();
    }
    let mut roots: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    roots.push(PathBuf::from("/sys/fs/cgroup"));
    let mut found = Vec::new();
    for root in roots {
        for id in &ids {
            let cg = root.join("docker").join(id);
            if cg.is_dir() {
                found.push(cg);
            }
        }
    }
    found
}

/// Whether `pid` is gone (or a zombie waiting for its parent to reap it).
fn is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
    }
}

/// SIGKILLs every process of the engine in `dir` (dockerd first, so it restarts nothing) and
/// of its containers, waits for them to die, then removes the containers' cgroups.
fn kill_engine(dir: &Path) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let dockerd: Option<i32> = std::fs::read_to_string(dir.join("docker.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok());
        let cgroups = container_cgroups(dir);
        let in_containers = cgroups.iter().flat_map(|cg| {
            std::fs::read_to_string(cg.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .collect::<Vec<_>>()
        });
        let mut pids = processes_naming(dir);
        // dockerd first (when it is still the process the pid file names): it would restart
        // the containerd it manages.
        pids.sort_by_key(|&pid| Some(pid) != dockerd);
        pids.extend(in_containers);
        pids.retain(|&pid| !is_gone(pid));
        if pids.is_empty() {
            let mut left = false;
            for cg in &cgroups {
                left |= std::fs::remove_dir(cg).is_err() && cg.exists();
            }
            if !left || Instant::now() >= deadline {
                return;
            }
        } else {
            if Instant::now() >= deadline {
                tracing::warn!(?pids, dir = %dir.display(), "node engine processes survive SIGKILL");
                return;
            }
            for pid in pids {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills and removes the node engines of test processes that no longer exist (found through
/// [`INDEX_DIR`]).
pub fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir(INDEX_DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let link = entry.path();
        if let Ok(dir) = std::fs::read_link(&link) {
            let named = dir
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(DIR_PREFIX));
            if named {
                kill_engine(&dir);
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        let _ = std::fs::remove_file(&link);
    }
}
