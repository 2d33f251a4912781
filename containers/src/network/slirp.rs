//! Rootless container networks: slirp4netns (Debian's `slirp4netns`, what
//! rootless podman uses), a user-mode TCP/IP stack that needs no
//! privilege. The runner makes the container's network namespace; before
//! the container's program starts ([`runner::BeforeStart`]) slirp4netns is
//! started on it as podman calls it (`--configure --mtu=65520
//! --disable-host-loopback --api-socket SOCK PID tap0`): the container gets
//! `tap0` with 10.0.2.100/24, a route out through 10.0.2.2 and a DNS
//! forwarder at 10.0.2.3. Published ports are slirp4netns's host
//! forwards, added through its API socket (`add_hostfwd`): real sockets
//! of the user, so a taken port shows as taken. It lives as long as the
//! kiln process that waits for the container (`--exit-fd`: it ends when
//! that process does, killed or not).

use std::fs;
use std::io::{Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::attach::{EtcFiles, NetworkRequest};
use super::ports::{self, PortMapping, Proto};
use crate::error::{Error, Result};

/// The network mode's name (`--network slirp4netns`).
pub const MODE: &str = "slirp4netns";
/// The container's state: its ports and /etc files (kept while it exists:
/// a later start forwards the same ports again).
pub const SLIRP_FILE: &str = "slirp.json";

/// slirp4netns's addresses with `--configure`.
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);
const DNS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub ports: Vec<PortMapping>,
    pub etc: EtcFiles,
}

/// Whether slirp4netns is installed and can open the tun device (for the
/// rootless default network: without either the default stays `none`).
pub fn available() -> bool {
    // SAFETY: a NUL-terminated constant path.
    let tun = unsafe { libc::access(c"/dev/net/tun".as_ptr(), libc::R_OK | libc::W_OK) } == 0;
    tun && binary().is_some()
}

fn binary() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_else(|| vec!["/usr/bin".into(), "/bin".into()])
        .into_iter()
        .map(|d| d.join(MODE))
        .find(|p| p.is_file())
}

pub fn state(dir: &Path) -> Option<State> {
    serde_json::from_slice(&fs::read(dir.join(SLIRP_FILE)).ok()?).ok()
}

/// `kiln run`/`create` on slirp4netns: the host ports picked (refused
/// when taken) and the /etc files, recorded in `dir`.
pub fn prepare(
    dir: &Path,
    hostname: &str,
    req: &NetworkRequest,
    image_exposed: &[(u16, Proto)],
) -> Result<State> {
    let mut exposed = image_exposed.to_vec();
    for e in &req.expose {
        if !exposed.contains(e) {
            exposed.push(*e);
        }
    }
    let ports = ports::resolve(&req.publish, &exposed, req.publish_all, &[])?;
    let servers = [IpAddr::V4(DNS)];
    let resolver = super::etc::Resolver {
        servers: match req.dns.servers.is_empty() {
            true => &servers,
            false => &[],
        },
        search: &[],
    };
    let (hosts, resolv_conf) = super::etc::files(GUEST, GATEWAY, hostname, resolver, &req.dns);
    let s = State {
        ports,
        etc: EtcFiles { hosts, resolv_conf },
    };
    let p = dir.join(SLIRP_FILE);
    fs::write(&p, serde_json::to_vec_pretty(&s).expect("plain data")).map_err(Error::io(p))?;
    Ok(s)
}

/// A running slirp4netns; dropping it ends it.
pub struct Running {
    child: Child,
    _exit: OwnedFd,
    socket: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.socket);
    }
}

/// Where the slirp4netns of the current run is kept until the container
/// has ended (dropped then).
pub type Slot = Arc<Mutex<Option<Running>>>;

/// For a container with a [`SLIRP_FILE`] in `dir`: the runner hook that
/// starts slirp4netns on its namespace, and the slot that holds it.
pub fn hook(dir: &Path, socket: PathBuf) -> Option<(runner::BeforeStart, Slot)> {
    let st = state(dir)?;
    let slot: Slot = Arc::new(Mutex::new(None));
    let held = slot.clone();
    let f = move |pid: i32| -> std::result::Result<(), String> {
        let r = start(pid, &socket, &st.ports)?;
        *held.lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
        Ok(())
    };
    Some((runner::BeforeStart(Arc::new(f)), slot))
}

fn pipe() -> std::result::Result<(OwnedFd, OwnedFd), String> {
    let (r, w) = std::io::pipe().map_err(|e| format!("pipe: {e}"))?;
    Ok((r.into(), w.into()))
}

fn start(pid: i32, socket: &Path, ports: &[PortMapping]) -> std::result::Result<Running, String> {
    let bin = binary().ok_or_else(|| {
        "slirp4netns not found in PATH: install the slirp4netns package for rootless container networks, or run with --network none".to_string()
    })?;
    if let Some(d) = socket.parent() {
        fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let _ = fs::remove_file(socket);
    let (ready_r, ready_w) = pipe()?;
    let (exit_r, exit_w) = pipe()?;
    let (rfd, efd) = (ready_w.as_raw_fd(), exit_r.as_raw_fd());
    let mut cmd = Command::new(&bin);
    cmd.args(["--configure", "--mtu=65520", "--disable-host-loopback"])
        .arg(format!("--api-socket={}", socket.display()))
        .arg(format!("--ready-fd={rfd}"))
        .arg(format!("--exit-fd={efd}"))
        .arg(pid.to_string())
        .arg("tap0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: only fcntl between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for fd in [rfd, efd] {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {}: {e}", bin.display()))?;
    drop(ready_w);
    drop(exit_r);
    let mut byte = [0u8; 1];
    let ready = fs::File::from(ready_r).read(&mut byte).unwrap_or(0) == 1;
    let mut running = Running {
        child,
        _exit: exit_w,
        socket: socket.to_path_buf(),
    };
    if !ready {
        let _ = running.child.kill();
        let mut err = String::new();
        if let Some(mut e) = running.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        let last = err.lines().last().unwrap_or("it exited").to_string();
        return Err(format!("slirp4netns failed: {last}"));
    }
    for m in ports {
        add_hostfwd(socket, m)?;
    }
    Ok(running)
}

/// slirp4netns's API: one JSON request per connection.
fn add_hostfwd(socket: &Path, m: &PortMapping) -> std::result::Result<(), String> {
    let host_addr = match m.host_ip.as_str() {
        "" => "0.0.0.0",
        ip => ip,
    };
    let req = serde_json::json!({
        "execute": "add_hostfwd",
        "arguments": {
            "proto": m.protocol.to_string(),
            "host_addr": host_addr,
            "host_port": m.host_port,
            "guest_addr": GUEST.to_string(),
            "guest_port": m.container_port,
        }
    });
    let fail = |e: String| format!("publishing host port {host_addr}:{}: {e}", m.host_port);
    let mut s = UnixStream::connect(socket).map_err(|e| fail(e.to_string()))?;
    s.write_all(req.to_string().as_bytes())
        .and_then(|()| s.shutdown(std::net::Shutdown::Write))
        .map_err(|e| fail(e.to_string()))?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .map_err(|e| fail(e.to_string()))?;
    let v: serde_json::Value =
        serde_json::from_str(&answer).map_err(|_| fail(format!("unexpected answer {answer:?}")))?;
    match v.get("error") {
        None => Ok(()),
        Some(e) => Err(fail(
            e["desc"].as_str().unwrap_or(&e.to_string()).to_string(),
        )),
    }
}
