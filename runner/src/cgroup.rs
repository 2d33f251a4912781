//! Device rules and resource limits (memory, pids, cpu) through cgroupfs,
//! v1 or v2.
//!
//! Each container gets `kiln-<id>` under the runner's own cgroup in every
//! controller it needs: always for the device rules (v1 `devices`, and a
//! device program in the unified hierarchy), and for the limits the spec
//! asks for. The directories are removed after the container exits.

use crate::bpf;
use crate::devices::{self, Rule};
use crate::error::RunError;
use oci_spec::runtime::LinuxResources;
use std::fs;
use std::os::fd::OwnedFd;
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
    pub memory_reservation: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpuset_cpus: Option<String>,
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
            memory_reservation: mem.and_then(|m| m.reservation()).filter(|v| *v > 0),
            cpu_shares: cpu.and_then(|c| c.shares()).filter(|v| *v > 0),
            cpuset_cpus: cpu.and_then(|c| c.cpus().clone()).filter(|c| !c.is_empty()),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.memory.is_none()
            && self.pids.is_none()
            && self.cpu_quota.is_none()
            && self.memory_reservation.is_none()
            && self.cpu_shares.is_none()
            && self.cpuset_cpus.is_none()
    }
}

/// Cgroup directories created for one container.
#[derive(Debug, Default)]
pub(crate) struct Cgroup {
    dirs: Vec<PathBuf>,
    /// Made by [`Cgroup::prepare`] before the container's process exists.
    prepared: Option<Prepared>,
}

/// The container's cgroup in the unified hierarchy, set up before its
/// process is cloned (straight into it, `CLONE_INTO_CGROUP`).
#[derive(Debug)]
struct Prepared {
    dir: PathBuf,
    /// Limits that could not be written there.
    warnings: Vec<String>,
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

/// The cgroup v2 hierarchy: `/sys/fs/cgroup` on a pure v2 host,
/// `/sys/fs/cgroup/unified` on a hybrid one.
fn unified_root() -> Option<&'static Path> {
    [ROOT, "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(Path::new)
        .find(|r| r.join("cgroup.controllers").exists())
}

/// The runner's own cgroup in the cgroup v2 hierarchy.
pub(crate) fn unified_base() -> Option<PathBuf> {
    Some(unified_root()?.join(own_path(None).trim_start_matches('/')))
}

/// The runner's own cgroup in each hierarchy this process belongs to
/// (existing or not; one path per hierarchy).
fn own_dirs() -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut dirs = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        let root = if ctrls.is_empty() {
            match unified_root() {
                Some(r) => r.to_path_buf(),
                None => continue,
            }
        } else {
            let first = ctrls.split(',').next().unwrap_or("");
            Path::new(ROOT).join(first.strip_prefix("name=").unwrap_or(first))
        };
        dirs.push(root.join(path.trim_start_matches('/')));
    }
    dirs
}

/// The `cgroup.procs` files of `pid`'s cgroups that differ from this
/// process's, opened for writing: what `exec` joins. A `kiln-*` cgroup
/// (device rules, limits) must be joined; others (a service manager's)
/// are joined where this process may.
pub(crate) fn procs_files_of(pid: libc::pid_t) -> Result<Vec<std::fs::File>, RunError> {
    let path = format!("/proc/{pid}/cgroup");
    let text = fs::read_to_string(&path).map_err(|e| RunError::io(format!("read {path}"), e))?;
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        if own.lines().any(|l| l == line) {
            continue;
        }
        let mut f = line.splitn(3, ':');
        let (_, ctrls, rel) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        let root = if ctrls.is_empty() {
            match unified_root() {
                Some(r) => r.to_path_buf(),
                None => continue,
            }
        } else {
            let first = ctrls.split(',').next().unwrap_or("");
            Path::new(ROOT).join(first.strip_prefix("name=").unwrap_or(first))
        };
        let file = root.join(rel.trim_start_matches('/')).join("cgroup.procs");
        let required = rel
            .rsplit('/')
            .next()
            .is_some_and(|n| n.starts_with("kiln-"));
        match fs::OpenOptions::new().write(true).open(&file) {
            Ok(f) => out.push(f),
            Err(e) if required => {
                return Err(RunError::io(format!("open {}", file.display()), e));
            }
            Err(_) => {}
        }
    }
    Ok(out)
}

/// `pid`'s own `kiln-*` cgroup directory in the hierarchy `line_matches`
/// picks from its `/proc/<pid>/cgroup` (`freezer`, or `""` for v2).
fn kiln_dir_of(pid: libc::pid_t, controller: &str) -> Option<PathBuf> {
    let text = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, rel) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or("/"));
        let hit = if controller.is_empty() {
            ctrls.is_empty()
        } else {
            ctrls.split(',').any(|c| c == controller)
        };
        if !hit
            || !rel
                .rsplit('/')
                .next()
                .is_some_and(|n| n.starts_with("kiln-"))
        {
            continue;
        }
        let root = if controller.is_empty() {
            unified_root()?.to_path_buf()
        } else {
            Path::new(ROOT).join(controller)
        };
        return Some(root.join(rel.trim_start_matches('/')));
    }
    None
}

/// The memory cgroup's usage and limit of the container whose init is
/// `pid`, when it has one of its own (a `--memory` limit, or cgroup v2).
pub(crate) fn memory_of(pid: libc::pid_t) -> Option<(u64, Option<u64>)> {
    let read = |d: &Path, f: &str| fs::read_to_string(d.join(f)).ok();
    let num = |s: Option<String>| s.and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(d) = kiln_dir_of(pid, "memory") {
        let usage = num(read(&d, "memory.usage_in_bytes"))?;
        // v1 says "no limit" with a huge page-rounded number.
        let limit = num(read(&d, "memory.limit_in_bytes")).filter(|l| *l < 1 << 62);
        return Some((usage, limit));
    }
    let d = kiln_dir_of(pid, "")?;
    let usage = num(read(&d, "memory.current"))?;
    Some((usage, num(read(&d, "memory.max"))))
}

/// Freezes (or thaws) every process of the container whose init is `pid`:
/// the v1 freezer controller where the container has a freezer cgroup,
/// else cgroup v2's `cgroup.freeze`. Returns once the kernel says done.
pub(crate) fn freeze(pid: libc::pid_t, frozen: bool) -> Result<(), RunError> {
    let err = |m: String| RunError::Setup {
        step: "freezer cgroup".into(),
        source: std::io::Error::other(m),
    };
    let (file, value, done) = if let Some(d) = kiln_dir_of(pid, "freezer") {
        let v = if frozen { "FROZEN" } else { "THAWED" };
        (d.join("freezer.state"), v, v)
    } else if let Some(d) = kiln_dir_of(pid, "").filter(|d| d.join("cgroup.freeze").exists()) {
        let v = if frozen { "1" } else { "0" };
        (d.join("cgroup.freeze"), v, v)
    } else {
        return Err(err(
            "the container has no freezer cgroup of its own (started rootless or by an older kiln)"
                .into(),
        ));
    };
    write(
        file.parent().unwrap_or(Path::new("/")),
        &file.file_name().unwrap_or_default().to_string_lossy(),
        value,
    )
    .map_err(err)?;
    // v1 reports FREEZING until every task stopped; v2's file reads back
    // at once (its `cgroup.events` `frozen` follows).
    let events = file.with_file_name("cgroup.events");
    for _ in 0..5000 {
        let state = if file.ends_with("cgroup.freeze") {
            let ev = fs::read_to_string(&events).unwrap_or_default();
            let want = format!("frozen {done}");
            if ev.lines().any(|l| l == want) || !events.exists() {
                return Ok(());
            }
            String::new()
        } else {
            fs::read_to_string(&file).unwrap_or_default()
        };
        if state.trim() == done {
            return Ok(());
        }
        if frozen && state.trim() == "FREEZING" {
            // Writing again retries tasks that were busy.
            let _ = fs::write(&file, value);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Err(err(format!("{} did not become {done}", file.display())))
}

/// Is the container whose init is `pid` paused (frozen or freezing)?
pub(crate) fn is_frozen(pid: libc::pid_t) -> bool {
    if let Some(d) = kiln_dir_of(pid, "freezer") {
        let s = fs::read_to_string(d.join("freezer.state")).unwrap_or_default();
        return s.trim() != "THAWED" && !s.trim().is_empty();
    }
    kiln_dir_of(pid, "")
        .and_then(|d| fs::read_to_string(d.join("cgroup.freeze")).ok())
        .is_some_and(|s| s.trim() == "1")
}

/// The processes in the container's cgroup (init `pid`'s own `kiln-*`
/// cgroup: the device one, which every container of root has).
pub(crate) fn pids_of(pid: libc::pid_t) -> Result<Vec<libc::pid_t>, RunError> {
    let dir = kiln_dir_of(pid, "devices")
        .or_else(|| kiln_dir_of(pid, "freezer"))
        .or_else(|| kiln_dir_of(pid, ""))
        .ok_or_else(|| RunError::Setup {
            step: "container cgroup".into(),
            source: std::io::Error::other("the container has no cgroup of its own"),
        })?;
    let p = dir.join("cgroup.procs");
    let text =
        fs::read_to_string(&p).map_err(|e| RunError::io(format!("read {}", p.display()), e))?;
    Ok(text.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Every `kiln-<id>` directory under the runner's own cgroups, in each
/// hierarchy this process belongs to (existing or not).
pub(crate) fn all_dirs(id: &str) -> Vec<PathBuf> {
    let name = format!("kiln-{id}");
    own_dirs().into_iter().map(|d| d.join(&name)).collect()
}

/// Empty `kiln-<id>` cgroups under the runner's own cgroups whose id
/// `wanted` accepts: `(id, dir)`. A killed runner leaves them; nothing else
/// removes them.
pub(crate) fn empty_kiln_dirs(wanted: &dyn Fn(&str) -> bool) -> Vec<(String, PathBuf)> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for base in own_dirs() {
        // Co-mounted controllers (cpu,cpuacct) are reached by several
        // names: one directory, told by its inode (one stat, where
        // resolving the path was a readlink per component, in every
        // command's start-up cleanup).
        let Ok(md) = fs::metadata(&base) else {
            continue;
        };
        if !seen.insert((md.dev(), md.ino())) {
            continue;
        }
        let Ok(entries) = fs::read_dir(&base) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_prefix("kiln-")) else {
                continue;
            };
            // Known not to matter before its files are read (another
            // store's: many of them, and opening cgroup files is slow).
            if !wanted(id) {
                continue;
            }
            let dir = e.path();
            let empty =
                fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| p.trim().is_empty());
            if e.file_type().is_ok_and(|t| t.is_dir()) && empty {
                out.push((id.to_string(), dir));
            }
        }
    }
    out
}

/// The files of `limits`, per controller (`memory`, `pids`, `cpu`,
/// `cpuset`), by their cgroup v2 names (`v2_only`) or v1 ones.
fn limit_files(limits: &Limits, v2_only: bool) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let mut want: Vec<(&str, Vec<(&str, String)>)> = Vec::new();
    let mut memory = Vec::new();
    if let Some(m) = limits.memory {
        memory.push((
            if v2_only {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            },
            m.to_string(),
        ));
        if let Some(s) = limits.swap {
            if v2_only {
                memory.push(("memory.swap.max", (s - m).max(0).to_string()));
            } else if Path::new(ROOT)
                .join("memory/memory.memsw.limit_in_bytes")
                .exists()
            {
                memory.push(("memory.memsw.limit_in_bytes", s.to_string()));
            }
        }
    }
    if let Some(r) = limits.memory_reservation {
        let file = match v2_only {
            true => "memory.low",
            false => "memory.soft_limit_in_bytes",
        };
        memory.push((file, r.to_string()));
    }
    if !memory.is_empty() {
        want.push(("memory", memory));
    }
    if let Some(p) = limits.pids {
        want.push(("pids", vec![("pids.max", p.to_string())]));
    }
    let mut cpu = Vec::new();
    if let Some(q) = limits.cpu_quota {
        let period = limits.cpu_period.unwrap_or(100_000);
        if v2_only {
            cpu.push(("cpu.max", format!("{q} {period}")));
        } else {
            cpu.push(("cpu.cfs_period_us", period.to_string()));
            cpu.push(("cpu.cfs_quota_us", q.to_string()));
        }
    }
    if let Some(shares) = limits.cpu_shares {
        cpu.push(match v2_only {
            // runc's conversion of shares (2..262144) to a weight (1..10000).
            true => (
                "cpu.weight",
                (1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142).to_string(),
            ),
            false => ("cpu.shares", shares.to_string()),
        });
    }
    if !cpu.is_empty() {
        want.push(("cpu", cpu));
    }
    if let Some(set) = &limits.cpuset_cpus {
        let mut files = vec![("cpuset.cpus", set.clone())];
        // A v1 cpuset takes no process until it has memory nodes: the
        // parent's, as the kernel would give a v2 one.
        if !v2_only {
            let parent = Path::new(ROOT)
                .join("cpuset")
                .join(own_path(Some("cpuset")).trim_start_matches('/'));
            let mems = fs::read_to_string(parent.join("cpuset.mems")).unwrap_or_default();
            files.insert(0, ("cpuset.mems", mems.trim().to_string()));
        }
        want.push(("cpuset", files));
    }
    want
}

impl Cgroup {
    /// The directories a detached container may have left, to remove.
    pub(crate) fn of_detached(id: &str) -> Cgroup {
        Cgroup {
            dirs: all_dirs(id).into_iter().filter(|d| d.exists()).collect(),
            prepared: None,
        }
    }

    fn create(&mut self, dir: &Path) -> Result<(), String> {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !self.dirs.iter().any(|d| d == dir) {
            self.dirs.push(dir.to_path_buf());
        }
        Ok(())
    }

    /// Creates `dir` and runs `fill` on it (settings, then `cgroup.procs`).
    /// Until the process is in, the cgroup is empty, and another kiln's
    /// cleanup of killed runners' cgroups may remove it (`rmdir` refuses
    /// only non-empty cgroups); then it is made again.
    fn setup(
        &mut self,
        dir: &Path,
        mut fill: impl FnMut(&Path) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut attempt = 0;
        loop {
            self.create(dir)?;
            match fill(dir) {
                Err(_) if attempt < 4 && !dir.exists() => attempt += 1,
                r => return r,
            }
        }
    }

    /// Before the container's process exists: makes its cgroup in the
    /// unified hierarchy with what belongs there (the device program; on a
    /// pure cgroup v2 host the limits too) and returns it opened, for the
    /// process to be cloned straight into it (`CLONE_INTO_CGROUP`).
    /// Moving a process into a cgroup takes a lock whose writer waits out
    /// an RCU grace period (5-10 ms, the largest single cost of starting a
    /// container); a process cloned into one takes that lock as a reader.
    /// None (nothing to put there, no unified hierarchy, or it cannot be
    /// made): [`Cgroup::apply`] does everything after the clone.
    pub(crate) fn prepare(
        &mut self,
        id: &str,
        limits: &Limits,
        devices: Option<&[Rule]>,
    ) -> Option<OwnedFd> {
        let v2_only = Path::new(ROOT).join("cgroup.controllers").exists();
        let mut want = match v2_only {
            true => limit_files(limits, true),
            false => Vec::new(),
        };
        if devices.is_none() && want.is_empty() {
            return None;
        }
        let base = unified_base()?;
        let mut warnings = Vec::new();
        if !want.is_empty() {
            let ctrls: Vec<String> = want.iter().map(|(c, _)| format!("+{c}")).collect();
            if let Err(e) = write(&base, "cgroup.subtree_control", &ctrls.join(" ")) {
                warnings.push(e);
                want.clear();
            }
        }
        if devices.is_none() && want.is_empty() {
            return None;
        }
        let dir = base.join(format!("kiln-{id}"));
        self.create(&dir).ok()?;
        for (_, files) in &want {
            for (f, v) in files {
                if let Err(e) = write(&dir, f, v) {
                    warnings.push(e);
                }
            }
        }
        if let Some(rules) = devices {
            // `apply` tries again the old way, and reports.
            bpf::attach(&dir, rules).ok()?;
        }
        let fd = fs::File::open(&dir).ok()?;
        self.prepared = Some(Prepared { dir, warnings });
        Some(fd.into())
    }

    /// Creates the cgroups, applies `limits` and the device rules, and
    /// moves `pid` in (into the cgroups [`Cgroup::prepare`] did not make
    /// it start in: `placed` says it was cloned into that one). Limits that
    /// cannot be applied are returned as warnings; device rules that cannot
    /// be applied are an error (the container must not run unconfined).
    /// Directories created before a failure are kept in `self`, for
    /// [`Cgroup::remove`].
    pub(crate) fn apply(
        &mut self,
        id: &str,
        pid: libc::pid_t,
        limits: &Limits,
        devices: Option<&[Rule]>,
        placed: bool,
    ) -> Result<Vec<String>, RunError> {
        let name = format!("kiln-{id}");
        let procs = pid.to_string();
        if let Some(p) = self.prepared.take() {
            if placed {
                return Ok(self.apply_prepared(p, &name, &procs, limits));
            }
            // Not cloned into it (no clone3 here: an older kernel, a
            // seccomp filter): everything as without `prepare`.
        }
        let mut warnings = Vec::new();
        let v2_only = Path::new(ROOT).join("cgroup.controllers").exists();
        let mut want = limit_files(limits, v2_only);
        // A freezer cgroup of its own, so that `pause` can freeze it
        // (on cgroup v2 the core `cgroup.freeze` of its device cgroup does).
        if !v2_only && Path::new(ROOT).join("freezer/tasks").exists() {
            want.push(("freezer", Vec::new()));
        }
        if v2_only {
            let base = Path::new(ROOT).join(own_path(None).trim_start_matches('/'));
            let dir = base.join(&name);
            if want.is_empty() && devices.is_none() {
                return Ok(warnings);
            }
            if !want.is_empty() {
                let ctrls: Vec<String> = want.iter().map(|(c, _)| format!("+{c}")).collect();
                if let Err(e) = write(&base, "cgroup.subtree_control", &ctrls.join(" ")) {
                    warnings.push(e);
                    want.clear();
                }
            }
            let mut soft = Vec::new();
            let res = self.setup(&dir, |dir| {
                soft.clear();
                for (_, files) in &want {
                    for (f, v) in files {
                        if let Err(e) = write(dir, f, v) {
                            soft.push(e);
                        }
                    }
                }
                if let Some(rules) = devices {
                    bpf::attach(dir, rules).map_err(|e| e.to_string())?;
                }
                write(dir, "cgroup.procs", &procs)
            });
            warnings.append(&mut soft);
            match res {
                Ok(()) => {}
                Err(e) if devices.is_some() => return Err(confine_error(&e)),
                Err(e) => warnings.push(e),
            }
            return Ok(warnings);
        }
        self.v1_controllers(&name, &procs, &want, &mut warnings);
        if let Some(rules) = devices {
            // Either mechanism alone confines the container: the kernel
            // checks the v1 controller and the unified hierarchy's programs
            // independently. Use both where both exist.
            let v1 = self.devices_v1(&name, &procs, rules);
            let v2 = self.devices_unified(&name, &procs, rules);
            if let (Err(a), Err(b)) = (&v1, &v2) {
                return Err(confine_error(&format!("{a}; {b}")));
            }
        }
        Ok(warnings)
    }

    /// [`Cgroup::apply`] after [`Cgroup::prepare`]: the unified cgroup
    /// holds the device program (which alone confines the container: the
    /// kernel checks it whatever the v1 `devices` controller says) and
    /// serves `pause` (`cgroup.freeze`); on a hybrid host the limits still
    /// need the v1 controllers, moved into now.
    fn apply_prepared(
        &mut self,
        p: Prepared,
        name: &str,
        procs: &str,
        limits: &Limits,
    ) -> Vec<String> {
        let mut warnings = p.warnings;
        if Path::new(ROOT).join("cgroup.controllers").exists() {
            return warnings;
        }
        let mut want = limit_files(limits, false);
        if !p.dir.join("cgroup.freeze").exists() && Path::new(ROOT).join("freezer/tasks").exists() {
            want.push(("freezer", Vec::new()));
        }
        self.v1_controllers(name, procs, &want, &mut warnings);
        warnings
    }

    /// Cgroup v1: one `name` cgroup per controller of `want`, its files
    /// written, `procs` moved in. What fails is a warning.
    fn v1_controllers(
        &mut self,
        name: &str,
        procs: &str,
        want: &[(&str, Vec<(&str, String)>)],
        warnings: &mut Vec<String>,
    ) {
        for (ctrl, files) in want {
            let base = Path::new(ROOT).join(ctrl);
            if !base.exists() {
                warnings.push(format!("cgroup controller {ctrl} is not mounted"));
                continue;
            }
            let dir = base
                .join(own_path(Some(ctrl)).trim_start_matches('/'))
                .join(name);
            let mut soft = Vec::new();
            let res = self.setup(&dir, |dir| {
                soft.clear();
                for (f, v) in files {
                    if let Err(e) = write(dir, f, v) {
                        soft.push(e);
                    }
                }
                write(dir, "cgroup.procs", procs)
            });
            warnings.append(&mut soft);
            if let Err(e) = res {
                warnings.push(e);
            }
        }
    }

    /// The v1 `devices` controller: deny everything, then the rules.
    fn devices_v1(&mut self, name: &str, procs: &str, rules: &[Rule]) -> Result<(), String> {
        let base = Path::new(ROOT).join("devices");
        if !base.join("devices.list").exists() {
            return Err("no cgroup v1 devices controller".into());
        }
        let dir = base
            .join(own_path(Some("devices")).trim_start_matches('/'))
            .join(name);
        self.setup(&dir, |dir| {
            for (file, line) in devices::v1_writes(rules) {
                write(dir, file, &line)?;
            }
            write(dir, "cgroup.procs", procs)
        })
    }

    /// A device program on the container's cgroup in the unified hierarchy.
    fn devices_unified(&mut self, name: &str, procs: &str, rules: &[Rule]) -> Result<(), String> {
        let Some(base) = unified_base() else {
            return Err("no cgroup2 hierarchy".into());
        };
        let dir = base.join(name);
        self.setup(&dir, |dir| {
            bpf::attach(dir, rules).map_err(|e| e.to_string())?;
            write(dir, "cgroup.procs", procs)
        })
    }

    /// Removes the directories; the container has exited, so they are empty.
    pub(crate) fn remove(&mut self) {
        self.prepared = None;
        for d in std::mem::take(&mut self.dirs) {
            // A dying task may linger in the cgroup for a moment.
            for _ in 0..50 {
                if fs::remove_dir(&d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }
}

/// Running unconfined would let the container open any host device.
fn confine_error(detail: &str) -> RunError {
    RunError::Setup {
        step: "device cgroup".into(),
        source: std::io::Error::other(format!(
            "cannot confine the container's device access: {detail} \
             (running containers as root needs a writable cgroup filesystem)"
        )),
    }
}
