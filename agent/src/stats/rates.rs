//! Per-second rates between two samples of one container. A counter that went backwards means
//! a new incarnation (the container was recreated under the same id, or its cgroup reset):
//! then there is no rate until the next sample.

use std::time::Instant;

use caas_api::stats::{ContainerRates, ContainerStats};

/// What is kept of a container's last sample.
#[derive(Debug, Clone)]
pub struct Previous {
    at: Instant,
    cpu: f64,
    periods: u64,
    throttled: u64,
    rx: u64,
    tx: u64,
    read: u64,
    write: u64,
}

fn sums(s: &ContainerStats) -> (u64, u64, u64, u64) {
    let (rx, tx) = s
        .network
        .iter()
        .fold((0, 0), |(r, t), i| (r + i.rx_bytes, t + i.tx_bytes));
    let (read, write) = s
        .blkio
        .iter()
        .fold((0, 0), |(r, w), d| (r + d.read_bytes, w + d.write_bytes));
    (rx, tx, read, write)
}

impl Previous {
    pub fn of(s: &ContainerStats, at: Instant) -> Self {
        let (rx, tx, read, write) = sums(s);
        Self {
            at,
            cpu: s.cpu.usage_seconds,
            periods: s.cpu.periods,
            throttled: s.cpu.throttled_periods,
            rx,
            tx,
            read,
            write,
        }
    }
}

/// Rates from `prev` to `now_sample`, or `None` when no time passed or a counter went back.
pub fn between(
    prev: &Previous,
    now_sample: &ContainerStats,
    now: Instant,
) -> Option<ContainerRates> {
    let dt = now.checked_duration_since(prev.at)?.as_secs_f64();
    if dt <= 0.0 {
        return None;
    }
    let cur = Previous::of(now_sample, now);
    if cur.cpu < prev.cpu
        || cur.periods < prev.periods
        || cur.throttled < prev.throttled
        || cur.rx < prev.rx
        || cur.tx < prev.tx
        || cur.read < prev.read
        || cur.write < prev.write
    {
        return None;
    }
    let per_s = |a: u64, b: u64| (a - b) as f64 / dt;
    let periods = cur.periods - prev.periods;
    Some(ContainerRates {
        cpu_cores: (cur.cpu - prev.cpu) / dt,
        cpu_throttled_ratio: if periods == 0 {
            0.0
        } else {
            (cur.throttled - prev.throttled) as f64 / periods as f64
        },
        network_rx_bytes_per_second: per_s(cur.rx, prev.rx),
        network_tx_bytes_per_second: per_s(cur.tx, prev.tx),
        blkio_read_bytes_per_second: per_s(cur.read, prev.read),
        blkio_write_bytes_per_second: per_s(cur.write, prev.write),
    })
}
