//! Exit statuses as docker uses them: 125 for kiln's own errors, 126 and
//! 127 when a command cannot be executed or found, else the container's.

use std::process::ExitCode;

pub const KILN_ERROR: u8 = 125;

/// What a command returns on success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    /// A container's (or child process's) own exit code, passed through.
    External(u8),
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> ExitCode {
        match s {
            Status::Success => ExitCode::SUCCESS,
            Status::External(c) => ExitCode::from(c),
        }
    }
}

/// An error that carries its own exit code (e.g. 126/127 from the runner).
#[derive(Debug)]
pub struct WithCode {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for WithCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for WithCode {}

/// A containers-crate error for the CLI: the runner's failures (and a
/// detached container's monitor's) keep their exit code and read as one
/// line, as the runner words them.
pub fn from_containers(e: containers::Error) -> anyhow::Error {
    match e {
        containers::Error::Run(_) | containers::Error::Failed { .. } => WithCode {
            code: e.exit_code(),
            message: e.to_string(),
        }
        .into(),
        e => e.into(),
    }
}

pub fn code_of(err: &anyhow::Error) -> u8 {
    err.downcast_ref::<WithCode>()
        .map_or(KILN_ERROR, |w| w.code)
}

/// One line: the error and its causes, joined as `a: b: c`, with causes
/// that merely repeat their parent's text left out.
pub fn render(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}

/// Standard output was closed by its reader (EPIPE on a command's output),
/// kept apart from broken pipes to registries or helper processes, which are
/// real errors.
#[derive(Debug)]
pub struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("standard output is closed")
    }
}

impl std::error::Error for StdoutClosed {}

/// Maps a write error on standard output: EPIPE becomes `StdoutClosed`.
pub fn stdout_error(e: std::io::Error) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        StdoutClosed.into()
    } else {
        anyhow::Error::new(e).context("writing to standard output")
    }
}

/// Did the command fail only because its standard output was closed?
pub fn is_stdout_closed(err: &anyhow::Error) -> bool {
    err.downcast_ref::<StdoutClosed>().is_some()
}
