//! `--security-opt seccomp=FILE`: a seccomp profile in docker's format
//! (moby's `profiles/seccomp` JSON) turned into the OCI form kiln's runtime
//! compiles. Rules whose `includes`/`excludes` (capabilities,
//! architectures, minimum kernel) do not match this container on this host
//! are left out, as moby does; `archMap` is not needed (the filter is built
//! for the host's architecture).

use std::path::Path;

use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompBuilder, LinuxSyscall,
    LinuxSyscallBuilder,
};
use serde::Deserialize;

use crate::error::{Error, Result};

/// A profile as docker's JSON has it (the parts that bear on the filter).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    default_action: LinuxSeccompAction,
    #[serde(default)]
    default_errno_ret: Option<u32>,
    #[serde(default)]
    syscalls: Vec<Rule>,
    #[serde(default)]
    listener_path: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    /// Older profiles name one syscall per rule.
    #[serde(default)]
    name: Option<String>,
    action: LinuxSeccompAction,
    #[serde(default)]
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Option<Vec<LinuxSeccompArg>>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    #[serde(default)]
    min_kernel: Option<String>,
}

/// Reads and checks the profile at `path`.
pub fn load(path: &Path) -> Result<Profile> {
    let bad =
        |why: String| Error::Invalid(format!("--security-opt seccomp={}: {why}", path.display()));
    let data = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let p: Profile =
        serde_json::from_slice(&data).map_err(|e| bad(format!("not a seccomp profile: {e}")))?;
    if p.listener_path.is_some() {
        return Err(bad("notify listeners are not supported".into()));
    }
    let unsupported = |a: &LinuxSeccompAction| {
        matches!(
            a,
            LinuxSeccompAction::ScmpActNotify | LinuxSeccompAction::ScmpActTrace
        )
    };
    if unsupported(&p.default_action) || p.syscalls.iter().any(|r| unsupported(&r.action)) {
        return Err(bad(
            "SCMP_ACT_NOTIFY and SCMP_ACT_TRACE are not supported".into()
        ));
    }
    Ok(p)
}

/// Go's name for the host's architecture, as profiles name it.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// The running kernel's version as (major, minor).
fn kernel() -> Option<(u32, u32)> {
    version(
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()?
            .trim(),
    )
}

fn version(s: &str) -> Option<(u32, u32)> {
    let mut it = s.split(['.', '-']);
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

impl Profile {
    /// The OCI profile for a container holding capabilities `caps`
    /// (`CAP_…` names).
    pub fn oci(&self, caps: &[String]) -> Result<LinuxSeccomp> {
        let arch = host_arch();
        let kernel = kernel();
        let err = |e: oci_spec::OciSpecError| Error::Invalid(format!("seccomp profile: {e}"));
        let has = |c: &String| caps.iter().any(|x| x.eq_ignore_ascii_case(c));
        let new_enough = |min: &Option<String>| match (min.as_deref().and_then(version), kernel) {
            (Some(want), Some(have)) => have >= want,
            _ => true,
        };
        let mut syscalls: Vec<LinuxSyscall> = Vec::new();
        for r in &self.syscalls {
            let inc = &r.includes;
            let exc = &r.excludes;
            let applies = inc.caps.iter().all(has)
                && (inc.arches.is_empty() || inc.arches.iter().any(|a| a == arch))
                && new_enough(&inc.min_kernel)
                && !exc.caps.iter().any(has)
                && !exc.arches.iter().any(|a| a == arch)
                && !(exc.min_kernel.is_some() && new_enough(&exc.min_kernel));
            if !applies {
                continue;
            }
            let mut names = r.names.clone();
            names.extend(r.name.clone());
            if names.is_empty() {
                continue;
            }
            let mut b = LinuxSyscallBuilder::default().names(names).action(r.action);
            if let Some(e) = r.errno_ret {
                b = b.errno_ret(e);
            }
            if let Some(a) = &r.args {
                b = b.args(a.clone());
            }
            syscalls.push(b.build().map_err(err)?);
        }
        let mut b = LinuxSeccompBuilder::default()
            .default_action(self.default_action)
            .syscalls(syscalls);
        if let Some(e) = self.default_errno_ret {
            b = b.default_errno_ret(e);
        }
        b.build().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_follow_caps_and_arches() {
        let p: Profile = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[],"syscalls":[
                {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                {"names":["chmod"],"action":"SCMP_ACT_ERRNO","excludes":{"caps":["CAP_FOWNER"]}},
                {"names":["mount"],"action":"SCMP_ACT_ERRNO","includes":{"arches":["s390x"]}},
                {"name":"rmdir","action":"SCMP_ACT_ERRNO"}
            ]}"#,
        )
        .unwrap();
        let names = |caps: &[String]| -> Vec<String> {
            let s = p.oci(caps).unwrap();
            s.syscalls()
                .iter()
                .flatten()
                .flat_map(|r| r.names().clone())
                .collect()
        };
        assert_eq!(names(&["CAP_FOWNER".into()]), ["mkdir", "rmdir"]);
        assert_eq!(names(&[]), ["mkdir", "chmod", "rmdir"]);
        assert_eq!(version("6.1.0-18-amd64"), Some((6, 1)));
    }
}
