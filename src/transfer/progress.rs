//! Transfer progress on standard error: one bar per blob on a terminal,
//! plain lines otherwise, nothing with `-q`.

use std::io::IsTerminal;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
enum Mode {
    Quiet,
    Plain,
    Bars(MultiProgress),
}

#[derive(Clone)]
pub struct Progress {
    mode: Mode,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Plain
        };
        Progress { mode }
    }

    /// A message line (above the bars on a terminal).
    pub fn line(&self, msg: &str) {
        match &self.mode {
            Mode::Quiet => {}
            Mode::Plain => eprintln!("{msg}"),
            Mode::Bars(m) => {
                let _ = m.println(msg);
            }
        }
    }

    /// A warning, shown even with `-q`.
    pub fn warn(&self, msg: &str) {
        match &self.mode {
            Mode::Bars(m) => {
                let _ = m.println(format!("WARNING: {msg}"));
            }
            _ => eprintln!("WARNING: {msg}"),
        }
    }

    pub fn blob(&self, verb: &'static str, digest: &str, size: u64) -> BlobProgress {
        let short = digest
            .strip_prefix("sha256:")
            .map_or(digest, |h| &h[..h.len().min(12)])
            .to_string();
        let bar = match &self.mode {
            Mode::Bars(m) => {
                let bar = m.add(ProgressBar::new(size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_prefix(format!("{verb} blob {short}"));
                bar.enable_steady_tick(Duration::from_millis(200));
                Some(bar)
            }
            _ => None,
        };
        BlobProgress {
            bar,
            plain: matches!(self.mode, Mode::Plain),
            label: format!("{verb} blob {short}"),
        }
    }
}

pub struct BlobProgress {
    bar: Option<ProgressBar>,
    plain: bool,
    label: String,
}

impl BlobProgress {
    pub fn bar(&self) -> Option<ProgressBar> {
        self.bar.clone()
    }

    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn finish(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.finish_with_message(msg.to_string());
        } else if self.plain {
            eprintln!("{} {msg}", self.label);
        }
    }

    pub fn fail(&self) {
        if let Some(b) = &self.bar {
            b.abandon_with_message("failed");
        }
    }
}

/// An `AsyncWrite` that reports the bytes written through it.
pub struct Counting<'a, W> {
    pub inner: W,
    pub progress: &'a BlobProgress,
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
