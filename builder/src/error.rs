use std::path::PathBuf;

use dockerfile_parser::instructions::Command;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Parse(dockerfile_parser::ParseErrors),
    /// An error tied to a Dockerfile line: `Dockerfile:LINE: message`.
    #[error("{file}:{line}: {message}")]
    At {
        file: String,
        line: usize,
        message: String,
        /// A RUN command failed (not kiln): docker exits 1 for that.
        run_failed: bool,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{}: {}", .0.display(), .1)]
    Io(PathBuf, #[source] std::io::Error),
    /// `output`: the step's last lines, shown as docker shows them.
    #[error("RUN {command} failed with exit code {code}{}{}", .reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default(), output_box(.output))]
    RunFailed {
        command: String,
        code: i32,
        reason: Option<String>,
        output: Vec<String>,
    },
    #[error(transparent)]
    Store(#[from] image_store::StoreError),
    #[error(transparent)]
    Compose(#[from] image_store::ComposeError),
    /// Another stage failed first; this one stopped (never reported).
    #[error("stopped because another stage failed")]
    Cancelled,
}

impl BuildError {
    pub fn at(cmd: &Command, message: impl Into<String>) -> BuildError {
        BuildError::At {
            file: "Dockerfile".into(),
            line: cmd.span.start_line,
            message: message.into(),
            run_failed: false,
        }
    }

    /// The build stopped because a RUN command failed.
    pub fn is_run_failure(&self) -> bool {
        matches!(
            self,
            BuildError::RunFailed { .. }
                | BuildError::At {
                    run_failed: true,
                    ..
                }
        )
    }

    /// Ties an error without a location to the command it came from.
    pub fn located(self, cmd: &Command) -> BuildError {
        match self {
            BuildError::At { .. } | BuildError::Parse(_) => self,
            other => {
                let run_failed = other.is_run_failure();
                match BuildError::at(cmd, other.to_string()) {
                    BuildError::At {
                        file,
                        line,
                        message,
                        ..
                    } => BuildError::At {
                        file,
                        line,
                        message,
                        run_failed,
                    },
                    e => e,
                }
            }
        }
    }

    pub fn with_file(self, name: &str) -> BuildError {
        match self {
            BuildError::At {
                line,
                message,
                run_failed,
                ..
            } => BuildError::At {
                file: name.to_string(),
                line,
                message,
                run_failed,
            },
            BuildError::Parse(e) => BuildError::Parse(e.with_file_name(name)),
            other => other,
        }
    }
}

/// The last lines of a failed step, framed as docker frames them.
fn output_box(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut s = String::from("\n------ last output lines:\n");
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str("------");
    s
}
