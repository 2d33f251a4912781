//! Build progress on standard error: `STEP n/N` lines (plain), a live
//! line per running stage (tty), BuildKit's SolveStatus JSON lines
//! (rawjson, [`builder::solve_status`]) or nothing (quiet). Stages run side
//! by side, so with more than one every line carries its `[stage/stages]`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use builder::solve_status::SolveStatusWriter;
use builder::{Event, EventKind};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Quiet,
    Plain,
    Tty,
    RawJson,
}

impl Mode {
    /// `--progress` (auto, plain, tty, rawjson, quiet) and `-q`.
    pub fn parse(flag: &str, quiet: bool, terminal: bool) -> anyhow::Result<Mode> {
        Ok(match flag {
            _ if quiet => Mode::Quiet,
            "quiet" => Mode::Quiet,
            "plain" => Mode::Plain,
            "rawjson" => Mode::RawJson,
            "tty" if terminal => Mode::Tty,
            "tty" => anyhow::bail!("--progress tty needs a terminal on standard error"),
            "auto" if terminal => Mode::Tty,
            "auto" => Mode::Plain,
            other => anyhow::bail!(
                "invalid --progress {other:?}: use auto, plain, tty, rawjson or quiet"
            ),
        })
    }
}

pub enum Renderer {
    Quiet,
    Plain(Plain),
    Tty(Tty),
    RawJson(SolveStatusWriter<std::io::Stderr>),
}

impl Renderer {
    pub fn new(mode: Mode, dockerfile_name: &str) -> Renderer {
        match mode {
            Mode::Quiet => Renderer::Quiet,
            Mode::Plain => Renderer::Plain(Plain),
            Mode::Tty => Renderer::Tty(Tty::new()),
            Mode::RawJson => {
                Renderer::RawJson(SolveStatusWriter::new(std::io::stderr(), dockerfile_name))
            }
        }
    }

    pub fn event(&mut self, e: Event) {
        match self {
            Renderer::Quiet => {}
            Renderer::Plain(p) => p.event(e),
            Renderer::Tty(t) => t.event(e),
            Renderer::RawJson(j) => j.event(&e),
        }
    }
}

fn prefix(e: &Event) -> String {
    if e.stages > 1 && e.stage > 0 {
        format!("[{}/{}] ", e.stage, e.stages)
    } else {
        String::new()
    }
}

/// Podman/buildah-style lines, as they happen.
pub struct Plain;

impl Plain {
    fn event(&mut self, e: Event) {
        let p = prefix(&e);
        let mut err = std::io::stderr().lock();
        let _ = match e.kind {
            EventKind::Step {
                number,
                total,
                text,
                ..
            } => writeln!(err, "{p}STEP {number}/{total}: {text}"),
            EventKind::CacheHit => writeln!(err, "{p}--> Using cache"),
            EventKind::CacheMiss { reason } => writeln!(err, "{p}--> Cache miss at {reason}"),
            EventKind::StepDone { secs } => writeln!(err, "{p}--> {secs:.3}s"),
            EventKind::Output(_, line) => writeln!(err, "{line}"),
            // The error follows the progress, once.
            EventKind::StageDone | EventKind::Failed(_) => Ok(()),
            EventKind::Warning(w) => writeln!(err, "WARNING: {w}"),
            EventKind::Info(line) => writeln!(err, "{line}"),
        };
    }
}

/// What a stage's live line shows.
struct Running {
    bar: ProgressBar,
    text: String,
    started: Instant,
    cached: bool,
}

/// A live line per running stage; finished steps scroll above them with
/// their times, and RUN output scrolls with them.
pub struct Tty {
    multi: MultiProgress,
    running: BTreeMap<usize, Running>,
}

impl Tty {
    fn new() -> Tty {
        Tty {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            running: BTreeMap::new(),
        }
    }

    fn line(&self, text: String) {
        let _ = self.multi.println(text);
    }

    /// The finished step of `stage` moves from its live line to the log.
    fn finish_step(&mut self, stage: usize, note: String) {
        if let Some(r) = self.running.get(&stage) {
            let tag = if r.cached { "CACHED".to_string() } else { note };
            self.line(format!("{}  {tag}", r.text));
        }
    }

    fn event(&mut self, e: Event) {
        let p = prefix(&e);
        let stage = e.stage;
        match e.kind {
            EventKind::Step {
                number,
                total,
                text,
                ..
            } => {
                let text = format!("{p}STEP {number}/{total}: {text}");
                let r = self.running.entry(stage).or_insert_with(|| {
                    let bar = self.multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template("{spinner} {msg} {elapsed:.dim}")
                            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                    );
                    bar.enable_steady_tick(Duration::from_millis(100));
                    Running {
                        bar,
                        text: String::new(),
                        started: Instant::now(),
                        cached: false,
                    }
                });
                r.bar.set_message(text.clone());
                r.bar.reset_elapsed();
                r.text = text;
                r.started = Instant::now();
                r.cached = false;
            }
            EventKind::CacheHit => {
                if let Some(r) = self.running.get_mut(&stage) {
                    r.cached = true;
                }
            }
            EventKind::CacheMiss { reason } => self.line(format!("{p}cache miss at {reason}")),
            EventKind::StepDone { secs } => self.finish_step(stage, format!("{secs:.1}s")),
            EventKind::Output(_, line) => self.line(format!("{p}│ {line}")),
            // Drop shows the stopped step; the error follows.
            EventKind::Failed(_) => {}
            EventKind::StageDone => {
                if let Some(r) = self.running.remove(&stage) {
                    r.bar.finish_and_clear();
                    self.multi.remove(&r.bar);
                }
            }
            EventKind::Warning(w) => self.line(format!("WARNING: {w}")),
            EventKind::Info(line) => self.line(line),
        }
    }
}

impl Drop for Tty {
    /// A failed build leaves no half-drawn lines behind its error.
    fn drop(&mut self) {
        for (_, r) in std::mem::take(&mut self.running) {
            let elapsed = r.started.elapsed().as_secs_f64();
            r.bar.finish_and_clear();
            let _ = self
                .multi
                .println(format!("{}  {elapsed:.1}s (stopped)", r.text));
        }
        let _ = self.multi.clear();
    }
}
