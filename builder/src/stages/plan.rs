//! From a parsed Dockerfile to stages: global ARGs, stage names, which
//! stages the target needs, and how many layers the result will have —
//! all decided before any step runs.

use std::collections::{BTreeMap, BTreeSet};

use dockerfile_parser::instructions::{Command, Instruction, MountType};
use dockerfile_parser::shell::Lexer;
use dockerfile_parser::Dockerfile;

use crate::error::BuildError;

pub use image_store::model::MAX_LAYERS;

#[derive(Debug, Clone)]
pub struct Stage {
    pub index: usize,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The FROM command itself.
    pub from: Command,
    /// Everything after FROM, up to the next FROM.
    pub commands: Vec<Command>,
}

#[derive(Debug)]
pub struct Plan {
    /// ARGs before the first FROM, with their values after `--build-arg`.
    pub global_args: Vec<(String, Option<String>)>,
    pub stages: Vec<Stage>,
    pub target: usize,
    /// `--build-context` names (looked up after stage names).
    pub named: BTreeMap<String, super::NamedContext>,
}

/// Where a FROM or `--from` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    Stage(usize),
    Image(String),
    /// A named context that is a directory (`--build-context NAME=DIR`)
    /// and its `.dockerignore` patterns.
    Dir(std::path::PathBuf, Vec<String>),
}

impl Plan {
    pub fn new(
        df: &Dockerfile,
        target: Option<&str>,
        build_args: &BTreeMap<String, Option<String>>,
        builtin: &[(String, String)],
    ) -> Result<Plan, BuildError> {
        let mut global_args = Vec::new();
        let mut stages: Vec<Stage> = Vec::new();
        let lexer = df.lexer();
        for cmd in &df.commands {
            match &cmd.instruction {
                Instruction::From(f) => stages.push(Stage {
                    index: stages.len(),
                    name: f.alias.clone(),
                    from: cmd.clone(),
                    commands: Vec::new(),
                }),
                Instruction::Arg(defs) if stages.is_empty() => {
                    for d in defs {
                        // A default may use earlier global args.
                        let env = args_env(&global_args, builtin);
                        let default = match &d.default {
                            Some(v) => Some(
                                lexer
                                    .process_word(v, &env)
                                    .map_err(|e| BuildError::caused_at(cmd, e))?,
                            ),
                            None => None,
                        };
                        let value = match build_args.get(&d.name) {
                            Some(Some(v)) => Some(v.clone()),
                            Some(None) => std::env::var(&d.name).ok().or(default),
                            None => default,
                        };
                        global_args.push((d.name.clone(), value));
                    }
                }
                _ => match stages.last_mut() {
                    Some(s) => s.commands.push(cmd.clone()),
                    None => return Err(BuildError::at(cmd, "no build stage in current context")),
                },
            }
        }
        if stages.is_empty() {
            return Err(BuildError::Invalid(
                "the Dockerfile has no FROM instruction".into(),
            ));
        }
        let target = match target {
            None => stages.len() - 1,
            Some(t) => {
                let t = t.to_lowercase();
                stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(t.as_str()))
                    .ok_or_else(|| {
                        BuildError::Invalid(format!("target stage {t:?} could not be found"))
                    })?
            }
        };
        Ok(Plan {
            global_args,
            stages,
            target,
            named: BTreeMap::new(),
        })
    }

    /// Resolves a FROM image name or a `--from` value (a stage name, a
    /// stage index, or an image) as seen from stage `at`.
    pub fn base(&self, name: &str, at: usize, allow_index: bool) -> Base {
        if name == "scratch" {
            return Base::Scratch;
        }
        let lower = name.to_lowercase();
        if let Some(s) = self.stages[..at]
            .iter()
            .rev()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Base::Stage(s.index);
        }
        if allow_index {
            if let Ok(i) = name.parse::<usize>() {
                if i < at {
                    return Base::Stage(i);
                }
            }
        }
        match self.named.get(name) {
            Some(super::NamedContext::Image(r)) => Base::Image(r.clone()),
            Some(super::NamedContext::Dir(d, ignore)) => Base::Dir(d.clone(), ignore.clone()),
            None => Base::Image(name.to_string()),
        }
    }

    /// The stages `target` needs, in build order (dependencies first).
    pub fn needed(&self, from_names: &dyn Fn(&Stage) -> Vec<(String, bool)>) -> Vec<usize> {
        let mut seen = BTreeSet::new();
        let mut order = Vec::new();
        self.visit(self.target, from_names, &mut seen, &mut order);
        order
    }

    /// The stages stage `i` uses directly (FROM, `--from`, mounts).
    pub fn deps(&self, i: usize, from_names: &dyn Fn(&Stage) -> Vec<(String, bool)>) -> Vec<usize> {
        let mut out: Vec<usize> = from_names(&self.stages[i])
            .into_iter()
            .filter_map(
                |(name, allow_index)| match self.base(&name, i, allow_index) {
                    Base::Stage(d) => Some(d),
                    _ => None,
                },
            )
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    fn visit(
        &self,
        i: usize,
        from_names: &dyn Fn(&Stage) -> Vec<(String, bool)>,
        seen: &mut BTreeSet<usize>,
        order: &mut Vec<usize>,
    ) {
        if !seen.insert(i) {
            return;
        }
        for (name, allow_index) in from_names(&self.stages[i]) {
            if let Base::Stage(d) = self.base(&name, i, allow_index) {
                self.visit(d, from_names, seen, order);
            }
        }
        order.push(i);
    }
}

/// Global args as an expansion environment (builtin platform args first,
/// so a declared arg overrides them).
pub fn args_env(
    args: &[(String, Option<String>)],
    builtin: &[(String, String)],
) -> Vec<(String, String)> {
    builtin
        .iter()
        .cloned()
        .chain(
            args.iter()
                .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), v.clone()))),
        )
        .collect()
}

/// Names a stage refers to (FROM, COPY --from, RUN --mount from=), each
/// with whether a numeric stage index is allowed there. Values are
/// expanded with the global args only, enough to find stage names.
pub fn referenced_names(
    stage: &Stage,
    lexer: &Lexer,
    env: &[(String, String)],
) -> Vec<(String, bool)> {
    references(stage, lexer, env)
        .into_iter()
        .map(|(name, index, _)| (name, index))
        .collect()
}

/// [`referenced_names`] with the command each name appears in.
pub fn references<'s>(
    stage: &'s Stage,
    lexer: &Lexer,
    env: &[(String, String)],
) -> Vec<(String, bool, &'s Command)> {
    let expand = |s: &str| {
        lexer
            .process_word(s, &Pairs(env))
            .unwrap_or_else(|_| s.to_string())
    };
    let mut out = Vec::new();
    if let Instruction::From(f) = &stage.from.instruction {
        out.push((expand(&f.image), false, &stage.from));
    }
    for c in &stage.commands {
        match &c.instruction {
            Instruction::Copy(cp) | Instruction::Add(cp) => {
                if let Some(f) = &cp.from {
                    out.push((expand(f), true, c));
                }
            }
            Instruction::Run(r) => {
                for m in &r.mounts {
                    if let Some(f) = &m.from {
                        if matches!(m.kind, MountType::Bind | MountType::Cache) {
                            out.push((expand(f), true, c));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Does this instruction add a layer?
pub fn makes_layer(i: &Instruction) -> bool {
    matches!(
        i,
        Instruction::Run(_) | Instruction::Copy(_) | Instruction::Add(_)
    )
}

/// Counted against the layer limit before anything runs: RUN, COPY, ADD
/// and WORKDIR (which makes its directory in a layer unless it is `/`; a
/// value still to be expanded is counted).
pub fn counts_as_layer(i: &Instruction) -> bool {
    match i {
        Instruction::Workdir(w) => w != "/",
        i => makes_layer(i),
    }
}

/// Name/value pairs as an expansion environment (the last one wins).
pub struct Pairs<'a>(pub &'a [(String, String)]);

impl dockerfile_parser::shell::Env for Pairs<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        dockerfile_parser::shell::Env::get(self.0, name)
    }
}
