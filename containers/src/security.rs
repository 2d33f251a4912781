//! What `run`/`create` change in the container's OCI spec beyond the
//! image: capabilities (`--cap-add`, `--cap-drop`), `--security-opt`
//! (no-new-privileges, seccomp=unconfined), `--ulimit`, `--shm-size`,
//! `--init`. Each is parsed here (docker's syntax, one clear error per bad
//! value) and applied to the spec the runner consumes.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{Capabilities, Capability, PosixRlimit, PosixRlimitType, Spec};

use crate::error::{Error, Result};

fn invalid(msg: String) -> Error {
    Error::Invalid(msg)
}

/// The security and process settings asked for, already checked.
#[derive(Debug, Clone, Default)]
pub struct Hardening {
    /// `CAP_…` names; `ALL` for every one.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub no_new_privileges: bool,
    pub seccomp_unconfined: bool,
    /// `--security-opt seccomp=FILE`, read and checked.
    pub seccomp_profile: Option<crate::seccomp::Profile>,
    pub ulimits: Vec<PosixRlimit>,
    /// `/dev/shm`'s size in bytes.
    pub shm_size: Option<i64>,
    /// `--init`: the host's tini, run as the container's pid 1.
    pub init: Option<PathBuf>,
    /// `--device`: host device nodes made in the container, each allowed
    /// by its own cgroup rule.
    pub devices: Vec<Device>,
    /// `--privileged`: every capability, no seccomp filter, no masked or
    /// read-only paths, /sys writable, and every host device (docker's).
    pub privileged: bool,
}

/// Host device nodes `--privileged` does not copy: the container's own
/// (made by the runtime, or per-container instances) and what is not a
/// device of the host's to hand on.
const PRIVILEGED_SKIP: [&str; 11] = [
    "pts", "shm", "mqueue", "fd", "ptmx", "console", "tty", "null", "zero", "full", "core",
];

/// Every character and block device under the host's /dev (docker's
/// `HostDevices` for `--privileged`), but [`PRIVILEGED_SKIP`].
pub fn host_devices() -> Vec<Device> {
    fn walk(dir: &Path, depth: u32, out: &mut Vec<Device>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if depth == 0 && PRIVILEGED_SKIP.contains(&name.as_str()) {
                continue;
            }
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() && depth < 4 {
                walk(&p, depth + 1, out);
            } else if let Some(s) = p.to_str() {
                if let Ok(d) = parse_device(s) {
                    out.push(d);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), 0, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// One `--device HOST[:CONTAINER[:PERMS]]`, checked against the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub path: String,
    pub block: bool,
    pub major: i64,
    pub minor: i64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// `r`, `w`, `m` (docker's default `rwm`).
    pub access: String,
}

/// `--device HOST[:CONTAINER][:PERMS]`: the host path must be a character
/// or block device (symlinks followed, as docker); only that node is made
/// in the container, at CONTAINER (default: the same path, which must be
/// below /dev).
pub fn parse_device(spec: &str) -> Result<Device> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let bad = |why: String| invalid(format!("invalid --device {spec:?}: {why}"));
    let parts: Vec<&str> = spec.split(':').collect();
    let is_perms = |p: &str| !p.is_empty() && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let (host, ctr, access) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_perms(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if is_perms(p) => (*h, *c, *p),
        _ => {
            return Err(bad(
                "want HOST[:CONTAINER][:PERMS] with PERMS of r, w, m".into()
            ))
        }
    };
    let md = std::fs::metadata(host).map_err(|e| bad(format!("{host}: {e}")))?;
    let ft = md.file_type();
    if !ft.is_char_device() && !ft.is_block_device() {
        return Err(bad(format!("{host} is not a device node")));
    }
    if !ctr.starts_with("/dev/") {
        return Err(bad("the path in the container must be below /dev".into()));
    }
    let rdev = md.rdev();
    Ok(Device {
        path: crate::options::clean_abs(ctr),
        block: ft.is_block_device(),
        major: libc::major(rdev) as i64,
        minor: libc::minor(rdev) as i64,
        mode: md.mode() & 0o777,
        uid: md.uid(),
        gid: md.gid(),
        access: access.to_string(),
    })
}

/// Where `--init`'s binary is mounted in the container (docker's path).
pub const INIT_PATH: &str = "/sbin/docker-init";

/// `--init`'s reaper on this host: Debian's statically linked tini (a
/// dynamic binary would need the host's libraries in the container).
pub fn find_init() -> Result<PathBuf> {
    ["/usr/bin/tini-static", "/usr/bin/catatonit", "/usr/libexec/podman/catatonit"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .map(Path::to_path_buf)
        .ok_or_else(|| {
            invalid(
                "--init needs a static init on the host: install Debian's tini (tini-static) or catatonit"
                    .into(),
            )
        })
}

impl Hardening {
    /// The bind mount of `--init`'s binary, among the container's mounts
    /// (so its mount point is made like any other's).
    pub fn init_mount(&self) -> Option<runner::spec::MountSpec> {
        Some(runner::spec::MountSpec::Bind {
            source: self.init.clone()?,
            destination: INIT_PATH.to_string(),
            readonly: true,
        })
    }
}

/// A capability name as docker takes it (`NET_ADMIN`, `cap_net_admin`,
/// `ALL`), as the spec names it (`CAP_NET_ADMIN`).
fn cap_name(flag: &str, name: &str) -> Result<String> {
    let up = name.to_ascii_uppercase();
    if up == "ALL" {
        return Ok(up);
    }
    let full = match up.starts_with("CAP_") {
        true => up,
        false => format!("CAP_{up}"),
    };
    match runner::capability_number(&full) {
        Some(_) => Ok(full),
        None => Err(invalid(format!(
            "invalid {flag} {name:?}: unknown capability"
        ))),
    }
}

/// `--cap-add` / `--cap-drop` values, checked.
pub fn parse_caps(flag: &str, names: &[String]) -> Result<Vec<String>> {
    names.iter().map(|n| cap_name(flag, n)).collect()
}

/// `--security-opt`: `no-new-privileges[=true|false]`,
/// `seccomp=unconfined`, `seccomp=FILE` (docker's profile format); anything
/// else is refused by name.
pub fn parse_security_opt(h: &mut Hardening, opt: &str) -> Result<()> {
    let (k, v) = opt
        .split_once(['=', ':'])
        .map_or((opt, None), |(k, v)| (k, Some(v)));
    match (k, v) {
        ("no-new-privileges", None | Some("true")) => h.no_new_privileges = true,
        ("no-new-privileges", Some("false")) => h.no_new_privileges = false,
        ("seccomp", Some("unconfined")) => h.seccomp_unconfined = true,
        ("seccomp", Some(file)) => {
            h.seccomp_profile = Some(crate::seccomp::load(Path::new(file))?);
        }
        ("apparmor" | "label", _) => {
            return Err(invalid(format!(
                "--security-opt {opt}: kiln has no AppArmor or SELinux support"
            )))
        }
        _ => return Err(invalid(format!("invalid --security-opt {opt:?}"))),
    }
    Ok(())
}

/// `--ulimit NAME=SOFT[:HARD]` (docker's names: nofile, nproc, core, …;
/// -1 for unlimited).
pub fn parse_ulimit(u: &str) -> Result<PosixRlimit> {
    let bad = |why: &str| invalid(format!("invalid --ulimit {u:?}: {why}"));
    let (name, limits) = u
        .split_once('=')
        .ok_or_else(|| bad("want NAME=SOFT[:HARD]"))?;
    let typ = match name {
        "as" => PosixRlimitType::RlimitAs,
        "core" => PosixRlimitType::RlimitCore,
        "cpu" => PosixRlimitType::RlimitCpu,
        "data" => PosixRlimitType::RlimitData,
        "fsize" => PosixRlimitType::RlimitFsize,
        "locks" => PosixRlimitType::RlimitLocks,
        "memlock" => PosixRlimitType::RlimitMemlock,
        "msgqueue" => PosixRlimitType::RlimitMsgqueue,
        "nice" => PosixRlimitType::RlimitNice,
        "nofile" => PosixRlimitType::RlimitNofile,
        "nproc" => PosixRlimitType::RlimitNproc,
        "rss" => PosixRlimitType::RlimitRss,
        "rtprio" => PosixRlimitType::RlimitRtprio,
        "rttime" => PosixRlimitType::RlimitRttime,
        "sigpending" => PosixRlimitType::RlimitSigpending,
        "stack" => PosixRlimitType::RlimitStack,
        _ => return Err(bad("unknown limit name")),
    };
    let num = |s: &str| -> Result<u64> {
        match s.parse::<i64>() {
            Ok(-1) => Ok(u64::MAX),
            Ok(n) if n >= 0 => Ok(n as u64),
            _ => Err(bad("limits are numbers (or -1 for unlimited)")),
        }
    };
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (num(s)?, num(h)?),
        None => (num(limits)?, num(limits)?),
    };
    if soft > hard {
        return Err(bad("the soft limit exceeds the hard limit"));
    }
    oci_spec::runtime::PosixRlimitBuilder::default()
        .typ(typ)
        .soft(soft)
        .hard(hard)
        .build()
        .map_err(|e| bad(&e.to_string()))
}

fn caps_of(names: &[&str]) -> Capabilities {
    names
        .iter()
        .filter_map(|n| serde_json::from_value::<Capability>(n.to_string().into()).ok())
        .collect()
}

impl Hardening {
    /// Applies the settings to `spec` (whose /dev/shm mount and process
    /// come from [`runner::spec::build`]).
    pub fn apply(&self, spec: &mut Spec) -> Result<()> {
        let mut process = spec.process().clone().expect("a built spec has a process");
        if self.privileged {
            let all = caps_of(&runner::bounding_capabilities());
            let mut caps = process.capabilities().clone().unwrap_or_default();
            caps.set_bounding(Some(all.clone()))
                .set_effective(Some(all.clone()))
                .set_permitted(Some(all));
            process.set_capabilities(Some(caps));
        }
        if !self.cap_add.is_empty() || !self.cap_drop.is_empty() {
            let all = runner::bounding_capabilities();
            let mut caps = process.capabilities().clone().unwrap_or_default();
            let change = |set: Option<Capabilities>| -> Capabilities {
                let mut set = set.unwrap_or_default();
                // docker: drops first, then adds; ALL means every capability.
                if self.cap_drop.iter().any(|c| c == "ALL") {
                    set.clear();
                }
                for c in caps_of(&self.cap_drop.iter().map(String::as_str).collect::<Vec<_>>()) {
                    set.remove(&c);
                }
                if self.cap_add.iter().any(|c| c == "ALL") {
                    set.extend(caps_of(&all));
                }
                set.extend(caps_of(
                    &self.cap_add.iter().map(String::as_str).collect::<Vec<_>>(),
                ));
                set
            };
            // A non-root user gets the bounding set only (as docker's).
            let root = process.user().uid() == 0;
            caps.set_bounding(Some(change(caps.bounding().clone())));
            if root {
                caps.set_effective(Some(change(caps.effective().clone())));
                caps.set_permitted(Some(change(caps.permitted().clone())));
            }
            process.set_capabilities(Some(caps));
        }
        if self.no_new_privileges {
            process.set_no_new_privileges(Some(true));
        }
        if !self.ulimits.is_empty() {
            let mut rl = process.rlimits().clone().unwrap_or_default();
            for u in &self.ulimits {
                rl.retain(|r| r.typ() != u.typ());
                rl.push(*u);
            }
            process.set_rlimits(Some(rl));
        }
        if self.init.is_some() {
            // The binary itself is bind-mounted by `init_mount`.
            let mut args = vec![INIT_PATH.to_string(), "--".to_string()];
            args.extend(process.args().clone().unwrap_or_default());
            process.set_args(Some(args));
        }
        if let Some(profile) = &self.seccomp_profile {
            // Rules may depend on the capabilities the container ends with.
            let caps: Vec<String> = process
                .capabilities()
                .as_ref()
                .and_then(|c| c.bounding().clone())
                .into_iter()
                .flatten()
                .filter_map(|c| serde_json::to_value(c).ok()?.as_str().map(String::from))
                .collect();
            let mut linux = spec.linux().clone().unwrap_or_default();
            linux.set_seccomp(Some(profile.oci(&caps)?));
            spec.set_linux(Some(linux));
        }
        spec.set_process(Some(process));
        if self.privileged {
            self.unconfine(spec)?;
        }
        if !self.devices.is_empty() {
            self.add_devices(spec)?;
        }
        if let Some(size) = self.shm_size {
            set_shm_size(spec, size);
        }
        Ok(())
    }
}

/// `--shm-size`: the size of the spec's /dev/shm mount (also RUN steps').
pub fn set_shm_size(spec: &mut Spec, size: i64) {
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    for m in mounts.iter_mut() {
        if m.destination() == Path::new("/dev/shm") {
            let mut o = m.options().clone().unwrap_or_default();
            o.retain(|o| !o.starts_with("size="));
            o.push(format!("size={size}"));
            m.set_options(Some(o));
        }
    }
    spec.set_mounts(Some(mounts));
}

impl Hardening {
    /// `--privileged` beyond capabilities: no masked or read-only paths,
    /// /sys writable, every device allowed (the host's are added as
    /// `--device` ones by the caller, [`host_devices`]).
    fn unconfine(&self, spec: &mut Spec) -> Result<()> {
        use oci_spec::runtime::LinuxDeviceCgroupBuilder;
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux
            .set_masked_paths(Some(Vec::new()))
            .set_readonly_paths(Some(Vec::new()))
            .set_seccomp(None);
        let mut resources = linux.resources().clone().unwrap_or_default();
        let all = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(oci_spec::runtime::LinuxDeviceType::A)
            .access("rwm")
            .build()
            .map_err(|e| invalid(format!("--privileged: {e}")))?;
        resources.set_devices(Some(vec![all]));
        linux.set_resources(Some(resources));
        spec.set_linux(Some(linux));
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for m in mounts.iter_mut() {
            if m.destination() == Path::new("/sys") {
                let o = m.options().clone().unwrap_or_default();
                m.set_options(Some(o.into_iter().filter(|o| o != "ro").collect()));
            }
        }
        spec.set_mounts(Some(mounts));
        Ok(())
    }

    /// `--device`: each node in `linux.devices` and an allow rule for it
    /// after the default list in `linux.resources.devices`.
    fn add_devices(&self, spec: &mut Spec) -> Result<()> {
        use oci_spec::runtime::{LinuxDeviceBuilder, LinuxDeviceCgroupBuilder, LinuxDeviceType};
        let err = |e: oci_spec::OciSpecError| invalid(format!("--device: {e}"));
        let mut linux = spec.linux().clone().unwrap_or_default();
        let mut nodes = linux.devices().clone().unwrap_or_default();
        let mut resources = linux.resources().clone().unwrap_or_default();
        let mut rules = resources.devices().clone().unwrap_or_default();
        for d in &self.devices {
            let typ = match d.block {
                true => LinuxDeviceType::B,
                false => LinuxDeviceType::C,
            };
            nodes.push(
                LinuxDeviceBuilder::default()
                    .path(&d.path)
                    .typ(typ)
                    .major(d.major)
                    .minor(d.minor)
                    .file_mode(d.mode)
                    .uid(d.uid)
                    .gid(d.gid)
                    .build()
                    .map_err(err)?,
            );
            rules.push(
                LinuxDeviceCgroupBuilder::default()
                    .allow(true)
                    .typ(typ)
                    .major(d.major)
                    .minor(d.minor)
                    .access(d.access.clone())
                    .build()
                    .map_err(err)?,
            );
        }
        resources.set_devices(Some(rules));
        linux
            .set_devices(Some(nodes))
            .set_resources(Some(resources));
        spec.set_linux(Some(linux));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags() {
        let r = parse_ulimit("nofile=1024:2048").unwrap();
        assert_eq!((r.soft(), r.hard()), (1024, 2048));
        assert_eq!(parse_ulimit("nproc=-1").unwrap().soft(), u64::MAX);
        assert!(parse_ulimit("nofile=10:5").is_err());
        assert!(parse_ulimit("bogus=1").is_err());
        assert_eq!(
            parse_caps("--cap-add", &["net_admin".into()]).unwrap(),
            ["CAP_NET_ADMIN"]
        );
        assert!(parse_caps("--cap-add", &["NOPE".into()]).is_err());
        let mut h = Hardening::default();
        parse_security_opt(&mut h, "no-new-privileges").unwrap();
        parse_security_opt(&mut h, "seccomp=unconfined").unwrap();
        assert!(h.no_new_privileges && h.seccomp_unconfined);
        assert!(parse_security_opt(&mut h, "seccomp=/nonexistent.json").is_err());
    }
}
