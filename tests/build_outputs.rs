//! `kiln build --output …`, `--push`, `--metadata-file`, `--iidfile`.

mod common;

use std::path::Path;

use common::{root_store, Kiln};
use test_support::registry::Registry;

const DOCKERFILE: &str = "FROM busybox AS build
COPY app.txt gone.txt /app/
RUN echo ran > /app/ran && rm /app/gone.txt

FROM build
ENV MODE=final
";

fn context(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(dir.join("app.txt"), "app\n").unwrap();
    std::fs::write(dir.join("gone.txt"), "gone\n").unwrap();
}

/// The image ID of `name` in `k`'s store.
fn image_id(k: &Kiln, name: &str) -> String {
    let out = k.run(&["inspect", name]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["Id"].as_str().unwrap().to_string()
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn tar_names(p: &Path) -> Vec<String> {
    let mut a = tar::Archive::new(std::fs::File::open(p).unwrap());
    a.entries()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_end_matches('/')
                .to_string()
        })
        .collect()
}

/// Each local output type, the metadata file and the iidfile, from one
/// build.
#[test]
fn outputs_write_files_archives_and_metadata() {
    let Some(k) = root_store() else { return };
    let d = k.dir.path();
    let ctx = d.join("ctx");
    context(&ctx);
    let (local, fs_tar, oci, docker, meta, iid) = (
        d.join("local"),
        d.join("fs.tar"),
        d.join("oci.tar"),
        d.join("docker.tar"),
        d.join("meta.json"),
        d.join("iid"),
    );
    let arg = |kind: &str, p: &Path| format!("type={kind},dest={}", p.display());
    let r = k
        .run(&[
            "build",
            "-q",
            "-t",
            "outs:1",
            "-o",
            &arg("local", &local),
            "--output",
            &arg("tar", &fs_tar),
            "--output",
            &format!("{},name=outs:oci", arg("oci", &oci)),
            "--output",
            &arg("docker", &docker),
            "--metadata-file",
            meta.to_str().unwrap(),
            "--iidfile",
            iid.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ])
        .ok();
    let id = r.stdout.trim().to_string();
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);

    // The final stage's files, the deleted one absent.
    assert_eq!(
        std::fs::read_to_string(local.join("app/app.txt")).unwrap(),
        "app\n"
    );
    assert_eq!(
        std::fs::read_to_string(local.join("app/ran")).unwrap(),
        "ran\n"
    );
    assert!(!local.join("app/gone.txt").exists());
    assert!(local.join("bin/busybox").is_file());
    let names = tar_names(&fs_tar);
    assert!(names.iter().any(|n| n == "app/ran"), "{names:?}");
    assert!(names.iter().any(|n| n == "bin/busybox"), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("gone")), "{names:?}");

    // Both archives load elsewhere as the same image.
    for (archive, name) in [(&oci, "outs:oci"), (&docker, "outs:1")] {
        let other = Kiln::new();
        other.run(&["load", "-i", archive.to_str().unwrap()]).ok();
        assert_eq!(image_id(&other, name), id, "{}", archive.display());
    }

    let m = json(&meta);
    assert_eq!(m["containerimage.config.digest"], id.as_str());
    let digest = m["containerimage.digest"].as_str().unwrap();
    assert_eq!(m["containerimage.descriptor"]["digest"], digest);
    assert!(digest.starts_with("sha256:") && digest != id, "{m}");
    let names = m["image.name"].as_str().unwrap();
    assert!(
        names.contains("outs:1") && names.contains("outs:oci"),
        "{m}"
    );

    // A bad --output is refused before anything is built.
    let r = k
        .run(&["build", "-o", "type=local", ctx.to_str().unwrap()])
        .code(125);
    assert!(
        r.stderr.contains("type=local needs dest=PATH"),
        "{}",
        r.stderr
    );
}

/// `--push` sends every `-t` name (the image's step layers uploaded while
/// the build runs); the metadata file has the digest the registry serves.
#[test]
fn push_sends_every_tag_and_metadata_has_the_pushed_digest() {
    let Some(k) = root_store() else { return };
    let reg = Registry::plain();
    let ctx = k.dir.path().join("ctx");
    context(&ctx);
    let meta = k.dir.path().join("meta.json");
    let (a, b) = (
        format!("{}/team/a:1", reg.host()),
        format!("{}/team/b:2", reg.host()),
    );
    let r = k
        .run(&[
            "build",
            "--progress",
            "plain",
            "--tls-verify=false",
            "--push",
            "-t",
            &a,
            "-t",
            &b,
            "--metadata-file",
            meta.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ])
        .ok();
    let id = r.stdout.trim().to_string();
    // The two step layers went up while the build ran: the first push
    // finds them there.
    let first_push = r.stderr.split("Writing manifest").next().unwrap();
    assert_eq!(
        first_push.matches(": Layer already exists").count(),
        2,
        "{}",
        r.stderr
    );
    // A push speaks docker's push words (it said "Pull complete" and
    // "Already exists" for blobs it uploaded or found).
    assert!(
        !r.stderr.contains("Pull complete") && !r.stderr.contains(": Already exists"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains(": Pushed"), "the config: {}", r.stderr);
    assert!(r.stderr.contains(": Preparing"), "{}", r.stderr);
    let m = json(&meta);
    for name in [&a, &b] {
        let other = Kiln::new();
        other.run(&["pull", "-q", "--tls-verify=false", name]).ok();
        assert_eq!(image_id(&other, name), id);
        let repo = name.split_once('/').unwrap().1.split_once(':').unwrap();
        let resp = reqwest::blocking::Client::new()
            .head(format!(
                "http://{}/v2/{}/manifests/{}",
                reg.host(),
                repo.0,
                repo.1
            ))
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .unwrap();
        let served = resp.headers()["docker-content-digest"].to_str().unwrap();
        assert_eq!(m["containerimage.digest"], served, "{m}");
    }
    assert_eq!(m["containerimage.config.digest"], id.as_str());

    // --output type=registry,name=N: stored and pushed under that name.
    let c = format!("{}/team/c:3", reg.host());
    let r = k
        .run(&[
            "build",
            "-q",
            "--tls-verify=false",
            "--output",
            &format!("type=registry,name={c}"),
            ctx.to_str().unwrap(),
        ])
        .ok();
    assert_eq!(r.stdout.trim(), id);
    let other = Kiln::new();
    other.run(&["pull", "-q", "--tls-verify=false", &c]).ok();
    assert_eq!(image_id(&other, &c), id);
    assert_eq!(image_id(&k, &c), id);

    // --push without a name says so.
    let r = k
        .run(&["build", "-q", "--push", ctx.to_str().unwrap()])
        .code(125);
    assert!(r.stderr.contains("pushing needs a name"), "{}", r.stderr);
}
