//! The 127-layer limit of the union filesystem, checked by counting the
//! target's layers before any step runs.

use std::collections::BTreeMap;

use dockerfile_parser::instructions::Instruction;

use super::plan::{counts_as_layer, Base, Pairs, MAX_LAYERS};
use super::Builder;
use crate::error::BuildError;

impl Builder<'_> {
    /// Counts the layers the target will have and fails, naming the step
    /// that crosses the limit, before any work is done.
    pub(crate) fn check_layer_limit(
        &self,
        needed: &[usize],
        global_env: &[(String, String)],
    ) -> Result<(), BuildError> {
        let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
        for &i in needed {
            let stage = &self.plan.stages[i];
            let Instruction::From(f) = &stage.from.instruction else {
                unreachable!()
            };
            let name = self
                .lexer
                .process_word(&f.image, &Pairs(global_env))
                .unwrap_or(f.image.clone());
            let (mut n, triggers) = match self.plan.base(&name, i, false) {
                // A directory context is one layer of its files.
                Base::Scratch => (0, 0),
                Base::Dir(..) => (1, 0),
                Base::Stage(d) => (counts[&d], 0),
                Base::Image(img) => match self.image(&img) {
                    Ok(im) => {
                        let t = im
                            .config
                            .container_config()
                            .on_build
                            .unwrap_or_default()
                            .iter()
                            .filter(|t| {
                                let w = t
                                    .split_whitespace()
                                    .next()
                                    .unwrap_or("")
                                    .to_ascii_uppercase();
                                matches!(w.as_str(), "RUN" | "COPY" | "ADD" | "WORKDIR")
                            })
                            .count();
                        (im.manifest.layers.len(), t)
                    }
                    Err(_) => (0, 0), // reported when the stage runs
                },
            };
            let base = n + triggers;
            n = base;
            let check = i == self.plan.target && !self.opts.squash;
            for c in &stage.commands {
                if counts_as_layer(&c.instruction) {
                    n += 1;
                    if check && n > MAX_LAYERS {
                        let total = n + stage
                            .commands
                            .iter()
                            .skip_while(|x| !std::ptr::eq(*x, c))
                            .skip(1)
                            .filter(|x| counts_as_layer(&x.instruction))
                            .count();
                        return Err(BuildError::at(
                            c,
                            format!(
                                "{} would produce {total} layers; the limit is {MAX_LAYERS} (use --squash to merge the layers above the base into one)",
                                c.original.trim()
                            ),
                        ));
                    }
                }
            }
            if i == self.plan.target && self.opts.squash {
                n = base + 1;
                if n > MAX_LAYERS {
                    return Err(BuildError::at(
                        &stage.from,
                        format!(
                            "the base image already has {base} layers; the limit is {MAX_LAYERS}"
                        ),
                    ));
                }
            }
            counts.insert(i, n);
        }
        Ok(())
    }
}
