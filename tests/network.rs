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
    let ctx = k.context(
        "FROM busybox\nRUN mkdir /www && echo hello-from-kiln > /www/index.html\nEXPOSE 80\n",
    );
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

/// The host's ends (interface indexes) of the veths in the network
/// namespace of container `id`: what its teardown must remove. (Not a
/// count of the host's interfaces: other sessions add and remove theirs.
/// Indexes are not reused soon, names may be.)
fn veth_ends(k: &Kiln, id: &str) -> Vec<u32> {
    let ns = k.root().join("kiln/run/netns").join(full_id(k, id));
    let o = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["ip", "-o", "link"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Vec<u32> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1)?.split_once("@if")?.1.parse().ok())
        .collect();
    assert!(!v.is_empty(), "no veth in {}", ns.display());
    v
}

/// Which of the interface indexes `ends` the host still has.
fn present(ends: &[u32]) -> Vec<u32> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            std::fs::read_to_string(e.path().join("ifindex"))
                .ok()?
                .trim()
                .parse()
                .ok()
        })
        .filter(|i| ends.contains(i))
        .collect()
}

/// The full ID of container `name` (a name, ID or prefix).
fn full_id(k: &Kiln, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&out(k, &["inspect", name])).unwrap();
    v[0]["Id"].as_str().unwrap().to_string()
}

/// The subnet of network `name`, as `network inspect` gives it.
fn subnet_of(k: &Kiln, name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&out(k, &["network", "inspect", name])).unwrap();
    v[0]["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The host bridge of network `name`.
fn bridge_of(k: &Kiln, name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&out(k, &["network", "inspect", name])).unwrap();
    v[0]["NetworkInterface"].as_str().unwrap().to_string()
}

fn host_has_link(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// `wget URL` from a new container on network `net` until it gets the
/// page (the server starting, its name being registered).
fn fetch_on(k: &Kiln, net: &str, url: &str) {
    let mut last = String::new();
    for _ in 0..50 {
        let r = k.run(&[
            "run",
            "--rm",
            "--network",
            net,
            "busybox",
            "wget",
            "-qO-",
            url,
        ]);
        if r.code == 0 && r.stdout.contains("hello-from-kiln") {
            return;
        }
        last = format!("{} {}", r.stdout, r.stderr);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{url}: {last}");
}

/// Starts container `web` (httpd on port 80) on network `net`.
fn serve_web(k: &Kiln, net: &str) {
    let args = ["--name", "web", "--network", net, "web"];
    let httpd = ["httpd", "-f", "-p", "80", "-h", "/www"];
    let mut v = vec!["run", "-d"];
    v.extend(args);
    v.extend(httpd);
    k.run(&v).ok();
}

/// The host's interfaces attached to bridge `bridge`.
fn attached_to(bridge: &str) -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path().join("master"))
                .is_ok_and(|m| m.file_name().is_some_and(|n| n == bridge))
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
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
    let ends = veth_ends(&k, &id);
    assert_eq!(present(&ends), ends);
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
    assert_eq!(present(&ends), Vec::<u32>::new(), "a veth is left");
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
    let ends = veth_ends(&k, &id);
    k.run(&["stop", &id]).ok();
    assert_eq!(present(&ends), Vec::<u32>::new());
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
    let ends = veth_ends(&k, &out(&k, &["ps", "-q"]));
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
    assert_eq!(present(&ends), Vec::<u32>::new());
}

#[test]
fn user_network_resolves_names_and_aliases() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = setup() else { return };
    let _c = Cleanup(&k);
    let net = unique("ktestnet");
    k.run(&["network", "create", "--label", "a=b", &net]).ok();
    let ls = out(&k, &["network", "ls"]);
    assert!(ls.contains(&net) && ls.contains("bridge"), "{ls}");
    let r = k.run(&["network", "create", &net]).code(125);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    k.run(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        &net,
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
    let n = &ns["Networks"][&net];
    assert_eq!(
        n["IPAddress"],
        container_ip(&k, v[0]["Id"].as_str().unwrap()).as_str()
    );
    let aliases = n["Aliases"].as_array().unwrap();
    assert!(aliases.contains(&serde_json::json!("db")), "{n:#}");
    assert!(!n["NetworkID"].as_str().unwrap().is_empty(), "{n:#}");
    let inspect: serde_json::Value =
        serde_json::from_str(&out(&k, &["network", "inspect", &net])).unwrap();
    assert_eq!(inspect[0]["Containers"], serde_json::json!(["web"]));
    assert_eq!(inspect[0]["Labels"]["a"], "b");
    for name in ["web", "db"] {
        fetch_on(&k, &net, &format!("http://{name}/"));
    }
    let r = k.run(&["network", "rm", &net]).code(125);
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
    let bridge = bridge_of(&k, &net);
    let ends = veth_ends(&k, "web");
    assert!(host_has_link(&bridge));
    k.run(&["rm", "-f", "web"]).ok();
    assert_eq!(
        out(&k, &["network", "prune"]),
        format!("Deleted Networks:\n{net}")
    );
    assert!(!out(&k, &["network", "ls"]).contains(&net));
    assert_eq!(present(&ends), Vec::<u32>::new());
    assert!(!host_has_link(&bridge), "{bridge} is left");
}

#[test]
fn two_stores_on_the_bridge_get_different_addresses() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(a) = setup() else { return };
    let _ca = Cleanup(&a);
    let b = Kiln::new();
    let _cb = Cleanup(&b);
    b.import_busybox("busybox");
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
    let mut ends = veth_ends(&a, &ia);
    ends.extend(veth_ends(&b, &ib));
    assert_ne!(container_ip(&a, &ia), container_ip(&b, &ib));
    // The first store's lease is freed with its container: the next
    // container of the second store can have the address.
    let first = container_ip(&a, &ia);
    a.run(&["rm", "-f", &ia]).ok();
    let ic = run(&b);
    ends.extend(veth_ends(&b, &ic));
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
    ends.extend(veth_ends(&b, &web));
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
    assert_eq!(present(&ends), Vec::<u32>::new());
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
    let ends = veth_ends(&a, &id);
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
    assert_eq!(present(&ends), ends);

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
    assert_eq!(present(&ends), Vec::<u32>::new());
    // The killed container's cgroups: no store knows them any more (as
    // after a user deletes such a store), so the test removes them itself
    // rather than leave them on the host.
    runner::remove_cgroups(&id);
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

/// A network name no other test or session uses.
fn unique(tag: &str) -> String {
    format!("{tag}{}", std::process::id())
}

/// A new user network named after `tag` and this test process.
fn user_network(k: &Kiln, tag: &str) -> String {
    let net = unique(tag);
    k.run(&["network", "create", &net]).ok();
    net
}

/// Runs `args` in container `c` until it prints `want` (a server starting,
/// a name being registered), or fails with the last output.
fn exec_until(k: &Kiln, c: &str, args: &[&str], want: &str) {
    let mut last = String::new();
    for _ in 0..50 {
        let mut a = vec!["exec", c];
        a.extend_from_slice(args);
        let r = k.run(&a);
        if r.code == 0 && r.stdout.contains(want) {
            return;
        }
        last = format!("{} {} {}", r.code, r.stdout, r.stderr);
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{args:?} in {c}: {last}");
}

/// The IPv4 interfaces of container `c` (`eth0`, …).
fn ifaces(k: &Kiln, c: &str) -> Vec<String> {
    let o = out(k, &["exec", c, "ip", "-4", "-o", "addr"]);
    o.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|i| *i != "lo")
        .map(str::to_string)
        .collect()
}

#[test]
fn connect_and_disconnect_a_running_container() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = setup() else { return };
    let _c = Cleanup(&k);
    let (front, back) = (unique("kcfront"), unique("kcback"));
    k.run(&["network", "create", &front]).ok();
    k.run(&["network", "create", &back]).ok();
    k.run(&[
        "run",
        "-d",
        "--name",
        "api",
        "--network",
        &back,
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
    k.run(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        &front,
        "web",
        "sleep",
        "600",
    ])
    .ok();
    assert_eq!(ifaces(&k, "cli"), ["eth0"]);
    k.run(&["network", "connect", "--alias", "client", &back, "cli"])
        .ok();
    assert_eq!(ifaces(&k, "cli"), ["eth0", "eth1"]);
    let mut ends = veth_ends(&k, "cli");
    ends.extend(veth_ends(&k, "api"));
    let bridges = [bridge_of(&k, &front), bridge_of(&k, &back)];
    // By name and by alias on the network joined, and the server finds the
    // newcomer by its alias.
    exec_until(
        &k,
        "cli",
        &["wget", "-qO-", "http://api/"],
        "hello-from-kiln",
    );
    exec_until(
        &k,
        "cli",
        &["wget", "-qO-", "http://db/"],
        "hello-from-kiln",
    );
    exec_until(
        &k,
        "api",
        &["ping", "-c1", "-W2", "client"],
        "1 packets received",
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&out(&k, &["network", "inspect", &back])).unwrap();
    assert_eq!(inspect[0]["Containers"], serde_json::json!(["api", "cli"]));
    let hosts = out(&k, &["exec", "cli", "cat", "/etc/hosts"]);
    assert_eq!(hosts.lines().count(), 8, "{hosts}");
    let v: serde_json::Value = serde_json::from_str(&out(&k, &["inspect", "cli"])).unwrap();
    assert_eq!(v[0]["HostConfig"]["NetworkMode"], front.as_str());
    let on = v[0]["NetworkSettings"]["Networks"].as_object().unwrap();
    let mut names: Vec<&String> = on.keys().collect();
    names.sort();
    let mut want = [&back, &front];
    want.sort();
    assert_eq!(names, want);
    let back_ip = on[&back]["IPAddress"].as_str().unwrap();
    assert!(hosts.contains(&format!("{back_ip}\t")), "{hosts}");

    let r = k.run(&["network", "connect", &back, "cli"]).code(125);
    assert!(r.stderr.contains("already connected"), "{}", r.stderr);
    // A container keeps at least one network.
    let r = k.run(&["network", "disconnect", &back, "api"]).code(125);
    assert!(r.stderr.contains("only network"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    k.run(&[
        "run",
        "-d",
        "--name",
        "lone",
        "--network",
        "none",
        "web",
        "sleep",
        "600",
    ])
    .ok();
    let r = k.run(&["network", "connect", &back, "lone"]).code(125);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let r = k
        .run(&["network", "connect", "--alias", "a b", &back, "cli"])
        .code(125);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);

    k.run(&["network", "disconnect", &back, "cli"]).ok();
    assert_eq!(ifaces(&k, "cli"), ["eth0"]);
    assert_eq!(present(&ends).len(), 2, "the host end of eth1 is left");
    let hosts = out(&k, &["exec", "cli", "cat", "/etc/hosts"]);
    assert_eq!(hosts.lines().count(), 7, "{hosts}");
    let inspect: serde_json::Value =
        serde_json::from_str(&out(&k, &["network", "inspect", &back])).unwrap();
    assert_eq!(inspect[0]["Containers"], serde_json::json!(["api"]));
    let r = k.run(&["network", "disconnect", &back, "cli"]).code(125);
    assert!(r.stderr.contains("not connected"), "{}", r.stderr);
    // Connected again, then removed: rm tears both interfaces down.
    k.run(&["network", "connect", &back, "cli"]).ok();
    let two = veth_ends(&k, "cli");
    ends.extend(&two);
    // Off its first network: the one connected next takes its place, now
    // and at the next start.
    k.run(&["network", "disconnect", &front, "cli"]).ok();
    assert_eq!(ifaces(&k, "cli"), ["eth1"]);
    exec_until(
        &k,
        "cli",
        &["wget", "-qO-", "http://api/"],
        "hello-from-kiln",
    );
    let v: serde_json::Value = serde_json::from_str(&out(&k, &["inspect", "cli"])).unwrap();
    assert_eq!(v[0]["HostConfig"]["NetworkMode"], back.as_str());
    let hosts = out(&k, &["exec", "cli", "cat", "/etc/hosts"]);
    assert_eq!(hosts.lines().count(), 7, "{hosts}");
    assert_eq!(present(&two), two[1..], "the host end of eth0 is left");
    k.run(&["restart", "-t", "1", "cli"]).ok();
    assert_eq!(ifaces(&k, "cli"), ["eth0"]);
    exec_until(
        &k,
        "cli",
        &["wget", "-qO-", "http://api/"],
        "hello-from-kiln",
    );
    ends.extend(veth_ends(&k, "cli"));
    for c in ["cli", "api", "lone"] {
        k.run(&["rm", "-f", c]).ok();
    }
    k.run(&["network", "rm", &front, &back]).ok();
    assert_eq!(present(&ends), Vec::<u32>::new(), "a veth is left");
    for b in bridges {
        assert!(!host_has_link(&b), "{b} is left");
    }
    assert_eq!(netns_files(&k), 0);
}

#[test]
fn a_stopped_container_starts_again_on_its_networks() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = setup() else { return };
    let _c = Cleanup(&k);
    let extra = user_network(&k, "ksextra");
    k.run(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "bridge",
        "-p",
        "127.0.0.1::80",
        "web",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ])
    .ok();
    let port = |k: &Kiln| -> u16 {
        let a = out(k, &["port", "web", "80"]);
        a.strip_prefix("127.0.0.1:").unwrap().parse().unwrap()
    };
    let first = port(&k);
    assert!(http_get(first).contains("hello-from-kiln"));
    k.run(&["stop", "-t", "1", "web"]).ok();
    assert_eq!(out(&k, &["port", "web"]), "");
    assert_eq!(netns_files(&k), 0);
    // Connected while stopped: joined at the next start.
    k.run(&["network", "connect", &extra, "web"]).ok();
    k.run(&["start", "web"]).ok();
    assert!(http_get(port(&k)).contains("hello-from-kiln"));
    assert_eq!(ifaces(&k, "web"), ["eth0", "eth1"]);
    let mut ends = veth_ends(&k, "web");
    // restart: down and up again on the same networks.
    k.run(&["restart", "-t", "1", "web"]).ok();
    assert!(http_get(port(&k)).contains("hello-from-kiln"));
    assert_eq!(ifaces(&k, "web"), ["eth0", "eth1"]);
    ends.extend(veth_ends(&k, "web"));
    // Disconnected while stopped: not joined at the next start.
    k.run(&["stop", "-t", "1", "web"]).ok();
    k.run(&["network", "disconnect", &extra, "web"]).ok();
    k.run(&["start", "web"]).ok();
    assert_eq!(ifaces(&k, "web"), ["eth0"]);
    ends.extend(veth_ends(&k, "web"));
    let bridge = bridge_of(&k, &extra);
    k.run(&["rm", "-f", "web"]).ok();
    k.run(&["network", "rm", &extra]).ok();
    assert_eq!(present(&ends), Vec::<u32>::new(), "a veth is left");
    assert!(!host_has_link(&bridge), "{bridge} is left");
    assert_eq!(netns_files(&k), 0);
}

#[test]
fn container_mode_joins_the_other_containers_namespace() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = setup() else { return };
    let _c = Cleanup(&k);
    k.run(&[
        "run",
        "-d",
        "--name",
        "web",
        "--hostname",
        "webhost",
        "--network",
        "bridge",
        "web",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ])
    .ok();
    let ip = container_ip(&k, &full_id(&k, "web"));
    exec_until(
        &k,
        "web",
        &["wget", "-qO-", "http://127.0.0.1/"],
        "hello-from-kiln",
    );
    // Its loopback, its address, its host name and /etc/hosts.
    let r = k
        .run(&[
            "run",
            "--rm",
            "--network",
            "container:web",
            "busybox",
            "sh",
            "-c",
            "wget -qO- http://127.0.0.1/; hostname; ip -4 -o addr; cat /etc/hosts",
        ])
        .ok();
    assert!(
        r.stdout.starts_with("hello-from-kiln\nwebhost\n"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(&format!("inet {ip}/16")), "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("{ip}\twebhost\n")),
        "{}",
        r.stdout
    );
    let v: serde_json::Value = serde_json::from_str(&out(&k, &["inspect", "web"])).unwrap();
    assert_eq!(v[0]["HostConfig"]["NetworkMode"], "bridge");
    assert_eq!(v[0]["NetworkSettings"]["IPAddress"], ip.as_str());
    // A `--network none` container's namespace (its init's) too.
    k.run(&[
        "run",
        "-d",
        "--name",
        "alone",
        "--network",
        "none",
        "busybox",
        "sleep",
        "600",
    ])
    .ok();
    let ns = "readlink /proc/self/ns/net";
    let theirs = out(&k, &["exec", "alone", "sh", "-c", ns]);
    k.run(&[
        "create",
        "--name",
        "joiner",
        "--network",
        "container:alone",
        "busybox",
        "sh",
        "-c",
        ns,
    ])
    .ok();
    assert_eq!(k.run(&["start", "-a", "joiner"]).ok().stdout.trim(), theirs);
    let v: serde_json::Value = serde_json::from_str(&out(&k, &["inspect", "joiner"])).unwrap();
    let alone = full_id(&k, "alone");
    assert_eq!(
        v[0]["HostConfig"]["NetworkMode"],
        format!("container:{alone}")
    );
    assert_ne!(
        out(
            &k,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "busybox",
                "sh",
                "-c",
                ns
            ]
        ),
        theirs
    );
    // The other container stopped: refused at start and at run, one line.
    k.run(&["stop", "-t", "1", "alone"]).ok();
    let r = k.run(&["start", "-a", "joiner"]).code(125);
    assert!(r.stderr.contains("not running"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let r = k
        .run(&[
            "run",
            "--rm",
            "--network",
            "container:alone",
            "busybox",
            "true",
        ])
        .code(125);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let r = k
        .run(&[
            "run",
            "--rm",
            "--network",
            "container:web",
            "-p",
            "80",
            "busybox",
            "true",
        ])
        .code(125);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

/// A kiln killed between its steps: the container's processes are gone and
/// so is its network state, but its lease, port claim, namespace, veth and
/// firewall rules are left. `system check` names them; `--repair` tears
/// them down.
#[test]
fn system_check_repairs_what_a_crash_left_of_a_network() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = setup() else { return };
    let _c = Cleanup(&k);
    let id = out(
        &k,
        &[
            "run",
            "-d",
            "--network",
            "bridge",
            "-p",
            "127.0.0.1::80",
            "busybox",
            "sleep",
            "600",
        ],
    );
    let ip = container_ip(&k, &id);
    let port: u16 = out(&k, &["port", &id, "80"])
        .strip_prefix("127.0.0.1:")
        .unwrap()
        .parse()
        .unwrap();
    let ends = veth_ends(&k, &id);
    let dir = k.root().join("kiln/containers").join(&id);
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
    // Gone (reaped), not a zombie that still counts as running.
    for _ in 0..200 {
        if !Path::new(&format!("/proc/{init}")).exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    std::fs::remove_file(dir.join("network.json")).unwrap();
    let claim = format!("/run/kiln/ports/tcp-{port}/127.0.0.1");
    let lease = format!("/run/kiln/leases/kiln0/{ip}");
    assert!(Path::new(&claim).exists() && Path::new(&lease).exists());
    assert!(!rules_with(&[&ip]).is_empty());

    let r = k.run(&["system", "check"]).code(1);
    let ours: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.starts_with("network ") && l.contains(&id[..12]))
        .collect();
    assert_eq!(ours.len(), 3, "{}", r.stdout);
    assert!(
        r.stdout.contains(&format!("network {lease}: ")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("network {claim}: ")),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("network namespace of container"),
        "{}",
        r.stdout
    );
    // The bridge of one of the store's networks with no container on it
    // (as a crash between netavark's setup and the lease's release leaves).
    let net = user_network(&k, "kcheck");
    let bridge = bridge_of(&k, &net);
    let st = Command::new("ip")
        .args(["link", "add", &bridge, "type", "bridge"])
        .status()
        .unwrap();
    assert!(st.success());
    let r = k.run(&["system", "check"]).code(1);
    assert!(
        r.stdout.contains(&format!("network {bridge}: ")),
        "{}",
        r.stdout
    );
    k.run(&["system", "check", "--repair"]);
    assert!(!host_has_link(&bridge));
    assert!(!Path::new(&claim).exists() && !Path::new(&lease).exists());
    assert_eq!(netns_files(&k), 0);
    assert_eq!(present(&ends), Vec::<u32>::new());
    assert_eq!(rules_with(&[&ip]), Vec::<String>::new());
    assert!(port_is_free(port));
    // Nothing of it is left to report (other stores' leftovers are theirs).
    let r = k.run(&["system", "check"]);
    assert!(!r.stdout.contains(&id[..12]), "{}", r.stdout);
    assert!(!r.stdout.contains("network "), "{}", r.stdout);
}

/// kiln as an unprivileged user (nobody, with the store in its name): the
/// default network is slirp4netns, and a published port is reached from
/// the host over loopback. /dev/net/tun, which slirp4netns opens, is
/// 0666 on Debian hosts but may be root's alone in a sandbox: the user's
/// kiln runs in a private mount namespace where a 0666 node of the same
/// device is bound over it (the host's stays as it is).
#[test]
fn rootless_default_network_publishes_a_port_through_slirp4netns() {
    use std::os::unix::fs::PermissionsExt;
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !is_root() {
        eprintln!("skipping: becoming an unprivileged user needs root");
        return;
    }
    for t in ["setpriv", "unshare", "mknod", "slirp4netns"] {
        require_tool(t);
    }
    let k = Kiln::new();
    let top = k.dir.path();
    std::fs::set_permissions(top, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(k.root()).unwrap();
    std::fs::create_dir(top.join("tun")).unwrap();
    let tar = top.join("busybox.tar");
    std::fs::copy(common::busybox_tar(), &tar).unwrap();
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(k.root())
        .status()
        .unwrap();
    assert!(chown.success());
    let script = r#"t=$1; shift
mount -t tmpfs none "$t" && mknod -m 666 "$t/node" c 10 200 &&
    mount --bind "$t/node" /dev/net/tun || exit 99
exec setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$t" "$@""#;
    let user = |args: &[&str]| {
        let o = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                script,
                "sh",
            ])
            .arg(top.join("tun"))
            .arg(common::kiln_bin())
            .arg("--root")
            .arg(k.root())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (so, se) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        (o.status.code(), so, se)
    };
    let ok = |args: &[&str]| {
        let (code, so, se) = user(args);
        assert_eq!(code, Some(0), "{args:?}: {so} {se}");
        so
    };
    ok(&["import", tar.to_str().unwrap(), "busybox"]);
    let addr = ok(&["run", "--rm", "busybox", "ip", "-4", "-o", "addr"]);
    assert!(
        addr.contains("tap0") && addr.contains("10.0.2.100/24"),
        "{addr}"
    );
    let id = ok(&[
        "run",
        "-d",
        "-p",
        "127.0.0.1::80",
        "busybox",
        "sh",
        "-c",
        "mkdir /www && echo rootless-ok > /www/index.html && exec httpd -f -p 80 -h /www",
    ]);
    let id = id.trim();
    let mapped = ok(&["port", id, "80"]);
    let port: u16 = mapped
        .trim()
        .strip_prefix("127.0.0.1:")
        .unwrap()
        .parse()
        .unwrap();
    assert!(http_get(port).contains("rootless-ok"));
    assert!(ok(&["ps"]).contains(&format!("127.0.0.1:{port}->80/tcp")));
    // The forward is a real socket: taken for a second container.
    let (code, _, se) = user(&[
        "run",
        "--rm",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox",
        "true",
    ]);
    assert_eq!(code, Some(125), "{se}");
    assert_eq!(se.lines().count(), 1, "{se}");
    // Container networks of root's are refused in one line.
    let (code, _, se) = user(&["run", "--rm", "--network", "bridge", "busybox", "true"]);
    assert_eq!(code, Some(125), "{se}");
    assert_eq!(se.lines().count(), 1, "{se}");
    // Stopped: slirp4netns is gone with it, and the host port is free.
    ok(&["stop", "-t", "1", id]);
    assert!(port_is_free(port));
    assert_eq!(ok(&["port", id]).trim(), "");
}

/// docker's legacy links (seed tutorial 001) on the default bridge: the
/// alias in /etc/hosts, docker's environment variables; and
/// `--mac-address`.
#[test]
fn link_gives_hosts_entry_and_env_and_mac_address_sets_the_interface() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = setup() else { return };
    let _c = Cleanup(&k);
    k.run(&[
        "run",
        "-d",
        "--name",
        "ldb",
        "--network",
        "bridge",
        "-e",
        "SECRET=s1",
        "--expose",
        "53/udp",
        "web",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ])
    .ok();
    let ip = container_ip(&k, &full_id(&k, "ldb"));
    exec_until(
        &k,
        "ldb",
        &["wget", "-qO-", "http://127.0.0.1/"],
        "hello-from-kiln",
    );
    let r = k
        .run(&[
            "run",
            "--rm",
            "--name",
            "lweb",
            "--network",
            "bridge",
            "--link",
            "ldb:db",
            "--mac-address",
            "02:42:ac:11:00:99",
            "busybox",
            "sh",
            "-c",
            "env | grep ^DB_ | sort; grep db /etc/hosts; ip link show eth0; wget -qO- http://db/",
        ])
        .ok();
    let o = r.stdout;
    for want in [
        format!("DB_PORT=tcp://{ip}:80\n"),
        format!("DB_PORT_80_TCP=tcp://{ip}:80\n"),
        format!("DB_PORT_80_TCP_ADDR={ip}\n"),
        "DB_PORT_80_TCP_PORT=80\n".to_string(),
        "DB_PORT_80_TCP_PROTO=tcp\n".to_string(),
        format!("DB_PORT_53_UDP_ADDR={ip}\n"),
        "DB_NAME=/lweb/db\n".to_string(),
        "DB_ENV_SECRET=s1\n".to_string(),
        format!("{ip}\tdb ldb\n"),
        "link/ether 02:42:ac:11:00:99".to_string(),
        "hello-from-kiln".to_string(),
    ] {
        assert!(o.contains(&want), "{want:?} missing in:\n{o}");
    }
    assert!(!o.contains("DB_ENV_PATH"), "{o}");
    for bad in [
        &[
            "run",
            "--rm",
            "--network",
            "bridge",
            "--link",
            "nosuch",
            "busybox",
            "true",
        ][..],
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--link",
            "ldb",
            "busybox",
            "true",
        ],
        &[
            "run",
            "--rm",
            "--network",
            "bridge",
            "--mac-address",
            "01:00:5e:00:00:01",
            "busybox",
            "true",
        ],
    ] {
        let r = k.run(bad).code(125);
        assert_eq!(r.stderr.lines().count(), 1, "{bad:?}: {}", r.stderr);
    }
}

/// `build --network bridge`: RUN steps get an address on the default
/// bridge (a step's own `--network=none` still wins), and nothing of it is
/// left after the build.
#[test]
fn build_on_the_bridge_gives_run_steps_an_address() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = setup() else { return };
    let _c = Cleanup(&k);
    let ctx = k.dir.path().join("bridgectx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN ip -4 -o addr > /bridged\nRUN --network=none ip -o link > /none\n",
    )
    .unwrap();
    k.run(&[
        "build",
        "-q",
        "--network",
        "bridge",
        "-t",
        "bridged",
        ctx.to_str().unwrap(),
    ])
    .ok();
    let o = out(
        &k,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "bridged",
            "cat",
            "/bridged",
            "/none",
        ],
    );
    assert!(o.contains("eth0") && o.contains("inet 10.77."), "{o}");
    assert!(
        !o.contains("eth0:"),
        "the --network=none step saw an interface: {o}"
    );
    assert_eq!(netns_files(&k), 0);
    // The same Dockerfile on the host network is another cache key.
    let r = k
        .run(&[
            "build",
            "--progress",
            "plain",
            "-t",
            "hosted",
            ctx.to_str().unwrap(),
        ])
        .ok();
    assert!(r.stderr.contains("Cache miss at line 2"), "{}", r.stderr);
}

/// Rootless `kiln rm`: the kernel leaves the container's overlay
/// `work/work` mode 000, which its unprivileged owner cannot empty
/// unless it is opened first. Removal leaves nothing of the container.
#[test]
fn rootless_rm_removes_the_overlay_work_directory() {
    let Some((k, ok)) = common::nobody_store() else {
        return;
    };
    let name = format!("rootless-rm-{}", std::process::id());
    ok(&[
        "run",
        "--network",
        "none",
        "--name",
        &name,
        "busybox",
        "true",
    ]);
    ok(&["rm", &name]);
    assert!(!ok(&["ps", "-a"]).contains(&name));
    let left: Vec<_> = std::fs::read_dir(k.root().join("kiln/containers"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.iter().all(|n| n.to_string_lossy().starts_with('.')),
        "{left:?}"
    );
}

/// A network's bridge and the NAT rules netavark made for it outlive its
/// last container, as docker's do (so the next `run --rm` does not make
/// them all again), and go with the network.
#[test]
fn a_bridge_and_its_rules_live_as_long_as_the_network() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(k) = setup() else { return };
    let _c = Cleanup(&k);
    let net = user_network(&k, "kskeep");
    let bridge = bridge_of(&k, &net);
    let subnet = subnet_of(&k, &net);
    assert!(!host_has_link(&bridge), "{bridge} before any container");
    for _ in 0..2 {
        k.run(&["run", "--rm", "--network", &net, "busybox", "true"])
            .ok();
        assert!(host_has_link(&bridge), "{bridge} went with its container");
        assert!(!rules_with(&[&subnet]).is_empty(), "{subnet}'s NAT went");
    }
    let keepers = attached_to(&bridge);
    assert_eq!(keepers.len(), 1, "{keepers:?}");
    // Kept on purpose: not a leftover.
    let r = k.run(&["system", "check"]);
    assert!(!r.stdout.contains(&bridge), "{}", r.stdout);
    // Containers still reach each other on the kept bridge.
    serve_web(&k, &net);
    fetch_on(&k, &net, "http://web/");
    k.run(&["rm", "-f", "web"]).ok();
    assert!(host_has_link(&bridge));

    k.run(&["network", "rm", &net]).ok();
    assert!(!host_has_link(&bridge), "{bridge} is left");
    for l in &keepers {
        assert!(!host_has_link(l), "keeper {l} is left");
    }
    assert_eq!(rules_with(&[&subnet]), Vec::<String>::new());
    assert_eq!(netns_files(&k), 0);
    let leases = std::fs::read_dir(Path::new("/run/kiln/leases").join(&bridge))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(leases, 0, "a lease on {bridge} is left");

    // A bridge that lost its keeper (a removal whose last teardown failed,
    // tried again) goes with its network too, rules and all.
    let net = user_network(&k, "kskeep2");
    let (bridge, subnet) = (bridge_of(&k, &net), subnet_of(&k, &net));
    k.run(&["run", "--rm", "--network", &net, "busybox", "true"])
        .ok();
    for l in attached_to(&bridge) {
        let st = Command::new("ip")
            .args(["link", "delete", &l])
            .status()
            .unwrap();
        assert!(st.success());
    }
    assert!(host_has_link(&bridge) && !rules_with(&[&subnet]).is_empty());
    k.run(&["network", "rm", &net]).ok();
    assert!(!host_has_link(&bridge), "{bridge} is left");
    assert_eq!(rules_with(&[&subnet]), Vec::<String>::new());
}
