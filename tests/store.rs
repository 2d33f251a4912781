//! The store and its commands end to end: import, images, tag, rmi,
//! inspect, history, prune, read back by skopeo and umoci.

mod common;

use std::process::Command;

use common::{busybox_tar, require_tool, sha256_file, Kiln};

/// The columns of `images` that do not age (CREATED reads "Less than a
/// second ago", then "2 seconds ago"), for before/after comparisons.
const STABLE: &str = "{{.ID}} {{.Repository}}:{{.Tag}} {{.Digest}} {{.Size}}";

#[test]
fn import_is_readable_by_skopeo_and_umoci() {
    require_tool("skopeo");
    require_tool("umoci");
    let k = Kiln::new();
    let id = k.import_busybox("busybox");
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let root = k.root();
    let layout = format!("oci:{}:localhost/busybox:latest", root.display());
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", &layout])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["config"]["digest"], id.as_str());

    let out = Command::new("skopeo")
        .args(["inspect", "--config", &layout])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bundle = k.dir.path().join("bundle");
    let st = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:localhost/busybox:latest", root.display()))
        .arg(&bundle)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        sha256_file(&bundle.join("rootfs/bin/busybox")),
        sha256_file(std::path::Path::new("/bin/busybox"))
    );
    assert_eq!(
        std::fs::read_link(bundle.join("rootfs/bin/sh")).unwrap(),
        std::path::Path::new("busybox")
    );
}

#[test]
fn import_from_stdin_gzip_zstd_bzip2_and_xz() {
    let k = Kiln::new();
    let tar = std::fs::read(busybox_tar()).unwrap();
    let plain = k.run_stdin(&["import", "-", "base:latest"], &tar).ok();

    let gz = compress("gzip");
    let from_gz = k.run_stdin(&["import", "-", "base:gz"], &gz).ok();
    let zs = compress("zstd");
    let from_zstd = k.run_stdin(&["import", "-", "base:zstd"], &zs).ok();
    // docker import takes bzip2 and xz tarballs too.
    for tool in ["bzip2", "xz"] {
        let data = compress(tool);
        k.run_stdin(&["import", "-", &format!("base:{tool}")], &data)
            .ok();
    }

    // Same layer whatever the compression: the diff IDs agree.
    let layers = |name: &str| {
        let r = k.run(&["inspect", name]).ok();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        v[0]["RootFS"]["Layers"].clone()
    };
    assert_eq!(layers("base:latest"), layers("base:gz"));
    assert_eq!(layers("base:latest"), layers("base:zstd"));
    assert_eq!(layers("base:latest"), layers("base:bzip2"));
    assert_eq!(layers("base:latest"), layers("base:xz"));
    assert_ne!(plain.stdout, "");
    assert_ne!(from_gz.stdout, "");
    assert_ne!(from_zstd.stdout, "");
    let images = k.run(&["images"]).ok().stdout;
    for tag in ["latest", "gz", "zstd", "bzip2", "xz"] {
        assert!(images.contains(tag), "{images}");
    }
}

fn compress(tool: &str) -> Vec<u8> {
    require_tool(tool);
    let out = Command::new(tool)
        .arg("-c")
        .arg(busybox_tar())
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

#[test]
fn names_ids_and_prefixes_resolve() {
    let k = Kiln::new();
    let id = k.import_busybox("busybox");
    let hex = id.trim_start_matches("sha256:");
    for name in [
        "busybox",
        "busybox:latest",
        "localhost/busybox",
        "localhost/busybox:latest",
        id.as_str(),
        hex,
        &hex[..4],
        &hex[..12],
    ] {
        let r = k.run(&["inspect", name]).ok();
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(v[0]["Id"], id.as_str(), "{name}");
    }
    let r = k.run(&["inspect", "nosuch"]).code(125);
    assert!(r.stderr.contains("no such image: nosuch"), "{}", r.stderr);
    let r = k.run(&["inspect", "Bad:Name"]).code(125);
    assert!(r.stderr.contains("Bad:Name"), "{}", r.stderr);
}

#[test]
fn rmi_of_one_of_several_tags_only_untags() {
    let k = Kiln::new();
    let id = k.import_busybox("busybox");
    k.run(&["tag", "busybox", "other:1"]).ok();
    let blobs = k.blob_count();
    let r = k.run(&["rmi", "other:1"]).ok();
    assert_eq!(r.stdout.trim(), "Untagged: localhost/other:1");
    assert_eq!(k.blob_count(), blobs);
    let r = k.run(&["images", "-q", "--no-trunc"]).ok();
    assert_eq!(r.stdout.trim(), id);
}

#[test]
fn rmi_by_id_with_several_repositories_needs_force() {
    let k = Kiln::new();
    let id = k.import_busybox("busybox");
    k.run(&["tag", "busybox", "other:1"]).ok();
    let r = k.run(&["rmi", &id]).code(125);
    assert!(r.stderr.contains("must be forced"), "{}", r.stderr);
    assert_eq!(k.run(&["images", "-q"]).ok().stdout.lines().count(), 1);
    let r = k.run(&["rmi", "-f", &id]).ok();
    assert!(r.stdout.contains("Untagged: localhost/busybox:latest"));
    assert!(r.stdout.contains("Untagged: localhost/other:1"));
    assert!(r.stdout.contains(&format!("Deleted: {id}")));
    assert_eq!(k.blob_count(), 0, "unreferenced blobs must be deleted");
}

#[test]
fn rmi_by_id_with_tags_in_one_repository_removes_all() {
    let k = Kiln::new();
    let id = k.import_busybox("busybox:1");
    k.run(&["tag", "busybox:1", "busybox:2"]).ok();
    let r = k.run(&["rmi", &id[7..19]]).ok();
    assert!(
        r.stdout.contains("Untagged: localhost/busybox:1"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Untagged: localhost/busybox:2"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("Deleted:"));
    assert_eq!(k.run(&["images", "-q"]).ok().stdout, "");
}

#[test]
fn rmi_of_the_last_tag_deletes_image_and_blobs() {
    let k = Kiln::new();
    let id = k.import_busybox("busybox");
    assert_eq!(k.blob_count(), 3, "layer, config, manifest");
    let r = k.run(&["rmi", "busybox"]).ok();
    assert_eq!(
        r.stdout,
        format!("Untagged: localhost/busybox:latest\nDeleted: {id}\n")
    );
    assert_eq!(k.blob_count(), 0);
    let r = k.run(&["rmi", "busybox"]).code(125);
    assert!(r.stderr.contains("no such image: busybox"));
}

#[test]
fn retagging_leaves_the_old_image_dangling_and_prune_removes_it() {
    let k = Kiln::new();
    let first = k.import_busybox("app");
    let second = k
        .run_stdin(
            &["import", "-m", "second", "-", "app"],
            &std::fs::read(busybox_tar()).unwrap(),
        )
        .ok()
        .stdout
        .trim()
        .to_string();
    assert_ne!(first, second, "creation time and message differ");
    let r = k.run(&["images"]).ok();
    assert!(r.stdout.contains("<none>"), "{}", r.stdout);
    assert!(r.stdout.contains(&first[7..19]));
    let r = k.run(&["image", "prune", "-f"]).ok();
    assert!(
        r.stdout.contains(&format!("deleted: {first}")),
        "{}",
        r.stdout
    );
    let r = k.run(&["images", "-q", "--no-trunc"]).ok();
    assert_eq!(r.stdout.trim(), second);
}

#[test]
fn tag_of_missing_image_fails() {
    let k = Kiln::new();
    let r = k.run(&["tag", "nosuch", "x"]).code(125);
    assert!(r.stderr.contains("nosuch"));
}

#[test]
fn concurrent_imports_keep_every_tag() {
    let k = Kiln::new();
    let tar = busybox_tar().to_str().unwrap().to_string();
    let children: Vec<_> = (0..8)
        .map(|i| {
            k.cmd()
                .args([
                    "import",
                    "-m",
                    &format!("import {i}"),
                    &tar,
                    &format!("c:{i}"),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let r = k.run(&["images", "c"]).ok();
    for i in 0..8 {
        assert!(
            r.stdout.contains(&format!("localhost/c   {i} ")),
            "missing c:{i}\n{}",
            r.stdout
        );
    }
}

#[test]
fn bad_input_fails_naming_the_file_and_changes_nothing() {
    let k = Kiln::new();
    k.import_busybox("busybox");
    let before = k
        .run(&["images", "--no-trunc", "--format", STABLE])
        .ok()
        .stdout;
    let blobs = k.blob_count();
    let dir = k.dir.path();

    let not_tar = dir.join("not-a-tar.txt");
    std::fs::write(
        &not_tar,
        "this is not a tar archive at all, just text\n".repeat(20),
    )
    .unwrap();
    let empty = dir.join("empty.tar");
    std::fs::write(&empty, b"").unwrap();
    let truncated = dir.join("truncated.tar.gz");
    let out = Command::new("gzip")
        .arg("-c")
        .arg(busybox_tar())
        .output()
        .unwrap();
    std::fs::write(&truncated, &out.stdout[..out.stdout.len() / 2]).unwrap();
    let truncated_tar = dir.join("cut.tar");
    let tar = std::fs::read(busybox_tar()).unwrap();
    std::fs::write(&truncated_tar, &tar[..tar.len() / 2 + 100]).unwrap();

    for (file, what) in [
        (&not_tar, "not a tar archive"),
        (&empty, "empty"),
        (&truncated, "gzip"),
        (&truncated_tar, "corrupt or truncated"),
    ] {
        let r = k
            .run(&["import", file.to_str().unwrap(), "bad:1"])
            .code(125);
        assert!(r.stderr.contains(file.to_str().unwrap()), "{}", r.stderr);
        assert!(r.stderr.contains(what), "{what}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
    let r = k.run(&["import", "/nonexistent/rootfs.tar"]).code(125);
    assert!(r.stderr.contains("/nonexistent/rootfs.tar"));
    assert_eq!(
        k.run(&["images", "--no-trunc", "--format", STABLE])
            .ok()
            .stdout,
        before
    );
    assert_eq!(k.blob_count(), blobs);
    let tmp = std::fs::read_dir(k.root().join("kiln/tmp"))
        .unwrap()
        .count();
    assert_eq!(tmp, 0, "temp files left behind");
}

/// A tar with a raw (unchecked) entry name.
fn evil_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let data: &[u8] = if *kind == tar::EntryType::Regular {
            b"pwned"
        } else {
            b""
        };
        h.set_size(data.len() as u64);
        let g = h.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name.as_bytes());
        g.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn hostile_tars_never_write_outside_the_layer() {
    require_tool("umoci");
    let k = Kiln::new();
    use tar::EntryType::{Regular as F, Symlink as S};
    let r = k
        .run_stdin(
            &["import", "-", "evil:dotdot"],
            &evil_tar(&[("../escape", F, "")]),
        )
        .code(125);
    assert!(r.stderr.contains("\"../escape\""), "{}", r.stderr);
    assert!(r.stderr.contains("escapes the root"), "{}", r.stderr);
    assert!(!k.dir.path().join("escape").exists());

    // Absolute names become relative; a symlink out of the tree and a file
    // written through it stay entries of the layer.
    let t = evil_tar(&[
        ("/abs-file", F, ""),
        ("link", S, "/"),
        ("link/written-through", F, ""),
    ]);
    k.run_stdin(&["import", "-", "evil:abs"], &t).ok();
    let r = k.run(&["inspect", "evil:abs"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let layer = v[0]["RootFS"]["Layers"][0]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let mut names = Vec::new();
    let mut a =
        tar::Archive::new(std::fs::File::open(k.root().join("blobs/sha256").join(layer)).unwrap());
    for e in a.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    assert_eq!(names, ["abs-file", "link", "link/written-through"]);
    assert!(!std::path::Path::new("/written-through").exists());
}

#[test]
fn inspect_and_history_show_docker_fields() {
    let k = Kiln::new();
    let id = k
        .run_stdin(
            &["import", "-m", "my message", "-", "busybox"],
            &std::fs::read(busybox_tar()).unwrap(),
        )
        .ok()
        .stdout
        .trim()
        .to_string();
    let r = k.run(&["inspect", "busybox"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let i = &v[0];
    assert_eq!(i["Id"], id.as_str());
    assert_eq!(i["RepoTags"][0], "localhost/busybox:latest");
    assert_eq!(i["Comment"], "my message");
    assert_eq!(i["Os"], "linux");
    assert_eq!(i["RootFS"]["Type"], "layers");
    assert!(i["Size"].as_u64().unwrap() > 1_000_000);
    for key in [
        "Created",
        "Author",
        "Config",
        "Architecture",
        "RepoDigests",
        "History",
        "Metadata",
    ] {
        assert!(i.get(key).is_some(), "missing {key}");
    }
    let r = k.run(&["history", "busybox"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("IMAGE"), "{}", r.stdout);
    assert!(lines[0].contains("CREATED BY") && lines[0].contains("COMMENT"));
    assert!(lines[1].starts_with(&id[7..19]), "{}", r.stdout);
    assert!(lines[1].contains("my message"));
    let r = k.run(&["history", "-q", "--no-trunc", "busybox"]).ok();
    assert_eq!(r.stdout.trim(), id);
}

#[test]
fn images_formats() {
    let k = Kiln::new();
    let id = k.import_busybox("busybox");
    let r = k.run(&["images"]).ok();
    let header = r.stdout.lines().next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        r.stdout.contains("localhost/busybox   latest   "),
        "{}",
        r.stdout
    );
    let r = k.run(&["images", "--digests"]).ok();
    assert!(r.stdout.lines().next().unwrap().contains("DIGEST"));
    let r = k.run(&["images", "--format", "json"]).ok();
    // docker's `--format json`: one object per line, docker's field names.
    let v: serde_json::Value = serde_json::from_str(r.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(v["ID"], &id[7..19]);
    assert_eq!(v["Repository"], "localhost/busybox");
    let r = k.run(&["images", "-q"]).ok();
    assert_eq!(r.stdout.trim(), &id[7..19]);
}

#[test]
fn every_command_has_help_and_bad_flags_exit_125() {
    let k = Kiln::new();
    for cmd in [
        "import", "images", "tag", "rmi", "inspect", "history", "build", "run", "pull", "push",
        "login", "logout", "save", "load", "export", "commit", "ps", "rm", "logs", "stop", "kill",
    ] {
        let r = k.run(&[cmd, "--help"]).ok();
        assert!(r.stdout.contains("Usage"), "{cmd}: {}", r.stdout);
    }
    let r = k.run(&["image", "prune", "--help"]).ok();
    assert!(r.stdout.contains("Usage"));
    let r = k.run(&["images", "--bogus-flag"]).code(125);
    assert!(r.stderr.contains("--bogus-flag"));
}

#[test]
fn import_changes_set_the_config() {
    let k = Kiln::new();
    let tar = busybox_tar().to_str().unwrap().to_string();
    k.run(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        "-c",
        "ENV PATH=/bin",
        "-c",
        "WORKDIR /srv",
        "-c",
        "EXPOSE 8080",
        "-c",
        "LABEL team=kiln",
        "-c",
        "USER nobody",
        "-c",
        "VOLUME /data",
        "-c",
        "ONBUILD RUN echo triggered",
        "-c",
        "ENTRYPOINT [\"/bin/env\"]",
        &tar,
        "changed",
    ])
    .ok();
    let r = k.run(&["inspect", "changed"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let c = &v[0]["Config"];
    assert_eq!(c["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/env"]));
    assert_eq!(c["Env"], serde_json::json!(["PATH=/bin"]));
    assert_eq!(c["WorkingDir"], "/srv");
    assert!(c["ExposedPorts"].get("8080/tcp").is_some());
    assert_eq!(c["Labels"]["team"], "kiln");
    assert_eq!(c["User"], "nobody");
    assert!(c["Volumes"].get("/data").is_some());
    assert_eq!(c["OnBuild"], serde_json::json!(["RUN echo triggered"]));

    let r = k.run(&["import", "-c", "RUN echo no", &tar]).code(125);
    assert!(
        r.stderr.contains("RUN is not a valid change command"),
        "{}",
        r.stderr
    );
    let r = k.run(&["import", "-c", "FOO bar", &tar]).code(125);
    assert!(
        r.stderr.contains("unknown instruction: FOO"),
        "{}",
        r.stderr
    );
}

#[test]
fn import_from_a_url() {
    let k = Kiln::new();
    let body: &'static [u8] = Box::leak(std::fs::read(busybox_tar()).unwrap().into_boxed_slice());
    let port = common::serve(body);
    let url = format!("http://127.0.0.1:{port}/rootfs.tar");
    let id = k
        .run(&["import", &url, "fromurl"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let r = k.run(&["history", "fromurl"]).ok();
    assert!(
        r.stdout.contains(&format!("Imported from {url}")),
        "{}",
        r.stdout
    );
    // Same layer as a file import.
    let a = k.run(&["inspect", &id]).ok().stdout;
    k.import_busybox("fromfile");
    let b = k.run(&["inspect", "fromfile"]).ok().stdout;
    let layers =
        |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap()[0]["RootFS"].clone();
    assert_eq!(layers(&a), layers(&b));
    let r = k
        .run(&["import", "http://127.0.0.1:1/nothing.tar"])
        .code(125);
    assert!(r.stderr.contains("127.0.0.1:1"), "{}", r.stderr);
}

/// Runs `sh -c script` as nobody (uid/gid 65534, no groups).
fn as_nobody(script: &str) -> std::process::Output {
    Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
            script,
        ])
        .output()
        .expect("run setpriv")
}

/// CVE-2021-41091 class: another host user must not reach a setuid file
/// (or device node) inside an unpacked layer, even when the directory
/// holding the store is world-readable; a store made with 0755 directories
/// is narrowed by the next command.
#[test]
fn unprivileged_users_cannot_reach_unpacked_layers() {
    use std::os::unix::fs::PermissionsExt;
    require_tool("setpriv");
    let k = Kiln::new();
    // The store's parent is open to everyone, as /var/lib is.
    std::fs::set_permissions(k.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // busybox plus a setuid-root copy of it.
    let mut b = tar::Builder::new(Vec::new());
    test_support::busybox::append_to(&mut b);
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o4755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(5);
    b.append_data(&mut h, "suid-shell", &b"#!/x\n"[..]).unwrap();
    let tar = k.dir.path().join("suid.tar");
    std::fs::write(&tar, b.into_inner().unwrap()).unwrap();
    k.run(&["import", tar.to_str().unwrap(), "suid"]).ok();
    // Unpacks the layer into kiln/layers.
    k.run(&["run", "--rm", "suid", "true"]).ok();
    let layers = k.root().join("kiln/layers");
    let suid = std::fs::read_dir(&layers)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("suid-shell"))
        .find(|p| p.exists())
        .expect("the unpacked layer holds suid-shell");
    let mode = std::fs::metadata(&suid).unwrap().permissions().mode();
    assert_eq!(mode & 0o4000, 0o4000, "the layer keeps the setuid bit");
    let check = |when: &str| {
        let out = as_nobody(&format!(
            "test -e '{}' && echo reached; ls '{}' 2>&1",
            suid.display(),
            layers.display()
        ));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains("reached") && stdout.contains("Permission denied"),
            "{when}: nobody reaches the unpacked layer: {stdout}"
        );
    };
    check("new store");
    for d in [k.root(), k.root().join("kiln"), layers.clone()] {
        let m = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, 0o700, "{}", d.display());
    }
    // A store made before: everything 0755. The next command narrows it.
    for d in [k.root(), k.root().join("kiln"), layers.clone()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    k.run(&["tag", "suid", "suid2"]).ok();
    check("existing 0755 store after the next command");
}

/// A relative `--root` names the same store from every process kiln starts:
/// a RUN step's overlay needs absolute paths (it failed with "overlay path
/// … is not absolute").
#[test]
fn a_relative_root_works_for_builds_with_run_steps() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping: RUN steps need root (CI runs these as root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM base\nRUN echo ran > /f\n").unwrap();
    let kiln = |args: &[&str]| {
        let out = Command::new(common::kiln_bin())
            .current_dir(dir.path())
            .args(["--root", "rel-store"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    kiln(&["import", busybox_tar().to_str().unwrap(), "base"]);
    kiln(&["build", "-q", "-t", "img", "ctx"]);
    assert_eq!(kiln(&["run", "--rm", "img", "cat", "/f"]), "ran\n");
}

/// One image with a corrupt config blob does not hide the others: `images`
/// lists the good ones and warns once about the broken one (naming it, its
/// blob and the repair); the good one inspects, tags and runs; naming the
/// broken one fails in one line naming the blob; `system check --repair`
/// removes it.
#[test]
fn one_broken_image_does_not_hide_the_others() {
    let k = Kiln::new();
    let tar = busybox_tar().to_str().unwrap().to_string();
    k.import_busybox("good");
    let bad = k
        .run(&["import", "-c", "ENV BROKEN=1", &tar, "bad"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let blob = k
        .root()
        .join("blobs/sha256")
        .join(bad.trim_start_matches("sha256:"));
    std::fs::write(&blob, b"not the config").unwrap();

    let r = k.run(&["images"]).ok();
    assert!(r.stdout.contains("localhost/good"), "{}", r.stdout);
    assert!(!r.stdout.contains("localhost/bad"), "{}", r.stdout);
    let warnings: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(warnings.len(), 1, "{}", r.stderr);
    for want in ["localhost/bad:latest", &bad, "kiln system check --repair"] {
        assert!(warnings[0].contains(want), "no {want:?} in {}", warnings[0]);
    }

    k.run(&["inspect", "good"]).ok();
    k.run(&["tag", "good", "good:2"]).ok();
    k.run(&["run", "--rm", "good:2", "true"]).ok();
    for args in [
        &["inspect", "bad"][..],
        &["tag", "bad", "other"],
        &["run", "--rm", "bad", "true"],
        &["rmi", "bad"],
    ] {
        let r = k.run(args).code(125);
        assert_eq!(r.stderr.trim().lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains(&bad) && r.stderr.contains("is corrupt"),
            "{args:?}: {}",
            r.stderr
        );
    }

    // A third image loses its manifest: the blobs it reached are unknown,
    // so removing another image keeps every blob, and nothing fails.
    k.run(&["import", "-c", "ENV GONE=1", &tar, "gone"]).ok();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(k.root().join("index.json")).unwrap()).unwrap();
    let manifest = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == "localhost/gone:latest")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::remove_file(
        k.root()
            .join("blobs/sha256")
            .join(manifest.trim_start_matches("sha256:")),
    )
    .unwrap();
    let r = k.run(&["images"]).ok();
    assert_eq!(r.stderr.lines().count(), 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains(&format!("manifest {manifest} is missing")),
        "{}",
        r.stderr
    );
    k.run(&["import", "-c", "ENV EXTRA=1", &tar, "extra"]).ok();
    let blobs = k.blob_count();
    k.run(&["rmi", "extra"]).ok();
    assert_eq!(k.blob_count(), blobs, "a blob was collected");
    k.run(&["inspect", "gone"]).code(125);

    k.run(&["system", "check", "--repair"]).ok();
    k.run(&["system", "check"]).ok();
    let r = k.run(&["images"]).ok();
    assert!(r.stderr.is_empty(), "{}", r.stderr);
    assert!(r.stdout.contains("localhost/good"), "{}", r.stdout);
    k.run(&["inspect", "bad"]).code(125);
    k.run(&["run", "--rm", "good", "true"]).ok();
}

/// A reader that stops reading (`kiln inspect x | head -n 1`) ends kiln as
/// it ends docker: quietly, with 128+SIGPIPE, never with a panic.
#[test]
fn a_closed_stdout_ends_quietly() {
    let k = Kiln::new();
    k.import_busybox("busybox");
    for args in [
        &["inspect", "busybox"][..],
        &["images"],
        &["history", "busybox"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = k
            .cmd()
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(141), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}
