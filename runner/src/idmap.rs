//! User-namespace id maps: written directly when the kernel allows it,
//! through newuidmap/newgidmap (setuid helpers from `uidmap`) for rootless
//! ranges taken from /etc/subuid and /etc/subgid.

use crate::error::RunError;
use std::fs;
use std::process::Command;

/// One line of a uid_map/gid_map: container id, host id, count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMap {
    pub container: u32,
    pub host: u32,
    pub size: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdMaps {
    pub uid: Vec<IdMap>,
    pub gid: Vec<IdMap>,
}

/// The first range for `name` or `id` in a subuid/subgid file.
fn sub_range(path: &str, name: Option<&str>, id: u32) -> Option<(u32, u32)> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if Some(who) == name || who == id.to_string() {
            Some((start.parse().ok()?, count.parse().ok()?))
        } else {
            None
        }
    })
}

fn user_name(uid: u32) -> Option<String> {
    let text = fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
    })
}

/// For a non-root caller: container root is the caller, container ids from 1
/// up come from the caller's subordinate ranges when it has any.
pub fn rootless_default() -> IdMaps {
    // SAFETY: plain id getters.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let name = user_name(uid);
    let mut maps = IdMaps {
        uid: vec![IdMap {
            container: 0,
            host: uid,
            size: 1,
        }],
        gid: vec![IdMap {
            container: 0,
            host: gid,
            size: 1,
        }],
    };
    if let Some((start, count)) = sub_range("/etc/subuid", name.as_deref(), uid) {
        maps.uid.push(IdMap {
            container: 1,
            host: start,
            size: count,
        });
    }
    if let Some((start, count)) = sub_range("/etc/subgid", name.as_deref(), uid) {
        maps.gid.push(IdMap {
            container: 1,
            host: start,
            size: count,
        });
    }
    maps
}

fn only_self(maps: &[IdMap], own: u32) -> bool {
    maps.len() == 1 && maps[0].host == own && maps[0].size == 1
}

fn format(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container, m.host, m.size))
        .collect()
}

fn helper(tool: &str, pid: libc::pid_t, maps: &[IdMap]) -> Result<(), RunError> {
    let mut cmd = Command::new(tool);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container.to_string(),
            m.host.to_string(),
            m.size.to_string(),
        ]);
    }
    let out = cmd
        .output()
        .map_err(|e| RunError::io(format!("{tool} (install the uidmap package)"), e))?;
    if !out.status.success() {
        return Err(RunError::Setup {
            step: format!("{tool} {pid}"),
            source: std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
        });
    }
    Ok(())
}

fn write_map(pid: libc::pid_t, file: &str, maps: &[IdMap]) -> Result<(), RunError> {
    let path = format!("/proc/{pid}/{file}");
    fs::write(&path, format(maps)).map_err(|e| RunError::io(format!("write {path}"), e))
}

/// Writes the maps for the child `pid`, which waits in its new user namespace.
pub(crate) fn apply(pid: libc::pid_t, maps: &IdMaps) -> Result<(), RunError> {
    // SAFETY: plain id getters.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if euid == 0 {
        write_map(pid, "uid_map", &maps.uid)?;
        return write_map(pid, "gid_map", &maps.gid);
    }
    if only_self(&maps.uid, euid) {
        write_map(pid, "uid_map", &maps.uid)?;
    } else {
        helper("newuidmap", pid, &maps.uid)?;
    }
    if only_self(&maps.gid, egid) {
        // An unprivileged process may map its own gid only after giving up setgroups.
        fs::write(format!("/proc/{pid}/setgroups"), "deny")
            .map_err(|e| RunError::io("write setgroups", e))?;
        write_map(pid, "gid_map", &maps.gid)
    } else {
        helper("newgidmap", pid, &maps.gid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_lines() {
        let m = [
            IdMap {
                container: 0,
                host: 1000,
                size: 1,
            },
            IdMap {
                container: 1,
                host: 100000,
                size: 65536,
            },
        ];
        assert_eq!(format(&m), "0 1000 1\n1 100000 65536\n");
        assert!(only_self(&m[..1], 1000));
        assert!(!only_self(&m, 1000));
    }
}
