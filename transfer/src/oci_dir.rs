//! `oci:DIR[:REF]`: a plain OCI image layout directory, as a source (pull)
//! and, through the one layout writer, a destination (push).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image_store::model::Index;
use image_store::{Descriptor, Digest};

use crate::image::{ImageSource, RawManifest, SourceBlob};
use crate::oci_layout::{LayoutFiles, Naming, OciLayoutDest};
use crate::progress::{BlobProgress, CountingRead};
use crate::{bail, invalid, Context as _, Result};

fn blob_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs/sha256").join(d.hex())
}

/// The name an image read from an `oci:` layout gets: REF when it is a
/// full reference, else `localhost/<dir name>:<REF or latest>`.
pub fn layout_name(dir: &Path, reference: Option<&str>) -> Result<image_store::Reference> {
    if let Some(r) = reference {
        if let Ok(parsed) = r.parse::<image_store::Reference>() {
            if parsed.is_qualified() {
                return Ok(parsed);
            }
        }
    }
    let base = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_lowercase()))
        .unwrap_or_else(|| "image".to_string());
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let tag = reference.unwrap_or("latest");
    format!("localhost/{base}:{tag}")
        .parse::<image_store::Reference>()
        .map_err(|e| invalid!("cannot name the image from {}: {e}", dir.display()))
}

/// The image `reference` (or the only one) of the layout at `dir`.
pub struct OciDirSource {
    dir: PathBuf,
    reference: Option<String>,
}

impl OciDirSource {
    pub fn new(dir: &Path, reference: Option<&str>) -> OciDirSource {
        OciDirSource {
            dir: dir.to_path_buf(),
            reference: reference.map(str::to_string),
        }
    }

    fn read_verified(&self, d: &Digest) -> Result<Vec<u8>> {
        let p = blob_path(&self.dir, d);
        let data = fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        if Digest::of_bytes(&data) != *d {
            bail!("{}: blob {d} does not match its digest", self.dir.display());
        }
        Ok(data)
    }
}

impl ImageSource for OciDirSource {
    fn label(&self) -> String {
        self.dir.display().to_string()
    }

    /// The manifest named `reference`, or the only one.
    fn manifest(&self) -> Result<RawManifest> {
        let dir = &self.dir;
        let index_path = dir.join("index.json");
        let data =
            fs::read(&index_path).with_context(|| format!("reading {}", index_path.display()))?;
        let index: Index = serde_json::from_slice(&data)
            .with_context(|| format!("{}: invalid index", index_path.display()))?;
        let reference = self.reference.as_deref();
        let found: Vec<&Descriptor> = match reference {
            Some(r) => index
                .manifests
                .iter()
                .filter(|d| d.ref_name() == Some(r))
                .collect(),
            None => index.manifests.iter().collect(),
        };
        let desc = match found.as_slice() {
            [one] => (*one).clone(),
            [] => match reference {
                Some(r) => bail!("{}: no image named {r:?}", dir.display()),
                None => bail!("{}: the layout holds no image", dir.display()),
            },
            _ => bail!(
                "{}: the layout holds {} images; name one with oci:DIR:REF",
                dir.display(),
                found.len()
            ),
        };
        self.manifest_at(&desc)
    }

    fn manifest_at(&self, desc: &Descriptor) -> Result<RawManifest> {
        Ok(RawManifest {
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            bytes: self.read_verified(&desc.digest)?,
        })
    }

    fn open_blob(&self, desc: &Descriptor, progress: Arc<dyn BlobProgress>) -> Result<SourceBlob> {
        let src = blob_path(&self.dir, &desc.digest);
        let f = fs::File::open(&src).with_context(|| format!("reading {}", src.display()))?;
        Ok(SourceBlob::reader(CountingRead { inner: f, progress }))
    }

    fn blob_file(&self, desc: &Descriptor) -> Option<PathBuf> {
        let p = blob_path(&self.dir, &desc.digest);
        p.exists().then_some(p)
    }
}

/// The files of a layout directory: each written to a temp file beside
/// its place, then renamed.
pub struct DirFiles {
    dir: PathBuf,
}

impl DirFiles {
    pub fn new(dir: &Path) -> Result<DirFiles> {
        fs::create_dir_all(dir.join("blobs/sha256"))
            .with_context(|| format!("creating {}", dir.display()))?;
        Ok(DirFiles {
            dir: dir.to_path_buf(),
        })
    }
}

impl LayoutFiles for DirFiles {
    fn has_blob(&self, d: &Digest) -> bool {
        blob_path(&self.dir, d).exists()
    }

    fn write_blob(&mut self, d: &Digest, _size: u64, data: &mut dyn Read) -> Result<()> {
        let dest = blob_path(&self.dir, d);
        let blobs = self.dir.join("blobs/sha256");
        // A temp of its own (not `<hex>.tmp`): two writers of the same blob
        // into one directory must not write into each other's file. `data`
        // fails at its end unless it hashed to `d`, so whichever rename
        // lands last puts the same verified bytes in place.
        let (tmp, mut f) = image_store::fsutil::tempfile_in(&blobs)
            .with_context(|| format!("creating a temp file in {}", blobs.display()))?;
        let res = (|| -> std::io::Result<()> {
            std::io::copy(data, &mut f)?;
            f.sync_all()?;
            fs::rename(&tmp, &dest)?;
            image_store::fsutil::sync_dir(&blobs)
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        drop(f);
        res.with_context(|| format!("copying blob {d} to {}", self.dir.display()))
    }

    fn write_file(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let p = self.dir.join(name);
        if name == "oci-layout" && p.exists() {
            return Ok(());
        }
        image_store::write_atomic(&p, data).with_context(|| format!("writing {}", p.display()))
    }

    fn read_index(&self) -> Result<Option<Index>> {
        let index_path = self.dir.join("index.json");
        match fs::read(&index_path) {
            Ok(data) => {
                Ok(Some(serde_json::from_slice(&data).with_context(|| {
                    format!("{}: invalid index", index_path.display())
                })?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", index_path.display())),
        }
    }

    /// An flock on the layout directory itself: no file of ours in a
    /// directory that skopeo and umoci also read and write.
    fn lock_index(&self) -> Result<Option<image_store::lock::LockGuard>> {
        image_store::lock::exclusive(&self.dir)
            .map(Some)
            .with_context(|| format!("locking {}", self.dir.display()))
    }
}

/// A layout directory as a destination (created if needed); the image is
/// named REF in `index.json`, replacing any manifest of that name.
pub fn dest(dir: &Path) -> Result<OciLayoutDest<DirFiles>> {
    OciLayoutDest::new(DirFiles::new(dir)?, Naming::Directory)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes a few at a time, yielding in between, so two
    /// writers interleave.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            std::thread::yield_now();
            let n = buf.len().min(self.0.len()).min(4096);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Two pushes of different names into one directory, their index
    /// updates racing: both names are there afterwards.
    #[test]
    fn two_writers_of_one_index_keep_both_names() {
        use crate::oci_layout::{LayoutFiles, Naming, OciLayoutDest};
        let dir = tempfile::tempdir().unwrap();
        for round in 0..20 {
            let a = format!("a{round}");
            let b = format!("b{round}");
            // Both writers open (and would have read the index) before
            // either finishes: the old code kept its start-time copy.
            let da =
                OciLayoutDest::new(DirFiles::new(dir.path()).unwrap(), Naming::Directory).unwrap();
            let db =
                OciLayoutDest::new(DirFiles::new(dir.path()).unwrap(), Naming::Directory).unwrap();
            let desc = |n: u8| {
                Descriptor::new(
                    image_store::model::media::OCI_MANIFEST,
                    Digest::of_bytes(&[n]),
                    1,
                )
            };
            da.add_entry(desc(1), vec![a.clone()]);
            db.add_entry(desc(2), vec![b.clone()]);
            std::thread::scope(|s| {
                s.spawn(|| da.finish().unwrap());
                s.spawn(|| db.finish().unwrap());
            });
            let index = DirFiles::new(dir.path())
                .unwrap()
                .read_index()
                .unwrap()
                .unwrap();
            let names: Vec<_> = index
                .manifests
                .iter()
                .filter_map(|d| d.ref_name())
                .collect();
            assert!(names.contains(&a.as_str()), "{a} lost: {names:?}");
            assert!(names.contains(&b.as_str()), "{b} lost: {names:?}");
        }
    }

    #[test]
    fn two_writers_of_one_blob_leave_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
        let d = Digest::of_bytes(&data);
        for _ in 0..40 {
            let _ = fs::remove_file(blob_path(dir.path(), &d));
            std::thread::scope(|s| {
                let writers: Vec<_> = (0..2)
                    .map(|_| {
                        s.spawn(|| {
                            let mut files = DirFiles::new(dir.path()).unwrap();
                            let mut r = image_store::digest::VerifyingReader::new(
                                Trickle(&data),
                                d.clone(),
                                Some(data.len() as u64),
                            );
                            files.write_blob(&d, data.len() as u64, &mut r)
                        })
                    })
                    .collect();
                for w in writers {
                    w.join().unwrap().unwrap();
                }
            });
            let got = fs::read(blob_path(dir.path(), &d)).unwrap();
            assert_eq!(Digest::of_bytes(&got), d);
        }
        // No temp is left behind.
        let left: Vec<_> = fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from(d.hex())]);
    }
}
