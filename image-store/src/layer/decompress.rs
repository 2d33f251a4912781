//! Compressed tar streams: the format sniffed from magic bytes, and
//! decompressor errors told apart from a bad tar.

use std::io::{self, BufRead, BufReader, Read};

use super::LayerError;
use crate::model::media::Compression;

/// Detects gzip, zstd, bzip2 or xz by magic bytes and returns a reader of
/// the plain tar.
pub fn decompressed<'a, R: Read + 'a>(input: R) -> Result<Box<dyn Read + 'a>, LayerError> {
    let mut br = BufReader::with_capacity(1 << 20, input);
    let head = br.fill_buf()?;
    if head.is_empty() {
        return Err(LayerError::Empty);
    }
    Ok(match sniff(head) {
        Sniffed::Plain => Box::new(br),
        Sniffed::Compressed(Compression::Gzip) => Box::new(Tagged {
            kind: "gzip",
            inner: flate2::bufread::MultiGzDecoder::new(br),
        }),
        Sniffed::Compressed(Compression::Zstd) => Box::new(Tagged {
            kind: "zstd",
            inner: zstd::Decoder::with_buffer(br)?,
        }),
        Sniffed::Compressed(Compression::None) => Box::new(br),
        Sniffed::Bzip2 => Box::new(Tagged {
            kind: "bzip2",
            inner: bzip2::bufread::MultiBzDecoder::new(br),
        }),
        Sniffed::Xz => Box::new(Tagged {
            kind: "xz",
            inner: liblzma::bufread::XzDecoder::new_multi_decoder(br),
        }),
    })
}

/// Marks errors of a decompressor so they are reported as corrupt input
/// rather than as a bad tar.
pub(crate) struct Tagged<R> {
    kind: &'static str,
    inner: R,
}

impl<R> Tagged<R> {
    pub(crate) fn new(kind: &'static str, inner: R) -> Self {
        Tagged { kind, inner }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{kind}: {message}")]
struct DecompressFault {
    kind: &'static str,
    message: String,
}

impl<R: Read> Read for Tagged<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                DecompressFault {
                    kind: self.kind,
                    message: e.to_string(),
                },
            )
        })
    }
}

/// The decompression fault inside an I/O error, if there is one.
pub(super) fn decompress_fault(e: &io::Error) -> Option<LayerError> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
    while let Some(err) = cur {
        if let Some(f) = err.downcast_ref::<DecompressFault>() {
            return Some(LayerError::Decompress {
                kind: f.kind,
                source: io::Error::new(io::ErrorKind::InvalidData, f.message.clone()),
            });
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            cur = io.get_ref().map(|r| r as _);
        } else {
            cur = err.source();
        }
    }
    None
}

/// Layers come plain, gzip or zstd; tarballs (import, ADD) may also be
/// bzip2 or xz, as docker accepts.
enum Sniffed {
    Plain,
    Compressed(Compression),
    Bzip2,
    Xz,
}

fn sniff(head: &[u8]) -> Sniffed {
    if head.starts_with(&[0x1f, 0x8b]) {
        Sniffed::Compressed(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Sniffed::Compressed(Compression::Zstd)
    } else if head.starts_with(b"BZh") {
        Sniffed::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Sniffed::Xz
    } else {
        Sniffed::Plain
    }
}
