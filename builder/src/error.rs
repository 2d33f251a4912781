use std::path::PathBuf;

use dockerfile_parser::instructions::Command;
use dockerfile_parser::Span;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Parse(dockerfile_parser::ParseErrors),
    /// An error tied to a Dockerfile line: `Dockerfile:LINE: message`.
    /// The cause is kept whole (as BuildKit's `LocationError` wraps its
    /// error) and is this error's [`std::error::Error::source`].
    #[error("{location}: {source}")]
    At {
        location: Location,
        source: Box<dyn std::error::Error + Send + Sync>,
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

/// Where in the Dockerfile an error happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The Dockerfile's name as the user gave it (`Dockerfile` until
    /// [`BuildError::with_file`] names it).
    pub file: String,
    pub span: Span,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.span.start_line)
    }
}

impl BuildError {
    /// A message about `cmd`'s line.
    pub fn at(cmd: &Command, message: impl Into<String>) -> BuildError {
        BuildError::Invalid(message.into()).located(cmd)
    }

    /// The build stopped because a RUN command failed.
    pub fn is_run_failure(&self) -> bool {
        match self {
            BuildError::RunFailed { .. } => true,
            BuildError::At { source, .. } => source
                .downcast_ref::<BuildError>()
                .is_some_and(BuildError::is_run_failure),
            _ => false,
        }
    }

    /// The error as BuildKit puts it on the failed step's vertex: a RUN
    /// that exited non-zero in its words (`process "…" did not complete
    /// successfully: exit code: N`), anything else without its location.
    pub fn vertex_error(&self) -> String {
        match self {
            BuildError::RunFailed {
                command,
                code,
                reason: None,
                ..
            } => format!("process \"{command}\" did not complete successfully: exit code: {code}"),
            BuildError::At { source, .. } => match source.downcast_ref::<BuildError>() {
                Some(e) => e.vertex_error(),
                None => source.to_string(),
            },
            other => other.to_string(),
        }
    }

    /// Ties an error without a location to the command it came from.
    pub fn located(self, cmd: &Command) -> BuildError {
        match self {
            BuildError::At { .. } | BuildError::Parse(_) => self,
            other => BuildError::caused_at(cmd, other),
        }
    }

    /// Another crate's error about `cmd`'s line, kept as the cause.
    pub fn caused_at(
        cmd: &Command,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> BuildError {
        BuildError::At {
            location: Location {
                file: "Dockerfile".into(),
                span: cmd.span,
            },
            source: cause.into(),
        }
    }

    pub fn with_file(self, name: &str) -> BuildError {
        match self {
            BuildError::At {
                location: Location { span, .. },
                source,
            } => BuildError::At {
                location: Location {
                    file: name.to_string(),
                    span,
                },
                source,
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

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn cmd_at_line(line: usize) -> Command {
        let df = dockerfile_parser::parse_dockerfile("FROM scratch\n").unwrap();
        let mut cmd = df.commands[0].clone();
        cmd.span.start_line = line;
        cmd
    }

    /// The located error prints as before (`FILE:LINE: cause`) and keeps
    /// its cause, down to the I/O error, as its source chain.
    #[test]
    fn located_error_keeps_its_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = BuildError::Io("/ctx/a".into(), io)
            .located(&cmd_at_line(3))
            .with_file("Containerfile");
        assert_eq!(e.to_string(), "Containerfile:3: /ctx/a: gone");
        let cause = e.source().expect("a source");
        assert_eq!(cause.to_string(), "/ctx/a: gone");
        assert!(matches!(
            cause.downcast_ref::<BuildError>(),
            Some(BuildError::Io(..))
        ));
        assert_eq!(cause.source().expect("the io error").to_string(), "gone");
    }

    #[test]
    fn a_run_failure_stays_one_when_located() {
        let e = BuildError::RunFailed {
            command: "false".into(),
            code: 1,
            reason: None,
            output: vec![],
        }
        .located(&cmd_at_line(2));
        assert!(e.is_run_failure());
        assert_eq!(
            e.to_string(),
            "Dockerfile:2: RUN false failed with exit code 1"
        );
        assert!(!BuildError::at(&cmd_at_line(2), "no").is_run_failure());
    }
}
