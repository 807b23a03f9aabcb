//! Ending an exec's processes on the host: the exec's process, everything it forked and, when it
//! leads a session (an exec with a TTY does), every process of that terminal session. The agent
//! runs as root in the host's pid namespace, where the engine reports an exec's pid; the engine
//! itself has no API to end an exec. /proc scans run on the blocking pool.

use std::collections::BTreeSet;
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// How often the processes are looked at again while they have their grace period.
const POLL: Duration = Duration::from_millis(100);

/// One process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: i32,
    ppid: i32,
    /// Session id (field 6): the pid of the session's leader.
    sid: i32,
    /// Start time (field 22, clock ticks after boot): tells a process from a later one that
    /// reuses its pid.
    start: u64,
}

/// Parses `/proc/<pid>/stat`. Zombies (already dead, waiting to be reaped) are `None`.
fn parse_stat(text: &str) -> Option<Proc> {
    let (head, rest) = text.rsplit_once(')')?;
    let pid = head.split_whitespace().next()?.parse().ok()?;
    // Fields after the command name, from field 3 (state) on.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if matches!(fields.first(), Some(&"Z") | Some(&"X") | Some(&"x")) {
        return None;
    }
    Some(Proc {
        pid,
        ppid: fields.get(1)?.parse().ok()?,
        sid: fields.get(3)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
    })
}

fn read_proc(pid: i32) -> Option<Proc> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|text| parse_stat(&text))
}

/// Every live process of the host (processes that end while they are read are left out).
fn scan() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_proc)
        .collect()
}

/// The processes to end for the exec whose process is `leader`: itself while `alive`, the
/// members of its session, processes already `known` (forked ones reparented when their parent
/// died), and every descendant of any of these.
fn targets(all: &[Proc], leader: i32, alive: bool, known: &BTreeSet<Proc>) -> BTreeSet<Proc> {
    if leader <= 1 {
        return BTreeSet::new();
    }
    let me = i32::try_from(std::process::id()).unwrap_or(0);
    let mut set: BTreeSet<Proc> = all
        .iter()
        .filter(|p| {
            (p.pid == leader && alive) || (p.sid == leader && p.pid != leader) || known.contains(p)
        })
        .copied()
        .collect();
    loop {
        let pids: BTreeSet<i32> = set.iter().map(|p| p.pid).collect();
        let more: Vec<Proc> = all
            .iter()
            .filter(|p| pids.contains(&p.ppid) && !set.contains(p))
            .copied()
            .collect();
        if more.is_empty() {
            break;
        }
        set.extend(more);
    }
    // Never the host's init or the agent itself, whatever the engine reported.
    set.retain(|p| p.pid > 1 && p.pid != me);
    set
}

/// Signals each process that is still the one found (same pid and start time).
fn signal(procs: &BTreeSet<Proc>, signal: Signal) {
    for p in procs {
        if read_proc(p.pid).is_some_and(|now| now.start == p.start) {
            // It may end meanwhile (ESRCH): that is what we want anyway.
            let _ = nix::sys::signal::kill(Pid::from_raw(p.pid), signal);
        }
    }
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    tokio::task::spawn_blocking(work).await.ok()
}

/// Ends the processes of an exec whose host pid is `leader` (`alive`: the engine says it still
/// runs; when it ended, its pid may already belong to someone else and only its session's
/// members are ended, which keep the pid from being reused while they live). SIGHUP first, as
/// a terminal that goes away does, then SIGKILL after `grace` for what is left (at once for a
/// zero grace). Returns how many processes were found.
pub async fn end_exec_processes(leader: i64, alive: bool, grace: Duration) -> usize {
    let Ok(leader) = i32::try_from(leader) else {
        return 0;
    };
    if leader <= 1 {
        return 0;
    }
    let first = if grace.is_zero() {
        Signal::SIGKILL
    } else {
        Signal::SIGHUP
    };
    let Some(found) = blocking(move || {
        let found = targets(&scan(), leader, alive, &BTreeSet::new());
        signal(&found, first);
        found
    })
    .await
    else {
        return 0;
    };
    if found.is_empty() {
        return 0;
    }
    let count = found.len();
    let deadline = tokio::time::Instant::now() + grace;
    let mut known = found;
    // Wait for them to go; what is still there at the deadline (or forked meanwhile) is killed,
    // until nothing is left (a few rounds at most: a killed process forks no more).
    for _ in 0..50 {
        let seen = known.clone();
        let Some(left) = blocking(move || targets(&scan(), leader, alive, &seen)).await else {
            return count;
        };
        if left.is_empty() {
            return count;
        }
        if tokio::time::Instant::now() >= deadline {
            let kill = left.clone();
            if blocking(move || signal(&kill, Signal::SIGKILL))
                .await
                .is_none()
            {
                return count;
            }
        }
        known = left;
        tokio::time::sleep(POLL).await;
    }
    tracing::warn!(
        pid = leader,
        "processes of an exec were still there after repeated SIGKILLs"
    );
    count
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::time::Instant;

    #[test]
    fn stat_lines_parse_with_odd_command_names() {
        let line = "4242 (my (odd) cmd) S 4200 4242 4242 34817 4242 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 100 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Proc {
                pid: 4242,
                ppid: 4200,
                sid: 4242,
                start: 987654
            })
        );
        assert_eq!(
            parse_stat("7 (z) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0"),
            None
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn targets_are_the_leader_its_session_and_descendants() {
        let p = |pid, ppid, sid| Proc {
            pid,
            ppid,
            sid,
            start: 1,
        };
        let all = [
            p(1, 0, 1),
            p(100, 50, 100), // the exec, a session leader
            p(101, 100, 100),
            p(102, 1, 100),   // reparented session member
            p(103, 101, 103), // setsid'd grandchild: a descendant
            p(200, 50, 200),  // someone else
        ];
        let pids = |set: BTreeSet<Proc>| set.into_iter().map(|p| p.pid).collect::<Vec<_>>();
        assert_eq!(
            pids(targets(&all, 100, true, &BTreeSet::new())),
            [100, 101, 102, 103]
        );
        // Ended: its pid is not touched, its session members are (and their descendants).
        assert_eq!(
            pids(targets(&all, 100, false, &BTreeSet::new())),
            [101, 102, 103]
        );
        assert!(targets(&all, 1, true, &BTreeSet::new()).is_empty());
    }

    /// Real processes: a session whose leader is gone quickly on SIGHUP, a member that ignores
    /// SIGHUP (killed after the grace period) and a grandchild.
    #[tokio::test]
    async fn a_session_is_ended_with_sighup_then_sigkill() {
        let mut child = std::process::Command::new("setsid")
            .args([
                "sh",
                "-c",
                "(trap '' HUP; exec sleep 1001) & sh -c 'sleep 1002' & sleep 1003",
            ])
            .spawn()
            .unwrap();
        let leader = i32::try_from(child.id()).unwrap();
        let members = || {
            scan()
                .into_iter()
                .filter(|p| p.sid == leader)
                .collect::<Vec<_>>()
        };
        let sleeps = || {
            members()
                .iter()
                .filter_map(|p| std::fs::read(format!("/proc/{}/cmdline", p.pid)).ok())
                .filter(|c| c.starts_with(b"sleep\0"))
                .count()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while sleeps() < 3 {
            assert!(Instant::now() < deadline, "{:?}", members());
            std::thread::sleep(Duration::from_millis(20));
        }
        let expected = members().len();
        let started = Instant::now();
        let found = end_exec_processes(i64::from(leader), true, Duration::from_millis(500)).await;
        assert_eq!(found, expected);
        let _ = child.wait();
        assert!(members().is_empty(), "{:?}", members());
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert_eq!(
            end_exec_processes(i64::from(leader), false, Duration::ZERO).await,
            0
        );
    }
}
