//! The layer COPY, ADD and WORKDIR write: planned tar entries, written
//! straight from their sources (no copy into a rootfs first), and local
//! archives ADD extracts.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::copy_plan::join_os;

use crate::error::BuildError;

/// One tar entry of the layer to be.
#[derive(Debug)]
pub struct Planned {
    /// Path inside the image, relative, no leading slash; bytes as the
    /// source named them (context names need not be UTF-8).
    pub dest: PathBuf,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

#[derive(Debug)]
pub enum Kind {
    Dir,
    File {
        src: PathBuf,
        size: u64,
    },
    Inline(Vec<u8>),
    Symlink(PathBuf),
    /// A hard link to a file planned earlier in the same step (BuildKit
    /// keeps the links between the files it copies).
    HardLink(PathBuf),
    /// A local archive ADD extracts under `dest`.
    Archive(PathBuf),
}

/// A local file ADD extracts: a tar, plain or gzip, bzip2, xz or zstd
/// compressed.
pub(super) fn is_archive(p: &Path) -> bool {
    let Ok(f) = File::open(p) else { return false };
    let Ok(mut r) = image_store::layer::decompressed(f) else {
        return false;
    };
    let mut head = [0u8; 512];
    if io::Read::read_exact(&mut r, &mut head).is_err() {
        return false;
    }
    tar::Header::from_byte_slice(&head).cksum().ok()
        == Some(
            head.iter()
                .enumerate()
                .map(|(i, b)| {
                    if (148..156).contains(&i) {
                        32u32
                    } else {
                        *b as u32
                    }
                })
                .sum(),
        )
}

/// Writes the planned entries as a tar stream; `clamp` caps mtimes.
pub fn write_layer<W: Write>(
    entries: &[Planned],
    out: W,
    clamp: Option<u64>,
) -> Result<(), BuildError> {
    let mut b = tar::Builder::new(out);
    let io_err = |p: &Path, e: io::Error| BuildError::Io(p.to_path_buf(), e);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(clamp.map_or(e.mtime, |c| e.mtime.min(c)));
        let res = match &e.kind {
            // The root itself is no entry of a layer (an absolute "/"
            // name is not even a valid one): `ADD rootfs.tar /` on scratch.
            Kind::Dir if e.dest.as_os_str().is_empty() => continue,
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_size(0);
                let mut name = e.dest.clone().into_os_string();
                name.push("/");
                b.append_data(&mut h, name, io::empty())
            }
            Kind::File { src, size } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(*size);
                let f = File::open(src).map_err(|er| io_err(src, er))?;
                b.append_data(&mut h, &e.dest, Exact::new(f, *size))
            }
            Kind::Inline(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, &e.dest, data.as_slice())
            }
            Kind::HardLink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, &e.dest, t)
            }
            Kind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                b.append_link(&mut h, &e.dest, t)
            }
            Kind::Archive(src) => {
                extract_into(&mut b, src, &e.dest, clamp)?;
                Ok(())
            }
        };
        res.map_err(|er| BuildError::Io(e.dest.clone(), er))?;
    }
    b.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(|e| BuildError::Io(PathBuf::from("layer"), e))?;
    Ok(())
}

/// A file's data as planned: exactly `size` bytes. A file that grew since
/// it was planned is cut at its header's size (and the read to EOF is
/// saved); one that shrank is an error, not a tar whose data is short.
struct Exact<R> {
    inner: io::Take<R>,
}

impl<R: Read> Exact<R> {
    fn new(r: R, size: u64) -> Self {
        Exact {
            inner: r.take(size),
        }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && self.inner.limit() > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was copied",
            ));
        }
        Ok(n)
    }
}

/// ADD of a local archive: its entries, re-rooted under the destination
/// directory (the archive's own path is not kept). Each entry passes the
/// store's check for layer entries first, so a build never makes a layer
/// the store would refuse on import (a whiteout of `..`, say).
fn extract_into<W: Write>(
    b: &mut tar::Builder<W>,
    src: &Path,
    dir: &Path,
    clamp: Option<u64>,
) -> Result<(), BuildError> {
    use image_store::layer::{max_layer_size, EntryCheck, EntryName, OPAQUE, WHITEOUT_PREFIX};
    let bad =
        |e: &dyn std::fmt::Display| BuildError::Invalid(format!("ADD {}: {e}", src.display()));
    let dir = dir
        .to_str()
        .ok_or_else(|| bad(&"the destination is not UTF-8"))?;
    let limit = max_layer_size().map_err(|e| bad(&e))?;
    let mut check = EntryCheck::new(limit, true);
    let f = File::open(src).map_err(|e| BuildError::Io(src.to_path_buf(), e))?;
    let plain = image_store::layer::decompressed(f).map_err(|e| bad(&e))?;
    let mut a = tar::Archive::new(plain);
    for entry in a.entries().map_err(|e| bad(&e))? {
        let mut entry = entry.map_err(|e| bad(&e))?;
        let Some(c) = check.check(&entry).map_err(|e| bad(&e))? else {
            continue;
        };
        let rel = match &c.name {
            EntryName::Path(p) => p.clone(),
            EntryName::Whiteout { dir, hidden } => {
                let mut n = OsString::from(OsStr::from_bytes(WHITEOUT_PREFIX));
                n.push(hidden);
                dir.join(n)
            }
            EntryName::Opaque { dir } => dir.join(OsStr::from_bytes(OPAQUE)),
        };
        let name = join_os(dir, &rel);
        let mut h = entry.header().clone();
        if let Some(c) = clamp {
            let m = h.mtime().unwrap_or(0);
            h.set_mtime(m.min(c));
        }
        let shown = &c.shown;
        let fail = |e: io::Error| bad(&format!("tar entry \"{shown}\": {e}"));
        match c.kind {
            tar::EntryType::Link => {
                let target = c.link_target.as_deref().unwrap_or(Path::new(""));
                b.append_link(&mut h, &name, join_os(dir, target))
                    .map_err(fail)?;
            }
            tar::EntryType::Symlink => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                b.append_link(&mut h, &name, Path::new(OsStr::from_bytes(&target)))
                    .map_err(fail)?;
            }
            tar::EntryType::Directory => {
                let mut n = name.into_os_string();
                n.push("/");
                b.append_data(&mut h, n, io::empty()).map_err(fail)?;
            }
            _ => {
                b.append_data(&mut h, &name, &mut entry).map_err(fail)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_data_is_exactly_the_planned_size() {
        let mut out = Vec::new();
        Exact::new(&b"grown since"[..], 5)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"grown");
        let err = Exact::new(&b"shr"[..], 5)
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
    }
}
