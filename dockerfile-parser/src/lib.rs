//! Dockerfile text → syntax tree with source spans, typed instructions, and
//! BuildKit-compatible shell word expansion. Pure: no I/O, no execution.
//!
//! * [`parse`] gives the syntax tree ([`Parsed`]), which matches BuildKit's
//!   parser and dumps with [`dump()`] exactly like `Node.Dump()`.
//! * [`instructions::from_parsed`] (or [`parse_dockerfile`]) validates it
//!   into typed [`Instruction`]s for the builder.
//! * [`shell::Lexer`] expands words with the builder's ARG/ENV values.
//!
//! ```
//! use dockerfile_parser::{parse_dockerfile, Instruction};
//! use dockerfile_parser::shell::env_from_pairs;
//!
//! let df = parse_dockerfile("FROM alpine\nWORKDIR /src/$APP\n").unwrap();
//! let mut workdir = df.commands[1].instruction.clone();
//! let unset = workdir.expand(&df.lexer(), &env_from_pairs(["APP=web"])).unwrap();
//! assert_eq!(workdir, Instruction::Workdir("/src/web".into()));
//! assert!(unset.is_empty());
//! assert_eq!(df.commands[1].original, "WORKDIR /src/$APP");
//! ```

pub mod ast;
mod directives;
pub mod dump;
pub mod error;
pub mod instructions;
mod lexer;
pub mod shell;

pub use ast::{Heredoc, Node, Span};
pub use directives::Directives;
pub use dump::dump;
pub use error::{ErrorKind, ParseError, ParseErrors};
pub use instructions::{Command, Dockerfile, Instruction};
pub use lexer::{parse, parse_heredoc, Parsed, Warning};

/// [`parse`] for raw file contents: a UTF-8 BOM is skipped and invalid
/// UTF-8 sequences become U+FFFD (BuildKit works on bytes; only the dump of
/// such bytes can differ).
pub fn parse_bytes(bytes: &[u8]) -> Result<Parsed, ParseErrors> {
    parse(&String::from_utf8_lossy(bytes))
}

/// Parses and validates a Dockerfile in one step.
pub fn parse_dockerfile(text: &str) -> Result<Dockerfile, ParseErrors> {
    let parsed = parse(text)?;
    instructions::from_parsed(parsed)
}

/// The S-expression dump of a Dockerfile's syntax tree, as printed by
/// `kiln build --print-ast` (identical to BuildKit's `Node.Dump()` plus a
/// final newline).
pub fn dump_ast(text: &str) -> Result<String, ParseErrors> {
    parse(text).map(|p| dump(&p.nodes))
}
