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
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{}: {}", .0.display(), .1)]
    Io(PathBuf, #[source] std::io::Error),
    #[error("RUN {command} failed with exit code {code}{}", .reason.as_ref().map(|r| format!(": {r}")).unwrap_or_default())]
    RunFailed {
        command: String,
        code: i32,
        reason: Option<String>,
    },
    #[error(transparent)]
    Store(#[from] image_store::StoreError),
    #[error(transparent)]
    Compose(#[from] image_store::ComposeError),
}

impl BuildError {
    pub fn at(cmd: &Command, message: impl Into<String>) -> BuildError {
        BuildError::At {
            file: "Dockerfile".into(),
            line: cmd.span.start_line,
            message: message.into(),
        }
    }

    /// Ties an error without a location to the command it came from.
    pub fn located(self, cmd: &Command) -> BuildError {
        match self {
            BuildError::At { .. } | BuildError::Parse(_) => self,
            other => BuildError::at(cmd, other.to_string()),
        }
    }

    pub fn with_file(self, name: &str) -> BuildError {
        match self {
            BuildError::At { line, message, .. } => BuildError::At {
                file: name.to_string(),
                line,
                message,
            },
            BuildError::Parse(e) => BuildError::Parse(e.with_file_name(name)),
            other => other,
        }
    }
}
