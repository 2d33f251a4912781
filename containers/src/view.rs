//! The one way to look at a layer stack read-only: its directories stacked
//! with overlayfs in the process's private mount namespace (for
//! `COPY --from`, `RUN --mount from=` and `kiln export`). The namespace
//! dies with the process, so no view outlives it even if it is killed.
//! (A container's own root is the runner's business: it mounts a writable
//! overlay inside the container's namespace.)

use std::path::{Path, PathBuf};

use rustix::mount::{self, MountFlags, MountPropagationFlags, UnmountFlags};

/// Why a view could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("cannot create a private mount namespace: {0}")]
    Namespace(#[source] std::io::Error),
    #[error("cannot make mounts private: {0}")]
    Private(#[source] std::io::Error),
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    /// The layers cannot be named in overlay's options (a path with `,`
    /// or `:`, more than a page of them).
    #[error(transparent)]
    Options(#[from] runner::RunError),
    #[error("mounting a view of {layers} layers: {source}")]
    Mount {
        layers: usize,
        #[source]
        source: std::io::Error,
    },
}

/// Moves the calling thread into its own mount namespace with private
/// propagation. Call once, from the main thread, before views are made.
pub fn private_mount_namespace() -> Result<(), ViewError> {
    // SAFETY: a new mount namespace changes no memory this process shares;
    // it only detaches the calling thread's view of mounts.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }
        .map_err(|e| ViewError::Namespace(e.into()))?;
    mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| ViewError::Private(e.into()))?;
    Ok(())
}

/// A mounted view; unmounted on drop.
#[derive(Debug)]
pub struct View {
    pub root: PathBuf,
    mounted: bool,
}

impl View {
    /// Stacks `layers` (base first) read-only at `target` (made if
    /// missing). No layer gives an empty directory; one layer needs no
    /// mount (whiteouts in the bottom layer hide nothing) and is its own
    /// root.
    pub fn mount(layers: &[PathBuf], target: &Path) -> Result<View, ViewError> {
        let made = |root: PathBuf, mounted| View { root, mounted };
        // A layer given twice shows once (overlayfs refuses the repeat).
        let layers = &runner::distinct_layers(layers)[..];
        match layers {
            [] => {
                std::fs::create_dir_all(target)
                    .map_err(|e| ViewError::Io(target.to_path_buf(), e))?;
                Ok(made(target.to_path_buf(), false))
            }
            [one] => Ok(made(one.clone(), false)),
            _ => {
                std::fs::create_dir_all(target)
                    .map_err(|e| ViewError::Io(target.to_path_buf(), e))?;
                // The runner's options, as for a container's root: long
                // layer lists go relative to a directory the mount enters.
                let (data, dir) = runner::readonly_overlay_data(layers)?;
                let data = std::ffi::CString::new(data).map_err(|_| {
                    ViewError::Options(runner::RunError::InvalidSpec("NUL in a layer path".into()))
                })?;
                mount_from(dir.as_deref(), target, &data, MountFlags::RDONLY).map_err(
                    |source| ViewError::Mount {
                        layers: layers.len(),
                        source,
                    },
                )?;
                Ok(made(target.to_path_buf(), true))
            }
        }
    }

    /// Stacks `layers` (base first, at least one) at `target` with the
    /// writable directory `scratch` on top (its `upper` and `work` made
    /// here): what is written through the view lands in `scratch`, never
    /// in a layer, and goes when the caller deletes `scratch`.
    pub fn mount_writable(
        layers: &[PathBuf],
        scratch: &Path,
        target: &Path,
    ) -> Result<View, ViewError> {
        let (upper, work) = (scratch.join("upper"), scratch.join("work"));
        for d in [&upper, &work, &target.to_path_buf()] {
            std::fs::create_dir_all(d).map_err(|e| ViewError::Io(d.to_path_buf(), e))?;
        }
        let (data, dir) = runner::writable_overlay_data(layers, &upper, &work)?;
        let data = std::ffi::CString::new(data).map_err(|_| {
            ViewError::Options(runner::RunError::InvalidSpec("NUL in a layer path".into()))
        })?;
        mount_from(dir.as_deref(), target, &data, MountFlags::empty()).map_err(|source| {
            ViewError::Mount {
                layers: layers.len(),
                source,
            }
        })?;
        Ok(View {
            root: target.to_path_buf(),
            mounted: true,
        })
    }
}

/// Mounts overlay `data` at `target`, with `dir` (if any) as the working
/// directory its relative lower names resolve against. The working
/// directory is process-wide and a build runs stages on several threads,
/// so the change happens on a short-lived thread with its own (unshared)
/// one.
fn mount_from(
    dir: Option<&Path>,
    target: &Path,
    data: &std::ffi::CStr,
    flags: MountFlags,
) -> std::io::Result<()> {
    let Some(dir) = dir else {
        return Ok(mount::mount(
            "overlay",
            target,
            "overlay",
            flags,
            Some(data),
        )?);
    };
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unsharing this thread's fs attributes (cwd, root,
            // umask) touches no memory.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }?;
            std::env::set_current_dir(dir)?;
            mount::mount("overlay", target, "overlay", flags, Some(data))?;
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the mount thread panicked")))
    })
}

impl Drop for View {
    fn drop(&mut self) {
        if self.mounted {
            let _ = mount::unmount(&self.root, UnmountFlags::DETACH);
        }
    }
}
