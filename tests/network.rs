//! Container networks end to end, as root with netavark: published ports
//! reached from the host over loopback, name resolution on a user network,
//! and teardown that leaves no veth, firewall rule or namespace behind.
//! Traffic stays on loopback and inside the networks the tests create.
//! The tests share the host's bridges, so they run one at a time.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use common::{is_root, require_tool, Kiln};

static SERIAL: Mutex<()> = Mutex::new(());

/// A store with `web` (busybox with /www/index.html, EXPOSE 80), or None
/// when not root.
fn setup() -> Option<Kiln> {
    if !is_root() {
        eprintln!("skipping: container networks need root (CI runs these as root)");
        return None;
    }
    for t in ["iptables-save", "ip"] {
        require_tool(t);
    }
    let k = Kiln::new();
    k.import_busybox("busybox");
    let ctx = k.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN mkdir /www && echo hello-from-kiln > /www/index.html\nEXPOSE 80\n",
    )
    .unwrap();
    k.run(&["build", "-q", "-t", "web", ctx.to_str().unwrap()])
        .ok();
    Some(k)
}

/// Removes the store's containers when a test ends, failed or not: their
/// namespaces, veths and rules are the host's, not the temp dir's.
struct Cleanup<'a>(&'a Kiln);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let ids = self.0.run(&["ps", "-aq"]).stdout;
        for id in ids.split_whitespace() {
            let _ = self.0.run(&["rm", "-f", id]);
        }
        let _ = self.0.run(&["network", "prune"]);
    }
}

fn out(k: &Kiln, args: &[&str]) -> String {
    k.run(args).ok().stdout.trim().to_string()
}

/// The host's network interfaces by name.
fn links() -> Vec<String> {
    let o = Command::new("ip").args(["-o", "link"]).output().unwrap();
    let mut v: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// The firewall rules (iptables-save, counters dropped) that mention any
/// of `needles`.
fn rules_with(needles: &[&str]) -> Vec<String> {
    let o = Command::new("iptables-save").output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// `GET /` on 127.0.0.1:`port`, retried while the server starts.
fn http_get(port: u16) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(mut s) => {
                let _ = s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n");
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.contains("200") {
                    return body;
                }
                last = body;
            }
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("no answer on 127.0.0.1:{port}: {last}");
}

fn netns_files(k: &Kiln) -> usize {
    std::fs::read_dir(k.root().join("kiln/run/netns"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// The container's address from its network state.
fn container_ip(k: &Kiln, id: &str) -> String {
    let p = k
        .root()
        .join("kiln/containers")
        .join(id)
        .join("network.json");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
    v["ip"].as_str().unwrap().to_string()
}

fn port_is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

#[test]
fn published_port_serves_the_host_and_rm_leaves_nothing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = setup() else { return };
    let _c = Cleanup(&k);
    let links_before = links();
    let id = out(
        &k,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "bridge",
            "-p",
            "127.0.0.1:0:80",
            "web",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ],
    );
    let ip = container_ip(&k, &id);
    let ports = out(&k, &["port", "web"]);
    let addr = out(&k, &["port", "web", "80/tcp"]);
    assert_eq!(ports, format!("80/tcp -> {addr}"));
    let port: u16 = addr.strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
    assert!(http_get(port).contains("hello-from-kiln"));
    // inspect's NetworkSettings as docker's on its default bridge.
    let v: serde_json::Value = serde_json::from_str(&out(&k, &["inspect", "web"])).unwrap();
    let ns = &v[0]["NetworkSettings"];
    assert_eq!(ns["IPAddress"], ip.as_str(), "{ns:#}");
    assert_eq!(
        ns["Ports"]["80/tcp"],
        serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": port.to_string()}])
    );
    let b = &ns["Networks"]["bridge"];
    assert_eq!(b["IPAddress"], ip.as_str());
    assert_eq!(b["Gateway"], ns["Gateway"]);
    assert!(b["Gateway"].as_str().is_some_and(|g| !g.is_empty()));
    let mac = b["MacAddress"].as_str().unwrap();
    assert_eq!(mac.len(), 17, "{ns:#}");
    assert_eq!(v[0]["HostConfig"]["NetworkMode"], "bridge");
    let ps = out(&k, &["ps"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    // What must go at rm is there now (so the checks below can fail).
    let port_s = port.to_string();
    assert!(!rules_with(&[&ip, &port_s]).is_empty());
    assert!(!rules_with(&[&id]).is_empty());
    assert_ne!(links(), links_before);
    assert_eq!(netns_files(&k), 1);

    // The port is taken: by this container, then by a host socket.
    let spec = format!("127.0.0.1:{port}:80");
    let r = k
        .run(&["run", "--network", "bridge", "-p", &spec, "web", "true"])
        .code(125);
    assert_eq!(
        r.stderr.trim(),
        format!("kiln: host port 127.0.0.1:{port}/tcp is already published by container web")
    );
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let hport = held.local_addr().unwrap().port();
    let r = k
        .run(&[
            "run",
            "--rm",
            "--network",
            "bridge",
            "-p",
            &format!("127.0.0.1:{hport}:80"),
            "web",
            "true",
        ])
        .code(125);
    assert_eq!(
        r.stderr.trim(),
        format!("kiln: host port 127.0.0.1:{hport}/tcp is already in use")
    );
    drop(held);

    k.run(&["rm", "-f", "web"]).ok();
    assert_eq!(links(), links_before, "a veth or bridge is left");
    assert_eq!(
        rules_with(&[&ip, &id, &format!("dport {port_s}")]),
        Vec::<String>::new()
    );
    assert_eq!(netns_files(&k), 0);
    assert!(port_is_free(port));
    // Exited container of the refused run: nothing of it is left either.
    assert!(!k
        .root()
        .join("kiln/run/netns")
        .read_dir()
        .unwrap()
        .any(|_| true));
}

#[test]
fn publish_all_maps_exposed_ports_and_exit_tears_down() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = setup() else { return };
    let _c = Cleanup(&k);
    let links_before = links();
    let id = out(
        &k,
        &[
            "run",
            "-d",
            "--network",
            "bridge",
            "-P",
            "--expose",
            "81/udp",
            "web",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ],
    );
    let ports = out(&k, &["port", &id]);
    let lines: Vec<&str> = ports.lines().collect();
    assert_eq!(lines.len(), 2, "{ports}");
    assert!(lines[0].starts_with("80/tcp -> 0.0.0.0:"), "{ports}");
    assert!(lines[1].starts_with("81/udp -> 0.0.0.0:"), "{ports}");
    let port: u16 = lines[0].rsplit(':').next().unwrap().parse().unwrap();
    // Reached over loopback (published on all addresses).
    assert!(http_get(port).contains("hello-from-kiln"));
    k.run(&["stop", &id]).ok();
    assert_eq!(links(), links_before);
    assert_eq!(netns_files(&k), 0);
    assert_eq!(out(&k, &["port", &id]), "");

    // A foreground --rm run: its namespace is made and removed.
    let r = k
        .run(&[
            "run",
            "--rm",
            "--network",
            "bridge",
            "web",
            "cat",
            "/etc/hosts",
        ])
        .ok();
    assert!(r.stdout.contains("10.77."), "{}", r.stdout);
    assert_eq!(netns_files(&k), 0);
    assert_eq!(links(), links_before);

    // kiln killed: the next command tears down what it left.
    let mut child = k
        .cmd()
        .args(["run", "--network", "bridge", "busybox", "sleep", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if netns_files(&k) == 1 && out(&k, &["ps", "-q"]).lines().count() == 1 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(netns_files(&k), 1);
    child.kill().unwrap();
    child.wait().unwrap();
    for _ in 0..200 {
        out(&k, &["ps", "-a"]);
        if netns_files(&k) == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        netns_files(&k),
        0,
        "a killed kiln's network namespace is left"
    );
    assert_eq!(links(), links_before);
}

#[test]
fn user_network_resolves_names_and_aliases() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = setup() else { return };
    let _c = Cleanup(&k);
    let links_before = links();
    k.run(&["network", "create", "--label", "a=b", "testnet"])
        .ok();
    let ls = out(&k, &["network", "ls"]);
    assert!(ls.contains("testnet") && ls.contains("bridge"), "{ls}");
    let r = k.run(&["network", "create", "testnet"]).code(125);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    k.run(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "testnet",
        "--network-alias",
        "db",
        "web",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ])
    .ok();
    // inspect's NetworkSettings: on a user network, per network only.
    let v: serde_json::Value = serde_json::from_str(&out(&k, &["inspect", "web"])).unwrap();
    let ns = &v[0]["NetworkSettings"];
    assert_eq!(ns["IPAddress"], "", "{ns:#}");
    let n = &ns["Networks"]["testnet"];
    assert_eq!(
        n["IPAddress"],
        container_ip(&k, v[0]["Id"].as_str().unwrap()).as_str()
    );
    let aliases = n["Aliases"].as_array().unwrap();
    assert!(aliases.contains(&serde_json::json!("db")), "{n:#}");
    assert!(!n["NetworkID"].as_str().unwrap().is_empty(), "{n:#}");
    let inspect: serde_json::Value =
        serde_json::from_str(&out(&k, &["network", "inspect", "testnet"])).unwrap();
    assert_eq!(inspect[0]["Containers"], serde_json::json!(["web"]));
    assert_eq!(inspect[0]["Labels"]["a"], "b");
    for name in ["web", "db"] {
        let url = format!("http://{name}/");
        let mut last = String::new();
        let mut ok = false;
        for _ in 0..50 {
            let r = k.run(&[
                "run",
                "--rm",
                "--network",
                "testnet",
                "busybox",
                "wget",
                "-qO-",
                &url,
            ]);
            if r.code == 0 && r.stdout.contains("hello-from-kiln") {
                ok = true;
                break;
            }
            last = format!("{} {}", r.stdout, r.stderr);
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(ok, "{url}: {last}");
    }
    let r = k.run(&["network", "rm", "testnet"]).code(125);
    assert!(r.stderr.contains("in use by container web"), "{}", r.stderr);
    // The default bridge has no name resolution, as docker's.
    let r = k
        .run(&[
            "run",
            "--rm",
            "--network",
            "bridge",
            "--network-alias",
            "x",
            "busybox",
            "true",
        ])
        .code(125);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    k.run(&["rm", "-f", "web"]).ok();
    assert_eq!(out(&k, &["network", "prune"]), "Deleted Networks:\ntestnet");
    assert!(!out(&k, &["network", "ls"]).contains("testnet"));
    assert_eq!(links(), links_before);
}

#[test]
fn two_stores_on_the_bridge_get_different_addresses() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(a) = setup() else { return };
    let _ca = Cleanup(&a);
    let b = Kiln::new();
    let _cb = Cleanup(&b);
    b.import_busybox("busybox");
    let links_before = links();
    let run = |k: &Kiln| {
        out(
            k,
            &[
                "run",
                "-d",
                "--network",
                "bridge",
                "busybox",
                "sleep",
                "100",
            ],
        )
    };
    let (ia, ib) = (run(&a), run(&b));
    assert_ne!(container_ip(&a, &ia), container_ip(&b, &ib));
    // The first store's lease is freed with its container: the next
    // container of the second store can have the address.
    let first = container_ip(&a, &ia);
    a.run(&["rm", "-f", &ia]).ok();
    let ic = run(&b);
    assert_eq!(container_ip(&b, &ic), first);
    // A published port of one store is taken for the other: netavark's
    // forward binds no socket, the host-wide claim refuses it.
    let web = out(
        &b,
        &[
            "run",
            "-d",
            "--network",
            "bridge",
            "-p",
            "127.0.0.1::80",
            "busybox",
            "sleep",
            "100",
        ],
    );
    let addr = out(&b, &["port", &web, "80"]);
    let r = a
        .run(&[
            "run",
            "--network",
            "bridge",
            "-p",
            &format!("{addr}:80"),
            "busybox",
            "true",
        ])
        .code(125);
    assert_eq!(
        r.stderr.trim(),
        format!(
            "kiln: host port {addr}/tcp is already published by a container of another kiln store"
        )
    );
    b.run(&["rm", "-f", &web]).ok();
    a.run(&[
        "run",
        "--rm",
        "--network",
        "bridge",
        "-p",
        &format!("{addr}:80"),
        "busybox",
        "true",
    ])
    .ok();
    b.run(&["rm", "-f", &ib, &ic]).ok();
    assert_eq!(links(), links_before);
}

/// A store deleted while a killed kiln's container was still on the
/// bridge: the next container on that bridge, from any store, tears down
/// what the stale lease names.
#[test]
fn a_deleted_stores_leftovers_are_torn_down_by_the_next_attach() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(a) = setup() else { return };
    let b = Kiln::new();
    let _cb = Cleanup(&b);
    b.import_busybox("busybox");
    let links_before = links();
    let id = out(
        &a,
        &[
            "run",
            "-d",
            "--network",
            "bridge",
            "busybox",
            "sleep",
            "100",
        ],
    );
    let ip = container_ip(&a, &id);
    let dir = a.root().join("kiln/containers").join(&id);
    let monitor: i32 = std::fs::read_to_string(dir.join("monitor.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("container.json")).unwrap()).unwrap();
    let init = rec["pid"].as_i64().unwrap() as i32;
    // SAFETY: signals to processes this test started.
    unsafe {
        libc::kill(monitor, libc::SIGKILL);
        libc::kill(init, libc::SIGKILL);
    }
    // The store's records go; its namespace mount stays (as when a temp
    // store is removed: the mounted file cannot be).
    std::fs::remove_dir_all(a.root().join("kiln/containers")).unwrap();
    assert_eq!(netns_files(&a), 1);
    assert_ne!(links(), links_before);

    let other = out(
        &b,
        &[
            "run",
            "-d",
            "--network",
            "bridge",
            "busybox",
            "sleep",
            "100",
        ],
    );
    assert_eq!(netns_files(&a), 0, "the stale namespace is left");
    assert_eq!(
        container_ip(&b, &other),
        ip,
        "the stale address is not free"
    );
    b.run(&["rm", "-f", &other]).ok();
    assert_eq!(links(), links_before);
}

/// `--internal`: an address on the network, no route out of it; `--ip`.
#[test]
fn internal_network_has_no_route_out_and_ip_picks_the_address() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = setup() else { return };
    let _c = Cleanup(&k);
    k.run(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.78.200.0/24",
        "inet",
    ])
    .ok();
    let routes = out(
        &k,
        &["run", "--rm", "--network", "inet", "busybox", "ip", "route"],
    );
    assert!(routes.contains("10.78.200.0/24 dev eth0"), "{routes}");
    assert!(!routes.contains("default"), "{routes}");
    let routes = out(&k, &["run", "--rm", "busybox", "ip", "route"]);
    assert!(routes.contains("default via 10.77.0.1"), "{routes}");
    // --ip: the address asked for, once.
    let id = out(
        &k,
        &[
            "run",
            "-d",
            "--network",
            "inet",
            "--ip",
            "10.78.200.9",
            "busybox",
            "sleep",
            "100",
        ],
    );
    assert_eq!(container_ip(&k, &id), "10.78.200.9");
    let r = k
        .run(&[
            "run",
            "--rm",
            "--network",
            "inet",
            "--ip",
            "10.78.200.9",
            "busybox",
            "true",
        ])
        .code(125);
    assert!(r.stderr.contains("in use by container"), "{}", r.stderr);
    for bad in [
        &["--network", "inet", "--ip", "10.78.201.9"][..],
        &["--network", "inet", "--ip", "10.78.200.1"],
        &["--network", "bridge", "--ip", "10.77.0.9"],
        &["--network", "none", "--ip", "10.77.0.9"],
    ] {
        let args: Vec<&str> = ["run", "--rm"]
            .into_iter()
            .chain(bad.iter().copied())
            .chain(["busybox", "true"])
            .collect();
        let r = k.run(&args).code(125);
        assert_eq!(r.stderr.lines().count(), 1, "{bad:?}: {}", r.stderr);
    }
    k.run(&["rm", "-f", &id]).ok();
    k.run(&["network", "rm", "inet"]).ok();
}

/// `--dns`, `--dns-search`, `--dns-option` and `--add-host` shape the
/// container's /etc files (no query is sent).
#[test]
fn dns_flags_and_add_host_shape_the_etc_files() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = setup() else { return };
    let _c = Cleanup(&k);
    let files = out(
        &k,
        &[
            "run",
            "--rm",
            "--hostname",
            "box",
            "--dns",
            "192.0.2.53",
            "--dns-search",
            "example.test",
            "--dns-option",
            "ndots:2",
            "--add-host",
            "gw:host-gateway",
            "--add-host",
            "db:192.0.2.7",
            "busybox",
            "cat",
            "/etc/resolv.conf",
            "/etc/hosts",
        ],
    );
    assert!(
        files.starts_with("search example.test\nnameserver 192.0.2.53\noptions ndots:2\n"),
        "{files}"
    );
    assert!(
        files.contains("\n10.77.0.1\tgw\n192.0.2.7\tdb\n10.77."),
        "{files}"
    );
    assert!(files.ends_with("\tbox"), "{files}");
    let r = k
        .run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--dns",
            "192.0.2.53",
            "busybox",
            "true",
        ])
        .code(125);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn bad_network_flags_are_one_line_and_125() {
    let Some(k) = is_root().then(Kiln::new) else {
        return;
    };
    k.import_busybox("busybox");
    for args in [
        &[
            "run",
            "--network",
            "bridge",
            "-p",
            "80:x",
            "busybox",
            "true",
        ][..],
        &["run", "--network", "nosuch", "busybox", "true"],
        &["run", "--network", "none", "-p", "80", "busybox", "true"],
        &["run", "--network", "container:x", "busybox", "true"],
        &["run", "--add-host", "nocolon", "busybox", "true"],
        &["run", "--dns", "not-an-ip", "busybox", "true"],
        &["network", "create", "--subnet", "10.78.0.1/24", "n1"],
        &["network", "rm", "bridge"],
    ] {
        let r = k.run(args).code(125);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
    }
    assert!(!Path::new(&k.root().join("kiln/run/netns"))
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some()));
}
