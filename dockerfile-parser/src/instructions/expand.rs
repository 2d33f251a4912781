//! Variable expansion of typed instructions, done by the builder when it
//! reaches an instruction.

use super::{Instruction, Source};
use crate::shell::{Env, Lexer, ShellError};
use std::collections::BTreeSet;

/// Expansion of instruction arguments with the stage's variables, as
/// BuildKit does before dispatching (RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK
/// and ONBUILD are left to the shell or the child image).
impl Instruction {
    /// Expands variables in place. Returns the names of referenced but
    /// unset variables.
    pub fn expand(&mut self, lexer: &Lexer, env: &dyn Env) -> Result<BTreeSet<String>, ShellError> {
        let mut unmatched = BTreeSet::new();
        let mut word = |s: &mut String| -> Result<(), ShellError> {
            let e = lexer.process(s, env)?;
            unmatched.extend(e.unmatched);
            *s = e.result;
            Ok(())
        };
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
                for s in &mut c.sources {
                    if let Source::Path(p) = s {
                        word(p)?;
                    }
                }
                word(&mut c.dest)?;
                for o in [&mut c.from, &mut c.chown, &mut c.chmod, &mut c.checksum]
                    .into_iter()
                    .flatten()
                {
                    word(o)?;
                }
                for e in &mut c.exclude {
                    word(e)?;
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
