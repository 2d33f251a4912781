//! `kiln build`'s inputs end to end: a context archive on standard input
//! (each compression), a URL, a git repository, named contexts, and the
//! flags CI scripts pass. Failures leave the store and the temp directory
//! as they were.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Kiln, Run};

fn with_base() -> Kiln {
    let k = Kiln::new();
    k.import_busybox("busybox");
    k
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

/// A private TMPDIR per test, so the test sees what a build leaves in it.
fn tmpdir(k: &Kiln) -> PathBuf {
    let t = k.dir.path().join("tmp");
    std::fs::create_dir_all(&t).unwrap();
    t
}

fn leftovers(tmp: &Path) -> Vec<String> {
    std::fs::read_dir(tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// `kiln build ARGS` with `input` on standard input and TMPDIR=`tmp`.
fn build_stdin(k: &Kiln, tmp: &Path, args: &[&str], input: &[u8]) -> Run {
    use std::io::Write;
    let mut child = k
        .cmd()
        .env("TMPDIR", tmp)
        .arg("build")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `tar -C dir -c .` piped through `filter` (`cat`, `gzip`, …).
fn build_in(k: &Kiln, tmp: &Path, args: &[&str]) -> Run {
    build_stdin(k, tmp, args, b"")
}

fn tar_of(dir: &Path, filter: &str) -> Vec<u8> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("tar -C '{}' -cf - . | {filter}", dir.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "tar | {filter}");
    out.stdout
}

/// The store's state a failed build must leave untouched.
fn store_state(k: &Kiln) -> (String, usize) {
    let images = k.run(&["images", "-q", "--no-trunc"]).ok().stdout;
    (images, k.blob_count())
}

/// One line on stderr, exit 125, nothing added to the store or TMPDIR.
#[track_caller]
fn refused(k: &Kiln, tmp: &Path, r: Run, needle: &str, before: &(String, usize)) {
    let r = r.code(125);
    assert!(r.stderr.contains(needle), "want {needle:?} in {}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert_eq!(&store_state(k), before, "the store changed");
    assert!(leftovers(tmp).is_empty(), "{:?}", leftovers(tmp));
}

fn context_dir(k: &Kiln) -> PathBuf {
    let ctx = k.dir.path().join("ctx");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\nCOPY . /ctx/\nRUN test \"$(cat /ctx/data/hello.txt)\" = hello && test ! -e /ctx/ignored.txt\n",
    );
    write(&ctx.join("data/hello.txt"), "hello\n");
    write(&ctx.join("ignored.txt"), "no\n");
    write(&ctx.join(".dockerignore"), "ignored.txt\n");
    write(
        &ctx.join("docker/Other.Dockerfile"),
        "FROM busybox\nCOPY data/hello.txt /other\nRUN test \"$(cat /other)\" = hello\n",
    );
    ctx
}

#[test]
fn context_archives_on_stdin_in_every_compression() {
    let k = with_base();
    let tmp = tmpdir(&k);
    let ctx = context_dir(&k);
    for filter in ["cat", "gzip", "bzip2", "xz", "zstd"] {
        let tag = format!("stdin-{filter}");
        let r = build_stdin(&k, &tmp, &["-t", &tag, "-"], &tar_of(&ctx, filter)).ok();
        assert!(
            r.stdout.trim().starts_with("sha256:"),
            "{filter}: {}",
            r.stdout
        );
        assert!(
            leftovers(&tmp).is_empty(),
            "{filter}: {:?}",
            leftovers(&tmp)
        );
    }
    // A temp context's stat index is not kept in the store.
    let indexes = std::fs::read_dir(k.root().join("kiln/stat-index")).map_or(0, |d| d.count());
    assert_eq!(indexes, 0);
    // -f names a Dockerfile inside the archive.
    build_stdin(
        &k,
        &tmp,
        &["-t", "other", "-f", "docker/Other.Dockerfile", "-"],
        &tar_of(&ctx, "gzip"),
    )
    .ok();
    // A Dockerfile alone on stdin, and `-f -` with a directory, still work.
    build_stdin(
        &k,
        &tmp,
        &["-t", "bare", "-"],
        b"FROM busybox\nRUN echo hi > /hi\n",
    )
    .ok();
    build_stdin(
        &k,
        &tmp,
        &["-t", "dashf", "-f", "-", ctx.to_str().unwrap()],
        b"FROM busybox\nCOPY data/hello.txt /h\n",
    )
    .ok();
    assert!(leftovers(&tmp).is_empty());
}

#[test]
fn bad_stdin_contexts_are_refused_and_leave_nothing() {
    let k = with_base();
    let tmp = tmpdir(&k);
    let ctx = context_dir(&k);
    let before = store_state(&k);
    // Compressed, but not a tar inside.
    let r = build_stdin(
        &k,
        &tmp,
        &["-"],
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03garbage",
    );
    refused(
        &k,
        &tmp,
        r,
        "the build context from standard input",
        &before,
    );
    // No Dockerfile in the archive.
    let r = build_stdin(
        &k,
        &tmp,
        &["-f", "nope/Dockerfile", "-"],
        &tar_of(&ctx, "cat"),
    );
    refused(&k, &tmp, r, "no Dockerfile \"nope/Dockerfile\"", &before);
    // The Dockerfile a symlink out of the context: resolved inside it.
    let evil = k.dir.path().join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", evil.join("Dockerfile")).unwrap();
    let r = build_stdin(&k, &tmp, &["-"], &tar_of(&evil, "cat"));
    refused(&k, &tmp, r, "no Dockerfile \"Dockerfile\"", &before);
    // An entry escaping the root, and a device node.
    for (name, kind) in [
        ("../escape", tar::EntryType::Regular),
        ("dev", tar::EntryType::Char),
    ] {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o644);
        // set_path refuses `..`: write the name field directly.
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
        let r = build_stdin(&k, &tmp, &["-"], &b.into_inner().unwrap());
        refused(&k, &tmp, r, name.trim_start_matches("../"), &before);
    }
    assert!(!k.dir.path().join("escape").exists());
    // Standard input cannot be both.
    let r = build_stdin(&k, &tmp, &["-f", "-", "-"], b"FROM busybox\n");
    refused(&k, &tmp, r, "both", &before);
}

#[test]
fn url_contexts_stream_archives_and_plain_dockerfiles() {
    use test_support::http::{Response, Server};
    let k = with_base();
    let tmp = tmpdir(&k);
    let ctx = context_dir(&k);
    let tgz = tar_of(&ctx, "gzip");
    let server = Server::start(move |req| match req.target.as_str() {
        "/ctx.tar.gz" => Response::ok(tgz.clone()),
        "/Dockerfile" => Response::ok(&b"FROM busybox\nRUN echo plain > /plain\n"[..]),
        _ => Response::new("404 Not Found", "no"),
    });
    let url = server.url("/ctx.tar.gz");
    build_in(&k, &tmp, &["-t", "fromurl", &url]).ok();
    build_in(
        &k,
        &tmp,
        &["-t", "fromurl2", "-f", "docker/Other.Dockerfile", &url],
    )
    .ok();
    build_in(&k, &tmp, &["-t", "plainurl", &server.url("/Dockerfile")]).ok();
    let r = k.run(&["run", "--rm", "plainurl", "cat", "/plain"]).ok();
    assert_eq!(r.stdout, "plain\n");
    assert!(leftovers(&tmp).is_empty());

    let before = store_state(&k);
    let r = build_in(&k, &tmp, &[&server.url("/missing.tar")]);
    refused(&k, &tmp, r, "404", &before);
    let dead = format!("http://127.0.0.1:{}/ctx.tar", test_support::free_port());
    let r = build_in(&k, &tmp, &[&dead]);
    refused(&k, &tmp, r, "Connection refused", &before);
}

#[test]
fn git_contexts_check_out_a_ref_and_subdirectory() {
    use common::git::{git, GitDaemon};
    let k = with_base();
    let tmp = tmpdir(&k);
    let work = k.dir.path().join("work");
    write(
        &work.join("Dockerfile"),
        "FROM busybox\nARG WANT\nCOPY . /src/\nRUN test \"$(cat /src/v.txt)\" = \"$WANT\"\n",
    );
    write(&work.join("v.txt"), "one\n");
    write(
        &work.join("sub/Dockerfile"),
        "FROM busybox\nCOPY . /sub/\nRUN test -f /sub/inner.txt && test ! -e /sub/v.txt\n",
    );
    write(&work.join("sub/inner.txt"), "inner\n");
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "v1"]);
    write(&work.join("v.txt"), "two\n");
    git(&work, &["commit", "-q", "-am", "two"]);
    let serve = k.dir.path().join("git");
    std::fs::create_dir_all(&serve).unwrap();
    git(
        &serve,
        &["clone", "-q", "--bare", work.to_str().unwrap(), "repo.git"],
    );
    let d = GitDaemon::start(&serve);
    let repo = format!("git://127.0.0.1:{}/repo.git", d.port);

    // The remote's HEAD, a tag, a branch with a subdirectory.
    build_in(
        &k,
        &tmp,
        &["--build-arg", "WANT=two", "-t", "g-head", &repo],
    )
    .ok();
    build_in(
        &k,
        &tmp,
        &[
            "--build-arg",
            "WANT=one",
            "-t",
            "g-tag",
            &format!("{repo}#v1"),
        ],
    )
    .ok();
    build_in(&k, &tmp, &["-t", "g-sub", &format!("{repo}#main:sub")]).ok();
    // `.git` is dropped unless BuildKit's build arg keeps it.
    let has_git = |k: &Kiln, tag: &str| {
        k.run(&[
            "run",
            "--rm",
            tag,
            "sh",
            "-c",
            "test -d /src/.git && echo yes || echo no",
        ])
        .ok()
        .stdout
    };
    assert_eq!(has_git(&k, "g-head"), "no\n");
    build_in(
        &k,
        &tmp,
        &[
            "--build-arg",
            "WANT=two",
            "--build-arg",
            "BUILDKIT_CONTEXT_KEEP_GIT_DIR=1",
            "-t",
            "g-kept",
            &repo,
        ],
    )
    .ok();
    assert_eq!(has_git(&k, "g-kept"), "yes\n");
    assert!(leftovers(&tmp).is_empty());

    // The same repository over smart HTTP: a `….git` URL is git, not a
    // download.
    let http = common::git::http_backend(&serve);
    build_in(&k, &tmp, &["-t", "g-http", &http.url("/repo.git#main:sub")]).ok();
    assert!(leftovers(&tmp).is_empty());
    // And in scp form (`git@host:repo.git`): git's ssh is a script that
    // runs the remote command here, in the served directory.
    let fake_ssh = k.dir.path().join("fake-ssh");
    write(
        &fake_ssh,
        &format!(
            "#!/bin/sh\nfor a; do last=$a; done\ncd '{}' && exec sh -c \"$last\"\n",
            serve.display()
        ),
    );
    let st = Command::new("chmod")
        .arg("755")
        .arg(&fake_ssh)
        .status()
        .unwrap();
    assert!(st.success());
    let r = k
        .cmd()
        .env("TMPDIR", &tmp)
        .env("GIT_SSH_COMMAND", &fake_ssh)
        .args(["build", "-t", "g-scp", "git@kiln.invalid:repo.git#main:sub"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(leftovers(&tmp).is_empty());

    let before = store_state(&k);
    let r = build_in(&k, &tmp, &[&format!("{repo}#nosuch")]);
    refused(&k, &tmp, r, "nosuch", &before);
    let r = build_in(&k, &tmp, &[&format!("{repo}#main:nodir")]);
    refused(&k, &tmp, r, "nodir", &before);
}

#[test]
fn named_contexts_serve_from_and_copy_from() {
    use test_support::http::{Response, Server};
    let k = with_base();
    let tmp = tmpdir(&k);
    let extra = k.dir.path().join("extra");
    write(&extra.join("file.txt"), "from extra\n");
    write(&extra.join("sub/deep.txt"), "deep\n");
    // The named directory's own .dockerignore applies to it.
    write(&extra.join("secret.txt"), "no\n");
    write(&extra.join(".dockerignore"), "secret.txt\n");
    let layout = k.dir.path().join("layout");
    k.run(&["push", "busybox", &format!("oci:{}:v1", layout.display())])
        .ok();
    let served = tar_of(&extra, "gzip");
    let server = Server::start(move |_| Response::ok(served.clone()));
    let ctx = k.dir.path().join("ctx");
    write(
        &ctx.join("Dockerfile"),
        "FROM files AS files\n\
         FROM base\n\
         COPY --from=extra file.txt /a.txt\n\
         COPY --from=files /sub/deep.txt /b.txt\n\
         COPY --from=remote sub /remote/\n\
         COPY --from=laid /bin/busybox /laid-busybox\n\
         COPY --from=extra . /all/\n\
         RUN test \"$(cat /a.txt)\" = 'from extra' && test \"$(cat /b.txt)\" = deep \
             && test -f /remote/deep.txt && test -x /laid-busybox \
             && test -f /all/file.txt && test ! -e /all/secret.txt\n\
         RUN --mount=type=bind,from=extra,target=/m test -f /m/sub/deep.txt\n",
    );
    let dir = extra.to_str().unwrap();
    let args = |tag: &'static str| -> Vec<String> {
        vec![
            "-t".into(),
            tag.into(),
            "--build-context".into(),
            format!("extra={dir}"),
            "--build-context".into(),
            format!("files={dir}"),
            "--build-context".into(),
            "base=docker-image://busybox".into(),
            "--build-context".into(),
            format!("remote={}", server.url("/extra.tar.gz")),
            "--build-context".into(),
            format!("laid=oci-layout://{}:v1", layout.display()),
            ctx.to_str().unwrap().into(),
        ]
    };
    let a = args("named");
    let a: Vec<&str> = a.iter().map(|s| s.as_str()).collect();
    build_in(&k, &tmp, &a).ok();
    // Unchanged inputs: every step hits; a changed file in a named
    // directory misses.
    let r = build_in(&k, &tmp, &a).ok();
    assert_eq!(r.stderr.matches("Using cache").count(), 8, "{}", r.stderr);
    write(&extra.join("file.txt"), "changed\n");
    let r = build_in(&k, &tmp, &a).code(1);
    assert!(r.stderr.contains("RUN"), "{}", r.stderr);
    assert!(leftovers(&tmp).is_empty(), "{:?}", leftovers(&tmp));

    let before = store_state(&k);
    let r = build_in(
        &k,
        &tmp,
        &["--build-context", "x=/no/such/dir", ctx.to_str().unwrap()],
    );
    refused(&k, &tmp, r, "/no/such/dir is not a directory", &before);
    let r = build_in(
        &k,
        &tmp,
        &["--build-context", "x=ftp://h/x", ctx.to_str().unwrap()],
    );
    refused(&k, &tmp, r, "unsupported source ftp://", &before);
}

fn hits(r: &Run) -> usize {
    r.stderr.matches("Using cache").count()
}

/// The annotations of `image`'s manifest, read from an OCI layout it is
/// pushed to.
fn manifest_annotations(k: &Kiln, image: &str) -> serde_json::Value {
    let dir = k
        .dir
        .path()
        .join(format!("ann-{}", image.replace(':', "-")));
    k.run(&["push", image, &format!("oci:{}:x", dir.display())])
        .ok();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    let blob = dir
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap();
    m["annotations"].clone()
}

#[test]
fn ci_flags_reach_run_steps_and_the_image() {
    let k = with_base();
    let tmp = tmpdir(&k);
    let ctx = k.dir.path().join("flags");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\n\
         ARG FROMENV\n\
         RUN test \"$FROMENV\" = from-the-environment\n\
         RUN grep -q '^10.1.2.3\tdb$' /etc/hosts\n\
         RUN grep ' /dev/shm ' /proc/mounts | grep -q size=71680k\n\
         RUN test \"$(ulimit -n)\" = 321 && test \"$(ulimit -Hn)\" = 654\n",
    );
    let host = format!(
        "linux/{}",
        std::env::consts::ARCH
            .replace("x86_64", "amd64")
            .replace("aarch64", "arm64")
    );
    let r = k
        .cmd()
        .env("TMPDIR", &tmp)
        .env("FROMENV", "from-the-environment")
        .args([
            "build",
            "-t=flags:one",
            "--tag=flags:two",
            "--build-arg",
            "FROMENV",
            "--label",
            "ci=yes",
            "--annotation",
            "org.example.ci=pipeline",
            "--annotation",
            "manifest:second=2",
            "--add-host",
            "db:10.1.2.3",
            "--shm-size",
            "70m",
            "--ulimit",
            "nofile=321:654",
            "--platform",
            &host,
            "--quiet",
            ctx.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // --quiet: the image ID and nothing else.
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("sha256:"));
    let inspect = k.run(&["inspect", "flags:one"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Config"]["Labels"]["ci"], "yes");
    assert_eq!(v[0]["Id"].as_str().unwrap(), stdout.trim());
    k.run(&["inspect", "flags:two"]).ok();
    let ann = manifest_annotations(&k, "flags:one");
    assert_eq!(ann["org.example.ci"], "pipeline");
    assert_eq!(ann["second"], "2");

    let before = store_state(&k);
    let c = ctx.to_str().unwrap();
    let r = build_in(&k, &tmp, &["--cgroup-parent", "ci.slice", c]);
    refused(
        &k,
        &tmp,
        r,
        "--cgroup-parent ci.slice: not supported",
        &before,
    );
    let r = build_in(&k, &tmp, &["--platform", "linux/s390x", c]);
    refused(&k, &tmp, r, "unsupported --platform linux/s390x", &before);
    let r = build_in(&k, &tmp, &["--add-host", "gw:host-gateway", c]);
    refused(&k, &tmp, r, "host-gateway", &before);
    let r = build_in(&k, &tmp, &["--annotation", "index:a=b", c]);
    refused(&k, &tmp, r, "only manifest annotations", &before);
}

#[test]
fn no_cache_filter_reruns_one_stage_and_file_is_relative_to_the_cwd() {
    let k = with_base();
    let tmp = tmpdir(&k);
    let ctx = k.dir.path().join("ncf");
    write(
        &ctx.join("build/Dockerfile"),
        "FROM busybox AS a\nRUN cat /proc/sys/kernel/random/uuid > /a\n\
         FROM busybox\nRUN echo b > /b\nCOPY --from=a /a /a\n",
    );
    // -f is relative to the current directory, as docker reads it.
    let run = |extra: &[&str]| {
        let mut c = k.cmd();
        c.current_dir(&ctx)
            .env("TMPDIR", &tmp)
            .args(["build", "-f", "build/Dockerfile"]);
        c.args(extra).arg(".");
        let o = c.output().unwrap();
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    };
    assert_eq!(hits(&run(&[]).ok()), 0);
    assert_eq!(hits(&run(&[]).ok()), 3);
    // Stage a runs again; the final stage's own RUN hits, but its COPY
    // from a does not: a's files changed (a COPY --from finds its key by
    // the source's layers, so the same files would hit, as in BuildKit).
    let r = run(&["--no-cache-filter", "a"]).ok();
    assert_eq!(hits(&r), 1, "{}", r.stderr);
    assert!(r.stderr.contains("--no-cache-filter"), "{}", r.stderr);
    let before = store_state(&k);
    let r = run(&["--no-cache-filter", "nosuch"]);
    refused(
        &k,
        &tmp,
        r,
        "--no-cache-filter nosuch: no stage of that name",
        &before,
    );
}

#[test]
fn check_runs_the_lint_rules_and_builds_nothing() {
    let k = with_base();
    let tmp = tmpdir(&k);
    let before = store_state(&k);
    let r = build_stdin(
        &k,
        &tmp,
        &["--check", "-"],
        b"FROM busybox AS Base\nMAINTAINER me\n",
    )
    .code(1);
    assert!(
        r.stdout
            .starts_with("Check complete, 2 warnings have been found!"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "\nStageNameCasing - https://docs.docker.com/go/dockerfile/rule/stage-name-casing/"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("\nMaintainerDeprecated - "),
        "{}",
        r.stdout
    );
    let r = build_stdin(&k, &tmp, &["--check", "-"], b"FROM busybox\nRUN true\n").ok();
    assert_eq!(r.stdout.trim(), "Check complete, no warnings found.");
    assert_eq!(store_state(&k), before);
}

/// An `ssh-agent` on a socket of its own, holding one new key; killed on drop.
struct Agent {
    child: std::process::Child,
    socket: PathBuf,
    fingerprint: String,
}

impl Agent {
    fn start(dir: &Path) -> Agent {
        common::require_tool("ssh-agent");
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        common::wait_until("the ssh agent", std::time::Duration::from_secs(20), || {
            socket.exists()
        });
        let key = dir.join("id_ed25519");
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "kiln-test", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &socket)
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let fp = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&key)
            .output()
            .unwrap();
        let fingerprint = String::from_utf8_lossy(&fp.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string();
        Agent {
            child,
            socket,
            fingerprint,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The host's `ssh-add` and the libraries it loads, laid out as a root
/// file system under `dest` (busybox has no ssh client).
fn ssh_add_rootfs(dest: &Path) {
    let bin = Path::new("/usr/bin/ssh-add");
    let ldd = Command::new("ldd").arg(bin).output().unwrap();
    let mut files = vec![bin.to_path_buf()];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        let path = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        files.extend(path);
    }
    for f in files {
        let to = dest.join(f.strip_prefix("/").unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&f, &to).unwrap();
    }
}

#[test]
fn ssh_agent_reaches_the_step_and_not_the_layer() {
    let k = with_base();
    let tmp = tmpdir(&k);
    let agent = Agent::start(k.dir.path());
    let ctx = k.dir.path().join("ssh");
    ssh_add_rootfs(&ctx.join("rootfs"));
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\n\
         COPY rootfs/ /\n\
         RUN --mount=type=ssh ssh-add -l > /default.txt\n\
         RUN --mount=type=ssh,id=work,target=/tmp/agent.sock,required \
             test \"$SSH_AUTH_SOCK\" = /tmp/agent.sock && ssh-add -l > /work.txt\n\
         RUN --mount=type=ssh,id=absent true\n",
    );
    let c = ctx.to_str().unwrap();
    let sock = agent.socket.to_str().unwrap();
    let r = k
        .cmd()
        .env("TMPDIR", &tmp)
        .env("SSH_AUTH_SOCK", sock)
        .args(["build", "-t", "ssh", "--ssh", "default", "--ssh"])
        .arg(format!("work={sock}"))
        .arg(c)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let listed = k
        .run(&["run", "--rm", "ssh", "cat", "/default.txt", "/work.txt"])
        .ok()
        .stdout;
    assert_eq!(listed.matches(&agent.fingerprint).count(), 2, "{listed}");
    // The socket and its mount point are nowhere in the image.
    let r = k
        .run(&["run", "--rm", "ssh", "sh", "-c", "ls -a /run /tmp; env"])
        .ok();
    assert!(
        !r.stdout.contains("buildkit") && !r.stdout.contains("agent.sock"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("SSH_AUTH_SOCK"), "{}", r.stdout);

    let before = store_state(&k);
    // A required agent that was not passed.
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=ssh,id=other,required true\n",
    );
    let r = build_in(&k, &tmp, &["-q", "--ssh", &format!("default={sock}"), c]);
    refused(&k, &tmp, r, "ssh agent other not found", &before);
    // A key file: loaded into an agent of the build's own, gone after.
    let key = k.dir.path().join("id_ed25519");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\nCOPY rootfs/ /\nRUN --mount=type=ssh ssh-add -l > /key.txt\n",
    );
    build_in(
        &k,
        &tmp,
        &[
            "-t",
            "sshkey",
            "--ssh",
            &format!("default={}", key.display()),
            c,
        ],
    )
    .ok();
    let listed = k
        .run(&["run", "--rm", "sshkey", "cat", "/key.txt"])
        .ok()
        .stdout;
    assert!(listed.contains(&agent.fingerprint), "{listed}");
    assert!(leftovers(&tmp).is_empty(), "{:?}", leftovers(&tmp));
    // A key with a passphrase cannot be loaded without asking.
    let locked = k.dir.path().join("locked");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
        .arg(&locked)
        .status()
        .unwrap();
    assert!(st.success());
    let before = store_state(&k);
    let r = build_in(
        &k,
        &tmp,
        &["--ssh", &format!("default={}", locked.display()), c],
    );
    refused(&k, &tmp, r, "keys with a passphrase need an agent", &before);
}
