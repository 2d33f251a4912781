//! Start-to-exit latency of `/bin/true` in a busybox rootfs: kiln's built-in
//! runtime (in-process and as a fresh process per run, like `kiln run`) and
//! runc on the same bundle. Prints medians.
//!
//! `cargo bench -p runner --bench run_latency [-- RUNS]` (root only).

#[path = "../tests/common/mod.rs"]
mod common;

use runner::spec::{Network, SpecParams};
use runner::{Rootfs, RunOptions, Runtime, Stdio};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const HELPER_ENV: &str = "KILN_RUNNER_BENCH_HELPER";
const RUNC: &str = "/usr/sbin/runc";

fn opts(id: &str, bundle: &Path, rootfs: Rootfs) -> RunOptions {
    let mut o = RunOptions::new(id, bundle, rootfs);
    // Like `kiln run` with no terminal: the caller's stdio.
    o.stdio = Stdio::Inherit;
    o
}

fn params(network: Network) -> SpecParams {
    SpecParams {
        args: vec!["/bin/true".into()],
        hostname: Some("bench".into()),
        network,
        ..Default::default()
    }
}

/// Helper mode: one run, as a separate process (what `kiln run` costs).
/// Args: MODE ROOT BUNDLE where MODE is dir|overlay.
fn helper() -> ! {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let bundle = PathBuf::from(&a[2]);
    let rootfs = if a[0] == "overlay" {
        Rootfs::Overlay {
            lower: vec![PathBuf::from(&a[1])],
            upper: bundle.join("upper"),
            work: bundle.join("work"),
        }
    } else {
        Rootfs::Dir(PathBuf::from(&a[1]))
    };
    let spec = runner::spec::build(&params(Network::None)).expect("spec");
    let code = match runner::run(&spec, &opts("bench-helper", &bundle, rootfs)) {
        Ok(s) => s.code(),
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    };
    std::process::exit(code as i32)
}

/// (median, minimum): the median is the figure to report; the minimum
/// shows the floor when other work shares the machine.
fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0])
}

fn show(name: &str, (med, min): (Duration, Duration)) {
    println!(
        "  {:>8.2} ms  (min {:>6.2})  {name}",
        med.as_secs_f64() * 1000.0,
        min.as_secs_f64() * 1000.0
    );
}

fn time(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    for _ in 0..3 {
        f();
    }
    stats(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

/// Where the time goes: the same run with parts of the spec stripped.
fn breakdown(runs: usize, rootfs: &Path, tmp: &Path) {
    let full = runner::spec::build(&params(Network::None)).expect("spec");
    let mut variants: Vec<(&str, runner::Spec, bool)> = Vec::new();
    let mut bare = full.clone();
    bare.set_mounts(Some(vec![]));
    if let Some(l) = bare.linux_mut() {
        l.set_masked_paths(None);
        l.set_readonly_paths(None);
        l.set_namespaces(Some(
            l.namespaces()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .filter(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Network)
                .collect(),
        ));
    }
    variants.push((
        "bare: namespaces without net, no mounts, no /etc files",
        bare.clone(),
        false,
    ));
    let mut with_mounts = bare.clone();
    with_mounts.set_mounts(full.mounts().clone());
    variants.push(("+ default mounts", with_mounts.clone(), false));
    let mut with_masks = with_mounts.clone();
    if let (Some(l), Some(fl)) = (with_masks.linux_mut(), full.linux()) {
        l.set_masked_paths(fl.masked_paths().clone());
        l.set_readonly_paths(fl.readonly_paths().clone());
    }
    variants.push(("+ masked/readonly paths", with_masks.clone(), false));
    variants.push(("+ /etc files", with_masks.clone(), true));
    variants.push(("+ network namespace (= full spec)", full.clone(), true));
    for (i, (name, spec, etc)) in variants.into_iter().enumerate() {
        let mut o = opts(
            "bench",
            &tmp.join(format!("bd-{i}")),
            Rootfs::Dir(rootfs.to_path_buf()),
        );
        o.etc_files = etc;
        let d = time(runs, || {
            runner::run(&spec, &o).expect("run");
        });
        show(name, d);
    }
}

fn main() {
    if std::env::var_os(HELPER_ENV).is_some() {
        helper();
    }
    if !common::is_root() {
        println!("skipping run_latency: needs root");
        return;
    }
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50);
    let tmp = tempfile::Builder::new()
        .prefix("kiln-bench")
        .tempdir()
        .expect("tempdir");
    let rootfs = tmp.path().join("rootfs");
    common::busybox_rootfs(&rootfs).expect("rootfs");
    let exe = std::env::current_exe().expect("exe");
    let mut results: Vec<(String, (Duration, Duration))> = Vec::new();
    if std::env::args().any(|a| a == "--breakdown") {
        breakdown(runs, &rootfs, tmp.path());
        return;
    }

    for (name, network) in [("none", Network::None), ("host", Network::Host)] {
        let spec = runner::spec::build(&params(network)).expect("spec");
        let bundle = tmp.path().join(format!("inproc-{name}"));
        let o = opts("bench", &bundle, Rootfs::Dir(rootfs.clone()));
        let d = time(runs, || {
            runner::run(&spec, &o).expect("run");
        });
        results.push((format!("kiln in-process, dir rootfs, network {name}"), d));
    }
    // Like `kiln run --rm`: a fresh container directory per run, removed after.
    let shm = tempfile::Builder::new()
        .prefix("kiln-bench")
        .tempdir_in("/dev/shm")
        .expect("tempdir in /dev/shm");
    for (volatile, base, place) in [
        (true, tmp.path(), "disk"),
        (false, tmp.path(), "disk"),
        (false, shm.path(), "tmpfs"),
    ] {
        let spec = runner::spec::build(&params(Network::None)).expect("spec");
        let mut n = 0;
        let d = time(runs, || {
            n += 1;
            let bundle = base.join(format!("ovl-{volatile}-{n}"));
            let mut o = opts(
                "bench",
                &bundle,
                Rootfs::Overlay {
                    lower: vec![rootfs.clone()],
                    upper: bundle.join("upper"),
                    work: bundle.join("work"),
                },
            );
            o.overlay_volatile = volatile;
            runner::run(&spec, &o).expect("run");
            std::fs::remove_dir_all(&bundle).expect("rm");
        });
        let v = if volatile { "volatile" } else { "synced" };
        results.push((
            format!(
                "kiln in-process, fresh overlay container dir on {place} ({v}) + rm, network none"
            ),
            d,
        ));
    }
    for mode in ["dir", "overlay"] {
        let bundle = tmp.path().join(format!("proc-{mode}"));
        let d = time(runs, || {
            let st = Command::new(&exe)
                .env(HELPER_ENV, "1")
                .args([
                    mode,
                    rootfs.to_str().unwrap_or(""),
                    bundle.to_str().unwrap_or(""),
                ])
                .status()
                .expect("helper");
            assert!(st.success(), "helper failed: {st:?}");
        });
        results.push((
            format!("kiln process per run, {mode} rootfs, network none"),
            d,
        ));
    }
    if Path::new(RUNC).exists() {
        let spec = runner::spec::build(&params(Network::None)).expect("spec");
        let bundle = tmp.path().join("runc");
        let mut o = opts("kiln-bench-runc", &bundle, Rootfs::Dir(rootfs.clone()));
        o.runtime = Runtime::External(RUNC.into());
        // Write config.json once, then time runc itself on that bundle.
        runner::run(&spec, &o).expect("runc run");
        let d = time(runs, || {
            let st = Command::new(RUNC)
                .args([
                    "run",
                    "-b",
                    bundle.to_str().unwrap_or(""),
                    "kiln-bench-runc",
                ])
                .status()
                .expect("runc");
            assert!(st.success());
        });
        results.push(("runc run -b BUNDLE (same spec), network none".into(), d));
    }
    println!("median of {runs} runs of /bin/true:");
    for (name, d) in results {
        show(&name, d);
    }
}
