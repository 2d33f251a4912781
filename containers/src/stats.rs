//! `kiln stats`: CPU, memory, network, block I/O and pids of running
//! containers, read from the kernel's per-process accounting.
//!
//! A container always has a cgroup of its own for `pause` (the freezer),
//! but a memory or cpu cgroup only when a limit asks for one; its usage
//! without limits sits in the parent's. So the figures come from the
//! container's processes (found through that freezer cgroup): CPU time
//! from `/proc/PID/stat` (the init's reaped children included), memory as
//! the summed resident sets, or the memory cgroup's usage where the
//! container has one, block I/O from `/proc/PID/io`, network from the
//! init's `/proc/PID/net/dev` (its namespace, loopback left out).

use std::collections::BTreeSet;
use std::fs;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use image_store::Store;

use crate::control;
use crate::error::Result;
use crate::records::{Container, Containers};

/// One container's figures over the sampling interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub id: String,
    pub name: String,
    /// Of one CPU, as docker's: 200 is two CPUs busy.
    pub cpu_percent: f64,
    pub mem_usage: u64,
    /// The container's memory limit, else the host's memory.
    pub mem_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
    /// The raw counters behind `cpu_percent`, for docker's stats JSON
    /// (whose clients compute the percentage themselves): the
    /// container's CPU time and the host's (all CPUs, from `/proc/stat`)
    /// in nanoseconds, at the first and the second reading.
    pub cpu_ns: (u64, u64),
    pub system_cpu_ns: (u64, u64),
    pub online_cpus: u64,
    /// When the two readings were taken.
    pub read_at: (DateTime<Utc>, DateTime<Utc>),
}

/// A point-in-time reading of one container.
#[derive(Debug, Default)]
struct Sample {
    cpu_ticks: u64,
    mem: u64,
    mem_limit: Option<u64>,
    net: (u64, u64),
    block: (u64, u64),
    pids: u64,
}

/// The containers `names` (every running one when empty; with `all`,
/// stopped ones too, at zero), sampled twice `interval` apart.
pub fn stats(store: &Store, names: &[String], all: bool, interval: Duration) -> Result<Vec<Stats>> {
    let list: Vec<Container> = if names.is_empty() {
        control::list(store, all)?
    } else {
        let containers = Containers::new(store);
        names
            .iter()
            .map(|n| containers.container(n))
            .collect::<Result<_>>()?
    };
    let system_before = system_cpu_ticks();
    let read_before = Utc::now();
    let first: Vec<Option<Sample>> = list.iter().map(|c| sample(store, c)).collect();
    let start = Instant::now();
    if first.iter().any(Option::is_some) {
        std::thread::sleep(interval);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let system_after = system_cpu_ticks();
    let read_after = Utc::now();
    let host_mem = host_memory();
    let tick = clock_tick();
    let ns = |ticks: u64| (ticks as f64 * 1e9 / tick) as u64;
    // SAFETY: sysconf has no preconditions.
    let online_cpus = (unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }).max(1) as u64;
    Ok(list
        .iter()
        .zip(first)
        .map(|(c, before)| {
            let now = before.as_ref().and_then(|_| sample(store, c));
            let s = now.unwrap_or_default();
            let cpu_percent = match (&before, elapsed > 0.0) {
                (Some(b), true) => {
                    let ticks = s.cpu_ticks.saturating_sub(b.cpu_ticks) as f64;
                    ticks / tick / elapsed * 100.0
                }
                _ => 0.0,
            };
            Stats {
                id: c.id.clone(),
                name: c.name.clone(),
                cpu_percent,
                mem_usage: s.mem,
                mem_limit: s.mem_limit.unwrap_or(host_mem).min(host_mem),
                net_rx: s.net.0,
                net_tx: s.net.1,
                block_read: s.block.0,
                block_write: s.block.1,
                pids: s.pids,
                cpu_ns: (
                    ns(before.as_ref().map_or(0, |b| b.cpu_ticks)),
                    ns(s.cpu_ticks),
                ),
                system_cpu_ns: (ns(system_before), ns(system_after)),
                online_cpus,
                read_at: (read_before, read_after),
            }
        })
        .collect())
}

/// Reads a running container's accounting; None when it is not running.
fn sample(store: &Store, c: &Container) -> Option<Sample> {
    if !c.is_running() {
        return None;
    }
    let init = control::init_pid(store, c)?;
    let pids: BTreeSet<i32> = runner::container_pids(init)
        .ok()?
        .into_iter()
        .chain([init])
        .collect();
    let mut s = Sample {
        pids: pids.len() as u64,
        ..Sample::default()
    };
    let page = page_size();
    for &pid in &pids {
        if let Some(f) = stat_fields(pid) {
            // utime, stime; the init's also cutime, cstime: the time of
            // the children it reaped, which are gone from the list.
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            s.cpu_ticks += n(11) + n(12);
            if pid == init {
                s.cpu_ticks += n(13) + n(14);
            }
        }
        if let Ok(statm) = fs::read_to_string(format!("/proc/{pid}/statm")) {
            let resident = statm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok());
            s.mem += resident.unwrap_or(0) * page;
        }
        if let Ok(io) = fs::read_to_string(format!("/proc/{pid}/io")) {
            s.block.0 += field(&io, "read_bytes:");
            s.block.1 += field(&io, "write_bytes:");
        }
    }
    if let Some((usage, limit)) = runner::container_memory(init) {
        s.mem = usage;
        s.mem_limit = limit;
    }
    if let Ok(dev) = fs::read_to_string(format!("/proc/{init}/net/dev")) {
        s.net = net_bytes(&dev);
    }
    Some(s)
}

/// The fields of `/proc/PID/stat` after the `(comm)` one, which may hold
/// spaces: index 0 is the state, 11 utime, 12 stime, 13 cutime, 14 cstime.
fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// `key: value` from `/proc/PID/io`.
fn field(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Received and sent bytes of every interface but loopback, from the
/// text of `/proc/PID/net/dev`.
fn net_bytes(dev: &str) -> (u64, u64) {
    let mut total = (0, 0);
    for line in dev.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let c: Vec<u64> = counters
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        // receive: bytes packets errs drop fifo frame compressed multicast;
        // then transmit: bytes ...
        total.0 += c.first().copied().unwrap_or(0);
        total.1 += c.get(8).copied().unwrap_or(0);
    }
    total
}

/// The host's CPU time, all CPUs, in clock ticks: the first line of
/// `/proc/stat` (`cpu  user nice system idle iowait irq softirq steal
/// ...`, guest time already in user), as docker's `system_cpu_usage`.
fn system_cpu_ticks() -> u64 {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .find_map(|l| l.strip_prefix("cpu "))
        .map(|v| {
            v.split_whitespace()
                .take(8)
                .filter_map(|n| n.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// The host's memory: `MemTotal:  24000000 kB` in `/proc/meminfo`.
fn host_memory() -> u64 {
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    kb * 1024
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(1) as u64
}

fn clock_tick() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_bytes_leave_loopback_out() {
        let dev = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    5000      10    0    0    0     0          0         0      700       7    0    0    0     0       0          0\n";
        assert_eq!(net_bytes(dev), (5000, 700));
    }

    #[test]
    fn io_fields_and_meminfo_parse() {
        let io = "rchar: 10\nwchar: 20\nread_bytes: 4096\nwrite_bytes: 8192\n";
        assert_eq!(
            (field(io, "read_bytes:"), field(io, "write_bytes:")),
            (4096, 8192)
        );
        assert!(host_memory() > 0);
        assert!(system_cpu_ticks() > 0);
    }
}
