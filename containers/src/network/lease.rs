//! Host-wide claims on addresses. A network's allocations live in its
//! store ([`super::attach`]), but the bridge a network names (`kiln0`) is
//! the host's: two stores (two `--root`s, or tests side by side) put their
//! containers on the same one. So each address also gets a lease file,
//! `/run/kiln/leases/<bridge>/<ip>`, created exclusively, naming its
//! holder (the container's directory) and, once known, what netavark was
//! given and the namespace. A lease whose holder directory is gone (a
//! store deleted while a killed kiln's container was still attached) is
//! stale: the next attach to that bridge tears down what it names and
//! frees the address.

use std::fs;
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::netavark::{self, Options};
use super::netns;
use super::ports::PortMapping;

/// Where leases live: a tmpfs, as the namespaces they go with, so that a
/// reboot clears both.
const LEASE_DIR: &str = "/run/kiln/leases";

/// What a lease file holds.
#[derive(Serialize, Deserialize)]
struct Lease {
    holder: PathBuf,
    /// Set once the holder is set up: what to tear down if it goes away.
    #[serde(default)]
    setup: Option<Setup>,
}

#[derive(Serialize, Deserialize)]
pub struct Setup {
    pub netns: PathBuf,
    pub config: PathBuf,
    pub options: Options,
}

fn path(bridge: &str, ip: Ipv4Addr) -> PathBuf {
    Path::new(LEASE_DIR).join(bridge).join(ip.to_string())
}

/// The holder's path as any process can read it (a store given as a
/// relative `--root` included).
fn absolute(holder: &Path) -> PathBuf {
    fs::canonicalize(holder).unwrap_or_else(|_| holder.to_path_buf())
}

/// `p` with `suffix` appended. (Not `with_extension`: a lease is named by
/// its address, whose last `.N` would be replaced, so that 10.77.0.2 and
/// 10.77.0.3 shared one temp and one stale name.)
fn suffixed(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn read(p: &Path) -> Option<Lease> {
    serde_json::from_slice(&fs::read(p).ok()?).ok()
}

fn write_new(p: &Path, lease: &Lease) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(p)?;
    f.write_all(&serde_json::to_vec(lease).expect("plain data"))
}

/// Tears down what a stale lease names, then removes it. The lease is
/// renamed away first, so that of racing cleaners one does the work.
fn clean_stale(p: &Path) {
    let claimed = suffixed(p, ".stale");
    if fs::rename(p, &claimed).is_err() {
        return;
    }
    if let Some(Lease { setup: Some(s), .. }) = read(&claimed) {
        if s.netns.exists() {
            let _ = netavark::teardown(&s.config, &s.netns, &s.options);
        }
        let _ = netns::remove(&s.netns);
    }
    let _ = fs::remove_file(&claimed);
}

/// Every lease on the host: `(bridge, address, file, holder)`.
pub(super) fn all_leases() -> Vec<(String, Ipv4Addr, PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for b in fs::read_dir(LEASE_DIR).into_iter().flatten().flatten() {
        let bridge = b.file_name().to_string_lossy().into_owned();
        for e in fs::read_dir(b.path()).into_iter().flatten().flatten() {
            let p = e.path();
            let Ok(ip) = e.file_name().to_string_lossy().parse::<Ipv4Addr>() else {
                continue;
            };
            if let Some(l) = read(&p) {
                out.push((bridge.clone(), ip, p, l.holder));
            }
        }
    }
    out
}

/// Whether `bridge` has any lease (a container of some store on it).
pub(super) fn bridge_in_use(bridge: &str) -> bool {
    fs::read_dir(Path::new(LEASE_DIR).join(bridge))
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().parse::<Ipv4Addr>().is_ok())
}

/// Tears down what the lease in `p` names and removes it: for a holder
/// that is gone, or one whose network state (read under its store's
/// `networks.lock`) no longer names anything. True when it is gone.
pub(super) fn clean(p: &Path) -> bool {
    clean_stale(p);
    !p.exists()
}

/// Every claimed host port: `(file, mapping key, holder)`, the key as
/// `<proto>-<port>` and the address.
pub(super) fn all_port_claims() -> Vec<(PathBuf, String, String, PathBuf)> {
    let mut out = Vec::new();
    for d in fs::read_dir(PORT_DIR).into_iter().flatten().flatten() {
        let key = d.file_name().to_string_lossy().into_owned();
        for e in fs::read_dir(d.path()).into_iter().flatten().flatten() {
            let holder = PathBuf::from(
                String::from_utf8_lossy(&fs::read(e.path()).unwrap_or_default()).into_owned(),
            );
            let ip = e.file_name().to_string_lossy().into_owned();
            out.push((e.path(), key.clone(), ip, holder));
        }
    }
    out
}

/// The name a port claim of `m` has (`<proto>-<port>`, address).
pub(super) fn port_claim_key(m: &PortMapping) -> (String, String) {
    (format!("{}-{}", m.protocol, m.host_port), port_ip(m))
}

/// Cleans every stale lease of `bridge` (see the module comment).
pub fn sweep(bridge: &str) {
    let dir = Path::new(LEASE_DIR).join(bridge);
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "stale" || x == "tmp") {
            continue;
        }
        if read(&p).is_some_and(|l| !l.holder.exists()) {
            clean_stale(&p);
        }
    }
}

/// Claims `ip` on `bridge` for the container in `holder`: false when
/// another holder has it.
pub fn claim(bridge: &str, ip: Ipv4Addr, holder: &Path) -> io::Result<bool> {
    let holder = absolute(holder);
    let p = path(bridge, ip);
    fs::create_dir_all(p.parent().expect("a lease has a directory"))?;
    let lease = Lease {
        holder: holder.clone(),
        setup: None,
    };
    match write_new(&p, &lease) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Ok(read(&p).is_some_and(|l| l.holder == holder))
        }
        Err(e) => Err(e),
    }
}

/// Adds what `holder` was set up with to its lease.
pub fn record(bridge: &str, ip: Ipv4Addr, holder: &Path, setup: Setup) -> io::Result<()> {
    let holder = absolute(holder);
    let p = path(bridge, ip);
    let tmp = suffixed(&p, ".tmp");
    let data = serde_json::to_vec(&Lease {
        holder,
        setup: Some(setup),
    })
    .expect("plain data");
    fs::write(&tmp, data)?;
    fs::rename(&tmp, &p)
}

/// [`record`], its failure as kiln's error.
pub fn record_setup(bridge: &str, ip: Ipv4Addr, holder: &Path, setup: Setup) -> crate::Result<()> {
    record(bridge, ip, holder, setup)
        .map_err(|e| crate::Error::Invalid(format!("recording the lease of {ip}: {e}")))
}

/// Releases `holder`'s lease on `ip` (one held by another is left).
pub fn release(bridge: &str, ip: Ipv4Addr, holder: &Path) {
    let holder = absolute(holder);
    let p = path(bridge, ip);
    if read(&p).is_some_and(|l| l.holder == holder) {
        let _ = fs::remove_file(&p);
    }
}

/// Where published host ports are claimed host-wide:
/// `/run/kiln/ports/<proto>-<port>/<host address>`, each naming its holder
/// (netavark's port forwards bind no socket, so another store's would not
/// show as taken otherwise).
const PORT_DIR: &str = "/run/kiln/ports";

fn port_dir(m: &PortMapping) -> PathBuf {
    Path::new(PORT_DIR).join(format!("{}-{}", m.protocol, m.host_port))
}

fn port_ip(m: &PortMapping) -> String {
    match m.host_ip.as_str() {
        "" => "0.0.0.0".to_string(),
        ip => ip.to_string(),
    }
}

/// Claims the host ports of `ports` for `holder`, under netavark's host
/// lock. A port another live holder has is refused naming it; stale
/// claims (their holder's directory gone) are dropped.
pub fn claim_ports(ports: &[PortMapping], holder: &Path) -> crate::Result<()> {
    let _host = netavark::host_lock()?;
    let holder = absolute(holder);
    let mut done: Vec<&PortMapping> = Vec::new();
    let fail = |done: &[&PortMapping], msg: String| {
        for m in done {
            let _ = fs::remove_file(port_dir(m).join(port_ip(m)));
        }
        Err(crate::Error::Invalid(msg))
    };
    for m in ports {
        let dir = port_dir(m);
        if let Err(e) = fs::create_dir_all(&dir) {
            return fail(&done, format!("claiming host port {}: {e}", m.host_addr()));
        }
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let other = PathBuf::from(
                String::from_utf8_lossy(&fs::read(e.path()).unwrap_or_default()).into_owned(),
            );
            if other == holder {
                continue;
            }
            if !other.exists() {
                let _ = fs::remove_file(e.path());
                continue;
            }
            let theirs = PortMapping {
                host_ip: e.file_name().to_string_lossy().into_owned(),
                ..m.clone()
            };
            if theirs.clashes(m) {
                return fail(
                    &done,
                    format!(
                        "host port {}/{} is already published by a container of another kiln store",
                        m.host_addr(),
                        m.protocol
                    ),
                );
            }
        }
        if let Err(e) = fs::write(dir.join(port_ip(m)), holder.as_os_str().as_encoded_bytes()) {
            return fail(&done, format!("claiming host port {}: {e}", m.host_addr()));
        }
        done.push(m);
    }
    Ok(())
}

/// Releases `holder`'s claims on `ports`.
pub fn release_ports(ports: &[PortMapping], holder: &Path) {
    let holder = absolute(holder);
    for m in ports {
        let p = port_dir(m).join(port_ip(m));
        if fs::read(&p).is_ok_and(|o| o == holder.as_os_str().as_encoded_bytes()) {
            let _ = fs::remove_file(&p);
            // Only when empty; another claimer may be filling it.
            let _ = fs::remove_dir(port_dir(m));
        }
    }
}

#[cfg(test)]
mod suffix_tests {
    use super::*;

    #[test]
    fn temp_and_stale_names_are_per_address() {
        let a = path("kiln0", Ipv4Addr::new(10, 77, 0, 2));
        let b = path("kiln0", Ipv4Addr::new(10, 77, 0, 3));
        assert_ne!(suffixed(&a, ".tmp"), suffixed(&b, ".tmp"));
        assert_ne!(suffixed(&a, ".stale"), suffixed(&b, ".stale"));
        assert_eq!(
            suffixed(&a, ".tmp"),
            Path::new("/run/kiln/leases/kiln0/10.77.0.2.tmp")
        );
    }
}
