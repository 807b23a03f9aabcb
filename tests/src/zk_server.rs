//! Real ZooKeeper servers for tests (Debian's `zookeeper` package): a single server on a free
//! loopback port or inside a network namespace, a 3-member ensemble whose members can be killed
//! and restarted, 4-letter-word probes, and forced session expiry. Processes and data dirs are
//! removed when the owning value drops, also on panic.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail};
use tokio::time::{sleep, Instant};
use zookeeper_client::{Client, SessionInfo, SessionState};

use crate::process::ChildGuard;

/// How long a server may take to start serving (JVM start, leader election).
const START_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
/// slf4j-simple makes ZooKeeper log to stderr (our log file); without it nothing is logged.
const CLASSPATH: &str =
    "/etc/zookeeper/conf_example:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar";

/// Sends a 4-letter-word command (`ruok`, `srvr`, `mntr`...) and returns the reply.
pub async fn four_letter(addr: SocketAddr, cmd: &str) -> std::io::Result<String> {
    let cmd = cmd.to_string();
    tokio::task::spawn_blocking(move || four_letter_blocking(addr, &cmd))
        .await
        .map_err(std::io::Error::other)?
}

fn four_letter_blocking(addr: SocketAddr, cmd: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(cmd.as_bytes())?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

/// The `Mode:` of a `srvr` reply (standalone, leader, follower), absent while not serving.
pub fn server_mode(srvr: &str) -> Option<&str> {
    srvr.lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(str::trim)
}

/// How a server is tuned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ZkProfile {
    /// Starts fast and stays small (128 MiB heap, serial GC, C1 JIT only) and notices dead
    /// sessions fast (`tickTime=200`): what end-to-end tests want.
    #[default]
    Test,
    /// For benchmarks: a 512 MiB heap, the JVM's default GC and full JIT, `tickTime=2000`.
    /// Durability is ZooKeeper's default in both (`forceSync=yes`).
    Throughput,
}

impl ZkProfile {
    fn jvm_args(self) -> &'static [&'static str] {
        match self {
            Self::Test => &["-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"],
            Self::Throughput => &["-Xmx512m"],
        }
    }

    fn tick_ms(self) -> u32 {
        match self {
            Self::Test => 200,
            Self::Throughput => 2000,
        }
    }
}

/// One ZooKeeper process: its config, log and (while running) its guard.
#[derive(Debug)]
struct Member {
    name: String,
    cfg: PathBuf,
    log: PathBuf,
    client_addr: SocketAddr,
    netns: Option<String>,
    profile: ZkProfile,
    guard: Option<ChildGuard>,
}

impl Member {
    fn spawn(&mut self) -> anyhow::Result<()> {
        let args: Vec<String> = self
            .profile
            .jvm_args()
            .iter()
            .chain(&[
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-cp",
                CLASSPATH,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            ])
            .map(|s| s.to_string())
            .chain([self.cfg.display().to_string()])
            .collect();
        let guard = ChildGuard::spawn(
            &self.name,
            self.netns.as_deref(),
            Path::new("java"),
            &args,
            &[],
            &self.log,
        )?;
        self.guard = Some(guard);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut g) = self.guard.take() {
            g.kill();
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    async fn srvr(&self) -> Option<String> {
        match &self.netns {
            None => four_letter(self.client_addr, "srvr").await.ok(),
            Some(ns) => netns_four_letter(ns, self.client_addr, "srvr").await.ok(),
        }
    }

    async fn mode(&self) -> Option<String> {
        self.srvr()
            .await
            .and_then(|r| server_mode(&r).map(str::to_string))
    }

    /// Waits until the server serves in one of `modes`; fails early if the process died.
    async fn wait_mode(&mut self, modes: &[&str]) -> anyhow::Result<String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(mode) = self.mode().await {
                if modes.contains(&mode.as_str()) {
                    return Ok(mode);
                }
            }
            let running = self.guard.as_mut().is_some_and(ChildGuard::is_running);
            if !running || Instant::now() > deadline {
                let why = if running {
                    "did not start serving within 30s"
                } else {
                    "exited"
                };
                bail!(
                    "{} ({}) {why}; log tail:\n{}",
                    self.name,
                    self.client_addr,
                    self.log_tail(40)
                );
            }
            sleep(POLL).await;
        }
    }
}

/// 4lw probe from inside a network namespace, where our own sockets cannot reach.
async fn netns_four_letter(netns: &str, addr: SocketAddr, cmd: &str) -> anyhow::Result<String> {
    let script = format!(
        "exec 3<>/dev/tcp/{}/{}; printf {cmd} >&3; cat <&3",
        addr.ip(),
        addr.port()
    );
    let out = tokio::process::Command::new("timeout")
        .args(["3", "ip", "netns", "exec", netns, "bash", "-c", &script])
        .output()
        .await?;
    if !out.status.success() {
        bail!("probe in {netns}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn base_config(data_dir: &Path, client_addr: SocketAddr, profile: ZkProfile) -> String {
    format!(
        "tickTime={}\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={}\nclientPortAddress={}\n\
         minSessionTimeout=400\nmaxSessionTimeout=30000\nadmin.enableServer=false\n\
         4lw.commands.whitelist=*\nmaxClientCnxns=0\n",
        profile.tick_ms(),
        data_dir.display(),
        client_addr.port(),
        client_addr.ip()
    )
}

/// `n` distinct free loopback ports (held open together so they differ from each other).
fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()?)
}

/// A standalone ZooKeeper server.
#[derive(Debug)]
pub struct ZkServer {
    member: Member,
    dir: tempfile::TempDir,
}

impl ZkServer {
    /// A server on a free port of 127.0.0.1, serving when this returns.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(ZkProfile::Test).await
    }

    /// Like [`ZkServer::start`], tuned as `profile` says.
    pub async fn start_with(profile: ZkProfile) -> anyhow::Result<Self> {
        let mut last = None;
        // The free port may be taken by someone else before the JVM binds it: try again.
        for _ in 0..3 {
            let port = free_ports(1)?[0];
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
            match Self::launch(None, addr, profile).await {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("ZooKeeper did not start")))
    }

    /// A server bound to `bind_ip` inside network namespace `netns`.
    pub async fn start_in(netns: &str, bind_ip: IpAddr) -> anyhow::Result<Self> {
        // A fresh namespace has all ports free; a random one avoids clashing with other servers.
        let port = 20000 + rand::random_range(0..20000u16);
        let addr = SocketAddr::new(bind_ip, port);
        Self::launch(Some(netns.to_string()), addr, ZkProfile::Test).await
    }

    async fn launch(
        netns: Option<String>,
        client_addr: SocketAddr,
        profile: ZkProfile,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("caas-zk-").tempdir()?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(&cfg, base_config(&data, client_addr, profile))?;
        let mut member = Member {
            name: format!("zookeeper@{client_addr}"),
            cfg,
            log: dir.path().join("zookeeper.log"),
            client_addr,
            netns,
            profile,
            guard: None,
        };
        member.spawn()?;
        member.wait_mode(&["standalone"]).await?;
        Ok(Self { member, dir })
    }

    /// `ip:port`, for clients.
    pub fn connect_string(&self) -> String {
        self.member.client_addr.to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.member.client_addr
    }

    /// SIGKILLs the server (its data stays, see [`ZkServer::restart`]).
    pub fn kill(&mut self) {
        self.member.kill();
    }

    /// Starts the server again on the same port and data, serving when this returns.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.member.kill();
        self.member.spawn()?;
        self.member.wait_mode(&["standalone"]).await.map(|_| ())
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.member.log_tail(lines)
    }

    /// The server's process id while it runs (to read its CPU time from `/proc`).
    pub fn pid(&self) -> Option<u32> {
        self.member.guard.as_ref().and_then(ChildGuard::pid)
    }

    /// The server's `dataDir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

/// A ZooKeeper ensemble on 127.0.0.1, one process per member.
#[derive(Debug)]
pub struct ZkEnsemble {
    members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl ZkEnsemble {
    /// Starts `n` members and waits for a quorum with one leader.
    pub async fn start(n: usize) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("caas-zk-ensemble-")
            .tempdir()?;
        let ports = free_ports(3 * n)?;
        let servers: String = (0..n)
            .map(|i| {
                format!(
                    "server.{}=127.0.0.1:{}:{}\n",
                    i + 1,
                    ports[3 * i + 1],
                    ports[3 * i + 2]
                )
            })
            .collect();
        let mut members = Vec::with_capacity(n);
        for i in 0..n {
            let data = dir.path().join(format!("m{}", i + 1));
            std::fs::create_dir_all(&data)?;
            std::fs::write(data.join("myid"), format!("{}\n", i + 1))?;
            let client_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), ports[3 * i]);
            let cfg = dir.path().join(format!("zoo{}.cfg", i + 1));
            std::fs::write(
                &cfg,
                format!(
                    "{}{servers}",
                    base_config(&data, client_addr, ZkProfile::Test)
                ),
            )?;
            members.push(Member {
                name: format!("zookeeper-{}@{client_addr}", i + 1),
                cfg,
                log: dir.path().join(format!("zookeeper{}.log", i + 1)),
                client_addr,
                netns: None,
                profile: ZkProfile::Test,
                guard: None,
            });
        }
        for m in &mut members {
            m.spawn()?;
        }
        let mut ensemble = Self { members, _dir: dir };
        ensemble.wait_quorum().await?;
        Ok(ensemble)
    }

    /// All members, `ip:port,ip:port,...`.
    pub fn connect_string(&self) -> String {
        self.members
            .iter()
            .map(|m| m.client_addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// One member only, e.g. to pin a client to it.
    pub fn member_connect_string(&self, i: usize) -> String {
        self.members[i].client_addr.to_string()
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Waits until every running member serves as leader or follower, with one leader.
    pub async fn wait_quorum(&mut self) -> anyhow::Result<()> {
        for m in self.members.iter_mut().filter(|m| m.guard.is_some()) {
            m.wait_mode(&["leader", "follower"]).await?;
        }
        let deadline = Instant::now() + START_TIMEOUT;
        while self.leader_index().await.is_none() {
            if Instant::now() > deadline {
                bail!(
                    "no leader elected; member logs:\n{}",
                    self.all_log_tails(15)
                );
            }
            sleep(POLL).await;
        }
        Ok(())
    }

    /// The member currently leading, if any.
    pub async fn leader_index(&self) -> Option<usize> {
        for (i, m) in self.members.iter().enumerate() {
            if m.guard.is_some() && m.mode().await.as_deref() == Some("leader") {
                return Some(i);
            }
        }
        None
    }

    /// The running member that holds a connection for `session_id` (from `cons`).
    pub async fn member_with_session(&self, session_id: i64) -> Option<usize> {
        let needle = format!("sid={session_id:#x}");
        for (i, m) in self.members.iter().enumerate() {
            if m.guard.is_none() {
                continue;
            }
            if let Ok(cons) = four_letter(m.client_addr, "cons").await {
                if cons.contains(&needle) {
                    return Some(i);
                }
            }
        }
        None
    }

    /// The `srvr` mode of member `i` (None when down or not serving).
    pub async fn mode(&self, i: usize) -> Option<String> {
        self.members[i].mode().await
    }

    /// SIGKILLs member `i`.
    pub fn kill(&mut self, i: usize) {
        self.members[i].kill();
    }

    /// Starts member `i` again with its data and ports; returns once it serves.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.members[i].kill();
        self.members[i].spawn()?;
        self.members[i]
            .wait_mode(&["leader", "follower"])
            .await
            .map(|_| ())
    }

    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        self.members[i].log_tail(lines)
    }

    fn all_log_tails(&self, lines: usize) -> String {
        self.members
            .iter()
            .map(|m| format!("== {}\n{}", m.name, m.log_tail(lines)))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Makes the servers expire `client`'s session and waits until `client` observes `Expired`.
///
/// The standard trick: a second client attaches to the same session (id + password) and closes
/// it; the first client's next reconnect is then refused as expired. Attaching makes the servers
/// drop the first client's connection, whose immediate reconnect may take the session back
/// before the close is sent, so attempts are repeated until the close is acknowledged.
pub async fn force_session_expiry(servers: &str, client: &Client) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last_error = None;
    while client.state() != SessionState::Expired {
        if Instant::now() > deadline {
            bail!(
                "session {} still {} after repeated close attempts (last: {last_error:?})",
                client.session_id(),
                client.state()
            );
        }
        match expire_session(servers, client.session().clone(), client.session_timeout()).await {
            Ok(()) => {
                // Closed on the servers: the client finds out on its next (re)connect.
                let noticed =
                    Instant::now() + client.session_timeout() * 2 + Duration::from_secs(5);
                while client.state() != SessionState::Expired && Instant::now() < noticed {
                    sleep(Duration::from_millis(20)).await;
                }
            }
            Err(e) => {
                last_error = Some(e);
                // Jitter, so the attempts do not keep meeting the owner's reconnect in step.
                sleep(Duration::from_millis(rand::random_range(0..30))).await;
            }
        }
    }
    Ok(())
}

/// Closes `session` on the servers through a second connection, without waiting for its
/// original client to notice. Fails when the original client took the session back first
/// (the second client then ends as `Expired`/moved without having closed it); callers retry.
pub async fn expire_session(
    servers: &str,
    session: SessionInfo,
    timeout: Duration,
) -> anyhow::Result<()> {
    let id = session.id();
    let other = Client::connector()
        .with_session(session)
        .with_session_timeout(timeout)
        // One pass over the servers per attempt: our caller retries at once, while the client's
        // own retries would back off further each time it loses the race.
        .with_fail_eagerly()
        .connect(servers)
        .await
        .map_err(|e| anyhow!("attaching to session {id}: {e}"))?;
    let mut states = other.state_watcher();
    drop(other);
    let mut state = states.state();
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while !state.is_terminated() {
            state = states.changed().await;
        }
    })
    .await;
    ended.map_err(|_| anyhow!("closing session {id} through a second client timed out"))?;
    // Only `Closed` means the server acknowledged closeSession.
    if state != SessionState::Closed {
        bail!("session {id} moved back to its owner before the close ({state})");
    }
    Ok(())
}
