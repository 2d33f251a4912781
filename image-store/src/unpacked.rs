//! Unpacked layers, kept beside the layout in `kiln/layers/<diff-id>/` in
//! overlayfs form, so containers and RUN steps stack them as lower
//! directories without unpacking again.
//!
//! A layer a build unpacked as it wrote it may be a delta: only what
//! differs from an earlier unpacked layer (its base), to be stacked right
//! above the base's directory ([`crate::unpack::Reuse::delta`]). Its
//! directory names the base in the `trusted.kiln.base` attribute, set
//! before the directory is renamed into place, so a delta is never seen
//! without it. A base is always a whole layer; the collector keeps the
//! bases of the deltas it keeps, and a delta whose base is gone is
//! unpacked again, whole.

use std::fs;
use std::io::{BufReader, Read};
use std::path::PathBuf;

use crate::digest::{Digest, HashingReader};
use crate::error::StoreError;
use crate::images::Image;
use crate::ingest::ComposeError;
use crate::layer::LayerError;
use crate::layer_files::LayerFiles;
use crate::model::{media, Descriptor};
use crate::store::Store;
use crate::unpack::{unpack_recording, unpack_threaded, Reuse, UnpackOptions, Whiteouts};

/// The attribute of a delta's directory that names its base (the hex of
/// its diff ID). In the trusted namespace: processes in containers do not
/// see it.
const BASE_XATTR: &str = "trusted.kiln.base";

impl Store {
    pub fn layers_dir(&self) -> PathBuf {
        self.kiln_dir().join("layers")
    }

    /// The unpacked directories of an image's layers, bottom first (a
    /// delta's base right below it: see the module comment).
    pub fn unpacked_layers(&self, image: &Image) -> Result<Vec<PathBuf>, ComposeError> {
        let diff_ids = &image.config.rootfs.diff_ids;
        if diff_ids.len() != image.manifest.layers.len() {
            return Err(StoreError::BadLayout {
                path: self.blob_path(image.id()),
                reason: format!(
                    "the config lists {} diff IDs but the manifest has {} layers",
                    diff_ids.len(),
                    image.manifest.layers.len()
                ),
            }
            .into());
        }
        image
            .manifest
            .layers
            .iter()
            .zip(diff_ids)
            .map(|(desc, diff_id)| self.unpacked_layer(desc, diff_id))
            .try_fold(Vec::new(), |mut all, dirs| {
                all.extend(dirs?);
                Ok(all)
            })
    }

    /// Unpacks one layer blob (once) and returns its directories, bottom
    /// first: its own, below it its base's when it is a delta. Each is
    /// named by a short link (`layers/l/<12 hex>`): overlayfs takes all
    /// lower directories in one page of mount options, and 127 full paths
    /// would not fit (docker's overlay2 driver does the same).
    pub fn unpacked_layer(
        &self,
        desc: &Descriptor,
        diff_id: &Digest,
    ) -> Result<Vec<PathBuf>, ComposeError> {
        self.unpacked_layer_like(desc, diff_id, None)
    }

    /// [`Store::unpacked_layer`] for a layer a build made: the facts of
    /// its small files are recorded ([`crate::layer_files`]), and files
    /// the unpacked layer `similar` (an earlier result of the same build
    /// step) has with the same facts are linked from there, not written.
    pub fn unpacked_layer_like(
        &self,
        desc: &Descriptor,
        diff_id: &Digest,
        similar: Option<&Digest>,
    ) -> Result<Vec<PathBuf>, ComposeError> {
        let base = self.unpack_layer_dir(desc, diff_id, similar)?;
        base.iter()
            .chain([diff_id])
            .map(|d| {
                self.short_link(d).map_err(|e| {
                    StoreError::Io {
                        path: self.layers_dir().join(d.hex()),
                        source: e,
                    }
                    .into()
                })
            })
            .collect()
    }

    /// The directories in place for the layer `diff_id` (none when it is
    /// not unpacked), bottom first, without unpacking anything: for
    /// measuring what an image takes.
    pub fn unpacked_dirs_in_place(&self, diff_id: &Digest) -> Vec<PathBuf> {
        let dir = self.layers_dir().join(diff_id.hex());
        match self.installed(&dir) {
            None => Vec::new(),
            Some(None) => vec![dir],
            Some(Some(base)) => vec![self.layers_dir().join(base.hex()), dir],
        }
    }

    /// What is in place for the layer whose directory is `dir`: `None`
    /// when nothing usable (no directory, or a delta whose base is gone
    /// or not whole), else the base it is a delta over, if it is one.
    pub(crate) fn installed(&self, dir: &std::path::Path) -> Option<Option<Digest>> {
        if !dir.is_dir() {
            return None;
        }
        let Some(b) = layer_base(dir) else {
            return Some(None);
        };
        let base = self.layers_dir().join(b.hex());
        (base.is_dir() && layer_base(&base).is_none()).then_some(Some(b))
    }

    fn short_link(&self, diff_id: &Digest) -> std::io::Result<PathBuf> {
        let links = self.layers_dir().join("l");
        fs::create_dir_all(&links)?;
        let link = links.join(&diff_id.hex()[..12]);
        let target = PathBuf::from("..").join(diff_id.hex());
        match fs::read_link(&link) {
            Ok(t) if t == target => return Ok(link),
            // A prefix collision: the full path still works.
            Ok(_) => return Ok(self.layers_dir().join(diff_id.hex())),
            Err(_) => {}
        }
        match std::os::unix::fs::symlink(&target, &link) {
            Ok(()) => Ok(link),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(link),
            Err(e) => Err(e),
        }
    }

    /// `similar`: `None` for a plain unpack (nothing recorded), else a
    /// build's unpack that records file facts and may link from the layer
    /// named (`Some` of its own diff ID: nothing to link from). The base
    /// of the directory in place, when it is a delta.
    fn unpack_layer_dir(
        &self,
        desc: &Descriptor,
        diff_id: &Digest,
        similar: Option<&Digest>,
    ) -> Result<Option<Digest>, ComposeError> {
        let dir = self.layers_dir().join(diff_id.hex());
        if let Some(base) = self.installed(&dir) {
            return Ok(base);
        }
        let parent = self.layers_dir();
        crate::store::private_dir(&parent).map_err(StoreError::io(&parent))?;
        // Stages built side by side often want the same base layer at
        // once: the first unpacks it, the others wait and reuse it. The
        // rename below keeps it right even when the lock is lost to the
        // race between unlinking and opening it; that only costs work.
        let lock_path = parent.join(format!(".lock-{}", diff_id.hex()));
        let _lock = crate::lock::exclusive(&lock_path).map_err(StoreError::io(&lock_path))?;
        let _unlink = Unlink(&lock_path);
        if let Some(base) = self.installed(&dir) {
            return Ok(base);
        }
        if dir.is_dir() {
            // A delta without its base: moved aside (a container may
            // still have it mounted) and unpacked again, whole.
            self.remove_layer_dir(&dir).map_err(StoreError::io(&dir))?;
        }
        // Locked while it is being filled: a cleaner leaves it alone.
        let (tmp, _tmp_lock) = crate::fsutil::tempdir_in(&parent, &format!("-{}", diff_id.short()))
            .map_err(StoreError::io(&parent))?;
        let result = std::thread::scope(|scope| -> Result<Option<LayerFiles>, ComposeError> {
            let blob = BufReader::with_capacity(1 << 20, self.open_blob(&desc.digest)?);
            let reader: Box<dyn Read> = match media::layer_compression(&desc.media_type) {
                Some(media::Compression::None) => Box::new(blob),
                Some(c) => Box::new(
                    crate::verify::inflated(scope, blob, c)
                        .map_err(|e| LayerError::Io(e).in_layer(&desc.digest))?,
                ),
                None => {
                    return Err(StoreError::UnsupportedMediaType(desc.media_type.clone()).into())
                }
            };
            let opts = UnpackOptions {
                whiteouts: Whiteouts::Overlay,
                ..Default::default()
            };
            // The directory is named by the diff ID, and other images
            // share it: the content must hash to it (the config's claim
            // alone is not enough), checked in the same pass.
            let mut hashing = HashingReader::new(reader);
            let files = match similar {
                None => {
                    unpack_threaded(&mut hashing, &tmp, opts)
                        .map_err(|e| e.in_layer(&desc.digest))?;
                    None
                }
                Some(like) => {
                    let reuse = self.reuse_of(like, Some(diff_id));
                    let (_, files) = unpack_recording(&mut hashing, &tmp, opts, reuse, None)
                        .map_err(|e| e.in_layer(&desc.digest))?;
                    Some(files)
                }
            };
            let (_, actual, _) = hashing.finish();
            LayerError::check_diff_id(&desc.digest, diff_id, &actual)?;
            Ok(files)
        });
        let files = match result {
            Ok(f) => f,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let installed = self.install_unpacked(&tmp, diff_id, files.as_ref(), None);
        let _ = fs::remove_dir_all(&tmp);
        installed
    }

    /// Moves the unpacked layer `tmp` into place as `layers/<diff_id>`
    /// unless it is there already (another process unpacked it first),
    /// with the facts of its files when recorded. `base`: `tmp` is a delta
    /// over that layer. The caller removes `tmp` if it is still there.
    /// The base of what is in place then, if a delta.
    pub(crate) fn install_unpacked(
        &self,
        tmp: &std::path::Path,
        diff_id: &Digest,
        files: Option<&LayerFiles>,
        base: Option<&Digest>,
    ) -> Result<Option<Digest>, ComposeError> {
        let dir = self.layers_dir().join(diff_id.hex());
        if let Some(b) = base {
            // Named before the directory is in place: never a delta
            // without its base, whatever a crash leaves.
            rustix::fs::setxattr(
                tmp,
                BASE_XATTR,
                b.hex().as_bytes(),
                rustix::fs::XattrFlags::CREATE,
            )
            .map_err(|e| StoreError::io(tmp)(e.into()))?;
        }
        match fs::rename(tmp, &dir) {
            Ok(()) => {
                if let Some(f) = files {
                    self.put_layer_files(diff_id, f, base);
                }
                Ok(base.cloned())
            }
            Err(e) => match self.installed(&dir) {
                Some(b) => Ok(b),
                None => Err(StoreError::Io {
                    path: dir,
                    source: e,
                }
                .into()),
            },
        }
    }

    /// The layer a new one is made a delta against, with its facts, for
    /// an unpack that would link from the unpacked layer `like`: `like`
    /// itself when whole, else its own base (so no delta is ever over
    /// another: a layer's directories are at most two). `None` when that
    /// layer or its facts are missing.
    pub(crate) fn delta_base(&self, like: &Digest) -> Option<(Digest, LayerFiles)> {
        let base = self.installed(&self.layers_dir().join(like.hex()))?;
        let base = base.unwrap_or_else(|| like.clone());
        let files = self.layer_files(&base)?;
        Some((base, files))
    }

    /// Moves the unpacked layer directory `dir` aside, then deletes it.
    pub(crate) fn remove_layer_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        let (aside, _lock) = crate::fsutil::tempdir_in(&self.layers_dir(), "-removed")?;
        fs::rename(dir, &*aside)?;
        fs::remove_dir_all(&*aside)
    }
}

/// The base of the unpacked layer `dir`, if it is a delta.
pub(crate) fn layer_base(dir: &std::path::Path) -> Option<Digest> {
    let mut buf = [0u8; 80];
    let n = rustix::fs::getxattr(dir, BASE_XATTR, &mut buf).ok()?;
    let hex = std::str::from_utf8(&buf[..n]).ok()?;
    // Unreadable: named as a base nothing has, so the delta is unusable
    // and made again.
    Some(Digest::from_hex(hex).unwrap_or_else(|_| Digest::of_bytes(&buf[..n])))
}

impl Store {
    /// The unpacked layer `like` with its recorded file facts, to link
    /// from; `None` when either is missing (or it is `itself`).
    pub(crate) fn reuse_of(&self, like: &Digest, itself: Option<&Digest>) -> Option<Reuse> {
        if Some(like) == itself {
            return None;
        }
        // A delta's own directory lacks most files: link from its base.
        let (base, files) = self.delta_base(like)?;
        Reuse::open(&self.layers_dir().join(base.hex()), files).ok()
    }
}

/// Removes a file when dropped (before the lock on it is released).
struct Unlink<'a>(&'a std::path::Path);

impl Drop for Unlink<'_> {
    fn drop(&mut self) {
        let _ = fs::remove_file(self.0);
    }
}
