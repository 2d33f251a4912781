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
    /// One blob's progress; `verb` is what is done to it: [`PUSHING`] to a
    /// registry, [`COPYING`] anywhere else (a pull is a copy into the store).
    fn blob(&self, verb: &'static str, digest: &Digest, size: u64) -> Arc<dyn BlobProgress>;
}

/// The verb of a blob sent to a registry (a push).
pub const PUSHING: &str = "Pushing";
/// The verb of a blob copied anywhere else (a pull, a save, a load).
pub const COPYING: &str = "Copying";

/// docker's word for a blob that starts: `Preparing` for a push,
/// `Pulling fs layer` otherwise.
pub fn docker_start(verb: &str) -> &'static str {
    if verb == PUSHING {
        "Preparing"
    } else {
        "Pulling fs layer"
    }
}

/// docker's words for how a blob's copy ended, from the outcome the
/// destination gave ("done", "skipped: already exists", "mounted from
/// REPO"): a push says `Pushed`, `Layer already exists` or `Mounted from
/// REPO`; a pull `Pull complete` or `Already exists`.
pub fn docker_done(verb: &str, outcome: &str) -> String {
    let skipped = outcome.starts_with("skipped");
    if verb == PUSHING {
        match outcome.strip_prefix("mounted from ") {
            Some(repo) => format!("Mounted from {repo}"),
            None if skipped => "Layer already exists".into(),
            None => "Pushed".into(),
        }
    } else if skipped {
        "Already exists".into()
    } else {
        "Pull complete".into()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_words_follow_the_direction() {
        assert_eq!(docker_done(PUSHING, "done"), "Pushed");
        assert_eq!(
            docker_done(PUSHING, "skipped: already exists"),
            "Layer already exists"
        );
        assert_eq!(
            docker_done(PUSHING, "mounted from lib/a"),
            "Mounted from lib/a"
        );
        assert_eq!(docker_done(COPYING, "done"), "Pull complete");
        assert_eq!(
            docker_done(COPYING, "skipped: already exists"),
            "Already exists"
        );
        assert_eq!(docker_start(PUSHING), "Preparing");
    }
}
