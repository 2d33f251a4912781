//! Mount points a container needs but its image lacks (`/proc`, the
//! `/etc` files the runner binds, `-v` and `RUN --mount` targets). The
//! runner would create them in the upper directory, where they do not
//! belong: they are not the container's changes. One planner,
//! [`MountPoints::missing`], decides which are absent from the layer stack
//! (honouring whiteouts: a path an upper layer deleted is absent); where
//! the stubs go depends on how long the upper directory lives:
//!
//! - a container keeps its upper directory while it runs (`commit` and
//!   `export` read it then), so its stubs go into an init layer beneath it,
//!   docker's way ([`MountPoints::create_in`]);
//! - a build step's upper directory becomes its layer once the step ends,
//!   and BuildKit lets the runtime create the stubs and removes them after
//!   (its `MountStubsCleaner`): stubs placed in a layer beneath would give
//!   their parent directories the stub's mode and owner in the merged view,
//!   which BuildKit's layers do not show ([`MountPoints::remove_from`]).

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};

use runner::spec::MountSpec;

use crate::error::{Error, Result};
use crate::layers::LayerStack;

/// Directories every container mounts over.
pub const CONTAINER_DIRS: [&str; 3] = ["proc", "sys", "dev"];
/// The files `kiln run` binds (BuildKit binds the first and last only).
pub const CONTAINER_FILES: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];
/// The files a build step binds.
pub const BUILD_FILES: [&str; 2] = ["etc/hosts", "etc/resolv.conf"];

/// One mount point: a path relative to the root, and whether it is a
/// directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPoint {
    pub rel: String,
    pub dir: bool,
}

/// The mount points a container lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountPoints(pub Vec<MountPoint>);

impl MountPoints {
    /// The directories `dirs`, the files `files` and the targets of
    /// `mounts` that `stack` does not have.
    pub fn missing(
        stack: &LayerStack,
        dirs: &[&str],
        files: &[&str],
        mounts: &[MountSpec],
    ) -> MountPoints {
        let wanted = dirs
            .iter()
            .map(|d| (d.to_string(), true))
            .chain(files.iter().map(|f| (f.to_string(), false)))
            .chain(mounts.iter().map(|m| match m {
                MountSpec::Bind {
                    source,
                    destination,
                    ..
                } => (rel(destination), source.is_dir()),
                MountSpec::Tmpfs { destination, .. } => (rel(destination), true),
            }));
        MountPoints(
            wanted
                // Where the runner will find the target: through the
                // image's links (`/var/run -> /run`), not beside them. A
                // target that loops or goes through a file gets no stub
                // (which would hide the link): the runner names the error.
                .filter_map(|(r, dir)| Some((stack.resolve_found(&r)?, dir)))
                .filter(|((r, found), _)| !r.is_empty() && !found)
                .map(|((rel, _), dir)| MountPoint { rel, dir })
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Creates each mount point in the init layer `init` (parents as
    /// directories).
    pub fn create_in(&self, init: &Path) -> Result<()> {
        for m in &self.0 {
            let p = init.join(&m.rel);
            let parent = p.parent().unwrap_or(init);
            fs::create_dir_all(parent).map_err(Error::io(parent))?;
            let res = if m.dir {
                fs::create_dir_all(&p)
            } else {
                fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&p)
                    .map(drop)
            };
            res.map_err(Error::io(&p))?;
        }
        Ok(())
    }

    /// Removes from `upper` the mount points the runner created there (an
    /// empty file or directory where `lowers` has nothing), and the parents
    /// made only to hold them. What a mount showed there (a secret, a
    /// cache) was never written to `upper`. The runner made them as real
    /// directories and files: the walk follows no symlink (a step may have
    /// put one there, pointing anywhere on the host), and what one hides
    /// is left alone.
    pub fn remove_from(&self, upper: &Path, lowers: &LayerStack) {
        for s in &self.0 {
            let _ = remove_stub(upper, &s.rel, lowers);
        }
    }
}

fn remove_stub(upper: &Path, rel: &str, lowers: &LayerStack) -> io::Result<()> {
    let names: Vec<&str> = rel
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    let Some((last, parents)) = names.split_last() else {
        return Ok(());
    };
    if names.contains(&"..") {
        return Ok(());
    }
    // `dirs[i]` holds `names[i]`: the upper directory, then each parent.
    let mut dirs = vec![rfs::open(upper, DIR_FLAGS, Mode::empty())?];
    for name in parents {
        let fd = rfs::openat(&dirs[dirs.len() - 1], *name, DIR_FLAGS, Mode::empty())?;
        dirs.push(fd);
    }
    let parent = &dirs[dirs.len() - 1];
    let st = rfs::statat(parent, *last, AtFlags::SYMLINK_NOFOLLOW)?;
    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
    let empty = if is_dir {
        let fd = rfs::openat(parent, *last, DIR_FLAGS, Mode::empty())?;
        dir_is_empty(fd)?
    } else {
        st.st_size == 0
    };
    if !empty {
        return Ok(());
    }
    let flags = if is_dir {
        AtFlags::REMOVEDIR
    } else {
        AtFlags::empty()
    };
    rfs::unlinkat(parent, *last, flags)?;
    for i in (0..parents.len()).rev() {
        if lowers.exists(&names[..=i].join("/"))
            || rfs::unlinkat(&dirs[i], names[i], AtFlags::REMOVEDIR).is_err()
        {
            break;
        }
    }
    Ok(())
}

fn dir_is_empty(fd: OwnedFd) -> io::Result<bool> {
    for e in rfs::Dir::read_from(&fd)? {
        let e = e?;
        if !matches!(e.file_name().to_bytes(), b"." | b"..") {
            return Ok(false);
        }
    }
    Ok(true)
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The destination relative to the root, cleaned as the runner cleans it
/// (`..` stops at the root), so a stub never lands outside its layer.
fn rel(destination: &str) -> String {
    crate::options::clean_abs(destination)
        .trim_start_matches('/')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::tests::{layer, root, whiteout};

    /// The bug of `kiln run`'s old `in_lowers` (src/commands/ctr.rs), which
    /// ignored whiteouts: a mount point an upper layer deleted counted as
    /// present, so no init-layer stub was made and the runner created it in
    /// the container's upper directory, where `commit` picked it up.
    #[test]
    fn a_whited_out_mount_point_is_missing() {
        if !root() {
            return;
        }
        let t = tempfile::tempdir().unwrap();
        let base = layer(t.path(), "l1", &["etc/hosts", "etc/hostname", "srv/data/"]);
        let top = layer(t.path(), "l2", &[]);
        whiteout(&top, "etc/hosts");
        whiteout(&top, "srv");
        let stack = LayerStack::new(vec![base, top]);
        let mounts = [MountSpec::Tmpfs {
            destination: "/srv/data".into(),
            options: Vec::new(),
        }];
        let got = MountPoints::missing(&stack, &[], &CONTAINER_FILES, &mounts);
        let rels: Vec<&str> = got.0.iter().map(|m| m.rel.as_str()).collect();
        assert_eq!(rels, ["etc/hosts", "etc/resolv.conf", "srv/data"]);
        assert!(got.0[2].dir && !got.0[0].dir);

        let init = t.path().join("init");
        got.create_in(&init).unwrap();
        assert!(init.join("etc/hosts").is_file());
        assert!(init.join("srv/data").is_dir());
        assert!(!init.join("etc/hostname").exists());
    }

    #[test]
    fn stubs_the_runner_made_are_removed_with_their_parents() {
        let t = tempfile::tempdir().unwrap();
        let base = layer(t.path(), "l1", &["etc/hosts", "root/"]);
        let stack = LayerStack::new(vec![base]);
        let mounts = [MountSpec::Tmpfs {
            destination: "/root/.cache/go".into(),
            options: Vec::new(),
        }];
        let stubs = MountPoints::missing(&stack, &[], &BUILD_FILES, &mounts);
        let upper = layer(
            t.path(),
            "upper",
            &["etc/resolv.conf", "root/.cache/go/", "root/kept"],
        );
        stubs.remove_from(&upper, &stack);
        assert!(!upper.join("etc/resolv.conf").exists());
        assert!(!upper.join("root/.cache").exists());
        assert!(upper.join("root/kept").exists());
    }

    /// A step that replaced a stub's parent by a link to the host must not
    /// make kiln delete (empty) host files and directories through it.
    #[test]
    fn removing_stubs_follows_no_link() {
        let t = tempfile::tempdir().unwrap();
        let host = layer(t.path(), "host", &["etc/resolv.conf", "root/.cache/go/"]);
        let stack = LayerStack::new(vec![layer(t.path(), "l1", &[])]);
        let mounts = [MountSpec::Tmpfs {
            destination: "/root/.cache/go".into(),
            options: Vec::new(),
        }];
        let stubs = MountPoints::missing(&stack, &[], &BUILD_FILES, &mounts);
        let upper = layer(t.path(), "upper", &[]);
        std::os::unix::fs::symlink(host.join("etc"), upper.join("etc")).unwrap();
        std::os::unix::fs::symlink(host.join("root/.cache"), upper.join("root")).unwrap();
        stubs.remove_from(&upper, &stack);
        assert!(host.join("etc/resolv.conf").exists());
        assert!(host.join("root/.cache/go").exists());
        assert!(upper.join("etc").is_symlink() && upper.join("root").is_symlink());
    }

    #[test]
    fn destinations_stay_under_the_root() {
        let dest = "/../../x/./../y";
        assert_eq!(rel(dest), "y");
    }

    /// A target behind an image's link gets its stub where the link leads
    /// (as the runner, resolving inside the root, will look for it): a
    /// real `var/run` directory in the init layer would hide the image's
    /// `/var/run -> /run`.
    #[test]
    fn stubs_go_where_the_images_links_lead() {
        let t = tempfile::tempdir().unwrap();
        let base = layer(t.path(), "l1", &["run/", "etc/"]);
        std::os::unix::fs::symlink("/run", base.join("run-link")).unwrap();
        fs::create_dir_all(base.join("var")).unwrap();
        std::os::unix::fs::symlink("../run", base.join("var/run")).unwrap();
        let stack = LayerStack::new(vec![base]);
        let mounts = [MountSpec::Tmpfs {
            destination: "/var/run/sock".into(),
            options: Vec::new(),
        }];
        let stubs = MountPoints::missing(&stack, &["run-link/d"], &[], &mounts);
        let rels: Vec<&str> = stubs.0.iter().map(|m| m.rel.as_str()).collect();
        assert_eq!(rels, ["run/d", "run/sock"]);
        std::os::unix::fs::symlink("loop", stack.lowers[0].join("loop")).unwrap();
        assert!(MountPoints::missing(&stack, &["loop/d"], &[], &[]).is_empty());
    }
}
