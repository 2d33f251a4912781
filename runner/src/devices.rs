//! Which device nodes a container may use: the OCI `linux.resources.devices`
//! rules, docker's default list, and their two kernel forms (cgroup v1
//! `devices.allow`/`devices.deny` lines, and a cgroup v2 device program,
//! see `bpf.rs`).
//!
//! Without these rules a container root with CAP_MKNOD could create a node
//! for any host disk and read it: the rootfs is not `nodev` (docker's is not
//! either; images may carry device nodes), so the cgroup is the only fence.

use crate::error::RunError;
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

/// Access bits, as the kernel's device programs see them.
pub(crate) const MKNOD: u8 = 1;
pub(crate) const READ: u8 = 2;
pub(crate) const WRITE: u8 = 4;
pub(crate) const ALL_ACCESS: u8 = MKNOD | READ | WRITE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    All,
    Char,
    Block,
}

/// One rule; `None` for major/minor is the `*` wildcard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rule {
    pub allow: bool,
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u8,
}

/// Docker's default: everything denied, then mknod of any node (the node
/// alone gives nothing), and read/write/mknod of null, zero, full, random,
/// urandom, tty, console, ptmx and the pty slaves. This is moby's
/// `DefaultLinuxSpec` list plus the rules runc appends to every container,
/// without runc's tun/tap (10:200); fuse (10:229) stays denied, as in moby.
const DEFAULT: [(char, i64, i64, &str); 12] = [
    ('a', -1, -1, "rwm"),
    ('c', -1, -1, "m"),
    ('b', -1, -1, "m"),
    ('c', 1, 3, "rwm"),
    ('c', 1, 5, "rwm"),
    ('c', 1, 7, "rwm"),
    ('c', 1, 8, "rwm"),
    ('c', 1, 9, "rwm"),
    ('c', 5, 0, "rwm"),
    ('c', 5, 1, "rwm"),
    ('c', 5, 2, "rwm"),
    ('c', 136, -1, "rwm"),
];

/// The default rules in spec form, for `linux.resources.devices` (so an
/// external runtime enforces the same list).
pub(crate) fn default_spec_rules() -> Result<Vec<LinuxDeviceCgroup>, RunError> {
    DEFAULT
        .iter()
        .enumerate()
        .map(|(i, (t, major, minor, access))| {
            let mut b = LinuxDeviceCgroupBuilder::default()
                // The first entry is the deny-all.
                .allow(i != 0)
                .access(access.to_string());
            b = b.typ(match t {
                'c' => LinuxDeviceType::C,
                'b' => LinuxDeviceType::B,
                _ => LinuxDeviceType::A,
            });
            if *major >= 0 {
                b = b.major(*major);
            }
            if *minor >= 0 {
                b = b.minor(*minor);
            }
            b.build()
                .map_err(|e| RunError::InvalidSpec(format!("device rule: {e}")))
        })
        .collect()
}

fn number(v: Option<i64>, what: &str) -> Result<Option<u32>, RunError> {
    match v {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        // The kernel's numbers are far smaller (12-bit majors, 20-bit
        // minors); the device program compares them as signed immediates.
        Some(n) if n > i64::from(i32::MAX) => Err(RunError::InvalidSpec(format!(
            "device rule {what} {n} is out of range"
        ))),
        Some(n) => Ok(Some(n as u32)),
    }
}

/// The spec's rules (docker's default when the spec has none, so a spec
/// without the field is never left unconfined).
pub(crate) fn rules_from_spec(
    spec_rules: Option<&[LinuxDeviceCgroup]>,
) -> Result<Vec<Rule>, RunError> {
    let owned;
    let list = match spec_rules {
        Some(r) if !r.is_empty() => r,
        _ => {
            owned = default_spec_rules()?;
            &owned[..]
        }
    };
    let mut out = Vec::with_capacity(list.len());
    for r in list {
        let kind = match r.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => Kind::All,
            LinuxDeviceType::C | LinuxDeviceType::U => Kind::Char,
            LinuxDeviceType::B => Kind::Block,
            LinuxDeviceType::P => {
                return Err(RunError::InvalidSpec(
                    "device rules for FIFOs ('p') do not exist in the kernel".into(),
                ))
            }
        };
        let mut access = 0;
        for c in r.access().as_deref().unwrap_or("rwm").chars() {
            access |= match c {
                'r' => READ,
                'w' => WRITE,
                'm' => MKNOD,
                _ => {
                    return Err(RunError::InvalidSpec(format!(
                        "device rule access {:?}: only r, w and m are allowed",
                        r.access().as_deref().unwrap_or("")
                    )))
                }
            };
        }
        if access == 0 {
            continue;
        }
        out.push(Rule {
            allow: r.allow(),
            kind,
            major: number(r.major(), "major")?,
            minor: number(r.minor(), "minor")?,
            access,
        });
    }
    Ok(out)
}

impl Rule {
    /// Every access to every device.
    pub(crate) fn is_everything(&self) -> bool {
        self.kind == Kind::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ALL_ACCESS
    }

    /// The cgroup v1 lines, e.g. `c 1:3 rwm`. The kernel reads a leading
    /// `a` as "every access to every device" whatever follows, so a rule
    /// for both types that is narrower than that becomes a `c` and a `b`
    /// line.
    pub(crate) fn v1_lines(&self) -> Vec<String> {
        if self.is_everything() {
            return vec!["a".to_string()];
        }
        let n = |v: Option<u32>| v.map_or("*".to_string(), |n| n.to_string());
        let mut acc = String::new();
        for (bit, c) in [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')] {
            if self.access & bit != 0 {
                acc.push(c);
            }
        }
        let kinds: &[char] = match self.kind {
            Kind::All => &['c', 'b'],
            Kind::Char => &['c'],
            Kind::Block => &['b'],
        };
        kinds
            .iter()
            .map(|k| format!("{k} {}:{} {acc}", n(self.major), n(self.minor)))
            .collect()
    }
}

/// The v1 writes, in order: (file, line). Always starts from deny-all so
/// the container gets nothing of its parent's allowances by default.
pub(crate) fn v1_writes(rules: &[Rule]) -> Vec<(&'static str, String)> {
    let mut w = vec![("devices.deny", "a".to_string())];
    for (i, r) in rules.iter().enumerate() {
        if i == 0 && r.is_everything() && !r.allow {
            continue;
        }
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        for line in r.v1_lines() {
            w.push((file, line));
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_round_trip_to_v1_lines() {
        let rules = rules_from_spec(None).unwrap();
        let lines: Vec<String> = v1_writes(&rules)
            .iter()
            .map(|(f, l)| format!("{f} {l}"))
            .collect();
        assert_eq!(
            lines,
            [
                "devices.deny a",
                "devices.allow c *:* m",
                "devices.allow b *:* m",
                "devices.allow c 1:3 rwm",
                "devices.allow c 1:5 rwm",
                "devices.allow c 1:7 rwm",
                "devices.allow c 1:8 rwm",
                "devices.allow c 1:9 rwm",
                "devices.allow c 5:0 rwm",
                "devices.allow c 5:1 rwm",
                "devices.allow c 5:2 rwm",
                "devices.allow c 136:* rwm",
            ]
        );
    }

    #[test]
    fn narrow_rules_for_both_types_split() {
        let r = Rule {
            allow: true,
            kind: Kind::All,
            major: None,
            minor: None,
            access: MKNOD,
        };
        assert_eq!(r.v1_lines(), ["c *:* m", "b *:* m"]);
        let all = Rule {
            access: ALL_ACCESS,
            ..r
        };
        assert_eq!(all.v1_lines(), ["a"]);
    }

    #[test]
    fn bad_rules_are_refused() {
        let r = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .access("rx")
            .build()
            .unwrap();
        assert!(rules_from_spec(Some(&[r])).is_err());
        let big = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1i64 << 32)
            .access("r")
            .build()
            .unwrap();
        assert!(rules_from_spec(Some(&[big])).is_err());
    }
}
