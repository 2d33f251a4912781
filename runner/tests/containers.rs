//! Real containers on this machine (root only; skipped otherwise).
//! Run with `cargo test -p runner --test containers [-- FILTER]`.

mod common;

use common::*;
use runner::spec::{MountSpec, Network, SpecParams};
use runner::{ExitStatus, Rootfs, RunOptions, Runtime};
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const HELPER_ENV: &str = "KILN_RUNNER_TEST_HELPER";
const RUNC: &str = "/usr/sbin/runc";

/// Helper mode: `ROOTFS BUNDLE CMD...` runs one container with inherited
/// stdio and exits with its docker exit code. Used where the test needs the
/// runner in a separate process (signals, another user).
fn helper() -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let p = SpecParams {
        args: args[2..].to_vec(),
        hostname: Some("helper".into()),
        network: if std::env::var_os("KILN_TEST_NET_HOST").is_some() {
            Network::Host
        } else {
            Network::None
        },
        ..Default::default()
    };
    let rootfs = match std::env::var("KILN_TEST_LOWER") {
        Ok(l) => Rootfs::Overlay {
            lower: vec![PathBuf::from(l)],
            upper: PathBuf::from(&args[1]).join("upper"),
            work: PathBuf::from(&args[1]).join("work"),
        },
        Err(_) => Rootfs::Dir(PathBuf::from(&args[0])),
    };
    let opts = RunOptions::new(
        format!("kiln-helper-{}", std::process::id()),
        &args[1],
        rootfs,
    );
    let code = match runner::spec::build(&p).and_then(|s| runner::run(&s, &opts)) {
        Ok(st) => st.code(),
        Err(e) => {
            eprintln!("helper: {e}");
            e.exit_code()
        }
    };
    std::process::exit(code as i32)
}

fn main() {
    if std::env::var_os(HELPER_ENV).is_some() {
        helper();
    }
    if !is_root() {
        println!("skipping the runner's container tests: they need root (CI runs them as root)");
        return;
    }
    let env = Env::new();
    let cases: &[Case<Env>] = &[
        ("pid_is_1", pid_is_1),
        ("hostname", hostname),
        ("proc_only_container", proc_only_container),
        ("network_none", network_none),
        ("network_host", network_host),
        ("readonly_root", readonly_root),
        ("bind_mount", bind_mount),
        ("exit_codes", exit_codes),
        ("sigkill_137", sigkill_137),
        ("user_nobody", user_nobody),
        ("env_user_workdir", env_user_workdir),
        ("capabilities", capabilities),
        ("devices_and_masks", devices_and_masks),
        ("sigterm_forwarded", sigterm_forwarded),
        ("overlay_two_lowers", overlay_two_lowers),
        ("overlay_without_layers", overlay_without_layers),
        ("copy_fallback", copy_fallback),
        ("memory_limit", memory_limit),
        ("cloned_into_its_cgroup", cloned_into_its_cgroup),
        ("runc_agrees", runc_agrees),
        ("runc_overlay", runc_overlay),
        ("rootless", rootless),
        ("sysctl_oom_and_refusals", sysctl_oom_and_refusals),
        ("cgroup_mount_read_only", cgroup_mount),
        ("seccomp_default_profile", seccomp_default),
        ("no_leaked_fds", no_leaked_fds),
        ("terminal", terminal),
        ("detach", detach),
        ("session_keyring_is_private", session_keyring),
        ("no_mount_left", no_mount_left),
    ];
    let ok = drive(&env, cases);
    // Remove the temporary tree before exiting: exit() skips destructors.
    drop(env);
    if !ok {
        std::process::exit(1);
    }
}

fn pid_is_1(e: &Env) -> TestResult {
    expect_stdout(
        &run_captured(&params(&["sh", "-c", "echo $$"]), e.opts()),
        "1",
    )
}

fn hostname(e: &Env) -> TestResult {
    let o = run_captured(
        &params(&["sh", "-c", "hostname; cat /etc/hostname"]),
        e.opts(),
    );
    expect_stdout(&o, "kilnbox\nkilnbox")
}

fn proc_only_container(e: &Env) -> TestResult {
    let o = run_captured(&params(&["ls", "/proc"]), e.opts());
    let pids: Vec<&str> = o
        .stdout
        .split_whitespace()
        .filter(|w| w.chars().all(|c| c.is_ascii_digit()))
        .collect();
    check(o.code() == 0 && pids == ["1"], || {
        format!("pids in /proc: {pids:?} ({:?}, {})", o.status, o.stderr)
    })
}

fn interfaces(o: &Output) -> Vec<String> {
    // /proc/net/dev: two header lines, then "  name: counters".
    o.stdout
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|s| s.trim().to_string())
        .collect()
}

fn network_none(e: &Env) -> TestResult {
    let o = run_captured(
        &params(&[
            "sh",
            "-c",
            "cat /proc/net/dev; ip link show lo | grep -c UP",
        ]),
        e.opts(),
    );
    let ifs = interfaces(&o);
    check(
        o.code() == 0
            && ifs
                .iter()
                .filter(|i| !i.chars().all(|c| c.is_ascii_digit()))
                .eq(["lo"].iter()),
        || format!("interfaces {ifs:?}, {:?} {}", o.status, o.stderr),
    )?;
    check(o.stdout.trim_end().ends_with('1'), || {
        format!("lo is not up: {}", o.stdout)
    })
}

fn network_host(e: &Env) -> TestResult {
    let mut p = params(&["cat", "/proc/net/dev"]);
    p.network = Network::Host;
    let o = run_captured(&p, e.opts());
    let host = fs::read_to_string("/proc/net/dev")
        .unwrap_or_default()
        .lines()
        .count();
    check(o.code() == 0 && o.stdout.lines().count() == host, || {
        format!("host netns not shared: {}", o.stdout)
    })
}

fn readonly_root(e: &Env) -> TestResult {
    let mut p = params(&["touch", "/should-fail"]);
    p.readonly_rootfs = true;
    let o = run_captured(&p, e.opts());
    check(o.code() != 0 && o.stderr.contains("Read-only"), || {
        format!("write succeeded: {:?} {}", o.status, o.stderr)
    })?;
    check(!e.rootfs.join("should-fail").exists(), || {
        "file created on a read-only root".into()
    })?;
    let mut p = params(&[
        "sh",
        "-c",
        "echo ok > /tmp/rw-check && cat /tmp/rw-check && rm /tmp/rw-check",
    ]);
    p.readonly_rootfs = false;
    expect_stdout(&run_captured(&p, e.opts()), "ok")
}

fn bind_mount(e: &Env) -> TestResult {
    let host = e.dir.path().join("shared");
    fs::create_dir_all(&host).map_err(|x| x.to_string())?;
    fs::write(host.join("from-host"), "hello").map_err(|x| x.to_string())?;
    let mut p = params(&[
        "sh",
        "-c",
        "cat /data/from-host; echo back > /data/from-container",
    ]);
    p.mounts.push(MountSpec::Bind {
        source: host.clone(),
        destination: "/data".into(),
        readonly: false,
    });
    expect_stdout(&run_captured(&p, e.opts()), "hello")?;
    let back = fs::read_to_string(host.join("from-container")).unwrap_or_default();
    check(back == "back\n", || format!("host sees {back:?}"))?;
    let mut p = params(&["sh", "-c", "echo x > /data/ro-write"]);
    p.mounts.push(MountSpec::Bind {
        source: host.clone(),
        destination: "/data".into(),
        readonly: true,
    });
    let o = run_captured(&p, e.opts());
    check(o.code() != 0 && !host.join("ro-write").exists(), || {
        format!("read-only bind was writable: {:?}", o.status)
    })
}

fn exit_codes(e: &Env) -> TestResult {
    for (args, want) in [
        (vec!["true"], 0u8),
        (vec!["sh", "-c", "exit 3"], 3),
        (vec!["/etc/passwd"], 126),
        (vec!["no-such-program"], 127),
        (vec!["/no/such/path"], 127),
    ] {
        let o = run_captured(&params(&args), e.opts());
        check(o.code() == want, || {
            format!("{args:?}: want {want}, got {} ({:?})", o.code(), o.status)
        })?;
    }
    Ok(())
}

fn sigkill_137(e: &Env) -> TestResult {
    let spec = runner::spec::build(&params(&["sleep", "30"])).map_err(|x| x.to_string())?;
    let c = runner::spawn(&spec, &e.opts()).map_err(|x| x.to_string())?;
    std::thread::sleep(Duration::from_millis(100));
    runner::kill(c.pid(), libc::SIGKILL).map_err(|x| x.to_string())?;
    let st = c.wait().map_err(|x| x.to_string())?;
    check(
        st == ExitStatus::Signaled(libc::SIGKILL) && st.code() == 137,
        || format!("got {st:?}"),
    )
}

fn user_nobody(e: &Env) -> TestResult {
    let u = runner::user::resolve_in(&e.rootfs, "nobody").map_err(|x| x.to_string())?;
    let mut p = params(&["sh", "-c", "id -u; id -g"]);
    (p.uid, p.gid) = (u.uid, u.gid);
    expect_stdout(&run_captured(&p, e.opts()), "65534\n65534")
}

fn env_user_workdir(e: &Env) -> TestResult {
    let u = runner::user::resolve_in(&e.rootfs, "65534:0").map_err(|x| x.to_string())?;
    let mut p = params(&["sh", "-c", "echo $FOO; pwd; id -u; id -g; echo $HOME"]);
    p.env = vec!["FOO=bar baz".into()];
    p.cwd = "/srv/app/deep".into();
    (p.uid, p.gid, p.home) = (u.uid, u.gid, Some(u.home));
    expect_stdout(
        &run_captured(&p, e.opts()),
        "bar baz\n/srv/app/deep\n65534\n0\n/nonexistent",
    )
}

fn cap_line<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("")
}

fn capabilities(e: &Env) -> TestResult {
    let o = run_captured(&params(&["cat", "/proc/self/status"]), e.opts());
    let want: u64 = runner::DOCKER_DEFAULT_CAPS
        .iter()
        .map(|n| 1u64 << runner::capability_number(n).unwrap_or(63))
        .sum();
    let bnd = u64::from_str_radix(cap_line(&o.stdout, "CapBnd:"), 16).unwrap_or(0);
    let eff = u64::from_str_radix(cap_line(&o.stdout, "CapEff:"), 16).unwrap_or(0);
    check(bnd == want && eff == want, || {
        format!("CapBnd {bnd:x} CapEff {eff:x}, want {want:x}")
    })?;
    let mut p = params(&["cat", "/proc/self/status"]);
    p.uid = 65534;
    let o = run_captured(&p, e.opts());
    let eff = u64::from_str_radix(cap_line(&o.stdout, "CapEff:"), 16).unwrap_or(1);
    check(eff == 0, || format!("non-root CapEff {eff:x}"))
}

fn devices_and_masks(e: &Env) -> TestResult {
    let script = "ls /dev | tr '\\n' ' '; echo; head -c 4 /dev/zero | wc -c; \
                  cat /proc/kcore | wc -c; echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo ro; \
                  touch /dev/shm/x && echo shm; test -d /dev/pts && echo pts";
    let o = run_captured(&params(&["sh", "-c", script]), e.opts());
    let lines: Vec<&str> = o.stdout.lines().collect();
    let devs: Vec<&str> = lines
        .first()
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx", "fd", "stdin",
        "mqueue",
    ] {
        check(devs.contains(&d), || {
            format!("/dev lacks {d}: {devs:?} ({})", o.stderr)
        })?;
    }
    check(
        lines.get(1..) == Some(&["4", "0", "ro", "shm", "pts"][..]),
        || format!("got {lines:?} / {}", o.stderr),
    )
}

fn self_exe() -> PathBuf {
    std::env::current_exe().expect("current exe")
}

fn sigterm_forwarded(e: &Env) -> TestResult {
    let bundle = e.dir.path().join("containers/sigterm");
    let script = "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done";
    let mut child = Command::new(self_exe())
        .env(HELPER_ENV, "1")
        .args([
            e.rootfs.to_str().unwrap_or(""),
            bundle.to_str().unwrap_or(""),
            "sh",
            "-c",
            script,
        ])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|x| x.to_string())?;
    let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
    let mut line = String::new();
    out.read_line(&mut line).map_err(|x| x.to_string())?;
    check(line.trim() == "ready", || format!("helper said {line:?}"))?;
    runner::kill(child.id() as i32, libc::SIGTERM).map_err(|x| x.to_string())?;
    let mut rest = String::new();
    out.read_line(&mut rest).map_err(|x| x.to_string())?;
    let st = child.wait().map_err(|x| x.to_string())?;
    check(rest.trim() == "got-term" && st.code() == Some(7), || {
        format!("after SIGTERM: {rest:?}, {st:?}")
    })
}

fn copy_tree(from: &Path, to: &Path) -> TestResult {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .map_err(|x| x.to_string())?;
    check(st.success(), || "cp -a failed".into())
}

fn overlay_two_lowers(e: &Env) -> TestResult {
    let base = e.dir.path().join("ovl");
    let (l1, l2, up, work) = (
        base.join("l1"),
        base.join("l2"),
        base.join("upper"),
        base.join("work"),
    );
    fs::create_dir_all(&base).map_err(|x| x.to_string())?;
    copy_tree(&e.rootfs, &l1)?;
    fs::create_dir_all(l2.join("etc")).map_err(|x| x.to_string())?;
    fs::write(l2.join("etc/motd"), "from layer two\n").map_err(|x| x.to_string())?;
    let mut opts = e.opts();
    // Volatile, so the second run must clear the marker it leaves.
    opts.overlay_volatile = true;
    opts.rootfs = Rootfs::Overlay {
        lower: vec![l1.clone(), l2.clone()],
        upper: up.clone(),
        work,
    };
    let o = run_captured(
        &params(&[
            "sh",
            "-c",
            "cat /etc/motd; echo new > /tmp/written; rm /etc/passwd",
        ]),
        opts,
    );
    expect_stdout(&o, "from layer two")?;
    check(
        fs::read_to_string(up.join("tmp/written")).ok().as_deref() == Some("new\n"),
        || "write not in upper".into(),
    )?;
    check(
        !l1.join("tmp/written").exists() && l1.join("etc/passwd").exists(),
        || "lower layer modified".into(),
    )?;
    let wh = fs::symlink_metadata(up.join("etc/passwd"))
        .map_err(|x| format!("no whiteout in upper: {x}"))?;
    use std::os::unix::fs::FileTypeExt;
    check(wh.file_type().is_char_device(), || {
        "deletion is not a whiteout".into()
    })?;
    // A second run on the same upper/work (volatile left its marker) sees
    // the first run's writes.
    let mut opts = e.opts();
    // Volatile, so the second run must clear the marker it leaves.
    opts.overlay_volatile = true;
    opts.rootfs = Rootfs::Overlay {
        lower: vec![l1, l2],
        upper: up,
        work: base.join("work"),
    };
    expect_stdout(
        &run_captured(
            &params(&[
                "sh",
                "-c",
                "cat /tmp/written; test -e /etc/passwd || echo gone",
            ]),
            opts,
        ),
        "new\ngone",
    )
}

fn copy_fallback(e: &Env) -> TestResult {
    // Force the fallback by giving overlay an upper on a different
    // filesystem than work (EXDEV/EINVAL from the kernel).
    let base = e.dir.path().join("fallback");
    let l1 = base.join("l1");
    fs::create_dir_all(&base).map_err(|x| x.to_string())?;
    copy_tree(&e.rootfs, &l1)?;
    let shm = tempfile::Builder::new()
        .prefix("kiln-fallback")
        .tempdir_in("/dev/shm")
        .map_err(|x| x.to_string())?;
    let mut opts = e.opts();
    let bundle = opts.bundle.clone();
    opts.rootfs = Rootfs::Overlay {
        lower: vec![l1],
        upper: base.join("upper"),
        work: shm.path().join("work"),
    };
    opts.warn = |_| {};
    let o = run_captured(
        &params(&["sh", "-c", "echo copied > /tmp/f; cat /tmp/f"]),
        opts,
    );
    expect_stdout(&o, "copied")?;
    check(bundle.join("rootfs-copy/tmp/f").exists(), || {
        "fallback copy not used".into()
    })?;
    // A caller whose changes are the upper directory (a build step) turns
    // the copy off: the run fails, naming the overlay mount, and runs
    // nothing (the write would have gone to a copy and been lost).
    let mut opts = e.opts();
    let bundle = opts.bundle.clone();
    opts.rootfs = Rootfs::Overlay {
        lower: vec![base.join("l1")],
        upper: base.join("upper2"),
        work: shm.path().join("work2"),
    };
    opts.warn = |_| {};
    opts.copy_fallback = false;
    let o = run_captured(&params(&["sh", "-c", "echo lost > /tmp/g"]), opts);
    let err = match &o.status {
        Err(e) => e.to_string(),
        Ok(s) => return Err(format!("ran without its overlay: {s:?}")),
    };
    check(err.contains("overlay mount"), || {
        format!("error does not name the overlay mount: {err}")
    })?;
    check(
        !bundle.join("rootfs-copy").exists() && !base.join("upper2/tmp/g").exists(),
        || "ran on a copy".into(),
    )
}

fn memory_limit(e: &Env) -> TestResult {
    let mut p = params(&["sh", "-c", "cat /proc/self/cgroup | grep memory"]);
    p.resources.memory_bytes = Some(64 << 20);
    p.resources.pids = Some(64);
    let mut opts = e.opts();
    opts.warn = |w| println!("    (warning: {w})");
    let id = opts.id.clone();
    let o = run_captured(&p, opts);
    // Its own cgroup namespace: the container's cgroup is its root.
    check(
        o.code() == 0 && o.stdout.trim_end().ends_with(":memory:/"),
        || {
            format!(
                "not the root of its own cgroup namespace: {:?} {}",
                o.stdout, o.stderr
            )
        },
    )?;
    // While a container runs, the limits are in its cgroup files.
    let mut p = params(&["sleep", "5"]);
    p.resources = runner::spec::Resources {
        memory_bytes: Some(64 << 20),
        pids: Some(64),
        cpus: Some(0.5),
        ..Default::default()
    };
    let mut opts = e.opts();
    let id2 = opts.id.clone();
    opts.warn = |w| println!("    (warning: {w})");
    let spec = runner::spec::build(&p).map_err(|x| x.to_string())?;
    let c = runner::spawn(&spec, &opts).map_err(|x| x.to_string())?;
    let read = |file: &str| -> String {
        let found = Command::new("find")
            .args(["/sys/fs/cgroup", "-path", &format!("*/kiln-{id2}/{file}")])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        fs::read_to_string(found.lines().next().unwrap_or("/nonexistent"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let got = (
        read("memory.limit_in_bytes"),
        read("pids.max"),
        read("cpu.cfs_quota_us"),
    );
    // Seen from the host, it is in its own cgroups, device rules included.
    let host_view = fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).unwrap_or_default();
    let devices = read("devices.list");
    let unified = unified_hierarchy();
    runner::kill(c.pid(), libc::SIGKILL).map_err(|x| x.to_string())?;
    c.wait().map_err(|x| x.to_string())?;
    let want = (
        (64u64 << 20).to_string(),
        "64".to_string(),
        "50000".to_string(),
    );
    check(got == want, || {
        format!("cgroup files {got:?}, want {want:?}")
    })?;
    // The device rules are a program on its unified cgroup where there is
    // one (see `cloned_into_its_cgroup`), else the v1 controller's list.
    let tags: &[&str] = match unified {
        true => &[":memory:", ":pids:", "0::"],
        false => &[":memory:", ":pids:", ":devices:"],
    };
    for tag in tags {
        let line = host_view.lines().find(|l| l.contains(tag)).unwrap_or("");
        check(line.ends_with(&format!("/kiln-{id2}")), || {
            format!("not in its {tag} cgroup: {host_view}")
        })?;
    }
    check(
        unified || devices.starts_with("c *:* m\nb *:* m\nc 1:3 rwm"),
        || format!("devices.list: {devices:?}"),
    )?;
    for id in [id, id2] {
        let leftover = Command::new("find")
            .args(["/sys/fs/cgroup", "-name", &format!("kiln-{id}")])
            .output()
            .map_err(|x| x.to_string())?;
        check(leftover.stdout.is_empty(), || {
            format!(
                "cgroups left: {}",
                String::from_utf8_lossy(&leftover.stdout)
            )
        })?;
    }
    Ok(())
}

/// Is there a cgroup v2 hierarchy (pure, or hybrid's `unified`)?
fn unified_hierarchy() -> bool {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .iter()
        .any(|r| Path::new(r).join("cgroup.controllers").exists())
}

/// A container with device rules (root's, no limits) starts in its own
/// cgroup of the unified hierarchy, cloned into it (`CLONE_INTO_CGROUP`),
/// with the device program there; on a hybrid host it is moved into no v1
/// cgroup (no `devices`, no `freezer`): every such move waits out an RCU
/// grace period, several milliseconds of each container's start.
fn cloned_into_its_cgroup(e: &Env) -> TestResult {
    if !unified_hierarchy() {
        println!("    (skipped: no cgroup2 hierarchy)");
        return Ok(());
    }
    let opts = e.opts();
    let id = opts.id.clone();
    let spec = runner::spec::build(&params(&["sleep", "5"])).map_err(|x| x.to_string())?;
    let c = runner::spawn(&spec, &opts).map_err(|x| x.to_string())?;
    let host_view = fs::read_to_string(format!("/proc/{}/cgroup", c.pid())).unwrap_or_default();
    runner::kill(c.pid(), libc::SIGKILL).map_err(|x| x.to_string())?;
    c.wait().map_err(|x| x.to_string())?;
    let name = format!("/kiln-{id}");
    let line = host_view
        .lines()
        .find(|l| l.starts_with("0::"))
        .unwrap_or("");
    check(line.ends_with(&name), || {
        format!("not in its unified cgroup: {host_view}")
    })?;
    let moved: Vec<&str> = host_view
        .lines()
        .filter(|l| !l.starts_with("0::") && l.ends_with(&name))
        .collect();
    check(moved.is_empty(), || {
        format!("moved into v1 cgroups too: {moved:?}")
    })
}

fn runc_agrees(e: &Env) -> TestResult {
    if !Path::new(RUNC).exists() {
        return Err(format!("{RUNC} is missing (apt-get install runc)"));
    }
    let script = "echo $$; hostname; id; pwd; cat /proc/net/dev | tail -n +3 | cut -d: -f1; ls /dev | tr '\\n' ' '; \
                  grep -E 'CapBnd|CapEff|NoNewPrivs|Seccomp:' /proc/self/status; unshare -U true 2>/dev/null || echo unshare-denied; cat /etc/hostname; echo $FOO; exit 3";
    let mut p = params(&["sh", "-c", script]);
    p.env = vec!["FOO=bar".into()];
    p.cwd = "/tmp".into();
    let builtin = run_captured(&p, e.opts());
    let mut opts = e.opts();
    opts.runtime = Runtime::External(RUNC.into());
    let runc = run_captured(&p, opts);
    check(builtin.code() == 3 && runc.code() == 3, || {
        format!(
            "exit codes {} vs {} ({})",
            builtin.code(),
            runc.code(),
            runc.stderr
        )
    })?;
    check(builtin.stdout == runc.stdout, || {
        format!("builtin:\n{}\nrunc:\n{}", builtin.stdout, runc.stdout)
    })?;
    for args in [vec!["nope"], vec!["/etc/passwd"]] {
        let b = run_captured(&params(&args), e.opts());
        let mut opts = e.opts();
        opts.runtime = Runtime::External(RUNC.into());
        let r = run_captured(&params(&args), opts);
        check(b.code() == r.code(), || {
            format!("{args:?}: builtin {} runc {}", b.code(), r.code())
        })?;
    }
    Ok(())
}

fn runc_overlay(e: &Env) -> TestResult {
    let base = e.dir.path().join("runc-ovl");
    let l1 = base.join("l1");
    fs::create_dir_all(&base).map_err(|x| x.to_string())?;
    copy_tree(&e.rootfs, &l1)?;
    let before = mountinfo();
    let mut opts = e.opts();
    opts.runtime = Runtime::External(RUNC.into());
    opts.rootfs = Rootfs::Overlay {
        lower: vec![l1],
        upper: base.join("upper"),
        work: base.join("work"),
    };
    let o = run_captured(&params(&["sh", "-c", "echo hi > /tmp/x; cat /tmp/x"]), opts);
    expect_stdout(&o, "hi")?;
    check(base.join("upper/tmp/x").exists(), || {
        "runc write not in upper".into()
    })?;
    check(mountinfo() == before, || {
        "runc overlay leaked a mount".into()
    })
}

const ROOTLESS_USER: &str = "kilnrootless";

fn ensure_user() -> Result<(u32, u32), String> {
    let id = |flag: &str| -> Option<u32> {
        let o = Command::new("id")
            .args([flag, ROOTLESS_USER])
            .output()
            .ok()?;
        String::from_utf8_lossy(&o.stdout).trim().parse().ok()
    };
    if id("-u").is_none() {
        let st = Command::new("useradd")
            .args(["-M", "-s", "/bin/sh", ROOTLESS_USER])
            .status()
            .map_err(|x| x.to_string())?;
        check(st.success(), || "useradd failed".into())?;
    }
    for f in ["/etc/subuid", "/etc/subgid"] {
        let text = fs::read_to_string(f).unwrap_or_default();
        if !text
            .lines()
            .any(|l| l.starts_with(&format!("{ROOTLESS_USER}:")))
        {
            fs::write(f, format!("{text}{ROOTLESS_USER}:700000:65536\n"))
                .map_err(|x| x.to_string())?;
        }
    }
    Ok((id("-u").ok_or("no uid")?, id("-g").ok_or("no gid")?))
}

fn chown_r(p: &Path, uid: u32, gid: u32) -> TestResult {
    let st = Command::new("chown")
        .arg("-R")
        .arg(format!("{uid}:{gid}"))
        .arg(p)
        .status()
        .map_err(|x| x.to_string())?;
    check(st.success(), || "chown failed".into())
}

fn rootless(e: &Env) -> TestResult {
    let (uid, gid) = ensure_user()?;
    // The user needs its own copies: the test's temp dir is root-only, and
    // the helper binary must be reachable.
    let base = tempfile::Builder::new()
        .prefix("kiln-rootless")
        .tempdir()
        .map_err(|x| x.to_string())?;
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755))
        .map_err(|x| x.to_string())?;
    let rootfs = base.path().join("rootfs");
    copy_tree(&e.rootfs, &rootfs)?;
    let exe = base.path().join("helper");
    fs::copy(self_exe(), &exe).map_err(|x| x.to_string())?;
    let bundle = base.path().join("bundle");
    fs::create_dir_all(&bundle).map_err(|x| x.to_string())?;
    chown_r(&bundle, uid, gid)?;
    let script = "echo $$; id -u; hostname; echo w > /tmp/rootless-ok && cat /tmp/rootless-ok";
    let run = |lower: Option<&Path>, host_net: bool| {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid",
            &uid.to_string(),
            "--regid",
            &gid.to_string(),
            "--clear-groups",
        ])
        .arg(&exe)
        .args([
            rootfs.to_str().unwrap_or(""),
            bundle.to_str().unwrap_or(""),
            "sh",
            "-c",
            script,
        ])
        .env(HELPER_ENV, "1")
        .current_dir(base.path());
        if let Some(l) = lower {
            cmd.env("KILN_TEST_LOWER", l);
        }
        if host_net {
            cmd.env("KILN_TEST_NET_HOST", "1");
        }
        cmd.output()
    };
    // A rootless store unpacks layers as the user; the user is root in the
    // container, and overlay copy-up needs owners that are mapped.
    chown_r(&rootfs, uid, gid)?;
    let o = run(Some(&rootfs), false).map_err(|x| x.to_string())?;
    let out = String::from_utf8_lossy(&o.stdout);
    check(o.status.success() && out == "1\n0\nhelper\nw\n", || {
        format!(
            "rootless overlay: {:?} {out:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )
    })?;
    check(bundle.join("upper/tmp/rootless-ok").exists(), || {
        "rootless write not in upper".into()
    })?;
    // Host network: sysfs cannot be mounted from this user namespace, so
    // the runner binds the host's /sys read-only instead.
    let o = run(None, true).map_err(|x| x.to_string())?;
    let out = String::from_utf8_lossy(&o.stdout);
    check(o.status.success() && out == "1\n0\nhelper\nw\n", || {
        format!(
            "rootless, host network: {:?} {out:?} {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn no_mount_left(e: &Env) -> TestResult {
    let before = &e.mounts_before;
    let after = mountinfo();
    check(&after == before, || {
        format!("mounts changed:\nbefore:\n{before}\nafter:\n{after}")
    })
}

fn terminal(e: &Env) -> TestResult {
    let mut p = params(&["sh", "-c", "tty; test -t 0 && echo stdin-is-tty; exit 5"]);
    p.terminal = true;
    let o = run_captured(&p, e.opts());
    let lines: Vec<&str> = o.stdout.lines().map(str::trim_end).collect();
    check(
        o.code() == 5 && lines == ["/dev/pts/0", "stdin-is-tty"],
        || format!("terminal run: {:?} {:?} {}", o.status, o.stdout, o.stderr),
    )
}

fn detach(e: &Env) -> TestResult {
    let spec = runner::spec::build(&params(&["sleep", "30"])).map_err(|x| x.to_string())?;
    let mut opts = e.opts();
    opts.detach = true;
    let pid = runner::spawn(&spec, &opts)
        .map_err(|x| x.to_string())?
        .detach();
    std::thread::sleep(Duration::from_millis(50));
    let alive = Path::new(&format!("/proc/{pid}")).exists();
    runner::kill(pid, libc::SIGKILL).map_err(|x| x.to_string())?;
    let mut st = 0;
    // SAFETY: reaping the detached child this test started.
    let r = unsafe { libc::waitpid(pid, &mut st, 0) };
    check(alive && r == pid && libc::WIFSIGNALED(st), || {
        format!("detached pid {pid}: alive {alive}, wait {r} {st}")
    })?;
    // Its cgroups (device rules) outlive the handle, until removed.
    let name = format!("kiln-{}", opts.id);
    let find = || {
        Command::new("find")
            .args(["/sys/fs/cgroup", "-name", &name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    check(!find().is_empty(), || {
        "no cgroup for the detached container".into()
    })?;
    runner::remove_cgroups(&opts.id);
    let left = find();
    check(left.is_empty(), || format!("cgroups left: {left}"))
}

fn sysctl_oom_and_refusals(e: &Env) -> TestResult {
    let p = params(&[
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj",
    ]);
    let mut spec = runner::spec::build(&p).map_err(|x| x.to_string())?;
    if let Some(l) = spec.linux_mut() {
        l.set_sysctl(Some(
            [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
        ));
    }
    if let Some(pr) = spec.process_mut() {
        pr.set_oom_score_adj(Some(500));
    }
    let out = tempfile::tempfile().map_err(|x| x.to_string())?;
    let mut opts = e.opts();
    use std::os::fd::AsRawFd;
    opts.stdio = runner::Stdio::Fds {
        stdin: 0,
        stdout: out.as_raw_fd(),
        stderr: 2,
    };
    let st = runner::run(&spec, &opts).map_err(|x| x.to_string())?;
    let text = fs::read_to_string(format!("/proc/self/fd/{}", out.as_raw_fd())).unwrap_or_default();
    check(st.success() && text == "1\n500\n", || {
        format!("sysctl/oom: {st:?} {text:?}")
    })?;
    // A seccomp comparison kiln cannot compile must stop the run, not be
    // silently dropped.
    let mut profile = runner::seccomp::default_profile().map_err(|x| x.to_string())?;
    let mut rules = profile.syscalls().clone().unwrap_or_default();
    rules.push(
        oci_spec::runtime::LinuxSyscallBuilder::default()
            .names(vec!["write".to_string()])
            .action(oci_spec::runtime::LinuxSeccompAction::ScmpActErrno)
            .args(vec![oci_spec::runtime::LinuxSeccompArgBuilder::default()
                .index(2usize)
                .value(1u64 << 20)
                .op(oci_spec::runtime::LinuxSeccompOperator::ScmpCmpGt)
                .build()
                .map_err(|x| x.to_string())?])
            .build()
            .map_err(|x| x.to_string())?,
    );
    profile.set_syscalls(Some(rules));
    if let Some(l) = spec.linux_mut() {
        l.set_seccomp(Some(profile));
    }
    match runner::run(&spec, &e.opts()) {
        Err(err @ runner::RunError::Unsupported(_)) if err.exit_code() == 125 => Ok(()),
        other => Err(format!(
            "an unsupported seccomp rule must be refused, got {other:?}"
        )),
    }
}

fn cgroup_mount(e: &Env) -> TestResult {
    // The mount runc's and umoci's default configs carry.
    let p = params(&[
        "sh",
        "-c",
        "ls /sys/fs/cgroup | grep -c memory; mkdir /sys/fs/cgroup/memory/kiln-x 2>/dev/null || echo ro",
    ]);
    let mut spec = runner::spec::build(&p).map_err(|x| x.to_string())?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(
        oci_spec::runtime::MountBuilder::default()
            .destination("/sys/fs/cgroup")
            .typ("cgroup")
            .source("cgroup")
            .options(vec![
                "nosuid".into(),
                "noexec".into(),
                "nodev".into(),
                "relatime".into(),
                "ro".into(),
            ])
            .build()
            .map_err(|x| x.to_string())?,
    );
    spec.set_mounts(Some(mounts));
    let out = tempfile::tempfile().map_err(|x| x.to_string())?;
    let mut opts = e.opts();
    use std::os::fd::AsRawFd;
    opts.stdio = runner::Stdio::Fds {
        stdin: 0,
        stdout: out.as_raw_fd(),
        stderr: 2,
    };
    let st = runner::run(&spec, &opts).map_err(|x| x.to_string())?;
    let text = fs::read_to_string(format!("/proc/self/fd/{}", out.as_raw_fd())).unwrap_or_default();
    check(st.success() && text == "1\nro\n", || {
        format!("cgroup mount: {st:?} {text:?}")
    })
}

fn seccomp_default(e: &Env) -> TestResult {
    let script = "grep Seccomp: /proc/self/status | tr -d '\\t'; unshare -U true && echo unshared || echo denied";
    let o = run_captured(&params(&["sh", "-c", script]), e.opts());
    expect_stdout(&o, "Seccomp:2\ndenied")?;
    let mut p = params(&["sh", "-c", script]);
    p.seccomp_unconfined = true;
    expect_stdout(&run_captured(&p, e.opts()), "Seccomp:0\nunshared")
}

fn no_leaked_fds(e: &Env) -> TestResult {
    // A descriptor without close-on-exec, as a careless caller might hold.
    // SAFETY: dup of stdin into a new, inheritable descriptor.
    let fd = unsafe { libc::dup(0) };
    let o = run_captured(&params(&["ls", "/proc/self/fd"]), e.opts());
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    // ls itself holds one descriptor for the directory it lists.
    expect_stdout(&o, "0\n1\n2\n3")
}

fn overlay_without_layers(e: &Env) -> TestResult {
    // An image with no layers: everything the container sees is in upper.
    let base = e.dir.path().join("nolayers");
    fs::create_dir_all(&base).map_err(|x| x.to_string())?;
    copy_tree(&e.rootfs, &base.join("upper"))?;
    let mut opts = e.opts();
    opts.rootfs = Rootfs::Overlay {
        lower: vec![],
        upper: base.join("upper"),
        work: base.join("work"),
    };
    expect_stdout(&run_captured(&params(&["sh", "-c", "echo $$"]), opts), "1")
}

/// The container gets its own session keyring, not the runner's: checked
/// with a static helper (built with gcc now) and keyctl let through by an
/// unconfined seccomp profile.
fn session_keyring(e: &Env) -> TestResult {
    if Command::new("gcc").arg("--version").output().is_err() {
        println!("    (skipped: no gcc)");
        return Ok(());
    }
    let dir = tempfile::tempdir().map_err(|x| x.to_string())?;
    let src = dir.path().join("ses.c");
    fs::write(
        &src,
        "#include <stdio.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n\
         int main(void) { printf(\"%ld\\n\", syscall(SYS_keyctl, 0, -3, 0)); return 0; }\n",
    )
    .map_err(|x| x.to_string())?;
    let rootfs = dir.path().join("rootfs");
    copy_tree(&e.rootfs, &rootfs)?;
    let st = Command::new("gcc")
        .args(["-static", "-o"])
        .arg(rootfs.join("ses"))
        .arg(&src)
        .status()
        .map_err(|x| x.to_string())?;
    check(st.success(), || "gcc failed".into())?;
    // KEYCTL_GET_KEYRING_ID of the session keyring, without creating one.
    // SAFETY: keyctl with integer arguments.
    let host = unsafe { libc::syscall(libc::SYS_keyctl, 0, -3, 0) };
    let mut p = params(&["/ses"]);
    p.seccomp_unconfined = true;
    let mut opts = e.opts();
    opts.rootfs = Rootfs::Dir(rootfs);
    let o = run_captured(&p, opts);
    let inside: i64 = o.stdout.trim().parse().unwrap_or(-1);
    check(o.code() == 0 && inside > 0 && inside != host, || {
        format!(
            "session keyring: host {host}, container {:?} {}",
            o.stdout, o.stderr
        )
    })
}
