//! Capability names ↔ kernel bit numbers, and docker's default set.

use crate::error::RunError;
use oci_spec::runtime::{Capabilities, Capability};

/// Kernel numbering from linux/capability.h.
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Kernel bit number of a capability name such as `CAP_CHOWN` or `chown`.
pub fn number(name: &str) -> Option<u32> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    NAMES.iter().position(|n| *n == full).map(|i| i as u32)
}

pub(crate) fn parse(name: &str) -> Result<Capability, RunError> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| RunError::InvalidSpec(format!("unknown capability {name}")))
}

fn cap_number(c: &Capability) -> Result<u32, RunError> {
    let name = serde_json::to_value(c)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    number(&name).ok_or_else(|| RunError::InvalidSpec(format!("capability {name} unknown to kiln")))
}

pub(crate) fn mask(set: Option<&Capabilities>) -> Result<u64, RunError> {
    let mut m = 0u64;
    for c in set.into_iter().flatten() {
        m |= 1 << cap_number(c)?;
    }
    Ok(m)
}

/// The capabilities in this process's bounding set: all it can hand on
/// (`exec --privileged`).
pub fn bounding() -> Vec<&'static str> {
    (0..=last_cap().min(NAMES.len() as u32 - 1))
        // SAFETY: prctl with integer arguments.
        .filter(
            |c| unsafe { libc::prctl(libc::PR_CAPBSET_READ, *c as libc::c_ulong, 0, 0, 0) } == 1,
        )
        .map(|c| NAMES[c as usize])
        .collect()
}

/// Highest capability the running kernel knows; bounding-set drops go up to it.
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_the_kernel() {
        assert_eq!(number("CAP_CHOWN"), Some(0));
        assert_eq!(number("sys_admin"), Some(21));
        assert_eq!(number("CAP_CHECKPOINT_RESTORE"), Some(40));
        assert_eq!(number("CAP_NOPE"), None);
    }

    #[test]
    fn spec_capabilities_map_to_bits() {
        let set: Capabilities = DOCKER_DEFAULT.iter().map(|n| parse(n).unwrap()).collect();
        let m = mask(Some(&set)).unwrap();
        assert_eq!(m.count_ones(), 14);
        assert!(m & (1 << 21) == 0, "SYS_ADMIN is not a default");
    }
}
