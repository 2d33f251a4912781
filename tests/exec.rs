//! `kiln exec` (and the lifecycle commands beside it) end to end: real
//! containers of the busybox image on this machine (root only; skipped
//! otherwise).

mod common;

use std::time::Duration;

use common::{require_tool, Detached, Kiln};

/// A store with busybox imported as `busybox`, or None when not root.
fn setup() -> Option<Kiln> {
    common::root_store()
}

/// Waits (up to a generous bound, never asserting on speed) for `f`.
fn wait_for(what: &str, f: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(20), f)
}

/// A detached container, removed (with `rm -f`) when the test ends.
/// `run -d --name NAME ARGS…`, then waits until the init wrote `ready`.
fn service<'k>(k: &'k Kiln, name: &str, args: &[&str]) -> Detached<'k> {
    service_ready(k, name, args, "/ready")
}

fn service_ready<'k>(k: &'k Kiln, name: &str, args: &[&str], ready: &str) -> Detached<'k> {
    let d = k.run_detached(name, args);
    wait_for("the init to write /ready", || {
        k.run(&["exec", name, "test", "-e", ready]).code == 0
    });
    d
}

const SERVICE: &str = "echo from-init > /ready; exec sleep 1000";

#[test]
fn exec_sees_the_containers_processes_files_and_env() {
    let Some(k) = setup() else { return };
    let _c = service(
        &k,
        "svc",
        &["-e", "FOO=bar", "busybox", "sh", "-c", SERVICE],
    );
    let ps = k.run(&["exec", "svc", "ps", "-o", "pid,args"]).ok().stdout;
    // The init is pid 1 of the namespace the exec'd ps is in.
    let init = ps.lines().find(|l| l.contains("sleep 1000")).unwrap_or("");
    assert_eq!(init.split_whitespace().next(), Some("1"), "{ps}");
    assert_eq!(
        k.run(&["exec", "svc", "cat", "/ready"]).ok().stdout,
        "from-init\n"
    );
    // The image's PATH and run's -e, plus exec's own -e.
    let env = k.run(&["exec", "-e", "BAR=baz", "svc", "env"]).ok().stdout;
    for want in ["FOO=bar", "BAR=baz", "PATH=/usr/local/sbin:"] {
        assert!(env.lines().any(|l| l.starts_with(want)), "{want}: {env}");
    }
    // The same hostname, and the same network, IPC, UTS, mount, PID and
    // cgroup namespaces and cgroups as the init.
    let same = k
        .run(&[
            "exec",
            "svc",
            "sh",
            "-c",
            "for n in net ipc uts mnt pid cgroup; do \
               [ \"$(readlink /proc/self/ns/$n)\" = \"$(readlink /proc/1/ns/$n)\" ] || echo $n differs; \
             done; \
             [ \"$(cat /proc/self/cgroup)\" = \"$(cat /proc/1/cgroup)\" ] || echo cgroups differ; \
             hostname",
        ])
        .ok()
        .stdout;
    let id = k.run(&["ps", "-q"]).ok().stdout;
    assert_eq!(same.trim(), &id.trim()[..12], "{same}");
}

#[test]
fn exec_has_no_more_power_than_the_init() {
    let Some(k) = setup() else { return };
    let _c = service(&k, "caps", &["busybox", "sh", "-c", SERVICE]);
    let status = |pid: &str, extra: &[&str]| {
        let mut args = vec!["exec"];
        args.extend_from_slice(extra);
        let path = format!("/proc/{pid}/status");
        args.extend_from_slice(&["caps", "grep", "-E", "^(Cap|Seccomp:|NoNewPrivs)"]);
        args.push(&path);
        k.run(&args).ok().stdout
    };
    let init = status("1", &[]);
    assert!(init.contains("Seccomp:\t2"), "{init}");
    assert_eq!(status("self", &[]), init);
    // --privileged adds capabilities, and only capabilities.
    let privileged = status("self", &["--privileged"]);
    assert_ne!(privileged, init);
    assert!(privileged.contains("Seccomp:\t2"), "{privileged}");
    let eff = |s: &str| {
        let l = s.lines().find(|l| l.starts_with("CapEff:")).unwrap();
        u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(eff(&privileged) & eff(&init), eff(&init));
    // The device rules come with the cgroup: a node the container may
    // make (CAP_MKNOD) but not open (/dev/kmsg) stays closed.
    let r = k.run(&[
        "exec",
        "--privileged",
        "caps",
        "sh",
        "-c",
        "mknod /tmp/kmsg c 1 11 && head -c1 /tmp/kmsg",
    ]);
    assert_ne!(r.code, 0, "{}{}", r.stdout, r.stderr);
}

#[test]
fn exec_exit_codes_follow_docker() {
    let Some(k) = setup() else { return };
    let _c = service(&k, "codes", &["busybox", "sh", "-c", SERVICE]);
    k.run(&["exec", "codes", "true"]).code(0);
    k.run(&["exec", "codes", "false"]).code(1);
    k.run(&["exec", "codes", "sh", "-c", "exit 42"]).code(42);
    let r = k.run(&["exec", "codes", "no-such-program"]).code(127);
    assert!(r.stderr.contains("no-such-program"), "{}", r.stderr);
    k.run(&["exec", "codes", "/etc"]).code(126);
    // kiln's own errors: 125 and one line saying why.
    let r = k.run(&["exec", "nosuch", "true"]).code(125);
    assert!(
        r.stderr.contains("no such container: nosuch"),
        "{}",
        r.stderr
    );
    let r = k
        .run(&["exec", "-w", "relative", "codes", "true"])
        .code(125);
    assert!(r.stderr.contains("not absolute"), "{}", r.stderr);
}

#[test]
fn exec_into_a_stopped_container_is_refused() {
    let Some(k) = setup() else { return };
    k.run(&["run", "--name", "done", "busybox", "true"]).ok();
    let r = k.run(&["exec", "done", "true"]).code(125);
    assert_eq!(
        r.stderr.trim(),
        "kiln: container done is not running",
        "{}",
        r.stderr
    );
    k.run(&["rm", "done"]).ok();
}

#[test]
fn exec_user_workdir_and_detach() {
    let Some(k) = setup() else { return };
    let _c = service_ready(
        &k,
        "who",
        &[
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "busybox",
            "sh",
            "-c",
            "echo x > ready; exec sleep 1000",
        ],
        "/tmp/ready",
    );
    // The container's user and working directory by default.
    let r = k.run(&["exec", "who", "sh", "-c", "id -u; pwd"]).ok();
    assert_eq!(r.stdout, "65534\n/tmp\n");
    let r = k
        .run(&[
            "exec",
            "-u",
            "root",
            "-w",
            "/etc",
            "who",
            "sh",
            "-c",
            "id -u; pwd",
        ])
        .ok();
    assert_eq!(r.stdout, "0\n/etc\n");
    // -d: started, left running, its output discarded.
    let r = k
        .run(&[
            "exec",
            "-d",
            "who",
            "sh",
            "-c",
            "echo lost; touch /tmp/detached",
        ])
        .ok();
    assert_eq!(r.stdout, "");
    wait_for("the detached exec", || {
        k.run(&["exec", "who", "test", "-e", "/tmp/detached"]).code == 0
    });
}

#[test]
fn exec_t_gets_a_terminal() {
    let Some(k) = setup() else { return };
    require_tool("script");
    let _c = service(&k, "tty", &["busybox", "sh", "-c", SERVICE]);
    let cmd = format!(
        "{} --root {} exec -t tty tty",
        common::kiln_bin(),
        k.root().display()
    );
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.trim().starts_with("/dev/pts/"), "{out:?}");
    // Without -t: no terminal.
    let r = k.run(&["exec", "tty", "tty"]);
    assert_eq!(r.stdout.trim(), "not a tty");
}

#[test]
fn exec_with_an_external_runtime_uses_its_exec() {
    let Some(k) = setup() else { return };
    require_tool("runc");
    // runc containers run in the foreground only: this `kiln run` is ours.
    let mut run = k
        .cmd()
        .args([
            "run",
            "--runtime",
            "/usr/sbin/runc",
            "--name",
            "rc",
            "-e",
            "FOO=bar",
        ])
        .args(["busybox", "sh", "-c", SERVICE])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let c = k.guard("rc");
    wait_for("the runc container", || {
        k.run(&["exec", "rc", "test", "-e", "/ready"]).code == 0
    });
    let r = k
        .run(&["exec", "rc", "sh", "-c", "cat /ready; echo $FOO"])
        .ok();
    assert_eq!(r.stdout, "from-init\nbar\n");
    let status = |pid: &str| {
        let path = format!("/proc/{pid}/status");
        k.run(&[
            "exec",
            "rc",
            "grep",
            "-E",
            "^(Cap|Seccomp:|NoNewPrivs)",
            &path,
        ])
        .ok()
        .stdout
    };
    assert_eq!(status("self"), status("1"));
    k.run(&["exec", "rc", "false"]).code(1);
    k.run(&["exec", "rc", "no-such-program"]).code(127);
    k.run(&["exec", "rc", "/etc"]).code(126);
    drop(c);
    let _ = run.wait();
}

#[test]
fn create_start_attach_and_wait() {
    let Some(k) = setup() else { return };
    let id = k
        .run(&[
            "create",
            "--name",
            "job",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo out; exit 7",
        ])
        .ok()
        .stdout;
    assert_eq!(id.trim().len(), 64, "{id}");
    let ps = k.run(&["ps", "-a"]).ok().stdout;
    assert!(
        ps.lines()
            .any(|l| l.contains("Created") && l.ends_with("job")),
        "{ps}"
    );
    // Created, not running: exec refuses it.
    k.run(&["exec", "job", "true"]).code(125);
    let r = k.run(&["start", "-a", "job"]).code(7);
    assert_eq!(r.stdout, "out\n");
    assert_eq!(k.run(&["wait", "job"]).ok().stdout, "7\n");
    // Started again, detached: `wait` blocks until it exits.
    k.run(&["start", "job"]).ok();
    assert_eq!(k.run(&["wait", "job"]).ok().stdout, "7\n");
    assert_eq!(k.run(&["logs", "job"]).ok().stdout, "out\n");
    k.run(&["rm", "job"]).ok();
    k.run(&["wait", "job"]).code(1);
    // On a network (as root the default bridge), the network went with the
    // exit and is set up again by the next start.
    k.run(&["create", "--name", "net", "busybox", "true"]).ok();
    k.run(&["start", "-a", "net"]).ok();
    k.run(&["start", "-a", "net"]).ok();
    k.run(&["rm", "net"]).ok();
}

#[test]
fn rename_then_exec_by_the_new_name() {
    let Some(k) = setup() else { return };
    let c = service(&k, "old-name", &["busybox", "sh", "-c", SERVICE]);
    k.run(&["rename", "old-name", "new-name"]).ok();
    let _c = k.guard("new-name");
    std::mem::forget(c);
    assert_eq!(
        k.run(&["exec", "new-name", "cat", "/ready"]).ok().stdout,
        "from-init\n"
    );
    k.run(&["exec", "old-name", "true"]).code(125);
    let r = k.run(&["rename", "new-name", "../x"]).code(125);
    assert!(r.stderr.contains("invalid container name"), "{}", r.stderr);
}

#[test]
fn pause_freezes_and_unpause_resumes() {
    let Some(k) = setup() else { return };
    let counter = "i=0; while true; do i=$((i+1)); echo $i > /n; echo x > /ready; sleep 0.01; done";
    let _c = service(&k, "count", &["busybox", "sh", "-c", counter]);
    let top = k.run(&["top", "count"]).ok().stdout;
    assert!(top.lines().next().unwrap().contains("PID"), "{top}");
    assert!(top.contains("while true"), "{top}");
    k.run(&["pause", "count"]).ok();
    // ps and inspect show it paused (docker's "Up … (Paused)", State.Paused).
    let ps = k.run(&["ps", "--filter", "status=paused"]).ok().stdout;
    assert!(ps.contains("(Paused)") && ps.contains("count"), "{ps}");
    let v: serde_json::Value =
        serde_json::from_str(&k.run(&["inspect", "count"]).ok().stdout).unwrap();
    assert_eq!(v[0]["State"]["Paused"], true);
    assert_eq!(v[0]["State"]["Status"], "paused");
    // Paused: the counter's file does not change (read from the host,
    // as exec into a paused container is refused).
    let r = k.run(&["exec", "count", "true"]).code(125);
    assert!(r.stderr.contains("paused"), "{}", r.stderr);
    // The init's pid from top's listing (ps -ef: the second column).
    let init = top
        .lines()
        .find(|l| l.contains("while true"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    let n = format!("/proc/{init}/root/n");
    let read = || std::fs::read_to_string(&n).ok();
    let frozen = read();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(read(), frozen, "the counter moved while paused");
    }
    k.run(&["unpause", "count"]).ok();
    wait_for("the counter to move again", || read() != frozen);
    let ps = k.run(&["ps", "--filter", "status=running"]).ok().stdout;
    assert!(ps.contains("count") && !ps.contains("Paused"), "{ps}");
}

/// `kiln attach NAME` as a child with its output read line by line.
fn attach(k: &Kiln, name: &str) -> std::process::Child {
    k.cmd()
        .args(["attach", name])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads `child`'s stdout until a line `want` (all lines read so far).
fn read_until(out: &mut impl std::io::BufRead, want: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "ended before {want:?}: {seen:?}"
        );
        let line = line.trim_end().to_string();
        seen.push(line.clone());
        if line == want {
            return seen;
        }
    }
}

#[test]
fn attach_streams_the_live_output_and_returns_the_exit_code() {
    use std::io::{BufRead as _, Read as _};
    let Some(k) = setup() else { return };
    let script = "echo before; while [ ! -e /go ]; do echo tick; sleep 0.05; done; \
                  echo final; echo err-line >&2; exit 5";
    let _c = service_ready(&k, "att", &["busybox", "sh", "-c", script], "/bin");
    wait_for("the first line in the log", || {
        k.run(&["logs", "att"]).stdout.starts_with("before")
    });
    let mut child = attach(&k, "att");
    let _w = watchdog(child.id());
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let seen = read_until(&mut out, "tick");
    k.run(&["exec", "att", "touch", "/go"]).ok();
    let rest = read_until(&mut out, "final");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(5), "{err}");
    assert_eq!(err, "err-line\n");
    assert!(!seen.iter().chain(&rest).any(|l| l == "before"), "{seen:?}");
    let mut tail = String::new();
    out.read_line(&mut tail).unwrap();
    assert_eq!(tail, "", "nothing after the container's last line");

    // Signals to attach reach the container (--sig-proxy, on by default).
    let trap = "trap 'echo got-int; exit 9' INT; while true; do echo tick; sleep 0.05; done";
    let _t = service_ready(&k, "att-sig", &["busybox", "sh", "-c", trap], "/bin");
    let mut child = attach(&k, "att-sig");
    let _w2 = watchdog(child.id());
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    read_until(&mut out, "tick");
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    read_until(&mut out, "got-int");
    assert_eq!(child.wait().unwrap().code(), Some(9));

    // A stopped container cannot be attached to.
    let r = k.run(&["attach", "att"]).code(125);
    assert!(r.stderr.contains("start it first"), "{}", r.stderr);
}

/// `kiln attach NAME` with its standard input a pipe the test writes to.
fn attach_typing(k: &Kiln, name: &str) -> std::process::Child {
    k.cmd()
        .args(["attach", name])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Kills process `pid` unless the returned sender is used (or dropped)
/// within a minute, so that an attach that never shows what a test waits
/// for fails the test instead of hanging it.
fn watchdog(pid: u32) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            rx.recv_timeout(Duration::from_secs(60))
        {
            // SAFETY: kill(2) of the test's own child, not yet reaped.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
    });
    tx
}

/// Reads until a line containing `want` (a pty ends lines with \r\n).
fn read_until_has(out: &mut impl std::io::BufRead, want: &str) {
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "ended before {want:?}: {seen:?}"
        );
        if line.contains(want) {
            return;
        }
        seen.push_str(&line);
    }
}

#[test]
fn attach_types_into_dit_and_di_containers() {
    use std::io::Write as _;
    let Some(k) = setup() else { return };
    // -dit: a shell on a pty; what attach is given is typed into it.
    k.run(&["run", "-dit", "--name", "tty", "busybox", "sh"])
        .ok();
    let _c = k.guard("tty");
    let mut child = attach_typing(&k, "tty");
    let _w = watchdog(child.id());
    let mut stdin = child.stdin.take().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(b"echo hel''lo; tty\n").unwrap();
    read_until_has(&mut out, "hello");
    read_until_has(&mut out, "/dev/pts/");
    // Ctrl-P Ctrl-Q detaches and leaves the container running.
    stdin.write_all(&[0x10, 0x11]).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let v: serde_json::Value =
        serde_json::from_str(&k.run(&["inspect", "tty"]).ok().stdout).unwrap();
    assert_eq!(v[0]["State"]["Running"], true);
    assert_eq!(v[0]["Config"]["Tty"], true);
    let mut child = attach_typing(&k, "tty");
    child.stdin.take().unwrap().write_all(b"exit 3\n").unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(3));

    // -di: standard input without a terminal.
    let script = "read x; echo got-$x; exit 4";
    k.run(&["run", "-di", "--name", "in", "busybox", "sh", "-c", script])
        .ok();
    let _i = k.guard("in");
    let mut child = attach_typing(&k, "in");
    let _w = watchdog(child.id());
    child.stdin.take().unwrap().write_all(b"abc\n").unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    read_until_has(&mut out, "got-abc");
    assert_eq!(child.wait().unwrap().code(), Some(4));
}

#[test]
fn attach_from_a_terminal_sets_the_size_and_detaches() {
    use std::io::Write as _;
    let Some(k) = setup() else { return };
    require_tool("script");
    k.run(&["run", "-dit", "--name", "tsz", "busybox", "sh"])
        .ok();
    let _c = k.guard("tsz");
    // attach on a terminal of 33x101 (script's pty), in raw mode.
    let cmd = format!(
        "stty rows 33 cols 101; {} --root {} attach tsz",
        common::kiln_bin(),
        k.root().display()
    );
    let mut child = std::process::Command::new("script")
        .args(["-qc", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _w = watchdog(child.id());
    let mut stdin = child.stdin.take().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    stdin.write_all(b"stty size\r").unwrap();
    read_until_has(&mut out, "33 101");
    stdin.write_all(&[0x10, 0x11]).unwrap();
    assert!(child.wait().unwrap().success());
    let v: serde_json::Value =
        serde_json::from_str(&k.run(&["inspect", "tsz"]).ok().stdout).unwrap();
    assert_eq!(v[0]["State"]["Running"], true, "detached, not stopped");
}
