//! Read-only views of a stage or image for `COPY --from` and
//! `RUN --mount from=`: [`containers::view`] (the one overlay view kiln
//! mounts), with the builder's errors.

use std::path::{Path, PathBuf};

use containers::view::{self, ViewError};

use crate::error::BuildError;

fn build_error(e: ViewError) -> BuildError {
    match e {
        ViewError::Io(path, e) => BuildError::Io(path, e),
        e => BuildError::Invalid(e.to_string()),
    }
}

/// Moves the calling thread into its own mount namespace with private
/// propagation. Call once, from the main thread, before views are made.
pub fn private_mount_namespace() -> Result<(), BuildError> {
    view::private_mount_namespace().map_err(build_error)
}

/// A mounted view; unmounted on drop.
pub struct View {
    pub root: PathBuf,
    _view: view::View,
}

impl View {
    /// Stacks `lowers` (base first) read-only at `target`.
    pub fn mount(lowers: &[PathBuf], target: &Path) -> Result<View, BuildError> {
        let v = view::View::mount(lowers, target).map_err(build_error)?;
        Ok(View {
            root: v.root.clone(),
            _view: v,
        })
    }

    /// The view a RUN bind mount of `layers` (base first) reads, mounted
    /// at `scratch/root`: read-only, or with `rw` a writable layer in
    /// `scratch/rw` on top, whose changes go with `scratch`.
    pub fn for_bind(
        layers: &[PathBuf],
        scratch: &Path,
        writable: bool,
    ) -> Result<View, BuildError> {
        let target = scratch.join("root");
        let v = if writable {
            view::View::mount_writable(layers, &scratch.join("rw"), &target)
        } else {
            view::View::mount(layers, &target)
        }
        .map_err(build_error)?;
        Ok(View {
            root: v.root.clone(),
            _view: v,
        })
    }
}
