//! Steps that change only the image config (ENV, CMD, ENTRYPOINT, LABEL,
//! USER, WORKDIR's value, ...): no container, no layer.

use dockerfile_parser::instructions::{Command, Instruction};

use crate::error::BuildError;
use crate::stages::State;

/// Applies a config-only instruction to the stage's config.
pub(crate) fn apply(
    instr: &Instruction,
    cmd: &Command,
    state: &mut State,
) -> Result<(), BuildError> {
    let mut author = state.config.author.take();
    let cfg = state.config.config.get_or_insert_with(Default::default);
    let mut dispatch = crate::config::Dispatch {
        cmd_set: state.cmd_set,
    };
    match instr {
        // Through the index: O(1) per variable.
        Instruction::Env(kvs) => {
            let env = cfg.env.get_or_insert_with(Vec::new);
            for kv in kvs {
                state.vars.set_env(env, &kv.key, &kv.value);
            }
        }
        _ => {
            crate::config::apply(cfg, &mut author, &mut dispatch, instr)
                .map_err(|e| BuildError::caused_at(cmd, e))?;
        }
    }
    if matches!(instr, Instruction::Cmd(_)) {
        // BuildKit marks CMD as already escaped (children inherit it).
        cfg.args_escaped = Some(true);
    }
    state.cmd_set = dispatch.cmd_set;
    state.config.author = author;
    Ok(())
}
