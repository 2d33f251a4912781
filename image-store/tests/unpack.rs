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
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
    h.set_size(data.len() as u64);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    {
        let g = h.as_gnu_mut().unwrap();
        g.name[..name.len()].copy_from_slice(name.as_bytes());
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
