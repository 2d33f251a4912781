//! Compressed forms of local (uncompressed) layers, made once for a push
//! and remembered, so the next push sends the same bytes without
//! compressing again.
//!
//! A compressed blob lives in `blobs/` like any other. Beside it:
//! - `kiln/compressed/<format>/<diffid hex>`: the compressed descriptor
//!   (JSON), looked up by diff ID and format;
//! - `kiln/roots/compressed-<diffid hex>`: the compressed digests of that
//!   layer, one per line, so garbage collection keeps them.
//!
//! When the uncompressed layer leaves the store (its image was removed),
//! [`Store::sweep_compressed`] drops both files and the compressed blobs no
//! image references.
//!
//! Gzip is compressed in parallel, pigz-style: the input is cut into chunks
//! that are deflated independently (each ending in a sync flush) and
//! concatenated into one ordinary gzip member.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::fsutil;
use crate::model::{media, Descriptor};
use crate::store::Store;

/// How a pushed layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerFormat {
    Gzip,
    Zstd,
}

impl LayerFormat {
    pub fn name(self) -> &'static str {
        match self {
            LayerFormat::Gzip => "gzip",
            LayerFormat::Zstd => "zstd",
        }
    }

    /// The OCI media type of a layer in this format.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            LayerFormat::Gzip => media::OCI_LAYER_GZIP,
            LayerFormat::Zstd => media::OCI_LAYER_ZSTD,
        }
    }
}

impl std::str::FromStr for LayerFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "gzip" => Ok(LayerFormat::Gzip),
            "zstd" => Ok(LayerFormat::Zstd),
            other => Err(format!(
                "unsupported compression format {other:?}: use gzip or zstd"
            )),
        }
    }
}

pub(crate) const ROOT_PREFIX: &str = "compressed-";
/// Uncompressed bytes per independently deflated gzip chunk.
const GZIP_CHUNK: usize = 4 << 20;
const GZIP_LEVEL: u32 = 1;
const ZSTD_LEVEL: i32 = 3;

impl Store {
    fn compressed_map_path(&self, diff_id: &Digest, format: LayerFormat) -> PathBuf {
        self.kiln_dir()
            .join("compressed")
            .join(format.name())
            .join(diff_id.hex())
    }

    fn compressed_root_path(&self, diff_id: &Digest) -> PathBuf {
        self.kiln_dir()
            .join("roots")
            .join(format!("{ROOT_PREFIX}{}", diff_id.hex()))
    }

    /// The remembered compressed form of the layer with `diff_id`, if its
    /// blob is still in the store. Costs one small read and one stat.
    pub fn compressed_layer(&self, diff_id: &Digest, format: LayerFormat) -> Option<Descriptor> {
        let data = fs::read(self.compressed_map_path(diff_id, format)).ok()?;
        let d: Descriptor = serde_json::from_slice(&data).ok()?;
        let meta = fs::metadata(self.blob_path(&d.digest)).ok()?;
        (meta.len() == d.size).then_some(d)
    }

    /// Compresses the uncompressed layer blob `diff_id` into a new blob and
    /// remembers it. The caller holds [`Store::writer_lock`].
    pub fn compress_layer(&self, diff_id: &Digest, format: LayerFormat) -> Result<Descriptor> {
        let src_path = self.blob_path(diff_id);
        let src = self.open_blob(diff_id)?;
        let mut w = self.blob_writer()?;
        let res = match format {
            LayerFormat::Gzip => parallel_gzip(src, &mut w, GZIP_LEVEL),
            LayerFormat::Zstd => zstd_compress(src, &mut w),
        };
        res.map_err(StoreError::io(&src_path))?;
        let (digest, size) = w.commit(None)?;
        let desc = Descriptor::new(format.oci_media_type(), digest, size);
        self.remember_compressed(diff_id, format, &desc)?;
        Ok(desc)
    }

    /// Records that `compressed` is `diff_id` in `format` (e.g. a layer
    /// pulled compressed), and roots it for garbage collection.
    pub(crate) fn remember_compressed(
        &self,
        diff_id: &Digest,
        format: LayerFormat,
        compressed: &Descriptor,
    ) -> Result<()> {
        let map = self.compressed_map_path(diff_id, format);
        let dir = map.parent().expect("has a parent");
        fs::create_dir_all(dir).map_err(StoreError::io(dir))?;
        let body = serde_json::to_vec(compressed).expect("plain data");
        fsutil::write_atomic(&map, &body).map_err(StoreError::io(&map))?;
        let root = self.compressed_root_path(diff_id);
        let rdir = root.parent().expect("has a parent");
        fs::create_dir_all(rdir).map_err(StoreError::io(rdir))?;
        let mut lines: BTreeSet<String> = fs::read_to_string(&root)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if lines.insert(compressed.digest.to_string()) {
            let mut text = lines.into_iter().collect::<Vec<_>>().join("\n");
            text.push('\n');
            fsutil::write_atomic(&root, text.as_bytes()).map_err(StoreError::io(&root))?;
        }
        Ok(())
    }

    /// Drops the compressed forms of layers that left the store (their
    /// map files, their root, and their blobs no image references).
    /// Opportunistic: skipped while anyone (this process included, e.g. a
    /// push holding the reader lock) uses the store.
    pub fn sweep_compressed(&self) -> Result<()> {
        let stale = self.stale_compressed();
        if stale.is_empty() {
            return Ok(());
        }
        let Some(_gc) = self.try_collector_lock()? else {
            return Ok(());
        };
        // A pull may have brought a layer back before the lock was ours.
        let stale = stale.into_iter().filter(|(d, _)| !self.has_blob(d));
        self.sweep_stale_locked(stale.collect())
    }

    /// The compressed roots whose uncompressed layer is gone.
    fn stale_compressed(&self) -> Vec<(Digest, PathBuf)> {
        let dir = self.kiln_dir().join("roots");
        let Ok(entries) = fs::read_dir(&dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name();
                let hex = name.to_str()?.strip_prefix(ROOT_PREFIX)?;
                let diff_id = Digest::from_hex(hex).ok()?;
                (!self.has_blob(&diff_id)).then(|| (diff_id, e.path()))
            })
            .collect()
    }

    /// [`Store::sweep_compressed`] for a caller that holds the collector
    /// lock (garbage collection, right after it removed layers).
    pub(crate) fn sweep_compressed_locked(&self) -> Result<()> {
        self.sweep_stale_locked(self.stale_compressed())
    }

    fn sweep_stale_locked(&self, stale: Vec<(Digest, PathBuf)>) -> Result<()> {
        if stale.is_empty() {
            return Ok(());
        }
        let mut live = BTreeSet::new();
        for img in self.images_locked()? {
            live.insert(img.manifest_digest().clone());
            live.insert(img.id().clone());
            live.extend(img.manifest.layers.iter().map(|l| l.digest.clone()));
        }
        for (diff_id, root) in stale {
            let doomed: Vec<Digest> = fs::read_to_string(&root)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .filter(|d| !live.contains(d))
                .collect();
            for f in [LayerFormat::Gzip, LayerFormat::Zstd] {
                let _ = fs::remove_file(self.compressed_map_path(&diff_id, f));
            }
            let _ = fs::remove_file(&root);
            self.remove_blobs(&doomed)?;
        }
        Ok(())
    }
}

fn zstd_compress(src: impl Read, out: &mut impl Write) -> io::Result<()> {
    let mut enc = zstd::stream::Encoder::new(out, ZSTD_LEVEL)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    if threads > 1 {
        // Only effective when zstd was built with multithreading.
        let _ = enc.multithread(threads);
    }
    let mut src = io::BufReader::with_capacity(1 << 20, src);
    io::copy(&mut src, &mut enc)?;
    enc.finish()?.flush()
}

fn read_full(src: &mut impl Read, buf: &mut Vec<u8>, want: usize) -> io::Result<()> {
    buf.clear();
    buf.reserve(want);
    let mut limited = src.take(want as u64);
    limited.read_to_end(buf)?;
    Ok(())
}

/// Deflates one chunk as raw deflate, ending with a sync flush (or the
/// final block when `last`).
fn deflate_chunk(data: &[u8], level: u32, last: bool) -> io::Result<Vec<u8>> {
    use flate2::{Compress, Compression, FlushCompress, Status};
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = c.total_in() as usize;
        if out.capacity() - out.len() < 64 * 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let st = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done_input = c.total_in() as usize == data.len();
        match st {
            Status::StreamEnd => break,
            _ if done_input && !last && out.capacity() > out.len() => break,
            _ => {}
        }
    }
    Ok(out)
}

/// Gzip with all cores: one gzip member whose deflate stream is made of
/// independently compressed chunks. Readers see an ordinary gzip file.
pub fn parallel_gzip(src: impl Read, out: &mut impl Write, level: u32) -> io::Result<()> {
    // gzip header: magic, deflate, no flags, no mtime, no extra flags, OS unknown.
    out.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff])?;
    GzipBody {
        out,
        crc: crc32fast::Hasher::new(),
        total: 0,
        level,
    }
    .run(src)
}

struct GzipBody<'a, W: Write> {
    out: &'a mut W,
    crc: crc32fast::Hasher,
    total: u64,
    level: u32,
}

impl<W: Write> GzipBody<'_, W> {
    fn run(&mut self, src: impl Read) -> io::Result<()> {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 16);
        // Peeking ahead is easiest with a one-chunk lookahead buffer.
        let mut src = src;
        let mut next = Vec::new();
        read_full(&mut src, &mut next, GZIP_CHUNK)?;
        loop {
            let mut chunks = Vec::with_capacity(threads);
            let mut ended = false;
            while chunks.len() < threads {
                let cur = std::mem::take(&mut next);
                let mut la = Vec::new();
                if cur.len() == GZIP_CHUNK {
                    read_full(&mut src, &mut la, GZIP_CHUNK)?;
                }
                let is_last = la.is_empty();
                chunks.push(cur);
                next = la;
                if is_last {
                    ended = true;
                    break;
                }
            }
            for c in &chunks {
                self.crc.update(c);
                self.total += c.len() as u64;
            }
            let level = self.level;
            let n = chunks.len();
            let outputs: Vec<io::Result<Vec<u8>>> = std::thread::scope(|s| {
                let handles: Vec<_> = chunks
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let last = ended && i + 1 == n;
                        s.spawn(move || deflate_chunk(c, level, last))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(io::Error::other("panic"))))
                    .collect()
            });
            for o in outputs {
                self.out.write_all(&o?)?;
            }
            if ended {
                break;
            }
        }
        self.out
            .write_all(&self.crc.clone().finalize().to_le_bytes())?;
        self.out.write_all(&(self.total as u32).to_le_bytes())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Half compressible, half noise.
                if (i / 1000) % 2 == 0 {
                    (i % 251) as u8
                } else {
                    x as u8
                }
            })
            .collect()
    }

    #[test]
    fn parallel_gzip_roundtrips() {
        for len in [
            0,
            1,
            1000,
            GZIP_CHUNK - 1,
            GZIP_CHUNK,
            GZIP_CHUNK + 1,
            3 * GZIP_CHUNK + 17,
        ] {
            let input = data(len);
            let mut out = Vec::new();
            parallel_gzip(&input[..], &mut out, 1).unwrap();
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back.len(), input.len(), "len {len}");
            assert!(back == input, "len {len}");
        }
    }

    #[test]
    fn compress_remember_sweep() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let layer = store.write_blob(media::OCI_LAYER, &data(100_000)).unwrap();
        for f in [LayerFormat::Gzip, LayerFormat::Zstd] {
            assert!(store.compressed_layer(&layer.digest, f).is_none());
            let c = store.compress_layer(&layer.digest, f).unwrap();
            assert_eq!(c.media_type, f.oci_media_type());
            assert_eq!(store.compressed_layer(&layer.digest, f), Some(c.clone()));
            assert!(store.has_blob(&c.digest));
        }
        let gz = store
            .compressed_layer(&layer.digest, LayerFormat::Gzip)
            .unwrap();
        store.sweep_compressed().unwrap();
        assert!(store.has_blob(&gz.digest));
        store.remove_blobs([&layer.digest]).unwrap();
        store.sweep_compressed().unwrap();
        assert!(!store.has_blob(&gz.digest));
        assert!(store
            .compressed_layer(&layer.digest, LayerFormat::Gzip)
            .is_none());
    }

    /// Garbage collection takes a compressed form with its layer: the
    /// root that keeps it pins nothing once the layer is unreferenced
    /// (it kept every pushed layer's gzip copy after `system prune -a`).
    #[test]
    fn collecting_a_layer_collects_its_compressed_forms() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let layer = store.write_blob(media::OCI_LAYER, &data(100_000)).unwrap();
        let gz = store
            .compress_layer(&layer.digest, LayerFormat::Gzip)
            .unwrap();
        let zst = store
            .compress_layer(&layer.digest, LayerFormat::Zstd)
            .unwrap();
        // No image and no step record references the layer.
        store.prune(true, &|_| false).unwrap();
        for d in [&layer.digest, &gz.digest, &zst.digest] {
            assert!(!store.has_blob(d), "{d} was kept");
        }
        assert!(store
            .compressed_layer(&layer.digest, LayerFormat::Gzip)
            .is_none());
        let roots = fs::read_dir(store.kiln_dir().join("roots"))
            .unwrap()
            .count();
        assert_eq!(roots, 0);
        // A layer a step record keeps keeps its compressed forms too.
        let layer = store.write_blob(media::OCI_LAYER, &data(50_000)).unwrap();
        let gz = store
            .compress_layer(&layer.digest, LayerFormat::Gzip)
            .unwrap();
        store
            .build_roots()
            .put(
                &"1".repeat(64),
                &crate::build_roots::StepRecord {
                    created: "2026-12-01T00:00:00Z".into(),
                    layer: Some(layer.clone()),
                },
            )
            .unwrap();
        store.prune(true, &|_| false).unwrap();
        assert!(store.has_blob(&layer.digest) && store.has_blob(&gz.digest));
    }
}
