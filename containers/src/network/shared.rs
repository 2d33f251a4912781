//! `--network container:NAME`: a container joins the network namespace of
//! another, running one (docker's container network mode), and sees its
//! host name and /etc files. The other container's ID is kept in the
//! joiner's `netns-of`, so that a later start joins it wherever it now is.

use std::fs;
use std::path::{Path, PathBuf};

use image_store::Store;

use crate::error::{Error, Result};
use crate::records::Containers;

/// The ID of the container whose namespace this one joins.
pub const SHARED_FILE: &str = "netns-of";

/// The container whose namespace is joined.
pub struct Target {
    pub id: String,
    pub name: String,
    /// What the joiner's spec names as its network namespace.
    pub netns: PathBuf,
    pub hostname: Option<String>,
}

/// The running container `name` and its network namespace: the file a
/// container network keeps (which stays put while it runs), else its
/// init's.
pub fn target(store: &Store, name: &str) -> Result<Target> {
    let containers = Containers::new(store);
    let rec = containers.container(name)?;
    let pid = match rec.pid {
        Some(pid) if rec.is_running() => pid,
        _ => {
            return Err(Error::Invalid(format!(
                "--network container:{name}: container {} is not running",
                rec.name
            )))
        }
    };
    let dir = containers.container_dir(&rec.id);
    let netns = match super::attachment(&dir) {
        Some(a) => a.netns,
        None => PathBuf::from(format!("/proc/{pid}/ns/net")),
    };
    let hostname = fs::read(dir.join(crate::run::SPEC_FILE))
        .ok()
        .and_then(|d| serde_json::from_slice::<runner::Spec>(&d).ok())
        .and_then(|s| s.hostname().clone());
    Ok(Target {
        id: rec.id,
        name: rec.name,
        netns,
        hostname,
    })
}

/// Records in the joiner's directory whom it joins.
pub fn record(dir: &Path, t: &Target) -> Result<()> {
    let p = dir.join(SHARED_FILE);
    fs::write(&p, &t.id).map_err(Error::io(p))
}

fn joined(dir: &Path) -> Option<String> {
    fs::read_to_string(dir.join(SHARED_FILE)).ok()
}

/// The /etc/hosts lines and resolv.conf of the container whose namespace
/// the one in `dir` joins (none when it joins none, or that one has no
/// container network).
pub fn etc(dir: &Path) -> Option<runner::EtcNetwork> {
    let id = joined(dir)?;
    super::attachment(&dir.parent()?.join(id)).and_then(|a| a.runner_etc())
}

/// For a start of the container in `dir`: the namespace of the container
/// it joins, found again (that one may have been restarted since), put in
/// `spec`. Returns whether the spec changed; an error when that container
/// is not running.
pub fn refresh(store: &Store, dir: &Path, spec: &mut runner::Spec) -> Result<bool> {
    use oci_spec::runtime::LinuxNamespaceType;
    let Some(id) = joined(dir) else {
        return Ok(false);
    };
    let t = target(store, &id).map_err(|e| match e {
        Error::NoSuchContainer(_) => Error::Invalid(format!(
            "the container whose network this one joins (--network container:{}) is gone",
            &id[..12.min(id.len())]
        )),
        e => e,
    })?;
    let Some(linux) = spec.linux_mut() else {
        return Ok(false);
    };
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    for n in namespaces.iter_mut() {
        if n.typ() == LinuxNamespaceType::Network {
            n.set_path(Some(t.netns.clone()));
        }
    }
    linux.set_namespaces(Some(namespaces));
    Ok(true)
}
