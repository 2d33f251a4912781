//! How a transfer reports what it does. The binary renders it (bars on a
//! terminal, plain lines, nothing); the library only calls these methods.

use std::io::Read;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use image_store::Digest;

/// A transfer's messages, and one [`BlobProgress`] per blob it moves.
pub trait Progress: Send + Sync {
    /// A message line ("Writing manifest to image destination").
    fn line(&self, msg: &str);
    /// A warning, shown even when lines are not.
    fn warn(&self, msg: &str);
    /// One blob's progress; `verb` is what is done to it ("Copying").
    fn blob(&self, verb: &'static str, digest: &Digest, size: u64) -> Arc<dyn BlobProgress>;
}

/// One blob's progress.
pub trait BlobProgress: Send + Sync {
    /// Whether byte counts are wanted (a bar is drawn); when not, sources
    /// may take faster paths that cannot count.
    fn counts(&self) -> bool {
        false
    }
    /// The blob is being sent again from the start (a retried upload).
    fn restart(&self) {}
    fn inc(&self, _n: u64) {}
    fn finish(&self, msg: &str);
    fn fail(&self);
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn line(&self, _msg: &str) {}
    fn warn(&self, _msg: &str) {}
    fn blob(&self, _verb: &'static str, _digest: &Digest, _size: u64) -> Arc<dyn BlobProgress> {
        Arc::new(Silent)
    }
}

impl BlobProgress for Silent {
    fn finish(&self, _msg: &str) {}
    fn fail(&self) {}
}

/// An `AsyncWrite` that reports the bytes written through it.
pub struct Counting<'a, W> {
    pub inner: W,
    pub progress: &'a dyn BlobProgress,
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counting<'_, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.progress.inc(*n as u64);
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A `Read` that reports the bytes read through it.
pub struct CountingRead<R> {
    pub inner: R,
    pub progress: Arc<dyn BlobProgress>,
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.inc(n as u64);
        Ok(n)
    }
}
