//! The node's cgroup layout (v1 or hybrid: one hierarchy per controller; v2: one unified tree),
//! detected once from the mount table, and the reading of one container's cgroup files into
//! raw figures. Docker's cgroupfs driver puts a container at `docker/<id>`, the systemd driver
//! at `system.slice/docker-<id>.scope`; both are tried.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use caas_api::stats::{CpuStats, MemoryStats, PidsStats};

use super::parse::{self, DeviceIo, Malformed};

/// USER_HZ: cgroup v1 `cpuacct.stat` counts in these ticks (100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

/// Why one container's figures could not be read this sweep.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The cgroup (or a file of it) is gone: the container stopped or was removed mid-sweep.
    #[error("{0} is gone")]
    Gone(PathBuf),
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is malformed: {reason}")]
    Malformed { path: PathBuf, reason: Malformed },
}

/// Where the controllers this collector reads are mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupLayout {
    /// cgroup v1 (also hybrid hosts, whose v2 tree holds no controllers).
    V1 {
        cpu: Option<PathBuf>,
        cpuacct: Option<PathBuf>,
        memory: Option<PathBuf>,
        blkio: Option<PathBuf>,
        pids: Option<PathBuf>,
    },
    /// The unified hierarchy.
    V2 { root: PathBuf },
}

impl CgroupLayout {
    /// Reads this host's mount table; `None` when no cgroup filesystem is mounted.
    pub fn detect() -> Option<Self> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        Self::from_mounts(&mounts, |dir| {
            std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default()
        })
    }

    /// The layout a mount table describes. v1 wins when it has the memory or cpuacct
    /// controller (a hybrid host's v2 tree is empty); otherwise a v2 mount whose
    /// `cgroup.controllers` (read through `controllers`) is not empty.
    pub fn from_mounts(mounts: &str, controllers: impl Fn(&Path) -> String) -> Option<Self> {
        let mut v1: BTreeMap<&str, PathBuf> = BTreeMap::new();
        let mut v2 = None;
        for line in mounts.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [_, dir, fstype, options, ..] = f.as_slice() else {
                continue;
            };
            match *fstype {
                "cgroup" => {
                    for option in options.split(',') {
                        if matches!(option, "cpu" | "cpuacct" | "memory" | "blkio" | "pids") {
                            v1.entry(option).or_insert_with(|| PathBuf::from(dir));
                        }
                    }
                }
                "cgroup2" if !controllers(Path::new(dir)).trim().is_empty() => {
                    v2.get_or_insert_with(|| PathBuf::from(dir));
                }
                _ => {}
            }
        }
        if v1.contains_key("memory") || v1.contains_key("cpuacct") {
            let mut take = |c: &str| v1.remove(c);
            return Some(Self::V1 {
                cpu: take("cpu"),
                cpuacct: take("cpuacct"),
                memory: take("memory"),
                blkio: take("blkio"),
                pids: take("pids"),
            });
        }
        v2.map(|root| Self::V2 { root })
    }

    /// A v1 layout with every controller at `root/<controller>` (fixtures, tests).
    pub fn v1_under(root: &Path) -> Self {
        Self::V1 {
            cpu: Some(root.join("cpu")),
            cpuacct: Some(root.join("cpuacct")),
            memory: Some(root.join("memory")),
            blkio: Some(root.join("blkio")),
            pids: Some(root.join("pids")),
        }
    }

    pub fn version(&self) -> u8 {
        match self {
            Self::V1 { .. } => 1,
            Self::V2 { .. } => 2,
        }
    }

    /// The hierarchy that decides whether a container's cgroup exists.
    fn anchor(&self) -> Option<&Path> {
        match self {
            Self::V1 {
                memory, cpuacct, ..
            } => memory.as_deref().or(cpuacct.as_deref()),
            Self::V2 { root } => Some(root),
        }
    }

    /// The container's cgroup path relative to each hierarchy, or `None` when it has none
    /// (not running, or removed).
    pub fn find(&self, id: &str) -> Option<String> {
        let anchor = self.anchor()?;
        [
            format!("docker/{id}"),
            format!("system.slice/docker-{id}.scope"),
        ]
        .into_iter()
        .find(|rel| anchor.join(rel).is_dir())
    }

    /// Reads one container's raw figures; `rel` comes from [`CgroupLayout::find`].
    pub fn read(&self, rel: &str) -> Result<RawCgroup, CgroupError> {
        match self {
            Self::V1 {
                cpu,
                cpuacct,
                memory,
                blkio,
                pids,
            } => read_v1(
                rel,
                cpu.as_deref(),
                cpuacct.as_deref(),
                memory.as_deref(),
                blkio.as_deref(),
                pids.as_deref(),
            ),
            Self::V2 { root } => read_v2(&root.join(rel)),
        }
    }
}

/// One container's figures as its cgroup files hold them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawCgroup {
    pub cpu: CpuStats,
    pub memory: MemoryStats,
    pub pids: PidsStats,
    /// Bytes and operations per `major:minor`.
    pub blkio: BTreeMap<String, (DeviceIo, DeviceIo)>,
    /// The first process of the cgroup (its network namespace is the container's).
    pub first_pid: Option<u32>,
}

fn read(path: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(path).map_err(|source| match source.kind() {
        ErrorKind::NotFound => CgroupError::Gone(path.to_path_buf()),
        // A cgroup removed under an open file reads as ENODEV.
        _ if source.raw_os_error() == Some(19) => CgroupError::Gone(path.to_path_buf()),
        _ => CgroupError::Io {
            path: path.to_path_buf(),
            source,
        },
    })
}

/// An optional file: missing is `None` (older kernels, controller not enabled).
fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match read(path) {
        Ok(text) => Ok(Some(text)),
        Err(CgroupError::Gone(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn malformed(path: &Path) -> impl FnOnce(Malformed) -> CgroupError + '_ {
    move |reason| CgroupError::Malformed {
        path: path.to_path_buf(),
        reason,
    }
}

fn number_at(path: &Path) -> Result<u64, CgroupError> {
    parse::number(&read(path)?).map_err(malformed(path))
}

fn limit_at(path: &Path) -> Result<Option<u64>, CgroupError> {
    match read_opt(path)? {
        Some(text) => parse::limit(&text).map_err(malformed(path)),
        None => Ok(None),
    }
}

fn first_pid(path: &Path) -> Option<u32> {
    read(path).ok()?.lines().find_map(|l| l.trim().parse().ok())
}

fn read_v1(
    rel: &str,
    cpu: Option<&Path>,
    cpuacct: Option<&Path>,
    memory: Option<&Path>,
    blkio: Option<&Path>,
    pids: Option<&Path>,
) -> Result<RawCgroup, CgroupError> {
    let mut out = RawCgroup::default();
    if let Some(dir) = cpuacct.map(|d| d.join(rel)) {
        out.cpu.usage_seconds = number_at(&dir.join("cpuacct.usage"))? as f64 / 1e9;
        if let Some(text) = read_opt(&dir.join("cpuacct.stat"))? {
            let stat = parse::flat_keyed(&text);
            out.cpu.user_seconds = stat.get("user").copied().unwrap_or(0) as f64 / USER_HZ;
            out.cpu.system_seconds = stat.get("system").copied().unwrap_or(0) as f64 / USER_HZ;
        }
    }
    if let Some(dir) = cpu.map(|d| d.join(rel)) {
        if let Some(text) = read_opt(&dir.join("cpu.stat"))? {
            let stat = parse::flat_keyed(&text);
            out.cpu.periods = stat.get("nr_periods").copied().unwrap_or(0);
            out.cpu.throttled_periods = stat.get("nr_throttled").copied().unwrap_or(0);
            out.cpu.throttled_seconds =
                stat.get("throttled_time").copied().unwrap_or(0) as f64 / 1e9;
        }
        let quota = limit_at(&dir.join("cpu.cfs_quota_us"))?;
        let period = limit_at(&dir.join("cpu.cfs_period_us"))?;
        if let (Some(q), Some(p)) = (quota, period.filter(|p| *p > 0)) {
            out.cpu.limit_cores = Some(q as f64 / p as f64);
        }
    }
    if let Some(dir) = memory.map(|d| d.join(rel)) {
        out.memory.usage_bytes = number_at(&dir.join("memory.usage_in_bytes"))?;
        out.memory.limit_bytes = limit_at(&dir.join("memory.limit_in_bytes"))?;
        out.memory.failcnt = match read_opt(&dir.join("memory.failcnt"))? {
            Some(t) => parse::number(&t).map_err(malformed(&dir.join("memory.failcnt")))?,
            None => 0,
        };
        if let Some(text) = read_opt(&dir.join("memory.stat"))? {
            let stat = parse::flat_keyed(&text);
            let get = |k: &str| stat.get(k).copied().unwrap_or(0);
            out.memory.rss_bytes = get("total_rss");
            out.memory.cache_bytes = get("total_cache");
            out.memory.working_set_bytes = out
                .memory
                .usage_bytes
                .saturating_sub(get("total_inactive_file"));
        }
        if let Some(text) = read_opt(&dir.join("memory.oom_control"))? {
            out.memory.oom_kills = parse::flat_keyed(&text)
                .get("oom_kill")
                .copied()
                .unwrap_or(0);
        }
        out.first_pid = first_pid(&dir.join("cgroup.procs"));
    }
    if let Some(dir) = blkio.map(|d| d.join(rel)) {
        let bytes = read_opt(&dir.join("blkio.throttle.io_service_bytes"))?
            .map(|t| parse::blkio_v1(&t))
            .unwrap_or_default();
        let ops = read_opt(&dir.join("blkio.throttle.io_serviced"))?
            .map(|t| parse::blkio_v1(&t))
            .unwrap_or_default();
        for (device, b) in bytes {
            let o = ops.get(&device).copied().unwrap_or_default();
            out.blkio.insert(device, (b, o));
        }
    }
    if let Some(dir) = pids.map(|d| d.join(rel)) {
        out.pids.current = number_at(&dir.join("pids.current"))?;
        out.pids.limit = limit_at(&dir.join("pids.max"))?;
        if out.first_pid.is_none() {
            out.first_pid = first_pid(&dir.join("cgroup.procs"));
        }
    }
    Ok(out)
}

fn read_v2(dir: &Path) -> Result<RawCgroup, CgroupError> {
    let mut out = RawCgroup::default();
    let stat_path = dir.join("cpu.stat");
    let stat_text = read(&stat_path)?;
    let stat = parse::flat_keyed(&stat_text);
    let usec = |k: &str| stat.get(k).copied().unwrap_or(0) as f64 / 1e6;
    out.cpu.usage_seconds = usec("usage_usec");
    out.cpu.user_seconds = usec("user_usec");
    out.cpu.system_seconds = usec("system_usec");
    out.cpu.throttled_seconds = usec("throttled_usec");
    out.cpu.periods = stat.get("nr_periods").copied().unwrap_or(0);
    out.cpu.throttled_periods = stat.get("nr_throttled").copied().unwrap_or(0);
    if let Some(text) = read_opt(&dir.join("cpu.max"))? {
        let mut parts = text.split_whitespace();
        if let (Some(q), Some(p)) = (parts.next(), parts.next()) {
            if let (Ok(q), Ok(p)) = (q.parse::<u64>(), p.parse::<u64>()) {
                if p > 0 {
                    out.cpu.limit_cores = Some(q as f64 / p as f64);
                }
            }
        }
    }
    if let Some(text) = read_opt(&dir.join("memory.current"))? {
        out.memory.usage_bytes =
            parse::number(&text).map_err(malformed(&dir.join("memory.current")))?;
        out.memory.limit_bytes = limit_at(&dir.join("memory.max"))?;
        if let Some(text) = read_opt(&dir.join("memory.stat"))? {
            let stat = parse::flat_keyed(&text);
            let get = |k: &str| stat.get(k).copied().unwrap_or(0);
            out.memory.rss_bytes = get("anon");
            out.memory.cache_bytes = get("file");
            out.memory.working_set_bytes =
                out.memory.usage_bytes.saturating_sub(get("inactive_file"));
        }
        if let Some(text) = read_opt(&dir.join("memory.events"))? {
            let events = parse::flat_keyed(&text);
            out.memory.failcnt = events.get("max").copied().unwrap_or(0);
            out.memory.oom_kills = events.get("oom_kill").copied().unwrap_or(0);
        }
    }
    if let Some(text) = read_opt(&dir.join("io.stat"))? {
        out.blkio = parse::io_v2(&text);
    }
    if let Some(text) = read_opt(&dir.join("pids.current"))? {
        out.pids.current = parse::number(&text).map_err(malformed(&dir.join("pids.current")))?;
        out.pids.limit = limit_at(&dir.join("pids.max"))?;
    }
    out.first_pid = first_pid(&dir.join("cgroup.procs"));
    Ok(out)
}
