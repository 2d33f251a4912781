use super::*;

/// A symlink planted where a directory is expected is not followed.
#[test]
fn symlinks_in_the_way_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    let outside = t.path().join("outside");
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("ln")).unwrap();
    let w = RootWriter::open(&root, false).unwrap();
    let err = w.dir(None, &["ln".into()], &|_| None).unwrap_err();
    assert!(err.to_string().contains("not a directory"), "{err}");
    // A file put over the symlink replaces the link, not its target.
    let mut data: &[u8] = b"x";
    w.put(
        w.root(),
        OsStr::new("ln"),
        &Kind::File,
        &Attrs::default(),
        Some(&mut data),
    )
    .unwrap();
    assert!(fs::symlink_metadata(root.join("ln")).unwrap().is_file());
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}

/// A merged tree's copy keeps owners, modes and extended attributes,
/// leaves overlay's own attributes behind, and honours whiteouts.
#[test]
fn merged_copies_keep_attributes() {
    use crate::layers::tests::{layer, root, whiteout};
    use crate::merged::{Merged, Node};
    use std::os::unix::fs::PermissionsExt;
    if !root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let a = layer(t.path(), "a", &["v/f", "v/gone", "v/d/"]);
    let b = layer(t.path(), "b", &["v/"]);
    whiteout(&b, "v/gone");
    let f = a.join("v/f");
    std::os::unix::fs::chown(&f, Some(7), Some(8)).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o4750)).unwrap();
    if rfs::setxattr(&f, "user.kiln", b"1", XattrFlags::empty()).is_err() {
        eprintln!("skipping: no user xattrs on this filesystem");
        return;
    }
    rfs::setxattr(
        a.join("v/d"),
        "trusted.overlay.opaque",
        b"y",
        XattrFlags::empty(),
    )
    .unwrap();
    let m = Merged::new(&[a, b]);
    let Node::Dir(dirs) = m.lookup("v").unwrap().node else {
        panic!()
    };
    let out = t.path().join("out");
    fs::create_dir(&out).unwrap();
    let w = RootWriter::open(&out, false).unwrap();
    w.copy_merged_children(&m, w.root(), &dirs).unwrap();
    let md = fs::symlink_metadata(out.join("f")).unwrap();
    assert_eq!((md.uid(), md.gid(), md.mode() & 0o7777), (7, 8, 0o4750));
    let mut buf = [0u8; 4];
    assert_eq!(
        rfs::lgetxattr(out.join("f"), "user.kiln", &mut buf).unwrap(),
        1
    );
    assert!(rfs::lgetxattr(out.join("d"), "trusted.overlay.opaque", &mut buf).is_err());
    assert!(!out.join("gone").exists());
}

/// Files with several links stay linked in the copy, from a tree and
/// from a tar.
#[test]
fn hard_links_are_kept() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a"), "x").unwrap();
    fs::hard_link(src.join("a"), src.join("sub/b")).unwrap();
    let dst = t.path().join("dst");
    fs::create_dir(&dst).unwrap();
    let w = RootWriter::open(&dst, false).unwrap();
    w.copy_host(w.root(), OsStr::new("tree"), &src).unwrap();
    let ino = |p: &str| fs::metadata(dst.join(p)).unwrap().ino();
    assert_eq!(ino("tree/a"), ino("tree/sub/b"));

    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    b.append_data(&mut h, "f", &b"y"[..]).unwrap();
    let mut l = tar::Header::new_gnu();
    l.set_entry_type(tar::EntryType::Link);
    l.set_size(0);
    l.set_mode(0o644);
    l.set_uid(0);
    l.set_gid(0);
    l.set_mtime(0);
    b.append_link(&mut l, "d/g", "f").unwrap();
    let data = b.into_inner().unwrap();
    let x = t.path().join("x");
    fs::create_dir(&x).unwrap();
    let w = RootWriter::open(&x, false).unwrap();
    w.extract_tar(w.root(), &mut &data[..]).unwrap();
    let ino = |p: &str| fs::metadata(x.join(p)).unwrap().ino();
    assert_eq!(ino("f"), ino("d/g"));
}

/// In an upper directory, a directory made where a whiteout was is
/// opaque: the lower layers' old content stays deleted.
#[test]
fn a_directory_over_a_whiteout_is_opaque() {
    use crate::layers::tests::{root, whiteout};
    if !root() {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let upper = t.path().join("upper");
    fs::create_dir(&upper).unwrap();
    whiteout(&upper, "gone");
    let w = RootWriter::open(&upper, true).unwrap();
    let fd = w
        .dir(None, &["gone".into(), "sub".into()], &|_| None)
        .unwrap();
    drop(fd);
    let mut buf = [0u8; 2];
    let n = rfs::lgetxattr(upper.join("gone"), "trusted.overlay.opaque", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"y");
    assert!(upper.join("gone/sub").is_dir());
    // Outside an upper directory a whiteout is just a device: refused.
    whiteout(&upper, "dev");
    let plain = RootWriter::open(&upper, false).unwrap();
    assert!(plain.dir(None, &["dev".into()], &|_| None).is_err());
}
