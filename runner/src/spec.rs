//! Docker-like default runtime specs from plain parameters.

use crate::caps;
use crate::error::RunError;
use oci_spec::runtime::{
    Capabilities, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxMemoryBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, Mount,
    MountBuilder, PosixRlimit, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::path::PathBuf;

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's masked /proc and /sys paths (moby `oci/defaults.go`).
pub const MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Docker's read-only /proc paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// A new network namespace with only loopback, brought up.
    #[default]
    None,
    /// The host's network namespace.
    Host,
}

/// An extra mount requested by the caller (`-v`, `--tmpfs`, RUN --mount).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    Bind {
        source: PathBuf,
        destination: String,
        readonly: bool,
    },
    Tmpfs {
        destination: String,
        options: Vec<String>,
    },
}

/// Resource limits; `None` means unlimited (and no cgroup work at all).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resources {
    pub memory_bytes: Option<i64>,
    /// Memory plus swap (`--memory-swap`); -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    /// The soft limit (`--memory-reservation`).
    pub memory_reservation: Option<i64>,
    pub pids: Option<i64>,
    /// Fractional CPUs as in `docker run --cpus`.
    pub cpus: Option<f64>,
    /// Relative CPU weight (`-c`, `--cpu-shares`; docker's default 1024).
    pub cpu_shares: Option<u64>,
    /// The CPUs the container may run on (`--cpuset-cpus`, e.g. `0-2,4`).
    pub cpuset_cpus: Option<String>,
}

/// What a caller knows from the image config and command line.
#[derive(Debug, Clone, Default)]
pub struct SpecParams {
    pub args: Vec<String>,
    pub env: Vec<String>,
    /// Working directory; empty means `/`.
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// Sets `HOME` when the environment does not (see [`crate::user::resolve`]).
    pub home: Option<String>,
    pub hostname: Option<String>,
    pub terminal: bool,
    pub readonly_rootfs: bool,
    pub network: Network,
    /// With [`Network::None`]: join this network namespace (a bind-mounted
    /// nsfs file a network backend set up) instead of creating an empty one.
    pub netns: Option<PathBuf>,
    pub mounts: Vec<MountSpec>,
    pub resources: Resources,
    pub rlimits: Vec<PosixRlimit>,
    /// Run without kiln's default seccomp profile (`--security-opt
    /// seccomp=unconfined`).
    pub seccomp_unconfined: bool,
    /// Also create a user namespace (the runner adds one anyway when not root).
    pub user_namespace: bool,
    /// Written into `root.path`; the runner overrides it from its options.
    pub root_path: Option<PathBuf>,
}

fn spec_err(e: impl std::fmt::Display) -> RunError {
    RunError::InvalidSpec(e.to_string())
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, RunError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(spec_err)
}

/// Docker's default mounts (without the cgroup mount: see the crate docs).
pub fn default_mounts() -> Result<Vec<Mount>, RunError> {
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
    ])
}

fn cap_set(names: &[&str]) -> Result<Capabilities, RunError> {
    names.iter().map(|n| caps::parse(n)).collect()
}

fn has_var(env: &[String], name: &str) -> bool {
    env.iter()
        .any(|e| e.split_once('=').map(|(k, _)| k) == Some(name))
}

/// Builds a docker-like spec: docker's default capabilities, masked and
/// read-only paths, default mounts, namespaces for the network mode.
pub fn build(p: &SpecParams) -> Result<Spec, RunError> {
    if p.args.is_empty() {
        return Err(RunError::InvalidSpec("no command to run".into()));
    }
    let mut env = Vec::with_capacity(p.env.len() + 3);
    if !has_var(&p.env, "PATH") {
        env.push(format!("PATH={DEFAULT_PATH}"));
    }
    if let Some(h) = &p.hostname {
        if !has_var(&p.env, "HOSTNAME") {
            env.push(format!("HOSTNAME={h}"));
        }
    }
    env.extend(p.env.iter().cloned());
    if !has_var(&env, "HOME") {
        env.push(format!("HOME={}", p.home.as_deref().unwrap_or("/")));
    }
    if p.terminal && !has_var(&env, "TERM") {
        env.push("TERM=xterm".into());
    }

    let defaults = cap_set(&caps::DOCKER_DEFAULT)?;
    // Docker gives non-root users the bounding set only: what they run cannot
    // use a capability unless a file capability grants it.
    let active = if p.uid == 0 {
        defaults.clone()
    } else {
        Capabilities::new()
    };
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(defaults.clone())
        .effective(active.clone())
        .permitted(active)
        .inheritable(Capabilities::new())
        .ambient(Capabilities::new())
        .build()
        .map_err(spec_err)?;

    let mut user = UserBuilder::default().uid(p.uid).gid(p.gid);
    if !p.additional_gids.is_empty() {
        user = user.additional_gids(p.additional_gids.clone());
    }
    let mut process = ProcessBuilder::default()
        .terminal(p.terminal)
        .user(user.build().map_err(spec_err)?)
        .args(p.args.clone())
        .env(env)
        .cwd(if p.cwd.is_empty() {
            "/"
        } else {
            p.cwd.as_str()
        })
        .capabilities(capabilities)
        .no_new_privileges(false);
    if !p.rlimits.is_empty() {
        process = process.rlimits(p.rlimits.clone());
    }

    let mut namespaces = Vec::new();
    // A private cgroup namespace, as docker's default on cgroup v2 and
    // podman's everywhere (docker on v1 shares the host's): the container
    // sees its own cgroup as `/`, not the host's path to it.
    let mut kinds = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ];
    if p.network == Network::None {
        match &p.netns {
            Some(path) => namespaces.push(
                LinuxNamespaceBuilder::default()
                    .typ(LinuxNamespaceType::Network)
                    .path(path)
                    .build()
                    .map_err(spec_err)?,
            ),
            None => kinds.push(LinuxNamespaceType::Network),
        }
    }
    if p.user_namespace {
        kinds.push(LinuxNamespaceType::User);
    }
    for k in kinds {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(k)
                .build()
                .map_err(spec_err)?,
        );
    }

    let mut mounts = default_mounts()?;
    for m in &p.mounts {
        mounts.push(match m {
            MountSpec::Bind {
                source,
                destination,
                readonly,
            } => MountBuilder::default()
                .destination(destination)
                .typ("bind")
                .source(source.clone())
                .options(
                    ["rbind", if *readonly { "ro" } else { "rw" }, "rprivate"]
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>(),
                )
                .build()
                .map_err(spec_err)?,
            MountSpec::Tmpfs {
                destination,
                options,
            } => {
                let mut o = vec![
                    "nosuid".to_string(),
                    "nodev".to_string(),
                    "noexec".to_string(),
                ];
                o.extend(options.iter().cloned());
                MountBuilder::default()
                    .destination(destination)
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(o)
                    .build()
                    .map_err(spec_err)?
            }
        });
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .masked_paths(
            MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .readonly_paths(
            READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        );
    if !p.seccomp_unconfined {
        linux = linux.seccomp(crate::seccomp::default_profile()?);
    }
    let r = &p.resources;
    // Docker's device allow-list, always: kiln's runtime and an external
    // one (runc) both enforce it from here.
    let mut res = LinuxResourcesBuilder::default().devices(crate::devices::default_spec_rules()?);
    if r.memory_bytes.is_some() || r.memory_swap.is_some() || r.memory_reservation.is_some() {
        let mut mem = LinuxMemoryBuilder::default();
        if let Some(m) = r.memory_bytes {
            mem = mem.limit(m);
        }
        if let Some(s) = r.memory_swap {
            mem = mem.swap(s);
        }
        if let Some(s) = r.memory_reservation {
            mem = mem.reservation(s);
        }
        res = res.memory(mem.build().map_err(spec_err)?);
    }
    if let Some(n) = r.pids {
        res = res.pids(
            LinuxPidsBuilder::default()
                .limit(n)
                .build()
                .map_err(spec_err)?,
        );
    }
    let mut cpu = None;
    if let Some(c) = r.cpus {
        if c.is_nan() || c <= 0.0 {
            return Err(RunError::InvalidSpec(format!(
                "cpus must be positive, got {c}"
            )));
        }
        let period = 100_000u64;
        cpu = Some(
            LinuxCpuBuilder::default()
                .period(period)
                .quota((c * period as f64) as i64),
        );
    }
    if let Some(shares) = r.cpu_shares {
        cpu = Some(cpu.unwrap_or_default().shares(shares));
    }
    if let Some(set) = &r.cpuset_cpus {
        cpu = Some(cpu.unwrap_or_default().cpus(set.clone()));
    }
    if let Some(cpu) = cpu {
        res = res.cpu(cpu.build().map_err(spec_err)?);
    }
    linux = linux.resources(res.build().map_err(spec_err)?);

    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(
            RootBuilder::default()
                .path(
                    p.root_path
                        .clone()
                        .unwrap_or_else(|| PathBuf::from("rootfs")),
                )
                .readonly(p.readonly_rootfs)
                .build()
                .map_err(spec_err)?,
        )
        .process(process.build().map_err(spec_err)?)
        .mounts(mounts)
        .linux(linux.build().map_err(spec_err)?);
    if let Some(h) = &p.hostname {
        spec = spec.hostname(h.clone());
    }
    spec.build().map_err(spec_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_defaults() {
        let s = build(&SpecParams {
            args: vec!["sh".into()],
            uid: 1000,
            hostname: Some("box".into()),
            ..Default::default()
        })
        .unwrap();
        let proc_ = s.process().as_ref().unwrap();
        let env = proc_.env().as_ref().unwrap();
        assert!(env.iter().any(|e| e.starts_with("PATH=")));
        assert!(env.contains(&"HOSTNAME=box".to_string()));
        let c = proc_.capabilities().as_ref().unwrap();
        assert_eq!(c.bounding().as_ref().unwrap().len(), 14);
        assert!(
            c.effective().as_ref().unwrap().is_empty(),
            "non-root gets no effective caps"
        );
        let ns = s.linux().as_ref().unwrap().namespaces().as_ref().unwrap();
        assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
        assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::Cgroup));
        // Docker's device list, starting from deny-all, even without limits.
        let devs = s
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.devices().clone())
            .unwrap();
        assert!(!devs[0].allow() && devs[0].typ() == Some(oci_spec::runtime::LinuxDeviceType::A));
        assert_eq!(devs.len(), 12);
        let host = build(&SpecParams {
            args: vec!["sh".into()],
            network: Network::Host,
            ..Default::default()
        })
        .unwrap();
        let ns = host
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap();
        assert!(!ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    }

    #[test]
    fn cpus_become_quota() {
        let s = build(&SpecParams {
            args: vec!["true".into()],
            resources: Resources {
                cpus: Some(1.5),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
        let cpu = s
            .linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap()
            .cpu()
            .as_ref()
            .unwrap()
            .clone();
        assert_eq!(cpu.quota(), Some(150_000));
    }
}
