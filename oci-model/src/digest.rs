//! Content digests (`sha256:<hex>`) and the hashing adapters that compute them
//! while data streams through, so no blob is ever read twice or held whole.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// The digest algorithms kiln accepts. Only sha256: every image kiln
/// handles (docker, podman, OCI) uses it for content addressing, and the
/// store's blobs live under `blobs/sha256/`. (The registry client once also
/// parsed sha512, but every such digest failed on its way into the store.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
        }
    }
}

/// A validated `sha256:` digest. Other algorithms are rejected (see
/// [`Algorithm`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid digest {value:?}: {reason}")]
pub struct DigestError {
    pub value: String,
    pub reason: &'static str,
}

impl Digest {
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        if hex.len() != 64 {
            return Err(DigestError {
                value: hex.to_string(),
                reason: "a sha256 digest has 64 hex digits",
            });
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError {
                value: hex.to_string(),
                reason: "only lower-case hex digits are allowed",
            });
        }
        Ok(Digest {
            hex: hex.to_string(),
        })
    }

    pub fn of_bytes(data: &[u8]) -> Self {
        Digest {
            hex: hex::encode(Sha256::digest(data)),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        Algorithm::Sha256
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, as docker shows image IDs.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            Some(("sha256", hex)) => Digest::from_hex(hex),
            Some(_) => Err(DigestError {
                value: s.to_string(),
                reason: "only sha256 digests are supported",
            }),
            None => Err(DigestError {
                value: s.to_string(),
                reason: "expected sha256:<hex>",
            }),
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Running sha256 plus byte count.
#[derive(Clone, Default)]
pub struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn update(&mut self, data: &[u8]) {
        self.sha.update(data);
        self.len += data.len() as u64;
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn finish(self) -> (Digest, u64) {
        let hex = hex::encode(self.sha.finalize());
        (Digest { hex }, self.len)
    }
}

/// A writer that hashes everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
        }
    }
    pub fn written(&self) -> u64 {
        self.hasher.len()
    }
    pub fn finish(self) -> (W, Digest, u64) {
        let (d, n) = self.hasher.finish();
        (self.inner, d, n)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
        }
    }
    pub fn finish(self) -> (R, Digest, u64) {
        let (d, n) = self.hasher.finish();
        (self.inner, d, n)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Reads a blob and fails at its end if the bytes do not match the expected
/// digest and size: the guard for every blob that comes from outside.
pub struct VerifyingReader<R> {
    inner: HashingReader<R>,
    expected: Digest,
    size: Option<u64>,
    done: bool,
}

impl<R: Read> VerifyingReader<R> {
    pub fn new(inner: R, expected: Digest, size: Option<u64>) -> Self {
        VerifyingReader {
            inner: HashingReader::new(inner),
            expected,
            size,
            done: false,
        }
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        let seen = self.inner.hasher.len();
        if let Some(size) = self.size {
            if seen > size {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("blob {} is longer than its {} bytes", self.expected, size),
                ));
            }
        }
        if n == 0 && !buf.is_empty() {
            self.done = true;
            let (actual, len) = self.inner.hasher.clone().finish();
            if let Some(size) = self.size {
                if len != size {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("blob {} has {len} bytes, expected {size}", self.expected),
                    ));
                }
            }
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("digest mismatch: expected {}, got {actual}", self.expected),
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let d: Digest = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            .parse()
            .unwrap();
        assert_eq!(d, Digest::of_bytes(b""));
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!("md5:e3b0c44298fc1c149afbf4c8996fb924"
            .parse::<Digest>()
            .is_err());
        assert!(
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
                .parse::<Digest>()
                .is_err()
        );
    }

    #[test]
    fn verifying_reader_catches_tampering() {
        let good = Digest::of_bytes(b"hello");
        let mut out = Vec::new();
        VerifyingReader::new(&b"hello"[..], good.clone(), Some(5))
            .read_to_end(&mut out)
            .unwrap();
        let err = VerifyingReader::new(&b"hellO"[..], good.clone(), Some(5))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("digest mismatch"));
        let err = VerifyingReader::new(&b"hell"[..], good, Some(5))
            .read_to_end(&mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("expected 5"));
    }
}
