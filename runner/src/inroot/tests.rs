use super::*;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{symlink, FileTypeExt};

/// A layer directory `name` under `dir` with `files` (path, content; a
/// trailing `/` makes a directory) and `links` (path, target).
fn layer(dir: &Path, name: &str, files: &[(&str, &str)], links: &[(&str, &str)]) -> PathBuf {
    let l = dir.join(name);
    fs::create_dir_all(&l).unwrap();
    for (p, content) in files {
        let full = l.join(p);
        if p.ends_with('/') {
            fs::create_dir_all(&full).unwrap();
        } else {
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(&full, content).unwrap();
        }
    }
    for (p, target) in links {
        let full = l.join(p);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        symlink(target, &full).unwrap();
    }
    l
}

fn read(root: &Root, path: &str) -> io::Result<String> {
    let mut s = String::new();
    root.open(Path::new(path))?.read_to_string(&mut s)?;
    Ok(s)
}

fn read_dir_root(root: &Path, path: &str) -> io::Result<String> {
    let mut s = String::new();
    open_in_root(root, Path::new(path))?.read_to_string(&mut s)?;
    Ok(s)
}

/// A host directory with a `secret` file, and the relative climb from a
/// layer directory under `t` to it.
fn host_secret(t: &Path) -> (PathBuf, String) {
    let host = t.join("host");
    layer(t, "host", &[("secret", "host's")], &[]);
    let climb = format!("../../../../../../../../..{}", host.display());
    (host, climb)
}

#[test]
fn links_out_of_the_root_stay_inside_it() {
    let t = tempfile::tempdir().unwrap();
    let (host, climb) = host_secret(t.path());
    let abs = host.display().to_string();
    let l = layer(
        t.path(),
        "l",
        &[],
        &[
            ("etc", "/etc"),
            ("abs", &abs),
            ("rel", &climb),
            ("up", ".."),
        ],
    );
    for root in [
        Root::layers(std::slice::from_ref(&l)).unwrap(),
        Root::dir(&l).unwrap(),
    ] {
        // `etc -> /etc` is itself, inside the root: a loop, never the host's.
        let e = root.lookup(Path::new("etc/passwd"), true).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
        for p in [
            "abs/secret",
            "rel/secret",
            "up/up/abs/secret",
            "../../abs/secret",
        ] {
            let e = read(&root, p).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::NotFound, "{p}: {e}");
        }
    }
    for p in ["etc/passwd", "abs/secret", "rel/secret", "../abs/secret"] {
        assert!(read_dir_root(&l, p).is_err(), "{p}");
    }
    // The same names do exist beneath the root: found there.
    layer(
        t.path(),
        "l",
        &[(&format!("{}/secret", &abs[1..]), "image's")],
        &[],
    );
    let root = Root::dir(&l).unwrap();
    assert_eq!(read(&root, "abs/secret").unwrap(), "image's");
    assert_eq!(read(&root, "rel/secret").unwrap(), "image's");
    assert_eq!(read_dir_root(&l, "rel/secret").unwrap(), "image's");
    assert_eq!(
        root.lookup(Path::new("/up/../rel/secret"), true)
            .unwrap()
            .path,
        Path::new(&abs[1..]).join("secret")
    );
}

#[test]
fn links_inside_the_image_resolve_as_the_container_sees_them() {
    let t = tempfile::tempdir().unwrap();
    let base = layer(
        t.path(),
        "base",
        &[
            ("usr/lib/passwd", "app:x:1:1::/:/bin/sh\n"),
            ("usr/etc/group", "g\n"),
        ],
        &[],
    );
    let top = layer(
        t.path(),
        "top",
        &[("etc/", "")],
        &[
            ("etc/passwd", "/usr/lib/passwd"),
            ("conf", "usr/etc"),
            ("lib", "./usr/../usr/lib"),
        ],
    );
    let root = Root::layers(&[base, top]).unwrap();
    assert_eq!(
        read(&root, "/etc/passwd").unwrap(),
        "app:x:1:1::/:/bin/sh\n"
    );
    assert_eq!(read(&root, "conf/group").unwrap(), "g\n");
    assert_eq!(read(&root, "lib/../etc/group").unwrap(), "g\n");
    let f = root.lookup(Path::new("lib/passwd"), true).unwrap();
    assert_eq!(f.path, Path::new("usr/lib/passwd"));
    // The last link is left alone when asked.
    let l = root.lookup(Path::new("etc/passwd"), false).unwrap();
    assert!(l.metadata().unwrap().file_type().is_symlink());
    assert_eq!(l.read_link().unwrap(), Path::new("/usr/lib/passwd"));
    assert!(root
        .symlink_metadata(Path::new("conf"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(root
        .lookup(Path::new("conf"), true)
        .unwrap()
        .metadata()
        .unwrap()
        .is_dir());
    assert!(root
        .lookup(Path::new(""), true)
        .unwrap()
        .metadata()
        .unwrap()
        .is_dir());
    // A file in the middle of a path.
    let e = root
        .lookup(Path::new("usr/lib/passwd/x"), true)
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
}

#[test]
fn a_directory_hides_a_lower_layers_link() {
    let t = tempfile::tempdir().unwrap();
    let (host, _) = host_secret(t.path());
    let base = layer(t.path(), "base", &[], &[("d", &host.display().to_string())]);
    let top = layer(t.path(), "top", &[("d/other", "")], &[]);
    let root = Root::layers(&[base.clone(), top]).unwrap();
    let e = root.lookup(Path::new("d/secret"), true).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound);
    assert!(root.lookup(Path::new("d/other"), true).is_ok());
    // Alone, the base's link points at its own root's (missing) path.
    let root = Root::layers(&[base]).unwrap();
    assert!(root.lookup(Path::new("d/secret"), true).is_err());
}

#[test]
fn link_hops_are_bounded() {
    let t = tempfile::tempdir().unwrap();
    let mut links = vec![("a".to_string(), "b".to_string()), ("b".into(), "a".into())];
    for i in 0..MAX_HOPS {
        links.push((format!("c{i}"), format!("c{}", i + 1)));
    }
    let links: Vec<(&str, &str)> = links
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let l = layer(t.path(), "l", &[(&format!("c{MAX_HOPS}"), "end")], &links);
    let root = Root::dir(&l).unwrap();
    let e = root.lookup(Path::new("a"), true).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
    // c0 → … → c40: 40 hops, Linux's limit, still fine; one more is not.
    assert_eq!(read(&root, "c0").unwrap(), "end");
    assert_eq!(read_dir_root(&l, "c0").unwrap(), "end");
    symlink("c0", l.join("before")).unwrap();
    let e = root.lookup(Path::new("before"), true).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ELOOP));
}

/// An image's FIFO where a file is expected does not hang the reader.
#[test]
fn fifos_do_not_block() {
    let t = tempfile::tempdir().unwrap();
    let l = layer(t.path(), "l", &[("etc/", "")], &[]);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        l.join("etc/passwd"),
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let root = Root::dir(&l).unwrap();
    let mut s = String::new();
    let f = root.open(Path::new("etc/passwd")).unwrap();
    assert!(f.metadata().unwrap().file_type().is_fifo());
    // Nothing written, no writer: an empty read, not a wait.
    (&f).read_to_string(&mut s).unwrap();
    let f = open_in_root(&l, Path::new("etc/passwd")).unwrap();
    (&f).read_to_string(&mut s).unwrap();
    assert_eq!(s, "");
}

#[test]
fn resolve_keeps_the_missing_rest() {
    let t = tempfile::tempdir().unwrap();
    let l = layer(
        t.path(),
        "l",
        &[("run/", ""), ("usr/bin/", "")],
        &[("var/run", "/run"), ("up", "../../.."), ("loop", "loop")],
    );
    let root = Root::layers(std::slice::from_ref(&l)).unwrap();
    let r = |p: &str| root.resolve(Path::new(p)).map(|p| p.display().to_string());
    assert_eq!(r("/var/run/x/y").unwrap(), "run/x/y");
    assert_eq!(r("/var/run").unwrap(), "run");
    assert_eq!(r("/up/new/../usr/bin").unwrap(), "usr/bin");
    assert_eq!(r("/usr/new/../../x").unwrap(), "x");
    assert_eq!(r("/new/..").unwrap(), "");
    assert_eq!(r("/usr/bin").unwrap(), "usr/bin");
    assert!(r("/loop/x").is_err());
}

/// What a lookup of `path` shows: the file's content, "dir", "link" or the
/// error.
fn shows(root: &Root, path: &str) -> String {
    match root.lookup(Path::new(path), false) {
        Err(e) => format!("error {:?}", e.raw_os_error()),
        Ok(f) => {
            let m = f.metadata().unwrap();
            if m.is_dir() {
                format!("dir {}", f.path.display())
            } else if m.file_type().is_symlink() {
                format!("link {}", f.read_link().unwrap().display())
            } else {
                let mut s = String::new();
                f.open().unwrap().read_to_string(&mut s).unwrap();
                format!("file {} {s}", f.path.display())
            }
        }
    }
}

/// A build's stacks share their layers through one cache, each a layer
/// taller than the one before: what the lower layers were found to hold
/// is reused, and each stack still shows what overlayfs would, also when
/// its new top layer deletes, hides, replaces or links over names the
/// stacks below it looked up.
#[test]
fn cached_layers_show_what_fresh_ones_do() {
    // SAFETY: geteuid has no preconditions.
    let root_user = unsafe { libc::geteuid() } == 0;
    let t = tempfile::tempdir().unwrap();
    let mut dirs = vec![layer(
        t.path(),
        "l0",
        &[
            ("etc/passwd", "p0"),
            ("etc/group", "g0"),
            ("d/x", "x0"),
            ("o/old", "old"),
            ("w/deep/f", "w"),
            ("r/f", "r"),
        ],
        &[("lnk", "etc")],
    )];
    dirs.push(layer(
        t.path(),
        "l1",
        &[("etc/passwd", "p1"), ("d/y", "y1")],
        &[],
    ));
    let l2 = layer(t.path(), "l2", &[("o/new", "new"), ("r", "file now")], &[]);
    if root_user {
        // Overlay's whiteouts and opaque directories need root.
        for p in ["etc/group", "w"] {
            let w = l2.join(p);
            fs::create_dir_all(w.parent().unwrap()).unwrap();
            rustix::fs::mknodat(
                rustix::fs::CWD,
                &w,
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::from_raw_mode(0o600),
                0,
            )
            .unwrap();
        }
        rustix::fs::setxattr(
            l2.join("o"),
            "trusted.overlay.opaque",
            b"y",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    dirs.push(l2);
    dirs.push(layer(
        t.path(),
        "l3",
        &[("etc/", "")],
        &[("d/x", "../etc/passwd")],
    ));
    let paths = [
        "etc/passwd",
        "etc/group",
        "lnk/passwd",
        "d/x",
        "d/y",
        "o/old",
        "o/new",
        "w/deep/f",
        "r",
        "r/f",
        "nope/x",
        "",
    ];
    let cache = LayerCache::new();
    for n in 1..=dirs.len() {
        let fresh = Root::layers(&dirs[..n]).unwrap();
        // Twice: the second time from what the first found.
        for _ in 0..2 {
            let cached = Root::layers_cached(&dirs[..n], &cache).unwrap();
            for p in paths {
                assert_eq!(shows(&cached, p), shows(&fresh, p), "{n} layers: {p}");
            }
        }
    }
    let top = Root::layers_cached(&dirs, &cache).unwrap();
    assert_eq!(shows(&top, "d/x"), "link ../etc/passwd");
    assert_eq!(read(&top, "d/x").unwrap(), "p1");
    assert_eq!(shows(&top, "r"), "file r file now");
    if root_user {
        assert!(shows(&top, "etc/group").starts_with("error"));
        assert!(shows(&top, "o/old").starts_with("error"));
        assert!(shows(&top, "w/deep/f").starts_with("error"));
    }
}
