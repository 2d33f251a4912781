//! `kiln build` end to end: each instruction and rule on the busybox base,
//! checked by RUN steps inside the build and by `kiln inspect`.

#[path = "../fixtures/hostile/cases.rs"]
mod cases;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::git::{git, GitDaemon};
use common::{Kiln, Run};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/build")
        .join(name)
}

/// A private copy of a fixture, so tests can edit and touch files.
fn copy_fixture(k: &Kiln, name: &str) -> PathBuf {
    let dest = k.dir.path().join(name);
    let st = Command::new("cp")
        .arg("-a")
        .arg(fixture(name))
        .arg(&dest)
        .status()
        .unwrap();
    assert!(st.success());
    dest
}

fn with_base() -> Kiln {
    let k = Kiln::new();
    k.import_busybox("busybox");
    k
}

fn build(k: &Kiln, args: &[&str]) -> Run {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    k.run(&all)
}

fn inspect(k: &Kiln, name: &str) -> serde_json::Value {
    let r = k.run(&["inspect", name]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    v[0].clone()
}

fn write(p: &Path, s: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, s).unwrap();
}

#[test]
fn metadata_instructions_set_the_config() {
    let k = with_base();
    let dir = fixture("instructions");
    let r = build(
        &k,
        &[
            "-t",
            "meta",
            "--build-arg",
            "GREETING=hi",
            dir.to_str().unwrap(),
        ],
    )
    .ok();
    let id = r.stdout.trim().to_string();
    let i = inspect(&k, "meta");
    assert_eq!(i["Id"], id.as_str());
    let c = &i["Config"];
    // BuildKit adds a PATH when the base has none.
    assert_eq!(
        c["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "APP_HOME=/srv/app",
            "GREETING=hi"
        ])
    );
    assert_eq!(c["Labels"]["org.example.team"], "kiln");
    assert_eq!(c["Labels"]["version"], "1.0");
    assert!(
        c["ExposedPorts"].get("8080/tcp").is_some() && c["ExposedPorts"].get("53/udp").is_some()
    );
    assert!(c["Volumes"].get("/data").is_some());
    assert_eq!(c["WorkingDir"], "/srv/app/sub");
    assert_eq!(c["User"], "nobody");
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["StopSignal"], "SIGTERM");
    assert_eq!(c["Healthcheck"]["Interval"], 30_000_000_000i64);
    assert_eq!(c["Healthcheck"]["Retries"], 3);
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/echo"]));
    // Exec-form CMD is not expanded, as docker.
    assert_eq!(c["Cmd"], serde_json::json!(["$GREETING", "world"]));
    assert_eq!(i["Author"], "someone@example.com");
    // RUN/COPY/ADD and WORKDIR (its directory, as BuildKit makes it) make
    // layers: the base's one and the two WORKDIRs'.
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 3);
    let hist = i["History"].as_array().unwrap();
    let pattern: String = hist
        .iter()
        .map(|h| if h["empty_layer"] == true { 'E' } else { 'L' })
        .collect();
    assert_eq!(pattern, "LEEEEEELLEEEEEE", "{hist:?}");
}

/// The same small tree as gzip, bzip2 and xz tarballs.
fn make_archive(ctx: &Path) {
    let tmp = ctx.join("..").join("archive-src");
    write(&tmp.join("inside/packed.txt"), "packed\n");
    for (flag, name) in [
        ("-z", "archive.tar.gz"),
        ("-j", "archive.tar.bz2"),
        ("-J", "archive.tar.xz"),
    ] {
        let st = Command::new("tar")
            .arg("-C")
            .arg(&tmp)
            .arg(flag)
            .arg("-cf")
            .arg(ctx.join(name))
            .arg("inside")
            .status()
            .unwrap();
        assert!(st.success(), "tar {flag} (bzip2 and xz-utils installed?)");
    }
}

#[test]
fn copy_and_add_follow_docker_rules() {
    let k = with_base();
    let ctx = copy_fixture(&k, "copy-rules").join("ctx");
    make_archive(&ctx);
    build(&k, &["-t", "copies", ctx.to_str().unwrap()]).ok();
    let r = build(&k, &["-f", "-", ctx.to_str().unwrap()]);
    assert_ne!(r.code, 0, "no Dockerfile on stdin must fail");
}

#[test]
fn heredocs_in_run_and_copy() {
    let k = with_base();
    build(&k, &["-t", "here", fixture("heredoc").to_str().unwrap()]).ok();
    let r = k
        .run(&[
            "run",
            "--rm",
            "here",
            "cat",
            "/heredoc.txt",
            "/etc/app.conf",
        ])
        .ok();
    assert_eq!(r.stdout, "from heredoc\nkey=value\n");
}

#[test]
fn multi_stage_copy_from_name_and_index_and_target_skips_unneeded_stages() {
    let k = with_base();
    let dir = fixture("multistage");
    // The stage `broken` fails if it runs; the target does not need it.
    let r = build(
        &k,
        &["-t", "multi", "--target", "final", dir.to_str().unwrap()],
    )
    .ok();
    assert!(!r.stderr.contains("exit 7"), "{}", r.stderr);
    // The default target is the last stage too, and it still skips `broken`.
    build(&k, &[dir.to_str().unwrap()]).ok();
    // Asking for the broken stage builds it and fails with its exit code.
    let r = build(&k, &["--target", "broken", dir.to_str().unwrap()]).code(1);
    assert!(
        r.stderr.contains("exit 7") && r.stderr.contains("exit code 7"),
        "{}",
        r.stderr
    );
    let r = build(&k, &["--target", "nosuch", dir.to_str().unwrap()]).code(125);
    assert!(r.stderr.contains("nosuch"));
}

#[test]
fn dockerignore_rules_apply_end_to_end() {
    let k = with_base();
    let ctx = copy_fixture(&k, "dockerignore").join("ctx");
    build(&k, &["-t", "ign", ctx.to_str().unwrap()]).ok();
    // A missing source names the pattern that excluded it.
    write(&ctx.join("Dockerfile"), "FROM busybox\nCOPY secret.key /\n");
    let r = build(&k, &[ctx.to_str().unwrap()]).code(125);
    assert!(r.stderr.contains("secret.key"), "{}", r.stderr);
    assert!(r.stderr.contains("secret*"), "{}", r.stderr);
    assert!(r.stderr.contains("Dockerfile:2"), "{}", r.stderr);
}

#[test]
fn onbuild_triggers_run_once_and_are_not_inherited() {
    let k = with_base();
    let tar = common::busybox_tar().to_str().unwrap().to_string();
    k.run(&[
        "import",
        "-c",
        "ONBUILD RUN touch /triggered",
        &tar,
        "onbuild-base",
    ])
    .ok();
    build(&k, &["-t", "child", fixture("onbuild").to_str().unwrap()]).ok();
    let i = inspect(&k, "child");
    assert!(
        i["Config"].get("OnBuild").is_none_or(|v| v.is_null()),
        "{}",
        i["Config"]
    );
    // A grandchild does not run the trigger again.
    let gc = k.dir.path().join("grandchild");
    write(
        &gc.join("Dockerfile"),
        "FROM child\nRUN test -f /triggered\n",
    );
    let r = build(&k, &["-t", "grandchild", gc.to_str().unwrap()]).ok();
    assert!(!r.stderr.contains("touch /triggered"), "{}", r.stderr);
}

#[test]
fn secrets_stay_out_of_layers_and_cache_mounts_persist() {
    let k = with_base();
    let secret = k.dir.path().join("token");
    std::fs::write(&secret, "s3cr3t").unwrap();
    let dir = fixture("secret-cache");
    let sec = format!("id=token,src={}", secret.display());
    build(&k, &["-t", "sec", "--secret", &sec, dir.to_str().unwrap()]).ok();
    build(
        &k,
        &[
            "--no-cache",
            "-t",
            "sec",
            "--secret",
            &sec,
            dir.to_str().unwrap(),
        ],
    )
    .ok();
    // Nothing in any layer holds the secret, and no /run/secrets stub.
    let i = inspect(&k, "sec");
    for l in i["RootFS"]["Layers"].as_array().unwrap() {
        let hex = l.as_str().unwrap().trim_start_matches("sha256:");
        let data = std::fs::read(k.root().join("blobs/sha256").join(hex)).unwrap();
        assert!(
            !data.windows(6).any(|w| w == b"s3cr3t"),
            "secret leaked into {hex}"
        );
        let mut a = tar::Archive::new(&data[..]);
        for e in a.entries().unwrap() {
            let p = e.unwrap().path().unwrap().to_string_lossy().into_owned();
            assert!(!p.starts_with("run/secrets"), "{p} in {hex}");
            assert!(!p.starts_with("cache"), "{p} in {hex}");
        }
    }
    // The cache mount kept its file across the two builds: count is 2.
    let f = k.dir.path().join("count-check");
    write(
        &f.join("Dockerfile"),
        "FROM sec\nRUN test \"$(cat /count.txt)\" = 2\n",
    );
    build(&k, &[f.to_str().unwrap()]).ok();
    let r = build(&k, &["--no-cache", dir.to_str().unwrap()]).code(125);
    assert!(r.stderr.contains("secret token not found"), "{}", r.stderr);
}

const CACHE_DF: &str = "FROM busybox
ENV A=1
COPY one.txt /one.txt
RUN cat /one.txt > /copy-of-one
COPY two.txt /two.txt
ARG LATE=x
RUN echo $LATE > /late
";

fn cache_ctx(k: &Kiln) -> PathBuf {
    let ctx = k.dir.path().join("cachectx");
    write(&ctx.join("Dockerfile"), CACHE_DF);
    write(&ctx.join("one.txt"), "one\n");
    write(&ctx.join("two.txt"), "two\n");
    ctx
}

fn hits(r: &Run) -> usize {
    r.stderr.matches("Using cache").count()
}

#[test]
fn cache_hits_and_misses_follow_the_inputs() {
    let k = with_base();
    let ctx = cache_ctx(&k);
    let c = ctx.to_str().unwrap();
    let first = build(&k, &["-t", "c", c]).ok();
    assert_eq!(hits(&first), 0);
    let id = first.stdout.trim().to_string();

    // Unchanged: every step a hit, the same image ID.
    // (ARG is a step too: it writes a history entry, as BuildKit does.)
    let again = build(&k, &["-t", "c", c]).ok();
    assert_eq!(hits(&again), 6, "{}", again.stderr);
    assert_eq!(again.stdout.trim(), id);

    // An mtime alone changes nothing.
    let st = Command::new("touch")
        .arg("-d")
        .arg("2001-01-01")
        .arg(ctx.join("two.txt"))
        .status()
        .unwrap();
    assert!(st.success());
    let touched = build(&k, &["-t", "c", c]).ok();
    assert_eq!(hits(&touched), 6, "{}", touched.stderr);
    assert_eq!(touched.stdout.trim(), id);

    // One changed byte: that COPY and everything after miss, earlier hit.
    write(&ctx.join("two.txt"), "tw0\n");
    let edited = build(&k, &["-t", "c", c]).ok();
    assert_eq!(hits(&edited), 3, "{}", edited.stderr);
    assert!(
        edited
            .stderr
            .contains("Cache miss at line 5: COPY two.txt /two.txt (what it copies changed)"),
        "{}",
        edited.stderr
    );
    assert_ne!(edited.stdout.trim(), id);

    // A build arg used only by the last step: its ARG and that step miss.
    let arg = build(&k, &["-t", "c", "--build-arg", "LATE=y", c]).ok();
    assert_eq!(hits(&arg), 4, "{}", arg.stderr);
    assert!(
        arg.stderr.contains(
            "Cache miss at line 6: ARG LATE=x (a build argument or another value it uses changed)"
        ),
        "{}",
        arg.stderr
    );

    // --no-cache runs everything.
    let nc = build(&k, &["--no-cache", "-t", "c", c]).ok();
    assert_eq!(hits(&nc), 0);
}

#[test]
fn layer_limit_is_enforced_before_any_step_runs() {
    let k = with_base();
    let dir = k.dir.path().join("many");
    let mut df = String::from("FROM busybox\n");
    for i in 0..127 {
        df.push_str(&format!("RUN echo {i} > /f{i}\n"));
    }
    write(&dir.join("Dockerfile"), &df);
    // busybox has 1 layer: 127 RUNs make 128 layers.
    let r = build(&k, &[dir.to_str().unwrap()]).code(125);
    assert!(r.stderr.contains("Dockerfile:128:"), "{}", r.stderr);
    assert!(
        r.stderr
            .contains("would produce 128 layers; the limit is 127"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("STEP"), "no step may run: {}", r.stderr);

    // --squash lets it through as base + 1 layer.
    let r = build(&k, &["--squash", "-t", "squashed", dir.to_str().unwrap()]).ok();
    let _ = r;
    let i = inspect(&k, "squashed");
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    let check = k.dir.path().join("check-squash");
    write(
        &check.join("Dockerfile"),
        "FROM squashed\nRUN test \"$(cat /f0)\" = 0 && test \"$(cat /f126)\" = 126\n",
    );
    build(&k, &[check.to_str().unwrap()]).ok();

    // 126 RUNs: 127 layers, built and usable.
    let mut df = String::from("FROM busybox\n");
    for i in 0..126 {
        df.push_str(&format!("RUN echo {i} > /f{i}\n"));
    }
    write(&dir.join("Dockerfile"), &df);
    build(&k, &["-t", "tall", dir.to_str().unwrap()]).ok();
    let i = inspect(&k, "tall");
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 127);
    // All 127 layers stack in one overlay mount and the image runs.
    let r = k
        .run(&["run", "--rm", "tall", "sh", "-c", "cat /f0 /f125"])
        .ok();
    assert_eq!(r.stdout, "0\n125\n");
}

#[test]
fn source_date_epoch_makes_builds_reproducible() {
    let k = with_base();
    let ctx = cache_ctx(&k);
    let c = ctx.to_str().unwrap();
    let a = build(
        &k,
        &[
            "--no-cache",
            "--build-arg",
            "SOURCE_DATE_EPOCH=1700000000",
            c,
        ],
    )
    .ok();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let st = Command::new("touch")
        .arg(ctx.join("one.txt"))
        .status()
        .unwrap();
    assert!(st.success());
    let b = build(
        &k,
        &[
            "--no-cache",
            "--build-arg",
            "SOURCE_DATE_EPOCH=1700000000",
            c,
        ],
    )
    .ok();
    assert_eq!(
        a.stdout.trim(),
        b.stdout.trim(),
        "{}\n{}",
        a.stderr,
        b.stderr
    );
}

#[test]
fn independent_stages_run_at_the_same_time() {
    let k = with_base();
    let dir = fixture("parallel");
    let r = build(&k, &["-t", "par", dir.to_str().unwrap()]).ok();
    // Each line names its stage: three stages run.
    assert!(
        r.stderr.contains("[1/3] STEP 1/2: FROM busybox AS left"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("[3/3] STEP 4/4: RUN test"),
        "{}",
        r.stderr
    );
    let out = k
        .run(&["run", "--rm", "par", "cat", "/left", "/right"])
        .ok();
    assert_eq!(out.stdout, "left\nright\n");
}

#[test]
fn a_failing_stage_stops_a_parallel_build() {
    let k = with_base();
    let dir = k.dir.path().join("par-fail");
    write(
        &dir.join("Dockerfile"),
        "FROM busybox AS slow\nRUN sleep 1\nRUN echo never > /never\n\
         FROM busybox AS bad\nRUN sh -c 'exit 4'\n\
         FROM busybox\nCOPY --from=slow /never /n\nCOPY --from=bad /etc/passwd /p\n",
    );
    let before = k.run(&["images", "-q"]).ok().stdout;
    let r = build(&k, &["-t", "pfail", dir.to_str().unwrap()]).code(1);
    assert!(
        r.stderr.contains("Dockerfile:5") && r.stderr.contains("exit code 4"),
        "{}",
        r.stderr
    );
    // The final stage never starts.
    assert!(!r.stderr.contains("[3/3]"), "{}", r.stderr);
    assert_eq!(k.run(&["images", "-q"]).ok().stdout, before);
    let scratch = k.root().join("kiln/build");
    let left = std::fs::read_dir(&scratch).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "scratch directories left in {}", scratch.display());
}

#[test]
fn tty_progress_draws_live_lines_and_shows_run_output() {
    let k = with_base();
    let dir = k.dir.path().join("tty");
    write(
        &dir.join("Dockerfile"),
        "FROM busybox AS a\nRUN echo out-of-a\nFROM busybox\nCOPY --from=a /etc/passwd /h\nRUN echo out-of-final\n",
    );
    // Without a terminal, tty mode is refused rather than silently plain.
    let r = build(&k, &["--progress", "tty", dir.to_str().unwrap()]).code(125);
    assert!(r.stderr.contains("needs a terminal"), "{}", r.stderr);
    // Under a pseudo-terminal (util-linux `script`), the build runs with
    // live lines and RUN output passed through them.
    let line = format!(
        "{} --root {} build --progress tty -t ttyb {}",
        common::kiln_bin(),
        k.root().display(),
        dir.display()
    );
    let out = Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("[1/2] │ out-of-a"), "{text}");
    assert!(text.contains("[2/2] │ out-of-final"), "{text}");
    assert!(
        text.contains("[2/2] STEP 3/3: RUN echo out-of-final"),
        "{text}"
    );
    assert!(
        text.contains("Successfully tagged localhost/ttyb:latest"),
        "{text}"
    );
    k.run(&["inspect", "ttyb"]).ok();
}

#[test]
fn a_failing_run_reports_and_leaves_no_image() {
    let k = with_base();
    let dir = k.dir.path().join("fail");
    write(
        &dir.join("Dockerfile"),
        "FROM busybox\nRUN echo partial > /p\nRUN sh -c 'exit 3'\n",
    );
    let before = k.run(&["images", "-q"]).ok().stdout;
    let r = build(&k, &["-t", "failed", dir.to_str().unwrap()]).code(1);
    assert!(r.stderr.contains("Dockerfile:3"), "{}", r.stderr);
    assert!(
        r.stderr.contains("exit 3") && r.stderr.contains("exit code 3"),
        "{}",
        r.stderr
    );
    assert_eq!(k.run(&["images", "-q"]).ok().stdout, before);
    let scratch = k.root().join("kiln/build");
    let left = std::fs::read_dir(&scratch).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "scratch directories left in {}", scratch.display());
}

#[test]
fn parse_errors_name_file_line_and_column() {
    let k = with_base();
    let dir = k.dir.path().join("bad");
    write(
        &dir.join("Dockerfile"),
        "FROM busybox\nFOO bar\nCOPY onlyone\n",
    );
    let r = build(&k, &[dir.to_str().unwrap()]).code(125);
    assert!(r.stderr.contains("Dockerfile:2"), "{}", r.stderr);
    assert!(
        r.stderr.contains("unknown instruction: FOO"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("Dockerfile:3"),
        "both errors reported: {}",
        r.stderr
    );
}

#[test]
fn stdin_dockerfile_quiet_and_iidfile() {
    let k = with_base();
    let iid = k.dir.path().join("iid");
    let r = k
        .run_stdin(
            &[
                "build",
                "-q",
                "--iidfile",
                iid.to_str().unwrap(),
                "-t",
                "fromstdin",
                "-",
            ],
            b"FROM busybox\nRUN echo hi > /hi\n",
        )
        .ok();
    let id = r.stdout.trim();
    assert!(
        id.starts_with("sha256:") && r.stdout.lines().count() == 1,
        "{}",
        r.stdout
    );
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    assert_eq!(inspect(&k, "fromstdin")["Id"], id);
}

#[test]
fn print_ast_matches_buildkit_dump() {
    let corpus = test_support::conformance_dir().join("buildkit/parser/testfiles");
    let k = Kiln::new();
    for case in ["env", "json", "escape"] {
        let df = corpus.join(case).join("Dockerfile");
        let r = k
            .run(&[
                "build",
                "--print-ast",
                "-f",
                df.to_str().unwrap(),
                corpus.join(case).to_str().unwrap(),
            ])
            .ok();
        let want = std::fs::read_to_string(corpus.join(case).join("result")).unwrap();
        assert_eq!(r.stdout, want, "{case}");
    }
}

#[test]
fn add_fetches_urls_checks_checksums_and_never_extracts() {
    use sha2::Digest;
    let k = with_base();
    // A gzip tar body: ADD must not extract it when it comes from a URL.
    static BODY: &[u8] = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03not really a tarball";
    let port = common::serve(BODY);
    let sum = hex::encode(sha2::Sha256::digest(BODY));
    let dir = k.dir.path().join("addurl");
    write(
        &dir.join("Dockerfile"),
        &format!(
            "FROM busybox\n\
             ADD --checksum=sha256:{sum} http://127.0.0.1:{port}/files/pkg.tar.gz /dl/\n\
             ADD http://127.0.0.1:{port}/other /named.bin\n\
             RUN test \"$(stat -c %a /dl/pkg.tar.gz)\" = 600 && test \"$(sha256sum < /dl/pkg.tar.gz | cut -d' ' -f1)\" = {sum} && test -f /named.bin\n"
        ),
    );
    build(&k, &["-t", "addurl", dir.to_str().unwrap()]).ok();
    // Cached: with --checksum nothing changes, and the build hits.
    let again = build(&k, &["-t", "addurl", dir.to_str().unwrap()]).ok();
    assert_eq!(hits(&again), 3, "{}", again.stderr);

    let bad = "0".repeat(64);
    write(
        &dir.join("Dockerfile"),
        &format!("FROM busybox\nADD --checksum=sha256:{bad} http://127.0.0.1:{port}/x /x\n"),
    );
    let r = build(&k, &[dir.to_str().unwrap()]).code(125);
    assert!(r.stderr.contains("checksum mismatch"), "{}", r.stderr);
    assert!(r.stderr.contains("Dockerfile:2"), "{}", r.stderr);
    write(
        &dir.join("Dockerfile"),
        &format!("FROM busybox\nCOPY http://127.0.0.1:{port}/x /x\n"),
    );
    let r = build(&k, &[dir.to_str().unwrap()]).code(125);
    assert!(r.stderr.contains("use ADD"), "{}", r.stderr);
}

#[test]
fn builder_prune_forgets_the_cache_and_frees_its_layers() {
    let k = with_base();
    let dir = k.dir.path().join("prune");
    write(
        &dir.join("Dockerfile"),
        "FROM busybox\n\
         RUN --mount=type=cache,target=/c (cat /c/seen 2>/dev/null || echo first) > /was && echo x > /c/seen\n\
         RUN head -c 300000 /dev/urandom > /big\n",
    );
    let ctx = dir.to_str().unwrap();
    build(&k, &["-t", "pr", ctx]).ok();
    let blobs = || {
        std::fs::read_dir(k.root().join("blobs/sha256"))
            .unwrap()
            .count()
    };
    // The image goes; its layers stay, kept by the cache.
    k.run(&["rmi", "pr"]).ok();
    let kept = blobs();
    let r = build(&k, &["-t", "pr", ctx]).ok();
    assert_eq!(hits(&r), 2, "{}", r.stderr);
    k.run(&["rmi", "pr"]).ok();

    let r = k.run(&["builder", "prune"]).ok();
    assert!(
        r.stdout.contains("Deleted 2 build cache records"),
        "{}",
        r.stdout
    );
    assert!(blobs() < kept, "the cached layers are freed");
    // Nothing cached any more; the cache mount survives a plain prune.
    let r = build(&k, &["-t", "pr", ctx]).ok();
    assert_eq!(hits(&r), 0, "{}", r.stderr);
    let was = |k: &Kiln| k.run(&["run", "--rm", "pr", "cat", "/was"]).ok().stdout;
    assert_eq!(was(&k), "x\n");
    // -a empties cache mounts too.
    let r = k.run(&["builder", "prune", "-a"]).ok();
    assert!(r.stdout.contains("1 cache mounts"), "{}", r.stdout);
    build(&k, &["-t", "pr", ctx]).ok();
    assert_eq!(was(&k), "first\n");
}

#[test]
fn add_checks_out_git_repositories_at_a_ref() {
    let k = with_base();
    let serve = k.dir.path().join("git");
    let work = k.dir.path().join("work");
    write(&work.join("hello.txt"), "v1\n");
    write(&work.join("sub/inner.txt"), "inner\n");
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "v1"]);
    write(&work.join("hello.txt"), "v2\n");
    git(&work, &["commit", "-q", "-am", "two"]);
    std::fs::create_dir_all(&serve).unwrap();
    git(
        &serve,
        &["clone", "-q", "--bare", work.to_str().unwrap(), "repo.git"],
    );
    let d = GitDaemon::start(&serve);
    let repo = format!("git://127.0.0.1:{}/repo.git", d.port);

    let ctx = k.dir.path().join("ctx");
    write(
        &ctx.join("Dockerfile"),
        &format!(
            "FROM busybox\n\
             ADD {repo}#v1 /tagged/\n\
             ADD {repo}#main:sub /sub\n\
             ADD --keep-git-dir=true {repo} /kept/\n\
             RUN test \"$(cat /tagged/hello.txt)\" = v1 && test ! -e /tagged/.git\n\
             RUN test \"$(cat /sub/inner.txt)\" = inner && test ! -e /sub/hello.txt\n\
             RUN test \"$(cat /kept/hello.txt)\" = v2 && test -d /kept/.git\n"
        ),
    );
    let c = ctx.to_str().unwrap();
    build(&k, &["-t", "fromgit", c]).ok();
    // Same commits: all hits. The branch moves: the steps that follow it miss.
    let r = build(&k, &["-t", "fromgit", c]).ok();
    assert_eq!(hits(&r), 6, "{}", r.stderr);
    write(&work.join("sub/inner.txt"), "inner\n");
    write(&work.join("new.txt"), "new\n");
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "three"]);
    git(
        &serve.join("repo.git"),
        &["fetch", "-q", work.to_str().unwrap(), "main:main"],
    );
    let r = build(&k, &["-t", "fromgit", c]).ok();
    assert_eq!(hits(&r), 1, "only the tag's step hits: {}", r.stderr);
    // A ref that does not exist names the repository.
    write(
        &ctx.join("Dockerfile"),
        &format!("FROM busybox\nADD {repo}#nosuch /x/\n"),
    );
    let r = build(&k, &[c]).code(125);
    assert!(
        r.stderr.contains("Dockerfile:2") && r.stderr.contains(&repo),
        "{}",
        r.stderr
    );
}

/// A build opens its layers once for all its steps and remembers what it
/// found in them (issue 21): each step still sees what the steps before it
/// changed in names earlier steps looked up. USER is resolved through
/// /etc/passwd and /etc/group as each step's stack shows them: edited,
/// deleted (a whiteout over what the base had) and made again. Two `RUN
/// true` make the same layer twice: the stack is still mounted (overlayfs
/// refuses a directory given twice; the copy it fell back to lost the
/// deletion).
/// A store on overlayfs (kiln inside a container): the kernel refuses it
/// as the upper directory of a RUN step's overlay. The build fails there,
/// saying so; it used to run the step on a copy of the layers, whose
/// writes never reached the step's layer: `RUN echo hi > /x` made an
/// empty layer and the next step found no /x.
#[test]
fn a_run_step_whose_overlay_cannot_mount_fails_instead_of_losing_its_changes() {
    if !common::is_root() {
        eprintln!("skipping: RUN steps need root");
        return;
    }
    let k = Kiln::new();
    let _overlay = common::OverlayStore::mount(&k);
    k.import_busybox("busybox");
    let ctx = k.context("FROM busybox\nRUN echo hi > /x\nRUN cat /x\n");
    let r = build(&k, &["-t", "lost", ctx.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("overlay mount") && r.stderr.contains("--root"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("copying the layers instead"),
        "{}",
        r.stderr
    );
    assert_ne!(k.run(&["image", "inspect", "lost"]).code, 0);
}

#[test]
fn each_run_step_sees_the_users_the_steps_before_it_made() {
    if !common::is_root() {
        eprintln!("skipping: RUN steps need root");
        return;
    }
    let k = with_base();
    let ctx = k.dir.path().join("usersctx");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN echo 'app:x:4321:4321::/:/bin/sh' >> /etc/passwd && echo 'app:x:4321:' >> /etc/group\n\
         RUN true\n\
         RUN true\n\
         USER app\n\
         RUN test \"$(id -u):$(id -g)\" = 4321:4321\n\
         USER root\n\
         RUN sed -i 's/^app:x:4321:4321:/app:x:4555:4321:/' /etc/passwd\n\
         USER app\n\
         RUN test \"$(id -u):$(id -g)\" = 4555:4321\n\
         USER root\n\
         RUN rm /etc/passwd /etc/group\n\
         USER 7:8\n\
         RUN test \"$(id -u):$(id -g)\" = 7:8 && test ! -e /etc/passwd\n\
         USER 0\n\
         RUN echo 'app:x:4777:4777::/:/bin/sh' > /etc/passwd\n\
         USER app\n\
         RUN test \"$(id -u):$(id -g)\" = 4777:4777\n",
    );
    let c = ctx.to_str().unwrap();
    let r = build(&k, &["-t", "users", c]).ok();
    assert!(!r.stderr.contains("overlay mount failed"), "{}", r.stderr);
    // A user the stack no longer has is an error, as in the container.
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN echo 'app:x:4321:4321::/:/bin/sh' >> /etc/passwd\n\
         USER app\n\
         RUN true\n\
         USER root\n\
         RUN rm /etc/passwd\n\
         USER app\n\
         RUN true\n",
    );
    let r = build(&k, &["-t", "users", c]);
    assert!(
        r.code != 0 && r.stderr.contains("USER app"),
        "{} {}",
        r.code,
        r.stderr
    );
}

/// Issue 12, item 1: RUN steps get the same device allow-list as `kiln run`.
#[test]
fn run_steps_cannot_read_host_devices() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: RUN steps need root");
        return;
    }
    let k = with_base();
    let ctx = k.dir.path().join("devctx");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN mknod /tmp/n c 1 3 && echo x > /tmp/n && rm /tmp/n\n\
         RUN mknod /tmp/d b 7 0 && dd if=/tmp/d of=/dev/null bs=512 count=1\n",
    );
    let r = build(&k, &["-t", "dev", ctx.to_str().unwrap()]);
    assert!(
        r.code != 0 && r.stderr.contains("Operation not permitted"),
        "a host block device was readable in RUN: {} {} {}",
        r.code,
        r.stdout,
        r.stderr
    );
}

/// A RUN step's layer blob is synced and named on a thread while the next
/// steps run. When that fails (here the blob directory is immutable), the
/// build still fails with that error in one line and exit 125, writes no
/// cache record (none may name a blob that is not there) and no image, and
/// leaves the store as `system check` wants it; once the directory is
/// writable again the same build works.
#[test]
fn a_run_layer_that_cannot_be_stored_fails_the_build_and_records_nothing() {
    if !common::is_root() {
        eprintln!("skipping: RUN steps need root");
        return;
    }
    common::require_tool("chattr");
    let k = with_base();
    let ctx = k.dir.path().join("nostore");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\nRUN echo three > /three\n",
    );
    let blobs = k.root().join("blobs/sha256");
    let listing = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .map(|e| {
                e.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    let roots = k.root().join("kiln/roots");
    let (blobs_before, roots_before) = (listing(&blobs), listing(&roots));
    /// Lifts the flag even when an assertion fails, so the store can go.
    struct Immutable<'a>(&'a Path);
    impl Drop for Immutable<'_> {
        fn drop(&mut self) {
            let _ = Command::new("chattr").arg("-i").arg(self.0).status();
        }
    }
    let st = Command::new("chattr")
        .arg("+i")
        .arg(&blobs)
        .status()
        .unwrap();
    assert!(st.success(), "chattr +i {}", blobs.display());
    let guard = Immutable(&blobs);
    let r = build(&k, &["-q", "-t", "nostore", ctx.to_str().unwrap()]).code(125);
    drop(guard);
    let lines: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.len() == 1
            && lines[0].contains(blobs.to_str().unwrap())
            && lines[0].contains("Operation not permitted"),
        "{}",
        r.stderr
    );
    assert_eq!(listing(&blobs), blobs_before, "no blob stored");
    assert_eq!(listing(&roots), roots_before, "no record written");
    assert!(k.run(&["inspect", "nostore"]).code != 0, "no image named");
    let check = k.run(&["system", "check"]).ok();
    assert!(
        check.stdout.contains("No problems found"),
        "{}",
        check.stdout
    );
    build(&k, &["-q", "-t", "nostore", ctx.to_str().unwrap()]).ok();
    k.run(&["run", "--rm", "nostore", "cat", "/one", "/two", "/three"])
        .ok();
    let check = k.run(&["system", "check"]).ok();
    assert!(
        check.stdout.contains("No problems found"),
        "{}",
        check.stdout
    );
}

#[test]
fn add_refuses_an_archive_the_store_would_refuse() {
    // The entries of a local archive ADD extracts pass the store's entry
    // check: a whiteout of `..` or `.` never reaches a built layer.
    let k = with_base();
    for (i, name) in [&b".wh..."[..], b"d/.wh.."].into_iter().enumerate() {
        let ctx = k.dir.path().join(format!("evilctx{i}"));
        write(&ctx.join("Dockerfile"), "FROM busybox\nADD evil.tar /\n");
        let tar = cases::RawTar::new()
            .dir("d/")
            .file(b"d/f", b"x\n")
            .file(name, b"")
            .finish();
        std::fs::write(ctx.join("evil.tar"), tar).unwrap();
        let r = build(&k, &["-t", "evil", ctx.to_str().unwrap()]);
        let shown = String::from_utf8_lossy(name);
        assert!(
            r.code == 125
                && r.stderr.lines().any(|l| l.contains("Dockerfile:2:")
                    && l.contains("evil.tar")
                    && l.contains(&format!("\"{shown}\""))),
            "ADD of an archive holding {shown:?}: {} {} {}",
            r.code,
            r.stdout,
            r.stderr
        );
        k.run(&["inspect", "evil"]).code(125);
    }
}

#[test]
fn context_names_that_are_not_utf8_keep_their_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let k = with_base();
    let ctx = k.dir.path().join("bytesctx");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\nCOPY . /d/\nADD x/arch.tar /t/\nCOPY x/l* /e/\n",
    );
    let name = |b: &[u8]| ctx.join(std::ffi::OsStr::from_bytes(b));
    std::fs::write(name(b"a\xfe"), "one\n").unwrap();
    std::fs::write(name(b"a\xff"), "two\n").unwrap();
    // An archive entry and a symlink named as a source (followed) whose
    // names are not UTF-8 either.
    std::fs::create_dir(ctx.join("x")).unwrap();
    let tar = cases::RawTar::new().file(b"t\xfc", b"three\n").finish();
    std::fs::write(ctx.join("x/arch.tar"), tar).unwrap();
    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(b"../a\xff"), name(b"x/l\xfa")).unwrap();
    std::fs::write(ctx.join(".dockerignore"), "Dockerfile\n.dockerignore\n").unwrap();
    // Names as hex bytes (`od`), then the files' contents in name order.
    let listing = |k: &Kiln| {
        k.run(&[
            "run",
            "--rm",
            "bytes",
            "sh",
            "-c",
            "cd /d && printf '%s\\n' a* /t/* /e/* | od -An -tx1 | tr -s ' \\n' ' '; \\
             cat /d/a* /t/* && test ! -L /e/* && cat /e/*",
        ])
        .ok()
        .stdout
    };
    let first = build(&k, &["-t", "bytes", ctx.to_str().unwrap()]).ok();
    let rest = "2f 74 2f 74 fc 0a 2f 65 2f 6c fa 0a one\ntwo\nthree\ntwo\n";
    assert_eq!(listing(&k), format!(" 61 fe 0a 61 ff 0a {rest}"));

    // Renaming one to another name that is not UTF-8 either changes the
    // key (and the layer).
    std::fs::rename(name(b"a\xfe"), name(b"a\xfd")).unwrap();
    let second = build(&k, &["-t", "bytes", ctx.to_str().unwrap()]).ok();
    assert_eq!(hits(&second), 0, "the COPY is no hit: {}", second.stderr);
    assert_ne!(first.stdout, second.stdout);
    assert_eq!(listing(&k), format!(" 61 fd 0a 61 ff 0a {rest}"));
}

// A RUN reading the context through a bind mount is keyed on what it reads
// (the `source=` subtree, less .dockerignore), as BuildKit keys it.
#[test]
fn run_bind_mount_from_the_context_keys_the_step_on_its_content() {
    let k = with_base();
    let ctx = k.dir.path().join("bindctx");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=bind,source=sub,target=/m echo seen-$(cat /m/data.txt)\n",
    );
    write(&ctx.join(".dockerignore"), "sub/ignored.txt\n");
    write(&ctx.join("sub/data.txt"), "v1\n");
    write(&ctx.join("sub/ignored.txt"), "a\n");
    write(&ctx.join("other.txt"), "a\n");
    let c = ctx.to_str().unwrap();
    let first = build(&k, &["-t", "bindkey", c]).ok();
    assert!(first.stderr.contains("seen-v1"), "{}", first.stderr);

    // Files outside the mount, or ignored, do not matter.
    write(&ctx.join("other.txt"), "b\n");
    write(&ctx.join("sub/ignored.txt"), "b\n");
    let again = build(&k, &["-t", "bindkey", c]).ok();
    assert_eq!(hits(&again), 1, "{}", again.stderr);

    // The mounted file changed: the RUN runs again and sees it.
    write(&ctx.join("sub/data.txt"), "v2\n");
    let edited = build(&k, &["-t", "bindkey", c]).ok();
    assert_eq!(hits(&edited), 0, "{}", edited.stderr);
    assert!(edited.stderr.contains("seen-v2"), "{}", edited.stderr);
}

// A bind mount of the context shows it as `.dockerignore` filters it, as
// BuildKit (which never receives ignored files): a step cannot read (and
// bake into the image) a file the context ignores. Ignored directories go
// whole, a `!` re-inclusion stays, and the directories keep their modes.
#[test]
fn run_bind_mount_of_the_context_hides_ignored_files() {
    let k = with_base();
    let ctx = k.dir.path().join("bindhide");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=bind,target=/m cd /m && find . | sort | tr '\\n' ' ' && echo && stat -c 'mode=%a' sub\n",
    );
    write(
        &ctx.join(".dockerignore"),
        "secret.env\nsub/*.key\nlogs\nkeep/*\n!keep/yes.txt\n",
    );
    write(&ctx.join("secret.env"), "TOKEN=1\n");
    write(&ctx.join("sub/a.txt"), "a\n");
    write(&ctx.join("sub/b.key"), "k\n");
    write(&ctx.join("logs/x.log"), "l\n");
    write(&ctx.join("keep/yes.txt"), "y\n");
    write(&ctx.join("keep/no.txt"), "n\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ctx.join("sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let out = build(&k, &["--no-cache", "-t", "bindhide", ctx.to_str().unwrap()]).ok();
    let line = out
        .stderr
        .lines()
        .find(|l| l.contains("./sub/a.txt"))
        .unwrap_or_else(|| panic!("no listing in {}", out.stderr));
    for gone in ["secret.env", "b.key", "logs", "no.txt"] {
        assert!(!line.contains(gone), "{gone} visible: {line}");
    }
    for seen in [
        "./Dockerfile",
        "./.dockerignore",
        "./keep/yes.txt",
        "./sub/a.txt",
    ] {
        assert!(line.contains(seen), "{seen} missing: {line}");
    }
    assert!(out.stderr.contains("mode=750"), "{}", out.stderr);
}

// `RUN --mount=type=bind,rw`: the step may write through the mount (BuildKit
// allows it); the writes reach neither the context nor the image.
#[test]
fn run_bind_mount_rw_takes_writes_and_keeps_them_out() {
    let k = with_base();
    let ctx = k.dir.path().join("bindrw");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=bind,target=/m,rw echo changed > /m/data.txt && echo new > /m/made.txt && cat /m/data.txt\nRUN --mount=type=bind,target=/m cat /m/data.txt && test ! -e /m/made.txt && echo clean\n",
    );
    write(&ctx.join("data.txt"), "original\n");
    let out = build(&k, &["-t", "bindrw", ctx.to_str().unwrap()]).ok();
    assert!(out.stderr.contains("changed"), "{}", out.stderr);
    assert!(out.stderr.contains("clean"), "{}", out.stderr);
    assert_eq!(
        std::fs::read_to_string(ctx.join("data.txt")).unwrap(),
        "original\n"
    );
    assert!(!ctx.join("made.txt").exists());
    // A read-only bind (the default) still refuses writes.
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=bind,target=/m echo x > /m/data.txt\n",
    );
    let ro = build(&k, &["-t", "bindro", ctx.to_str().unwrap()]);
    assert_ne!(ro.code, 0, "{}", ro.stderr);
    assert_eq!(
        std::fs::read_to_string(ctx.join("data.txt")).unwrap(),
        "original\n"
    );
}

// A bind mount over /etc covers the hosts and resolv.conf files the step
// gets, as in BuildKit (which mounts them first), instead of failing to make
// their mount points in a read-only mount.
#[test]
fn run_bind_mount_over_etc_covers_the_step_files() {
    let k = with_base();
    let ctx = k.dir.path().join("bindetc");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=bind,source=sub,target=/etc echo seen $(ls -a /etc)\n",
    );
    write(&ctx.join("sub/a.txt"), "a\n");
    let out = build(&k, &["-t", "bindetc", ctx.to_str().unwrap()]).ok();
    assert!(out.stderr.contains("seen . .. a.txt\n"), "{}", out.stderr);
}

// Rootless kiln has no mount namespace for views: the bind mount's filtered
// (and, for `rw`, writable) view is a copy, with the same result.
#[test]
fn rootless_run_bind_mount_hides_ignored_files_and_keeps_writes_out() {
    let Some((k, ok)) = common::nobody_store() else {
        return;
    };
    let ctx = k.dir.path().join("ctx");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=bind,target=/m,rw cd /m && find . | sort > /listing && echo x > new.txt && echo y > data.txt\n",
    );
    write(&ctx.join(".dockerignore"), "secret.env\n");
    write(&ctx.join("secret.env"), "T\n");
    write(&ctx.join("data.txt"), "d\n");
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&ctx)
        .status()
        .unwrap();
    assert!(chown.success());
    ok(&["build", "-t", "rl", ctx.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(ctx.join("data.txt")).unwrap(),
        "d\n"
    );
    assert!(!ctx.join("new.txt").exists());
    let listing = ok(&["run", "--rm", "--network", "none", "rl", "cat", "/listing"]);
    assert_eq!(listing, ".\n./.dockerignore\n./Dockerfile\n./data.txt\n");
}

// A RUN reading another stage through a bind mount runs again when that
// stage is rebuilt with other content.
#[test]
fn run_bind_mount_from_a_stage_keys_the_step_on_that_stage() {
    let k = with_base();
    let ctx = k.dir.path().join("bindstage");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox AS src\nCOPY data.txt /d/\nFROM busybox\nRUN --mount=type=bind,from=src,source=/d,target=/m echo seen-$(cat /m/data.txt)\n",
    );
    write(&ctx.join("data.txt"), "v1\n");
    let c = ctx.to_str().unwrap();
    let first = build(&k, &["-t", "bindstage", c]).ok();
    assert!(first.stderr.contains("seen-v1"), "{}", first.stderr);
    write(&ctx.join("data.txt"), "v2\n");
    let edited = build(&k, &["-t", "bindstage", c]).ok();
    assert!(edited.stderr.contains("seen-v2"), "{}", edited.stderr);
}

/// An edit of one context file: the COPY's new layer is unpacked as a
/// delta over the layer the step made before (its directory holds the
/// edited file, and the directories above it), and the image stacks both.
/// A write to an unchanged file later, by a RUN step or a container,
/// lands in that step's or container's own layer: the earlier image still
/// has the old bytes. The collector keeps the base while the delta is
/// used, even with the image and cache that made the base gone.
#[test]
fn an_edited_copy_is_a_delta_and_later_writes_stay_apart() {
    let k = with_base();
    let ctx = k.dir.path().join("linkctx");
    write(&ctx.join("keep.txt"), "kept\n");
    write(&ctx.join("edit.txt"), "one\n");
    let df = k.dir.path().join("Dockerfile.link");
    write(&df, "FROM busybox\nCOPY . /ctx\nRUN cat /ctx/keep.txt\n");
    let (c, f) = (ctx.to_str().unwrap(), df.to_str().unwrap());
    build(&k, &["-q", "-t", "v1", "-f", f, c]).ok();
    write(&ctx.join("edit.txt"), "two\n");
    build(&k, &["-q", "-t", "v2", "-f", f, c]).ok();
    let copy_layer = |img: &str| {
        let l = inspect(&k, img)["RootFS"]["Layers"][1]
            .as_str()
            .unwrap()
            .strip_prefix("sha256:")
            .unwrap()
            .to_string();
        k.root().join("kiln/layers").join(l).join("ctx")
    };
    let (l1, l2) = (copy_layer("v1"), copy_layer("v2"));
    assert_ne!(l1, l2);
    assert!(l1.join("keep.txt").is_file());
    assert!(!l2.join("keep.txt").exists(), "the delta has the edit only");
    assert_eq!(
        std::fs::read_to_string(l2.join("edit.txt")).unwrap(),
        "two\n"
    );
    assert_eq!(
        std::fs::read_to_string(l1.join("edit.txt")).unwrap(),
        "one\n"
    );
    use std::os::unix::fs::MetadataExt;

    // Writes through the new image, in a build and in a container.
    let df3 = k.dir.path().join("Dockerfile.write");
    write(
        &df3,
        "FROM v2\nRUN echo build >> /ctx/keep.txt && chmod 600 /ctx/keep.txt\n",
    );
    build(&k, &["-q", "-t", "v3", "-f", df3.to_str().unwrap(), c]).ok();
    k.run(&["run", "--rm", "v2", "sh", "-c", "echo run >> /ctx/keep.txt"])
        .ok();
    for img in ["v1", "v2"] {
        let r = k.run(&["run", "--rm", img, "cat", "/ctx/keep.txt"]).ok();
        assert_eq!(r.stdout, "kept\n", "{img}");
    }
    let r = k.run(&["run", "--rm", "v3", "cat", "/ctx/keep.txt"]).ok();
    assert_eq!(r.stdout, "kept\nbuild\n");
    assert_eq!(
        std::fs::read_to_string(l1.join("keep.txt")).unwrap(),
        "kept\n"
    );
    let m = std::fs::metadata(l1.join("keep.txt")).unwrap();
    assert_eq!(m.mode() & 0o777, 0o644);

    // v1 and every cache record gone: v2's base stays, as v2 needs it.
    k.run(&["rmi", "v1", "v3"]).ok();
    k.run(&["builder", "prune", "-a", "-f"]).ok();
    k.run(&["system", "prune", "-f"]).ok();
    assert!(l1.join("keep.txt").is_file(), "the base was collected");
    let r = k.run(&["run", "--rm", "v2", "cat", "/ctx/keep.txt", "/ctx/edit.txt"]);
    assert_eq!(r.ok().stdout, "kept\ntwo\n");
    let check = k.run(&["system", "check"]).ok();
    assert!(!check.stdout.contains("delta"), "{}", check.stdout);
    // Without v2 the base goes too.
    k.run(&["rmi", "v2"]).ok();
    k.run(&["system", "prune", "-f"]).ok();
    assert!(!l1.exists() && !l2.exists());
}

/// An edited context's COPY layer, written with the bytes of unchanged
/// files taken from the step's previous layer, is byte for byte the layer
/// a fresh store writes from the files: edits of the same and of another
/// size, a file added and one removed, large files and symlinks among
/// enough small ones for the previous layer to be read.
#[test]
fn an_edited_copy_layer_is_the_one_a_fresh_build_writes() {
    let k = with_base();
    let ctx = k.dir.path().join("bigctx");
    for d in 0..3 {
        for f in 0..80 {
            write(
                &ctx.join(format!("d{d}/f{f:02}.txt")),
                &format!("file {d}/{f}\n"),
            );
        }
    }
    write(&ctx.join("d1/big.bin"), &"b".repeat(40_000));
    std::os::unix::fs::symlink("f00.txt", ctx.join("d2/link")).unwrap();
    let df = k.dir.path().join("Dockerfile.big");
    write(
        &df,
        "FROM busybox\nCOPY . /ctx\nRUN ls /ctx/d1 >/dev/null\n",
    );
    let (c, f) = (ctx.to_str().unwrap(), df.to_str().unwrap());
    let epoch = "SOURCE_DATE_EPOCH=1700000000";
    build(&k, &["-q", "--build-arg", epoch, "-t", "v1", "-f", f, c]).ok();
    write(&ctx.join("d0/f10.txt"), "FILE 0/10\n");
    write(&ctx.join("d1/f20.txt"), "another size\n");
    write(&ctx.join("d1/f20b.txt"), "new\n");
    std::fs::remove_file(ctx.join("d2/f30.txt")).unwrap();
    build(&k, &["-q", "--build-arg", epoch, "-t", "v2", "-f", f, c]).ok();
    let fresh = with_base();
    build(
        &fresh,
        &[
            "-q",
            "--no-cache",
            "--build-arg",
            epoch,
            "-t",
            "v2",
            "-f",
            f,
            c,
        ],
    )
    .ok();
    let copy_layer = |k: &Kiln| inspect(k, "v2")["RootFS"]["Layers"][1].clone();
    assert_ne!(copy_layer(&k), inspect(&k, "v1")["RootFS"]["Layers"][1]);
    assert_eq!(copy_layer(&k), copy_layer(&fresh));
}

/// The lines of a `--progress rawjson` stderr, each a SolveStatus object
/// (up to the error a failed build prints after them).
fn solve_statuses(stderr: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for line in stderr.lines() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => break,
        };
        let obj = v
            .as_object()
            .unwrap_or_else(|| panic!("not an object: {line}"));
        assert!(!obj.is_empty(), "empty status: {line}");
        for k in obj.keys() {
            assert!(
                ["vertexes", "statuses", "logs", "warnings"].contains(&k.as_str()),
                "unknown SolveStatus field {k}: {line}"
            );
        }
        out.push(v);
    }
    out
}

/// Every vertex update (name, digest, started, completed, cached, error).
fn vertex_updates(statuses: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    statuses
        .iter()
        .filter_map(|s| s["vertexes"].as_array())
        .flatten()
        .collect()
}

/// The log lines of the vertex called `name`: (stream, text).
fn vertex_logs(statuses: &[serde_json::Value], name: &str) -> Vec<(u64, String)> {
    use base64::Engine as _;
    let digest = vertex_updates(statuses)
        .into_iter()
        .find(|v| v["name"] == name)
        .unwrap_or_else(|| panic!("no vertex {name}"))["digest"]
        .clone();
    statuses
        .iter()
        .filter_map(|s| s["logs"].as_array())
        .flatten()
        .filter(|l| l["vertex"] == digest)
        .map(|l| {
            assert!(l["timestamp"].is_string(), "{l}");
            let data = base64::engine::general_purpose::STANDARD
                .decode(l["data"].as_str().unwrap())
                .unwrap();
            (
                l["stream"].as_u64().unwrap(),
                String::from_utf8(data).unwrap(),
            )
        })
        .collect()
}

#[test]
fn rawjson_progress_is_buildkits_solve_status_stream() {
    let k = with_base();
    let dir = k.dir.path().join("rawjson");
    write(
        &dir.join("Dockerfile"),
        "FROM busybox AS base\nRUN echo to-out && echo to-err >&2\nCOPY a.txt /a.txt\n\
         FROM busybox\nENV X=1\nCOPY --from=base /a.txt /b.txt\nRUN cat /b.txt\n",
    );
    write(&dir.join("a.txt"), "content of a\n");
    let args = ["--progress", "rawjson", "-t", "rj", dir.to_str().unwrap()];
    let first = build(&k, &args).ok();
    let statuses = solve_statuses(&first.stderr);
    assert_eq!(
        statuses.len(),
        first.stderr.lines().count(),
        "every line is a SolveStatus: {}",
        first.stderr
    );
    let steps = [
        "[base 2/3] RUN echo to-out && echo to-err >&2",
        "[base 3/3] COPY a.txt /a.txt",
        "[stage-1 2/3] COPY --from=base /a.txt /b.txt",
        "[stage-1 3/3] RUN cat /b.txt",
    ];
    let updates = vertex_updates(&statuses);
    assert!(
        updates[0]["name"] == "[internal] load build definition from Dockerfile",
        "{}",
        first.stderr
    );
    for prefix in ["[base 1/3] FROM ", "[stage-1 1/3] FROM "] {
        assert!(
            updates
                .iter()
                .any(|v| v["name"].as_str().unwrap().starts_with(prefix)),
            "no {prefix}…: {}",
            first.stderr
        );
    }
    // ENV only changes the config: BuildKit makes no vertex of it.
    assert!(!first.stderr.contains("ENV X=1"), "{}", first.stderr);
    let mut digests = Vec::new();
    for name in steps {
        let of: Vec<_> = updates.iter().filter(|v| v["name"] == name).collect();
        assert_eq!(
            of.len(),
            2,
            "{name}: started, then completed: {}",
            first.stderr
        );
        assert!(of[0]["started"].is_string() && of[0].get("completed").is_none());
        assert!(of[1]["completed"].is_string() && of[1]["started"] == of[0]["started"]);
        assert_eq!(of[0]["digest"], of[1]["digest"]);
        assert!(of[1].get("cached").is_none() && of[1].get("error").is_none());
        let digest = of[0]["digest"].as_str().unwrap().to_string();
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{digest}"
        );
        digests.push(digest);
    }
    // A step's input is the stage's step before it.
    let copy = updates.iter().find(|v| v["name"] == steps[1]).unwrap();
    assert_eq!(copy["inputs"][0].as_str().unwrap(), digests[0]);
    // RUN output, decoded, on its stream.
    let logs = vertex_logs(&statuses, steps[0]);
    assert!(logs.contains(&(1, "to-out\n".into())), "{logs:?}");
    assert!(logs.contains(&(2, "to-err\n".into())), "{logs:?}");
    assert_eq!(
        vertex_logs(&statuses, steps[3]),
        vec![(1, "content of a\n".to_string())]
    );

    // Again: the same vertices (same digests), now cached.
    let again = build(&k, &args).ok();
    let statuses = solve_statuses(&again.stderr);
    assert_eq!(
        statuses.len(),
        again.stderr.lines().count(),
        "{}",
        again.stderr
    );
    let updates = vertex_updates(&statuses);
    for (name, digest) in steps.iter().zip(&digests) {
        let done = updates
            .iter()
            .find(|v| v["name"] == *name && v.get("completed").is_some())
            .unwrap_or_else(|| panic!("{name} not completed: {}", again.stderr));
        assert_eq!(done["cached"], true, "{name}: {}", again.stderr);
        assert_eq!(done["digest"].as_str().unwrap(), digest);
    }
    assert!(vertex_logs(&statuses, steps[0]).is_empty());

    // A failing RUN: its vertex completes with BuildKit's error, after
    // the output it printed.
    write(
        &dir.join("Dockerfile"),
        "FROM busybox\nRUN echo before-the-end && exit 3\n",
    );
    let failed = build(&k, &args).code(1);
    let statuses = solve_statuses(&failed.stderr);
    let run = "[2/2] RUN echo before-the-end && exit 3";
    let err = vertex_updates(&statuses)
        .into_iter()
        .find(|v| v["name"] == run && v.get("error").is_some())
        .unwrap_or_else(|| panic!("no failed vertex: {}", failed.stderr))
        .clone();
    assert!(err["completed"].is_string(), "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .ends_with("did not complete successfully: exit code: 3"),
        "{err}"
    );
    assert_eq!(
        vertex_logs(&statuses, run),
        vec![(1, "before-the-end\n".to_string())]
    );
}

#[test]
fn a_bad_progress_value_is_one_line_and_125() {
    let k = with_base();
    let dir = k.dir.path().join("badprogress");
    write(&dir.join("Dockerfile"), "FROM busybox\n");
    let r = build(&k, &["--progress", "fancy", dir.to_str().unwrap()]).code(125);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("\"fancy\""), "{}", r.stderr);
    assert!(r.stderr.contains("rawjson"), "{}", r.stderr);
}

/// A cached `COPY --from` over the same source layers is found by those
/// layers' digests: nothing of the source stage is unpacked or read (its
/// unpacked layers can be gone). When the source changes, the step runs
/// again and copies the new content.
#[test]
fn copy_from_a_stage_hits_by_its_layers_without_reading_them() {
    let k = with_base();
    let ctx = k.dir.path().join("fromctx");
    write(
        &ctx.join("Dockerfile"),
        "FROM busybox AS gen\nCOPY src /src\nRUN cat /src/a > /made\n\
         FROM busybox\nCOPY --from=gen /made /made\nCOPY --from=gen /src /copied\n",
    );
    write(&ctx.join("src/a"), "first\n");
    let c = ctx.to_str().unwrap();
    let first = build(&k, &["-t", "fromimg", c]).ok();
    assert_eq!(hits(&first), 0);
    let id = inspect(&k, "fromimg")["Id"].clone();
    let layers = k.root().join("kiln/layers");
    std::fs::remove_dir_all(&layers).unwrap();
    let second = build(&k, &["-t", "fromimg", c]).ok();
    assert_eq!(hits(&second), 4, "{}", second.stderr);
    assert_eq!(inspect(&k, "fromimg")["Id"], id);
    let unpacked: Vec<_> = std::fs::read_dir(&layers)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    // Only the base, which the context COPY resolves its destination in.
    let base = inspect(&k, "busybox")["RootFS"]["Layers"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let unpacked: Vec<_> = unpacked
        .iter()
        .filter_map(|n| n.to_str())
        .filter(|n| n.len() == 64 && *n != base)
        .collect();
    assert!(unpacked.is_empty(), "unpacked on a hit: {unpacked:?}");

    write(&ctx.join("src/a"), "second\n");
    build(&k, &["-t", "fromimg", c]).ok();
    let r = k
        .run(&[
            "run",
            "--rm",
            "--network",
            "none",
            "fromimg",
            "cat",
            "/made",
            "/copied/a",
        ])
        .ok();
    assert_eq!(r.stdout, "second\nsecond\n");
}

/// `COPY --from` and a RUN's bind mount from a stage are keyed by the
/// content they read, as BuildKit's content checksums key them: a source
/// stage that runs again and makes the same files leaves the step, and the
/// steps after it, cached (the image is the same). Different content
/// misses and is read.
#[test]
fn a_stage_that_ran_again_with_the_same_output_leaves_its_readers_cached() {
    let copy =
        "FROM busybox AS src\nCOPY data.txt /in/\nRUN mkdir /d && wc -l < /in/data.txt > /d/out\n\
                FROM busybox\nCOPY --from=src /d /d\nRUN cat /d/out > /seen\n";
    let bind = "FROM busybox AS src\nCOPY data.txt /in/\nRUN mkdir /d && wc -c < /in/data.txt > /d/out\n\
                FROM busybox\nRUN --mount=type=bind,from=src,source=/d,target=/m cp /m/out /seen\nRUN cat /seen\n";
    for (name, df, seen) in [("copyfrom", copy, "2"), ("bindfrom", bind, "6")] {
        // A store each: the two share their first stage.
        let k = with_base();
        rebuilt_stage_with_the_same_output(&k, name, df);
        let r = k
            .run(&["run", "--rm", "--network", "none", name, "cat", "/seen"])
            .ok();
        assert_eq!(r.stdout.trim(), seen, "{name}");
    }
}

/// Builds `df` as `name`: its stage `src` reads `data.txt`, whose edit from
/// "v1" to "v2" leaves what `src` gives the last stage (a count in `/d/out`)
/// the same. That rebuild runs `src` again and hits the last stage's two
/// steps, making the same image; "v2\nv3\n" changes the count and misses.
fn rebuilt_stage_with_the_same_output(k: &Kiln, name: &str, df: &str) {
    let ctx = k.dir.path().join(name);
    write(&ctx.join("Dockerfile"), df);
    write(&ctx.join("data.txt"), "v1\n");
    let c = ctx.to_str().unwrap();
    build(k, &["-t", name, c]).ok();
    let id = inspect(k, name)["Id"].clone();
    write(&ctx.join("data.txt"), "v2\n");
    let again = build(k, &["-t", name, c]).ok();
    assert!(
        again
            .stderr
            .contains("Cache miss at line 2: COPY data.txt /in/ (what it copies changed)"),
        "{}",
        again.stderr
    );
    assert_eq!(hits(&again), 2, "{}", again.stderr);
    assert_eq!(inspect(k, name)["Id"], id, "{}", again.stderr);
    write(&ctx.join("data.txt"), "v2\nv3\n");
    let changed = build(k, &["-t", name, c]).ok();
    assert_eq!(hits(&changed), 0, "{}", changed.stderr);
}
