//! kiln pull / push / login / logout against a real `docker-registry`,
//! cross-checked with skopeo and umoci.

mod common;

use std::process::Command;

use common::{require_tool, Kiln};
use test_support::registry::Registry;

fn skopeo(args: &[&str]) -> String {
    require_tool("skopeo");
    let out = Command::new("skopeo").args(args).output().expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap()
}

/// Blob uploads started in the registry's access log.
fn uploads(reg: &Registry) -> usize {
    reg.count(&["\"POST /v2/", "/blobs/uploads/"])
}

#[test]
fn push_is_read_by_skopeo_and_second_push_uploads_nothing() {
    let reg = Registry::plain();
    let k = Kiln::new();
    k.import_busybox("bb");
    let dest = format!("{}/kiln/bb:1", reg.host());
    let digestfile = k.dir.path().join("digest");
    k.run(&[
        "push",
        "--tls-verify=false",
        "--digestfile",
        digestfile.to_str().unwrap(),
        "bb",
        &dest,
    ])
    .ok();
    let digest = std::fs::read_to_string(&digestfile).unwrap();
    assert!(digest.starts_with("sha256:"), "{digest}");
    let first = uploads(&reg);
    assert_eq!(first, 2, "layer + config: {}", reg.log());

    let info = json(&skopeo(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{dest}"),
    ]));
    assert_eq!(info["Digest"], digest.as_str());
    // skopeo copies it out with the same digests.
    let out = k.dir.path().join("copy");
    skopeo(&[
        "copy",
        "-q",
        "--src-tls-verify=false",
        &format!("docker://{dest}"),
        &format!("oci:{}:x", out.display()),
    ]);
    let raw = json(&skopeo(&[
        "inspect",
        "--raw",
        &format!("oci:{}:x", out.display()),
    ]));
    let layer = raw["layers"][0]["digest"].as_str().unwrap().to_string();
    assert_eq!(info["Layers"][0], layer.as_str());
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    // Again: nothing uploaded, same manifest, nothing recompressed.
    let blobs = k.blob_count();
    let r = k
        .run(&[
            "push",
            "--tls-verify=false",
            "--digestfile",
            digestfile.to_str().unwrap(),
            "bb",
            &dest,
        ])
        .ok();
    assert!(!r.stderr.contains("Compressing"), "{}", r.stderr);
    assert_eq!(uploads(&reg), first);
    assert_eq!(std::fs::read_to_string(&digestfile).unwrap(), digest);
    assert_eq!(k.blob_count(), blobs);

    // The remembered compressed blob survives GC while the image exists,
    // and goes with it.
    k.run(&["image", "prune"]).ok();
    let store_blob = k.root().join("blobs/sha256").join(&layer[7..]);
    assert!(store_blob.exists());
    k.run(&["rmi", "bb"]).ok();
    k.run(&["images"]).ok();
    k.run(&["pull", "--tls-verify=false", "-q", &dest]).ok();
    k.run(&["rmi", &dest]).ok();
    assert!(!store_blob.exists());
}

#[test]
fn zstd_and_v2s2_push() {
    let reg = Registry::plain();
    let k = Kiln::new();
    k.import_busybox("bb");
    let dest = format!("{}/kiln/z:1", reg.host());
    k.run(&[
        "push",
        "--tls-verify=false",
        "--compression-format",
        "zstd",
        "bb",
        &dest,
    ])
    .ok();
    let raw = json(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{dest}"),
    ]));
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let dest2 = format!("{}/kiln/d:1", reg.host());
    k.run(&[
        "push",
        "--tls-verify=false",
        "--format",
        "v2s2",
        "bb",
        &dest2,
    ])
    .ok();
    let raw = json(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{dest2}"),
    ]));
    assert_eq!(
        raw["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    // A Docker image pulled is pushed back byte-identical.
    let k2 = Kiln::new();
    k2.run(&["pull", "--tls-verify=false", &dest2]).ok();
    let dest3 = format!("{}/kiln/d:2", reg.host());
    k2.run(&["push", "--tls-verify=false", &dest2, &dest3]).ok();
    let a = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{dest2}"),
    ]);
    let b = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{dest3}"),
    ]);
    assert_eq!(a, b);
}

/// umoci unpacks `image` after kiln writes it to an OCI layout.
fn assert_unpacks(k: &Kiln, image: &str) {
    require_tool("umoci");
    let layout = k.dir.path().join("layout");
    let _ = std::fs::remove_dir_all(&layout);
    k.run(&["push", image, &format!("oci:{}:u", layout.display())])
        .ok();
    let bundle = k.dir.path().join("bundle");
    let _ = std::fs::remove_dir_all(&bundle);
    let out = Command::new("umoci")
        .args(["unpack", "--rootless", "--image"])
        .arg(format!("{}:u", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bundle.join("rootfs/bin/busybox").exists());
}

#[test]
fn skopeo_pushed_images_pull_rmi_pull() {
    let reg = Registry::plain();
    let k = Kiln::new();
    k.import_busybox("bb");
    // From an oci: layout kiln wrote.
    let layout = k.dir.path().join("oci");
    k.run(&["push", "bb", &format!("oci:{}:bb", layout.display())])
        .ok();
    let a = format!("{}/sk/a:1", reg.host());
    skopeo(&[
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &format!("oci:{}:bb", layout.display()),
        &format!("docker://{a}"),
    ]);
    // From a docker-archive made by kiln save.
    let tar = k.dir.path().join("bb.tar");
    k.run(&["save", "-o", tar.to_str().unwrap(), "bb"]).ok();
    let b = format!("{}/sk/b:1", reg.host());
    skopeo(&[
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", tar.display()),
        &format!("docker://{b}"),
    ]);

    let k2 = Kiln::new();
    for name in [&a, &b] {
        let id = k2
            .run(&["pull", "--tls-verify=false", "-q", name])
            .ok()
            .stdout;
        assert!(id.trim().starts_with("sha256:"), "{id}");
        assert_unpacks(&k2, name);
        k2.run(&["rmi", name]).ok();
        assert!(k2.run(&["inspect", name]).code == 125);
        let again = k2
            .run(&["pull", "--tls-verify=false", "-q", name])
            .ok()
            .stdout;
        assert_eq!(id, again);
    }
    // A failed pull leaves the store as it was.
    let blobs = k2.blob_count();
    k2.run(&[
        "pull",
        "--tls-verify=false",
        &format!("{}/sk/none:1", reg.host()),
    ])
    .code(125);
    assert_eq!(k2.blob_count(), blobs);
}

#[test]
fn cross_repository_mount() {
    let reg = Registry::plain();
    let k = Kiln::new();
    k.import_busybox("bb");
    let a = format!("{}/team/a:1", reg.host());
    let b = format!("{}/team/b:1", reg.host());
    k.run(&["tag", "bb", &a]).ok();
    k.run(&["push", "--tls-verify=false", &a]).ok();
    let before = uploads(&reg);
    let r = k.run(&["push", "--tls-verify=false", &a, &b]).ok();
    assert!(r.stderr.contains(": Mounted from team/a"), "{}", r.stderr);
    assert_eq!(reg.count(&["\"POST /v2/team/b/blobs/uploads/?mount="]), 2);
    assert_eq!(uploads(&reg), before + 2);
    assert_eq!(reg.count(&["\"PUT /v2/team/b/blobs/"]), 0);
    skopeo(&["inspect", "--tls-verify=false", &format!("docker://{b}")]);
}

#[test]
fn auth_login_logout() {
    let reg = Registry::tls_auth("alice", "s3cret-pw");
    let cert_dir = reg.tls.as_ref().unwrap().ca_dir.clone();
    let cert_dir = cert_dir.to_str().unwrap();
    let k = Kiln::new();
    k.import_busybox("bb");
    let dest = format!("{}/priv/bb:1", reg.host());
    let cfg_dir = k.dir.path().join("docker");
    let run = |args: &[&str]| {
        let o = k
            .cmd()
            .env("DOCKER_CONFIG", &cfg_dir)
            .env_remove("REGISTRY_AUTH_FILE")
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code().unwrap(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    // Wrong password: a clear error naming the registry, the secret never shown.
    let (code, _, err) = run(&[
        "push",
        "--cert-dir",
        cert_dir,
        "--creds",
        "alice:wrong-pw",
        "bb",
        &dest,
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains(&reg.host()) && err.contains("unauthorized"),
        "{err}"
    );
    assert!(!err.contains("wrong-pw"), "{err}");
    assert!(
        err.trim().lines().last().unwrap().contains("unauthorized"),
        "{err}"
    );
    // No credentials at all.
    let (code, _, err) = run(&["push", "--cert-dir", cert_dir, "bb", &dest]);
    assert_eq!(code, 125, "{err}");
    // Login with a wrong password stores nothing.
    let (code, _, err) = run(&[
        "login",
        "--cert-dir",
        cert_dir,
        "-u",
        "alice",
        "-p",
        "nope",
        &reg.host(),
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(!cfg_dir.join("config.json").exists());
    // Login, then push and pull with the stored credentials.
    let o = k
        .cmd()
        .env("DOCKER_CONFIG", &cfg_dir)
        .env_remove("REGISTRY_AUTH_FILE")
        .args([
            "login",
            "--cert-dir",
            cert_dir,
            "-u",
            "alice",
            "--password-stdin",
        ])
        .arg(reg.host())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut o = o;
        o.stdin.take().unwrap().write_all(b"s3cret-pw\n").unwrap();
        let out = o.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cfg = std::fs::read_to_string(cfg_dir.join("config.json")).unwrap();
    assert!(json(&cfg)["auths"][reg.host()]["auth"].is_string(), "{cfg}");
    let (code, _, err) = run(&["push", "--cert-dir", cert_dir, "bb", &dest]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["rmi", "bb"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["pull", "--cert-dir", cert_dir, &dest]);
    assert_eq!(code, 0, "{err}");
    // --creds works without the stored login too.
    let (code, _, err) = run(&["logout", &reg.host()]);
    assert_eq!(code, 0, "{err}");
    let cfg = std::fs::read_to_string(cfg_dir.join("config.json")).unwrap();
    assert!(!cfg.contains(&reg.host()), "{cfg}");
    let (code, _, _) = run(&["logout", &reg.host()]);
    assert_eq!(code, 125);
    let (code, _, err) = run(&[
        "push",
        "--cert-dir",
        cert_dir,
        "--creds",
        "alice:s3cret-pw",
        &dest,
        &format!("{}/priv/bb:2", reg.host()),
    ]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn oci_and_archive_transports() {
    let k = Kiln::new();
    let id = k.import_busybox("bb");
    let dir = k.dir.path().join("layout");
    k.run(&["push", "bb", &format!("oci:{}:tag", dir.display())])
        .ok();
    let info = json(&skopeo(&["inspect", &format!("oci:{}:tag", dir.display())]));
    assert_eq!(info["Layers"].as_array().unwrap().len(), 1);
    for (transport, file) in [("oci-archive", "a.tar"), ("docker-archive", "d.tar")] {
        let f = k.dir.path().join(file);
        let loc = format!("{transport}:{}:kiln/x:1", f.display());
        k.run(&["push", "bb", &loc]).ok();
        skopeo(&["inspect", &loc]);
        let k2 = Kiln::new();
        let got = k2.run(&["pull", "-q", &loc]).ok().stdout;
        assert_eq!(got.trim(), id);
    }
    let k3 = Kiln::new();
    let got = k3
        .run(&["pull", "-q", &format!("oci:{}:tag", dir.display())])
        .ok()
        .stdout;
    assert_eq!(got.trim(), id);
    k3.run(&["inspect", "localhost/layout:tag"]).ok();
    k3.run(&["pull", &format!("oci:{}:missing", dir.display())])
        .code(125);
}

#[test]
fn build_pulls_missing_bases_and_pull_always_refreshes_them() {
    let reg = Registry::plain();
    let k = Kiln::new();
    k.import_busybox("bb");
    let base = format!("{}/base/bb:1", reg.host());
    k.run(&["push", "--tls-verify=false", "bb", &base]).ok();

    let k2 = Kiln::new();
    let ctx = k2.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN (cat /marker 2>/dev/null || echo v1) > /seen\n"),
    )
    .unwrap();
    let ctx = ctx.to_str().unwrap();
    let seen = |image: &str| k2.run(&["run", "--rm", image, "cat", "/seen"]).ok().stdout;

    // --pull=never with the base absent: an error naming the FROM line.
    let r = k2
        .run(&["build", "--pull=never", "--tls-verify=false", ctx])
        .code(125);
    assert!(
        r.stderr.contains("Dockerfile:1") && r.stderr.contains(&base),
        "{}",
        r.stderr
    );
    // By default a missing base is pulled, as docker does.
    k2.run(&["build", "--tls-verify=false", "-t", "out1", ctx])
        .ok();
    assert_eq!(seen("out1"), "v1\n");

    // The registry's tag moves to a new image.
    let next = k.dir.path().join("next");
    std::fs::create_dir_all(&next).unwrap();
    std::fs::write(next.join("Dockerfile"), "FROM bb\nRUN echo v2 > /marker\n").unwrap();
    k.run(&["build", "-t", "bb2", next.to_str().unwrap()]).ok();
    k.run(&["push", "--tls-verify=false", "bb2", &base]).ok();

    // Present locally: used as it is, no pull.
    k2.run(&["build", "--tls-verify=false", "-t", "out2", ctx])
        .ok();
    assert_eq!(seen("out2"), "v1\n");
    // --pull fetches the registry's current image.
    let r = k2
        .run(&["build", "--pull", "--tls-verify=false", "-t", "out3", ctx])
        .ok();
    assert!(r.stderr.contains("Trying to pull"), "{}", r.stderr);
    assert_eq!(seen("out3"), "v2\n");
}

/// Without a terminal, pull and push print docker's lines, one per blob;
/// `-q` prints only the result.
#[test]
fn transfers_print_docker_lines_without_a_terminal() {
    let reg = Registry::plain();
    let k = Kiln::new();
    k.import_busybox("bb");
    let dest = format!("{}/kiln/lines:1", reg.host());
    let r = k.run(&["push", "--tls-verify=false", "bb", &dest]).ok();
    let pushed = r.stderr.lines().filter(|l| l.ends_with(": Pushed")).count();
    assert_eq!(pushed, 2, "the layer and the config:\n{}", r.stderr);
    // Each blob is announced first, as docker's push does.
    let preparing = r
        .stderr
        .lines()
        .filter(|l| l.ends_with(": Preparing"))
        .count();
    assert_eq!(preparing, 2, "{}", r.stderr);
    assert!(!r.stderr.contains("Pull complete"), "{}", r.stderr);
    let r = k.run(&["push", "--tls-verify=false", "bb", &dest]).ok();
    let exists = r
        .stderr
        .lines()
        .filter(|l| l.ends_with(": Layer already exists"))
        .count();
    assert_eq!(exists, 2, "{}", r.stderr);

    let k2 = Kiln::new();
    let r = k2.run(&["pull", "--tls-verify=false", &dest]).ok();
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.ends_with(": Pull complete"))
        .collect();
    assert_eq!(lines.len(), 2, "{}", r.stderr);
    // `<12 hex>: Pull complete`, as docker prints it.
    assert!(lines.iter().all(|l| l.find(':') == Some(12)), "{lines:?}");
    let other = format!("{}/kiln/lines:2", reg.host());
    k.run(&["push", "--tls-verify=false", "bb", &other]).ok();
    let r = k2.run(&["pull", "--tls-verify=false", &other]).ok();
    assert!(r.stderr.contains(": Already exists"), "{}", r.stderr);
    let r = k2.run(&["pull", "-q", "--tls-verify=false", &other]).ok();
    assert_eq!(r.stderr, "");
    assert!(r.stdout.trim().starts_with("sha256:"), "{}", r.stdout);
}
