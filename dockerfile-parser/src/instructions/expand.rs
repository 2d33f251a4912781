//! Variable expansion of typed instructions, done by the builder when it
//! reaches an instruction.

use super::{Instruction, Source};
use crate::shell::{Env, Lexer, ShellError};
use std::collections::BTreeSet;

/// Expansion of instruction arguments with the stage's variables, as
/// BuildKit does before dispatching. RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK
/// are left to the shell and ONBUILD to the child image. `COPY --from` and
/// `--exclude` are not expanded here (BuildKit resolves `--from` against
/// build args when it orders stages); RUN mounts have
/// [`super::Run::expand_mounts`].
impl Instruction {
    /// Expands variables in place. Returns the names of referenced but
    /// unset variables.
    pub fn expand(&mut self, lexer: &Lexer, env: &dyn Env) -> Result<BTreeSet<String>, ShellError> {
        let mut unmatched = BTreeSet::new();
        // Heredoc bodies keep their quotes: only variables are expanded.
        let mut raw_lexer = Lexer::new('\\');
        raw_lexer.skip_process_quotes = true;
        let mut expand_with = |lex: &Lexer, s: &mut String| -> Result<(), ShellError> {
            let e = lex.process(s, env)?;
            unmatched.extend(e.unmatched);
            *s = e.result;
            Ok(())
        };
        let mut word = |s: &mut String| expand_with(lexer, s);
        match self {
            Instruction::From(f) => {
                word(&mut f.image)?;
                if let Some(p) = f.platform.as_mut() {
                    word(p)?;
                }
            }
            Instruction::Env(kvs) | Instruction::Label(kvs) => {
                for kv in kvs {
                    word(&mut kv.key)?;
                    word(&mut kv.value)?;
                }
            }
            Instruction::Add(c) | Instruction::Copy(c) => {
                for o in [&mut c.chown, &mut c.chmod, &mut c.checksum]
                    .into_iter()
                    .flatten()
                {
                    word(o)?;
                }
                for s in &mut c.sources {
                    if let Source::Path(p) = s {
                        word(p)?;
                    }
                }
                word(&mut c.dest)?;
                for s in &mut c.sources {
                    if let Source::Heredoc {
                        content,
                        expand: true,
                        ..
                    } = s
                    {
                        let e = raw_lexer.process(content, env)?;
                        unmatched.extend(e.unmatched);
                        *content = e.result;
                    }
                }
            }
            Instruction::Expose(v) | Instruction::Volume(v) => {
                for s in v {
                    word(s)?;
                }
            }
            Instruction::User(s) | Instruction::Workdir(s) | Instruction::StopSignal(s) => word(s)?,
            Instruction::Arg(defs) => {
                for d in defs {
                    word(&mut d.name)?;
                    if let Some(v) = d.default.as_mut() {
                        word(v)?;
                    }
                }
            }
            Instruction::Run(_)
            | Instruction::Cmd(_)
            | Instruction::Entrypoint(_)
            | Instruction::Maintainer(_)
            | Instruction::OnBuild(_)
            | Instruction::Healthcheck(_)
            | Instruction::Shell(_) => {}
        }
        Ok(unmatched)
    }
}
