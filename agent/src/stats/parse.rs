//! Parsers of the kernel's text files the collector reads: single numbers (`max` = none),
//! flat `key value` files (`memory.stat`, `cpu.stat`), cgroup v1 `blkio.throttle.*` and v2
//! `io.stat` lines, `/proc/<pid>/net/dev` and `/proc/partitions`. Pure functions on text.

use std::collections::BTreeMap;

use caas_api::stats::InterfaceStats;

/// Why a file's text could not be read as what it should hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

/// A number alone in a file (`memory.usage_in_bytes`, `pids.current`).
pub fn number(text: &str) -> Result<u64, Malformed> {
    let t = text.trim();
    t.parse()
        .map_err(|_| Malformed(format!("{t:?} is not a number")))
}

/// A limit: a number, or `max` (v2, `pids.max`) for none; negative (v1 `cfs_quota_us = -1`)
/// and the page-rounded `i64::MAX` of an unlimited v1 memory cgroup are none as well.
pub fn limit(text: &str) -> Result<Option<u64>, Malformed> {
    let t = text.trim();
    if t == "max" || t.starts_with('-') {
        return Ok(None);
    }
    let n = number(t)?;
    Ok((n < (1 << 62)).then_some(n))
}

/// `key value` lines; lines that do not parse are skipped (the kernel adds keys over time).
pub fn flat_keyed(text: &str) -> BTreeMap<&str, u64> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let key = parts.next()?;
            let value = parts.next()?.parse().ok()?;
            Some((key, value))
        })
        .collect()
}

/// Read and write figures per device (`major:minor`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceIo {
    pub read: u64,
    pub write: u64,
}

/// cgroup v1 `blkio.throttle.io_service_bytes` / `io_serviced`: `8:0 Read 4096` lines plus a
/// `Total` line.
pub fn blkio_v1(text: &str) -> BTreeMap<String, DeviceIo> {
    let mut out: BTreeMap<String, DeviceIo> = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(device), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        let entry = out.entry(device.to_string()).or_default();
        match op {
            "Read" => entry.read = value,
            "Write" => entry.write = value,
            _ => {}
        }
    }
    out
}

/// Bytes and operations per device from cgroup v2 `io.stat`
/// (`8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`).
pub fn io_v2(text: &str) -> BTreeMap<String, (DeviceIo, DeviceIo)> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let Some(device) = parts.next() else { continue };
        let (mut bytes, mut ops) = (DeviceIo::default(), DeviceIo::default());
        for kv in parts {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(v) = v.parse::<u64>() else { continue };
            match k {
                "rbytes" => bytes.read = v,
                "wbytes" => bytes.write = v,
                "rios" => ops.read = v,
                "wios" => ops.write = v,
                _ => {}
            }
        }
        out.insert(device.to_string(), (bytes, ops));
    }
    out
}

/// `/proc/<pid>/net/dev`: counters per interface of that process's network namespace.
pub fn net_dev(text: &str) -> Vec<InterfaceStats> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|v| v.parse().ok())
                .collect::<Option<_>>()?;
            if f.len() < 16 {
                return None;
            }
            Some(InterfaceStats {
                interface: name.trim().to_string(),
                rx_bytes: f[0],
                rx_packets: f[1],
                rx_errors: f[2],
                rx_dropped: f[3],
                tx_bytes: f[8],
                tx_packets: f[9],
                tx_errors: f[10],
                tx_dropped: f[11],
            })
        })
        .collect()
}

/// `/proc/partitions`: `major:minor` -> device name.
pub fn partitions(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| {
            let p: Vec<&str> = line.split_whitespace().collect();
            match p.as_slice() {
                [major, minor, _, name] if major.parse::<u32>().is_ok() => {
                    Some((format!("{major}:{minor}"), (*name).to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn limits_and_numbers() {
        assert_eq!(limit("max\n"), Ok(None));
        assert_eq!(limit("-1\n"), Ok(None));
        assert_eq!(limit("9223372036854771712\n"), Ok(None));
        assert_eq!(limit("67108864\n"), Ok(Some(67_108_864)));
        assert!(number("12x").is_err());
        assert!(number("").is_err());
    }

    #[test]
    fn net_dev_skips_headers_and_garbage() {
        let text = "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n    lo: 10 2 0 0 0 0 0 0 10 2 0 0 0 0 0 0\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n  bad: 1 2\n";
        let ifs = net_dev(text);
        assert_eq!(ifs.len(), 2);
        assert_eq!(ifs[1].interface, "eth0");
        assert_eq!(
            (
                ifs[1].rx_bytes,
                ifs[1].rx_dropped,
                ifs[1].tx_bytes,
                ifs[1].tx_dropped
            ),
            (1, 4, 9, 12)
        );
    }

    #[test]
    fn block_io_both_layouts() {
        let v1 = blkio_v1("254:0 Read 4096\n254:0 Write 8192\n254:0 Total 12288\nTotal 12288\n");
        assert_eq!(
            v1["254:0"],
            DeviceIo {
                read: 4096,
                write: 8192
            }
        );
        assert_eq!(v1.len(), 1);
        let v2 = io_v2("254:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0\n");
        assert_eq!(
            v2["254:0"],
            (
                DeviceIo { read: 1, write: 2 },
                DeviceIo { read: 3, write: 4 }
            )
        );
        let parts = partitions("major minor  #blocks  name\n\n 254        0   10485760 vda\n");
        assert_eq!(parts["254:0"], "vda");
    }
}
