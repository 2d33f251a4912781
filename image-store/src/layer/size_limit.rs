//! The largest a layer may expand to, and the reader that enforces it, so
//! a decompression bomb stops at the limit instead of filling the disk.

use std::io::{self, Read};

use super::LayerError;

/// The environment variable that sets the largest layer accepted.
pub const LIMIT_ENV: &str = "KILN_MAX_LAYER_SIZE";
/// 64 GiB: larger than any real image layer (docker users meet 10-20 GB
/// ones), small enough that a decompression bomb stops before most disks
/// fill.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 64 << 30;

/// The largest a layer may expand to (its uncompressed tar, and the sum of
/// its files' sizes, sparse files counted expanded): `KILN_MAX_LAYER_SIZE`
/// (bytes, or with a K, M, G or T suffix, powers of 1024), else
/// [`DEFAULT_MAX_LAYER_SIZE`].
pub fn max_layer_size() -> Result<u64, LayerError> {
    match std::env::var(LIMIT_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(DEFAULT_MAX_LAYER_SIZE),
        Ok(v) => parse_size(&v).ok_or_else(|| {
            LayerError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{LIMIT_ENV}={v:?}: expected a size such as 500M or 64G"),
            ))
        }),
        Err(e) => Err(LayerError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{LIMIT_ENV}: {e}"),
        ))),
    }
}

pub(super) fn parse_size(v: &str) -> Option<u64> {
    let v = v.trim();
    let (num, shift) = match v.char_indices().last()? {
        (i, 'k' | 'K') => (&v[..i], 10),
        (i, 'm' | 'M') => (&v[..i], 20),
        (i, 'g' | 'G') => (&v[..i], 30),
        (i, 't' | 'T') => (&v[..i], 40),
        _ => (v, 0),
    };
    let n: u64 = num.trim().parse().ok()?;
    n.checked_mul(1u64 << shift)
}

/// A reader that fails once more than `limit` bytes have passed, so a
/// decompression bomb stops at the limit instead of filling the disk.
pub struct SizeLimit<R> {
    inner: R,
    left: u64,
    limit: u64,
    exceeded: bool,
}

impl<R: Read> SizeLimit<R> {
    pub fn new(inner: R, limit: u64) -> Self {
        SizeLimit {
            inner,
            left: limit,
            limit,
            exceeded: false,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The error to report instead of whatever the reader's caller made of
    /// the failed read.
    pub fn exceeded(&self) -> Option<LayerError> {
        self.exceeded
            .then_some(LayerError::TooLarge { limit: self.limit })
    }
}

impl<R: Read> Read for SizeLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Reading one byte past the limit tells a stream of exactly
        // `limit` bytes from a longer one.
        let want = buf.len().min(self.left.saturating_add(1) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            self.exceeded = true;
            return Err(io::Error::other(LayerError::TooLarge { limit: self.limit }));
        }
        self.left -= n as u64;
        Ok(n)
    }
}
