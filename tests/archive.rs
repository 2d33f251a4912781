//! save and load, against podman and skopeo.

mod common;

use std::path::Path;
use std::process::Command;

use common::{require_tool, Kiln};

fn podman(dir: &Path) -> Command {
    require_tool("podman");
    let mut c = Command::new("podman");
    c.arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("runroot"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ])
        .arg("--tmpdir")
        .arg(dir.join("tmp"));
    c
}

#[track_caller]
fn ok(c: &mut Command) -> String {
    let out = c.output().expect("spawn");
    assert!(
        out.status.success(),
        "{:?}: {}",
        c,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The columns of `images` that do not age (CREATED reads "Less than a
/// second ago", then "2 seconds ago"), for before/after comparisons.
const STABLE: &str = "{{.ID}} {{.Repository}}:{{.Tag}} {{.Digest}} {{.Size}}";

#[test]
fn kiln_save_podman_load_and_run() {
    let k = Kiln::new();
    k.import_busybox("busybox");
    let tar = k.dir.path().join("busybox.tar");
    k.run(&["save", "-o", tar.to_str().unwrap(), "busybox"])
        .ok();
    let pd = k.dir.path().join("podman");
    ok(podman(&pd).args(["load", "-i"]).arg(&tar));
    let out = ok(podman(&pd).args([
        "run",
        "--rm",
        "--network",
        "none",
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=1024:1024",
        "--ulimit",
        "nproc=1024:1024",
        "localhost/busybox:latest",
        "/bin/echo",
        "hello from kiln",
    ]));
    assert_eq!(out.trim(), "hello from kiln");
}

#[test]
fn podman_save_both_formats_kiln_load() {
    let k = Kiln::new();
    k.import_busybox("busybox");
    let src = k.dir.path().join("src.tar");
    k.run(&["save", "-o", src.to_str().unwrap(), "busybox"])
        .ok();
    let pd = k.dir.path().join("podman");
    ok(podman(&pd).args(["load", "-i"]).arg(&src));
    for fmt in ["docker-archive", "oci-archive"] {
        let out = k.dir.path().join(format!("{fmt}.tar"));
        ok(podman(&pd)
            .args(["save", "--format", fmt, "-o"])
            .arg(&out)
            .arg("localhost/busybox:latest"));
        let k2 = Kiln::new();
        let r = k2.run(&["load", "-i", out.to_str().unwrap()]).ok();
        assert_eq!(
            r.stdout.trim(),
            "Loaded image: localhost/busybox:latest",
            "{fmt}"
        );
        // The loaded image is whole: umoci unpacks it from kiln's store.
        require_tool("umoci");
        let bundle = k2.dir.path().join("bundle");
        ok(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:localhost/busybox:latest", k2.root().display()))
            .arg(&bundle));
        assert!(bundle.join("rootfs/bin/busybox").exists(), "{fmt}");
    }
}

#[test]
fn skopeo_copies_both_ways() {
    require_tool("skopeo");
    let k = Kiln::new();
    let id = k.import_busybox("busybox");
    for (fmt, transport) in [
        ("docker-archive", "docker-archive"),
        ("oci-archive", "oci-archive"),
    ] {
        let saved = k.dir.path().join(format!("kiln-{fmt}.tar"));
        k.run(&[
            "save",
            "--format",
            fmt,
            "-o",
            saved.to_str().unwrap(),
            "busybox",
        ])
        .ok();
        // kiln → skopeo: skopeo reads kiln's archive and writes its own.
        let copied = k.dir.path().join(format!("skopeo-{fmt}.tar"));
        let dest_ref = format!("{transport}:{}:localhost/copied:1", copied.display());
        ok(Command::new("skopeo")
            .arg("copy")
            .arg(format!("{transport}:{}", saved.display()))
            .arg(&dest_ref));
        // skopeo → kiln.
        let k2 = Kiln::new();
        let r = k2.run(&["load", "-i", copied.to_str().unwrap()]).ok();
        assert!(
            r.stdout.contains("localhost/copied:1"),
            "{fmt}: {}",
            r.stdout
        );
        let r = k2.run(&["inspect", "localhost/copied:1"]).ok();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        if fmt == "docker-archive" {
            assert_eq!(v[0]["Id"], id.as_str(), "config kept byte for byte");
        }
    }
}

#[test]
fn several_images_and_tags_round_trip() {
    let k = Kiln::new();
    let a = k.import_busybox("one:a");
    k.run(&["tag", "one:a", "one:b"]).ok();
    let b = k
        .run_stdin(
            &["import", "-m", "other", "-", "two"],
            &std::fs::read(common::busybox_tar()).unwrap(),
        )
        .ok()
        .stdout
        .trim()
        .to_string();
    for fmt in ["docker-archive", "oci-archive"] {
        let tar = k.dir.path().join(format!("{fmt}.tar"));
        k.run(&[
            "save",
            "--format",
            fmt,
            "-o",
            tar.to_str().unwrap(),
            "one:a",
            "one:b",
            "two",
        ])
        .ok();
        let k2 = Kiln::new();
        let r = k2.run(&["load", "-i", tar.to_str().unwrap()]).ok();
        for n in ["localhost/one:a", "localhost/one:b", "localhost/two:latest"] {
            assert!(
                r.stdout.contains(&format!("Loaded image: {n}")),
                "{fmt}: {}",
                r.stdout
            );
        }
        let ids = k2.run(&["images", "-q", "--no-trunc"]).ok().stdout;
        assert!(ids.contains(&a) && ids.contains(&b), "{fmt}: {ids}");
        assert_eq!(
            k2.blob_count(),
            5,
            "{fmt}: shared layer stored once, no stray blobs"
        );
    }
}

#[test]
fn compressed_archives_load() {
    let k = Kiln::new();
    k.import_busybox("busybox");
    let tar = k.dir.path().join("gz.tar.gz");
    k.run(&["save", "--compress", "-o", tar.to_str().unwrap(), "busybox"])
        .ok();
    let k2 = Kiln::new();
    k2.run(&["load", "-i", tar.to_str().unwrap()]).ok();
    let zst = k.dir.path().join("a.tar.zst");
    let plain = k.dir.path().join("plain.tar");
    k.run(&["save", "-o", plain.to_str().unwrap(), "busybox"])
        .ok();
    ok(Command::new("zstd")
        .arg("-q")
        .arg(&plain)
        .arg("-o")
        .arg(&zst));
    let k3 = Kiln::new();
    let r = k3.run_stdin(&["load"], &std::fs::read(&zst).unwrap()).ok();
    assert!(r.stdout.contains("localhost/busybox:latest"));
}

#[test]
fn tampered_and_truncated_archives_fail_and_change_nothing() {
    let k = Kiln::new();
    let id = k.import_busybox("busybox");
    let tar = k.dir.path().join("good.tar");
    k.run(&["save", "-o", tar.to_str().unwrap(), "busybox"])
        .ok();
    let data = std::fs::read(&tar).unwrap();

    let target = Kiln::new();
    target.import_busybox("keep");
    let before = target
        .run(&["images", "--no-trunc", "--format", STABLE])
        .ok()
        .stdout;
    let blobs = target.blob_count();

    // Flip a byte inside busybox's data (well past the first headers).
    let mut tampered = data.clone();
    let pos = data.len() / 2;
    tampered[pos] ^= 0x55;
    let bad = k.dir.path().join("tampered.tar");
    std::fs::write(&bad, &tampered).unwrap();
    let r = target.run(&["load", "-i", bad.to_str().unwrap()]).code(125);
    assert!(r.stderr.contains("tampered.tar"), "{}", r.stderr);
    assert!(r.stderr.contains("hashes to"), "{}", r.stderr);

    let cut = k.dir.path().join("cut.tar");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let r = target.run(&["load", "-i", cut.to_str().unwrap()]).code(125);
    assert!(r.stderr.contains("cut.tar"), "{}", r.stderr);

    assert_eq!(
        target
            .run(&["images", "--no-trunc", "--format", STABLE])
            .ok()
            .stdout,
        before
    );
    assert_eq!(target.blob_count(), blobs);
    assert!(!before.contains(&id));
}

#[test]
fn save_refuses_a_terminal_and_unknown_formats() {
    let k = Kiln::new();
    k.import_busybox("busybox");
    let r = k
        .run(&["save", "--format", "zip", "-o", "/tmp/x", "busybox"])
        .code(125);
    assert!(r.stderr.contains("zip"));
    let r = k.run(&["save", "-o", "/tmp/never", "nosuch"]).code(125);
    assert!(r.stderr.contains("nosuch"));
    assert!(!Path::new("/tmp/never").exists());
}

#[test]
fn onbuild_and_healthcheck_survive_save_and_load() {
    let k = Kiln::new();
    let tar = common::busybox_tar().to_str().unwrap().to_string();
    k.run(&[
        "import",
        "-c",
        "ONBUILD RUN echo hi",
        "-c",
        "HEALTHCHECK --interval=5s --retries=2 CMD true",
        "-c",
        "SHELL [\"/bin/ash\", \"-c\"]",
        &tar,
        "hc",
    ])
    .ok();
    for fmt in ["docker-archive", "oci-archive"] {
        let out = k.dir.path().join(format!("{fmt}.tar"));
        k.run(&["save", "--format", fmt, "-o", out.to_str().unwrap(), "hc"])
            .ok();
        let k2 = Kiln::new();
        k2.run(&["load", "-i", out.to_str().unwrap()]).ok();
        let r = k2.run(&["inspect", "hc"]).ok();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let c = &v[0]["Config"];
        assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo hi"]), "{fmt}");
        assert_eq!(
            c["Healthcheck"]["Test"],
            serde_json::json!(["CMD-SHELL", "true"]),
            "{fmt}"
        );
        assert_eq!(c["Healthcheck"]["Interval"], 5_000_000_000i64, "{fmt}");
        assert_eq!(c["Shell"], serde_json::json!(["/bin/ash", "-c"]), "{fmt}");
    }
}

#[test]
fn loading_a_1gb_archive_keeps_memory_bounded() {
    require_tool("/usr/bin/time");
    let k = Kiln::new();
    // A rootfs with one 1 GiB file; tar reads every byte of it.
    let rootfs = k.dir.path().join("big-rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let f = std::fs::File::create(rootfs.join("big.bin")).unwrap();
    f.set_len(1 << 30).unwrap();
    let tar = k.dir.path().join("big-rootfs.tar");
    ok(Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    std::fs::remove_dir_all(&rootfs).unwrap();
    k.run(&["import", tar.to_str().unwrap(), "big"]).ok();
    std::fs::remove_file(&tar).unwrap();
    let archive = k.dir.path().join("big.tar");
    k.run(&["save", "-o", archive.to_str().unwrap(), "big"])
        .ok();
    assert!(std::fs::metadata(&archive).unwrap().len() > 1 << 30);

    let target = Kiln::new();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(common::kiln_bin())
        .arg("--root")
        .arg(target.root())
        .args(["load", "-i"])
        .arg(&archive)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let kb: u64 = stderr
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .expect("time -v reports the peak RSS")
        .parse()
        .unwrap();
    assert!(kb < 100 * 1024, "peak RSS {kb} kB loading a 1 GiB archive");
}

/// A docker-archive of `n` one-file layers, written with the tar crate.
fn many_layer_archive(path: &Path, n: usize) {
    use sha2::Digest as _;
    fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }
    let mut members: Vec<(String, Vec<u8>)> = Vec::new();
    let mut diff_ids = Vec::new();
    for i in 0..n {
        let layer = tar_of(&[(&format!("f{i}"), format!("{i}\n").as_bytes())]);
        diff_ids.push(format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(&layer))
        ));
        members.push((format!("l{i}/layer.tar"), layer));
    }
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", hex::encode(sha2::Sha256::digest(&config)));
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": ["localhost/tall:1"],
        "Layers": (0..n).map(|i| format!("l{i}/layer.tar")).collect::<Vec<_>>(),
    }]);
    members.push((config_name, config));
    members.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    let refs: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    std::fs::write(path, tar_of(&refs)).unwrap();
}

#[test]
fn loading_an_image_over_127_layers_warns_and_keeps_it() {
    let k = Kiln::new();
    let archive = k.dir.path().join("tall.tar");
    many_layer_archive(&archive, 128);
    let r = k.run(&["load", "-i", archive.to_str().unwrap()]).ok();
    assert!(
        r.stderr
            .contains("localhost/tall:1 has 128 layers; a union filesystem stacks at most 127"),
        "{}",
        r.stderr
    );
    assert!(
        r.stdout.contains("Loaded image: localhost/tall:1"),
        "{}",
        r.stdout
    );
    // 127 layers load without a word.
    let ok = k.dir.path().join("ok.tar");
    many_layer_archive(&ok, 127);
    let r = k.run(&["load", "-i", ok.to_str().unwrap()]).ok();
    assert!(!r.stderr.contains("WARNING"), "{}", r.stderr);
}
