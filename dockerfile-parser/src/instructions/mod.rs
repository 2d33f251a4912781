//! Typed, validated instructions built from the syntax tree (BuildKit's
//! `instructions/parse.go`): declared flags per instruction, arity checks,
//! ONBUILD rules, HEALTHCHECK durations, `--mount` specs.
//!
//! Nothing is expanded here. The builder calls [`Instruction::expand`] with
//! the stage's ARG/ENV values when it reaches the instruction.

mod duration;
mod expand;
mod flags;
mod lint;
mod mount;
mod parse;

pub use duration::{parse_go_duration, GoDuration};
pub use mount::{parse_mount, Mount, MountType, Sharing};
pub use parse::{from_parsed, instruction_from_node};

use crate::ast::{Heredoc, Node, Span};
use crate::error::ErrorKind;
use crate::lexer::Warning;
use crate::shell::{Env, Lexer};
use crate::Directives;
use std::time::Duration;

/// A command line in shell form (run through the stage's SHELL) or exec
/// form (a JSON array, run directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    pub image: String,
    pub platform: Option<String>,
    /// Stage name from `AS name`, lower-cased.
    pub alias: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    #[default]
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    #[default]
    Sandbox,
    Insecure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub cmd: ShellOrExec,
    /// Mounts parsed with their values taken literally.
    pub mounts: Vec<Mount>,
    /// The raw `--mount` values, for [`Run::expand_mounts`].
    pub mount_specs: Vec<String>,
    pub network: NetworkMode,
    pub security: Security,
    pub heredocs: Vec<Heredoc>,
}

impl Run {
    /// Expands variables in every `--mount` value and parses it again.
    pub fn expand_mounts(&self, lexer: &Lexer, env: &dyn Env) -> Result<Vec<Mount>, ErrorKind> {
        self.mount_specs
            .iter()
            .map(|spec| {
                mount::expand_mount(spec, &mut |v| {
                    lexer.process_word(v, env).map_err(ErrorKind::Shell)
                })
            })
            .collect()
    }
}

/// A `KEY=value` pair from ENV or LABEL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// Written in the legacy `KEY value` form.
    pub legacy: bool,
}

/// One source of ADD/COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Path(String),
    /// `<<NAME`: inline content from a heredoc.
    Heredoc {
        name: String,
        content: String,
        /// False when the delimiter was quoted: no variable expansion.
        expand: bool,
    },
}

/// ADD and COPY. Flags a command does not accept stay at their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Copy {
    pub sources: Vec<Source>,
    pub dest: String,
    /// COPY only: stage or image to copy from.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub exclude: Vec<String>,
    /// COPY only.
    pub parents: bool,
    /// ADD only.
    pub checksum: Option<String>,
    /// ADD only; `None` when not given.
    pub keep_git_dir: Option<bool>,
    /// ADD only; `None` when not given.
    pub unpack: Option<bool>,
    /// Sources and destination were a JSON array.
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    pub name: String,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    None,
    Cmd {
        /// `["CMD", args…]` for exec form, `["CMD-SHELL", cmd]` for shell form.
        test: Vec<String>,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

/// ONBUILD keeps its trigger as text: BuildKit parses it only in the
/// child (so `ONBUILD COPY --bogus a b` builds the parent and fails in the
/// child); only ONBUILD, FROM and MAINTAINER triggers are refused here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnBuild {
    /// The trigger as docker stores it in the image config (`RUN echo hi`),
    /// with heredoc bodies appended.
    pub expression: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From(From),
    Run(Run),
    Cmd(ShellOrExec),
    Entrypoint(ShellOrExec),
    Label(Vec<KeyValue>),
    Maintainer(String),
    Expose(Vec<String>),
    Env(Vec<KeyValue>),
    Add(Copy),
    Copy(Copy),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<ArgDef>),
    OnBuild(OnBuild),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub instruction: Instruction,
    pub span: Span,
    /// Exact source text (continuations and heredoc bodies included).
    pub source_text: String,
    /// The logical line with continuations joined, as docker records it
    /// in history (`created_by`).
    pub original: String,
}

/// A parsed and validated Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub commands: Vec<Command>,
    pub escape: char,
    pub directives: Directives,
    pub warnings: Vec<Warning>,
    /// The syntax tree the commands came from.
    pub nodes: Vec<Node>,
}

impl Dockerfile {
    /// A word lexer configured with this file's escape character.
    pub fn lexer(&self) -> Lexer {
        Lexer::new(self.escape)
    }
}
