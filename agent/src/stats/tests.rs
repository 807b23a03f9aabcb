//! The collector on recorded cgroup trees of both layouts (`fixtures/v1`: a hybrid host as on
//! the development machines, recorded from a real container; `fixtures/v2`: the unified
//! layout with the systemd driver), plus the awkward cases: files that vanish or hold garbage
//! mid-sweep, counters going backwards, a sandbox without a network namespace.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use super::*;

const ID: &str = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/stats/fixtures")
}

/// A copy of a fixture tree that a test may change.
fn copy(from: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", from.display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    dir
}

fn target(role: &'static str) -> Target {
    Target {
        key: WorkloadKey::new("p1", "web"),
        role,
        id: ID.into(),
    }
}

fn only(snapshot: &Snapshot) -> &ContainerStats {
    let w = &snapshot.workloads[&WorkloadKey::new("p1", "web")];
    assert_eq!(w.containers.len(), 1);
    &w.containers[0]
}

#[test]
fn detects_hybrid_v1_and_v2_from_the_mount_table() {
    let hybrid = "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n\
        cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0\n\
        cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n\
        cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
    let layout = CgroupLayout::from_mounts(hybrid, |_| String::new()).unwrap();
    assert_eq!(layout.version(), 1);
    let CgroupLayout::V1 {
        cpu, memory, pids, ..
    } = &layout
    else {
        unreachable!()
    };
    assert_eq!(cpu.as_deref(), Some(Path::new("/sys/fs/cgroup/cpu")));
    assert_eq!(memory.as_deref(), Some(Path::new("/sys/fs/cgroup/memory")));
    assert_eq!(pids, &None);
    // Co-mounted controllers, as most distributions mount them.
    let comounted = "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n\
        cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n";
    let CgroupLayout::V1 { cpu, cpuacct, .. } =
        CgroupLayout::from_mounts(comounted, |_| String::new()).unwrap()
    else {
        unreachable!()
    };
    assert_eq!(cpu, cpuacct);
    let unified = "cgroup2 /sys/fs/cgroup cgroup2 rw,nsdelegate 0 0\n";
    let layout = CgroupLayout::from_mounts(unified, |_| "cpu io memory pids\n".into()).unwrap();
    assert_eq!(
        layout,
        CgroupLayout::V2 {
            root: "/sys/fs/cgroup".into()
        }
    );
    assert_eq!(
        CgroupLayout::from_mounts("proc /proc proc rw 0 0\n", |_| String::new()),
        None
    );
}

#[test]
fn reads_a_recorded_v1_container() {
    let layout = CgroupLayout::v1_under(&fixtures().join("v1"));
    assert_eq!(
        layout.find(ID).as_deref(),
        Some(format!("docker/{ID}").as_str())
    );
    let mut sweeper = Sweeper::new(Some(layout), fixtures().join("proc"), "n1");
    let snapshot = sweeper.sweep(&[target("sandbox")]);
    let s = only(&snapshot);
    assert!((s.cpu.usage_seconds - 3.608_930_26).abs() < 1e-9);
    assert!((s.cpu.user_seconds - 3.58).abs() < 1e-9);
    assert!((s.cpu.system_seconds - 0.02).abs() < 1e-9);
    assert_eq!((s.cpu.periods, s.cpu.throttled_periods), (74, 71));
    assert!((s.cpu.throttled_seconds - 2.441_503_256).abs() < 1e-9);
    assert_eq!(s.cpu.limit_cores, Some(0.5));
    assert_eq!(s.memory.usage_bytes, 2_097_152);
    assert_eq!(s.memory.working_set_bytes, 2_097_152 - 1_605_632);
    assert_eq!(
        (s.memory.rss_bytes, s.memory.cache_bytes),
        (61_440, 1_605_632)
    );
    assert_eq!(s.memory.limit_bytes, Some(64 << 20));
    assert_eq!((s.memory.failcnt, s.memory.oom_kills), (5, 2));
    assert_eq!((s.pids.current, s.pids.limit), (1, None));
    assert_eq!(s.blkio.len(), 1);
    let d = &s.blkio[0];
    assert_eq!(
        (d.read_bytes, d.write_bytes, d.reads, d.writes),
        (1 << 20, 2 << 20, 16, 32)
    );
    // The sandbox's namespace: pid 4242 from cgroup.procs, its net/dev.
    assert_eq!(s.network.len(), 1);
    assert_eq!(
        (s.network[0].interface.as_str(), s.network[0].rx_bytes),
        ("lo", 2048)
    );
    assert!(s.rates.is_none(), "no rate from a single sample");
}

#[test]
fn reads_a_v2_container_under_the_systemd_driver() {
    let layout = CgroupLayout::V2 {
        root: fixtures().join("v2"),
    };
    assert_eq!(
        layout.find(ID).as_deref(),
        Some(format!("system.slice/docker-{ID}.scope").as_str())
    );
    let mut sweeper = Sweeper::new(Some(layout), fixtures().join("proc"), "n1");
    let snapshot = sweeper.sweep(&[target("sandbox")]);
    let s = only(&snapshot);
    assert!((s.cpu.usage_seconds - 7.5).abs() < 1e-9);
    assert!((s.cpu.user_seconds - 5.0).abs() < 1e-9);
    assert!((s.cpu.throttled_seconds - 3.0).abs() < 1e-9);
    assert_eq!((s.cpu.periods, s.cpu.throttled_periods), (400, 120));
    assert_eq!(s.cpu.limit_cores, Some(0.5));
    assert_eq!(s.memory.usage_bytes, 100 << 20);
    assert_eq!(s.memory.working_set_bytes, (100 << 20) - (16 << 20));
    assert_eq!(
        (s.memory.rss_bytes, s.memory.cache_bytes),
        (80 << 20, 20 << 20)
    );
    assert_eq!(s.memory.limit_bytes, Some(256 << 20));
    assert_eq!((s.memory.failcnt, s.memory.oom_kills), (7, 1));
    assert_eq!((s.pids.current, s.pids.limit), (3, Some(100)));
    let d = &s.blkio[0];
    assert_eq!(
        (d.read_bytes, d.write_bytes, d.reads, d.writes),
        (4096, 1 << 20, 1, 256)
    );
    let eth0 = s.network.iter().find(|i| i.interface == "eth0").unwrap();
    assert_eq!(
        (
            eth0.rx_bytes,
            eth0.rx_errors,
            eth0.rx_dropped,
            eth0.tx_bytes,
            eth0.tx_dropped
        ),
        (500_000, 1, 2, 250_000, 3)
    );
    // Only the sandbox carries the namespace's counters.
    let app = sweeper.sweep(&[target("app")]);
    assert!(only(&app).network.is_empty());
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

#[test]
fn rates_follow_counters_and_a_counter_going_back_resets_them() {
    let tree = copy(&fixtures().join("v2"));
    let dir = tree.path().join(format!("system.slice/docker-{ID}.scope"));
    let mut sweeper = Sweeper::new(
        Some(CgroupLayout::V2 {
            root: tree.path().into(),
        }),
        fixtures().join("proc"),
        "n1",
    );
    sweeper.sweep(&[target("app")]);
    std::thread::sleep(Duration::from_millis(200));
    write(
        &dir,
        "cpu.stat",
        "usage_usec 7600000\nnr_periods 410\nnr_throttled 125\n",
    );
    let second = sweeper.sweep(&[target("app")]);
    let rates = only(&second).rates.clone().unwrap();
    // 0.1 s of CPU in a bit over 0.2 s.
    assert!(rates.cpu_cores > 0.1 && rates.cpu_cores <= 0.5, "{rates:?}");
    assert!((rates.cpu_throttled_ratio - 0.5).abs() < 1e-9);
    // Recreated: usage starts again from zero. No rate, and no negative one.
    write(
        &dir,
        "cpu.stat",
        "usage_usec 1000\nnr_periods 1\nnr_throttled 0\n",
    );
    let third = sweeper.sweep(&[target("app")]);
    assert!(only(&third).rates.is_none());
    write(
        &dir,
        "cpu.stat",
        "usage_usec 2000\nnr_periods 2\nnr_throttled 0\n",
    );
    assert!(only(&sweeper.sweep(&[target("app")])).rates.is_some());
}

#[test]
fn vanished_and_malformed_cgroups_drop_the_container_quietly() {
    let tree = copy(&fixtures().join("v1"));
    let mut sweeper = Sweeper::new(
        Some(CgroupLayout::v1_under(tree.path())),
        tree.path().join("no-proc"),
        "n1",
    );
    // No pid namespace to read: the sandbox simply has no interfaces.
    let first = sweeper.sweep(&[target("sandbox")]);
    assert!(only(&first).network.is_empty());
    // Garbage in a required file: left out of this sweep, back when the file is sane again.
    let usage = tree
        .path()
        .join(format!("cpuacct/docker/{ID}/cpuacct.usage"));
    std::fs::write(&usage, "garbage\n").unwrap();
    assert!(sweeper.sweep(&[target("sandbox")]).workloads.is_empty());
    std::fs::write(&usage, "4000000000\n").unwrap();
    assert_eq!(sweeper.sweep(&[target("sandbox")]).workloads.len(), 1);
    // A file vanishing mid-read (the container is being removed), then the whole cgroup.
    std::fs::remove_file(
        tree.path()
            .join(format!("memory/docker/{ID}/memory.usage_in_bytes")),
    )
    .unwrap();
    assert!(sweeper.sweep(&[target("sandbox")]).workloads.is_empty());
    for c in ["cpu", "cpuacct", "memory", "blkio", "pids"] {
        std::fs::remove_dir_all(tree.path().join(format!("{c}/docker/{ID}"))).unwrap();
    }
    assert!(sweeper.sweep(&[target("sandbox")]).workloads.is_empty());
    // A container the view no longer lists is forgotten entirely.
    sweeper.sweep(&[]);
    assert!(sweeper.paths.is_empty() && sweeper.previous.is_empty());
}

#[test]
fn no_cgroups_at_all_means_no_container_series() {
    let mut sweeper = Sweeper::new(None, PathBuf::from("/proc"), "n1");
    assert!(sweeper.sweep(&[target("app")]).workloads.is_empty());
}
