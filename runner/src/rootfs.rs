//! How the container's root filesystem is assembled: an overlay of the
//! image's unpacked layers, a plain directory, or a copy when overlay cannot
//! be mounted.

use crate::error::RunError;
use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The container's root filesystem as the caller has it on disk.
#[derive(Debug, Clone)]
pub enum Rootfs {
    /// A ready directory, used in place (writes go to it).
    Dir(PathBuf),
    /// Unpacked layer directories in image order (base layer first), plus
    /// the container's own upper and work directories (same filesystem as
    /// each other; created if missing). Whiteouts in the layers use overlay's
    /// format (0:0 character devices, `trusted.overlay.opaque`) or the OCI
    /// `.wh.` files, which the copy fallback understands as well.
    Overlay {
        lower: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
}

/// What the container child mounts as its root, prepared by the parent.
#[derive(Debug)]
pub(crate) enum RootMount {
    Overlay {
        target: CString,
        data: CString,
        /// Overlay options must fit in one page; long layer paths are made
        /// relative to this directory, which the child enters first.
        chdir: Option<CString>,
    },
    Bind {
        path: CString,
    },
}

impl RootMount {
    pub(crate) fn target(&self) -> &CString {
        match self {
            RootMount::Overlay { target, .. } => target,
            RootMount::Bind { path } => path,
        }
    }
}

fn check_overlay_path(p: &Path) -> Result<(), RunError> {
    let b = p.as_os_str().as_bytes();
    if b.iter().any(|c| matches!(c, b',' | b':' | b'\\' | 0)) {
        return Err(RunError::InvalidSpec(format!(
            "overlay layer path {} contains ',', ':' or '\\'",
            p.display()
        )));
    }
    Ok(())
}

fn common_parent(paths: &[&Path]) -> Option<PathBuf> {
    let mut common: PathBuf = paths.first()?.parent()?.to_path_buf();
    for p in &paths[1..] {
        while !p.starts_with(&common) {
            common = common.parent()?.to_path_buf();
        }
    }
    Some(common)
}

/// Overlay mount data; `lower` is base first, overlay wants topmost first.
/// With `volatile`, the marker a previous volatile mount left in the work
/// directory is removed first (the kernel refuses to mount while it exists).
pub(crate) fn overlay_data(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    volatile: bool,
) -> Result<(String, Option<PathBuf>), RunError> {
    mount_data(lower, Some((upper, work)), volatile)
}

/// Mount data of a read-only overlay of `lower` (base first, at least two
/// layers: overlay wants that without an upper directory), for views of a
/// layer stack: `lowerdir=` only. As for a container's root, when the
/// absolute paths exceed a page they are made relative to the returned
/// directory, which the mounter must make its working directory.
pub fn readonly_overlay_data(lower: &[PathBuf]) -> Result<(String, Option<PathBuf>), RunError> {
    mount_data(lower, None, false)
}

/// Mount data of a writable overlay of `lower` (base first, one layer is
/// enough) whose changes go to `upper`: for views whose writes are thrown
/// away with them (`RUN --mount=type=bind,rw`).
pub fn writable_overlay_data(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
) -> Result<(String, Option<PathBuf>), RunError> {
    mount_data(lower, Some((upper, work)), false)
}

/// `lower` (base first) with each layer once, at its topmost place. Two
/// steps that change nothing but what the runner stubs make the same layer
/// (`RUN true` twice), and overlayfs refuses a directory given twice
/// ("conflicting lowerdir path", ELOOP). The merged view is the same
/// without the lower copy: whatever it shows, the upper copy of the same
/// directory shows above every layer between them.
pub fn distinct_layers(lower: &[PathBuf]) -> Vec<PathBuf> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<PathBuf> = lower
        .iter()
        .rev()
        .filter(|p| seen.insert(p.as_path()))
        .cloned()
        .collect();
    out.reverse();
    out
}

fn mount_data(
    lower: &[PathBuf],
    rw: Option<(&Path, &Path)>,
    volatile: bool,
) -> Result<(String, Option<PathBuf>), RunError> {
    let lower = &distinct_layers(lower)[..];
    if lower.is_empty() {
        return Err(RunError::InvalidSpec(
            "overlay rootfs without lower layers".into(),
        ));
    }
    let rw_paths = rw.map(|(u, w)| [u, w]);
    let all: Vec<&Path> = lower
        .iter()
        .map(PathBuf::as_path)
        .chain(rw_paths.into_iter().flatten())
        .collect();
    for &p in &all {
        check_overlay_path(p)?;
        if !p.is_absolute() {
            return Err(RunError::InvalidSpec(format!(
                "overlay path {} is not absolute",
                p.display()
            )));
        }
    }
    let build = |base: Option<&Path>| {
        let show = |p: &Path| match base {
            Some(b) => relative(p, b).display().to_string(),
            None => p.display().to_string(),
        };
        let lowers: Vec<String> = lower.iter().rev().map(|p| show(p)).collect();
        let mut d = format!("lowerdir={}", lowers.join(":"));
        if let Some((upper, work)) = rw {
            d.push_str(&format!(",upperdir={},workdir={}", show(upper), show(work)));
        }
        if volatile {
            d.push_str(",volatile");
        }
        d
    };
    if let (true, Some((_, work))) = (volatile, rw) {
        let marker = work.join("work/incompat/volatile");
        if marker.exists() {
            fs::remove_dir_all(&marker)
                .map_err(|e| RunError::io(format!("remove {}", marker.display()), e))?;
        }
    }
    let full = build(None);
    // One page minus room for the kernel's own additions.
    if full.len() < 4000 {
        return Ok((full, None));
    }
    let base = common_parent(&all)
        .ok_or_else(|| RunError::InvalidSpec("overlay paths share no parent".into()))?;
    let short = build(Some(&base));
    if short.len() < 4000 {
        return Ok((short, Some(base)));
    }
    // Many layers, a delta's base beside each (up to twice 127): relative
    // to the layers' own directory, the upper ones reached with `..`.
    let lowers: Vec<&Path> = lower.iter().map(PathBuf::as_path).collect();
    if let Some(base) = common_parent(&lowers) {
        let shorter = build(Some(&base));
        if shorter.len() < 4000 {
            return Ok((shorter, Some(base)));
        }
    }
    Err(RunError::Unsupported(format!(
        "{} overlay layers: mount options exceed one page",
        lower.len()
    )))
}

/// `path` from `base` (both absolute): `..` up to where they part.
fn relative(path: &Path, base: &Path) -> PathBuf {
    let mut common = base;
    let mut up = 0;
    while !path.starts_with(common) {
        match common.parent() {
            Some(p) => common = p,
            None => break,
        }
        up += 1;
    }
    let mut out: PathBuf = std::iter::repeat_n("..", up).collect();
    out.push(path.strip_prefix(common).unwrap_or(path));
    out
}

/// Overlay needs at least one lower directory; an image without layers
/// gets an empty one in the container's directory.
pub(crate) fn lowers_or_empty(lower: &[PathBuf], bundle: &Path) -> Result<Vec<PathBuf>, RunError> {
    if !lower.is_empty() {
        return Ok(lower.to_vec());
    }
    let empty = bundle.join("empty-lower");
    ensure_dir(&empty)?;
    Ok(vec![empty])
}

pub(crate) fn cpath(p: &Path) -> Result<CString, RunError> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| RunError::InvalidSpec(format!("path {} contains a NUL byte", p.display())))
}

pub(crate) fn ensure_dir(p: &Path) -> Result<(), RunError> {
    fs::create_dir_all(p).map_err(|e| RunError::io(format!("create {}", p.display()), e))
}

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

fn is_opaque(dir: &Path) -> bool {
    if fs::symlink_metadata(dir.join(OPAQUE_MARKER)).is_ok() {
        return true;
    }
    let Ok(c) = cpath(dir) else { return false };
    let mut buf = [0u8; 4];
    for name in [c"trusted.overlay.opaque", c"user.overlay.opaque"] {
        // SAFETY: valid C strings and buffer.
        let n = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n == 1 && buf[0] == b'y' {
            return true;
        }
    }
    false
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

fn lchown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid))
}

/// Applies one layer directory onto `dest`, honouring whiteouts.
fn apply_layer(src: &Path, dest: &Path) -> io::Result<()> {
    if is_opaque(src) {
        for e in fs::read_dir(dest)? {
            remove_any(&e?.path())?;
        }
    }
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let name = entry.file_name();
        let name_s = name.to_string_lossy();
        if name_s == OPAQUE_MARKER {
            continue;
        }
        if let Some(hidden) = name_s.strip_prefix(WHITEOUT_PREFIX) {
            // A container may name a file `.wh...`: a whiteout of `..`
            // would delete the directory above `dest`, of `.` `dest` itself.
            if !matches!(hidden, "" | "." | "..") {
                remove_any(&dest.join(hidden))?;
            }
            continue;
        }
        let from = entry.path();
        let to = dest.join(&name);
        let md = fs::symlink_metadata(&from)?;
        let ft = md.file_type();
        if ft.is_char_device() && md.rdev() == 0 {
            remove_any(&to)?;
            continue;
        }
        if ft.is_dir() {
            match fs::symlink_metadata(&to) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    fs::remove_file(&to)?;
                    fs::create_dir(&to)?;
                }
                Err(_) => fs::create_dir(&to)?,
            }
            apply_layer(&from, &to)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(md.mode() & 0o7777))?;
            lchown(&to, md.uid(), md.gid())?;
            continue;
        }
        remove_any(&to)?;
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else if ft.is_file() {
            fs::copy(&from, &to)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(md.mode() & 0o7777))?;
        } else {
            let c = cpath(&to)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            // SAFETY: valid C string; mode and rdev copied from the source node.
            if unsafe { libc::mknod(c.as_ptr(), md.mode(), md.rdev()) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        lchown(&to, md.uid(), md.gid())?;
    }
    Ok(())
}

/// The copy-based fallback: flattens layers and upper into `dest` (which is
/// emptied first). Writes then land in `dest`, not in `upper`.
pub(crate) fn flatten(lower: &[PathBuf], upper: &Path, dest: &Path) -> Result<(), RunError> {
    let ctx = |e: io::Error| RunError::io(format!("copy rootfs into {}", dest.display()), e);
    remove_any(dest).map_err(ctx)?;
    fs::create_dir_all(dest).map_err(ctx)?;
    for l in lower.iter().map(PathBuf::as_path).chain([upper]) {
        if l.exists() {
            apply_layer(l, dest).map_err(ctx)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_lowers_are_topmost_first() {
        let (d, base) = overlay_data(
            &[PathBuf::from("/l/a"), PathBuf::from("/l/b")],
            Path::new("/c/up"),
            Path::new("/c/work"),
            false,
        )
        .unwrap();
        assert_eq!(d, "lowerdir=/l/b:/l/a,upperdir=/c/up,workdir=/c/work");
        assert!(base.is_none());
    }

    /// A layer given twice is mounted once, at its topmost place.
    #[test]
    fn a_layer_given_twice_is_mounted_once() {
        let lower: Vec<PathBuf> = ["/l/a", "/l/b", "/l/a", "/l/c", "/l/b"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let (d, _) = overlay_data(&lower, Path::new("/c/up"), Path::new("/c/work"), false).unwrap();
        assert_eq!(d, "lowerdir=/l/b:/l/c:/l/a,upperdir=/c/up,workdir=/c/work");
        let (d, _) = readonly_overlay_data(&lower).unwrap();
        assert_eq!(d, "lowerdir=/l/b:/l/c:/l/a");
    }

    #[test]
    fn long_overlay_options_become_relative() {
        let lower: Vec<PathBuf> = (0..50)
            .map(|i| PathBuf::from(format!("/var/lib/kiln/layers/{:064}", i)))
            .collect();
        let (d, base) = overlay_data(
            &lower,
            Path::new("/var/lib/kiln/c/up"),
            Path::new("/var/lib/kiln/c/w"),
            true,
        )
        .unwrap();
        assert_eq!(base, Some(PathBuf::from("/var/lib/kiln")));
        assert!(d.len() < 4000 && d.contains("upperdir=c/up"));
    }

    /// 254 short links (127 layers, each a delta over a base of its own)
    /// with the upper directories elsewhere in the store: relative to the
    /// links' directory, the upper ones through `..`.
    #[test]
    fn twice_127_short_links_fit_in_one_page() {
        let lower: Vec<PathBuf> = (0..254)
            .map(|i| PathBuf::from(format!("/var/lib/kiln/kiln/layers/l/{i:012x}")))
            .collect();
        let (d, base) = overlay_data(
            &lower,
            Path::new("/var/lib/kiln/kiln/build/1234/run-0-3/upper"),
            Path::new("/var/lib/kiln/kiln/build/1234/run-0-3/work"),
            true,
        )
        .unwrap();
        assert_eq!(base, Some(PathBuf::from("/var/lib/kiln/kiln/layers/l")));
        assert!(d.len() < 4000, "{}", d.len());
        assert!(
            d.contains(",upperdir=../../build/1234/run-0-3/upper,"),
            "{d}"
        );
        assert!(d.starts_with("lowerdir=0000000000fd:"), "{d}");
        assert_eq!(
            relative(Path::new("/a/b/c"), Path::new("/a/x/y")),
            PathBuf::from("../../b/c")
        );
        assert_eq!(
            relative(Path::new("/a/b"), Path::new("/a")),
            PathBuf::from("b")
        );
    }

    #[test]
    fn flatten_honours_whiteouts() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, up, out) = (
            t.path().join("a"),
            t.path().join("b"),
            t.path().join("up"),
            t.path().join("out"),
        );
        fs::create_dir_all(a.join("d")).unwrap();
        fs::write(a.join("d/x"), "1").unwrap();
        fs::write(a.join("gone"), "1").unwrap();
        fs::create_dir_all(b.join("d")).unwrap();
        fs::write(b.join(".wh.gone"), "").unwrap();
        fs::write(b.join("d/.wh..wh..opq"), "").unwrap();
        fs::write(b.join("d/y"), "2").unwrap();
        fs::create_dir_all(&up).unwrap();
        flatten(&[a, b], &up, &out).unwrap();
        assert!(!out.join("gone").exists());
        assert!(!out.join("d/x").exists());
        assert_eq!(fs::read_to_string(out.join("d/y")).unwrap(), "2");
    }

    /// Files a container named `.wh...` or `.wh..` in its upper directory
    /// are no whiteouts of `..` or `.`: nothing above or at `dest` goes.
    #[test]
    fn flatten_ignores_whiteouts_of_dot_and_dotdot() {
        let t = tempfile::tempdir().unwrap();
        let (a, up, out) = (
            t.path().join("a"),
            t.path().join("up"),
            t.path().join("bundle/out"),
        );
        fs::create_dir_all(a.join("d")).unwrap();
        fs::write(a.join("d/x"), "1").unwrap();
        fs::create_dir_all(up.join("d")).unwrap();
        fs::write(up.join(".wh..."), "").unwrap();
        fs::write(up.join("d/.wh..."), "").unwrap();
        fs::write(up.join("d/.wh.."), "").unwrap();
        fs::create_dir_all(t.path().join("bundle")).unwrap();
        fs::write(t.path().join("bundle/config.json"), "{}").unwrap();
        flatten(std::slice::from_ref(&a), &up, &out).unwrap();
        assert!(t.path().join("bundle/config.json").exists());
        assert_eq!(fs::read_to_string(out.join("d/x")).unwrap(), "1");
    }
}
