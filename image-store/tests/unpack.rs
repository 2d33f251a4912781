//! The unpacker never writes outside its target, whatever the tar says.

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use image_store::unpack::{unpack, UnpackOptions, Whiteouts};

/// A tar entry with a raw name (the `tar` crate's builder refuses `..`).
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    link: &str,
    data: &[u8],
) {
    raw_entry_bytes(b, name.as_bytes(), kind, link, data)
}

fn raw_entry_bytes(
    b: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    kind: tar::EntryType,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    {
        let g = h.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name);
        g.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    h.set_cksum();
    b.append(&h, data).unwrap();
}

fn tar_of(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (n, k, l, d) in entries {
        raw_entry(&mut b, n, *k, l, d);
    }
    b.into_inner().unwrap()
}

use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

fn opts(whiteouts: Whiteouts) -> UnpackOptions {
    UnpackOptions {
        whiteouts,
        ..Default::default()
    }
}

#[test]
fn dotdot_is_rejected_and_writes_nothing_outside() {
    let top = tempfile::tempdir().unwrap();
    let dest = top.path().join("rootfs");
    fs::create_dir(&dest).unwrap();
    let t = tar_of(&[("../escape", F, "", b"x")]);
    let err = unpack(Cursor::new(t), &dest, opts(Whiteouts::Overlay)).unwrap_err();
    assert!(err.to_string().contains("escapes the root"), "{err}");
    assert!(!top.path().join("escape").exists());
}

#[test]
fn absolute_names_land_inside() {
    let top = tempfile::tempdir().unwrap();
    let dest = top.path().join("rootfs");
    fs::create_dir(&dest).unwrap();
    let t = tar_of(&[("/abs/file", F, "", b"hello")]);
    unpack(Cursor::new(t), &dest, opts(Whiteouts::Overlay)).unwrap();
    assert_eq!(fs::read(dest.join("abs/file")).unwrap(), b"hello");
}

#[test]
fn writes_through_escaping_symlinks_stay_inside() {
    let top = tempfile::tempdir().unwrap();
    let dest = top.path().join("rootfs");
    let outside = top.path().join("outside");
    fs::create_dir(&dest).unwrap();
    fs::create_dir(&outside).unwrap();
    let rel_out = "../outside";
    let abs_out = outside.to_str().unwrap().to_string();
    // Dangling inside the root (there is no /outside there): an error, as
    // docker's chrooted untar gives, and nothing written anywhere.
    let t = tar_of(&[("rel", S, rel_out, b""), ("rel/pwned", F, "", b"1")]);
    assert!(unpack(Cursor::new(t), &dest, opts(Whiteouts::Overlay)).is_err());
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "wrote outside");
    fs::remove_dir_all(&dest).unwrap();
    fs::create_dir(&dest).unwrap();
    let t = tar_of(&[
        ("outside/", D, "", b""),
        ("rel", S, rel_out, b""),
        ("rel/pwned", F, "", b"1"),
        (abs_out.trim_start_matches('/'), D, "", b""),
        ("abs", S, &abs_out, b""),
        ("abs/pwned", F, "", b"2"),
        ("root", S, "/", b""),
        ("root/pwned-root", F, "", b"3"),
    ]);
    unpack(Cursor::new(t), &dest, opts(Whiteouts::Overlay)).unwrap();
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "wrote outside");
    // `../outside` from the root is `/outside` inside it.
    assert_eq!(fs::read(dest.join("outside/pwned")).unwrap(), b"1");
    assert_eq!(
        fs::read(dest.join(abs_out.trim_start_matches('/')).join("pwned")).unwrap(),
        b"2"
    );
    assert_eq!(fs::read(dest.join("pwned-root")).unwrap(), b"3");
    assert!(!Path::new("/pwned-root").exists());
}

/// The same escapes through a recording unpack (a build's COPY layer)
/// and a container's unpack of a compressed layer, whose small files are
/// made on threads of their own: a directory of files still queued
/// there, replaced by a link out of the root, takes the files after it
/// inside the root, and nothing lands outside.
#[test]
fn a_recording_unpack_writes_through_escaping_symlinks_inside() {
    let top = tempfile::tempdir().unwrap();
    let dest = top.path().join("rootfs");
    let outside = top.path().join("outside");
    fs::create_dir(&dest).unwrap();
    fs::create_dir(&outside).unwrap();
    let abs_out = outside.to_str().unwrap().to_string();
    let mut entries: Vec<(String, tar::EntryType, String, Vec<u8>)> =
        vec![("d/".into(), D, String::new(), Vec::new())];
    // More than one batch of the files thread, all pending when `d` goes.
    for i in 0..600 {
        entries.push((format!("d/f{i:03}"), F, String::new(), b"queued".to_vec()));
    }
    // Where `d` leads, made inside the root (a link resolves in it).
    let inside = abs_out.trim_start_matches('/').to_string();
    // Each of its directories named, so none takes the unpack's time.
    let mut at = String::new();
    for part in inside.split('/') {
        at.push_str(part);
        at.push('/');
        entries.push((at.clone(), D, String::new(), Vec::new()));
    }
    entries.push(("d".into(), S, abs_out.clone(), Vec::new()));
    entries.push(("d/pwned".into(), F, String::new(), b"1".to_vec()));
    entries.push(("up".into(), S, "../../../..".into(), Vec::new()));
    entries.push(("up/pwned-up".into(), F, String::new(), b"2".to_vec()));
    let list: Vec<(&str, tar::EntryType, &str, &[u8])> = entries
        .iter()
        .map(|(n, k, l, d)| (n.as_str(), *k, l.as_str(), d.as_slice()))
        .collect();
    let t = tar_of(&list);
    let result = image_store::unpack::unpack_recording(
        Cursor::new(&t),
        &dest,
        opts(Whiteouts::Overlay),
        None,
        None,
    );
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "wrote outside");
    assert!(!top.path().join("pwned-up").exists(), "wrote outside");
    assert!(!Path::new("/pwned-up").exists(), "wrote outside");
    result.unwrap();
    assert_eq!(fs::read(dest.join(&inside).join("pwned")).unwrap(), b"1");
    assert_eq!(fs::read(dest.join("pwned-up")).unwrap(), b"2");
    assert!(fs::symlink_metadata(dest.join("d")).unwrap().is_symlink());
    let plain = top.path().join("plain");
    fs::create_dir(&plain).unwrap();
    unpack(Cursor::new(&t), &plain, opts(Whiteouts::Overlay)).unwrap();
    same_tree(&dest, &plain);

    // And through a container's unpack of the layer pulled compressed:
    // inflated on one thread, its files made on two others.
    use std::io::Write as _;
    let store = image_store::Store::open(top.path().join("store")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&t).unwrap();
    let desc = store
        .write_blob(
            image_store::model::media::OCI_LAYER_GZIP,
            &gz.finish().unwrap(),
        )
        .unwrap();
    let got = store
        .unpacked_layer(&desc, &image_store::Digest::of_bytes(&t))
        .unwrap()
        .remove(0);
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "wrote outside");
    assert!(!top.path().join("pwned-up").exists(), "wrote outside");
    same_tree(&got, &plain);
}

#[test]
fn hard_links_cannot_reach_outside() {
    let top = tempfile::tempdir().unwrap();
    let dest = top.path().join("rootfs");
    fs::create_dir(&dest).unwrap();
    let passwd_links = fs::metadata("/etc/passwd").unwrap().nlink();
    let t = tar_of(&[("evil", H, "/etc/passwd", b"")]);
    assert!(unpack(Cursor::new(t), &dest, opts(Whiteouts::Overlay)).is_err());
    let t = tar_of(&[("evil", H, "../../../../etc/passwd", b"")]);
    assert!(unpack(Cursor::new(t), &dest, opts(Whiteouts::Overlay)).is_err());
    assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), passwd_links);
    let t = tar_of(&[("a", F, "", b"same"), ("b", H, "a", b"")]);
    unpack(Cursor::new(t), &dest, opts(Whiteouts::Overlay)).unwrap();
    assert_eq!(fs::metadata(dest.join("b")).unwrap().nlink(), 2);
}

#[test]
fn an_entry_replaces_a_symlink_instead_of_following_it() {
    let top = tempfile::tempdir().unwrap();
    let dest = top.path().join("rootfs");
    let victim = top.path().join("victim");
    fs::create_dir(&dest).unwrap();
    fs::write(&victim, b"keep").unwrap();
    let t = tar_of(&[
        ("f", S, victim.to_str().unwrap(), b""),
        ("f", F, "", b"new"),
    ]);
    unpack(Cursor::new(t), &dest, opts(Whiteouts::Overlay)).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
    assert_eq!(fs::read(dest.join("f")).unwrap(), b"new");
}

#[test]
fn whiteouts_in_overlay_form() {
    let dest = tempfile::tempdir().unwrap();
    let t = tar_of(&[
        ("d/", D, "", b""),
        ("d/.wh..wh..opq", F, "", b""),
        ("d/.wh.gone", F, "", b""),
    ]);
    unpack(Cursor::new(t), dest.path(), opts(Whiteouts::Overlay)).unwrap();
    let m = fs::symlink_metadata(dest.path().join("d/gone")).unwrap();
    assert!(m.file_type().is_char_device());
    assert_eq!(m.rdev(), 0);
    let out = std::process::Command::new("getfattr")
        .args(["--only-values", "-n", "trusted.overlay.opaque"])
        .arg(dest.path().join("d"))
        .output();
    if let Ok(out) = out {
        if out.status.success() {
            assert_eq!(out.stdout, b"y");
        }
    }
}

#[test]
fn whiteouts_applied_onto_a_tree() {
    let dest = tempfile::tempdir().unwrap();
    let base = tar_of(&[
        ("a/", D, "", b""),
        ("a/keep", F, "", b"k"),
        ("a/drop", F, "", b"d"),
        ("o/", D, "", b""),
        ("o/old", F, "", b"o"),
    ]);
    unpack(Cursor::new(base), dest.path(), opts(Whiteouts::Delete)).unwrap();
    let upper = tar_of(&[
        ("a/.wh.drop", F, "", b""),
        ("o/", D, "", b""),
        ("o/new", F, "", b"n"),
        ("o/.wh..wh..opq", F, "", b""),
    ]);
    unpack(Cursor::new(upper), dest.path(), opts(Whiteouts::Delete)).unwrap();
    assert!(dest.path().join("a/keep").exists());
    assert!(!dest.path().join("a/drop").exists());
    assert!(dest.path().join("o/new").exists());
    assert!(!dest.path().join("o/old").exists());
}

/// The store around the target of an unpack: a sibling layer that a
/// whiteout of `..` would delete.
fn with_victim() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let top = tempfile::tempdir().unwrap();
    let dest = top.path().join("layers/new");
    let victim = top.path().join("layers/victim/file");
    fs::create_dir_all(&dest).unwrap();
    fs::create_dir_all(victim.parent().unwrap()).unwrap();
    fs::write(&victim, b"victim").unwrap();
    (top, dest, victim)
}

#[test]
fn whiteouts_of_dot_dot_and_dot_are_rejected() {
    for name in [".wh...", "d/.wh...", ".wh..", "d/.wh..", ".wh.", "d/.wh."] {
        for mode in [Whiteouts::Overlay, Whiteouts::Delete] {
            let (_top, dest, victim) = with_victim();
            let t = tar_of(&[("d/", D, "", b""), (name, F, "", b"")]);
            let err = unpack(Cursor::new(t), &dest, opts(mode)).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.contains(name) && msg.contains("whiteout") && !msg.contains('\n'),
                "{name}: {msg}"
            );
            assert_eq!(fs::read(&victim).unwrap(), b"victim", "{name} {mode:?}");
            assert!(dest.is_dir(), "{name} {mode:?}");
        }
    }
}

#[test]
fn hard_links_to_whiteouts_are_rejected() {
    let (_top, dest, victim) = with_victim();
    let t = tar_of(&[
        ("d/", D, "", b""),
        ("d/.wh.x", F, "", b""),
        ("l", H, "d/.wh.x", b""),
    ]);
    let err = unpack(Cursor::new(t), &dest, opts(Whiteouts::Overlay)).unwrap_err();
    assert!(
        err.to_string().contains("hard link to the whiteout"),
        "{err}"
    );
    assert!(victim.exists());
}

#[test]
fn directory_times_are_set_inside_the_root_only() {
    let top = tempfile::tempdir().unwrap();
    let dest = top.path().join("rootfs");
    let host = top.path().join("host");
    fs::create_dir_all(host.join("sub")).unwrap();
    fs::create_dir(&dest).unwrap();
    let before = fs::metadata(host.join("sub")).unwrap().mtime();
    let t = tar_of(&[
        ("dd/", D, "", b""),
        ("dd/sub/", D, "", b""),
        ("dd", S, host.to_str().unwrap(), b""),
    ]);
    unpack(Cursor::new(t), &dest, opts(Whiteouts::Overlay)).unwrap();
    assert_eq!(
        fs::metadata(host.join("sub")).unwrap().mtime(),
        before,
        "the host directory's time was changed"
    );
    assert_ne!(before, 1_700_000_000);
    assert!(fs::symlink_metadata(dest.join("dd"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn names_are_kept_as_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let dest = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    raw_entry_bytes(&mut b, b"n\xff", F, "", b"one");
    raw_entry_bytes(&mut b, b"n\xfe", F, "", b"two");
    let t = b.into_inner().unwrap();
    unpack(Cursor::new(t), dest.path(), opts(Whiteouts::Overlay)).unwrap();
    let p = |n: &[u8]| dest.path().join(std::ffi::OsStr::from_bytes(n));
    assert_eq!(fs::read(p(b"n\xff")).unwrap(), b"one");
    assert_eq!(fs::read(p(b"n\xfe")).unwrap(), b"two");
    assert_eq!(fs::read_dir(dest.path()).unwrap().count(), 2);
}

#[test]
fn unsupported_entry_types_are_shown_readably() {
    let dest = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    raw_entry(&mut b, "vol", tar::EntryType::new(b'V'), "", b"");
    let t = b.into_inner().unwrap();
    let err = unpack(Cursor::new(t), dest.path(), opts(Whiteouts::Overlay)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tar entry \"vol\": unsupported tar entry type 'V' (86)"
    );
}

#[test]
fn the_unpack_cache_checks_the_diff_id() {
    let top = tempfile::tempdir().unwrap();
    let store = image_store::Store::open(top.path().join("store")).unwrap();
    let victim = tar_of(&[("bin/", D, "", b""), ("bin/sh", F, "", b"victim")]);
    let evil = tar_of(&[("bin/", D, "", b""), ("bin/sh", F, "", b"evil")]);
    let victim_id = image_store::Digest::of_bytes(&victim);
    let evil_desc = store
        .write_blob(image_store::model::media::OCI_LAYER, &evil)
        .unwrap();
    // The evil layer claims the victim's diff ID: refused, nothing cached.
    let err = store.unpacked_layer(&evil_desc, &victim_id).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&evil_desc.digest.to_string()) && msg.contains(&victim_id.to_string()),
        "{msg}"
    );
    assert!(!store.layers_dir().join(victim_id.hex()).exists());
    let victim_desc = store
        .write_blob(image_store::model::media::OCI_LAYER, &victim)
        .unwrap();
    let dirs = store.unpacked_layer(&victim_desc, &victim_id).unwrap();
    assert_eq!(dirs.len(), 1, "a whole layer: {dirs:?}");
    assert_eq!(fs::read(dirs[0].join("bin/sh")).unwrap(), b"victim");
}

#[test]
fn garbage_layers_are_named_in_one_line() {
    let top = tempfile::tempdir().unwrap();
    let store = image_store::Store::open(top.path().join("store")).unwrap();
    let mut junk = vec![0xffu8; 1024];
    junk[..4].copy_from_slice(b"\x01\x02\n\x1b");
    let desc = store
        .write_blob(image_store::model::media::OCI_LAYER, &junk)
        .unwrap();
    let err = store
        .unpacked_layer(&desc, &image_store::Digest::of_bytes(&junk))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&desc.digest.to_string()), "{msg}");
    assert!(
        !msg.contains('\n') && !msg.contains('\x1b') && !msg.contains('\u{fffd}'),
        "{msg:?}"
    );
}

/// An entry with its own mode and owner.
fn owned_entry(
    b: &mut tar::Builder<Vec<u8>>,
    name: &str,
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(if kind.is_file() { 1 } else { 0 });
    h.set_mtime(1_700_000_000);
    h.set_uid(uid);
    h.set_gid(gid);
    let data: &[u8] = if kind.is_file() { b"x" } else { b"" };
    b.append_data(&mut h, name, data).unwrap();
}

// The unpacker skips chown and chmod for files whose create already gave
// the right owner and mode; these are the cases where it must not.
#[test]
fn a_run_of_files_keeps_every_mode_and_owner() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("SKIPPED: owners need root");
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let files = [
        ("f/plain", 0o644, 0, 0),
        ("f/exec", 0o755, 0, 0),
        ("f/readonly", 0o444, 0, 0),
        ("f/private", 0o600, 0, 0),
        ("f/group-write", 0o664, 0, 0),
        ("f/world-write", 0o666, 0, 0),
        ("f/setuid", 0o4755, 0, 0),
        ("f/setgid", 0o2755, 0, 0),
        ("f/sticky", 0o1644, 0, 0),
        ("f/user", 0o644, 1000, 1000),
        ("f/group", 0o640, 0, 42),
        ("f/setuid-user", 0o4750, 1000, 42),
    ];
    owned_entry(&mut b, "f/", tar::EntryType::Directory, 0o755, 0, 0);
    for (n, m, u, g) in files {
        owned_entry(&mut b, n, tar::EntryType::Regular, m, u, g);
    }
    // A set-group-ID directory hands its group to new files: a file the
    // tar gives group 0 must still end with group 0.
    owned_entry(&mut b, "g/", tar::EntryType::Directory, 0o2775, 0, 123);
    owned_entry(&mut b, "g/root", tar::EntryType::Regular, 0o644, 0, 0);
    owned_entry(&mut b, "g/other", tar::EntryType::Regular, 0o644, 0, 123);
    let t = b.into_inner().unwrap();
    unpack(Cursor::new(t), dest.path(), opts(Whiteouts::Overlay)).unwrap();
    for (n, m, u, g) in files {
        let md = fs::symlink_metadata(dest.path().join(n)).unwrap();
        assert_eq!(md.mode() & 0o7777, m, "{n}: mode");
        assert_eq!((md.uid(), md.gid()), (u as u32, g as u32), "{n}: owner");
    }
    let g = fs::metadata(dest.path().join("g")).unwrap();
    assert_eq!((g.mode() & 0o7777, g.gid()), (0o2775, 123));
    assert_eq!(fs::metadata(dest.path().join("g/root")).unwrap().gid(), 0);
    assert_eq!(
        fs::metadata(dest.path().join("g/other")).unwrap().gid(),
        123
    );
}

#[test]
fn files_replace_whatever_has_their_name() {
    let top = tempfile::tempdir().unwrap();
    let dest = top.path().join("rootfs");
    let victim = top.path().join("victim");
    fs::create_dir(&dest).unwrap();
    fs::write(&victim, b"keep").unwrap();
    let t = tar_of(&[
        ("d/", D, "", b""),
        ("d/dir/", D, "", b""),
        ("d/dir/inner", F, "", b"1"),
        ("d/file", F, "", b"old"),
        ("d/link", S, victim.to_str().unwrap(), b""),
        ("d/a", F, "", b"a"),
        ("d/dir", F, "", b"was a dir"),
        ("d/file", F, "", b"new"),
        ("d/link", F, "", b"was a link"),
    ]);
    unpack(Cursor::new(t), &dest, opts(Whiteouts::Overlay)).unwrap();
    assert_eq!(fs::read(dest.join("d/dir")).unwrap(), b"was a dir");
    assert_eq!(fs::read(dest.join("d/file")).unwrap(), b"new");
    assert_eq!(fs::read(dest.join("d/link")).unwrap(), b"was a link");
    assert_eq!(fs::read(&victim).unwrap(), b"keep");
}

// Files that follow an entry which replaced or removed their directory
// land where the path now leads, never in the directory that was removed.
#[test]
fn files_after_their_directory_moved_land_where_the_path_leads() {
    let dest = tempfile::tempdir().unwrap();
    let t = tar_of(&[
        ("d/", D, "", b""),
        ("d/a", F, "", b"a"),
        ("e/", D, "", b""),
        ("d", S, "e", b""),
        ("d/b", F, "", b"b"),
    ]);
    unpack(Cursor::new(t), dest.path(), opts(Whiteouts::Overlay)).unwrap();
    assert_eq!(fs::read(dest.path().join("e/b")).unwrap(), b"b");
    assert!(!dest.path().join("e/a").exists());

    let dest = tempfile::tempdir().unwrap();
    let t = tar_of(&[
        ("w/", D, "", b""),
        ("w/a", F, "", b"a"),
        (".wh.w", F, "", b""),
        ("w/b", F, "", b"b"),
    ]);
    unpack(Cursor::new(t), dest.path(), opts(Whiteouts::Delete)).unwrap();
    assert_eq!(fs::read(dest.path().join("w/b")).unwrap(), b"b");
    assert!(!dest.path().join("w/a").exists());
}

/// A layer made again by the same build step, with one file edited: the
/// unpack links the files whose recorded facts match from the earlier
/// layer (one inode for both) and writes the others; a hard-linked pair,
/// a file whose mode changed and a file named twice are written anew.
#[test]
fn a_similar_layer_links_its_unchanged_files() {
    let top = tempfile::tempdir().unwrap();
    let store = image_store::Store::open(top.path().join("store")).unwrap();
    let layer = |entries: &[(&str, tar::EntryType, &str, &[u8])]| {
        let t = tar_of(entries);
        let id = image_store::Digest::of_bytes(&t);
        let desc = store
            .write_blob(image_store::model::media::OCI_LAYER, &t)
            .unwrap();
        (desc, id)
    };
    let (a, a_id) = layer(&[
        ("ctx/", D, "", b""),
        ("ctx/same", F, "", b"same"),
        ("ctx/edited", F, "", b"before"),
        ("ctx/linked", F, "", b"pair"),
        ("ctx/link2", H, "ctx/linked", b""),
        ("ctx/sub/", D, "", b""),
        ("ctx/sub/", D, "", b""),
    ]);
    let dir_a = store
        .unpacked_layer_like(&a, &a_id, Some(&a_id))
        .unwrap()
        .remove(0);
    let facts = store.layer_files(&a_id).expect("facts recorded");
    assert!(facts.get(b"ctx/same").is_some());
    assert!(facts.get(b"ctx/linked").is_none() && facts.get(b"ctx/link2").is_none());
    // A layer that names a file twice, or has whiteouts, records nothing:
    // what they replace or remove is not followed.
    type Entries<'a> = &'a [(&'a str, tar::EntryType, &'a str, &'a [u8])];
    let twice: Entries = &[("ctx/twice", F, "", b"one"), ("ctx/twice", F, "", b"two")];
    let whiteout: Entries = &[("ctx/f", F, "", b"one"), ("ctx/.wh.g", F, "", b"")];
    for entries in [twice, whiteout] {
        let (d, d_id) = layer(entries);
        store.unpacked_layer_like(&d, &d_id, Some(&d_id)).unwrap();
        assert!(store.layer_files(&d_id).is_none());
    }

    let (b, b_id) = layer(&[
        ("ctx/", D, "", b""),
        ("ctx/same", F, "", b"same"),
        ("ctx/edited", F, "", b"after!"),
        ("ctx/linked", F, "", b"pair"),
        ("ctx/twice", F, "", b"two"),
        ("ctx/sub/", D, "", b""),
    ]);
    let dir_b = store
        .unpacked_layer_like(&b, &b_id, Some(&a_id))
        .unwrap()
        .remove(0);
    let ino = |d: &Path, n: &str| fs::metadata(d.join(n)).unwrap().ino();
    assert_eq!(ino(&dir_a, "ctx/same"), ino(&dir_b, "ctx/same"));
    for n in ["ctx/edited", "ctx/linked"] {
        assert_ne!(ino(&dir_a, n), ino(&dir_b, n), "{n}");
    }
    assert_eq!(fs::read(dir_b.join("ctx/edited")).unwrap(), b"after!");
    assert_eq!(fs::read(dir_a.join("ctx/edited")).unwrap(), b"before");
    assert_eq!(fs::read(dir_b.join("ctx/twice")).unwrap(), b"two");
    // The new layer's facts carry on, for the next edit.
    assert!(store.layer_files(&b_id).unwrap().get(b"ctx/same").is_some());

    // Same content, other mode: not the same file.
    let mut t = tar::Builder::new(Vec::new());
    raw_entry(&mut t, "ctx/", D, "", b"");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(F);
    h.set_mode(0o600);
    h.set_size(4);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    t.append_data(&mut h, "ctx/same", &b"same"[..]).unwrap();
    let t = t.into_inner().unwrap();
    let c_id = image_store::Digest::of_bytes(&t);
    let c = store
        .write_blob(image_store::model::media::OCI_LAYER, &t)
        .unwrap();
    let dir_c = store
        .unpacked_layer_like(&c, &c_id, Some(&b_id))
        .unwrap()
        .remove(0);
    assert_ne!(ino(&dir_b, "ctx/same"), ino(&dir_c, "ctx/same"));
    assert_eq!(
        fs::metadata(dir_c.join("ctx/same")).unwrap().mode() & 0o7777,
        0o600
    );
}

/// Damaged facts are not trusted: every file is written.
#[test]
fn damaged_layer_facts_are_ignored() {
    let top = tempfile::tempdir().unwrap();
    let store = image_store::Store::open(top.path().join("store")).unwrap();
    let t = tar_of(&[("f", F, "", b"data")]);
    let a_id = image_store::Digest::of_bytes(&t);
    let a = store
        .write_blob(image_store::model::media::OCI_LAYER, &t)
        .unwrap();
    let dir_a = store
        .unpacked_layer_like(&a, &a_id, Some(&a_id))
        .unwrap()
        .remove(0);
    let p = store.layer_files_dir().join(a_id.hex());
    let mut data = fs::read(&p).unwrap();
    let n = data.len();
    data[n - 10] ^= 1;
    fs::write(&p, &data).unwrap();
    assert!(store.layer_files(&a_id).is_none());
    let t = tar_of(&[("f", F, "", b"data"), ("g", F, "", b"new")]);
    let b_id = image_store::Digest::of_bytes(&t);
    let b = store
        .write_blob(image_store::model::media::OCI_LAYER, &t)
        .unwrap();
    let dir_b = store
        .unpacked_layer_like(&b, &b_id, Some(&a_id))
        .unwrap()
        .remove(0);
    assert_ne!(
        fs::metadata(dir_a.join("f")).unwrap().ino(),
        fs::metadata(dir_b.join("f")).unwrap().ino()
    );
    assert_eq!(fs::read(dir_b.join("f")).unwrap(), b"data");
}

/// A layer unpacked while its blob is written is the layer a later unpack
/// of the blob gives, installed under the blob's digest with its file
/// facts; and files of the layer it is like are linked, not written.
#[test]
fn a_layer_unpacked_while_written_is_installed_as_its_unpack() {
    use std::io::Write;
    let top = tempfile::tempdir().unwrap();
    let store = image_store::Store::open(top.path().join("store")).unwrap();
    let write = |t: &[u8], like: Option<&image_store::Digest>| {
        let mut w = store.unpacking_writer(store.blob_writer().unwrap(), like, Default::default());
        // In odd pieces, past the thread's chunk size.
        for piece in t.chunks(100_003) {
            w.write_all(piece).unwrap();
        }
        let (blob, installed) = w.finish().unwrap();
        assert!(installed, "the unpacked layer is in place");
        let id = blob.digest().clone();
        image_store::store::commit_pending(vec![blob]).unwrap();
        id
    };
    let big = vec![7u8; 700_000];
    let a = tar_of(&[
        ("ctx/", D, "", b""),
        ("ctx/same", F, "", b"same"),
        ("ctx/big", F, "", &big),
        ("ctx/link", S, "same", b""),
    ]);
    let a_id = write(&a, None);
    assert_eq!(a_id, image_store::Digest::of_bytes(&a));
    let dir_a = store.layers_dir().join(a_id.hex());
    assert_eq!(fs::read(dir_a.join("ctx/big")).unwrap(), big);
    assert_eq!(
        fs::read_link(dir_a.join("ctx/link")).unwrap(),
        Path::new("same")
    );
    assert!(store.layer_files(&a_id).unwrap().get(b"ctx/same").is_some());
    // What a plain unpack of the blob makes: the same tree.
    let plain = top.path().join("plain");
    fs::create_dir(&plain).unwrap();
    unpack(Cursor::new(&a), &plain, opts(Whiteouts::Overlay)).unwrap();
    for n in ["ctx", "ctx/same", "ctx/big", "ctx/link"] {
        let (x, y) = (
            fs::symlink_metadata(dir_a.join(n)).unwrap(),
            fs::symlink_metadata(plain.join(n)).unwrap(),
        );
        assert_eq!(
            (x.mode(), x.uid(), x.gid(), x.mtime(), x.size()),
            (y.mode(), y.uid(), y.gid(), y.mtime(), y.size()),
            "{n}"
        );
    }
    // The later unpack finds it there.
    let desc = image_store::Descriptor::new(
        image_store::model::media::OCI_LAYER,
        a_id.clone(),
        a.len() as u64,
    );
    assert_eq!(
        fs::canonicalize(&store.unpacked_layer(&desc, &a_id).unwrap()[0]).unwrap(),
        fs::canonicalize(&dir_a).unwrap()
    );

    // Made again with one more file: as root a delta over the layer before
    // (it does not have the unchanged file at all), else that file linked.
    let b = tar_of(&[
        ("ctx/", D, "", b""),
        ("ctx/same", F, "", b"same"),
        ("ctx/big", F, "", &big),
        ("ctx/link", S, "same", b""),
        ("ctx/new", F, "", b"new"),
    ]);
    let b_id = write(&b, Some(&a_id));
    let dir_b = store.layers_dir().join(b_id.hex());
    assert_eq!(fs::read(dir_b.join("ctx/new")).unwrap(), b"new");
    if rustix::process::geteuid().is_root() {
        assert!(!dir_b.join("ctx/same").exists());
    } else {
        let ino = |d: &Path| fs::metadata(d.join("ctx/same")).unwrap().ino();
        assert_eq!(ino(&dir_a), ino(&dir_b));
    }
    // No temp directory is left behind.
    let temps: Vec<_> = fs::read_dir(store.layers_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "{temps:?}");
}

/// A tar the unpack refuses still becomes a blob (the writer is the source
/// of truth), and no unpacked layer is installed for it: the later unpack
/// reports the error.
#[test]
fn a_failed_unpack_while_written_installs_nothing() {
    use std::io::Write;
    let top = tempfile::tempdir().unwrap();
    let store = image_store::Store::open(top.path().join("store")).unwrap();
    let t = tar_of(&[
        ("../escape", F, "", b"x"),
        ("after", F, "", &[1u8; 600_000]),
    ]);
    let mut w = store.unpacking_writer(store.blob_writer().unwrap(), None, Default::default());
    w.write_all(&t).unwrap();
    let (blob, installed) = w.finish().unwrap();
    assert!(!installed, "a failed unpack installs nothing");
    let id = blob.digest().clone();
    image_store::store::commit_pending(vec![blob]).unwrap();
    assert!(store.blob_path(&id).exists());
    assert!(!store.layers_dir().join(id.hex()).exists());
    assert!(!top.path().join("store/kiln/escape").exists());
    let desc = image_store::Descriptor::new(
        image_store::model::media::OCI_LAYER,
        id.clone(),
        t.len() as u64,
    );
    let err = store.unpacked_layer(&desc, &id).unwrap_err();
    assert!(err.to_string().contains("escapes the root"), "{err}");
}

/// Everything a tree says, by relative path: type, mode, owner, mtime,
/// size, content or link target, and which earlier path shares its inode.
fn tree_facts(root: &Path) -> Vec<String> {
    fn walk(
        root: &Path,
        rel: &Path,
        inodes: &mut std::collections::HashMap<u64, String>,
        out: &mut Vec<String>,
    ) {
        let mut names: Vec<_> = fs::read_dir(root.join(rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            let r = rel.join(&n);
            let p = root.join(&r);
            let m = fs::symlink_metadata(&p).unwrap();
            let what = if m.is_symlink() {
                format!("-> {:?}", fs::read_link(&p).unwrap())
            } else if m.is_file() {
                image_store::Digest::of_bytes(&fs::read(&p).unwrap()).to_string()
            } else {
                String::new()
            };
            let shared = if m.is_file() {
                let first = inodes.entry(m.ino()).or_insert(r.display().to_string());
                format!("inode of {first}")
            } else {
                String::new()
            };
            out.push(format!(
                "{} {:o} {}:{} {}.{} {} {what} {shared}",
                r.display(),
                m.mode(),
                m.uid(),
                m.gid(),
                // A whiteout's time is when it was made.
                if m.file_type().is_char_device() {
                    0
                } else {
                    m.mtime()
                },
                if m.file_type().is_char_device() {
                    0
                } else {
                    m.mtime_nsec()
                },
                m.size()
            ));
            if m.is_dir() {
                walk(root, &r, inodes, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut Default::default(), &mut out);
    out
}

/// A layer of many small files over many directories (more than the
/// unpack hands to its file-making thread at a time), with modes, owners,
/// times, large files, symlinks, when `links` hard links to files just
/// made and a directory named twice, and, when `again`, last a file named
/// again and one replaced by a directory (the layer then records no
/// facts).
fn many_files_tar(edit: &[u8], again: bool) -> Vec<u8> {
    many_files_tar_with(edit, again, true)
}

fn many_files_tar_with(edit: &[u8], again: bool, links: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut entry =
        |name: &str, kind: tar::EntryType, mode: u32, owner: u64, link: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_size(data.len() as u64);
            h.set_mtime(1_600_000_000 + name.len() as u64 * 1000 + data.len() as u64);
            h.set_uid(owner);
            h.set_gid(owner);
            if !link.is_empty() {
                h.set_link_name(link).unwrap();
            }
            b.append_data(&mut h, name, data).unwrap();
        };
    let owner = |i: usize| {
        if rustix::process::geteuid().is_root() {
            (i % 3) as u64 * 1000
        } else {
            0
        }
    };
    entry("ctx/", D, 0o755, 0, "", b"");
    for d in 0..12 {
        let dir = format!("ctx/d{d:02}");
        entry(
            &format!("{dir}/"),
            D,
            if d == 3 { 0o2775 } else { 0o750 },
            owner(d),
            "",
            b"",
        );
        for i in 0..60 {
            let name = format!("{dir}/f{i:02}");
            let mode = [0o644, 0o755, 0o444, 0o600, 0o4755, 0o1644, 0o666][i % 7];
            let data = if d == 5 && i == 7 {
                edit.to_vec()
            } else if i == 13 {
                vec![b'x'; 20_000 + d] // above the recorded size
            } else {
                format!("{name} {}", "y".repeat(i * 37)).into_bytes()
            };
            entry(&name, F, mode, owner(i), "", &data);
            if i % 20 == 19 {
                entry(
                    &format!("{dir}/s{i}"),
                    S,
                    0o777,
                    0,
                    &format!("f{:02}", i - 1),
                    b"",
                );
                if links {
                    entry(&format!("{dir}/h{i}"), H, 0, 0, &name, b"");
                }
            }
        }
        if d == 7 && links {
            // A directory named again: only its metadata.
            entry("ctx/d02/", D, 0o700, 0, "", b"");
        }
    }
    if again {
        entry("ctx/d04/f05", F, 0o640, 0, "", b"named again");
        entry("ctx/d06/f06", D, 0o755, 0, "", b"");
        entry("ctx/d06/f06/in", F, 0o644, 0, "", b"in");
        // A directory of files replaced by a symlink: the files after it
        // land where it leads.
        entry("ctx/d08", S, 0o777, 0, "d09", b"");
        entry("ctx/d08/f70", F, 0o644, 0, "", b"through the link");
        if rustix::process::geteuid().is_root() {
            entry("ctx/d10/.wh.f03", F, 0o644, 0, "", b"");
        }
    }
    b.into_inner().unwrap()
}

/// Trees equal, or the first line that differs.
fn same_tree(got: &Path, want: &Path) {
    let (got, want) = (tree_facts(got), tree_facts(want));
    let diff = got.iter().zip(&want).find(|(g, w)| g != w);
    assert!(diff.is_none(), "{diff:?}");
    assert_eq!(got.len(), want.len());
}

/// The unpack that records file facts (and makes small files on a thread
/// of its own, or links them from a similar layer) makes exactly the tree
/// the plain unpack makes: content, modes, owners, times and hard links.
#[test]
fn a_recording_unpack_makes_the_tree_a_plain_one_makes() {
    let top = tempfile::tempdir().unwrap();
    let store = image_store::Store::open(top.path().join("store")).unwrap();
    let plain = |t: &[u8], name: &str| {
        let dir = top.path().join(name);
        fs::create_dir(&dir).unwrap();
        unpack(Cursor::new(t), &dir, opts(Whiteouts::Overlay)).unwrap();
        dir
    };
    let layer = |t: &[u8]| {
        let id = image_store::Digest::of_bytes(t);
        let desc = store
            .write_blob(image_store::model::media::OCI_LAYER, t)
            .unwrap();
        (desc, id)
    };
    let a = many_files_tar(b"before", false);
    let (a_desc, a_id) = layer(&a);
    let dir_a = store
        .unpacked_layer_like(&a_desc, &a_id, Some(&a_id))
        .unwrap()
        .remove(0);
    same_tree(&dir_a, &plain(&a, "plain-a"));
    assert!(store.layer_files(&a_id).is_some());

    // One file edited: the rest is linked from the layer before.
    let b = many_files_tar(b"after!", false);
    let (b_desc, b_id) = layer(&b);
    let dir_b = store
        .unpacked_layer_like(&b_desc, &b_id, Some(&a_id))
        .unwrap()
        .remove(0);
    same_tree(&dir_b, &plain(&b, "plain-b"));
    let ino = |d: &Path, n: &str| fs::metadata(d.join(n)).unwrap().ino();
    assert_eq!(ino(&dir_a, "ctx/d09/f30"), ino(&dir_b, "ctx/d09/f30"));
    assert_ne!(ino(&dir_a, "ctx/d05/f07"), ino(&dir_b, "ctx/d05/f07"));

    let c = many_files_tar(b"after!", true);
    let (c_desc, c_id) = layer(&c);
    let dir_c = store
        .unpacked_layer_like(&c_desc, &c_id, Some(&b_id))
        .unwrap()
        .remove(0);
    same_tree(&dir_c, &plain(&c, "plain-c"));
    assert!(store.layer_files(&c_id).is_none());
}

/// A layer unpacked for a container (no earlier layer, nothing recorded)
/// makes its small files on threads as a build's unpack does: the tree
/// is the plain unpack's, with whiteouts, hard links, paths named again
/// and a directory replaced by a symlink among more than two batches of
/// files.
#[test]
fn a_layer_unpacked_for_a_container_makes_the_tree_a_plain_one_makes() {
    let top = tempfile::tempdir().unwrap();
    let store = image_store::Store::open(top.path().join("store")).unwrap();
    for (i, again) in [false, true].into_iter().enumerate() {
        let t = many_files_tar(format!("edit {i}").as_bytes(), again);
        let id = image_store::Digest::of_bytes(&t);
        let desc = store
            .write_blob(image_store::model::media::OCI_LAYER, &t)
            .unwrap();
        let got = store.unpacked_layer(&desc, &id).unwrap().remove(0);
        let want = top.path().join(format!("plain-{i}"));
        fs::create_dir(&want).unwrap();
        unpack(Cursor::new(&t), &want, opts(Whiteouts::Overlay)).unwrap();
        same_tree(&got, &want);
        assert!(store.layer_files(&id).is_none(), "nothing is recorded");
    }
}

/// A compressed layer is inflated on a thread of its own while the unpack
/// reads it (gzip and zstd): the tree is the plain unpack's, the diff ID
/// is checked on what was inflated, and a blob that stops in the middle
/// fails naming the layer, with nothing installed.
#[test]
fn compressed_layers_are_inflated_beside_the_unpack() {
    use std::io::Write as _;
    let top = tempfile::tempdir().unwrap();
    let store = image_store::Store::open(top.path().join("store")).unwrap();
    let t = many_files_tar(b"inflated", true);
    let id = image_store::Digest::of_bytes(&t);
    let want = top.path().join("plain");
    fs::create_dir(&want).unwrap();
    unpack(Cursor::new(&t), &want, opts(Whiteouts::Overlay)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&t).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(Cursor::new(&t), 1).unwrap();
    use image_store::model::media::{OCI_LAYER_GZIP, OCI_LAYER_ZSTD};

    // Cut short: an error that names the blob, and no directory.
    let cut = store
        .write_blob(OCI_LAYER_GZIP, &gz[..gz.len() / 2])
        .unwrap();
    let err = store.unpacked_layer(&cut, &id).unwrap_err().to_string();
    assert!(err.contains(&cut.digest.to_string()), "{err}");
    assert!(!store.layers_dir().join(id.hex()).exists());
    // Whole, but claiming another diff ID: refused.
    let desc = store.write_blob(OCI_LAYER_GZIP, &gz).unwrap();
    let other = image_store::Digest::of_bytes(b"another layer");
    let err = store.unpacked_layer(&desc, &other).unwrap_err().to_string();
    assert!(err.contains(&other.to_string()), "{err}");

    for (media, blob) in [(OCI_LAYER_GZIP, &gz), (OCI_LAYER_ZSTD, &zst)] {
        let _ = fs::remove_dir_all(store.layers_dir().join(id.hex()));
        let desc = store.write_blob(media, blob).unwrap();
        let got = store.unpacked_layer(&desc, &id).unwrap().remove(0);
        same_tree(&got, &want);
    }
}

/// An unpack that records file facts takes the sha256 the stream's writer
/// vouches for a file's data (by its offset and size) instead of hashing
/// it; a vouch at another offset or for another size is not used.
#[test]
fn recorded_facts_take_the_digests_the_writer_vouches_for() {
    use image_store::layer_files::Vouched;
    use sha2::{Digest as _, Sha256};
    let t = tar_of(&[
        ("a", F, "", b"first"),
        ("b", F, "", b"second"),
        ("c", F, "", b"third"),
    ]);
    // Each data block follows its 512-byte header.
    let (a_at, b_at, c_at) = (512, 512 * 3, 512 * 5);
    assert_eq!(&t[b_at..b_at + 6], b"second");
    let told = [7u8; 32];
    let vouched = std::sync::Arc::new(Vouched::default());
    vouched.vouch(a_at as u64, 5, told);
    vouched.vouch(b_at as u64 + 1, 6, told);
    vouched.vouch(c_at as u64, 4, told);
    let top = tempfile::tempdir().unwrap();
    let dest = top.path().join("layer");
    fs::create_dir(&dest).unwrap();
    let (_, files) = image_store::unpack::unpack_recording(
        Cursor::new(&t),
        &dest,
        opts(Whiteouts::Overlay),
        None,
        Some(vouched),
    )
    .unwrap();
    let sha = |p: &[u8]| files.get(p).unwrap().sha;
    assert_eq!(sha(b"a"), told, "the vouch was not taken");
    assert_eq!(sha(b"b"), <[u8; 32]>::from(Sha256::digest(b"second")));
    assert_eq!(sha(b"c"), <[u8; 32]>::from(Sha256::digest(b"third")));
    assert_eq!(fs::read(dest.join("c")).unwrap(), b"third");
}

/// `upper` stacked on `lower` as overlayfs shows two lower directories
/// without whiteouts: files of the upper one replace, directories merge
/// and take the upper one's facts (`cp -a` of one onto a copy of the
/// other does exactly that).
fn stacked(lower: &Path, upper: &Path, out: &Path) {
    for from in [lower, upper] {
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(from.join("."))
            .arg(out)
            .status()
            .unwrap()
            .success();
        assert!(ok, "cp -a {}", from.display());
    }
}

/// The tar `t` written again entry by entry: `keep` may change an entry's
/// header, or drop it (false); `after` may add entries after it.
fn retar(
    t: &[u8],
    mut keep: impl FnMut(&Path, &mut tar::Header) -> bool,
    mut after: impl FnMut(&Path, &mut tar::Builder<Vec<u8>>),
) -> Vec<u8> {
    use std::io::Read;
    let mut out = tar::Builder::new(Vec::new());
    let mut old = tar::Archive::new(Cursor::new(t));
    for e in old.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().into_owned();
        let mut h = e.header().clone();
        if !keep(&path, &mut h) {
            continue;
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.append_data(&mut h, &path, &data[..]).unwrap();
        after(&path, &mut out);
    }
    out.into_inner().unwrap()
}

/// Regular files under `dir`, as paths relative to it.
fn files_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A layer made again by the same build step, unpacked as it is written
/// (as root), is a delta over the one before: its directory holds what
/// changed and the directories above it, the store gives both directories
/// for it, and stacked they are the tree a plain unpack makes. The next
/// edit is a delta over the same whole layer, not over the delta. A layer
/// that removes a path, or has hard links, is no delta: nothing is
/// installed as it is written, and its unpack from the blob is whole.
#[test]
fn an_edited_layer_is_unpacked_as_a_delta_over_the_one_before() {
    use sha2::Digest as _;
    use std::io::Write;
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: deltas set owners from the tar (root)");
        return;
    }
    let top = tempfile::tempdir().unwrap();
    let store = image_store::Store::open(top.path().join("store")).unwrap();
    let write = |t: &[u8], like: Option<&image_store::Digest>| {
        let mut w = store.unpacking_writer(store.blob_writer().unwrap(), like, Default::default());
        w.write_all(t).unwrap();
        let (blob, installed) = w.finish().unwrap();
        let desc = image_store::Descriptor::new(
            image_store::model::media::OCI_LAYER,
            blob.digest().clone(),
            t.len() as u64,
        );
        image_store::store::commit_pending(vec![blob]).unwrap();
        (desc, installed)
    };
    let plain = |t: &[u8], name: &str| {
        let dir = top.path().join(name);
        fs::create_dir(&dir).unwrap();
        unpack(Cursor::new(t), &dir, opts(Whiteouts::Overlay)).unwrap();
        dir
    };
    let check_stack = |dirs: &[std::path::PathBuf], t: &[u8], name: &str| {
        let out = top.path().join(format!("stacked-{name}"));
        fs::create_dir(&out).unwrap();
        match dirs {
            [whole] => stacked(whole, whole, &out),
            [base, delta] => stacked(base, delta, &out),
            _ => panic!("{dirs:?}"),
        }
        same_tree(&out, &plain(t, &format!("plain-{name}")));
    };

    let a = many_files_tar_with(b"before", false, false);
    let (a_desc, installed) = write(&a, None);
    assert!(installed);
    let a_dirs = store.unpacked_layer(&a_desc, &a_desc.digest).unwrap();
    assert_eq!(a_dirs.len(), 1);
    check_stack(&a_dirs, &a, "a");

    // One file edited.
    let b = many_files_tar_with(b"after!", false, false);
    let (b_desc, installed) = write(&b, Some(&a_desc.digest));
    assert!(installed);
    let b_dirs = store.unpacked_layer(&b_desc, &b_desc.digest).unwrap();
    assert_eq!(b_dirs.len(), 2, "{b_dirs:?}");
    assert_eq!(
        fs::canonicalize(&b_dirs[0]).unwrap(),
        fs::canonicalize(&a_dirs[0]).unwrap()
    );
    assert_eq!(files_in(&b_dirs[1]), ["ctx/d05/f07"]);
    check_stack(&b_dirs, &b, "b");
    // What `system df` counts for an image with the layer: both.
    let in_place = |d: &image_store::Digest| store.unpacked_dirs_in_place(d);
    let canon = |v: Vec<std::path::PathBuf>| -> Vec<_> {
        v.iter().map(|p| fs::canonicalize(p).unwrap()).collect()
    };
    assert_eq!(canon(in_place(&b_desc.digest)), canon(b_dirs.clone()));
    assert_eq!(canon(in_place(&a_desc.digest)), canon(a_dirs.clone()));
    assert!(in_place(&image_store::Digest::of_bytes(b"none")).is_empty());
    // Its facts: the base's, with the edit.
    let (fa, fb) = (
        store.layer_files(&a_desc.digest).unwrap(),
        store.layer_files(&b_desc.digest).unwrap(),
    );
    assert_eq!(fa.len(), fb.len());
    assert_eq!(fa.get(b"ctx/d09/f30"), fb.get(b"ctx/d09/f30"));
    let edited = |f: &image_store::layer_files::LayerFiles| f.get(b"ctx/d05/f07").unwrap().sha;
    assert_ne!(edited(&fa), edited(&fb));
    assert_eq!(
        edited(&fb),
        <[u8; 32]>::from(sha2::Sha256::digest(b"after!"))
    );

    // Edited again, a directory's mode changed and a file added in
    // another: over the whole layer, with both edits.
    let c = retar(
        &many_files_tar_with(b"again", false, false),
        |path, h| {
            if path == Path::new("ctx/d08") {
                h.set_mode(0o700);
            }
            true
        },
        |path, t| {
            if path == Path::new("ctx/d10/f59") {
                raw_entry(t, "ctx/d10/new", F, "", b"new");
            }
        },
    );
    let (c_desc, installed) = write(&c, Some(&b_desc.digest));
    assert!(installed);
    let c_dirs = store.unpacked_layer(&c_desc, &c_desc.digest).unwrap();
    assert_eq!(
        fs::canonicalize(&c_dirs[0]).unwrap(),
        fs::canonicalize(&a_dirs[0]).unwrap(),
        "a delta is over a whole layer"
    );
    assert_eq!(files_in(&c_dirs[1]), ["ctx/d05/f07", "ctx/d10/new"]);
    check_stack(&c_dirs, &c, "c");

    // A base that is not whole (no unpack makes one; a hand could): the
    // delta above it is not used, and is unpacked again, whole.
    let a_dir = store.layers_dir().join(a_desc.digest.hex());
    let claim = c_desc.digest.hex();
    rustix::fs::setxattr(
        &a_dir,
        "trusted.kiln.base",
        claim.as_bytes(),
        rustix::fs::XattrFlags::CREATE,
    )
    .unwrap();
    let whole = store.unpacked_layer(&b_desc, &b_desc.digest).unwrap();
    assert_eq!(whole.len(), 1, "{whole:?}");
    check_stack(&whole, &b, "b-whole");
    rustix::fs::removexattr(&a_dir, "trusted.kiln.base").unwrap();

    // One path fewer, or hard links: no delta; the blob's unpack is whole
    // (and links from the layer before, whole since just above).
    let fewer = retar(&b, |path, _| path != Path::new("ctx/d03/f02"), |_, _| {});
    let linked = many_files_tar_with(b"after!", false, true);
    for (name, t) in [("fewer", fewer), ("linked", linked)] {
        let (desc, installed) = write(&t, Some(&b_desc.digest));
        assert!(!installed, "{name}");
        let dirs = store
            .unpacked_layer_like(&desc, &desc.digest, Some(&b_desc.digest))
            .unwrap();
        assert_eq!(dirs.len(), 1, "{name}");
        check_stack(&dirs, &t, name);
        let ino = |d: &Path| fs::metadata(d.join("ctx/d09/f30")).unwrap().ino();
        assert_eq!(ino(&dirs[0]), ino(&whole[0]), "{name}");
    }

    // The base gone (only a crash or a hand does that): the check names
    // the delta, and the layer is unpacked again, whole.
    fs::remove_dir_all(&a_dir).unwrap();
    let rep = store.check(false).unwrap();
    let named: Vec<_> = rep
        .problems
        .iter()
        .filter(|p| p.message.contains("delta over the unpacked layer"))
        .map(|p| p.object.clone())
        .collect();
    let c_dir = store.layers_dir().join(c_desc.digest.hex());
    assert_eq!(named, [c_dir.display().to_string()], "{:?}", rep.problems);
    let again = store.unpacked_layer(&c_desc, &c_desc.digest).unwrap();
    assert_eq!(again.len(), 1);
    check_stack(&again, &c, "c-again");
}
