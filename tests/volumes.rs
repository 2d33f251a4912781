//! Volumes, `kiln cp` and `kiln diff` end to end: real containers of the
//! busybox image (root only; skipped otherwise).

mod common;

use common::{is_root, Kiln};

fn out(k: &Kiln, args: &[&str]) -> String {
    k.run(args).ok().stdout
}

/// A store with busybox as `busybox` and `img`: busybox plus `/data/seed`
/// (owner 5:6, mode 640) and a symlink `/data/ln` to /etc,
/// over a layer that had `/data/gone` (deleted above, so a whiteout), and
/// `VOLUME /anon`. None when not root.
fn setup() -> Option<Kiln> {
    if !is_root() {
        eprintln!("skipping: containers need root (CI runs these as root)");
        return None;
    }
    let k = Kiln::new();
    k.import_busybox("busybox");
    let first = "mkdir /data && echo from-image > /data/seed && echo old > /data/gone \
                 && chown 5:6 /data/seed && chmod 640 /data/seed && ln -s /etc /data/ln";
    k.run(&["run", "--name", "s1", "busybox", "sh", "-c", first])
        .ok();
    k.run(&["commit", "s1", "stage1"]).ok();
    k.run(&["run", "--name", "s2", "stage1", "rm", "/data/gone"])
        .ok();
    k.run(&["commit", "-c", "VOLUME /anon", "s2", "img"]).ok();
    k.run(&["rm", "s1", "s2"]).ok();
    Some(k)
}

fn volumes(k: &Kiln) -> Vec<String> {
    out(k, &["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_named_volume_is_filled_from_the_image_and_shared() {
    let Some(k) = setup() else { return };
    // First use: made, and filled from the image (owners, modes, links
    // kept; the file a layer deleted is not there).
    let r = k
        .run(&[
            "run",
            "--rm",
            "-v",
            "vol1:/data",
            "img",
            "sh",
            "-c",
            "cat /data/seed; stat -c %u:%g:%a /data/seed; readlink /data/ln; ls /data; echo written > /data/new",
        ])
        .ok();
    assert_eq!(r.stdout, "from-image\n5:6:640\n/etc\nln\nseed\n");
    // It outlives its container (and the image's VOLUME got an anonymous
    // one, removed with the --rm container).
    assert_eq!(volumes(&k), ["vol1"]);
    // The mount point is resolved inside the image: /data/ln is a link to
    // /etc, so the volume gets the image's /etc, never the host's.
    let r = k
        .run(&[
            "run",
            "--rm",
            "-v",
            "etcvol:/data/ln",
            "img",
            "cat",
            "/etc/passwd",
        ])
        .ok();
    let theirs = out(&k, &["run", "--rm", "busybox", "cat", "/etc/passwd"]);
    assert_eq!(r.stdout, theirs);
    let v: serde_json::Value =
        serde_json::from_str(&out(&k, &["volume", "inspect", "etcvol"])).unwrap();
    let mp = std::path::PathBuf::from(v[0]["Mountpoint"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(mp.join("passwd")).unwrap(), theirs);
    k.run(&["volume", "rm", "etcvol"]).ok();
    k.run(&["system", "check"]).ok();
    // A second container sees what the first wrote; the volume is not
    // filled again (it is not empty).
    k.run(&[
        "run",
        "--name",
        "writer",
        "-v",
        "vol1:/data",
        "img",
        "sh",
        "-c",
        "rm /data/seed",
    ])
    .ok();
    assert_eq!(
        out(
            &k,
            &[
                "run",
                "--rm",
                "--volumes-from",
                "writer",
                "busybox",
                "ls",
                "/data"
            ]
        ),
        "ln\nnew\n"
    );
    assert_eq!(
        out(
            &k,
            &[
                "run",
                "--rm",
                "--volumes-from",
                "writer",
                "busybox",
                "cat",
                "/data/new"
            ]
        ),
        "written\n"
    );
    k.run(&[
        "run",
        "--rm",
        "--volumes-from",
        "writer:ro",
        "busybox",
        "touch",
        "/data/x",
    ])
    .code(1);
    // --mount names the same volume.
    assert_eq!(
        out(
            &k,
            &[
                "run",
                "--rm",
                "--mount",
                "type=volume,source=vol1,target=/v,readonly",
                "busybox",
                "cat",
                "/v/new"
            ]
        ),
        "written\n"
    );
    // kiln cp reads and writes the volume where the container mounts it.
    let h = k.dir.path().join("fromvol");
    k.run(&["cp", "writer:/data/new", h.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(&h).unwrap(), "written\n");
    k.run(&[
        "cp",
        "writer:/data",
        h.with_extension("dir").to_str().unwrap(),
    ])
    .ok();
    assert!(h.with_extension("dir").join("new").is_file());
    k.run(&["cp", h.to_str().unwrap(), "writer:/data/copied"])
        .ok();
    assert_eq!(
        out(
            &k,
            &[
                "run",
                "--rm",
                "-v",
                "vol1:/v",
                "busybox",
                "cat",
                "/v/copied"
            ]
        ),
        "written\n"
    );
    // In use: refused, naming the container.
    let r = k.run(&["volume", "rm", "vol1"]).code(1);
    assert!(r.stderr.contains("writer"), "{}", r.stderr);
    // (vol1 and the writer's anonymous /anon.)
    assert_eq!(volumes(&k).len(), 2);
    k.run(&["rm", "-v", "writer"]).ok();
    k.run(&["volume", "rm", "vol1"]).ok();
    assert!(volumes(&k).is_empty());
    k.run(&["volume", "rm", "vol1"]).code(1);
    k.run(&["volume", "rm", "-f", "vol1"]).ok();
}

#[test]
fn volume_commands() {
    let Some(k) = setup() else { return };
    k.run(&["volume", "create", "--label", "team=db", "v2"])
        .ok();
    let v: serde_json::Value =
        serde_json::from_str(&out(&k, &["volume", "inspect", "v2"])).unwrap();
    assert_eq!(v[0]["Name"], "v2");
    assert_eq!(v[0]["Labels"]["team"], "db");
    assert_eq!(v[0]["Driver"], "local");
    let mp = v[0]["Mountpoint"].as_str().unwrap().to_string();
    assert!(mp.starts_with(k.root().to_str().unwrap()), "{mp}");
    // An existing name is kept as it is.
    std::fs::write(format!("{mp}/f"), "x").unwrap();
    k.run(&["volume", "create", "v2"]).ok();
    assert!(std::path::Path::new(&format!("{mp}/f")).exists());
    // A volume with content is not filled from the image.
    assert_eq!(
        out(&k, &["run", "--rm", "-v", "v2:/data", "img", "ls", "/data"]),
        "f\n"
    );
    for bad in ["a", "_x", "a/b", "../x"] {
        let r = k.run(&["volume", "create", bad]).code(125);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    }
    k.run(&["volume", "inspect", "nope"]).code(125);
    let ls = out(&k, &["volume", "ls"]);
    assert!(
        ls.starts_with("DRIVER") && ls.contains("local") && ls.contains("v2"),
        "{ls}"
    );
    // Filters.
    k.run(&["volume", "create", "v3"]).ok();
    k.run(&["run", "--name", "user3", "-v", "v3:/x", "busybox", "true"])
        .ok();
    assert_eq!(
        out(&k, &["volume", "ls", "-q", "-f", "dangling=true"]),
        "v2\n"
    );
    assert_eq!(
        out(&k, &["volume", "ls", "-q", "-f", "dangling=false"]),
        "v3\n"
    );
    assert_eq!(
        out(&k, &["volume", "ls", "-q", "-f", "label=team=db"]),
        "v2\n"
    );
    assert_eq!(
        out(
            &k,
            &["volume", "ls", "-q", "-f", "label=team", "-f", "name=3"]
        ),
        ""
    );
    k.run(&["volume", "ls", "-f", "colour=red"]).code(125);
    k.run(&["rm", "user3"]).ok();
    k.run(&["volume", "rm", "v3"]).ok();
    // prune: anonymous volumes by default, named ones too with --all.
    k.run(&["run", "--name", "keep", "img", "true"]).ok();
    k.run(&["rm", "keep"]).ok();
    assert_eq!(
        volumes(&k).len(),
        2,
        "rm without -v keeps the anonymous volume"
    );
    k.run(&["volume", "prune", "-f"]).ok();
    assert_eq!(volumes(&k), ["v2"]);
    k.run(&["volume", "prune", "-a", "-f"]).ok();
    assert!(volumes(&k).is_empty());
    // system check: a half-made volume of a dead process is removed with
    // --repair; a directory without a record is reported, never removed.
    k.run(&["system", "check"]).ok();
    let vdir = k.root().join("kiln/volumes");
    std::fs::create_dir_all(vdir.join(".tmp-x1-999999999/_data")).unwrap();
    std::fs::create_dir_all(vdir.join("broken/_data")).unwrap();
    let r = k.run(&["system", "check"]).code(1);
    assert!(
        r.stdout.contains(".tmp-x1-999999999") && r.stdout.contains("broken"),
        "{}",
        r.stdout
    );
    k.run(&["system", "check", "--repair"]).code(1);
    assert!(!vdir.join(".tmp-x1-999999999").exists());
    assert!(vdir.join("broken/_data").exists());
    std::fs::remove_dir_all(vdir.join("broken")).unwrap();
    k.run(&["system", "check"]).ok();
}

#[test]
fn anonymous_volumes_go_with_rm_v_and_rm() {
    let Some(k) = setup() else { return };
    // The image's VOLUME /anon gets one, and so does -v /scratch.
    k.run(&[
        "run",
        "--name",
        "a1",
        "-v",
        "/scratch",
        "img",
        "sh",
        "-c",
        "echo hi > /anon/f; echo s > /scratch/g",
    ])
    .ok();
    let names = volumes(&k);
    assert_eq!(names.len(), 2);
    let found: Vec<String> = names
        .iter()
        .map(|n| {
            let v: serde_json::Value =
                serde_json::from_str(&out(&k, &["volume", "inspect", n])).unwrap();
            let mp = v[0]["Mountpoint"].as_str().unwrap().to_string();
            let mut files: Vec<String> = std::fs::read_dir(&mp)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            files.join(",")
        })
        .collect();
    let mut found = found;
    found.sort();
    assert_eq!(found, ["f", "g"]);
    // An anonymous volume in use is kept too.
    let r = k.run(&["volume", "rm", &names[0]]).code(1);
    assert!(r.stderr.contains("a1"), "{}", r.stderr);
    k.run(&["rm", "-v", "a1"]).ok();
    assert!(volumes(&k).is_empty());
    k.run(&["run", "--rm", "-v", "/scratch", "img", "true"])
        .ok();
    assert!(volumes(&k).is_empty());
    // Detached --rm too, once the monitor removed the container.
    k.run(&["run", "-d", "--rm", "-v", "/scratch", "img", "true"])
        .ok();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !volumes(&k).is_empty() {
        assert!(
            std::time::Instant::now() < end,
            "anonymous volumes left: {:?}",
            volumes(&k)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn mount_flags_are_checked() {
    let Some(k) = setup() else { return };
    let host = k.dir.path().join("h");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("f"), "host\n").unwrap();
    let bind = format!("type=bind,source={},target=/h,readonly", host.display());
    assert_eq!(
        out(
            &k,
            &["run", "--rm", "--mount", &bind, "busybox", "cat", "/h/f"]
        ),
        "host\n"
    );
    k.run(&["run", "--rm", "--mount", &bind, "busybox", "touch", "/h/x"])
        .code(1);
    assert_eq!(
        out(
            &k,
            &[
                "run",
                "--rm",
                "--mount",
                "type=tmpfs,target=/t",
                "busybox",
                "sh",
                "-c",
                "touch /t/a && echo ok"
            ]
        ),
        "ok\n"
    );
    for bad in [
        "type=bind,source=/tmp,target=/t,colour=red",
        "type=volume,source=v1",
        "type=nfs,target=/t",
        "type=bind,source=/no/such/dir,target=/t",
        "type=volume,source=a/b,target=/t",
    ] {
        let r = k
            .run(&["run", "--rm", "--mount", bad, "busybox", "true"])
            .code(125);
        assert_eq!(r.stderr.lines().count(), 1, "{bad}: {}", r.stderr);
    }
    k.run(&["run", "--rm", "--volumes-from", "nope", "busybox", "true"])
        .code(125);
    // A volume mount without a source is anonymous: gone with --rm.
    assert_eq!(
        out(
            &k,
            &[
                "run",
                "--rm",
                "--mount",
                "type=volume,target=/a2",
                "busybox",
                "sh",
                "-c",
                "touch /a2/f && echo ok"
            ]
        ),
        "ok\n"
    );
    // Nothing was left behind by the refused runs.
    assert!(volumes(&k).is_empty());
    assert_eq!(out(&k, &["ps", "-a", "-q"]), "");
}

/// Runs kiln with `input` on standard input and returns its output bytes.
fn run_bytes(k: &Kiln, args: &[&str], input: &[u8]) -> (i32, Vec<u8>, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = k
        .cmd()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        o.stdout,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn tar_names(data: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(data);
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn cp_both_ways_stays_inside_the_container() {
    let Some(k) = setup() else { return };
    let h = k.dir.path().join("host");
    std::fs::create_dir(&h).unwrap();
    let hs = |p: &str| h.join(p).to_str().unwrap().to_string();
    // The container makes a link to /etc, a dangling link into /etc, and
    // files of its own.
    k.run(&[
        "run",
        "--name",
        "cc",
        "img",
        "sh",
        "-c",
        "ln -s /etc /evil; ln -s /etc/kiln-cp-dangling /evil2; mkdir /d; echo in > /d/f",
    ])
    .ok();

    // Out: a file to a new name, a directory into an existing one, a
    // directory's contents to a new one, an image file with its owner
    // and mode.
    k.run(&["cp", "cc:/d/f", &hs("out.txt")]).ok();
    assert_eq!(std::fs::read_to_string(h.join("out.txt")).unwrap(), "in\n");
    k.run(&["cp", "cc:/d", &format!("{}/", h.display())]).ok();
    assert_eq!(std::fs::read_to_string(h.join("d/f")).unwrap(), "in\n");
    k.run(&["cp", "cc:/d/.", &hs("new")]).ok();
    assert_eq!(std::fs::read_to_string(h.join("new/f")).unwrap(), "in\n");
    k.run(&["cp", "cc:/data/seed", &hs("seed")]).ok();
    {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(h.join("seed")).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (5, 6, 0o640));
    }
    k.run(&["cp", "cc:/d/f", &format!("{}/nodir/", h.display())])
        .code(125);
    k.run(&["cp", "cc:/nope", &hs("x")]).code(125);
    k.run(&["cp", "cc:/d/f/.", &hs("new")]).code(125);
    // Reading follows the container's symlinks inside its root: this is
    // the image's /etc/passwd, not the host's.
    k.run(&["cp", "cc:/data/ln/passwd", &hs("passwd")]).ok();
    let theirs = out(&k, &["run", "--rm", "busybox", "cat", "/etc/passwd"]);
    assert_eq!(std::fs::read_to_string(h.join("passwd")).unwrap(), theirs);
    // The last component is copied as a link unless -L.
    k.run(&["cp", "cc:/evil", &hs("link")]).ok();
    assert_eq!(
        std::fs::read_link(h.join("link")).unwrap().to_str(),
        Some("/etc")
    );

    // In: through /evil (-> /etc) and /evil2 (-> /etc/kiln-cp-dangling)
    // the container's /etc gets the files; the host's never does.
    let probe = format!("kiln-cp-probe-{}", std::process::id());
    std::fs::write(h.join("probe"), "probe\n").unwrap();
    assert!(!std::path::Path::new("/etc").join(&probe).exists());
    k.run(&["cp", &hs("probe"), &format!("cc:/evil/{probe}")])
        .ok();
    k.run(&["cp", &hs("probe"), "cc:/evil2"]).ok();
    assert!(
        !std::path::Path::new("/etc").join(&probe).exists(),
        "wrote the host's /etc"
    );
    assert!(
        !std::path::Path::new("/etc/kiln-cp-dangling").exists(),
        "wrote the host's /etc"
    );
    k.run(&["commit", "cc", "after"]).ok();
    assert_eq!(
        out(
            &k,
            &[
                "run",
                "--rm",
                "after",
                "cat",
                &format!("/etc/{probe}"),
                "/etc/kiln-cp-dangling"
            ]
        ),
        "probe\nprobe\n"
    );
    // A directory goes into an existing one, or becomes a new one.
    std::fs::create_dir(h.join("tree")).unwrap();
    std::fs::write(h.join("tree/a"), "a\n").unwrap();
    k.run(&["cp", &hs("tree"), "cc:/d"]).ok();
    k.run(&["cp", &format!("{}/.", hs("tree")), "cc:/fresh"])
        .ok();
    k.run(&["cp", &hs("tree"), "cc:/d/f"]).code(125);

    // Tars both ways.
    let (code, tar, err) = run_bytes(&k, &["cp", "cc:/d", "-"], b"");
    assert_eq!(code, 0, "{err}");
    let mut names = tar_names(&tar);
    names.sort();
    assert_eq!(names, ["d", "d/f", "d/tree", "d/tree/a"]);
    let mut b = tar::Builder::new(Vec::new());
    let mut hd = tar::Header::new_gnu();
    hd.set_size(3);
    hd.set_uid(0);
    hd.set_gid(0);
    hd.set_mtime(0);
    hd.set_mode(0o644);
    b.append_data(&mut hd, "x.txt", &b"tar"[..]).unwrap();
    let good = b.into_inner().unwrap();
    let (code, _, err) = run_bytes(&k, &["cp", "-", "cc:/d"], &good);
    assert_eq!(code, 0, "{err}");
    let mut b = tar::Builder::new(Vec::new());
    let mut hd = tar::Header::new_gnu();
    hd.set_size(3);
    hd.set_uid(0);
    hd.set_gid(0);
    hd.set_mtime(0);
    // The tar crate refuses to write `..`; set the name bytes directly.
    hd.as_old_mut().name[..9].copy_from_slice(b"../escape");
    hd.set_mode(0o644);
    hd.set_cksum();
    b.append(&hd, &b"bad"[..]).unwrap();
    let bad = b.into_inner().unwrap();
    let (code, _, _) = run_bytes(&k, &["cp", "-", "cc:/d"], &bad);
    assert_eq!(code, 125);
    let (_, back, _) = run_bytes(&k, &["cp", "cc:/d/x.txt", "-"], b"");
    let mut ar = tar::Archive::new(&back[..]);
    let mut e = ar.entries().unwrap().next().unwrap().unwrap();
    let mut s = String::new();
    std::io::Read::read_to_string(&mut e, &mut s).unwrap();
    assert_eq!(s, "tar");
}

#[test]
fn cp_reads_a_running_container() {
    let Some(k) = setup() else { return };
    k.run(&[
        "run",
        "-d",
        "--name",
        "rr",
        "img",
        "sh",
        "-c",
        "echo live > /live; sleep 1000",
    ])
    .ok();
    let dest = k.dir.path().join("live");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if k.run(&["cp", "rr:/live", dest.to_str().unwrap()]).code == 0
            && std::fs::read_to_string(&dest).unwrap_or_default() == "live\n"
        {
            break;
        }
        assert!(
            std::time::Instant::now() < end,
            "cp from a running container"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    k.run(&["rm", "-f", "-v", "rr"]).ok();
}

#[test]
fn diff_lists_the_upper_directory() {
    let Some(k) = setup() else { return };
    k.run(&[
        "run",
        "--name",
        "dd",
        "img",
        "sh",
        "-c",
        "echo new > /newfile; echo x >> /etc/passwd; rm /bin/vi; rm /data/seed; mkdir -p /n/m",
    ])
    .ok();
    assert_eq!(
        out(&k, &["diff", "dd"]),
        "C /bin\nD /bin/vi\nC /data\nD /data/seed\nC /etc\nC /etc/passwd\nA /n\nA /n/m\nA /newfile\n"
    );
    // A directory removed and made again is opaque in the upper
    // directory: what it had before and lacks now is deleted.
    k.run(&[
        "run",
        "--name",
        "op",
        "img",
        "sh",
        "-c",
        "rm -rf /data && mkdir /data && echo n > /data/new",
    ])
    .ok();
    assert_eq!(
        out(&k, &["diff", "op"]),
        "C /data\nD /data/ln\nA /data/new\nD /data/seed\n"
    );
    k.run(&["diff", "nope"]).code(125);
}
