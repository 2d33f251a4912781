//! Transfer progress on standard error: one bar per blob on a terminal,
//! docker's plain lines otherwise (`a1b2c3d4e5f6: Pull complete`; a push's
//! `Preparing`, then `Pushed`, `Layer already exists` or `Mounted from
//! REPO`), nothing with `-q`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Clone)]
enum Mode {
    Quiet,
    Plain,
    Bars(MultiProgress),
}

/// Progress of any transfer. docker's words for a blob follow what the
/// transfer does to it (the verb it passes, [`::transfer::progress::PUSHING`]
/// for a registry), not who made this: a build's `--push` and a pull share
/// one kind of progress.
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

    fn make_blob(&self, verb: &'static str, digest: &str, size: u64) -> BlobProgress {
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
        let plain = matches!(self.mode, Mode::Plain);
        // docker's first line for a pushed layer; a pull's blobs say only
        // how they ended.
        if plain && verb == ::transfer::progress::PUSHING {
            eprintln!("{short}: {}", ::transfer::progress::docker_start(verb));
        }
        BlobProgress {
            bar,
            plain,
            short,
            verb,
        }
    }
}

pub struct BlobProgress {
    bar: Option<ProgressBar>,
    plain: bool,
    short: String,
    verb: &'static str,
}

impl BlobProgress {
    pub fn inc(&self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    pub fn finish(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.finish_with_message(msg.to_string());
        } else if self.plain {
            let word = ::transfer::progress::docker_done(self.verb, msg);
            eprintln!("{}: {word}", self.short);
        }
    }

    pub fn fail(&self) {
        if let Some(b) = &self.bar {
            b.abandon_with_message("failed");
        }
    }
}

impl ::transfer::Progress for Progress {
    fn line(&self, msg: &str) {
        Progress::line(self, msg)
    }
    fn warn(&self, msg: &str) {
        Progress::warn(self, msg)
    }
    fn blob(
        &self,
        verb: &'static str,
        digest: &image_store::Digest,
        size: u64,
    ) -> Arc<dyn ::transfer::BlobProgress> {
        Arc::new(self.make_blob(verb, &digest.to_string(), size))
    }
}

impl ::transfer::BlobProgress for BlobProgress {
    fn counts(&self) -> bool {
        self.bar.is_some()
    }
    fn restart(&self) {
        if let Some(b) = &self.bar {
            b.set_position(0);
        }
    }
    fn inc(&self, n: u64) {
        BlobProgress::inc(self, n)
    }
    fn finish(&self, msg: &str) {
        BlobProgress::finish(self, msg)
    }
    fn fail(&self) {
        BlobProgress::fail(self)
    }
}
