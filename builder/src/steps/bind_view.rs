//! What a `RUN --mount=type=bind` of the build context (or of a directory
//! context) shows. BuildKit only ever receives the context as
//! `.dockerignore` filters it, so an ignored file (a `.env`, a key) is not
//! there to read, and a step that could read it could bake it into the
//! image. With `rw` the mount is writable, and the writes end with the
//! step.
//!
//! The raw directory is the bottom layer of an overlay; the ignored
//! entries are hidden by whiteouts in a layer above it, made in the step's
//! scratch directory. Nothing is copied, so the cost is one walk of the
//! mounted subtree and one whiteout per topmost ignored entry.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Mode};

use crate::context::BuildContext;
use crate::error::BuildError;
use crate::steps::view::View;

/// Where a bind mount's files come from, when not the raw directory.
pub(crate) enum BindSource {
    /// An overlay view: mounted until dropped, so it must outlive the step.
    Mounted(View),
    /// A filtered copy in the scratch directory, where no view can be
    /// mounted (rootless kiln has no mount namespace of its own): hard
    /// links for a read-only bind, copies for a writable one.
    Copied(PathBuf),
}

impl BindSource {
    pub(crate) fn root(&self) -> &Path {
        match self {
            BindSource::Mounted(v) => &v.root,
            BindSource::Copied(p) => p,
        }
    }
}

/// The view of `ctx` for a bind whose source is `rel` (relative to the
/// context root, resolved), made under `scratch`, when the raw directory
/// will not do: something under `rel` is ignored, or the bind is
/// writable. `None`: bind the raw directory read-only.
pub(crate) fn context_view(
    ctx: &BuildContext,
    rel: &Path,
    scratch: &Path,
    writable: bool,
) -> Result<Option<BindSource>, BuildError> {
    std::fs::create_dir_all(scratch).map_err(|e| BuildError::Io(scratch.to_path_buf(), e))?;
    let hide = scratch.join("hide");
    let hidden = if ctx.matcher().is_empty() {
        0
    } else {
        whiteout_ignored(ctx, rel, &hide)?
    };
    if hidden == 0 && !writable {
        return Ok(None);
    }
    let mut layers = vec![ctx.root().to_path_buf()];
    if hidden > 0 {
        layers.push(hide);
    }
    match View::for_bind(&layers, scratch, writable) {
        Ok(v) => Ok(Some(BindSource::Mounted(v))),
        Err(_) => {
            let copy = scratch.join("copy");
            copy_filtered(ctx, rel, &copy, writable)?;
            Ok(Some(BindSource::Copied(copy)))
        }
    }
}

/// Copies the filtered subtree at `rel` to the same place under `dest`:
/// directories and links made, files linked (read-only use) or copied.
fn copy_filtered(
    ctx: &BuildContext,
    rel: &Path,
    dest: &Path,
    writable: bool,
) -> Result<(), BuildError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = |e: &dyn std::fmt::Display| {
        BuildError::Invalid(format!("bind mount source {}: {e}", rel.display()))
    };
    let start = dest.join(rel);
    let parent = start.parent().unwrap_or(dest);
    std::fs::create_dir_all(parent).map_err(|e| BuildError::Io(parent.to_path_buf(), e))?;
    if rel.as_os_str().is_empty() {
        std::fs::create_dir_all(dest).map_err(|e| BuildError::Io(dest.to_path_buf(), e))?;
    }
    for entry in ctx.walk_from(rel).map_err(|e| shown(&e))? {
        let entry = entry.map_err(|e| shown(&e))?;
        let from = ctx.absolute(&entry.path);
        let to = dest.join(&entry.path);
        let io = |e: std::io::Error| BuildError::Io(to.clone(), e);
        let ft = entry.metadata.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&to).map_err(io)?;
            // Writable by us until the step, as copied files need.
            let mode = entry.metadata.permissions().mode() & 0o7777;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode | 0o700))
                .map_err(io)?;
        } else if ft.is_symlink() {
            let t = std::fs::read_link(&from).map_err(|e| BuildError::Io(from.clone(), e))?;
            std::os::unix::fs::symlink(t, &to).map_err(io)?;
        } else if ft.is_file() {
            // A link would let a writable bind write into the context.
            if writable || std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to).map_err(io)?;
            }
        }
    }
    Ok(())
}

/// Puts a whiteout in `hide` for every topmost entry under `rel` that the
/// filtered context lacks. Returns how many.
fn whiteout_ignored(ctx: &BuildContext, rel: &Path, hide: &Path) -> Result<usize, BuildError> {
    let shown = |e: &dyn std::fmt::Display| {
        BuildError::Invalid(format!("bind mount source {}: {e}", rel.display()))
    };
    let visible: HashSet<OsString> = ctx
        .walk_from(rel)
        .map_err(|e| shown(&e))?
        .map(|e| e.map(|e| e.path.into_os_string()))
        .collect::<Result<_, _>>()
        .map_err(|e| shown(&e))?;
    let start = ctx.root().join(rel);
    if !start.is_dir() {
        return Ok(0);
    }
    let mut walk = walkdir::WalkDir::new(&start)
        .min_depth(1)
        .follow_links(false)
        .into_iter();
    let mut count = 0;
    let mut made_dirs = Vec::new();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|e| shown(&e))?;
        let under = entry
            .path()
            .strip_prefix(ctx.root())
            .expect("the walk stays below the root");
        if visible.contains(under.as_os_str()) {
            continue;
        }
        if entry.file_type().is_dir() {
            walk.skip_current_dir();
        }
        if count == 0 {
            dir_like(ctx.root(), hide)?;
            made_dirs.push(PathBuf::new());
        }
        let at = hide.join(under);
        let mut prefix = PathBuf::new();
        for c in under.parent().into_iter().flat_map(Path::components) {
            prefix.push(c);
            let made = hide.join(&prefix);
            if !made.exists() {
                dir_like(&ctx.root().join(&prefix), &made)?;
                made_dirs.push(prefix.clone());
            }
        }
        // An overlay whiteout: a 0/0 character device.
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &at,
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .map_err(|e| BuildError::Io(at.clone(), e.into()))?;
        count += 1;
    }
    // Times last: each entry made in a directory changed its mtime.
    for rel in made_dirs.iter().rev() {
        times_like(&ctx.root().join(rel), &hide.join(rel))?;
    }
    Ok(count)
}

/// Makes `dir` with the mode and owner of `like`: overlay shows a
/// directory present in several layers with the topmost one's attributes,
/// and the topmost is ours. (Its times come last, [`times_like`].)
fn dir_like(like: &Path, dir: &Path) -> Result<(), BuildError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let md = std::fs::symlink_metadata(like).map_err(|e| BuildError::Io(like.to_path_buf(), e))?;
    let io = |e: std::io::Error| BuildError::Io(dir.to_path_buf(), e);
    std::fs::create_dir(dir).map_err(io)?;
    // As another owner the store may be unable to chown (rootless, an
    // unmapped owner); the mode still holds.
    let _ = std::os::unix::fs::lchown(dir, Some(md.uid()), Some(md.gid()));
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(md.mode() & 0o7777)).map_err(io)
}

fn times_like(like: &Path, dir: &Path) -> Result<(), BuildError> {
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::symlink_metadata(like).map_err(|e| BuildError::Io(like.to_path_buf(), e))?;
    let io = |e: std::io::Error| BuildError::Io(dir.to_path_buf(), e);
    let ts = |s: i64, ns: i64| rustix::fs::Timespec {
        tv_sec: s,
        tv_nsec: ns as _,
    };
    let times = rustix::fs::Timestamps {
        last_access: ts(md.atime(), md.atime_nsec()),
        last_modification: ts(md.mtime(), md.mtime_nsec()),
    };
    rustix::fs::utimensat(rustix::fs::CWD, dir, &times, rustix::fs::AtFlags::empty())
        .map_err(|e| io(e.into()))
}

/// The scratch directory of bind mount `n` of a step.
pub(crate) fn scratch(step_dir: &Path, n: usize) -> PathBuf {
    step_dir.join(format!("bind-{n}"))
}
