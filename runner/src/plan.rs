//! `Plan`: everything the container child will do, computed and validated in
//! the parent from the OCI spec. The child only walks it and makes syscalls,
//! so all strings are `CString`s built here, before `clone`.

use crate::caps;
use crate::error::RunError;
use crate::rootfs::RootMount;
use libc::{c_char, c_int, c_ulong};
use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType, Spec};
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// What must exist at a mount destination before mounting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Dir,
    File,
}

#[derive(Debug)]
pub(crate) struct MountOp {
    /// Destination relative to the container root (no leading `/`).
    pub dest: CString,
    /// The destination as written in the spec, for error messages.
    pub display: String,
    pub source: Option<CString>,
    pub fstype: Option<CString>,
    pub flags: c_ulong,
    pub data: Option<CString>,
    /// Flags that need a second, remount pass (bind mounts ignore them first).
    pub remount_flags: c_ulong,
    pub propagation: c_ulong,
    pub target: Target,
    /// sysfs cannot be mounted in a user namespace that does not own the
    /// network namespace; fall back to a read-only recursive bind of /sys.
    pub sysfs: bool,
    /// Read-only for every submount too (host /sys or cgroup trees).
    pub recursive_ro: bool,
    /// The tmpfs at /dev: populate it with the default device nodes.
    pub dev: bool,
    /// devpts options that name gid 5 fail when that gid is unmapped.
    pub devpts: bool,
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

#[derive(Debug)]
pub(crate) struct Plan {
    pub clone_flags: c_int,
    pub userns: bool,
    /// Unshare the cgroup namespace once the parent has moved the child
    /// into its cgroup, so that cgroup is the namespace's root.
    pub cgroupns: bool,
    pub hostname: Option<CString>,
    pub root: RootMount,
    pub root_propagation: c_ulong,
    pub mounts: Vec<MountOp>,
    pub masked: Vec<CString>,
    pub readonly_paths: Vec<CString>,
    pub readonly_root: bool,
    pub loopback_up: bool,
    /// A network namespace to join (`setns`) instead of creating one: the
    /// spec's network namespace with a `path` (a bind-mounted nsfs file
    /// that a network backend such as netavark has set up).
    pub join_netns: Option<CString>,
    pub rlimits: Vec<(c_int, libc::rlimit)>,
    pub cwd: CString,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<libc::gid_t>,
    pub caps: Option<CapSets>,
    pub last_cap: u32,
    pub no_new_privs: bool,
    pub umask: Option<u32>,
    pub argv: Vec<CString>,
    pub argv_ptrs: Vec<*const c_char>,
    /// Owns the strings `env_ptrs` points into.
    #[allow(dead_code)]
    pub env: Vec<CString>,
    pub env_ptrs: Vec<*const c_char>,
    /// Paths execve tries in order, resolved from argv[0] and the spec's PATH.
    pub exec_candidates: Vec<CString>,
    pub terminal: bool,
    /// Caller descriptors for 0, 1, 2 (None: inherit).
    pub stdio: Option<[c_int; 3]>,
    pub winsize: Option<libc::winsize>,
    /// The child must wait for the parent (id maps, cgroups) before setup.
    pub wait_for_parent: bool,
    pub kill_on_parent_death: bool,
    /// runc links /dev/core only when the host has /proc/kcore; so do we.
    pub dev_core: bool,
    /// The spec's `linux.devices`: nodes made in the container's /dev
    /// (paths relative to it; their cgroup rules come with the spec's
    /// resources).
    pub devices: Vec<ExtraDevice>,
    /// `/proc/sys/...` file and value, written before /proc/sys goes read-only.
    pub sysctls: Vec<(CString, CString)>,
    /// Written by the parent while the child waits.
    pub oom_score_adj: Option<i32>,
    pub seccomp: Option<crate::seccomp::Filter>,
}

fn cstring(s: impl AsRef<[u8]>, what: &str) -> Result<CString, RunError> {
    CString::new(s.as_ref().to_vec())
        .map_err(|_| RunError::InvalidSpec(format!("{what} contains a NUL byte")))
}

/// `/a/../b/./c` → `b/c`, refusing to climb above the root: mount
/// destinations are always inside the container.
pub(crate) fn relative_in_root(path: &Path) -> Result<Vec<u8>, RunError> {
    let mut parts: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(p) => parts.push(p),
        }
    }
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(p.as_bytes());
    }
    Ok(out)
}

/// Mount flags and data from an OCI/fstab option list.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ParsedOptions {
    pub flags: c_ulong,
    pub clear: c_ulong,
    pub propagation: c_ulong,
    pub bind: bool,
    pub recursive: bool,
    pub data: Vec<String>,
}

pub(crate) fn parse_options(options: &[String]) -> ParsedOptions {
    let mut p = ParsedOptions::default();
    for o in options {
        let (set, clear): (c_ulong, c_ulong) = match o.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "noatime" => (libc::MS_NOATIME, 0),
            "atime" => (0, libc::MS_NOATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "bind" => {
                p.bind = true;
                (0, 0)
            }
            "rbind" => {
                p.bind = true;
                p.recursive = true;
                (0, 0)
            }
            "private" => {
                p.propagation = libc::MS_PRIVATE;
                (0, 0)
            }
            "rprivate" => {
                p.propagation = libc::MS_PRIVATE | libc::MS_REC;
                (0, 0)
            }
            "shared" => {
                p.propagation = libc::MS_SHARED;
                (0, 0)
            }
            "rshared" => {
                p.propagation = libc::MS_SHARED | libc::MS_REC;
                (0, 0)
            }
            "slave" => {
                p.propagation = libc::MS_SLAVE;
                (0, 0)
            }
            "rslave" => {
                p.propagation = libc::MS_SLAVE | libc::MS_REC;
                (0, 0)
            }
            "unbindable" => {
                p.propagation = libc::MS_UNBINDABLE;
                (0, 0)
            }
            "runbindable" => {
                p.propagation = libc::MS_UNBINDABLE | libc::MS_REC;
                (0, 0)
            }
            // Handled by the runtime, not the kernel.
            "defaults" => (0, 0),
            other => {
                p.data.push(other.to_string());
                (0, 0)
            }
        };
        p.flags |= set;
        p.flags &= !clear;
        p.clear |= clear;
    }
    p
}

fn rlimit_resource(t: PosixRlimitType) -> c_int {
    use PosixRlimitType::*;
    (match t {
        RlimitCpu => libc::RLIMIT_CPU,
        RlimitFsize => libc::RLIMIT_FSIZE,
        RlimitData => libc::RLIMIT_DATA,
        RlimitStack => libc::RLIMIT_STACK,
        RlimitCore => libc::RLIMIT_CORE,
        RlimitRss => libc::RLIMIT_RSS,
        RlimitNproc => libc::RLIMIT_NPROC,
        RlimitNofile => libc::RLIMIT_NOFILE,
        RlimitMemlock => libc::RLIMIT_MEMLOCK,
        RlimitAs => libc::RLIMIT_AS,
        RlimitLocks => libc::RLIMIT_LOCKS,
        RlimitSigpending => libc::RLIMIT_SIGPENDING,
        RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        RlimitNice => libc::RLIMIT_NICE,
        RlimitRtprio => libc::RLIMIT_RTPRIO,
        RlimitRttime => libc::RLIMIT_RTTIME,
    }) as c_int
}

/// The candidate paths for argv[0], in the order execvp would try them, using
/// the container's PATH (not the host's).
pub(crate) fn exec_candidates(arg0: &str, env: &[String]) -> Vec<Vec<u8>> {
    if arg0.contains('/') {
        return vec![arg0.as_bytes().to_vec()];
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(crate::spec::DEFAULT_PATH);
    path.split(':')
        .map(|dir| {
            let dir = if dir.is_empty() { "." } else { dir };
            format!("{}/{}", dir.trim_end_matches('/'), arg0).into_bytes()
        })
        .collect()
}

pub(crate) struct PlanInputs<'a> {
    pub spec: &'a Spec,
    pub root: RootMount,
    pub rootless: bool,
    pub detach: bool,
    pub needs_parent_sync: bool,
}

pub(crate) fn build(inp: PlanInputs<'_>) -> Result<Plan, RunError> {
    let spec = inp.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| RunError::InvalidSpec("spec has no process".into()))?;
    let args = process.args().clone().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(RunError::InvalidSpec("process.args is empty".into()));
    }
    let env = process.env().clone().unwrap_or_default();
    let linux = spec.linux().as_ref();

    let mut clone_flags = 0;
    let mut userns = inp.rootless;
    let mut cgroupns = false;
    let mut join_netns = None;
    for ns in linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        if let (LinuxNamespaceType::Network, Some(path)) = (ns.typ(), ns.path()) {
            use std::os::unix::ffi::OsStrExt as _;
            join_netns = Some(cstring(
                path.as_os_str().as_bytes(),
                "network namespace path",
            )?);
            continue;
        }
        if ns.path().is_some() {
            return Err(RunError::Unsupported(format!(
                "joining an existing {:?} namespace by path",
                ns.typ()
            )));
        }
        match ns.typ() {
            LinuxNamespaceType::User => userns = true,
            LinuxNamespaceType::Cgroup => cgroupns = true,
            LinuxNamespaceType::Time => {
                return Err(RunError::Unsupported("time namespaces".into()));
            }
            t => clone_flags |= t as c_int,
        }
    }
    // The runtime always needs its own mount namespace to build the rootfs.
    clone_flags |= libc::CLONE_NEWNS;
    if userns {
        clone_flags |= libc::CLONE_NEWUSER;
    }

    let root_propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        None | Some("") | Some("rprivate") | Some("private") => libc::MS_PRIVATE | libc::MS_REC,
        Some("rslave") | Some("slave") => libc::MS_SLAVE | libc::MS_REC,
        Some("rshared") | Some("shared") => libc::MS_SHARED | libc::MS_REC,
        Some(other) => {
            return Err(RunError::InvalidSpec(format!(
                "rootfsPropagation {other:?}"
            )))
        }
    };

    let mut mounts = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let dest_rel = relative_in_root(m.destination())?;
        if dest_rel.is_empty() {
            return Err(RunError::InvalidSpec(
                "a mount onto / is not supported".into(),
            ));
        }
        let display = m.destination().display().to_string();
        let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
        let mut typ = m.typ().clone().unwrap_or_default();
        let mut opts = opts;
        let mut source_path = m.source().clone();
        // A cgroup filesystem cannot be mounted afresh on this host's hybrid
        // v1 layout (controllers are already mounted elsewhere); expose the
        // host's tree instead, read-only all the way down when asked to be.
        let cgroup = typ == "cgroup" || typ == "cgroup2";
        if cgroup {
            typ = "bind".into();
            opts.bind = true;
            opts.recursive = true;
            source_path = Some("/sys/fs/cgroup".into());
        }
        let bind = opts.bind || typ == "bind";
        let source = source_path
            .as_ref()
            .map(|s| cstring(s.as_os_str().as_bytes(), "mount source"))
            .transpose()?;
        let target = if bind {
            let src = source_path.as_ref().ok_or_else(|| {
                RunError::InvalidSpec(format!("bind mount {display} has no source"))
            })?;
            let md = std::fs::metadata(src)
                .map_err(|e| RunError::io(format!("bind mount source {}", src.display()), e))?;
            if md.is_dir() {
                Target::Dir
            } else {
                Target::File
            }
        } else {
            Target::Dir
        };
        let data = if opts.data.is_empty() {
            None
        } else {
            Some(cstring(opts.data.join(","), "mount options")?)
        };
        mounts.push(MountOp {
            dest: cstring(&dest_rel, "mount destination")?,
            sysfs: typ == "sysfs",
            recursive_ro: cgroup && opts.flags & libc::MS_RDONLY != 0,
            dev: typ == "tmpfs" && dest_rel == b"dev",
            devpts: typ == "devpts",
            display,
            source,
            fstype: if bind {
                None
            } else {
                Some(cstring(&typ, "mount type")?)
            },
            flags: if bind {
                libc::MS_BIND | if opts.recursive { libc::MS_REC } else { 0 }
            } else {
                opts.flags
            },
            data: if bind { None } else { data },
            remount_flags: if bind { opts.flags } else { 0 },
            propagation: opts.propagation,
            target,
        });
    }

    let to_cstrings = |v: Option<&Vec<String>>, what: &str| -> Result<Vec<CString>, RunError> {
        v.into_iter().flatten().map(|s| cstring(s, what)).collect()
    };
    refuse_unsupported(spec)?;
    let mut sysctls = Vec::new();
    for (k, v) in linux
        .and_then(|l| l.sysctl().as_ref())
        .into_iter()
        .flatten()
    {
        if k.contains('/') || k.contains("..") {
            return Err(RunError::InvalidSpec(format!("sysctl name {k:?}")));
        }
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        sysctls.push((cstring(path, "sysctl")?, cstring(v, "sysctl value")?));
    }
    let masked = to_cstrings(linux.and_then(|l| l.masked_paths().as_ref()), "masked path")?;
    let readonly_paths = to_cstrings(
        linux.and_then(|l| l.readonly_paths().as_ref()),
        "readonly path",
    )?;

    let mut rlimits = Vec::new();
    for r in process.rlimits().iter().flatten() {
        rlimits.push((
            rlimit_resource(r.typ()),
            libc::rlimit {
                rlim_cur: r.soft(),
                rlim_max: r.hard(),
            },
        ));
    }

    let caps = match process.capabilities() {
        None => None,
        Some(c) => Some(CapSets {
            bounding: caps::mask(c.bounding().as_ref())?,
            effective: caps::mask(c.effective().as_ref())?,
            permitted: caps::mask(c.permitted().as_ref())?,
            inheritable: caps::mask(c.inheritable().as_ref())?,
            ambient: caps::mask(c.ambient().as_ref())?,
        }),
    };

    let argv = args
        .iter()
        .map(|a| cstring(a, "argument"))
        .collect::<Result<Vec<_>, _>>()?;
    let envs = env
        .iter()
        .map(|e| cstring(e, "environment variable"))
        .collect::<Result<Vec<_>, _>>()?;
    let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const c_char> = envs.iter().map(|a| a.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    let exec_candidates = exec_candidates(&args[0], &env)
        .into_iter()
        .map(|c| cstring(c, "executable path"))
        .collect::<Result<Vec<_>, _>>()?;

    let cwd = process.cwd();
    if !cwd.is_absolute() {
        return Err(RunError::InvalidSpec(format!(
            "process.cwd {} is not absolute",
            cwd.display()
        )));
    }
    let user = process.user();
    let terminal = process.terminal().unwrap_or(false);
    // The caller's terminal's size, else the spec's (a detached
    // container's pty has no terminal to follow).
    let winsize = match terminal {
        true => host_winsize().or_else(|| {
            process.console_size().map(|c| libc::winsize {
                ws_row: c.height().min(u16::MAX as u64) as u16,
                ws_col: c.width().min(u16::MAX as u64) as u16,
                ws_xpixel: 0,
                ws_ypixel: 0,
            })
        }),
        false => None,
    };

    let has_net_ns = clone_flags & libc::CLONE_NEWNET != 0;
    Ok(Plan {
        clone_flags,
        userns,
        cgroupns,
        hostname: if clone_flags & libc::CLONE_NEWUTS != 0 {
            spec.hostname()
                .as_ref()
                .map(|h| cstring(h, "hostname"))
                .transpose()?
        } else {
            None
        },
        root: inp.root,
        root_propagation,
        mounts,
        masked,
        readonly_paths,
        readonly_root: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        loopback_up: has_net_ns,
        join_netns,
        rlimits,
        cwd: cstring(cwd.as_os_str().as_bytes(), "cwd")?,
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
        caps,
        last_cap: caps::last_cap(),
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        umask: user.umask(),
        argv,
        argv_ptrs,
        env: envs,
        env_ptrs,
        exec_candidates,
        terminal,
        stdio: None,
        winsize,
        wait_for_parent: userns || inp.needs_parent_sync || process.oom_score_adj().is_some(),
        kill_on_parent_death: !inp.detach,
        dev_core: Path::new("/proc/kcore").exists(),
        devices: extra_devices(linux)?,
        sysctls,
        oom_score_adj: process.oom_score_adj(),
        seccomp: linux
            .and_then(|l| l.seccomp().as_ref())
            .map(crate::seccomp::compile)
            .transpose()?,
    })
}

/// A device node to make in the container (`linux.devices`).
#[derive(Debug, Clone)]
pub(crate) struct ExtraDevice {
    /// Below /dev, without a leading slash (`fuse`, `snd/timer`).
    pub name: CString,
    /// The parent directories to make first, below /dev, outermost first.
    pub parents: Vec<CString>,
    /// `S_IFCHR` or `S_IFBLK` with the permission bits.
    pub mode: libc::mode_t,
    pub rdev: libc::dev_t,
    pub uid: u32,
    pub gid: u32,
}

/// The spec's devices, each a character or block node under /dev (the one
/// directory kiln's runtime makes nodes in: a fresh tmpfs).
fn extra_devices(linux: Option<&oci_spec::runtime::Linux>) -> Result<Vec<ExtraDevice>, RunError> {
    use oci_spec::runtime::LinuxDeviceType;
    let mut out = Vec::new();
    for d in linux
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let path = d.path();
        let bad = |why: &str| RunError::InvalidSpec(format!("device {}: {why}", path.display()));
        let rel = path
            .strip_prefix("/dev")
            .map_err(|_| bad("kiln makes device nodes under /dev only"))?;
        let ok = !rel.as_os_str().is_empty()
            && rel
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !ok {
            return Err(bad("not a plain path below /dev"));
        }
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            _ => return Err(bad("only character and block devices")),
        };
        let mut parents = Vec::new();
        let mut acc = std::path::PathBuf::new();
        if let Some(parent) = rel.parent() {
            for c in parent.components() {
                acc.push(c);
                parents.push(cstring(acc.as_os_str().as_bytes(), "device path")?);
            }
        }
        out.push(ExtraDevice {
            name: cstring(rel.as_os_str().as_bytes(), "device path")?,
            parents,
            mode: kind | (d.file_mode().unwrap_or(0o666) & 0o777),
            rdev: libc::makedev(d.major() as u32, d.minor() as u32),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    Ok(out)
}

/// Spec features kiln's runtime does not implement: refusing them beats
/// silently running a container with less isolation than asked for.
fn refuse_unsupported(spec: &Spec) -> Result<(), RunError> {
    let unsupported = |what: &str| Err(RunError::Unsupported(what.to_string()));
    if let Some(l) = spec.linux() {
        if l.intel_rdt().is_some() || l.personality().is_some() || l.time_offsets().is_some() {
            return unsupported("intelRdt, personality and time offsets");
        }
    }
    if let Some(h) = spec.hooks() {
        let any = [
            h.prestart(),
            h.create_runtime(),
            h.create_container(),
            h.start_container(),
            h.poststart(),
            h.poststop(),
        ]
        .iter()
        .any(|v| v.as_ref().is_some_and(|v| !v.is_empty()));
        if any {
            return unsupported("OCI hooks");
        }
    }
    if let Some(p) = spec.process() {
        if p.apparmor_profile().as_ref().is_some_and(|s| !s.is_empty())
            || p.selinux_label().as_ref().is_some_and(|s| !s.is_empty())
        {
            return unsupported("AppArmor profiles and SELinux labels");
        }
        if p.scheduler().is_some() || p.io_priority().is_some() || p.exec_cpu_affinity().is_some() {
            return unsupported("process scheduler, I/O priority and CPU affinity");
        }
    }
    Ok(())
}

fn host_winsize() -> Option<libc::winsize> {
    for fd in [0, 1, 2] {
        // SAFETY: winsize is plain data filled by the ioctl.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes a winsize.
        if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 {
            return Some(ws);
        }
    }
    None
}

#[cfg(test)]
mod tests;
