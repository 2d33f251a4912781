//! Host-wide claims on addresses. A network's allocations live in its
//! store ([`super::attach`]), but the bridge a network names (`kiln0`) is
//! the host's: two stores (two `--root`s, or tests side by side) put their
//! containers on the same one. So each address also gets a lease file,
//! `/run/kiln/leases/<bridge>/<ip>`, created exclusively and naming its
//! holder (the container's directory); a lease whose holder no longer
//! holds that address (a store deleted, a crash) is stale and taken over.

use std::fs;
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where leases live: a tmpfs, as the namespaces they go with, so that a
/// reboot clears both.
const LEASE_DIR: &str = "/run/kiln/leases";

fn path(bridge: &str, ip: Ipv4Addr) -> PathBuf {
    Path::new(LEASE_DIR).join(bridge).join(ip.to_string())
}

/// The holder's path as any process can read it (a store given as a
/// relative `--root` included).
fn absolute(holder: &Path) -> PathBuf {
    fs::canonicalize(holder).unwrap_or_else(|_| holder.to_path_buf())
}

/// Whether the container in `holder` still holds `ip` on `bridge`.
fn held(holder: &Path, bridge: &str, ip: Ipv4Addr) -> bool {
    super::attach::attachment(holder).is_some_and(|a| a.ip == ip && a.bridge() == Some(bridge))
}

/// Claims `ip` on `bridge` for the container in `holder`: false when a
/// live holder has it.
pub fn claim(bridge: &str, ip: Ipv4Addr, holder: &Path) -> io::Result<bool> {
    let holder = &absolute(holder);
    let p = path(bridge, ip);
    fs::create_dir_all(p.parent().expect("a lease has a directory"))?;
    for _ in 0..2 {
        match fs::OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(mut f) => {
                f.write_all(holder.as_os_str().as_encoded_bytes())?;
                return Ok(true);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let other = fs::read(&p).unwrap_or_default();
                let other = PathBuf::from(String::from_utf8_lossy(&other).into_owned());
                if &other == holder {
                    return Ok(true);
                }
                if held(&other, bridge, ip) {
                    return Ok(false);
                }
                // Stale: its holder is gone. Racing claimers both remove
                // and retry; create_new lets one win.
                let _ = fs::remove_file(&p);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// Releases `holder`'s lease on `ip` (one held by another is left).
pub fn release(bridge: &str, ip: Ipv4Addr, holder: &Path) {
    let holder = &absolute(holder);
    let p = path(bridge, ip);
    if fs::read(&p).is_ok_and(|o| o == holder.as_os_str().as_encoded_bytes()) {
        let _ = fs::remove_file(&p);
    }
}
