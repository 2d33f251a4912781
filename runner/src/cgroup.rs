//! Resource limits (memory, pids, cpu) through cgroupfs, v1 or v2.
//!
//! Only touched when the spec asks for limits, so the common run pays nothing.
//! Each container gets `kiln-<id>` under the runner's own cgroup in every
//! controller it needs; the directories are removed after the container exits.

use oci_spec::runtime::LinuxResources;
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = "/sys/fs/cgroup";

/// The limits kiln applies, extracted from the spec's resources.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    pub memory: Option<i64>,
    pub swap: Option<i64>,
    pub pids: Option<i64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
}

impl Limits {
    pub(crate) fn from_spec(r: Option<&LinuxResources>) -> Limits {
        let Some(r) = r else { return Limits::default() };
        let mem = r.memory().as_ref();
        let cpu = r.cpu().as_ref();
        Limits {
            memory: mem.and_then(|m| m.limit()).filter(|v| *v > 0),
            swap: mem.and_then(|m| m.swap()).filter(|v| *v > 0),
            pids: r.pids().as_ref().map(|p| p.limit()).filter(|v| *v > 0),
            cpu_quota: cpu.and_then(|c| c.quota()).filter(|v| *v > 0),
            cpu_period: cpu.and_then(|c| c.period()),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.memory.is_none() && self.pids.is_none() && self.cpu_quota.is_none()
    }
}

/// Cgroup directories created for one container.
#[derive(Debug, Default)]
pub(crate) struct Cgroup {
    dirs: Vec<PathBuf>,
}

fn own_path(controller: Option<&str>) -> String {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        let hit = match controller {
            None => ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        if hit {
            return path.to_string();
        }
    }
    "/".to_string()
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), String> {
    fs::write(dir.join(file), value).map_err(|e| format!("{}/{file}: {e}", dir.display()))
}

impl Cgroup {
    /// Creates the cgroups, applies `limits` and moves `pid` in. Returns the
    /// cgroup (to remove later) and the limits that could not be applied.
    pub(crate) fn apply(id: &str, pid: libc::pid_t, limits: &Limits) -> (Cgroup, Vec<String>) {
        let mut cg = Cgroup::default();
        let mut warnings = Vec::new();
        let v2_only = Path::new(ROOT).join("cgroup.controllers").exists();
        let name = format!("kiln-{id}");
        let mut want: Vec<(&str, Vec<(&str, String)>)> = Vec::new();
        if let Some(m) = limits.memory {
            let mut files = vec![(
                if v2_only {
                    "memory.max"
                } else {
                    "memory.limit_in_bytes"
                },
                m.to_string(),
            )];
            if let Some(s) = limits.swap {
                if v2_only {
                    files.push(("memory.swap.max", (s - m).max(0).to_string()));
                } else if Path::new(ROOT)
                    .join("memory/memory.memsw.limit_in_bytes")
                    .exists()
                {
                    files.push(("memory.memsw.limit_in_bytes", s.to_string()));
                }
            }
            want.push(("memory", files));
        }
        if let Some(p) = limits.pids {
            want.push(("pids", vec![("pids.max", p.to_string())]));
        }
        if let Some(q) = limits.cpu_quota {
            let period = limits.cpu_period.unwrap_or(100_000);
            if v2_only {
                want.push(("cpu", vec![("cpu.max", format!("{q} {period}"))]));
            } else {
                want.push((
                    "cpu",
                    vec![
                        ("cpu.cfs_period_us", period.to_string()),
                        ("cpu.cfs_quota_us", q.to_string()),
                    ],
                ));
            }
        }
        if v2_only {
            let base = Path::new(ROOT).join(own_path(None).trim_start_matches('/'));
            let dir = base.join(&name);
            let ctrls: Vec<String> = want.iter().map(|(c, _)| format!("+{c}")).collect();
            let r = write(&base, "cgroup.subtree_control", &ctrls.join(" ")).and_then(|_| {
                fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))
            });
            match r {
                Ok(()) => {
                    cg.dirs.push(dir.clone());
                    for (_, files) in &want {
                        for (f, v) in files {
                            if let Err(e) = write(&dir, f, v) {
                                warnings.push(e);
                            }
                        }
                    }
                    if let Err(e) = write(&dir, "cgroup.procs", &pid.to_string()) {
                        warnings.push(e);
                    }
                }
                Err(e) => warnings.push(e),
            }
            return (cg, warnings);
        }
        for (ctrl, files) in &want {
            let base = Path::new(ROOT).join(ctrl);
            if !base.exists() {
                warnings.push(format!("cgroup controller {ctrl} is not mounted"));
                continue;
            }
            let dir = base
                .join(own_path(Some(ctrl)).trim_start_matches('/'))
                .join(&name);
            if let Err(e) = fs::create_dir_all(&dir) {
                warnings.push(format!("{}: {e}", dir.display()));
                continue;
            }
            cg.dirs.push(dir.clone());
            for (f, v) in files {
                if let Err(e) = write(&dir, f, v) {
                    warnings.push(e);
                }
            }
            if let Err(e) = write(&dir, "cgroup.procs", &pid.to_string()) {
                warnings.push(e);
            }
        }
        (cg, warnings)
    }

    /// Removes the directories; the container has exited, so they are empty.
    pub(crate) fn remove(&self) {
        for d in &self.dirs {
            // A dying task may linger in the cgroup for a moment.
            for _ in 0..50 {
                if fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}
