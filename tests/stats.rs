//! `kiln stats` with real busybox containers (root only; skipped
//! otherwise): a busy and an idle container, their pids and memory limit,
//! docker's table and `--format`. Bounds are loose (CPU shares the machine
//! with other tests); nothing asserts on how long anything took.

mod common;

use common::{Detached, Kiln};

/// A detached container, removed (with `rm -f`) when the test ends.
fn run_d<'k>(k: &'k Kiln, name: &str, args: &[&str]) -> Detached<'k> {
    let mut all = vec!["--network", "none"];
    all.extend_from_slice(args);
    k.run_detached(name, &all)
}

#[test]
fn stats_reads_cpu_memory_and_pids_of_each_container() {
    let Some(k) = common::root_store() else {
        return;
    };
    let _busy = run_d(
        &k,
        "busy",
        &["-m", "64m", "busybox", "sh", "-c", "while :; do :; done"],
    );
    let _idle = run_d(
        &k,
        "idle",
        &["busybox", "sh", "-c", "sleep 1000 & sleep 1000 & wait"],
    );
    common::wait_until("two sleeps", std::time::Duration::from_secs(30), || {
        let top = k.run(&["top", "idle"]).ok().stdout;
        top.lines().filter(|l| l.ends_with(" sleep 1000")).count() == 2
    });
    let out = k
        .run(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}|{{.Container}}",
            "busy",
            "idle",
        ])
        .ok()
        .stdout;
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 2, "{out}");
    let cpu = |r: &[&str]| r[1].trim_end_matches('%').parse::<f64>().unwrap();
    let (busy, idle) = (&rows[0], &rows[1]);
    assert_eq!((busy[0], idle[0]), ("busy", "idle"), "{out}");
    // A spinning shell takes a good part of a CPU; two sleeps none.
    assert!(cpu(busy) > 10.0, "{out}");
    assert!(cpu(idle) < 5.0, "{out}");
    // The limit is the container's own memory cgroup's.
    assert!(busy[2].ends_with(" / 64MiB"), "{out}");
    assert!(!idle[2].starts_with("0B"), "{out}");
    assert_eq!((busy[3], idle[3]), ("1", "3"), "{out}");
    assert_eq!(busy[4], "busy");

    // docker's table, every running container by default.
    let table = k.run(&["stats", "--no-stream"]).ok().stdout;
    let header = table.lines().next().unwrap_or("");
    for col in [
        "CONTAINER ID",
        "NAME",
        "CPU %",
        "MEM USAGE / LIMIT",
        "MEM %",
        "NET I/O",
        "BLOCK I/O",
        "PIDS",
    ] {
        assert!(header.contains(col), "{table}");
    }
    assert_eq!(table.lines().count(), 3, "{table}");
}

#[test]
fn stats_of_a_missing_container_fails_in_one_line() {
    let Some(k) = common::root_store() else {
        return;
    };
    let r = k.run(&["stats", "--no-stream", "no-such-container"]);
    assert_ne!(r.code, 0);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("no-such-container"), "{}", r.stderr);
}
