//! Writing archives: `oci-archive` through the one OCI layout writer over
//! a tar stream, `docker-archive` through its own destination. Both take
//! images through [`crate::copy`], one blob at a time, verified as read.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Seek, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use image_store::digest::VerifyingReader;
use image_store::images::{split_name, Image};
use image_store::model::media::{self, Compression};
use image_store::model::Index;
use image_store::Store;
use image_store::{Descriptor, Digest};

use super::DockerManifestEntry;
use crate::copy::{copy, CopyOptions};
use crate::image::{ImageDest, ImageSource, SourceImage};
use crate::oci_layout::{LayoutFiles, Naming, OciLayoutDest};
use crate::progress::{BlobProgress, Silent};
use crate::store::StoreSource;
use crate::{bail, Context as _, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveFormat {
    DockerArchive,
    OciArchive,
}

/// Writes `images` (each with the names it should carry in the archive) to
/// `out` as one archive. The caller holds the store's reader lock.
pub fn save<W: Write + Send>(
    store: &Store,
    images: &[(Image, Vec<String>)],
    format: ArchiveFormat,
    out: W,
) -> Result<()> {
    let opts = CopyOptions {
        jobs: 1,
        ..CopyOptions::default()
    };
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Deterministic);
    let copy_all = |dest: &dyn ImageDest| -> Result<()> {
        for (img, names) in images {
            let src = StoreSource::new(store, img.clone()).with_names(names.clone());
            copy(&src, dest, &opts, &Silent)?;
        }
        Ok(())
    };
    let b = match format {
        ArchiveFormat::DockerArchive => {
            let dest = DockerArchiveDest::new(b, store.tmp_dir());
            copy_all(&dest)?;
            dest.finish()?
        }
        ArchiveFormat::OciArchive => {
            let dest = OciLayoutDest::new(TarFiles(b), Naming::Archive)?;
            copy_all(&dest)?;
            dest.finish()?.0
        }
    };
    b.into_inner()?.flush()?;
    Ok(())
}

/// [`save`], gzip-compressed when `compress` says so.
pub fn save_to<W: Write + Send>(
    store: &Store,
    images: &[(Image, Vec<String>)],
    format: ArchiveFormat,
    compress: bool,
    out: W,
) -> Result<()> {
    if compress {
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        save(store, images, format, &mut gz)?;
        gz.finish()?.flush()?;
    } else {
        let mut out = out;
        save(store, images, format, &mut out)?;
        out.flush()?;
    }
    Ok(())
}

/// [`save_to`] the file `path`: written to a temp file beside it, made
/// `mode`, then renamed over it, so a failed save leaves no partial file.
pub fn save_to_file(
    store: &Store,
    images: &[(Image, Vec<String>)],
    format: ArchiveFormat,
    compress: bool,
    path: &std::path::Path,
    mode: u32,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let tmp = tempfile::Builder::new()
        .prefix(".kiln-save-")
        .tempfile_in(dir.unwrap_or(std::path::Path::new(".")))
        .with_context(|| format!("creating a temp file beside {}", path.display()))?;
    let out = io::BufWriter::with_capacity(1 << 20, tmp.as_file());
    save_to(store, images, format, compress, out)?;
    // tempfile makes 0600 files; an archive is an ordinary file.
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The images `names` name, each once, carrying the tags it was named by
/// (as docker: an image named by ID carries no tag). The caller holds the
/// store's reader lock.
pub fn select(store: &Store, names: &[String]) -> Result<Vec<(Image, Vec<String>)>> {
    let mut out: Vec<(Image, Vec<String>)> = Vec::new();
    for name in names {
        let img = store.resolve_locked(name)?;
        let tag = name.parse::<image_store::Reference>().ok().and_then(|r| {
            r.candidates()
                .into_iter()
                .map(|c| c.to_string())
                .find(|c| img.names.contains(c))
        });
        match out
            .iter_mut()
            .find(|(i, _)| i.manifest_digest() == img.manifest_digest())
        {
            Some((_, tags)) => tags.extend(tag.filter(|t| !tags.contains(t))),
            None => out.push((img, tag.into_iter().collect())),
        }
    }
    Ok(out)
}

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// An OCI layout's files as tar members.
pub struct TarFiles<W: Write>(pub tar::Builder<W>);

impl<W: Write + Send> LayoutFiles for TarFiles<W> {
    fn has_blob(&self, _d: &Digest) -> bool {
        false
    }
    fn write_blob(&mut self, d: &Digest, size: u64, data: &mut dyn Read) -> Result<()> {
        append(&mut self.0, &blob_name(d), 0o444, size, data)
    }
    fn write_file(&mut self, name: &str, data: &[u8]) -> Result<()> {
        append(&mut self.0, name, 0o644, data.len() as u64, &mut &data[..])
    }
    fn read_index(&self) -> Result<Option<Index>> {
        Ok(None)
    }
}

/// One regular member; `data` must give exactly `size` bytes.
fn append<W: Write>(
    b: &mut tar::Builder<W>,
    name: &str,
    mode: u32,
    size: u64,
    data: &mut dyn Read,
) -> Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    b.append_data(&mut h, name, data)?;
    Ok(())
}

/// `docker save`'s format: the config and each layer as a plain tar,
/// named by digest and diff ID, then `manifest.json` and `repositories`.
pub struct DockerArchiveDest<W: Write> {
    b: Mutex<tar::Builder<W>>,
    tmp: PathBuf,
    written: Mutex<BTreeSet<Digest>>,
    manifest: Mutex<Vec<DockerManifestEntry>>,
    repositories: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl<W: Write + Send> DockerArchiveDest<W> {
    /// `tmp`: where a compressed layer is spooled plain (a tar header
    /// states the size before the data).
    pub fn new(b: tar::Builder<W>, tmp: PathBuf) -> Self {
        DockerArchiveDest {
            b: Mutex::new(b),
            tmp,
            written: Mutex::default(),
            manifest: Mutex::default(),
            repositories: Mutex::default(),
        }
    }

    fn builder(&self) -> std::sync::MutexGuard<'_, tar::Builder<W>> {
        self.b.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn written(&self) -> std::sync::MutexGuard<'_, BTreeSet<Digest>> {
        self.written.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `manifest.json` and `repositories`; hands back the builder.
    pub fn finish(self) -> Result<tar::Builder<W>> {
        let mut b = self.b.into_inner().unwrap_or_else(|p| p.into_inner());
        let manifest = self
            .manifest
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let repositories = self
            .repositories
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        for (name, data) in [
            ("manifest.json", serde_json::to_vec(&manifest)?),
            ("repositories", serde_json::to_vec(&repositories)?),
        ] {
            append(&mut b, name, 0o644, data.len() as u64, &mut &data[..])?;
        }
        Ok(b)
    }
}

impl<W: Write + Send> ImageDest for DockerArchiveDest<W> {
    /// `docker save` puts the config before the layers.
    fn config_first(&self) -> bool {
        true
    }

    fn has_blob(&self, desc: &Descriptor) -> bool {
        self.written().contains(&desc.digest)
    }

    fn put_blob(
        &self,
        src: &dyn ImageSource,
        desc: &Descriptor,
        diff_id: Option<&Digest>,
        progress: Arc<dyn BlobProgress>,
    ) -> Result<String> {
        let named = diff_id.unwrap_or(&desc.digest);
        if self.written().contains(named) {
            return Ok("skipped: already exists".into());
        }
        let name = blob_name(named);
        let blob = src.open_blob(desc, progress)?;
        let compression = diff_id.and_then(|_| media::layer_compression(&desc.media_type));
        if compression == Some(Compression::None) && diff_id != Some(&desc.digest) {
            // An uncompressed layer is its own diff ID; it is named by it.
            bail!(
                "layer {}: uncompressed, but its diff ID is {}",
                desc.digest,
                named
            );
        }
        blob.consume(&desc.digest, |r| {
            let mut r = VerifyingReader::new(r, desc.digest.clone(), Some(desc.size));
            match compression {
                None | Some(Compression::None) => {
                    append(&mut self.builder(), &name, 0o444, desc.size, &mut r)
                }
                Some(c) => {
                    // docker-archive layers are plain tars named by their
                    // diff ID: spool the plain tar first, checking it.
                    // Unnamed and opened for reading too (the spool is read
                    // back into the tar).
                    let mut spool = tempfile::tempfile_in(&self.tmp)?;
                    let mut dec: Box<dyn Read> = match c {
                        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(
                            io::BufReader::new(&mut r),
                        )),
                        _ => Box::new(zstd::Decoder::new(&mut r)?),
                    };
                    let mut hashed = image_store::digest::HashingWriter::new(&mut spool);
                    let size = io::copy(&mut dec, &mut hashed)?;
                    let (_, plain, _) = hashed.finish();
                    drop(dec);
                    // The compressed stream's own digest is checked at its end.
                    io::copy(&mut r, &mut io::sink())?;
                    if Some(&plain) != diff_id {
                        bail!(
                            "layer {}: hashes to {plain} uncompressed, not its diff ID",
                            desc.digest
                        );
                    }
                    spool.rewind()?;
                    append(&mut self.builder(), &name, 0o444, size, &mut spool)
                }
            }
        })
        .with_context(|| format!("writing {name}"))?;
        self.written().insert(desc.digest.clone());
        self.written().insert(named.clone());
        Ok("done".into())
    }

    fn put_manifest(&self, image: &SourceImage, _layers: &[Descriptor]) -> Result<Digest> {
        let names = &image.names;
        if let Some(top) = image.diff_ids.last() {
            let mut repositories = self.repositories.lock().unwrap_or_else(|p| p.into_inner());
            for n in names {
                let (repo, tag) = split_name(n);
                repositories
                    .entry(repo)
                    .or_default()
                    .insert(tag, top.hex().to_string());
            }
        }
        self.manifest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(DockerManifestEntry {
                config: blob_name(image.id()),
                repo_tags: (!names.is_empty()).then(|| names.clone()),
                layers: image.diff_ids.iter().map(blob_name).collect(),
            });
        Ok(image.raw.digest.clone())
    }

    fn jobs(&self) -> usize {
        1
    }
}
