//! Errors of the runner and their docker exit codes.

use std::io;

/// Why a container could not be run. Every variant happens before the
/// container's own program starts, except none: the program's exit status is
/// an `ExitStatus`, not an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid runtime spec: {0}")]
    InvalidSpec(String),
    #[error("not supported by kiln's runtime: {0}")]
    Unsupported(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The container child failed while setting itself up.
    #[error("container setup failed: {step}: {source}")]
    Setup {
        step: String,
        #[source]
        source: io::Error,
    },
    /// The program was found but could not be executed (EACCES, ENOEXEC, ...).
    #[error("cannot execute {path}: {source}")]
    CannotExecute {
        path: String,
        #[source]
        source: io::Error,
    },
    /// The program does not exist in the container.
    #[error("{path}: executable file not found in the container")]
    NotFound { path: String },
    #[error("external runtime {runtime} failed: {message}")]
    External { runtime: String, message: String },
    #[error("user {user}: {message}")]
    User { user: String, message: String },
}

impl RunError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        RunError::Io {
            context: context.into(),
            source,
        }
    }

    /// The exit code docker uses for this failure: 127 when the program was
    /// not found, 126 when it cannot be executed, 125 for the runtime's own errors.
    /// The overlay mount of the container's layers failed (with
    /// [`crate::RunOptions::copy_fallback`] off, nothing ran).
    pub fn is_overlay_mount(&self) -> bool {
        matches!(self, RunError::Setup { step, .. } if step == crate::child::OVERLAY_STEP)
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::NotFound { .. } => 127,
            RunError::CannotExecute { .. } => 126,
            _ => 125,
        }
    }
}

/// How the container's init process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl ExitStatus {
    pub(crate) fn from_wait(status: libc::c_int) -> Self {
        if libc::WIFSIGNALED(status) {
            ExitStatus::Signaled(libc::WTERMSIG(status))
        } else {
            ExitStatus::Exited(libc::WEXITSTATUS(status))
        }
    }

    /// Docker's mapping: the exit code itself, or 128+N when killed by signal N.
    pub fn code(&self) -> u8 {
        match *self {
            ExitStatus::Exited(c) => (c & 0xff) as u8,
            ExitStatus::Signaled(s) => (128 + s).clamp(0, 255) as u8,
        }
    }

    pub fn success(&self) -> bool {
        *self == ExitStatus::Exited(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_exit_codes() {
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert_eq!(RunError::NotFound { path: "x".into() }.exit_code(), 127);
        assert_eq!(RunError::InvalidSpec("x".into()).exit_code(), 125);
    }
}
