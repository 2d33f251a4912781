//! Read-only views of a stage or image: its layers stacked with overlayfs
//! in kiln's private mount namespace, for `COPY --from` and
//! `RUN --mount from=`. The namespace dies with the process, so no view can
//! outlive a build even if it is killed.

use std::path::{Path, PathBuf};

use rustix::mount::{self, MountFlags, MountPropagationFlags, UnmountFlags};

use crate::error::BuildError;

/// Moves the calling thread into its own mount namespace with private
/// propagation. Call once, from the main thread, before views are made.
pub fn private_mount_namespace() -> Result<(), BuildError> {
    // SAFETY: a new mount namespace changes no memory this process shares;
    // it only detaches the calling thread's view of mounts.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNS) }.map_err(
        |e| BuildError::Invalid(format!("cannot create a private mount namespace: {e}")),
    )?;
    mount::mount_change(
        "/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .map_err(|e| BuildError::Invalid(format!("cannot make mounts private: {e}")))?;
    Ok(())
}

/// A mounted view; unmounted on drop.
pub struct View {
    pub root: PathBuf,
    mounted: bool,
}

impl View {
    /// Stacks `lowers` (base first) read-only at `target`.
    pub fn mount(lowers: &[PathBuf], target: &Path) -> Result<View, BuildError> {
        match lowers {
            [] => {
                std::fs::create_dir_all(target)
                    .map_err(|e| BuildError::Io(target.to_path_buf(), e))?;
                Ok(View {
                    root: target.to_path_buf(),
                    mounted: false,
                })
            }
            // One layer needs no mount: whiteouts in it hide nothing.
            [one] => Ok(View {
                root: one.clone(),
                mounted: false,
            }),
            _ => {
                std::fs::create_dir_all(target)
                    .map_err(|e| BuildError::Io(target.to_path_buf(), e))?;
                // Short relative names keep the option string under a page;
                // overlay resolves them against the mounter's cwd.
                let parent = lowers[0].parent().unwrap_or(Path::new("/"));
                let names: Vec<String> = lowers
                    .iter()
                    .rev()
                    .map(|l| {
                        if l.parent() == Some(parent) {
                            l.file_name().unwrap().to_string_lossy().into_owned()
                        } else {
                            l.to_string_lossy().into_owned()
                        }
                    })
                    .collect();
                let data = std::ffi::CString::new(format!("lowerdir={}", names.join(":")))
                    .map_err(|_| BuildError::Invalid("NUL in a layer path".into()))?;
                mount_from(parent, target, &data).map_err(|e| {
                    BuildError::Invalid(format!("mounting a view of {} layers: {e}", lowers.len()))
                })?;
                Ok(View {
                    root: target.to_path_buf(),
                    mounted: true,
                })
            }
        }
    }
}

/// Mounts overlay `data` at `target` with `dir` as the working directory
/// its relative lower names resolve against. The working directory is
/// process-wide and stages build on several threads, so the change happens
/// on a short-lived thread with its own (unshared) one.
fn mount_from(dir: &Path, target: &Path, data: &std::ffi::CStr) -> std::io::Result<()> {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unsharing this thread's fs attributes (cwd, root,
            // umask) touches no memory.
            unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FS) }?;
            std::env::set_current_dir(dir)?;
            mount::mount("overlay", target, "overlay", MountFlags::RDONLY, Some(data))?;
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
