//! Hostile input: the corpus of `fixtures/hostile/` through `kiln import`
//! and an unpack, images whose config claims another image's layer (an
//! `oci:` directory, an oci-archive, a real registry), bad layers through
//! `load` and `pull`, and the per-layer size limit.

#[path = "../fixtures/hostile/cases.rs"]
mod cases;
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Cursor;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use cases::{Outcome, RawTar};
use common::{require_tool, Kiln};
use image_store::unpack::{unpack, UnpackOptions, Whiteouts};
use test_support::registry::Registry;

/// Type, mode, size and mtime of everything under `dir`.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let md = fs::symlink_metadata(&d).unwrap();
        out.insert(d.clone(), (md.mode(), md.size(), md.mtime()));
        if md.is_dir() {
            for e in fs::read_dir(&d).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

#[track_caller]
fn assert_one_line_with(what: &str, msg: &str, want: &str) {
    let msg = msg.trim_end();
    assert!(msg.contains(want), "{what}: wanted {want:?} in {msg:?}");
    assert!(
        !msg.contains('\n') && !msg.contains('\u{1b}'),
        "{what}: not one clean line: {msg:?}"
    );
}

#[test]
fn every_hostile_case_through_import_and_unpack() {
    let top = tempfile::tempdir().unwrap();
    let host = top.path().join("host");
    fs::create_dir_all(host.join("sub")).unwrap();
    fs::write(host.join("file"), b"host").unwrap();
    let host_before = snapshot(&host);
    let k = Kiln::new();
    let readme = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hostile/README.md"),
    )
    .unwrap();
    for case in cases::cases(&host) {
        let name = case.name;
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} is not in fixtures/hostile/README.md"
        );
        let tar = top.path().join(format!("{name}.tar"));
        fs::write(&tar, &case.tar).unwrap();

        // 1. Ingest.
        let image = format!("hostile/{name}");
        let r = k.run(&["import", tar.to_str().unwrap(), &image]);
        match case.import {
            Outcome::Ok => assert_eq!(r.code, 0, "{name}: import: {}", r.stderr),
            Outcome::Rejected(want) => {
                assert_eq!(r.code, 125, "{name}: import was accepted");
                assert_one_line_with(name, &r.stderr, want);
            }
        }

        // 2. The raw tar unpacked as a layer, beside another layer that
        // must survive whatever this one says.
        let layers = top.path().join("unpack").join(name);
        let dest = layers.join("layer");
        let victim = layers.join("victim/file");
        fs::create_dir_all(&dest).unwrap();
        fs::create_dir_all(victim.parent().unwrap()).unwrap();
        fs::write(&victim, b"victim").unwrap();
        let opts = UnpackOptions {
            whiteouts: Whiteouts::Overlay,
            ..Default::default()
        };
        let res = unpack(Cursor::new(&case.tar), &dest, opts);
        match (case.unpack, &res) {
            (Outcome::Ok, Ok(_)) => {}
            (Outcome::Ok, Err(e)) => panic!("{name}: unpack: {e}"),
            (Outcome::Rejected(_), Ok(_)) => panic!("{name}: unpack was accepted"),
            (Outcome::Rejected(want), Err(e)) => assert_one_line_with(name, &e.to_string(), want),
        }
        assert_eq!(fs::read(&victim).unwrap(), b"victim", "{name}");
        assert!(dest.is_dir(), "{name}");
        assert_eq!(snapshot(&host), host_before, "{name} changed the host");

        // 3. What the store kept, unpacked as `run` would.
        if case.import == Outcome::Ok {
            let store = image_store::Store::open(k.root()).unwrap();
            let img = store.resolve(&image).unwrap();
            match (case.unpack, store.unpacked_layers(&img)) {
                (Outcome::Ok, Ok(dirs)) => {
                    check_case(name, &dest, &host);
                    check_case(name, &dirs[0], &host);
                }
                (Outcome::Ok, Err(e)) => panic!("{name}: unpacking the stored layer: {e}"),
                (Outcome::Rejected(_), Ok(_)) => panic!("{name}: the stored layer unpacked"),
                (Outcome::Rejected(want), Err(e)) => {
                    // Run-time unpack errors name the layer.
                    let msg = e.to_string();
                    assert_one_line_with(name, &msg, want);
                    assert_one_line_with(name, &msg, &img.manifest.layers[0].digest.to_string());
                }
            }
            assert_eq!(snapshot(&host), host_before, "{name} changed the host");
        }
    }
    assert_eq!(snapshot(&host), host_before);
    let r = k.run(&["images", "-q"]).ok();
    assert!(!r.stdout.is_empty());
}

/// What an accepted case must leave in its unpacked layer.
fn check_case(name: &str, dest: &Path, host: &Path) {
    let p = |n: &[u8]| dest.join(std::ffi::OsStr::from_bytes(n));
    let md = |n: &[u8]| fs::symlink_metadata(p(n)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    match name {
        "whiteout-absolute" => {
            assert!(md(b"etc/passwd").file_type().is_char_device(), "{name}");
            assert_eq!(md(b"etc/passwd").rdev(), 0);
        }
        "opaque-in-directory" => assert!(md(b"d").is_dir()),
        "aufs-metadata-skipped" => assert_eq!(fs::read_dir(dest).unwrap().count(), 0),
        "pax-global-header-ignored" => assert_eq!(fs::read(p(b"kept")).unwrap(), b"x"),
        "gnu-long-name" => assert_eq!(fs::read(p(&[b'n'; 200])).unwrap(), b"long"),
        "non-utf8-names" => {
            assert_eq!(fs::read(p(b"n\xff")).unwrap(), b"ff", "{name}");
            assert_eq!(fs::read(p(b"n\xfe")).unwrap(), b"fe", "{name}");
            assert_eq!(fs::read_dir(dest).unwrap().count(), 2, "{name}");
        }
        "device-nodes" if root => {
            assert!(md(b"dev/mem").file_type().is_char_device());
            assert_eq!(md(b"dev/mem").rdev(), libc::makedev(1, 1));
            assert!(md(b"dev/sda").file_type().is_block_device());
        }
        "setuid-file" if root => assert_eq!(md(b"suid").mode() & 0o7777, 0o4755),
        "duplicate-entries-different-types" => {
            assert!(md(b"x").file_type().is_symlink());
            assert_eq!(fs::read(p(b"d")).unwrap(), b"now a file");
        }
        "symlink-swap-directory-times" => {
            assert!(md(b"dd").file_type().is_symlink());
        }
        "symlink-swap-then-write-inside" => {
            // `a` points at the host path, which resolves inside the root.
            let inside = dest.join(host.strip_prefix("/").unwrap()).join("planted");
            assert_eq!(fs::read(inside).unwrap(), b"x");
            assert!(!host.join("planted").exists());
        }
        "sparse-small" => {
            let data = fs::read(p(b"small")).unwrap();
            assert_eq!(data.len(), 1 << 20);
            assert_eq!(&data[4096..4100], b"data");
            assert!(data[..4096].iter().all(|&b| b == 0));
        }
        _ => {}
    }
}

// ---- images that lie about their layers ---------------------------------

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("gzip")
        .arg("-nc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = data.to_vec();
    let w = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let out = child.wait_with_output().unwrap();
    w.join().unwrap();
    assert!(out.status.success());
    out.stdout
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Writes an OCI layout at `dir` holding one image named `reference`: the
/// layer blobs as given (gzip media type), and a config that claims
/// `diff_ids`. Returns the layer blob digests.
fn oci_layout(dir: &Path, reference: &str, layers: &[Vec<u8>], diff_ids: &[String]) -> Vec<String> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = sha256(data);
        fs::write(blobs.join(&d[7..]), data).unwrap();
        d
    };
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let config = serde_json::json!({
        "architecture": image_store::model::host_arch(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_d = put(&config);
    let mut descs = Vec::new();
    let mut digests = Vec::new();
    for l in layers {
        let d = put(l);
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": d,
            "size": l.len(),
        }));
        digests.push(d);
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_d,
            "size": config.len(),
        },
        "layers": descs,
    }))
    .unwrap();
    let manifest_d = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_d,
            "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": reference},
        }],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    digests
}

/// A tar of the directory `dir` (its contents at the top), as an
/// oci-archive is.
fn tar_dir(dir: &Path, out: &Path) {
    let st = Command::new("tar")
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
}

/// A store holding the victim image (`victim`, one layer with `owner`
/// reading "victim"); returns its diff ID.
fn victim(k: &Kiln) -> String {
    let top = k.dir.path();
    let tar = top.join("victim.tar");
    fs::write(&tar, RawTar::new().file(b"owner", b"victim").finish()).unwrap();
    k.run(&["import", tar.to_str().unwrap(), "victim"]).ok();
    let store = image_store::Store::open(k.root()).unwrap();
    let img = store.resolve("victim").unwrap();
    img.config.rootfs.diff_ids[0].to_string()
}

/// The victim's files, unpacked as `run` would.
fn assert_victim_intact(k: &Kiln) {
    let store = image_store::Store::open(k.root()).unwrap();
    let img = store.resolve("victim").unwrap();
    let dirs = store.unpacked_layers(&img).unwrap();
    assert_eq!(fs::read(dirs[0].join("owner")).unwrap(), b"victim");
}

/// An attacker's layer (`owner` reads "evil") under a config that claims
/// the victim's diff ID.
fn evil_layout(dir: &Path, victim_diff_id: &str) -> String {
    let evil = gzip(&RawTar::new().file(b"owner", b"evil").finish());
    oci_layout(dir, "evil", &[evil], &[victim_diff_id.to_string()]).remove(0)
}

#[test]
fn a_config_claiming_another_images_layer_is_refused_oci_dir_and_archive() {
    let k = Kiln::new();
    let victim_id = victim(&k);
    let layout = k.dir.path().join("evil");
    let layer = evil_layout(&layout, &victim_id);
    let blobs = k.blob_count();

    let r = k
        .run(&["pull", &format!("oci:{}:evil", layout.display())])
        .code(125);
    assert_one_line_with("oci:", &r.stderr, &format!("layer {layer}"));
    assert_one_line_with(
        "oci:",
        &r.stderr,
        &format!("the image config says {victim_id}"),
    );
    assert_eq!(k.blob_count(), blobs, "a refused pull left blobs");

    let archive = k.dir.path().join("evil-oci.tar");
    tar_dir(&layout, &archive);
    let r = k.run(&["load", "-i", archive.to_str().unwrap()]).code(125);
    assert_one_line_with("oci-archive", &r.stderr, &format!("layer {layer}"));
    assert_one_line_with("oci-archive", &r.stderr, &victim_id);
    assert_eq!(k.blob_count(), blobs, "a refused load left blobs");
    assert_victim_intact(&k);
    // The same through `pull oci-archive:`.
    k.run(&["pull", &format!("oci-archive:{}", archive.display())])
        .code(125);
    assert_victim_intact(&k);
}

#[test]
fn a_config_claiming_another_images_layer_is_refused_registry() {
    require_tool("skopeo");
    let reg = Registry::plain();
    let k = Kiln::new();
    let victim_id = victim(&k);
    let layout = k.dir.path().join("evil");
    let layer = evil_layout(&layout, &victim_id);
    let name = format!("{}/evil/poison:1", reg.host());
    let out = Command::new("skopeo")
        .args(["copy", "-q", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:evil", layout.display()))
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let blobs = k.blob_count();
    let r = k
        .run(&["pull", "--tls-verify=false", "-q", &name])
        .code(125);
    assert_one_line_with("registry", &r.stderr, &format!("layer {layer}"));
    assert_one_line_with("registry", &r.stderr, &victim_id);
    assert_eq!(k.blob_count(), blobs, "a refused pull left blobs");
    assert_victim_intact(&k);

    // The blob already in the store (an honest image brought it) does not
    // make a lying config acceptable either.
    let honest = k.dir.path().join("honest");
    let evil_tar = RawTar::new().file(b"owner", b"evil").finish();
    let evil_gz = gzip(&evil_tar);
    oci_layout(&honest, "honest", &[evil_gz], &[sha256(&evil_tar)]);
    k.run(&["pull", &format!("oci:{}:honest", honest.display())])
        .ok();
    let r = k
        .run(&["pull", "--tls-verify=false", "-q", &name])
        .code(125);
    assert_one_line_with("registry, blob present", &r.stderr, &victim_id);
    assert_victim_intact(&k);
}

#[test]
fn whiteouts_of_dotdot_are_refused_by_load_and_pull() {
    let k = Kiln::new();
    let bad = RawTar::new().dir("d/").file(b"d/.wh...", b"").finish();
    // An oci: layout whose diff ID is honest.
    let layout = k.dir.path().join("wh");
    let layer = oci_layout(&layout, "wh", &[gzip(&bad)], &[sha256(&bad)]).remove(0);
    let r = k
        .run(&["pull", &format!("oci:{}:wh", layout.display())])
        .code(125);
    assert_one_line_with("oci:", &r.stderr, "d/.wh...");
    assert_one_line_with("oci:", &r.stderr, &layer);
    let archive = k.dir.path().join("wh-oci.tar");
    tar_dir(&layout, &archive);
    let r = k.run(&["load", "-i", archive.to_str().unwrap()]).code(125);
    assert_one_line_with("oci-archive", &r.stderr, "d/.wh...");
    // A docker-archive.
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": image_store::model::host_arch(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&bad)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": "config.json",
        "RepoTags": ["wh:latest"],
        "Layers": ["layer/layer.tar"],
    }]))
    .unwrap();
    let dock = k.dir.path().join("dock");
    fs::create_dir_all(dock.join("layer")).unwrap();
    fs::write(dock.join("config.json"), config).unwrap();
    fs::write(dock.join("manifest.json"), manifest).unwrap();
    fs::write(dock.join("layer/layer.tar"), &bad).unwrap();
    let archive = k.dir.path().join("wh-docker.tar");
    tar_dir(&dock, &archive);
    let r = k.run(&["load", "-i", archive.to_str().unwrap()]).code(125);
    assert_one_line_with("docker-archive", &r.stderr, "d/.wh...");
    assert_eq!(k.blob_count(), 0, "a refused load left blobs");
}

#[test]
fn garbage_layers_are_named() {
    let k = Kiln::new();
    let mut junk = vec![0xffu8; 4096];
    junk[..4].copy_from_slice(b"\x01\x02\n\x1b");
    let gz = gzip(&junk);
    let layout = k.dir.path().join("junk");
    let layer = oci_layout(&layout, "junk", &[gz], &[sha256(&junk)]).remove(0);
    let r = k
        .run(&["pull", &format!("oci:{}:junk", layout.display())])
        .code(125);
    assert_one_line_with("oci:", &r.stderr, &format!("layer {layer}"));
    assert_one_line_with("oci:", &r.stderr, "not a tar archive");
    assert!(!r.stderr.contains('\u{fffd}'), "{:?}", r.stderr);
}

fn run_env(k: &Kiln, env: &[(&str, &str)], args: &[&str]) -> (i32, String) {
    let mut c = k.cmd();
    for (n, v) in env {
        c.env(n, v);
    }
    let out = c.args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_layer_size_limit() {
    let k = Kiln::new();
    // 2 MiB of zeros: a few KB compressed.
    let big = RawTar::new().file(b"zeros", &vec![0u8; 2 << 20]).finish();
    let gz = gzip(&big);
    assert!(gz.len() < 64 << 10);
    let tar = k.dir.path().join("big.tar.gz");
    fs::write(&tar, &gz).unwrap();
    let limit = [("KILN_MAX_LAYER_SIZE", "1M")];
    let (code, err) = run_env(&k, &limit, &["import", tar.to_str().unwrap(), "big"]);
    assert_eq!(code, 125, "{err}");
    assert_one_line_with("import", &err, "expands to more than 1048576 bytes");
    assert_one_line_with("import", &err, "KILN_MAX_LAYER_SIZE");
    assert_eq!(k.blob_count(), 0);
    // A sparse file counts at its expanded size.
    let sparse = k.dir.path().join("sparse.tar");
    fs::write(
        &sparse,
        RawTar::new().sparse("s", 4 << 20, 8192, b"x").finish(),
    )
    .unwrap();
    let (code, err) = run_env(&k, &limit, &["import", sparse.to_str().unwrap(), "sp"]);
    assert_eq!(code, 125, "{err}");
    assert_one_line_with("sparse", &err, "expands to more than");
    // Through pull, naming the layer.
    let layout = k.dir.path().join("big");
    let layer = oci_layout(&layout, "big", std::slice::from_ref(&gz), &[sha256(&big)]).remove(0);
    let (code, err) = run_env(
        &k,
        &limit,
        &["pull", &format!("oci:{}:big", layout.display())],
    );
    assert_eq!(code, 125, "{err}");
    assert_one_line_with("pull", &err, &format!("layer {layer}"));
    assert_one_line_with("pull", &err, "expands to more than 1048576 bytes");
    // Through load: a docker-archive whose layer member is compressed (it
    // is stored decompressed, so the limit is what keeps the disk).
    let dock = k.dir.path().join("dock");
    fs::create_dir_all(&dock).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": image_store::model::host_arch(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha256(&big)]},
    }))
    .unwrap();
    fs::write(dock.join("config.json"), config).unwrap();
    fs::write(
        dock.join("manifest.json"),
        br#"[{"Config":"config.json","RepoTags":["big:1"],"Layers":["layer.tar.gz"]}]"#,
    )
    .unwrap();
    fs::write(dock.join("layer.tar.gz"), &gz).unwrap();
    let archive = k.dir.path().join("big-docker.tar");
    tar_dir(&dock, &archive);
    let blobs = k.blob_count();
    let (code, err) = run_env(&k, &limit, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(code, 125, "{err}");
    assert_one_line_with("load", &err, "layer.tar.gz");
    assert_one_line_with("load", &err, "expands to more than 1048576 bytes");
    assert_eq!(k.blob_count(), blobs, "a refused load left blobs");
    k.run(&["load", "-i", archive.to_str().unwrap()]).ok();
    // A bad setting is an error, not no limit.
    let (code, err) = run_env(
        &k,
        &[("KILN_MAX_LAYER_SIZE", "lots")],
        &["import", tar.to_str().unwrap(), "big"],
    );
    assert_eq!(code, 125, "{err}");
    assert_one_line_with("bad setting", &err, "KILN_MAX_LAYER_SIZE=\"lots\"");
    // Under the default, all of it is fine.
    k.run(&["import", tar.to_str().unwrap(), "big"]).ok();
    k.run(&["import", sparse.to_str().unwrap(), "sp"]).ok();
    k.run(&["pull", &format!("oci:{}:big", layout.display())])
        .ok();
}

#[test]
fn run_time_unpack_errors_name_the_image_and_layer() {
    // Accepted on the way in (a symlink's target cannot be judged
    // without the lower layers), refused when unpacked for a container.
    let k = Kiln::new();
    let top = k.dir.path();
    let tar = top.join("swap.tar");
    fs::write(
        &tar,
        RawTar::new()
            .dir("a/")
            .symlink("a", "/nowhere")
            .file(b"a/planted", b"x")
            .finish(),
    )
    .unwrap();
    k.run(&["import", tar.to_str().unwrap(), "swap"]).ok();
    let store = image_store::Store::open(k.root()).unwrap();
    let layer = store.resolve("swap").unwrap().manifest.layers[0]
        .digest
        .to_string();
    let r = k.run(&["run", "--rm", "swap", "/x"]).code(125);
    assert_one_line_with("run", &r.stderr, "unpacking image swap");
    assert_one_line_with("run", &r.stderr, &format!("layer {layer}"));
    assert_one_line_with("run", &r.stderr, "tar entry \"a/planted\"");
}

// Links in an image resolve inside it, as the container sees them: kiln's
// own look into the image (the user of `--user`/USER, COPY and WORKDIR
// destinations) must never follow an image's `etc -> /etc` to the host.

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipping: containers need root (CI runs these as root)");
    }
    root
}

/// Imports the busybox rootfs, changed by `edit`, as `name`.
fn busybox_with(k: &Kiln, name: &str, edit: impl FnOnce(&Path)) {
    let top = k
        .dir
        .path()
        .join(format!("rootfs-{}", name.replace('/', "-")));
    let rootfs = top.join("rootfs");
    test_support::busybox::rootfs(&rootfs).unwrap();
    edit(&rootfs);
    let tar = top.join("rootfs.tar");
    tar_dir(&rootfs, &tar);
    k.run(&["import", tar.to_str().unwrap(), name]).ok();
}

/// A user the host has and the busybox image does not.
fn host_only_user() -> String {
    let t = tempfile::tempdir().unwrap();
    test_support::busybox::rootfs(t.path()).unwrap();
    let image = fs::read_to_string(t.path().join("etc/passwd")).unwrap();
    let names = |s: &str| -> Vec<String> {
        s.lines()
            .filter_map(|l| l.split(':').next())
            .map(str::to_string)
            .collect()
    };
    let image = names(&image);
    names(&fs::read_to_string("/etc/passwd").unwrap())
        .into_iter()
        .find(|n| !n.is_empty() && !image.contains(n))
        .expect("the host has a user busybox lacks")
}

#[test]
fn a_linked_etc_never_lends_the_host_users() {
    if !is_root() {
        return;
    }
    let k = Kiln::new();
    let user = host_only_user();
    let want = format!("no user {user:?} in the image's /etc/passwd");
    for (i, target) in ["/etc", "../../../../../../../../../../etc"]
        .iter()
        .enumerate()
    {
        let image = format!("linked-etc-{i}");
        busybox_with(&k, &image, |r| {
            fs::remove_dir_all(r.join("etc")).unwrap();
            std::os::unix::fs::symlink(target, r.join("etc")).unwrap();
        });
        let r = k
            .run(&["run", "--rm", "--user", &user, &image, "true"])
            .code(125);
        assert_one_line_with(target, &r.stderr, &want);
        let ctx = k.dir.path().join(format!("ctx-{i}"));
        fs::create_dir_all(&ctx).unwrap();
        let dockerfile = format!("FROM {image}\nUSER {user}\nRUN true\n");
        fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let r = k.run(&["build", ctx.to_str().unwrap()]);
        assert_ne!(r.code, 0, "{target}: the build ran as the host's {user}");
        assert!(r.stderr.contains(&want), "{target}: {}", r.stderr);
    }
}

#[test]
fn a_passwd_linked_inside_the_image_is_read() {
    if !is_root() {
        return;
    }
    let k = Kiln::new();
    busybox_with(&k, "linked-passwd", |r| {
        fs::create_dir_all(r.join("usr/lib")).unwrap();
        for f in ["passwd", "group"] {
            fs::rename(r.join("etc").join(f), r.join("usr/lib").join(f)).unwrap();
        }
        std::os::unix::fs::symlink("/usr/lib/passwd", r.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("../usr/lib/group", r.join("etc/group")).unwrap();
    });
    let r = k
        .run(&["run", "--rm", "--user", "nobody", "linked-passwd", "id"])
        .ok();
    assert_eq!(r.stdout, "uid=65534(nobody) gid=65534(nogroup)\n");
    let ctx = k.dir.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    let dockerfile = "FROM linked-passwd\nUSER nobody\nRUN test \"$(id -u)\" = 65534\n";
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    k.run(&["build", ctx.to_str().unwrap()]).ok();
}

#[test]
fn copy_and_workdir_through_links_stay_in_the_image() {
    if !is_root() {
        return;
    }
    let k = Kiln::new();
    let host = k.dir.path().join("host-target");
    fs::create_dir_all(&host).unwrap();
    let climb = format!("../../../../../../../../..{}", host.display());
    busybox_with(&k, "linked-dests", |r| {
        std::os::unix::fs::symlink(&host, r.join("abs")).unwrap();
        std::os::unix::fs::symlink(&climb, r.join("rel")).unwrap();
    });
    let ctx = k.dir.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("f"), "context").unwrap();
    let dockerfile = "FROM linked-dests\nCOPY f /abs/f\nCOPY f /rel/g\nWORKDIR /abs/wd\nWORKDIR /rel/wd2\nRUN test -f /abs/f && test -f /rel/g && test -d /abs/wd && test -d /abs/wd2\n";
    fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    k.run(&["build", ctx.to_str().unwrap()]).ok();
    let left: Vec<_> = fs::read_dir(&host).unwrap().collect();
    assert!(left.is_empty(), "the build wrote to the host: {left:?}");
}

#[test]
fn mount_points_behind_an_images_link_keep_the_link() {
    if !is_root() {
        return;
    }
    let k = Kiln::new();
    busybox_with(&k, "var-run-link", |r| {
        fs::create_dir_all(r.join("run")).unwrap();
        fs::create_dir_all(r.join("var")).unwrap();
        std::os::unix::fs::symlink("../run", r.join("var/run")).unwrap();
    });
    let vol = k.dir.path().join("vol");
    fs::create_dir_all(&vol).unwrap();
    fs::write(vol.join("mark"), "m").unwrap();
    let v = format!("{}:/var/run/app", vol.display());
    let check = "test -L /var/run && cat /run/app/mark";
    let r = k
        .run(&["run", "--rm", "-v", &v, "var-run-link", "sh", "-c", check])
        .ok();
    assert_eq!(r.stdout, "m");
}

#[test]
fn bind_mount_sources_resolve_inside_the_image() {
    if !is_root() {
        return;
    }
    let k = Kiln::new();
    let host = k.dir.path().join("host-secret");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("secret"), "host's").unwrap();
    busybox_with(&k, "bind-links", |r| {
        std::os::unix::fs::symlink(&host, r.join("abs")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("etc2")).unwrap();
    });
    let ctx = k.dir.path().join("ctx");
    fs::create_dir_all(&ctx).unwrap();
    // Through the image's own link: its /etc/passwd.
    let ok = "FROM busybox-base\nRUN --mount=type=bind,from=bind-links,source=etc2/passwd,target=/x grep -c nobody /x\n";
    k.import_busybox("busybox-base");
    fs::write(ctx.join("Dockerfile"), ok).unwrap();
    k.run(&["build", ctx.to_str().unwrap()]).ok();
    // A link to a host directory is the image's own (missing) path.
    let bad = "FROM busybox-base\nRUN --mount=type=bind,from=bind-links,source=abs/secret,target=/x cat /x\n";
    fs::write(ctx.join("Dockerfile"), bad).unwrap();
    let r = k.run(&["build", ctx.to_str().unwrap()]);
    assert_ne!(r.code, 0, "the host's file was bound: {}", r.stdout);
    assert!(!r.stdout.contains("host's") && !r.stderr.contains("host's"));
    let last = r.stderr.trim_end().lines().last().unwrap_or_default();
    assert_one_line_with("bind", last, "bind mount source \"abs/secret\"");
}
