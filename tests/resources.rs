//! Resource and security flags of `run`/`create` end to end with real
//! busybox containers (root only; skipped otherwise): limits read back
//! from the container's own cgroup files (through its init's
//! /proc/PID/cgroup on the host, as the container has no cgroupfs
//! mounted), process settings read inside it (/proc/self/status, ulimit,
//! df), and the flags kiln refuses.

mod common;

use std::time::Duration;

use common::Kiln;
use serde_json::Value;

fn setup() -> Option<Kiln> {
    common::root_store()
}

/// A detached container, removed (with `rm -f`) when the test ends.
fn inspect(k: &Kiln, name: &str) -> Value {
    let out = k.run(&["inspect", name]).ok().stdout;
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

/// A cgroup file of the process `pid`: `v1` in the `controller` hierarchy
/// on cgroup v1, else `v2` in its unified cgroup.
fn cgroup_file(pid: i64, controller: &str, v1: &str, v2: &str) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let unified = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap(), f.next().unwrap());
        let (dir, file) = match unified {
            true if ctrls.is_empty() => (format!("/sys/fs/cgroup{path}"), v2),
            false if ctrls.split(',').any(|c| c == controller) => {
                (format!("/sys/fs/cgroup/{controller}{path}"), v1)
            }
            _ => continue,
        };
        return std::fs::read_to_string(format!("{dir}/{file}"))
            .ok()
            .map(|s| s.trim().to_string());
    }
    None
}

#[test]
fn limits_reach_the_containers_cgroup() {
    let Some(k) = setup() else { return };
    k.run(&[
        "run",
        "-d",
        "--name",
        "limits",
        "-m",
        "64m",
        "--memory-swap",
        "128m",
        "--memory-reservation",
        "32m",
        "-c",
        "512",
        "--cpuset-cpus",
        "0",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    let _c = k.guard("limits");
    let v = inspect(&k, "limits");
    let pid = v["State"]["Pid"].as_i64().unwrap();
    assert!(pid > 0, "{v}");
    let read = |c, v1, v2| cgroup_file(pid, c, v1, v2).unwrap_or_default();
    assert_eq!(
        read("memory", "memory.limit_in_bytes", "memory.max"),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        read("memory", "memory.soft_limit_in_bytes", "memory.low"),
        (32u64 << 20).to_string()
    );
    if let Some(sw) = cgroup_file(
        pid,
        "memory",
        "memory.memsw.limit_in_bytes",
        "memory.swap.max",
    ) {
        let want: u64 = match std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            true => 64 << 20,
            false => 128 << 20,
        };
        assert_eq!(sw, want.to_string());
    }
    // cgroup v2 has a weight instead (runc's conversion of 512).
    let shares = read("cpu", "cpu.shares", "cpu.weight");
    assert!(shares == "512" || shares == "20", "{shares}");
    assert_eq!(read("cpuset", "cpuset.cpus", "cpuset.cpus"), "0");
    assert_eq!(read("pids", "pids.max", "pids.max"), "50");
    let quota = read("cpu", "cpu.cfs_quota_us", "cpu.max");
    assert!(quota == "50000" || quota == "50000 100000", "{quota}");
    let hc = &v["HostConfig"];
    assert_eq!(hc["CpuShares"], 512);
    assert_eq!(hc["CpusetCpus"], "0");
    assert_eq!(hc["MemorySwap"], 128i64 << 20);
    assert_eq!(hc["MemoryReservation"], 32i64 << 20);
}

/// `run --rm ARGS… busybox sh -c SCRIPT`'s output.
fn inside(k: &Kiln, args: &[&str], script: &str) -> String {
    let mut all = vec!["run", "--rm", "--network", "none"];
    all.extend_from_slice(args);
    all.extend(["busybox", "sh", "-c", script]);
    k.run(&all).ok().stdout.trim().to_string()
}

fn status_field(k: &Kiln, args: &[&str], field: &str) -> String {
    let line = inside(k, args, &format!("grep '^{field}:' /proc/self/status"));
    line.split_whitespace().nth(1).unwrap_or("").to_string()
}

#[test]
fn process_settings_seen_inside() {
    let Some(k) = setup() else { return };
    assert_eq!(
        inside(
            &k,
            &["--ulimit", "nofile=1234:2345"],
            "ulimit -n; ulimit -Hn"
        ),
        "1234\n2345"
    );
    // docker's default set is 0xa80425fb; CHOWN is bit 0, NET_ADMIN bit 12.
    assert_eq!(status_field(&k, &[], "CapEff"), "00000000a80425fb");
    assert_eq!(
        status_field(&k, &["--cap-drop", "chown"], "CapEff"),
        "00000000a80425fa"
    );
    assert_eq!(
        status_field(
            &k,
            &["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"],
            "CapEff"
        ),
        "0000000000001000"
    );
    assert_eq!(status_field(&k, &[], "NoNewPrivs"), "0");
    assert_eq!(
        status_field(&k, &["--security-opt", "no-new-privileges"], "NoNewPrivs"),
        "1"
    );
    assert_eq!(status_field(&k, &[], "Seccomp"), "2");
    assert_eq!(
        status_field(&k, &["--security-opt", "seccomp=unconfined"], "Seccomp"),
        "0"
    );
    let df = inside(&k, &["--shm-size", "1m"], "df -k /dev/shm | tail -n 1");
    assert_eq!(df.split_whitespace().nth(1), Some("1024"), "{df}");
    // --init: tini is pid 1, the command its child.
    let out = inside(
        &k,
        &["--init"],
        "tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/$$/stat | cut -d' ' -f4",
    );
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap().trim(),
        "/sbin/docker-init -- sh -c tr '\\0' ' ' < /proc/1/cmdline; echo; cat /proc/$$/stat | cut -d' ' -f4"
    );
    assert_eq!(lines.next(), Some("1"), "the shell's parent is the init");
}

#[test]
fn device_adds_that_node_only() {
    let Some(k) = setup() else { return };
    // loop-control (10:237) is outside docker's default device list.
    if !std::path::Path::new("/dev/loop-control").exists() {
        eprintln!("skipping: the host has no /dev/loop-control");
        return;
    }
    let out = inside(
        &k,
        &["--device", "/dev/loop-control:/dev/lc:r"],
        "ls -ln /dev/lc; true < /dev/lc && echo read-ok; true >> /dev/lc 2>/dev/null || echo write-denied",
    );
    let mut lines = out.lines();
    let ls = lines.next().unwrap();
    assert!(ls.starts_with('c') && ls.contains("10, 237"), "{out}");
    assert_eq!(
        lines.collect::<Vec<_>>(),
        ["read-ok", "write-denied"],
        "{out}"
    );
    // Without it, a node made by hand stays unusable (the cgroup's rules).
    let out = inside(
        &k,
        &[],
        "mknod /dev/lc c 10 237; true < /dev/lc 2>/dev/null || echo denied",
    );
    assert_eq!(out, "denied");
}

#[test]
fn privileged_lifts_the_confinement() {
    let Some(k) = setup() else { return };
    // Every capability kiln itself may hand on.
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    let bnd = host
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_string();
    let p = ["--privileged"];
    assert_eq!(status_field(&k, &p, "CapEff"), bnd);
    assert_eq!(status_field(&k, &p, "Seccomp"), "0");
    let out = inside(
        &k,
        &p,
        "grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1; \
         test -e /dev/loop-control && echo host-devices; \
         grep -c ' /proc/kcore ' /proc/mounts || true",
    );
    assert_eq!(out, "rw\nhost-devices\n0", "{out}");
}

#[test]
fn seccomp_profile_from_a_file() {
    let Some(k) = setup() else { return };
    // docker's format: a rule for everyone, and one that only holds
    // without CAP_FOWNER (docker's `excludes`).
    let profile = k.dir.path().join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "archMap": [], "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            {"names": ["chmod", "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO",
             "excludes": {"caps": ["CAP_FOWNER"]}}
        ]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let script = "touch /f; mkdir /d 2>/dev/null || echo no-mkdir; \
                  chmod 600 /f 2>/dev/null && echo chmod-ok || echo no-chmod";
    assert_eq!(
        inside(&k, &["--security-opt", &opt], script),
        "no-mkdir\nchmod-ok"
    );
    assert_eq!(
        inside(
            &k,
            &["--security-opt", &opt, "--cap-drop", "FOWNER"],
            script
        ),
        "no-mkdir\nno-chmod"
    );
    assert_eq!(status_field(&k, &["--security-opt", &opt], "Seccomp"), "2");
    std::fs::write(&profile, r#"{"defaultAction": "SCMP_ACT_NOTIFY"}"#).unwrap();
    let r = k
        .run(&["create", "--security-opt", &opt, "busybox", "true"])
        .code(125);
    assert!(r.stderr.contains("not supported"), "{}", r.stderr);
}

#[test]
fn stop_signal_and_timeout() {
    let Some(k) = setup() else { return };
    // The container exits cleanly on USR1 only; TERM would leave it to SIGKILL.
    k.run(&[
        "run",
        "-d",
        "--name",
        "sig",
        "--stop-signal",
        "USR1",
        "--stop-timeout",
        "30",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' USR1; trap '' TERM; touch /ready; while true; do sleep 0.1; done",
    ])
    .ok();
    let _c = k.guard("sig");
    common::wait_until("the trap", Duration::from_secs(20), || {
        k.run(&["exec", "sig", "test", "-e", "/ready"]).code == 0
    });
    let v = inspect(&k, "sig");
    assert_eq!(v["Config"]["StopSignal"], "USR1");
    assert_eq!(v["Config"]["StopTimeout"], 30);
    k.run(&["stop", "sig"]).ok();
    assert_eq!(inspect(&k, "sig")["State"]["ExitCode"], 7);
}

#[test]
fn unsupported_and_bad_flags_are_refused() {
    let Some(k) = setup() else { return };
    for (args, why) in [
        (&["--device", "/etc/passwd"][..], "is not a device node"),
        (
            &["--device", "/dev/null:/tmp/null"][..],
            "must be below /dev",
        ),
        (&["--device", "/dev/null:/dev/n:rx"][..], "invalid --device"),
        (
            &["--security-opt", "seccomp=/nonexistent/p.json"][..],
            "--security-opt seccomp=/nonexistent/p.json",
        ),
        (&["--ulimit", "bogus=1"][..], "unknown limit name"),
        (&["--ulimit", "nofile=10:5"][..], "exceeds the hard limit"),
        (&["--memory-swap", "1g"][..], "--memory-swap needs --memory"),
        (&["--cap-add", "NOPE"][..], "unknown capability"),
        (&["--cpuset-cpus", "0-x"][..], "invalid --cpuset-cpus"),
        (&["--stop-signal", "NOPE"][..], "invalid signal"),
        (
            &["-t", "--runtime", "/usr/sbin/runc"][..],
            "create -t with --runtime",
        ),
    ] {
        let mut all = vec!["create"];
        all.extend_from_slice(args);
        all.extend(["busybox", "true"]);
        let r = k.run(&all).code(125);
        assert!(r.stderr.contains(why), "{args:?}: {}", r.stderr);
    }
    assert_eq!(k.run(&["ps", "-a", "-q"]).ok().stdout, "");
}
