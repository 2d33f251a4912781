//! One stage: its FROM (a base image, an earlier stage or scratch), the
//! base's ONBUILD triggers, then its steps in order.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use dockerfile_parser::instructions::{instruction_from_node, Command, Instruction};
use image_store::model::{self, ImageConfig};
use image_store::Descriptor;

use super::options::{EventKind, PullPolicy};
use super::plan::{Base, Pairs, Stage};
use super::{vars, Builder};
use crate::cache;
use crate::error::BuildError;
use crate::steps::{output, run};

/// What a finished (or running) stage has made so far.
#[derive(Debug, Clone)]
pub(crate) struct State {
    pub(crate) config: ImageConfig,
    pub(crate) layers: Vec<Descriptor>,
    pub(crate) key: String,
    pub(crate) cache_ok: bool,
    pub(crate) cmd_set: bool,
    /// Build args declared in this stage, with values.
    pub(crate) args: Vec<(String, String)>,
    /// Every ARG name declared in this stage, in order (with or without a
    /// value): BuildKit lists them in RUN history entries.
    pub(crate) declared: Vec<String>,
    /// Hash indexes over `args`, `declared` and the config's env.
    pub(crate) vars: vars::VarIndex,
    /// Layers and history entries that came with the base (for --squash).
    pub(crate) base_layers: usize,
    pub(crate) base_history: usize,
}

/// The steps BuildKit makes a vertex of (besides FROM an image): the
/// others only change the image config.
pub(crate) fn makes_vertex(i: &Instruction) -> bool {
    matches!(
        i,
        Instruction::Run(_) | Instruction::Copy(_) | Instruction::Add(_) | Instruction::Workdir(_)
    )
}

/// One stage being built: the shared builder plus this stage's progress
/// and the states of the stages it depends on.
pub(crate) struct StageRun<'b, 'a> {
    pub(crate) b: &'b Builder<'a>,
    pub(crate) stage: &'b Stage,
    pub(crate) done: BTreeMap<usize, State>,
    pub(crate) step: usize,
    pub(crate) total: usize,
    /// Steps so far that BuildKit makes a vertex of (its `[n/N]` count).
    pub(crate) vertex: usize,
}

impl<'a> std::ops::Deref for StageRun<'_, 'a> {
    type Target = Builder<'a>;
    fn deref(&self) -> &Builder<'a> {
        self.b
    }
}

impl StageRun<'_, '_> {
    /// This stage's 1-based number among the stages the build runs.
    pub(crate) fn number(&self) -> usize {
        self.numbers[&self.stage.index]
    }

    pub(crate) fn emit(&self, kind: EventKind) {
        self.b.emit(self.number(), kind);
    }

    /// `vertex`: what BuildKit's vertex for this step is called, without
    /// its `[stage n/N]` prefix (`None`: BuildKit makes no vertex of it).
    pub(crate) fn begin_step(
        &mut self,
        text: &str,
        vertex: Option<&str>,
    ) -> Result<(), BuildError> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(BuildError::Cancelled);
        }
        self.step += 1;
        let (number, total) = (self.step, self.total.max(self.step));
        // A huge instruction is shown cut, not printed whole.
        let text = output::truncate_command(text);
        let vertex = vertex.map(|v| self.vertex_name(&output::truncate_command(v)));
        self.emit(EventKind::Step {
            number,
            total,
            text: &text,
            vertex: vertex.as_deref(),
        });
        Ok(())
    }

    /// BuildKit's vertex name: `[NAME n/N] TEXT`, NAME the stage's (or
    /// `stage-INDEX`), left out when the Dockerfile has one stage; N counts
    /// the stage's FROM of an image and its ADD, COPY, RUN and WORKDIR, n
    /// is right-aligned to N's width (dockerfile2llb's prefixCommand).
    fn vertex_name(&mut self, text: &str) -> String {
        self.vertex += 1;
        let total = self.vertex_total();
        let mut name = String::from("[");
        if self.plan.stages.len() > 1 {
            match &self.stage.name {
                Some(n) => name.push_str(n),
                None => name.push_str(&format!("stage-{}", self.stage.index)),
            }
            name.push(' ');
        }
        let width = total.max(1).to_string().len();
        name.push_str(&format!("{:>width$}/{total}] {text}", self.vertex));
        name
    }

    fn vertex_total(&self) -> usize {
        let from_image = matches!(&self.stage.from.instruction, Instruction::From(f)
            if matches!(self.plan.base(&f.image, self.stage.index, false), Base::Image(_)));
        usize::from(from_image)
            + self
                .stage
                .commands
                .iter()
                .filter(|c| makes_vertex(&c.instruction))
                .count()
    }

    /// A scratch path unique to this step of this stage.
    pub(crate) fn scratch_for(&self, what: &str) -> PathBuf {
        self.scratch
            .path()
            .join(format!("{what}-{}-{}", self.stage.index, self.step))
    }

    pub(crate) fn run(mut self, global_env: &[(String, String)]) -> Result<State, BuildError> {
        let state = match self.run_stage(global_env) {
            Ok(s) => s,
            Err(BuildError::Cancelled) => return Err(BuildError::Cancelled),
            Err(e) => {
                self.emit(EventKind::Failed(e.vertex_error()));
                return Err(e);
            }
        };
        self.emit(EventKind::StageDone);
        Ok(state)
    }

    pub(crate) fn run_stage(
        &mut self,
        global_env: &[(String, String)],
    ) -> Result<State, BuildError> {
        let stage = self.stage;
        let Instruction::From(f) = &stage.from.instruction else {
            unreachable!()
        };
        let image = self.lexer.process_word(&f.image, &Pairs(global_env));
        // BuildKit's FROM vertex names the image in full; scratch and
        // earlier stages make none.
        let vertex = match image
            .as_ref()
            .map(|i| self.plan.base(i, stage.index, false))
        {
            Ok(Base::Image(name)) => Some(format!(
                "FROM {}",
                name.parse::<image_store::Reference>()
                    .map(|r| r.normalized().to_string())
                    .unwrap_or(name)
            )),
            _ => None,
        };
        self.begin_step(stage.from.original.trim(), vertex.as_deref())?;
        let started = Instant::now();
        let image = image.map_err(|e| BuildError::caused_at(&stage.from, e))?;
        if let Some(p) = &f.platform {
            let p = self
                .lexer
                .process_word(p, &Pairs(global_env))
                .unwrap_or(p.clone());
            if p != format!("linux/{}", model::host_arch()) {
                return Err(BuildError::at(
                    &stage.from,
                    format!(
                        "platform {p} is not supported: kiln builds for linux/{}",
                        model::host_arch()
                    ),
                ));
            }
        }
        let base = self.plan.base(&image, stage.index, false);
        let dir_context = matches!(base, Base::Dir(..));
        let mut state = match base {
            Base::Scratch | Base::Dir(..) => State {
                // BuildKit's empty image: WorkingDir "/" (PATH is added below).
                config: {
                    let mut c = ImageConfig::for_host();
                    c.config = Some(image_store::ContainerConfig {
                        working_dir: Some("/".into()),
                        ..Default::default()
                    });
                    c
                },
                layers: Vec::new(),
                key: "scratch".into(),
                cache_ok: true,
                cmd_set: false,
                args: Vec::new(),
                declared: Vec::new(),
                vars: Default::default(),
                base_layers: 0,
                base_history: 0,
            },
            Base::Stage(d) => {
                let mut s = self
                    .done
                    .get(&d)
                    .ok_or_else(|| {
                        BuildError::at(&stage.from, "the stage it builds on was not built")
                    })?
                    .clone();
                // The stage's build args come along: BuildKit's child
                // state starts from the base's (its values expand and reach
                // RUN, and RUN history lists them).
                s.cmd_set = false;
                s
            }
            Base::Image(name) => {
                let img = self.image(&name).map_err(|e| {
                    let hint = match self.opts.pull {
                        PullPolicy::Never => {
                            " (--pull=never: `kiln pull` or `kiln import` it first)"
                        }
                        _ => "",
                    };
                    BuildError::at(&stage.from, format!("{e}{hint}"))
                })?;
                State {
                    key: cache::image_key(img.id()),
                    base_layers: img.manifest.layers.len(),
                    config: img.config,
                    layers: img.manifest.layers,
                    cache_ok: true,
                    cmd_set: false,
                    args: Vec::new(),
                    declared: Vec::new(),
                    vars: Default::default(),
                    base_history: 0,
                }
            }
        };
        state.base_layers = state.layers.len();
        state.base_history = state.config.history.len();
        // BuildKit makes sure every stage has a PATH.
        let cfg = state.config.config.get_or_insert_with(Default::default);
        if cfg.get_env("PATH").is_none() {
            cfg.env
                .get_or_insert_with(Vec::new)
                .push(format!("PATH={}", run::DEFAULT_PATH));
        }
        self.emit(EventKind::StepDone {
            secs: started.elapsed().as_secs_f64(),
        });

        // ONBUILD triggers of the base run now, once, and are not inherited.
        let mut cfg = state.config.container_config();
        let triggers = cfg.on_build.take().unwrap_or_default();
        state.config.config = Some(cfg);
        // A directory context as a base: scratch plus one layer of its
        // files, as BuildKit makes it, written by the COPY step.
        if dir_context {
            let copy = format!("COPY --from={image} . /");
            let parsed = dockerfile_parser::parse(&copy)
                .map_err(|e| BuildError::at(&stage.from, e.to_string()))?;
            let instruction = instruction_from_node(&parsed.nodes[0])
                .map_err(|e| BuildError::at(&stage.from, e.to_string()))?;
            let cmd = Command {
                instruction,
                span: stage.from.span,
                source_text: copy.clone(),
                original: copy,
            };
            self.total += 1;
            self.step_command(&cmd, &mut state)?;
        }
        for t in triggers {
            let parsed = dockerfile_parser::parse(&t)
                .map_err(|e| BuildError::at(&stage.from, format!("ONBUILD trigger {t:?}: {e}")))?;
            for node in &parsed.nodes {
                let instruction = instruction_from_node(node).map_err(|e| {
                    BuildError::at(&stage.from, format!("ONBUILD trigger {t:?}: {e}"))
                })?;
                let cmd = Command {
                    instruction,
                    span: stage.from.span,
                    source_text: t.clone(),
                    original: t.clone(),
                };
                self.total += 1;
                self.step_command(&cmd, &mut state)?;
            }
        }
        for cmd in &stage.commands {
            self.step_command(cmd, &mut state)?;
        }
        Ok(state)
    }

    /// The environment instructions are expanded with: the image's ENV
    /// over the stage's build args (indexed, nothing copied).
    pub(crate) fn expansion_env<'s>(&self, state: &'s State) -> vars::StageEnv<'s> {
        vars::StageEnv {
            index: &state.vars,
            args: &state.args,
            env: state
                .config
                .config
                .as_ref()
                .and_then(|c| c.env.as_deref())
                .unwrap_or(&[]),
        }
    }
}
