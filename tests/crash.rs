//! Crash and concurrency campaigns against one store.
//!
//! Crash: `kill -9` at seeded random points of import, load, pull, push,
//! build, rmi and run (while it unpacks); after each, the next command of
//! the same kind must work, leave no temp state of the killed process
//! behind, and `system check` must find nothing (`KILN_CRASH_SEED` picks
//! another seed). Concurrency: imports, tag/rmi loops, readers, builds
//! and pulls share one store; no command may fail and no tag may be lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{busybox_tar, Kiln, Run};
use test_support::registry::Registry;

/// splitmix64: a seeded RNG without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    std::env::var("KILN_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b69_6c6e)
}

/// A rootfs tar of busybox plus `mb` MiB of seeded noise (so the import
/// takes long enough to be killed half-way).
fn big_tar(dir: &Path, mb: usize, seed: u64) -> PathBuf {
    let p = dir.join(format!("big-{seed}.tar"));
    let f = std::fs::File::create(&p).unwrap();
    let mut b = tar::Builder::new(std::io::BufWriter::new(f));
    let mut rng = Rng(seed);
    let mut data = vec![0u8; mb << 20];
    for c in data.chunks_mut(8) {
        let v = rng.next().to_le_bytes();
        c.copy_from_slice(&v[..c.len()]);
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "noise", &data[..]).unwrap();
    // The busybox files too, so the image runs.
    test_support::busybox::append_to(&mut b);
    b.into_inner().unwrap();
    p
}

/// Temp state a killed process may leave: `.tmp-*` under the store's
/// temp homes and build scratch directories.
fn leftovers(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for d in [
        root.to_path_buf(),
        root.join("kiln/tmp"),
        root.join("kiln/layers"),
        root.join("kiln/roots"),
        root.join("kiln/build"),
    ] {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(".tmp-") || d.ends_with("kiln/build") {
                out.push(e.path());
            }
        }
    }
    out
}

fn has_temp(root: &Path) -> bool {
    !leftovers(root).is_empty()
}

/// Waits until the killed command's processes are all gone: its container
/// children (killed by their parent-death signal) may outlive it for a
/// moment, holding its locks until they exit.
fn wait_until_gone(root: &Path) {
    let Ok(f) = std::fs::File::open(root.join("kiln/locks/gc.lock")) else {
        return;
    };
    for _ in 0..10_000 {
        if f.try_lock().is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until the containers of killed kiln `pid` (killed by their
/// parent-death signal) are gone: a run's recorded init, and the processes
/// in the cgroups of its build steps. Until then their cgroups are not
/// leftovers and their records not orphans.
fn wait_for_containers(root: &Path, pid: u32) {
    let alive = |p: i64| {
        std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| !r.trim_start().starts_with('Z'))
        })
    };
    let mark = format!("-{pid}-");
    for _ in 0..10_000 {
        let runs = std::fs::read_dir(root.join("kiln/containers"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("container.json")).ok())
            .filter_map(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
            .any(|v| v["state"] != "exited" && v["pid"].as_i64().is_some_and(alive));
        let steps = cgroup_bases()
            .iter()
            .flat_map(|b| std::fs::read_dir(b).into_iter().flatten().flatten())
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.starts_with("kiln-") && n.contains("build-") && n.contains(&mark)
            })
            .any(|e| {
                std::fs::read_to_string(e.path().join("cgroup.procs"))
                    .is_ok_and(|p| !p.trim().is_empty())
            });
        if !runs && !steps {
            return;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[track_caller]
fn assert_clean(k: &Kiln, what: &str) {
    let left = leftovers(&k.root());
    assert!(left.is_empty(), "{what}: left behind {left:?}");
    let r = k.run(&["system", "check"]);
    assert!(
        r.code == 0 && r.stdout.contains("No problems found"),
        "{what}: system check: {}\n{}",
        r.stdout,
        r.stderr
    );
}

/// Starts `args`, kills it with SIGKILL at a random point: either after a
/// random delay, or a random delay after it started writing temp state.
fn kill_randomly(k: &Kiln, args: &[&str], rng: &mut Rng) -> String {
    let mut child: Child = k
        .cmd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kiln");
    // rmi writes no big temp and is over in a few milliseconds.
    let quick = args[0] == "rmi";
    let wait_for_temp = !quick && rng.below(4) != 0;
    let max = if quick {
        12
    } else if wait_for_temp {
        40
    } else {
        150
    };
    let delay = Duration::from_millis(rng.below(max));
    if wait_for_temp {
        for _ in 0..2000 {
            if has_temp(&k.root()) || child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    std::thread::sleep(delay);
    let done = child.try_wait().unwrap().is_some();
    let pid = child.id();
    let _ = child.kill();
    let _ = child.wait();
    wait_until_gone(&k.root());
    wait_for_containers(&k.root(), pid);
    format!(
        "{args:?} killed {}{:?}{}",
        if wait_for_temp {
            "after temp + "
        } else {
            "after "
        },
        delay,
        if done { " (had already exited)" } else { "" }
    )
}

#[track_caller]
fn ok(r: Run, what: &str) -> Run {
    assert_eq!(r.code, 0, "{what}: {}\n{}", r.stdout, r.stderr);
    r
}

#[test]
fn kill_9_at_random_points_leaves_a_consistent_store() {
    let mut rng = Rng(seed());
    let reg = Registry::plain();
    let work = tempfile::tempdir().unwrap();
    let k = Kiln::new();
    k.import_busybox("busybox");
    // The source of pulls: another store that pushed a big image.
    let src = Kiln::new();
    let big = big_tar(work.path(), 48, 1);
    ok(src.run(&["import", big.to_str().unwrap(), "big"]), "import");
    let remote = format!("{}/crash/big:1", reg.host());
    ok(
        src.run(&["push", "--tls-verify=false", "-q", "big", &remote]),
        "push",
    );
    // What load reads.
    let archive = work.path().join("big-archive.tar");
    ok(
        src.run(&["save", "-o", archive.to_str().unwrap(), "big"]),
        "save",
    );
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN dd if=/dev/urandom of=/noise bs=1M count=24 2>/dev/null\nCOPY Dockerfile /\n",
    )
    .unwrap();

    // An edit build: its COPY is unpacked as a delta over the last one.
    let ectx = work.path().join("ectx");
    for i in 0..300 {
        let f = ectx.join(format!("d{}/f{i:03}", i / 50));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, format!("file {i}\n")).unwrap();
    }
    let edf = work.path().join("Dockerfile.edit");
    std::fs::write(
        &edf,
        "FROM busybox\nCOPY . /ctx\nRUN cat /ctx/d0/f000 >/dev/null\n",
    )
    .unwrap();
    ok(
        k.run(&[
            "build",
            "-q",
            "-t",
            "edited",
            "-f",
            edf.to_str().unwrap(),
            ectx.to_str().unwrap(),
        ]),
        "the first edit build",
    );

    let ops = [
        "import", "load", "pull", "push", "build", "rmi", "run", "edit",
    ];
    let trials = 32;
    for t in 0..trials {
        let op = ops[t % ops.len()];
        let big = big_tar(work.path(), 24, 100 + t as u64);
        let bigs = big.to_str().unwrap();
        let push_dest = format!("{}/crash/pushed:{t}", reg.host());
        // Each trial's command, run killed and then again to completion.
        let args: Vec<String> = match op {
            "import" => vec!["import".into(), bigs.into(), format!("imp:{t}")],
            "load" => {
                // So the load has blobs to write.
                let _ = k.run(&["rmi", "-f", "localhost/big:latest"]);
                vec![
                    "load".into(),
                    "-q".into(),
                    "-i".into(),
                    archive.to_str().unwrap().into(),
                ]
            }
            "pull" => {
                let _ = k.run(&["rmi", "-f", &remote]);
                vec![
                    "pull".into(),
                    "--tls-verify=false".into(),
                    "-q".into(),
                    remote.clone(),
                ]
            }
            "push" => {
                ok(k.run(&["import", bigs, "topush"]), "import for push");
                vec![
                    "push".into(),
                    "--tls-verify=false".into(),
                    "-q".into(),
                    "topush".into(),
                    push_dest,
                ]
            }
            "build" => vec![
                "build".into(),
                "--no-cache".into(),
                "-t".into(),
                format!("built:{t}"),
                ctx.to_str().unwrap().into(),
            ],
            // Killed while its COPY is written, unpacked as a delta, or
            // committed, or while the RUN above it runs.
            "edit" => {
                std::fs::write(ectx.join("d3/f170"), format!("edit {t}\n")).unwrap();
                vec![
                    "build".into(),
                    "-q".into(),
                    "-t".into(),
                    "edited".into(),
                    "-f".into(),
                    edf.to_str().unwrap().into(),
                    ectx.to_str().unwrap().into(),
                ]
            }
            // Killed while it unpacks a new layer.
            "run" => {
                let img = format!("runme:{t}");
                ok(k.run(&["import", bigs, &img]), "import for run");
                vec!["run".into(), "--rm".into(), img, "true".into()]
            }
            "rmi" => {
                let gone = format!("gone:{t}");
                ok(k.run(&["import", bigs, &gone]), "import for rmi");
                // So that rmi has an unpacked layer to delete too.
                ok(k.run(&["run", "--rm", &gone, "true"]), "run for rmi");
                vec!["rmi".into(), format!("gone:{t}")]
            }
            _ => unreachable!(),
        };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let what = format!(
            "trial {t} (seed {}): {}",
            seed(),
            kill_randomly(&k, &argv, &mut rng)
        );
        eprintln!("{what}");
        // The next command of the same kind cleans up and works.
        let r = k.run(&argv);
        let rmi_done =
            op == "rmi" && r.code != 0 && r.stderr.to_lowercase().contains("no such image");
        if !rmi_done {
            ok(r, &format!("{what}: the command again"));
        }
        assert_clean(&k, &what);
        if op == "edit" {
            // The image has the edit and every other file.
            let r = k.run(&[
                "run",
                "--rm",
                "edited",
                "cat",
                "/ctx/d3/f170",
                "/ctx/d5/f299",
            ]);
            assert_eq!(
                ok(r, &what).stdout,
                format!("edit {t}\nfile 299\n"),
                "{what}"
            );
        }
        // And the store still runs images.
        if t % 7 == 5 {
            ok(k.run(&["run", "--rm", "busybox", "true"]), &what);
        }
        std::fs::remove_file(&big).unwrap();
    }
    for t in (0..trials).filter(|t| t % ops.len() == 0) {
        ok(
            k.run(&["inspect", &format!("imp:{t}")]),
            "an imported image",
        );
    }
    ok(k.run(&["inspect", "busybox"]), "the base image");
}

/// A RUN step's layer blob is synced and named on a thread while the next
/// step runs, and its cache record written only after that (builder's
/// `cache::commits`). `kill -9` in that window (a few delays after the
/// step's upper directory became its unpacked layer, when the blob is
/// queued) leaves no record naming a missing blob and nothing `system
/// check` reports once the next build cleaned up, and that build works.
#[test]
fn kill_9_while_a_run_layer_is_committed_leaves_a_consistent_store() {
    let k = Kiln::new();
    k.import_busybox("busybox");
    let ctx = k.context(
        "FROM busybox\nRUN dd if=/dev/urandom of=/noise bs=1M count=32 2>/dev/null\nRUN sleep 1\n",
    );
    let layers = k.root().join("kiln/layers");
    let unpacked = || {
        std::fs::read_dir(&layers)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_name().len() == 64)
            .count()
    };
    for (t, delay) in [0u64, 1, 5, 20, 80].into_iter().enumerate() {
        let tag = format!("committing:{t}");
        let before = unpacked();
        let mut child = k
            .cmd()
            .args([
                "build",
                "-q",
                "--no-cache",
                "-t",
                &tag,
                ctx.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The base's layer may be unpacked first; the step's comes after.
        let want = before + if before == 0 { 2 } else { 1 };
        for _ in 0..20_000 {
            if unpacked() >= want || child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_millis(delay));
        let pid = child.id();
        let _ = child.kill();
        let _ = child.wait();
        wait_until_gone(&k.root());
        wait_for_containers(&k.root(), pid);
        let what = format!("build killed {delay} ms after its first layer was queued");
        // Before anything cleans up or writes again: every record's layer
        // is there, whole.
        for e in std::fs::read_dir(k.root().join("kiln/roots"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !(name.starts_with("cache-") && name.ends_with(".json")) {
                continue;
            }
            let rec: serde_json::Value =
                serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            if let Some(d) = rec["layer"]["digest"].as_str() {
                let hex = d.trim_start_matches("sha256:");
                let blob = k.root().join("blobs/sha256").join(hex);
                assert!(blob.is_file(), "{what}: {name} names {d}, which is missing");
                assert_eq!(common::sha256_file(&blob), hex, "{what}: {name}");
            }
        }
        ok(
            k.run(&["build", "-q", "-t", &tag, ctx.to_str().unwrap()]),
            &format!("{what}: the build again"),
        );
        assert_clean(&k, &what);
        ok(k.run(&["run", "--rm", &tag, "test", "-s", "/noise"]), &what);
    }
}

/// SIGINT and SIGTERM during an import remove its temp file and exit 130
/// and 143 as a shell reports them.
#[test]
fn sigint_and_sigterm_clean_up_and_exit_130_143() {
    let work = tempfile::tempdir().unwrap();
    let big = big_tar(work.path(), 64, 7);
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let k = Kiln::new();
        k.import_busybox("busybox");
        let mut child = k
            .cmd()
            .args(["import", big.to_str().unwrap(), "big"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut seen = false;
        for _ in 0..5000 {
            if has_temp(&k.root()) {
                seen = true;
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        assert!(seen, "the import never wrote a temp file");
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, sig) };
        let st = child.wait().unwrap();
        // An import that finished first exits 0; one that was interrupted
        // exits 128+signal, and either way leaves nothing behind.
        assert!(
            st.code() == Some(code) || st.code() == Some(0),
            "signal {sig}: {st:?}"
        );
        let left = leftovers(&k.root());
        assert!(left.is_empty(), "signal {sig}: left behind {left:?}");
    }
}

/// `image prune -a` and `builder prune -a` remove temp state left by a
/// killed process (made here as a killed process would leave it).
#[test]
fn prune_removes_stale_temps_but_not_live_ones() {
    let k = Kiln::new();
    k.import_busybox("busybox");
    let root = k.root();
    let stale = root.join("kiln/tmp/.tmp-1-2-3");
    std::fs::write(&stale, b"partial").unwrap();
    let layer = root.join("kiln/layers/.tmp-1-2-4-sha256:abc");
    std::fs::create_dir_all(layer.join("usr/bin")).unwrap();
    std::fs::write(layer.join("usr/bin/x"), b"x").unwrap();
    // A live one: locked by this (test) process.
    let live = root.join("kiln/tmp/.tmp-live");
    let f = std::fs::File::create(&live).unwrap();
    f.lock().unwrap();
    let r = k.run(&["system", "check"]).code(1);
    assert!(
        r.stdout.contains(".tmp-1-2-3") && r.stdout.contains("stale"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains(".tmp-live"), "{}", r.stdout);
    ok(k.run(&["image", "prune", "-a", "-f"]), "prune");
    assert!(!stale.exists() && !layer.exists());
    assert!(live.exists(), "a temp a live process holds was removed");
    std::fs::write(&stale, b"partial").unwrap();
    ok(k.run(&["builder", "prune", "-a", "-f"]), "builder prune");
    assert!(!stale.exists());
    drop(f);
    ok(k.run(&["system", "check", "--repair"]), "repair");
    assert!(!live.exists());
    assert_clean(&k, "after repair");
}

/// The store's directories (which grow with it: layers, cache probes,
/// roots) are listed for temps of killed processes only when a writer's
/// mark says one died, not by every command; then its temps and mark go.
#[test]
fn commands_list_the_stores_directories_only_after_a_writer_died() {
    common::require_tool("strace");
    let k = Kiln::new();
    k.import_busybox("busybox");
    let root = k.root();
    let probes = root.join("kiln/cache-probes");
    std::fs::create_dir_all(&probes).unwrap();
    // Which directories `run` lists, as strace sees it.
    let lists_probes = |k: &Kiln| -> bool {
        let log = k.dir.path().join("strace.log");
        let st = std::process::Command::new("strace")
            .args(["-f", "-e", "trace=openat", "-o"])
            .arg(&log)
            .arg(env!("CARGO_BIN_EXE_kiln"))
            .arg("--root")
            .arg(k.root())
            .args(["run", "--rm", "--network", "none", "busybox", "true"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let text = std::fs::read_to_string(&log).unwrap();
        let dir = format!("\"{}\", O_RDONLY", probes.display());
        text.lines()
            .any(|l| l.contains(&dir) && l.contains("O_DIRECTORY"))
    };
    assert!(!lists_probes(&k), "listed with no writer dead");
    // A writer killed with a temp in `layers/`: its mark is left unheld.
    let marks = root.join("kiln/locks/writers");
    std::fs::create_dir_all(&marks).unwrap();
    let mark = marks.join("1-2-3");
    std::fs::write(&mark, b"").unwrap();
    let layer = root.join("kiln/layers/.tmp-1-2-4-unpacking");
    std::fs::create_dir_all(layer.join("usr")).unwrap();
    assert!(lists_probes(&k), "not listed after a writer died");
    assert!(!layer.exists(), "the dead writer's temp is left");
    assert!(!mark.exists(), "the dead writer's mark is left");
    assert!(!lists_probes(&k), "listed again once cleaned");
    assert_clean(&k, "after the cleaning");
}

/// Imports, tag/rmi loops, image listings, builds and pulls share one
/// store: every command succeeds and every tag that should exist does.
#[test]
fn concurrent_commands_never_fail_spuriously_or_lose_tags() {
    let reg = Registry::plain();
    let k = Kiln::new();
    k.import_busybox("busybox");
    let remote = format!("{}/conc/bb:1", reg.host());
    ok(
        k.run(&["push", "--tls-verify=false", "-q", "busybox", &remote]),
        "push",
    );
    let ctx = k.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN echo hi > /hi\n").unwrap();
    let bb = busybox_tar().to_str().unwrap().to_string();
    let k = &k;
    let failures = std::sync::Mutex::new(Vec::<String>::new());
    let fail = |what: String, r: &Run| {
        if r.code != 0 {
            failures
                .lock()
                .unwrap()
                .push(format!("{what}: {} {}", r.stdout, r.stderr.trim()));
        }
    };
    let rounds = 16;
    let workers_left = std::sync::atomic::AtomicUsize::new(4);
    let busy = || workers_left.load(std::sync::atomic::Ordering::SeqCst) > 0;
    std::thread::scope(|s| {
        for w in 0..4 {
            let bb = &bb;
            let fail = &fail;
            let workers_left = &workers_left;
            s.spawn(move || {
                for n in 0..rounds {
                    let a = format!("w{w}a:{n}");
                    let b = format!("w{w}b:{n}");
                    fail(format!("import {a}"), &k.run(&["import", bb, &a]));
                    fail(format!("tag {a} {b}"), &k.run(&["tag", &a, &b]));
                    fail(format!("rmi {a}"), &k.run(&["rmi", &a]));
                    fail(format!("inspect {b}"), &k.run(&["inspect", &b]));
                    // Keep every other one: they must all be there at the end.
                    if n % 2 == 1 {
                        fail(format!("rmi {b}"), &k.run(&["rmi", &b]));
                    }
                }
                workers_left.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let fail = &fail;
        let busy = &busy;
        for r in 0..2 {
            s.spawn(move || {
                while busy() {
                    fail("images".into(), &k.run(&["images"]));
                    let t = format!("stable:{r}");
                    fail(format!("tag busybox {t}"), &k.run(&["tag", "busybox", &t]));
                }
            });
        }
        let ctx = &ctx;
        // Two builds at a time (the second with --no-cache, so it runs
        // its RUN step while the other hits the cache).
        for b in 0..2 {
            s.spawn(move || {
                for n in 0..3 {
                    let t = format!("built{b}:{n}");
                    let mut args = vec!["build", "-t", &t];
                    if b == 1 {
                        args.push("--no-cache");
                    }
                    args.push(ctx.to_str().unwrap());
                    fail(format!("build {t}"), &k.run(&args));
                }
            });
        }
        s.spawn(move || {
            for _ in 0..4 {
                fail(
                    "run busybox".into(),
                    &k.run(&["run", "--rm", "busybox", "true"]),
                );
            }
        });
        let remote = &remote;
        s.spawn(move || {
            for n in 0..4 {
                fail(
                    format!("pull {n}"),
                    &k.run(&["pull", "--tls-verify=false", "-q", remote]),
                );
                let _ = k.run(&["rmi", remote]);
            }
        });
    });
    let failures = failures.into_inner().unwrap();
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for w in 0..4 {
        for n in (0..rounds).filter(|n| n % 2 == 0) {
            ok(
                k.run(&["inspect", &format!("w{w}b:{n}")]),
                "a tag that must remain",
            );
        }
    }
    for t in ["stable:0", "stable:1", "built0:2", "built1:2", "busybox"] {
        ok(k.run(&["inspect", t]), t);
    }
    assert_clean(k, "after the concurrent campaign");
}

/// `system check` names each problem on one line and exits 1; `--repair`
/// removes what is dangling or corrupt and exits 0; then the store is clean
/// and still works.
#[test]
fn system_check_finds_and_repairs_damage() {
    let k = Kiln::new();
    let id = k.import_busybox("busybox");
    let other = k.dir.path().join("other.tar");
    std::fs::write(&other, one_file_tar()).unwrap();
    ok(
        k.run(&["import", other.to_str().unwrap(), "small"]),
        "import",
    );
    ok(k.run(&["tag", "busybox", "alias:1"]), "tag");
    let r = ok(k.run(&["system", "check"]), "clean check");
    assert!(r.stdout.contains("No problems found"), "{}", r.stdout);
    let root = k.root();
    let blob = |d: &str| {
        root.join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let small: serde_json::Value =
        serde_json::from_str(&ok(k.run(&["inspect", "small"]), "inspect").stdout).unwrap();
    let layer = small[0]["RootFS"]["Layers"][0]
        .as_str()
        .unwrap()
        .to_string();
    // Corrupt busybox's config (its ID), delete small's layer.
    std::fs::write(blob(&id), b"{}").unwrap();
    std::fs::remove_file(blob(&layer)).unwrap();
    // A cache record whose layer is gone, a container dir without a record,
    // a dangling short link.
    let roots = root.join("kiln/roots");
    std::fs::create_dir_all(&roots).unwrap();
    std::fs::write(
        roots.join("cache-0123.json"),
        format!(
            "{{\"layer\":{{\"mediaType\":\"x\",\"digest\":\"sha256:{}\",\"size\":1}}}}",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("kiln/containers/deadbeef/upper")).unwrap();
    std::fs::create_dir_all(root.join("kiln/layers/l")).unwrap();
    std::os::unix::fs::symlink("../gone", root.join("kiln/layers/l/abcdefabcdef")).unwrap();

    let r = k.run(&["system", "check"]).code(1);
    let lines: Vec<&str> = r.stdout.lines().collect();
    for want in [
        "image localhost/busybox:latest: config",
        "image localhost/alias:1: config",
        "image localhost/small:latest: layer",
        "cache ",
        "container deadbeef: has no record",
        "layer ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(want)),
            "no line starting {want:?}:\n{}",
            r.stdout
        );
    }
    assert!(
        r.stdout.contains("is corrupt") && r.stdout.contains("is missing"),
        "{}",
        r.stdout
    );
    // Nothing was changed by the check alone.
    assert!(blob(&id).exists());

    let r = ok(k.run(&["system", "check", "--repair"]), "repair");
    assert!(r.stdout.contains("(removed)"), "{}", r.stdout);
    assert!(!blob(&id).exists(), "the corrupt blob is gone");
    assert_clean(&k, "after repair");
    // The store works: names of removed images are free again.
    k.import_busybox("busybox");
    ok(
        k.run(&["run", "--rm", "busybox", "true"]),
        "run after repair",
    );
    assert_clean(&k, "after reuse");
}

/// A small rootfs tar with one file.
fn one_file_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(3);
    b.append_data(&mut h, "hi", &b"hi\n"[..]).unwrap();
    b.into_inner().unwrap()
}

/// The one container of the store once its init runs: (id, init pid).
fn running_container(k: &Kiln) -> (String, i32) {
    let dir = k.root().join("kiln/containers");
    for _ in 0..5000 {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(data) = std::fs::read(e.path().join("container.json")) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&data) else {
                continue;
            };
            if let (Some("running"), Some(pid)) = (v["state"].as_str(), v["pid"].as_i64()) {
                return (v["id"].as_str().unwrap().to_string(), pid as i32);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no container started");
}

fn kill_9(pid: i32) {
    let _ = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// The cgroup of this test (and so of the kiln it starts) in every
/// hierarchy.
fn cgroup_bases() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap(), f.next().unwrap());
        let root = if ctrls.is_empty() {
            if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
                PathBuf::from("/sys/fs/cgroup/unified")
            } else {
                PathBuf::from("/sys/fs/cgroup")
            }
        } else {
            let first = ctrls.split(',').next().unwrap();
            Path::new("/sys/fs/cgroup").join(first.strip_prefix("name=").unwrap_or(first))
        };
        let d = root.join(path.trim_start_matches('/'));
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// Where a container's device rules are: its cgroup in the unified
/// hierarchy (a device program) where there is one, else in v1 `devices`.
fn device_cgroup_root() -> &'static Path {
    if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        Path::new("/sys/fs/cgroup/unified")
    } else if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        Path::new("/sys/fs/cgroup")
    } else {
        Path::new("/sys/fs/cgroup/devices")
    }
}

/// The `kiln-<id>` cgroups that exist.
fn cgroups_of(id: &str) -> Vec<PathBuf> {
    cgroup_bases()
        .into_iter()
        .map(|b| b.join(format!("kiln-{id}")))
        .filter(|d| d.is_dir())
        .collect()
}

/// Kills `kiln` and the container's init with SIGKILL; returns once the
/// container's cgroups `dirs` hold no process.
fn kill_run_and_container(mut kiln: Child, init: i32, dirs: &[PathBuf]) {
    let _ = kiln.kill();
    let _ = kiln.wait();
    kill_9(init);
    for _ in 0..5000 {
        let busy = dirs.iter().any(|d| {
            std::fs::read_to_string(d.join("cgroup.procs")).is_ok_and(|p| !p.trim().is_empty())
        });
        if !busy {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the container's processes did not go away");
}

/// `kill -9` of `kiln run` and its container leaves the container's empty
/// cgroups (device rules: see `device_cgroup_root`) and a
/// record saying "running": `system check` reports both, `--repair`
/// removes the cgroups and marks the container exited (137).
#[test]
fn killed_run_leaves_cgroups_check_reports_and_repair_removes() {
    let k = Kiln::new();
    k.import_busybox("busybox");
    let child = k
        .cmd()
        .args(["run", "busybox", "sleep", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (id, init) = running_container(&k);
    let dirs = cgroups_of(&id);
    assert!(
        dirs.iter().any(|d| d.starts_with(device_cgroup_root())),
        "no device cgroup for the container: {dirs:?}"
    );
    kill_run_and_container(child, init, &dirs);

    let r = k.run(&["system", "check"]).code(1);
    for d in &dirs {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with(&format!("cgroup {}: empty cgroup", d.display()))),
            "{} not reported:\n{}",
            d.display(),
            r.stdout
        );
    }
    assert!(
        r.stdout
            .contains(&format!("container {}: recorded as running", &id[..12])),
        "{}",
        r.stdout
    );
    assert!(dirs.iter().all(|d| d.is_dir()), "the check alone removed");

    let r = ok(k.run(&["system", "check", "--repair"]), "repair");
    assert!(r.stdout.contains("all repaired"), "{}", r.stdout);
    assert!(
        r.stdout.contains("init are gone (marked exited (137))"),
        "{}",
        r.stdout
    );
    let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "repair left {left:?}");
    assert_clean(&k, "after repair");
    let r = ok(k.run(&["ps", "-a"]), "ps -a");
    let line = r.stdout.lines().find(|l| l.starts_with(&id[..12])).unwrap();
    assert!(line.contains("Exited (137)"), "{line}");

    // The first writer of a later command removes them too.
    let child = k
        .cmd()
        .args(["run", "busybox", "sleep", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first container is recorded exited now.
    let (id, init) = running_container(&k);
    let dirs = cgroups_of(&id);
    kill_run_and_container(child, init, &dirs);
    ok(k.run(&["tag", "busybox", "other:1"]), "tag");
    let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "the next writer left {left:?}");
}

/// A container whose kiln process died is settled by the next `ps`, `rm`
/// or `run` (as docker's daemon does when it restarts): an `--rm` one is
/// removed with its cgroups, any other shows as exited (137) and `rm`
/// removes it without `-f`.
#[test]
fn containers_of_killed_kiln_processes_are_settled() {
    let k = Kiln::new();
    k.import_busybox("busybox");
    let containers = k.root().join("kiln/containers");
    let rm_run = |k: &Kiln| {
        let child = k
            .cmd()
            .args(["run", "--rm", "busybox", "sleep", "100"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (id, init) = running_container(k);
        let dirs = cgroups_of(&id);
        kill_run_and_container(child, init, &dirs);
        (id, dirs)
    };

    // `--rm`, settled by `ps`.
    let (id, dirs) = rm_run(&k);
    let r = ok(k.run(&["ps", "-a"]), "ps -a");
    assert!(!r.stdout.contains(&id[..12]), "{}", r.stdout);
    assert!(!containers.join(&id).exists(), "the --rm container is left");
    let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "its cgroups are left: {left:?}");

    // `--rm`, settled by the next `run`.
    let (id, _) = rm_run(&k);
    ok(k.run(&["run", "--rm", "busybox", "true"]), "run");
    assert!(!containers.join(&id).exists(), "the --rm container is left");

    // Detached, its monitor killed: exited (137), `rm` without -f.
    let id = ok(k.run(&["run", "-d", "busybox", "sleep", "100"]), "run -d")
        .stdout
        .trim()
        .to_string();
    let (_, init) = running_container(&k);
    let monitor: i32 = std::fs::read_to_string(containers.join(&id).join("monitor.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let dirs = cgroups_of(&id);
    kill_9(monitor);
    kill_run_and_container(
        std::process::Command::new("true").spawn().unwrap(),
        init,
        &dirs,
    );
    let r = ok(k.run(&["ps", "-a"]), "ps -a");
    let line = r.stdout.lines().find(|l| l.starts_with(&id[..12]));
    assert!(
        line.is_some_and(|l| l.contains("Exited (137)")),
        "{}",
        r.stdout
    );
    ok(k.run(&["rm", &id]), "rm");
    assert_clean(&k, "after settling");
}

/// `kill -9` of a build during a RUN step leaves the step's empty cgroups:
/// once the build process is gone, `system check` reports them and
/// `--repair` removes them.
#[test]
fn killed_build_leaves_step_cgroups_check_reports_and_repair_removes() {
    let k = Kiln::new();
    k.import_busybox("busybox");
    let ctx = k.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN sleep 100\n").unwrap();
    let child = k
        .cmd()
        .args(["build", "-q", "-t", "x", ctx.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mark = format!("-{}-", child.id());
    // The step's cgroups, once its process is in them.
    let mut dirs = Vec::new();
    let mut procs = Vec::new();
    for _ in 0..5000 {
        dirs = cgroup_bases()
            .iter()
            .flat_map(|b| std::fs::read_dir(b).into_iter().flatten().flatten())
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy();
                n.starts_with("kiln-") && n.contains("build-") && n.contains(&mark)
            })
            .collect();
        procs = dirs
            .iter()
            .filter(|d| d.starts_with(device_cgroup_root()))
            .flat_map(|d| {
                std::fs::read_to_string(d.join("cgroup.procs"))
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        if !procs.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!procs.is_empty(), "the RUN step never started: {dirs:?}");
    let init: i32 = procs[0].trim().parse().unwrap();
    kill_run_and_container(child, init, &dirs);

    let r = k.run(&["system", "check"]).code(1);
    for d in &dirs {
        assert!(
            r.stdout
                .contains(&format!("cgroup {}: empty cgroup", d.display())),
            "{} not reported:\n{}",
            d.display(),
            r.stdout
        );
    }
    ok(k.run(&["system", "check", "--repair"]), "repair");
    let left: Vec<_> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "repair left {left:?}");
    assert_clean(&k, "after repair");
}
