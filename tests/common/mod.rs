//! Shared helpers for the end-to-end tests: a throwaway store per test and
//! the kiln binary; the busybox rootfs tarball and the HTTP server come from
//! the test-support crate (as does the registry launcher).
#![allow(dead_code)]

pub mod git;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct Kiln {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(self, want: i32) -> Run {
        assert_eq!(
            self.code, want,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

pub fn kiln_bin() -> &'static str {
    env!("CARGO_BIN_EXE_kiln")
}

impl Kiln {
    pub fn new() -> Kiln {
        Kiln {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(kiln_bin());
        c.arg("--root").arg(self.root());
        c.stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd().args(args).output().expect("spawn kiln"))
    }

    /// Runs kiln with `input` on standard input.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write;
        let mut child = self
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kiln");
        let mut stdin = child.stdin.take().unwrap();
        let data = input.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().expect("wait kiln");
        writer.join().unwrap();
        Run::from(out)
    }

    /// Imports the busybox rootfs as `name` and returns the image ID.
    pub fn import_busybox(&self, name: &str) -> String {
        let r = self
            .run(&["import", busybox_tar().to_str().unwrap(), name])
            .ok();
        r.stdout.trim().to_string()
    }

    /// A build context `ctx` in the test's directory holding only a
    /// Dockerfile with `dockerfile`; returns its path.
    #[allow(dead_code)]
    pub fn context(&self, dockerfile: &str) -> PathBuf {
        let ctx = self.dir.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        ctx
    }

    pub fn blob_count(&self) -> usize {
        std::fs::read_dir(self.root().join("blobs/sha256"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// A tarball of the busybox rootfs (made once per test binary), and the
/// loopback HTTP server: both from the shared test-support crate.
#[allow(unused_imports)]
pub use test_support::{busybox::tar as busybox_tar, http::serve};

pub fn sha256_file(p: &Path) -> String {
    use sha2::Digest;
    let data = std::fs::read(p).unwrap();
    hex::encode(sha2::Sha256::digest(data))
}

/// Fails the test with a clear message when an external tool is missing.
pub fn require_tool(name: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "{name} is not installed (CI installs it; see .ci/run)"
    );
}

/// Whether the tests run as root (containers need it; CI runs them as root).
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A container removed (`rm -f`) when the guard drops, whatever the
/// test's outcome.
pub struct Detached<'k> {
    pub k: &'k Kiln,
    pub name: String,
}

impl Drop for Detached<'_> {
    fn drop(&mut self) {
        let _ = self.k.run(&["rm", "-f", &self.name]);
    }
}

impl Kiln {
    /// A guard that removes container `name` when dropped.
    pub fn guard(&self, name: &str) -> Detached<'_> {
        Detached {
            k: self,
            name: name.to_string(),
        }
    }

    /// `run -d --name NAME ARGS…`, which must succeed, and its guard.
    pub fn run_detached(&self, name: &str, args: &[&str]) -> Detached<'_> {
        let mut all = vec!["run", "-d", "--name", name];
        all.extend_from_slice(args);
        self.run(&all).ok();
        self.guard(name)
    }
}

/// A store owned by `nobody` (65534) with busybox imported as `busybox`,
/// and a way to run kiln in it as that user (rootless kiln), or `None`
/// (the test then skips, saying why) when not root. The closure asserts
/// success and returns standard output.
pub fn nobody_store() -> Option<(Kiln, impl Fn(&[&str]) -> String)> {
    use std::os::unix::fs::PermissionsExt;
    if !is_root() {
        eprintln!("skipping: becoming an unprivileged user needs root");
        return None;
    }
    require_tool("setpriv");
    let k = Kiln::new();
    let top = k.dir.path().to_path_buf();
    std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(k.root()).unwrap();
    let tar = top.join("busybox.tar");
    std::fs::copy(busybox_tar(), &tar).unwrap();
    std::fs::set_permissions(&tar, std::fs::Permissions::from_mode(0o644)).unwrap();
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&top)
        .status()
        .unwrap();
    assert!(chown.success());
    let root = k.root();
    let ok = move |args: &[&str]| {
        let o = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"])
            .arg(format!("HOME={}", top.display()))
            .arg(kiln_bin())
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (so, se) = (
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        );
        assert_eq!(o.status.code(), Some(0), "{args:?}: {so} {se}");
        so
    };
    ok(&["import", tar.to_str().unwrap(), "busybox"]);
    Some((k, ok))
}

/// A store with busybox imported as `busybox`, or `None` (the test then
/// skips, saying why) when not root.
pub fn root_store() -> Option<Kiln> {
    if !is_root() {
        eprintln!("skipping: containers need root (CI runs these as root)");
        return None;
    }
    let k = Kiln::new();
    k.import_busybox("busybox");
    Some(k)
}

/// Polls `f` until it holds; fails the test after `limit`, a bound on
/// waiting that is never an assertion on speed.
pub fn wait_until(what: &str, limit: std::time::Duration, mut f: impl FnMut() -> bool) {
    let end = std::time::Instant::now() + limit;
    while !f() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The store of `k` on an overlayfs mount, as for kiln inside a container
/// (whose root is overlayfs): the kernel refuses it as an overlay upper
/// directory. Unmounted when dropped, before `k`'s directory goes.
pub struct OverlayStore(PathBuf);

impl OverlayStore {
    pub fn mount(k: &Kiln) -> OverlayStore {
        let base = k.dir.path().join("ovl");
        for d in ["lower", "upper", "work"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::create_dir_all(k.root()).unwrap();
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            base.join("lower").display(),
            base.join("upper").display(),
            base.join("work").display()
        );
        let st = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(k.root())
            .status()
            .unwrap();
        assert!(st.success(), "mount an overlay at {}", k.root().display());
        OverlayStore(k.root())
    }
}

impl Drop for OverlayStore {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
