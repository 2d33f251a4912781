//! ARG: a build arg comes into scope (from `--build-arg`, its default,
//! the global ARG or the builtin platform args).

use std::time::Instant;

use dockerfile_parser::instructions::{ArgDef, Command};

use crate::cache::KeyHasher;
use crate::error::BuildError;
use crate::stages::{StageRun, State};

impl StageRun<'_, '_> {
    pub(crate) fn arg_step(
        &mut self,
        defs: &[ArgDef],
        cmd: &Command,
        state: &mut State,
        started: Instant,
    ) -> Result<(), BuildError> {
        let mut words = Vec::with_capacity(defs.len());
        let mut k = KeyHasher::new(&state.key);
        for d in defs {
            let global = self.plan.global_args.iter().find(|(k, _)| *k == d.name);
            let builtin = self.builtin_args.iter().find(|(k, _)| *k == d.name);
            let value = match self.opts.build_args.get(&d.name) {
                Some(Some(v)) => Some(v.clone()),
                Some(None) => std::env::var(&d.name).ok().or(d.default.clone()),
                None => d
                    .default
                    .clone()
                    .or_else(|| global.and_then(|(_, v)| v.clone()))
                    .or_else(|| builtin.map(|(_, v)| v.clone())),
            };
            self.used_args
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(d.name.clone());
            // Declared again without a value, an ARG keeps the value it
            // had (BuildKit only adds to the step's environment).
            if let Some(v) = &value {
                state.vars.set_arg(&mut state.args, &d.name, v);
            }
            if state.vars.declare(&d.name) {
                state.declared.push(d.name.clone());
            }
            // The parent key covers earlier args; this one adds itself.
            k.part("arg", format!("{}={value:?}", d.name).as_bytes());
            words.push(match value {
                Some(v) => format!("{}={v}", d.name),
                None => d.name.clone(),
            });
        }
        // ARG changes what later steps see, and the history (an empty
        // layer entry, as BuildKit writes), not the filesystem.
        let created_by = format!("ARG {}", words.join(" "));
        self.empty_layer_step(state, k.finish(), cmd, created_by, started)
    }
}
