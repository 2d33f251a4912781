//! A container's life after `kiln run -d`, end to end with real busybox
//! containers (root only; skipped otherwise): restart policies carried out
//! by the monitor, logs with their streams and times, inspect, labels and
//! `ps --filter`. Waits poll with a generous timeout; nothing asserts on
//! how long anything took.

mod common;

use std::time::Duration;

use common::Kiln;
use serde_json::Value;

/// A store with busybox imported as `busybox`, or None when not root.
fn setup() -> Option<Kiln> {
    common::root_store()
}

fn out(k: &Kiln, args: &[&str]) -> String {
    k.run(args).ok().stdout
}

#[track_caller]
fn wait_for(what: &str, f: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(60), f)
}

/// The container's record as kiln keeps it.
fn record(k: &Kiln, id: &str) -> Value {
    let p = k
        .root()
        .join("kiln/containers")
        .join(id)
        .join("container.json");
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn monitor_alive(k: &Kiln, id: &str) -> bool {
    let p = k
        .root()
        .join("kiln/containers")
        .join(id)
        .join("monitor.pid");
    let pid = std::fs::read_to_string(p).unwrap();
    std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
}

fn run_d(k: &Kiln, args: &[&str]) -> String {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    out(k, &all).trim().to_string()
}

#[test]
fn on_failure_restarts_exactly_n_times() {
    let Some(k) = setup() else { return };
    let id = run_d(
        &k,
        &[
            "--restart",
            "on-failure:3",
            "busybox",
            "sh",
            "-c",
            "echo run; exit 2",
        ],
    );
    wait_for("the container to give up", || {
        record(&k, &id)["state"] == "exited"
    });
    let rec = record(&k, &id);
    assert_eq!(rec["restart_count"], 3, "{rec:#}");
    let c = &inspect(&k, &[&id])[0];
    assert_eq!(c["RestartCount"], 3, "{c:#}");
    assert_eq!(c["State"]["Status"], "exited", "{c:#}");
    assert_eq!(c["KilnRuns"].as_array().unwrap().len(), 4, "{c:#}");
    assert_eq!(rec["exit_code"], 2, "{rec:#}");
    let runs = rec["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 4, "{rec:#}");
    assert!(runs.iter().all(|r| r["ExitCode"] == 2), "{rec:#}");
    wait_for("the monitor to exit", || !monitor_alive(&k, &id));
    assert_eq!(out(&k, &["logs", &id]), "run\nrun\nrun\nrun\n");
    // A success is not a failure: no restart.
    let ok = run_d(&k, &["--restart", "on-failure", "busybox", "true"]);
    wait_for("the exit", || record(&k, &ok)["state"] == "exited");
    assert_eq!(record(&k, &ok)["restart_count"], 0);
}

#[test]
fn always_restarts_after_success_until_stopped() {
    let Some(k) = setup() else { return };
    let id = run_d(
        &k,
        &[
            "--name",
            "svc",
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "exit 0",
        ],
    );
    wait_for("two restarts", || {
        record(&k, &id)["restart_count"].as_u64() >= Some(2)
    });
    // Listed without -a while it restarts, as docker does.
    wait_for("ps to list it", || {
        out(&k, &["ps", "-q"]).contains(&id[..12])
    });
    k.run(&["stop", "-t", "1", "svc"]).ok();
    let rec = record(&k, &id);
    assert_eq!(rec["state"], "exited", "{rec:#}");
    wait_for("the monitor to exit", || !monitor_alive(&k, &id));
    let count = record(&k, &id)["restart_count"].clone();
    assert_eq!(record(&k, &id)["state"], "exited");
    assert_eq!(record(&k, &id)["restart_count"], count);

    // A long-running one: stop ends the policy too (SIGTERM, exit 143).
    let long = run_d(
        &k,
        &[
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 143' TERM; sleep 100 & wait",
        ],
    );
    wait_for("it to run", || record(&k, &long)["state"] == "running");
    k.run(&["stop", &long]).ok();
    wait_for("the monitor to exit", || !monitor_alive(&k, &long));
    let rec = record(&k, &long);
    assert_eq!(
        (rec["state"].as_str(), rec["restart_count"].as_u64()),
        (Some("exited"), Some(0)),
        "{rec:#}"
    );
}

#[test]
fn kill_ends_the_policy_as_docker() {
    let Some(k) = setup() else { return };
    let id = run_d(&k, &["--restart", "always", "busybox", "sleep", "100"]);
    wait_for("it to run", || record(&k, &id)["state"] == "running");
    k.run(&["kill", &id]).ok();
    wait_for("the monitor to exit", || !monitor_alive(&k, &id));
    let rec = record(&k, &id);
    assert_eq!(rec["state"], "exited", "{rec:#}");
    assert_eq!(rec["exit_code"], 137, "{rec:#}");
    assert_eq!(rec["restart_count"], 0, "{rec:#}");
    // rm -f of a restarting container stops its monitor and removes it.
    let r = run_d(&k, &["--restart", "always", "busybox", "false"]);
    wait_for("a restart", || {
        record(&k, &r)["restart_count"].as_u64() >= Some(1)
    });
    k.run(&["rm", "-f", &r]).ok();
    assert!(!k.root().join("kiln/containers").join(&r).exists());
}

#[test]
fn restart_flags_are_checked() {
    let Some(k) = setup() else { return };
    let r = k
        .run(&[
            "run",
            "-d",
            "--rm",
            "--restart",
            "always",
            "busybox",
            "true",
        ])
        .code(125);
    assert!(r.stderr.contains("--restart and --rm"), "{}", r.stderr);
    let r = k
        .run(&["run", "--restart", "always", "busybox", "true"])
        .code(125);
    assert!(r.stderr.contains("needs -d"), "{}", r.stderr);
    let r = k
        .run(&["run", "-d", "--restart", "always:3", "busybox", "true"])
        .code(125);
    assert!(r.stderr.contains("on-failure"), "{}", r.stderr);
    assert_eq!(out(&k, &["ps", "-a", "-q"]), "");
}

#[test]
fn logs_keep_streams_apart() {
    let Some(k) = setup() else { return };
    let id = run_d(
        &k,
        &[
            "--name",
            "chatty",
            "busybox",
            "sh",
            "-c",
            "echo o1; echo e1 >&2; echo o2; echo e2 >&2; printf 'no newline'",
        ],
    );
    wait_for("the exit", || record(&k, &id)["state"] == "exited");
    let r = k.run(&["logs", "chatty"]).ok();
    assert_eq!(r.stdout, "o1\no2\nno newline");
    assert_eq!(r.stderr, "e1\ne2\n");
    // The last two lines (of one stream: the two streams are read apart,
    // so their order between them is the order they were read in).
    let abc = run_d(&k, &["busybox", "sh", "-c", "echo a; echo b; echo c"]);
    wait_for("the exit", || record(&k, &abc)["state"] == "exited");
    assert_eq!(out(&k, &["logs", "--tail", "2", &abc]), "b\nc\n");
    let r = k.run(&["logs", "--tail", "2", "chatty"]).ok();
    assert_eq!(r.stdout.lines().count() + r.stderr.lines().count(), 2);
    let r = k.run(&["logs", "-n", "0", "chatty"]).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""));
    // docker's RFC3339Nano with nine digits, in UTC, then a space.
    let r = k.run(&["logs", "-t", "chatty"]).ok();
    for line in r.stdout.lines().chain(r.stderr.lines()) {
        let (ts, _) = line.split_once(' ').unwrap();
        let b = ts.as_bytes();
        assert_eq!(b.len(), 30, "{line}");
        assert_eq!(
            (b[4], b[10], b[19], b[29]),
            (b'-', b'T', b'.', b'Z'),
            "{line}"
        );
        assert!(chrono_like(ts), "{line}");
    }
    // --since after everything: nothing; --until before everything: nothing.
    let r = k.run(&["logs", "--since", "2099-01-01", "chatty"]).ok();
    assert_eq!(r.stdout + &r.stderr, "");
    let r = k.run(&["logs", "--until", "1h", "chatty"]).ok();
    assert_eq!(r.stdout + &r.stderr, "");
    let r = k.run(&["logs", "--since", "1h", "chatty"]).ok();
    assert_eq!(r.stderr, "e1\ne2\n");
    k.run(&["logs", "--since", "yesterday", "chatty"]).code(125);
}

/// `YYYY-MM-DDTHH:MM:SS.NNNNNNNNNZ`, digits where digits go.
fn chrono_like(ts: &str) -> bool {
    ts.bytes().enumerate().all(|(i, b)| match i {
        4 | 7 => b == b'-',
        10 => b == b'T',
        13 | 16 => b == b':',
        19 => b == b'.',
        29 => b == b'Z',
        _ => b.is_ascii_digit(),
    })
}

#[test]
fn logs_follow_until_the_container_exits() {
    let Some(k) = setup() else { return };
    let sync = k.dir.path().join("sync");
    let vol = format!("{}:/sync", sync.display());
    let id = run_d(
        &k,
        &[
            "-v",
            &vol,
            "busybox",
            "sh",
            "-c",
            "echo first; while [ ! -e /sync/go ]; do sleep 0.05; done; echo last; echo bye >&2",
        ],
    );
    let mut child = k
        .cmd()
        .args(["logs", "-f", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Following: the first line arrives while the container still runs.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "first\n");
    assert_eq!(record(&k, &id)["state"], "running");
    std::fs::write(sync.join("go"), "").unwrap();
    // ... and ends by itself when the container exits, with all of it.
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(rest, "last\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "bye\n");
}

fn inspect(k: &Kiln, args: &[&str]) -> Value {
    let mut all = vec!["inspect"];
    all.extend_from_slice(args);
    serde_json::from_str(&out(k, &all)).unwrap()
}

#[test]
fn inspect_a_container_as_docker() {
    let Some(k) = setup() else { return };
    let vol = k.dir.path().join("data");
    let bind = format!("{}:/data:ro", vol.display());
    let id = run_d(
        &k,
        &[
            "--name",
            "web",
            "--label",
            "tier=front",
            "-l",
            "team",
            "-e",
            "A=1",
            "-w",
            "/tmp",
            "-v",
            &bind,
            "--restart",
            "on-failure:2",
            "busybox",
            "sleep",
            "100",
        ],
    );
    wait_for("it to run", || record(&k, &id)["state"] == "running");
    for v in [
        inspect(&k, &["web"]),
        inspect(&k, &["--type", "container", &id[..12]]),
        serde_json::from_str(&out(&k, &["container", "inspect", "web"])).unwrap(),
    ] {
        let c = &v[0];
        // ENTRYPOINT and CMD apart (busybox has no ENTRYPOINT).
        assert_eq!(c["Config"]["Entrypoint"], Value::Null, "{c:#}");
        assert_eq!(c["Config"]["Cmd"], serde_json::json!(["sleep", "100"]));
        assert_eq!(c["Id"], id.as_str(), "{c:#}");
        assert_eq!(c["Name"], "/web");
        assert_eq!(c["Path"], "sleep");
        assert_eq!(c["Args"], serde_json::json!(["100"]));
        let s = &c["State"];
        assert_eq!(s["Status"], "running", "{c:#}");
        assert_eq!(
            (s["Running"].as_bool(), s["Restarting"].as_bool()),
            (Some(true), Some(false))
        );
        assert!(s["Pid"].as_i64().unwrap() > 0, "{c:#}");
        assert_eq!(s["FinishedAt"], "0001-01-01T00:00:00Z");
        assert!(s["StartedAt"].as_str().unwrap().ends_with('Z'));
        for key in ["Paused", "OOMKilled", "Dead", "ExitCode", "Error"] {
            assert!(s.get(key).is_some(), "{key} missing: {c:#}");
        }
        assert_eq!(c["RestartCount"], 0);
        assert_eq!(
            c["HostConfig"]["RestartPolicy"],
            serde_json::json!({"Name": "on-failure", "MaximumRetryCount": 2})
        );
        assert_eq!(c["HostConfig"]["Binds"], serde_json::json!([bind.clone()]));
        assert_eq!(c["Mounts"][0]["Destination"], "/data");
        assert_eq!(c["Mounts"][0]["RW"], false);
        let cfg = &c["Config"];
        assert_eq!(
            cfg["Labels"],
            serde_json::json!({"team": "", "tier": "front"})
        );
        assert_eq!(cfg["WorkingDir"], "/tmp");
        assert!(
            cfg["Env"].as_array().unwrap().iter().any(|e| e == "A=1"),
            "{c:#}"
        );
        assert_eq!(cfg["Image"], "busybox");
        assert!(c["Image"].as_str().unwrap().starts_with("sha256:"));
        assert!(c["Created"].as_str().is_some());
    }
    k.run(&["stop", "-t", "1", "web"]).ok();
    let s = &inspect(&k, &["web"])[0]["State"];
    assert_eq!(
        (
            s["Status"].as_str(),
            s["ExitCode"].as_i64(),
            s["Pid"].as_i64()
        ),
        (Some("exited"), Some(137), Some(0))
    );
    assert_ne!(s["FinishedAt"], "0001-01-01T00:00:00Z");

    // Images still inspect as before; a container's name wins over an
    // image's, as docker decides.
    let img = inspect(&k, &["busybox"]);
    assert!(img[0]["RootFS"]["Layers"].is_array(), "{img:#}");
    k.run(&["tag", "busybox", "web"]).ok();
    assert_eq!(inspect(&k, &["web"])[0]["Name"], "/web");
    assert!(inspect(&k, &["--type", "image", "web"])[0]["RootFS"].is_object());
    k.run(&["container", "inspect", "busybox"]).code(125);
    k.run(&["inspect", "--type", "volume", "web"]).code(125);
}

#[test]
fn ps_filters_as_docker() {
    let Some(k) = setup() else { return };
    let a = run_d(
        &k,
        &[
            "--name", "app1", "-l", "env=prod", "-l", "tier=web", "busybox", "sleep", "100",
        ],
    );
    let b = run_d(
        &k,
        &[
            "--name", "app2", "-l", "env=dev", "busybox", "sh", "-c", "exit 3",
        ],
    );
    let c = run_d(&k, &["--name", "db", "-l", "env=prod", "busybox", "true"]);
    wait_for("two exits", || {
        record(&k, &b)["state"] == "exited" && record(&k, &c)["state"] == "exited"
    });
    let ps = |f: &[&str]| -> Vec<String> {
        let mut args = vec!["ps", "-q", "--no-trunc"];
        for x in f {
            args.extend(["--filter", x]);
        }
        let mut v: Vec<String> = out(&k, &args).lines().map(String::from).collect();
        v.sort();
        v
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<_>>()
    };
    // status= implies -a; one key's values are alternatives.
    assert_eq!(ps(&["status=exited"]), sorted(vec![&b, &c]));
    assert_eq!(ps(&["status=running"]), vec![a.clone()]);
    assert_eq!(
        ps(&["status=running", "status=exited"]),
        sorted(vec![&a, &b, &c])
    );
    // name= is a substring (an unanchored expression); without -a only running.
    assert_eq!(ps(&["name=app"]), vec![a.clone()]);
    assert_eq!(ps(&["name=app", "status=exited"]), vec![b.clone()]);
    assert_eq!(ps(&["name=^/?db$", "status=exited"]), vec![c.clone()]);
    // label=KEY and label=KEY=VALUE; several label filters must all match.
    assert_eq!(ps(&["label=env=prod", "status=exited"]), vec![c.clone()]);
    assert_eq!(
        ps(&["label=env", "status=exited", "status=running"]),
        sorted(vec![&a, &b, &c])
    );
    assert_eq!(
        ps(&["label=env=prod", "label=tier", "status=running"]),
        vec![a.clone()]
    );
    assert_eq!(
        ps(&["label=env=prod", "label=tier=db", "status=running"]),
        Vec::<String>::new()
    );
    // id= by prefix; exited= by code.
    assert_eq!(
        ps(&[&format!("id={}", &b[..10]), "status=exited"]),
        vec![b.clone()]
    );
    assert_eq!(ps(&["exited=3", "status=exited"]), vec![b.clone()]);
    // exited= alone does not list stopped containers (docker's -a rule).
    assert_eq!(ps(&["exited=3"]), Vec::<String>::new());
    // Bad filters are refused with one line.
    for bad in ["status=sleeping", "color=red", "nokey", "name=("] {
        let r = k.run(&["ps", "--filter", bad]).code(125);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
    // Not left running (with its monitor) after the store is gone.
    k.run(&["rm", "-f", &a]).ok();
}

#[test]
fn detached_output_is_never_lost() {
    let Some(k) = setup() else { return };
    // More than the pipes and the monitor's buffers hold, on both streams
    // at once, from a container that exits right after.
    let id = run_d(
        &k,
        &[
            "busybox",
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done",
        ],
    );
    wait_for("the exit", || record(&k, &id)["state"] == "exited");
    let r = k.run(&["logs", &id]).ok();
    let want = |p: &str| (0..20000).map(|i| format!("{p}{i}\n")).collect::<String>();
    assert!(r.stdout == want("out"), "stdout differs");
    assert!(r.stderr == want("err"), "stderr differs");
}

#[test]
fn log_opt_rotates_the_log() {
    let Some(k) = setup() else { return };
    let id = run_d(
        &k,
        &[
            "--log-opt",
            "max-size=1k",
            "--log-opt",
            "max-file=3",
            "busybox",
            "sh",
            "-c",
            "i=1; while [ $i -le 300 ]; do echo line-$i; i=$((i+1)); done",
        ],
    );
    wait_for("the container to exit", || {
        record(&k, &id)["state"] == "exited"
    });
    let dir = k.root().join("kiln/containers").join(&id);
    assert!(dir.join("ctr.log.1").exists() && dir.join("ctr.log.2").exists());
    assert!(!dir.join("ctr.log.3").exists(), "max-file=3 keeps 3 files");
    // What is kept is the end of the output, in order, across the files.
    let all = out(&k, &["logs", &id]);
    let nums: Vec<u32> = all
        .lines()
        .map(|l| l.strip_prefix("line-").unwrap().parse().unwrap())
        .collect();
    assert_eq!(*nums.last().unwrap(), 300, "{all}");
    assert!(nums[0] > 1, "the oldest lines were rotated away");
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{all}");
    let tail = out(&k, &["logs", "--tail", &nums.len().to_string(), &id]);
    assert_eq!(tail, all);
    assert_eq!(
        out(&k, &["logs", "--tail", "2", &id]),
        "line-299\nline-300\n"
    );
    let v = inspect(&k, &[&id]);
    assert_eq!(v[0]["HostConfig"]["LogConfig"]["Config"]["max-size"], "1k");
    let r = k.run(&["run", "-d", "--log-opt", "max-file=2", "busybox", "true"]);
    assert_eq!(r.code, 125);
    assert!(r.stderr.contains("max-file needs max-size"), "{}", r.stderr);
}

#[test]
fn inspect_keeps_entrypoint_apart_from_cmd() {
    let Some(k) = setup() else { return };
    let id = out(
        &k,
        &["create", "--entrypoint", "sh", "busybox", "-c", "exit 3"],
    );
    let v = inspect(&k, &[id.trim()]);
    assert_eq!(v[0]["Config"]["Entrypoint"], serde_json::json!(["sh"]));
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["-c", "exit 3"]));
    assert_eq!(v[0]["Path"], "sh");
    k.run(&["rm", id.trim()]).ok();
}
