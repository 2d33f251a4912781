//! Shared helpers for the runner's process-level tests: the busybox rootfs
//! (from the test-support crate), output capture and a tiny
//! sequential test driver (the runner must not be exercised from cargo's
//! multi-threaded harness).

#![allow(dead_code)]

use runner::spec::{self, SpecParams};
use runner::{ExitStatus, Rootfs, RunError, RunOptions, Stdio};
use std::fs;
use std::io::{Read, Seek};
use std::os::fd::AsRawFd;
use std::path::PathBuf;

pub type TestResult = Result<(), String>;

pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The busybox rootfs builder shared by every test crate.
pub use test_support::busybox::rootfs as busybox_rootfs;

pub fn params(args: &[&str]) -> SpecParams {
    SpecParams {
        args: args.iter().map(|s| s.to_string()).collect(),
        hostname: Some("kilnbox".into()),
        ..Default::default()
    }
}

pub struct Output {
    pub status: Result<ExitStatus, RunError>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> u8 {
        match &self.status {
            Ok(s) => s.code(),
            Err(e) => e.exit_code(),
        }
    }
}

fn read_back(mut f: fs::File) -> String {
    let mut s = String::new();
    f.rewind().ok();
    f.read_to_string(&mut s).ok();
    s
}

/// Runs `params` on `rootfs`, capturing stdout and stderr.
pub fn run_captured(p: &SpecParams, mut opts: RunOptions) -> Output {
    let out = tempfile::tempfile().expect("temp file");
    let err = tempfile::tempfile().expect("temp file");
    let null = fs::File::open("/dev/null").expect("/dev/null");
    opts.stdio = Stdio::Fds {
        stdin: null.as_raw_fd(),
        stdout: out.as_raw_fd(),
        stderr: err.as_raw_fd(),
    };
    let status = spec::build(p).and_then(|s| runner::run(&s, &opts));
    Output {
        status,
        stdout: read_back(out),
        stderr: read_back(err),
    }
}

pub struct Env {
    /// The host's mount table when the tests started.
    pub mounts_before: String,
    pub dir: tempfile::TempDir,
    pub rootfs: PathBuf,
    counter: std::cell::Cell<u32>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("kiln-runner-test")
            .tempdir()
            .expect("tempdir");
        let rootfs = dir.path().join("rootfs");
        busybox_rootfs(&rootfs).expect("busybox rootfs");
        Env {
            mounts_before: mountinfo(),
            dir,
            rootfs,
            counter: std::cell::Cell::new(0),
        }
    }

    /// Options for a fresh container on the plain rootfs.
    pub fn opts(&self) -> RunOptions {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        let id = format!("kiln-test-{}-{n}", std::process::id());
        RunOptions::new(
            id.clone(),
            self.dir.path().join("containers").join(id),
            Rootfs::Dir(self.rootfs.clone()),
        )
    }
}

pub fn mountinfo() -> String {
    // Drop the mount ids: only the set of mount points matters.
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(' ').skip(4).take(1).collect::<String>())
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn check(cond: bool, msg: impl FnOnce() -> String) -> TestResult {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}

pub fn expect_stdout(o: &Output, want: &str) -> TestResult {
    check(o.stdout.trim() == want && o.code() == 0, || {
        format!(
            "want stdout {want:?} and exit 0, got {:?} / {:?} / stderr {:?}",
            o.stdout, o.status, o.stderr
        )
    })
}

pub type Case<C> = (&'static str, fn(&C) -> TestResult);

/// Runs the cases in order and prints `N passed, N failed`; returns whether
/// all passed (the caller exits non-zero after cleaning up).
pub fn drive<C>(ctx: &C, cases: &[Case<C>]) -> bool {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases.iter() {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let start = std::time::Instant::now();
        match case(ctx) {
            Ok(()) => {
                passed += 1;
                println!("test {name} ... ok ({:?})", start.elapsed());
            }
            Err(e) => {
                failed += 1;
                println!("test {name} ... FAILED\n    {e}");
            }
        }
    }
    println!("\n{passed} passed, {failed} failed");
    failed == 0
}
