//! `kiln build`: a Dockerfile and a context in, an image in the store out.
//!
//! Stages run in dependency order, only those the target needs. Every step
//! gets a cache key (parent key + expanded instruction + the build args it
//! sees + for COPY/ADD the content of what it reads); a hit reuses the
//! step's record without running anything, a miss runs it and every later
//! step of the stage. The layer count is checked before anything runs.

mod cache;
mod copy;
mod error;
mod git;
mod history;
mod lower;
mod output;
mod owner;
mod plan;
mod run;
mod vars;
mod view;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use dockerfile_parser::instructions::{
    instruction_from_node, Command, Instruction, MountType, NetworkMode,
};
use dockerfile_parser::shell::{Env, Lexer};
use dockerfile_parser::Dockerfile;
use image_store::diff::{write_tar_from_dir, DiffOptions};
use image_store::model::{self, media, History, ImageConfig};
use image_store::{Descriptor, Digest, Reference, Store};
use runner::spec::{MountSpec, Network};

pub use cache::{prune as prune_cache, Pruned};
pub use error::BuildError;
pub use plan::MAX_LAYERS;
pub use view::private_mount_namespace;

use cache::{Cache, KeyHasher, Record, StatIndex};
use lower::Lowers;
use plan::{counts_as_layer, makes_layer, Base, Pairs, Plan, Stage};

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub dockerfile: String,
    /// For error messages (`Dockerfile:3: …`).
    pub dockerfile_name: String,
    /// The build context; `None` when the Dockerfile came on stdin alone.
    pub context: Option<PathBuf>,
    /// `.dockerignore` patterns already read for this build.
    pub ignore_patterns: Vec<String>,
    pub tags: Vec<Reference>,
    /// `--build-arg K=V` (`K` alone takes the value from the environment).
    pub build_args: BTreeMap<String, Option<String>>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub labels: Vec<(String, String)>,
    pub squash: bool,
    pub network: Option<Network>,
    /// `--secret id=ID,src=PATH`.
    pub secrets: BTreeMap<String, PathBuf>,
    pub quiet: bool,
    /// `SOURCE_DATE_EPOCH`: times in the image clamped to it.
    pub source_date_epoch: Option<u64>,
    /// An external OCI runtime for RUN steps.
    pub runtime: Option<PathBuf>,
    /// When base images are pulled through the [`transfer::Puller`].
    pub pull: PullPolicy,
    /// RUN output comes as [`EventKind::Output`] lines instead of going
    /// straight to standard error (for a progress display that owns the
    /// terminal).
    pub capture_output: bool,
}

/// `--pull`: when a base image (FROM, `COPY --from`, a mount's `from`) is
/// fetched rather than taken from the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Only when the store does not have it (docker's default).
    #[default]
    Missing,
    /// Every time, so the build sees the registry's current image.
    Always,
    /// Never: a missing image is an error.
    Never,
}

/// Progress, for the CLI to show as it likes. Stages that do not depend on
/// each other run at the same time, so every event names its stage.
#[derive(Debug)]
pub struct Event<'a> {
    /// 1-based among the stages this build runs; 0 for the build as a whole.
    pub stage: usize,
    /// How many stages this build runs.
    pub stages: usize,
    pub kind: EventKind<'a>,
}

#[derive(Debug)]
pub enum EventKind<'a> {
    /// A step starts; `number` and `total` count within the stage.
    Step {
        number: usize,
        total: usize,
        text: &'a str,
    },
    CacheHit,
    /// The first cache miss of a stage, and why.
    CacheMiss {
        reason: String,
    },
    StepDone {
        secs: f64,
    },
    /// A line a RUN step printed (only with [`BuildOptions::capture_output`]).
    Output(&'a str),
    /// The stage is finished.
    StageDone,
    Warning(String),
}

#[derive(Debug)]
pub struct BuildOutput {
    pub id: Digest,
    pub manifest: Descriptor,
}

/// What a finished (or running) stage has made so far.
#[derive(Debug, Clone)]
struct State {
    config: ImageConfig,
    layers: Vec<Descriptor>,
    key: String,
    cache_ok: bool,
    cmd_set: bool,
    /// Build args declared in this stage, with values.
    args: Vec<(String, String)>,
    /// Every ARG name declared in this stage, in order (with or without a
    /// value): BuildKit lists them in RUN history entries.
    declared: Vec<String>,
    /// Hash indexes over `args`, `declared` and the config's env.
    vars: vars::VarIndex,
    /// Layers and history entries that came with the base (for --squash).
    base_layers: usize,
    base_history: usize,
}

/// What every stage of a build shares. Stages run on their own threads,
/// so the mutable parts sit behind locks.
struct Builder<'a> {
    store: &'a Store,
    opts: &'a BuildOptions,
    plan: Plan,
    lexer: Lexer,
    cache: Cache,
    index: Option<StatIndex>,
    context: Option<crate::context::BuildContext>,
    builtin_args: Vec<(String, String)>,
    used_args: Mutex<BTreeSet<String>>,
    scratch: PathBuf,
    events: Mutex<&'a mut (dyn FnMut(Event) + Send)>,
    /// Stage index → its 1-based number among the stages this build runs.
    numbers: BTreeMap<usize, usize>,
    /// Set once a stage has failed: the others stop at their next step.
    failed: AtomicBool,
    source: Option<&'a transfer::Puller>,
    /// Images looked up by name, so the store's index is read once per
    /// build, not once per FROM, count and `--from`.
    resolved: Mutex<BTreeMap<String, image_store::Image>>,
    now: String,
    now_secs: u64,
}

/// One stage being built: the shared builder plus this stage's progress
/// and the states of the stages it depends on.
struct StageRun<'b, 'a> {
    b: &'b Builder<'a>,
    stage: &'b Stage,
    done: BTreeMap<usize, State>,
    step: usize,
    total: usize,
}

impl<'a> std::ops::Deref for StageRun<'_, 'a> {
    type Target = Builder<'a>;
    fn deref(&self) -> &Builder<'a> {
        self.b
    }
}

/// Builds the Dockerfile in `opts`; base images missing from the store
/// are pulled by `source` (per [`BuildOptions::pull`]).
pub fn build(
    store: &Store,
    opts: &BuildOptions,
    source: Option<&transfer::Puller>,
    events: &mut (dyn FnMut(Event) + Send),
) -> Result<BuildOutput, BuildError> {
    let name = if opts.dockerfile_name.is_empty() {
        "Dockerfile"
    } else {
        &opts.dockerfile_name
    };
    build_inner(store, opts, source, events).map_err(|e| e.with_file(name))
}

fn build_inner<'a>(
    store: &'a Store,
    opts: &'a BuildOptions,
    source: Option<&'a transfer::Puller>,
    events: &'a mut (dyn FnMut(Event) + Send),
) -> Result<BuildOutput, BuildError> {
    let df: Dockerfile =
        dockerfile_parser::parse_dockerfile(&opts.dockerfile).map_err(BuildError::Parse)?;
    let builtin_args = platform_args();
    let plan = Plan::new(&df, opts.target.as_deref(), &opts.build_args, &builtin_args)?;
    let lexer = df.lexer();
    let context = match &opts.context {
        Some(dir) => Some(
            crate::context::BuildContext::new(dir, &opts.ignore_patterns)
                .map_err(|e| BuildError::Invalid(e.to_string()))?,
        ),
        None => None,
    };
    let index = opts.context.as_ref().map(|c| StatIndex::open(store, c));
    let scratch = store
        .kiln_dir()
        .join("build")
        .join(format!("{}", std::process::id()));
    let (now, now_secs) = match opts.source_date_epoch {
        Some(e) => (
            model::format_time(chrono::DateTime::from_timestamp(e as i64, 0).unwrap_or_default()),
            e,
        ),
        None => (model::now(), chrono::Utc::now().timestamp().max(0) as u64),
    };
    let mut b = Builder {
        store,
        opts,
        plan,
        lexer,
        cache: Cache::new(store, !opts.no_cache),
        index,
        context,
        builtin_args,
        used_args: Mutex::new(BTreeSet::new()),
        scratch,
        events: Mutex::new(events),
        numbers: BTreeMap::new(),
        failed: AtomicBool::new(false),
        source,
        resolved: Mutex::new(BTreeMap::new()),
        now,
        now_secs,
    };
    let _writer = store.writer_lock()?;
    let result = b.run();
    let _ = std::fs::remove_dir_all(&b.scratch);
    if let Some(i) = &b.index {
        i.save();
    }
    result
}

impl<'a> Builder<'a> {
    fn run(&mut self) -> Result<BuildOutput, BuildError> {
        let global_env = plan::args_env(&self.plan.global_args, &self.builtin_args);
        let lexer = self.lexer;
        let names = |s: &Stage| plan::referenced_names(s, &lexer, &global_env);
        let needed = self.plan.needed(&names);
        let deps: BTreeMap<usize, Vec<usize>> = needed
            .iter()
            .map(|&i| (i, self.plan.deps(i, &names)))
            .collect();
        self.numbers = needed
            .iter()
            .enumerate()
            .map(|(n, &i)| (i, n + 1))
            .collect();
        self.fetch_bases(&needed, &global_env)?;
        self.check_layer_limit(&needed, &global_env)?;

        let mut done = self.run_stages(&needed, &deps, &global_env)?;
        self.warn_unused_args();
        let mut state = done
            .remove(&self.plan.target)
            .expect("the target was built");
        if self.opts.squash {
            self.squash(&mut state)?;
        }
        let cfg = state.config.config.get_or_insert_with(Default::default);
        if !self.opts.labels.is_empty() {
            let labels = cfg.labels.get_or_insert_with(Default::default);
            for (k, v) in &self.opts.labels {
                labels.insert(k.clone(), v.clone());
            }
        }
        state.config.created = state
            .config
            .history
            .last()
            .and_then(|h| h.created.clone())
            .or_else(|| Some(self.now.clone()));
        let committed = self
            .store
            .commit_image(&state.config, state.layers, &self.opts.tags)?;
        Ok(BuildOutput {
            id: committed.id,
            manifest: committed.manifest,
        })
    }

    /// Runs the needed stages, each on its own thread as soon as the
    /// stages it depends on are done. The first failure stops the others
    /// at their next step and is the one reported.
    fn run_stages(
        &self,
        needed: &[usize],
        deps: &BTreeMap<usize, Vec<usize>>,
        global_env: &[(String, String)],
    ) -> Result<BTreeMap<usize, State>, BuildError> {
        if let [only] = needed {
            let state = self.stage_run(*only, BTreeMap::new()).run(global_env)?;
            return Ok(BTreeMap::from([(*only, state)]));
        }
        let done: Mutex<BTreeMap<usize, State>> = Mutex::new(BTreeMap::new());
        let changed = Condvar::new();
        let first_error: Mutex<Option<BuildError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for &i in needed {
                let (done, changed, first_error) = (&done, &changed, &first_error);
                let wanted = &deps[&i];
                scope.spawn(move || {
                    let inputs = {
                        let mut g = done.lock().unwrap_or_else(|p| p.into_inner());
                        loop {
                            if self.failed.load(Ordering::SeqCst) {
                                return;
                            }
                            if wanted.iter().all(|d| g.contains_key(d)) {
                                break wanted
                                    .iter()
                                    .map(|d| (*d, g[d].clone()))
                                    .collect::<BTreeMap<_, _>>();
                            }
                            g = changed.wait(g).unwrap_or_else(|p| p.into_inner());
                        }
                    };
                    let result = self.stage_run(i, inputs).run(global_env);
                    let mut g = done.lock().unwrap_or_else(|p| p.into_inner());
                    match result {
                        Ok(state) => {
                            g.insert(i, state);
                        }
                        Err(e) => {
                            let mut first = first_error.lock().unwrap_or_else(|p| p.into_inner());
                            if first.is_none() && !matches!(e, BuildError::Cancelled) {
                                *first = Some(e);
                            }
                            self.failed.store(true, Ordering::SeqCst);
                        }
                    }
                    drop(g);
                    changed.notify_all();
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        Ok(done.into_inner().unwrap_or_else(|p| p.into_inner()))
    }

    fn stage_run<'b>(&'b self, i: usize, done: BTreeMap<usize, State>) -> StageRun<'b, 'a> {
        let stage = &self.plan.stages[i];
        StageRun {
            b: self,
            stage,
            done,
            step: 0,
            total: 1 + stage.commands.len(),
        }
    }

    /// The store's image for `name`, looked up once per build.
    fn image(&self, name: &str) -> Result<image_store::Image, image_store::StoreError> {
        let mut cache = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(img) = cache.get(name) {
            return Ok(img.clone());
        }
        let img = self.store.resolve(name)?;
        cache.insert(name.to_string(), img.clone());
        Ok(img)
    }

    fn emit(&self, stage: usize, kind: EventKind) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        (events)(Event {
            stage,
            stages: self.numbers.len(),
            kind,
        });
    }

    /// Brings the images the needed stages use into the store first, so
    /// the layer count is known and no stage waits on the network.
    fn fetch_bases(
        &self,
        needed: &[usize],
        global_env: &[(String, String)],
    ) -> Result<(), BuildError> {
        let policy = self.opts.pull;
        let mut seen = BTreeSet::new();
        for &i in needed {
            let stage = &self.plan.stages[i];
            for (name, allow_index, cmd) in plan::references(stage, &self.lexer, global_env) {
                let Base::Image(image) = self.plan.base(&name, i, allow_index) else {
                    continue;
                };
                if !seen.insert(image.clone()) {
                    continue;
                }
                let present = self.image(&image).is_ok();
                let fetch = match policy {
                    PullPolicy::Always => true,
                    PullPolicy::Missing => !present,
                    PullPolicy::Never => false,
                };
                if !fetch {
                    continue;
                }
                let Some(source) = self.source else {
                    continue; // reported where the image is used
                };
                source
                    .pull(self.store, &image)
                    .map_err(|e| BuildError::at(cmd, format!("pulling {image}: {}", e.render())))?;
                // What the pull brought replaces what was looked up before.
                self.resolved
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&image);
            }
        }
        Ok(())
    }

    /// Counts the layers the target will have and fails, naming the step
    /// that crosses the limit, before any work is done.
    fn check_layer_limit(
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
                Base::Scratch => (0, 0),
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

impl StageRun<'_, '_> {
    /// This stage's 1-based number among the stages the build runs.
    fn number(&self) -> usize {
        self.numbers[&self.stage.index]
    }

    fn emit(&self, kind: EventKind) {
        self.b.emit(self.number(), kind);
    }

    fn begin_step(&mut self, text: &str) -> Result<(), BuildError> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(BuildError::Cancelled);
        }
        self.step += 1;
        let (number, total) = (self.step, self.total.max(self.step));
        // A huge instruction is shown cut, not printed whole.
        let text = output::truncate_command(text);
        self.emit(EventKind::Step {
            number,
            total,
            text: &text,
        });
        Ok(())
    }

    /// A scratch path unique to this step of this stage.
    fn scratch_for(&self, what: &str) -> PathBuf {
        self.scratch
            .join(format!("{what}-{}-{}", self.stage.index, self.step))
    }

    fn run(mut self, global_env: &[(String, String)]) -> Result<State, BuildError> {
        let state = self.run_stage(global_env)?;
        self.emit(EventKind::StageDone);
        Ok(state)
    }

    fn run_stage(&mut self, global_env: &[(String, String)]) -> Result<State, BuildError> {
        let stage = self.stage;
        let Instruction::From(f) = &stage.from.instruction else {
            unreachable!()
        };
        self.begin_step(stage.from.original.trim())?;
        let started = Instant::now();
        let image = self
            .lexer
            .process_word(&f.image, &Pairs(global_env))
            .map_err(|e| BuildError::at(&stage.from, e.to_string()))?;
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
        let mut state = match self.plan.base(&image, stage.index, false) {
            Base::Scratch => State {
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
    fn expansion_env<'s>(&self, state: &'s State) -> vars::StageEnv<'s> {
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

    fn step_command(&mut self, cmd: &Command, state: &mut State) -> Result<(), BuildError> {
        self.begin_step(cmd.original.trim())?;
        let started = Instant::now();
        if let Some(env) = state.config.config.as_ref().and_then(|c| c.env.as_deref()) {
            state.vars.sync(env);
        }
        let env = self.expansion_env(state);
        let mut instr = cmd.instruction.clone();
        instr
            .expand(&self.lexer, &env as &dyn Env)
            .map_err(|e| BuildError::at(cmd, e.to_string()))?;

        if let Instruction::Arg(defs) = &instr {
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
            return self.empty_layer_step(state, k.finish(), cmd, created_by, started);
        }

        let mut key = KeyHasher::new(&state.key);
        key.part("instruction", format!("{instr:?}").as_bytes());
        if matches!(instr, Instruction::Run(_)) {
            key.part("args", format!("{:?}", state.args).as_bytes());
            key.part(
                "network",
                format!("{:?}", self.network_for(&instr)).as_bytes(),
            );
        }
        // Metadata first: WORKDIR's directory is made with the new value.
        if !makes_layer(&instr) {
            let mut author = state.config.author.take();
            let cfg = state.config.config.get_or_insert_with(Default::default);
            let mut dispatch = crate::config::Dispatch {
                cmd_set: state.cmd_set,
            };
            match &instr {
                // Through the index: O(1) per variable.
                Instruction::Env(kvs) => {
                    let env = cfg.env.get_or_insert_with(Vec::new);
                    for kv in kvs {
                        state.vars.set_env(env, &kv.key, &kv.value);
                    }
                }
                _ => {
                    crate::config::apply(cfg, &mut author, &mut dispatch, &instr)
                        .map_err(|e| BuildError::at(cmd, e.to_string()))?;
                }
            }
            if matches!(instr, Instruction::Cmd(_)) {
                // BuildKit marks CMD as already escaped (children inherit it).
                cfg.args_escaped = Some(true);
            }
            state.cmd_set = dispatch.cmd_set;
            state.config.author = author;
        }
        let created_by = history::created_by(&instr, state);
        let workdir_layer = match &instr {
            Instruction::Workdir(_) => {
                let wd = state
                    .config
                    .config
                    .as_ref()
                    .and_then(|c| c.working_dir.as_deref());
                wd.is_some_and(|w| w != "/")
            }
            _ => false,
        };

        let layer = if makes_layer(&instr) || workdir_layer {
            self.layer_step(cmd, &instr, state, key)?
        } else {
            if matches!(instr, Instruction::OnBuild(_)) {
                // BuildKit stores the trigger and writes no history entry.
                self.emit(EventKind::StepDone {
                    secs: started.elapsed().as_secs_f64(),
                });
                return Ok(());
            }
            return self.empty_layer_step(state, key.finish(), cmd, created_by, started);
        };
        let (rec, key) = layer;
        let l = rec.layer.clone().expect("layer steps record a layer");
        state.key = key;
        state.config.rootfs.diff_ids.push(l.digest.clone());
        state.layers.push(l);
        state.config.history.push(History {
            created: Some(rec.created),
            created_by: Some(created_by),
            ..Default::default()
        });
        self.emit(EventKind::StepDone {
            secs: started.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    /// Writes `planned` (COPY/ADD sources, WORKDIR's new directories) as a
    /// layer blob and records it.
    fn planned_layer(
        &self,
        planned: &[copy::Planned],
        cmd: &Command,
    ) -> Result<Record, BuildError> {
        let mut w = self.store.blob_writer()?;
        copy::write_layer(planned, &mut w, self.opts.source_date_epoch)
            .map_err(|e| e.located(cmd))?;
        let (digest, size) = w.commit(None)?;
        Ok(Record {
            created: self.now.clone(),
            layer: Some(Descriptor::new(media::OCI_LAYER, digest, size)),
        })
    }

    /// Ends a step that changes only the config: its cache record (for the
    /// created time and the chain of keys) and an `empty_layer` history entry.
    fn empty_layer_step(
        &mut self,
        state: &mut State,
        key: String,
        cmd: &Command,
        created_by: String,
        started: Instant,
    ) -> Result<(), BuildError> {
        let rec = self.lookup_or(state, &key, cmd, &[], |b| {
            Ok(Record {
                created: b.now.clone(),
                layer: None,
            })
        })?;
        state.key = key;
        state.config.history.push(History {
            created: Some(rec.created),
            created_by: Some(created_by),
            empty_layer: true,
            ..Default::default()
        });
        self.emit(EventKind::StepDone {
            secs: started.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    /// A cached record for `key`, or a fresh one from `make` (then stored).
    /// `inputs` (files and args the step read) explain a first miss.
    fn lookup_or(
        &mut self,
        state: &mut State,
        key: &str,
        cmd: &Command,
        inputs: &[(String, String)],
        make: impl FnOnce(&mut Self) -> Result<Record, BuildError>,
    ) -> Result<Record, BuildError> {
        let probe = cache::KeyHasher::new(&state.key)
            .part("probe", cmd.original.trim().as_bytes())
            .clone_finish();
        if state.cache_ok {
            if let Some(rec) = self.cache.get(self.store, key) {
                self.emit(EventKind::CacheHit);
                return Ok(rec);
            }
            state.cache_ok = false;
            if !self.opts.no_cache {
                let why = match self.cache.probe(&probe) {
                    None => "new instruction, or an earlier step changed".to_string(),
                    Some(old) => cache::changed_input(&old, inputs)
                        .unwrap_or_else(|| "the instruction changed".to_string()),
                };
                let reason = format!(
                    "line {}: {} ({why})",
                    cmd.span.start_line,
                    output::truncate_command(cmd.original.trim())
                );
                self.emit(EventKind::CacheMiss { reason });
            }
        }
        let rec = make(self)?;
        self.cache
            .put(key, &rec)
            .map_err(|e| BuildError::Io(self.store.kiln_dir().join("roots"), e))?;
        self.cache.put_probe(&probe, inputs);
        Ok(rec)
    }

    fn network_for(&self, instr: &Instruction) -> Network {
        if let Instruction::Run(r) = instr {
            match r.network {
                NetworkMode::None => return Network::None,
                NetworkMode::Host => return Network::Host,
                NetworkMode::Default => {}
            }
        }
        self.opts.network.unwrap_or(Network::Host)
    }

    fn lowers(&self, state: &State) -> Result<Lowers, BuildError> {
        let dirs = state
            .layers
            .iter()
            .zip(&state.config.rootfs.diff_ids)
            .map(|(d, id)| self.store.unpacked_layer(d, id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(BuildError::Compose)?;
        Ok(Lowers { dirs })
    }

    fn layer_step(
        &mut self,
        cmd: &Command,
        instr: &Instruction,
        state: &mut State,
        mut key: KeyHasher,
    ) -> Result<(Record, String), BuildError> {
        match instr {
            Instruction::Copy(c) | Instruction::Add(c) => {
                let is_add = matches!(instr, Instruction::Add(_));
                for s in &c.sources {
                    if let dockerfile_parser::instructions::Source::Path(p) = s {
                        let url = p.starts_with("http://") || p.starts_with("https://");
                        if url && !is_add {
                            return Err(BuildError::at(
                                cmd,
                                format!("COPY cannot fetch a URL ({p}): use ADD"),
                            ));
                        }
                    }
                }
                let lowers = self.lowers(state)?;
                let cfg = state.config.container_config();
                let chown = c.chown.as_deref().map(|spec| owner::resolve(&lowers, spec));
                let chmod = match &c.chmod {
                    Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| {
                        BuildError::at(
                            cmd,
                            format!("invalid --chmod={m}: an octal mode is expected"),
                        )
                    })?),
                    None => None,
                };
                let workdir = cfg.working_dir.clone().unwrap_or_else(|| "/".into());
                let downloads = self.scratch_for("add");
                let params = copy::CopyParams {
                    scratch: &downloads,
                    copy: c,
                    is_add,
                    workdir: &workdir,
                    chown,
                    chmod,
                    now: self.now_secs,
                };
                // Sources: the context, or a stage/image view.
                let mut inputs = Vec::new();
                let mut _view = None;
                let mut _owned_ctx = None;
                let planned = match &c.from {
                    None => {
                        let Some(ctx) = self.context.as_ref() else {
                            return Err(BuildError::at(cmd, "COPY needs a build context, but the Dockerfile came from standard input"));
                        };
                        let mut root = copy::SourceRoot {
                            ctx,
                            index: self.index.as_ref(),
                            inputs: Vec::new(),
                            from: None,
                        };
                        let planned = copy::plan(&params, &mut root, &lowers, &mut key)
                            .map_err(|e| e.located(cmd))?;
                        inputs = root.inputs;
                        planned
                    }
                    Some(from) => {
                        let from = self
                            .lexer
                            .process_word(from, &self.expansion_env(state))
                            .unwrap_or(from.clone());
                        let (src_state_key, src_lowers) = self.source_of(&from, cmd)?;
                        key.part("from", src_state_key.as_bytes());
                        let target = self.scratch_for("view");
                        let v = view::View::mount(&src_lowers.dirs, &target)?;
                        let ctx = crate::context::BuildContext::new(&v.root, &[] as &[&str])
                            .map_err(|e| BuildError::Invalid(e.to_string()))?;
                        _view = Some(v);
                        let ctx = _owned_ctx.insert(ctx);
                        let mut root = copy::SourceRoot {
                            ctx,
                            index: None,
                            inputs: Vec::new(),
                            from: Some(from.clone()),
                        };
                        copy::plan(&params, &mut root, &lowers, &mut key)
                            .map_err(|e| e.located(cmd))?
                    }
                };
                let k = key.finish();
                let rec =
                    self.lookup_or(state, &k, cmd, &inputs, |b| b.planned_layer(&planned, cmd))?;
                Ok((rec, k))
            }
            Instruction::Run(r) => {
                let k = key.finish();
                let network = self.network_for(instr);
                let snapshot = state.clone();
                let state_ref = &snapshot;
                let inputs: Vec<(String, String)> = state
                    .args
                    .iter()
                    .map(|(n, v)| (format!("build arg {n}"), v.clone()))
                    .collect();
                let stage_no = self.number();
                let shared = self.b;
                let print = move |line: &str| shared.emit(stage_no, EventKind::Output(line));
                let sink: Option<&(dyn Fn(&str) + Sync)> =
                    self.opts.capture_output.then_some(&print);
                let rec = self.lookup_or(state, &k, cmd, &inputs, |b| {
                    let state = state_ref;
                    let lowers = b.lowers(state)?;
                    let dir = b.scratch_for("run");
                    let mounts = b.run_mounts(r, state, cmd, &dir)?;
                    let cfg = state.config.container_config();
                    let step = run::RunStep {
                        lowers: &lowers,
                        config: &cfg,
                        args_env: &state.args,
                        cmd: &r.cmd,
                        heredocs: &r.heredocs,
                        network,
                        mounts,
                        dir: &dir,
                        id: b.store.build_step_id(std::process::id(), &dir),
                        quiet: b.opts.quiet,
                        runtime: b.opts.runtime.as_deref(),
                        output: sink,
                    };
                    let upper = run::execute(&step).map_err(|e| e.located(cmd))?;
                    let layer = b.store_upper(&upper)?;
                    let _ = std::fs::remove_dir_all(&dir);
                    Ok(Record {
                        created: b.now.clone(),
                        layer: Some(layer),
                    })
                })?;
                Ok((rec, k))
            }
            Instruction::Workdir(_) => {
                let lowers = self.lowers(state)?;
                let cfg = state.config.container_config();
                let wd = cfg.working_dir.clone().unwrap_or_else(|| "/".into());
                // BuildKit: `mkdir -p` as the current USER (its uid and gid
                // own every directory it creates).
                let (uid, gid) = match cfg.user.as_deref().filter(|u| !u.is_empty()) {
                    Some(u) => owner::resolve(&lowers, u),
                    None => (0, 0),
                };
                key.part("workdir-owner", format!("{uid}:{gid}").as_bytes());
                let missing = lowers
                    .missing_dirs(&wd)
                    .map_err(|e| BuildError::at(cmd, format!("WORKDIR {wd}: {e}")))?;
                let k = key.finish();
                let now = self.now_secs;
                let rec = self.lookup_or(state, &k, cmd, &[], |b| {
                    let planned: Vec<copy::Planned> = missing
                        .iter()
                        .map(|d| copy::Planned {
                            dest: d.into(),
                            kind: copy::Kind::Dir,
                            mode: 0o755,
                            uid,
                            gid,
                            mtime: now,
                        })
                        .collect();
                    b.planned_layer(&planned, cmd)
                })?;
                Ok((rec, k))
            }
            _ => unreachable!("only RUN, COPY, ADD and WORKDIR make layers"),
        }
    }

    /// A `--from` source: its key (what identifies its content) and layers.
    fn source_of(&self, from: &str, cmd: &Command) -> Result<(String, Lowers), BuildError> {
        match self.plan.base(from, self.stage.index, true) {
            Base::Stage(d) => {
                let s = self
                    .done
                    .get(&d)
                    .ok_or_else(|| BuildError::at(cmd, format!("stage {from} was not built")))?;
                Ok((s.key.clone(), self.lowers(s)?))
            }
            Base::Scratch => Ok(("scratch".into(), Lowers::default())),
            Base::Image(name) => {
                let img = self
                    .image(&name)
                    .map_err(|e| BuildError::at(cmd, format!("--from={name}: {e}")))?;
                let dirs = self.store.unpacked_layers(&img)?;
                Ok((cache::image_key(img.id()), Lowers { dirs }))
            }
        }
    }

    fn run_mounts(
        &self,
        r: &dockerfile_parser::instructions::Run,
        state: &State,
        cmd: &Command,
        dir: &Path,
    ) -> Result<Vec<MountSpec>, BuildError> {
        let mounts = r
            .expand_mounts(&self.lexer, &self.expansion_env(state))
            .map_err(|e| BuildError::at(cmd, e.to_string()))?;
        let mut out = Vec::new();
        for (n, m) in mounts.iter().enumerate() {
            let target = m.target.clone();
            match m.kind {
                MountType::Cache => {
                    let target =
                        target.ok_or_else(|| BuildError::at(cmd, "cache mount needs a target"))?;
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let hex = cache::KeyHasher::new("cache-mount")
                        .part("id", id.as_bytes())
                        .clone_finish();
                    let src = self.store.kiln_dir().join("cache-mounts").join(&hex[..32]);
                    std::fs::create_dir_all(&src).map_err(|e| BuildError::Io(src.clone(), e))?;
                    // The mount's owner and mode (BuildKit: 0:0, 0755 unless
                    // uid/gid/mode say otherwise), set at every use.
                    {
                        use std::os::unix::fs::PermissionsExt;
                        let mode = m.mode.unwrap_or(0o755) & 0o7777;
                        std::os::unix::fs::chown(
                            &src,
                            Some(m.uid.unwrap_or(0)),
                            Some(m.gid.unwrap_or(0)),
                        )
                        .and_then(|_| {
                            std::fs::set_permissions(&src, std::fs::Permissions::from_mode(mode))
                        })
                        .map_err(|e| BuildError::Io(src.clone(), e))?;
                    }
                    out.push(MountSpec::Bind {
                        source: src,
                        destination: target,
                        readonly: false,
                    });
                }
                MountType::Tmpfs => {
                    let target =
                        target.ok_or_else(|| BuildError::at(cmd, "tmpfs mount needs a target"))?;
                    let mut options = vec![];
                    if let Some(s) = m.size {
                        options.push(format!("size={s}"));
                    }
                    out.push(MountSpec::Tmpfs {
                        destination: target,
                        options,
                    });
                }
                MountType::Secret => {
                    let id = m.id.clone().or_else(|| {
                        target.as_ref().and_then(|t| {
                            Path::new(t)
                                .file_name()
                                .map(|f| f.to_string_lossy().into_owned())
                        })
                    });
                    let id = id.ok_or_else(|| BuildError::at(cmd, "secret mount needs an id"))?;
                    match self.opts.secrets.get(&id) {
                        Some(src) => out.push(MountSpec::Bind {
                            source: src.clone(),
                            destination: target.unwrap_or_else(|| format!("/run/secrets/{id}")),
                            readonly: true,
                        }),
                        None if m.required => {
                            return Err(BuildError::at(
                                cmd,
                                format!(
                                    "secret {id} not found: pass it with --secret id={id},src=PATH"
                                ),
                            ))
                        }
                        None => {}
                    }
                }
                MountType::Bind => {
                    let target =
                        target.ok_or_else(|| BuildError::at(cmd, "bind mount needs a target"))?;
                    let rel = m.source.clone().unwrap_or_default();
                    let root = match &m.from {
                        None => self.opts.context.clone().ok_or_else(|| {
                            BuildError::at(cmd, "bind mount needs a build context")
                        })?,
                        Some(f) => {
                            let (_, lowers) = self.source_of(f, cmd)?;
                            let v =
                                view::View::mount(&lowers.dirs, &dir.join(format!("mount-{n}")))?;
                            let root = v.root.clone();
                            // The view stays mounted until the build ends
                            // (the private namespace goes with the process).
                            std::mem::forget(v);
                            root
                        }
                    };
                    let source = root.join(rel.trim_start_matches('/'));
                    out.push(MountSpec::Bind {
                        source,
                        destination: target,
                        readonly: true,
                    });
                }
                _ => {
                    return Err(BuildError::at(
                        cmd,
                        format!("RUN --mount=type={} is not supported", m.kind.as_str()),
                    ))
                }
            }
        }
        Ok(out)
    }
}

impl Builder<'_> {
    /// The diff in a RUN's upper directory becomes a layer; the directory
    /// itself is already that layer in overlay form, so it is kept as the
    /// unpacked copy instead of unpacking the blob again later.
    fn store_upper(&self, upper: &Path) -> Result<Descriptor, BuildError> {
        let mut w = self.store.blob_writer()?;
        let opts = DiffOptions {
            clamp_mtime: self.opts.source_date_epoch,
            overlay_whiteouts: true,
        };
        write_tar_from_dir(upper, &mut w, opts).map_err(image_store::ComposeError::from)?;
        let (digest, size) = w.commit(None)?;
        let dest = self.store.layers_dir().join(digest.hex());
        if !dest.exists() && self.opts.source_date_epoch.is_none() {
            let _ = std::fs::create_dir_all(self.store.layers_dir());
            let _ = std::fs::rename(upper, &dest);
        }
        Ok(Descriptor::new(media::OCI_LAYER, digest, size))
    }

    /// `--squash`: the layers above the base merged into one.
    fn squash(&self, state: &mut State) -> Result<(), BuildError> {
        let above = state.layers.len() - state.base_layers;
        if above <= 1 {
            return Ok(());
        }
        let merged = self.scratch.join("squash");
        std::fs::create_dir_all(&merged).map_err(|e| BuildError::Io(merged.clone(), e))?;
        for d in &state.layers[state.base_layers..] {
            let f = self.store.open_blob(&d.digest)?;
            let opts = image_store::unpack::UnpackOptions {
                whiteouts: image_store::unpack::Whiteouts::Overlay,
                ..Default::default()
            };
            image_store::unpack::unpack(std::io::BufReader::new(f), &merged, opts)
                .map_err(image_store::ComposeError::from)?;
        }
        let layer = self.store_upper(&merged)?;
        state.layers.truncate(state.base_layers);
        state.config.rootfs.diff_ids.truncate(state.base_layers);
        state.config.rootfs.diff_ids.push(layer.digest.clone());
        state.layers.push(layer);
        for h in state.config.history.iter_mut().skip(state.base_history) {
            h.empty_layer = true;
        }
        state.config.history.push(History {
            created: Some(self.now.clone()),
            created_by: Some("kiln build --squash".into()),
            comment: Some(format!("{above} layers merged")),
            ..Default::default()
        });
        Ok(())
    }

    fn warn_unused_args(&self) {
        let used = self.used_args.lock().unwrap_or_else(|p| p.into_inner());
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !used.contains(*k) && !self.plan.global_args.iter().any(|(g, _)| g == *k))
            .filter(|k| !PROXY_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            let list = unused
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            self.emit(
                0,
                EventKind::Warning(format!(
                    "one or more build args were not consumed: [{list}]"
                )),
            );
        }
    }
}

/// Predefined args usable without an ARG line (and not warned about).
const PROXY_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// BuildKit's automatic platform args (this host builds for itself).
fn platform_args() -> Vec<(String, String)> {
    let arch = model::host_arch();
    let platform = format!("linux/{arch}");
    vec![
        ("TARGETPLATFORM".into(), platform.clone()),
        ("TARGETOS".into(), "linux".into()),
        ("TARGETARCH".into(), arch.into()),
        ("TARGETVARIANT".into(), String::new()),
        ("BUILDPLATFORM".into(), platform),
        ("BUILDOS".into(), "linux".into()),
        ("BUILDARCH".into(), arch.into()),
        ("BUILDVARIANT".into(), String::new()),
    ]
}
