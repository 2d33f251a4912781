//! Health checks end to end with real busybox containers (root only;
//! skipped otherwise): the image's HEALTHCHECK and the `--health-*` flags,
//! probed by the container's monitor every second; `ps` with its health
//! and `--filter health=`, `inspect`'s State.Health, `kiln healthcheck
//! run`. Waits poll with a generous bound; nothing asserts on how long
//! anything took.

mod common;

use std::time::Duration;

use common::{Detached, Kiln};
use serde_json::Value;

fn setup() -> Option<Kiln> {
    common::root_store()
}

#[track_caller]
fn wait_for(what: &str, f: impl FnMut() -> bool) {
    common::wait_until(what, Duration::from_secs(60), f)
}

/// A detached container, removed (with `rm -f`) when the test ends.
fn run_d<'k>(k: &'k Kiln, name: &str, args: &[&str]) -> Detached<'k> {
    k.run_detached(name, args)
}

fn inspect(k: &Kiln, name: &str) -> Value {
    let out = k.run(&["inspect", name]).ok().stdout;
    let v: Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

fn health_status(k: &Kiln, name: &str) -> String {
    inspect(k, name)["State"]["Health"]["Status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn ps_names(k: &Kiln, filter: &str) -> Vec<String> {
    // The NAMES column is the last.
    k.run(&["ps", "--filter", filter])
        .ok()
        .stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().last().map(String::from))
        .collect()
}

/// An image whose HEALTHCHECK passes while /tmp/ok exists.
fn build_image(k: &Kiln) {
    let ctx = k.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nHEALTHCHECK --interval=1s --timeout=5s --retries=2 CMD test -f /tmp/ok\n",
    )
    .unwrap();
    k.run(&["build", "-q", "-t", "checked", ctx.to_str().unwrap()])
        .ok();
}

#[test]
fn image_healthcheck_goes_healthy_then_unhealthy() {
    let Some(k) = setup() else { return };
    build_image(&k);
    let _c = run_d(
        &k,
        "hc-image",
        &["checked", "sh", "-c", "touch /tmp/ok; exec sleep 1000"],
    );
    wait_for("healthy", || health_status(&k, "hc-image") == "healthy");
    let ps = k.run(&["ps"]).ok().stdout;
    let line = ps.lines().find(|l| l.contains("hc-image")).unwrap();
    assert!(line.contains("(healthy)"), "{ps}");
    assert_eq!(ps_names(&k, "health=healthy"), ["hc-image"]);
    assert!(ps_names(&k, "health=unhealthy").is_empty());

    k.run(&["exec", "hc-image", "rm", "/tmp/ok"]).ok();
    wait_for("unhealthy", || health_status(&k, "hc-image") == "unhealthy");
    let v = inspect(&k, "hc-image");
    let h = &v["State"]["Health"];
    assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h}");
    let log = h["Log"].as_array().unwrap();
    assert!(!log.is_empty() && log.len() <= 5, "{h}");
    let last = log.last().unwrap();
    assert_eq!(last["ExitCode"], 1, "{h}");
    for key in ["Start", "End", "Output"] {
        assert!(last[key].is_string(), "{key} missing: {h}");
    }
    assert_eq!(
        v["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["CMD-SHELL", "test -f /tmp/ok"])
    );
    assert_eq!(v["Config"]["Healthcheck"]["Retries"], 2);
    let ps = k.run(&["ps"]).ok().stdout;
    assert!(ps.contains("(unhealthy)"), "{ps}");
    assert_eq!(ps_names(&k, "health=unhealthy"), ["hc-image"]);

    // podman's `healthcheck run`: one probe, its verdict as the exit code.
    let r = k.run(&["healthcheck", "run", "hc-image"]).code(1);
    assert_eq!(r.stdout.trim(), "unhealthy");
    k.run(&["exec", "hc-image", "touch", "/tmp/ok"]).ok();
    let r = k.run(&["healthcheck", "run", "hc-image"]).ok();
    assert_eq!(r.stdout, "");
    assert_eq!(health_status(&k, "hc-image"), "healthy");

    // --no-healthcheck turns the image's off.
    let _n = run_d(
        &k,
        "hc-off",
        &["--no-healthcheck", "checked", "sleep", "1000"],
    );
    let v = inspect(&k, "hc-off");
    assert!(v["State"].get("Health").is_none(), "{v}");
    assert_eq!(
        v["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    assert_eq!(ps_names(&k, "health=none"), ["hc-off"]);
    let r = k.run(&["healthcheck", "run", "hc-off"]).code(125);
    assert!(r.stderr.contains("no defined healthcheck"), "{}", r.stderr);
}

#[test]
fn health_flags_output_and_timeout() {
    let Some(k) = setup() else { return };
    let _c = run_d(
        &k,
        "hc-flags",
        &[
            "--health-cmd",
            "echo probing; exit 3",
            "--health-interval",
            "1s",
            "--health-retries",
            "1",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    wait_for("unhealthy", || health_status(&k, "hc-flags") == "unhealthy");
    let v = inspect(&k, "hc-flags");
    let last = v["State"]["Health"]["Log"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["ExitCode"], 3);
    assert_eq!(last["Output"], "probing\n");
    let hc = &v["Config"]["Healthcheck"];
    assert_eq!(
        hc["Test"],
        serde_json::json!(["CMD-SHELL", "echo probing; exit 3"])
    );
    assert_eq!(hc["Interval"], 1_000_000_000i64);
    assert_eq!(hc["Retries"], 1);

    // A probe that outlives --health-timeout is killed and fails.
    let _t = run_d(
        &k,
        "hc-slow",
        &[
            "--health-cmd",
            "sleep 100",
            "--health-interval",
            "1s",
            "--health-timeout",
            "200ms",
            "--health-retries",
            "1",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    wait_for("unhealthy", || health_status(&k, "hc-slow") == "unhealthy");
    let v = inspect(&k, "hc-slow");
    let last = v["State"]["Health"]["Log"][0].clone();
    assert_eq!(last["ExitCode"], -1);
    assert_eq!(last["Output"], "Health check exceeded timeout (200ms)");
    // No probe is left running in the container.
    let top = k.run(&["top", "hc-slow"]).ok().stdout;
    assert!(
        !top.lines().any(|l| l.trim_end().ends_with("sleep 100")),
        "{top}"
    );

    // Once stopped, the container counts as unhealthy (as docker's).
    k.run(&["stop", "-t", "1", "hc-flags"]).ok();
    assert_eq!(health_status(&k, "hc-flags"), "unhealthy");
}

#[test]
fn bad_health_flags_are_refused() {
    let Some(k) = setup() else { return };
    for (args, why) in [
        (
            &["--health-interval", "-1s"][..],
            "--health-interval cannot be negative",
        ),
        (&["--health-timeout", "5"][..], "--health-timeout"),
        (
            &["--no-healthcheck", "--health-retries", "1"][..],
            "--no-healthcheck conflicts",
        ),
    ] {
        let mut all = vec!["run", "-d"];
        all.extend_from_slice(args);
        all.extend(["busybox", "true"]);
        let r = k.run(&all).code(125);
        assert!(r.stderr.contains(why), "{args:?}: {}", r.stderr);
    }
    assert_eq!(k.run(&["ps", "-a", "-q"]).ok().stdout, "");
}

#[test]
fn a_foreground_container_is_probed_too() {
    let Some(k) = setup() else { return };
    // The container ends once a probe (an exec into it) has run.
    let r = k
        .run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--health-cmd",
            "touch /tmp/probed",
            "--health-interval",
            "1s",
            "busybox",
            "sh",
            "-c",
            "while [ ! -e /tmp/probed ]; do sleep 0.1; done; echo probed",
        ])
        .ok();
    assert_eq!(r.stdout, "probed\n");
}
