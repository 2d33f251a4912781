//! `kiln run` and the container commands end to end: real containers of the
//! busybox image on this machine (root only; skipped otherwise).

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{require_tool, Kiln};

/// A store with busybox imported as `busybox`, or None when not root.
fn setup() -> Option<Kiln> {
    common::root_store()
}

fn out(k: &Kiln, args: &[&str]) -> String {
    k.run(args).ok().stdout
}

fn wait_for(what: &str, f: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(10), f)
}

#[test]
fn pid_1_hostname_proc_and_network() {
    let Some(k) = setup() else { return };
    assert_eq!(
        out(&k, &["run", "--rm", "busybox", "sh", "-c", "echo $$"]),
        "1\n"
    );
    // /proc shows only the container's processes: ls itself is pid 1.
    let procs = out(&k, &["run", "--rm", "busybox", "ls", "/proc"]);
    let pids: Vec<&str> = procs
        .split_whitespace()
        .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert_eq!(pids, ["1"], "{procs}");
    // The default network is the bridge, as docker's (tests/network.rs).
    assert_eq!(
        out(&k, &["run", "--rm", "busybox", "ls", "/sys/class/net"]),
        "eth0\nlo\n"
    );
    assert_eq!(
        out(
            &k,
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "busybox",
                "ls",
                "/sys/class/net"
            ]
        ),
        "lo\n"
    );
    // The host's own namespace (not a count of its interfaces: other
    // processes add and remove theirs meanwhile).
    let host_ns = std::fs::read_link("/proc/self/ns/net").unwrap();
    let n = out(
        &k,
        &[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "sh",
            "-c",
            "readlink /proc/self/ns/net",
        ],
    );
    assert_eq!(n.trim(), host_ns.to_str().unwrap());
    // The default host name is the short container ID.
    let h = out(&k, &["run", "--name", "h1", "busybox", "hostname"]);
    let id = out(&k, &["ps", "-a", "-q"]);
    assert_eq!(h.trim(), id.trim());
    assert_eq!(h.trim().len(), 12);
    let full = out(&k, &["ps", "-a", "-q", "--no-trunc"]);
    assert!(full.trim().starts_with(h.trim()) && full.trim().len() == 64);
    assert_eq!(
        out(
            &k,
            &[
                "run",
                "--rm",
                "--hostname",
                "box",
                "busybox",
                "sh",
                "-c",
                "hostname; echo $HOSTNAME; cat /etc/hostname"
            ]
        ),
        "box\nbox\nbox\n"
    );
    // Networks are checked before anything starts (the bridge itself is
    // tested in tests/network.rs).
    k.run(&["run", "--rm", "--network", "nosuchnet", "busybox", "true"])
        .code(125);
}

#[test]
fn exit_codes() {
    let Some(k) = setup() else { return };
    k.run(&["run", "--rm", "busybox", "true"]).code(0);
    k.run(&["run", "--rm", "busybox", "sh", "-c", "exit 3"])
        .code(3);
    let r = k.run(&["run", "--rm", "busybox", "/etc/passwd"]).code(126);
    assert!(r.stderr.contains("/etc/passwd"), "{}", r.stderr);
    let r = k.run(&["run", "--rm", "busybox", "no-such-cmd"]).code(127);
    assert!(r.stderr.contains("no-such-cmd"), "{}", r.stderr);
    let r = k.run(&["run", "--rm", "no-such-image", "true"]).code(125);
    assert!(r.stderr.contains("no-such-image"), "{}", r.stderr);
    k.run(&["run", "--rm", "--memory", "lots", "busybox", "true"])
        .code(125);
    // None of the --rm runs left a record.
    assert_eq!(out(&k, &["ps", "-a", "-q"]), "");
}

#[test]
fn killed_from_outside_is_137() {
    let Some(k) = setup() else { return };
    // `kiln kill` of a foreground container.
    let mut child = k
        .cmd()
        .args(["run", "--name", "sleeper", "busybox", "sleep", "100"])
        .spawn()
        .unwrap();
    wait_for("the container to run", || {
        out(&k, &["ps", "-q"]).lines().count() == 1
    });
    k.run(&["kill", "sleeper"]).ok();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(137));
    let ps = out(&k, &["ps", "-a"]);
    assert!(ps.contains("Exited (137)"), "{ps}");
    // kill -9 of the container's pid 1 from the host.
    let mut child = k
        .cmd()
        .args(["run", "--rm", "busybox", "sleep", "100"])
        .spawn()
        .unwrap();
    let mut pid = 0;
    wait_for("the container's pid", || {
        let rec = std::fs::read_dir(k.root().join("kiln/containers"))
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("container.json")).ok())
            .filter_map(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
            .find(|v| v["state"] == "running" && v["pid"].is_i64());
        if let Some(v) = rec {
            pid = v["pid"].as_i64().unwrap() as i32;
        }
        pid > 0
    });
    // SAFETY: kill(2) of the container's init.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert_eq!(child.wait().unwrap().code(), Some(137));
}

#[test]
fn sigterm_reaches_pid_1() {
    let Some(k) = setup() else { return };
    let mut child = k
        .cmd()
        .args([
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    // SAFETY: kill(2) of our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(lines.next().unwrap().unwrap(), "got TERM");
    assert_eq!(child.wait().unwrap().code(), Some(7));
}

#[test]
fn read_only_and_volumes() {
    let Some(k) = setup() else { return };
    k.run(&["run", "--rm", "--read-only", "busybox", "touch", "/x"])
        .code(1);
    k.run(&["run", "--rm", "busybox", "touch", "/x"]).ok();
    let vol = k.dir.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    std::fs::write(vol.join("from-host"), "host\n").unwrap();
    let spec = format!("{}:/data", vol.display());
    assert_eq!(
        out(
            &k,
            &[
                "run",
                "--rm",
                "-v",
                &spec,
                "busybox",
                "sh",
                "-c",
                "cat /data/from-host; echo ctr > /data/from-ctr"
            ]
        ),
        "host\n"
    );
    assert_eq!(
        std::fs::read_to_string(vol.join("from-ctr")).unwrap(),
        "ctr\n"
    );
    let ro = format!("{}:/data:ro", vol.display());
    k.run(&["run", "--rm", "-v", &ro, "busybox", "touch", "/data/x"])
        .code(1);
    // A read-only rootfs still gets writable volumes and tmpfs.
    assert_eq!(
        out(
            &k,
            &[
                "run",
                "--rm",
                "--read-only",
                "--tmpfs",
                "/scratch",
                "-v",
                &spec,
                "busybox",
                "sh",
                "-c",
                "touch /scratch/a /data/b && echo ok"
            ]
        ),
        "ok\n"
    );
    // A missing host directory is created, as docker does.
    let missing = k.dir.path().join("new/dir");
    let spec = format!("{}:/m", missing.display());
    k.run(&["run", "--rm", "-v", &spec, "busybox", "touch", "/m/f"])
        .ok();
    assert!(missing.join("f").exists());
    // (A plain name is a named volume now: tests/volumes.rs.)
    k.run(&["run", "--rm", "-v", "rel/ative:/m", "busybox", "true"])
        .code(125);
}

#[test]
fn user_env_workdir() {
    let Some(k) = setup() else { return };
    assert_eq!(
        out(&k, &["run", "--rm", "-u", "nobody", "busybox", "id", "-u"]),
        "65534\n"
    );
    assert_eq!(
        out(&k, &["run", "--rm", "-u", "1234:5678", "busybox", "id"]),
        "uid=1234 gid=5678\n"
    );
    let tar = common::busybox_tar().to_str().unwrap().to_string();
    k.run(&[
        "import",
        "-c",
        "ENV FOO=from-image BAR=image",
        "-c",
        "USER nobody",
        "-c",
        "WORKDIR /srv/app",
        "-c",
        "CMD [\"sh\", \"-c\", \"echo $FOO $BAR; id -u; pwd\"]",
        &tar,
        "configured",
    ])
    .ok();
    assert_eq!(
        out(&k, &["run", "--rm", "configured"]),
        "from-image image\n65534\n/srv/app\n"
    );
    // Flags override the image config; `-e K` takes the host's value.
    let env_file = k.dir.path().join("env");
    std::fs::write(&env_file, "# comment\nBAR=file\n\nFILE_ONLY=1\n").unwrap();
    let r = k
        .cmd()
        .env("FROM_HOST", "host-value")
        .args([
            "run",
            "--rm",
            "-e",
            "FOO=flag",
            "-e",
            "FROM_HOST",
            "--env-file",
            env_file.to_str().unwrap(),
            "-u",
            "0",
            "-w",
            "/tmp",
            "configured",
            "sh",
            "-c",
            "echo $FOO $BAR $FILE_ONLY $FROM_HOST; id -u; pwd; echo $PATH; echo $HOME",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&r.stdout),
        "flag file 1 host-value\n0\n/tmp\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/root\n",
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    // --entrypoint clears the image CMD; arguments after the image replace it.
    assert_eq!(
        out(
            &k,
            &[
                "run",
                "--rm",
                "--entrypoint",
                "echo",
                "configured",
                "a",
                "b"
            ]
        ),
        "a b\n"
    );
    assert_eq!(
        out(&k, &["run", "--rm", "--entrypoint", "pwd", "configured"]),
        "/srv/app\n"
    );
}

#[test]
fn no_mounts_left_on_the_host() {
    let Some(k) = setup() else { return };
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    k.run(&["run", "--rm", "busybox", "true"]).ok();
    k.run(&[
        "run",
        "--name",
        "kept",
        "--read-only",
        "--tmpfs",
        "/t",
        "busybox",
        "true",
    ])
    .ok();
    k.run(&[
        "export",
        "-o",
        k.dir.path().join("e.tar").to_str().unwrap(),
        "kept",
    ])
    .ok();
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = k.root().display().to_string();
    assert!(!after.contains(&root), "{after}");
    assert_eq!(
        before.lines().filter(|l| l.contains("overlay")).count(),
        after.lines().filter(|l| l.contains("overlay")).count()
    );
}

#[test]
fn runc_prints_the_same() {
    let Some(k) = setup() else { return };
    require_tool("runc");
    let script = "echo $$; hostname; id; ls /sys/class/net; cat /etc/hostname; pwd";
    let a = out(
        &k,
        &[
            "run",
            "--rm",
            "--hostname",
            "same",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    let b = out(
        &k,
        &[
            "run",
            "--rm",
            "--hostname",
            "same",
            "--runtime",
            "/usr/sbin/runc",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(a, b);
    k.run(&[
        "run",
        "--rm",
        "--runtime",
        "/usr/sbin/runc",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ])
    .code(3);
}

#[test]
fn detached_logs_ps_rm() {
    let Some(k) = setup() else { return };
    let id = out(
        &k,
        &[
            "run",
            "-d",
            "--name",
            "bg",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exec sleep 100",
        ],
    );
    let id = id.trim();
    assert_eq!(id.len(), 64, "{id}");
    // stdout and stderr come back apart (issue 16), as with docker.
    wait_for("the log", || {
        let r = k.run(&["logs", "bg"]);
        r.stdout == "out\n" && r.stderr == "err\n"
    });
    let ps = out(&k, &["ps"]);
    assert!(
        ps.contains(&id[..12]) && ps.contains("Up ") && ps.contains("bg"),
        "{ps}"
    );
    // Running: rm refuses without -f; names are unique.
    k.run(&["rm", "bg"]).code(1);
    k.run(&["run", "-d", "--name", "bg", "busybox", "true"])
        .code(125);
    k.run(&["stop", "-t", "1", "bg"]).ok();
    let ps = out(&k, &["ps", "-a"]);
    assert!(ps.contains("Exited (137)"), "{ps}");
    assert_eq!(out(&k, &["ps", "-q"]), "");
    k.run(&["rm", "bg"]).ok();
    assert_eq!(out(&k, &["ps", "-a", "-q"]), "");

    // The exit code of a detached container is recorded; rm -f kills.
    k.run(&[
        "run", "-d", "--name", "three", "busybox", "sh", "-c", "exit 3",
    ])
    .ok();
    wait_for("the exit", || out(&k, &["ps", "-a"]).contains("Exited (3)"));
    k.run(&["run", "-d", "--name", "long", "busybox", "sleep", "100"])
        .ok();
    k.run(&["rm", "-f", "long", "three"]).ok();
    assert_eq!(out(&k, &["ps", "-a", "-q"]), "");
    // -d --rm removes the container when it exits; start errors come back.
    k.run(&["run", "-d", "--rm", "busybox", "sh", "-c", "sleep 0.2"])
        .ok();
    wait_for("auto-removal", || out(&k, &["ps", "-a", "-q"]).is_empty());
    k.run(&["run", "-d", "--rm", "busybox", "no-such-cmd"])
        .code(127);
    let leftovers = std::fs::read_dir(k.root().join("kiln/containers"))
        .unwrap()
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn rmi_refuses_an_image_in_use() {
    let Some(k) = setup() else { return };
    k.run(&["run", "--name", "user", "busybox", "true"]).ok();
    k.run(&["rmi", "busybox"]).code(125);
    k.run(&["rm", "user"]).ok();
    k.run(&["rmi", "busybox"]).ok();
}

#[test]
fn container_names_are_validated_before_anything_runs() {
    let Some(k) = setup() else { return };
    // Names become directory entries and log lines: separators, dot-dot and
    // control characters are refused as docker refuses them, with one line.
    for bad in ["../../x", "a/b", "bad\nname", "x", ".x", "a b"] {
        let r = k.run(&["run", "--name", bad, "busybox", "true"]).code(125);
        assert!(
            r.stderr.contains("invalid container name") && r.stderr.lines().count() == 1
                || bad.contains('\n'),
            "{bad:?}: {}",
            r.stderr
        );
    }
    assert_eq!(out(&k, &["ps", "-a", "-q"]), "");
    // docker's leading slash is accepted and dropped.
    k.run(&["run", "--name", "/web.1_a-b", "busybox", "true"])
        .ok();
    assert!(out(&k, &["ps", "-a"]).contains("web.1_a-b"));
}

/// Issue 12, item 1: a container root keeps CAP_MKNOD (as with docker), so
/// only the device cgroup stands between it and the host's disks.
#[test]
fn host_devices_are_out_of_reach() {
    let Some(k) = setup() else { return };
    let mut runtimes = vec![None];
    if std::path::Path::new("/usr/sbin/runc").exists() {
        runtimes.push(Some("/usr/sbin/runc"));
    }
    for rt in runtimes {
        let run = |script: &str| {
            let mut args = vec!["run", "--rm"];
            if let Some(r) = rt {
                args.extend(["--runtime", r]);
            }
            args.extend(["busybox", "sh", "-c", script]);
            k.run(&args)
        };
        // A block node can be made (docker allows mknod of any node), but
        // not opened.
        let r = run("mknod /tmp/d b 7 0 && dd if=/tmp/d of=/dev/null bs=512 count=1");
        assert!(
            r.code != 0 && r.stderr.contains("Operation not permitted"),
            "{rt:?}: a host block device was readable: {} {} {}",
            r.code,
            r.stdout,
            r.stderr
        );
        // Char devices outside the list: kvm, mem.
        for node in ["c 10 232", "c 1 1"] {
            let r = run(&format!("mknod /tmp/c {node} && cat /tmp/c"));
            assert!(
                r.code != 0 && r.stderr.contains("Operation not permitted"),
                "{rt:?}: {node} opened: {} {} {}",
                r.code,
                r.stdout,
                r.stderr
            );
        }
        // The listed devices work, wherever their node is.
        let r = run(
            "mknod /tmp/n c 1 3 && echo x > /tmp/n && echo y > /dev/null \
             && head -c 3 /dev/urandom | wc -c && head -c 2 /dev/zero | wc -c",
        )
        .ok();
        assert_eq!(r.stdout.split_whitespace().collect::<Vec<_>>(), ["3", "2"]);
    }
}

/// Issue 12, item 9: a private cgroup namespace (podman's default, and
/// docker's on cgroup v2): the container's own cgroup is its `/`, whether
/// or not limits put it in more controllers.
#[test]
fn cgroup_paths_of_the_host_are_hidden() {
    let Some(k) = setup() else { return };
    for extra in [&[][..], &["--memory", "64m", "--pids-limit", "50"][..]] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(extra);
        args.extend(["busybox", "cat", "/proc/self/cgroup"]);
        let text = out(&k, &args);
        assert!(!text.is_empty());
        for line in text.lines() {
            assert!(
                line.ends_with(":/"),
                "{extra:?}: host cgroup path visible: {text}"
            );
        }
    }
}

/// Issue 12, item 9: a container init that makes the runner its tracer
/// (`PTRACE_TRACEME`) and then gets signals must still run to its own exit,
/// with its output and its exit code.
#[test]
fn traced_init_keeps_its_output_and_exit_code() {
    let Some(k) = setup() else { return };
    require_tool("gcc");
    let dir = k.dir.path().join("traceme");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("traceme.c"),
        r#"#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
static volatile sig_atomic_t got;
static void on_usr1(int s) { (void)s; got++; }
int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, 0);
    if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0) { perror("ptrace"); return 2; }
    printf("before\n"); fflush(stdout);
    raise(SIGUSR2);
    raise(SIGUSR1);
    printf("after %d\n", (int)got); fflush(stdout);
    return 7;
}
"#,
    )
    .unwrap();
    let st = std::process::Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(dir.join("traceme"))
        .arg(dir.join("traceme.c"))
        .status()
        .unwrap();
    assert!(st.success(), "gcc failed");
    let vol = format!("{}:/t:ro", dir.display());
    let r = k
        .run(&["run", "--rm", "-v", &vol, "busybox", "/t/traceme"])
        .code(7);
    assert_eq!(r.stdout, "before\nafter 1\n");
}

/// Issue 12, item 1: when no device cgroup can be made (a read-only cgroup
/// filesystem), a root container is refused rather than run unconfined.
#[test]
fn no_writable_cgroup_fs_means_no_container() {
    let Some(k) = setup() else { return };
    require_tool("unshare");
    // In a private mount namespace, every cgroup mount made read-only.
    let script = r#"awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts |
        while read -r m; do mount -o remount,bind,ro "$m" || exit 99; done
        exec "$@""#;
    let o = std::process::Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(common::kiln_bin())
        .arg("--root")
        .arg(k.root())
        .args(["run", "--rm", "busybox", "echo", "ran"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "{stdout} {stderr}");
    assert!(!stdout.contains("ran"), "{stdout}");
    assert!(
        stderr.contains("cannot confine the container's device access"),
        "{stderr}"
    );
}

/// kiln as root of a user namespace (e.g. inside a rootless container)
/// cannot make a device cgroup when the cgroup filesystem is read-only,
/// but there the kernel refuses mknod and the outer rules hold: it runs.
#[test]
fn root_of_a_user_namespace_runs_without_a_device_cgroup() {
    let Some(k) = setup() else { return };
    require_tool("unshare");
    // The namespace is mapped from outside (0-65535 onto the same ids),
    // then its cgroup mounts are made read-only and kiln runs in it.
    let script = r#"
unshare --user --mount --propagation private sh -c '
    while [ -z "$(cat /proc/self/gid_map)" ]; do sleep 0.02; done
    awk '\''$3 == "cgroup" || $3 == "cgroup2" { print $2 }'\'' /proc/self/mounts |
        while read -r m; do mount -o remount,bind,ro "$m" || exit 99; done
    exec "$@"' sh "$@" &
p=$!
until echo "0 0 65536" 2>/dev/null > /proc/$p/uid_map; do sleep 0.02; done
echo "0 0 65536" > /proc/$p/gid_map
wait $p
"#;
    let o = std::process::Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(common::kiln_bin())
        .arg("--root")
        .arg(k.root())
        .args([
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo ran; mknod /tmp/d b 7 0 || echo refused",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stdout} {stderr}");
    assert_eq!(stdout, "ran\nrefused\n", "{stderr}");
}

/// The pure cgroup v2 path (device program on the container's cgroup, no
/// v1 controller), exercised on any host by mounting the cgroup2 hierarchy
/// at /sys/fs/cgroup in a private mount namespace.
#[test]
fn pure_cgroup_v2_layout_confines_devices_too() {
    let Some(k) = setup() else { return };
    require_tool("unshare");
    let cgroup2 = std::fs::read_to_string("/proc/self/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split_whitespace().nth(2) == Some("cgroup2"));
    if !cgroup2 {
        eprintln!("skipping: no cgroup2 hierarchy on this host");
        return;
    }
    let o = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount -t cgroup2 none /sys/fs/cgroup || exit 99; exec \"$@\"")
        .arg("sh")
        .arg(common::kiln_bin())
        .arg("--root")
        .arg(k.root())
        .args([
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "mknod /tmp/n c 1 3 && echo x > /tmp/n && echo null-ok; \
             mknod /tmp/d b 7 0 && dd if=/tmp/d of=/dev/null count=1",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(stdout, "null-ok\n", "{stderr}");
    assert!(
        o.status.code() == Some(1) && stderr.contains("Operation not permitted"),
        "{:?} {stderr}",
        o.status
    );
}
