//! `kiln export`: a container's whole filesystem (image layers, init
//! layer and its changes, whiteouts applied) as one tar, read through a
//! read-only [`View`] in a private mount namespace of this process, so
//! nothing shows on the host and the mount goes away with the process.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::Path;

use image_store::diff::{write_tar_from_dir, DiffOptions};
use image_store::Store;

use crate::error::{chain, Error, Result};
use crate::records::{Container, Containers};
use crate::run::INIT_DIR;
use crate::view::{self, View, ViewError};

/// The container's layer directories, bottom first: the image's unpacked
/// layers, the init layer and the upper directory, when there are.
pub fn layers(store: &Store, c: &Container) -> Result<Vec<std::path::PathBuf>> {
    let image = store.resolve(&c.image_id.to_string()).map_err(|e| {
        Error::Invalid(format!(
            "the image of container {}: {}",
            &c.id[..12],
            chain(&e)
        ))
    })?;
    let mut layers = store.unpacked_layers(&image).map_err(|e| {
        Error::Invalid(format!(
            "unpacking image {}: {}",
            image.id().short(),
            chain(&e)
        ))
    })?;
    let dir = Containers::new(store).container_dir(&c.id);
    not_on_a_copy(store, c)?;
    for d in [dir.join(INIT_DIR), dir.join("upper")] {
        if d.is_dir() {
            layers.push(d);
        }
    }
    Ok(layers)
}

fn view_error(e: ViewError) -> Error {
    Error::Invalid(match e {
        ViewError::Namespace(e) => format!("entering a private mount namespace (needs root): {e}"),
        ViewError::Private(e) => format!("making / private: {e}"),
        ViewError::Mount { source, .. } => format!("mounting the container's layers: {source}"),
        e => chain(&e),
    })
}

/// Writes container `name`'s filesystem as a tar to `out`.
pub fn export(store: &Store, name: &str, out: &mut dyn Write) -> Result<()> {
    with_view(store, name, |root| write_tar(root, out))
}

/// Writes container `name`'s filesystem as a tar to the file `out`
/// (through a temp file beside it, synced, then renamed).
pub fn export_to_file(store: &Store, name: &str, out: &Path) -> Result<()> {
    with_view(store, name, |root| tar_to_file(root, out))
}

/// The filesystem of `image` (its layers merged, whiteouts applied) as a
/// tar in the file `out` (`build --output type=tar`).
pub fn image_to_file(store: &Store, image: &image_store::Image, out: &Path) -> Result<()> {
    with_image_view(store, image, |root| tar_to_file(root, out))
}

/// The filesystem of `image` written into the directory `dest` (made if
/// missing; files there are replaced): `build --output type=local`. The
/// tree goes through the store's checked unpacker, so nothing is written
/// outside `dest`.
pub fn image_to_dir(store: &Store, image: &image_store::Image, dest: &Path) -> Result<()> {
    fs::create_dir_all(dest).map_err(Error::io(dest))?;
    with_image_view(store, image, |root| {
        let (r, w) = std::io::pipe().map_err(Error::Output)?;
        std::thread::scope(|s| {
            let writer = s.spawn(move || {
                let mut w = w;
                write_tar(root, &mut w)
            });
            let opts = image_store::unpack::UnpackOptions {
                whiteouts: image_store::unpack::Whiteouts::Delete,
                ..Default::default()
            };
            let unpacked = image_store::unpack::unpack(r, dest, opts);
            let written = writer
                .join()
                .unwrap_or_else(|_| Err(Error::Invalid("the tar writer panicked".into())));
            unpacked.map_err(tar_error)?;
            written
        })
    })
}

fn write_tar(root: &Path, out: &mut dyn Write) -> Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, out);
    write_tar_from_dir(root, &mut w, DiffOptions::default()).map_err(tar_error)?;
    w.flush().map_err(Error::Output)
}

fn tar_to_file(root: &Path, out: &Path) -> Result<()> {
    let out = std::path::absolute(out).map_err(Error::io(out))?;
    let dir = out.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        out.file_name()
            .map_or("export".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let res = (|| -> Result<()> {
        let f = fs::File::create(&tmp).map_err(Error::io(&tmp))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        write_tar_from_dir(root, &mut w, DiffOptions::default()).map_err(tar_error)?;
        let f = w
            .into_inner()
            .map_err(|e| Error::io(&tmp)(e.into_error()))?;
        f.sync_all().map_err(Error::io(&tmp))?;
        fs::rename(&tmp, &out).map_err(Error::io(&out))
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

fn tar_error(e: image_store::layer::LayerError) -> Error {
    Error::Invalid(chain(&e))
}

/// Mounts container `name`'s layers read-only and calls `f` with the
/// view's root.
fn with_view(store: &Store, name: &str, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let c = Containers::new(store).container(name)?;
    let layers = layers(store, &c)?;
    with_layers(store, &layers, &c.id[..12], f)
}

fn with_image_view(
    store: &Store,
    image: &image_store::Image,
    f: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let layers = store.unpacked_layers(image).map_err(|e| {
        Error::Invalid(format!(
            "unpacking image {}: {}",
            image.id().short(),
            chain(&e)
        ))
    })?;
    with_layers(store, &layers, &image.id().hex()[..12], f)
}

/// Mounts `layers` (bottom first) read-only and calls `f` with the root.
fn with_layers(
    store: &Store,
    layers: &[std::path::PathBuf],
    tag: &str,
    f: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let target = store
        .tmp_dir()
        .join(format!("export-{tag}-{}", std::process::id()));
    let target = std::path::absolute(&target).map_err(Error::io(&target))?;
    fs::create_dir_all(&target).map_err(Error::io(&target))?;
    let res = (|| {
        view::private_mount_namespace().map_err(view_error)?;
        let v = View::mount(layers, &target).map_err(view_error)?;
        f(&v.root)
    })();
    let _ = fs::remove_dir(&target);
    res
}

/// A container whose overlay could not be mounted runs on a copy of its
/// layers (the runner's copy fallback): its writes land in that copy, not
/// in its upper directory, so its changes cannot be read (`commit`,
/// `diff`, `export`, `cp` from it) or its files written (`cp` into it)
/// from outside. Refused, rather than giving a tree without the changes.
pub(crate) fn not_on_a_copy(store: &Store, c: &Container) -> Result<()> {
    let dir = Containers::new(store).container_dir(&c.id);
    if dir.join(runner::COPY_ROOTFS_DIR).exists() {
        return Err(Error::Invalid(format!(
            "container {} runs on a copy of its image's layers (its overlay mount failed, \
             as on a store on overlayfs): its changes are not in its layer, and cannot be \
             read or written from outside",
            &c.id[..12]
        )));
    }
    Ok(())
}
