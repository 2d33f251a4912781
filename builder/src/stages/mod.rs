//! `kiln build`: a Dockerfile and a context in, an image in the store out.
//!
//! Stages run in dependency order, only those the target needs. Every step
//! gets a cache key (parent key + expanded instruction + the build args it
//! sees + for COPY/ADD the content of what it reads); a hit reuses the
//! step's record without running anything, a miss runs it and every later
//! step of the stage. The layer count is checked before anything runs.

mod args;
mod bases;
pub(crate) mod history;
mod layer_limit;
mod options;
pub(crate) mod plan;
mod scheduler;
mod sharing;
mod squash;
mod stage;
mod vars;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use dockerfile_parser::shell::Lexer;
use dockerfile_parser::Dockerfile;
use image_store::cache_dirs::BuildScratch;
use image_store::model;
use image_store::{Ingest, Store};

pub use crate::cache::{parse_size, prune as prune_cache, PruneOptions, Pruned};
pub use crate::error::BuildError;
pub use crate::steps::view::private_mount_namespace;
pub use options::{
    BuildOptions, BuildOutput, Event, EventKind, NamedContext, PullPolicy, StepHost, Stream,
};
pub use plan::MAX_LAYERS;
pub(crate) use stage::{makes_vertex, StageRun, State};

use crate::cache::{Cache, StatIndex};
use plan::{Plan, Stage};

/// What every stage of a build shares. Stages run on their own threads,
/// so the mutable parts sit behind locks.
pub(crate) struct Builder<'a> {
    pub(crate) store: &'a Store,
    pub(crate) opts: &'a BuildOptions,
    pub(crate) plan: Plan,
    pub(crate) lexer: Lexer,
    pub(crate) cache: Cache,
    pub(crate) index: Option<StatIndex>,
    pub(crate) context: Option<crate::context::BuildContext>,
    pub(crate) builtin_args: Vec<(String, String)>,
    pub(crate) used_args: Mutex<BTreeSet<String>>,
    pub(crate) scratch: BuildScratch,
    pub(crate) events: Mutex<&'a mut (dyn FnMut(Event) + Send)>,
    /// Stage index → its 1-based number among the stages this build runs.
    pub(crate) numbers: BTreeMap<usize, usize>,
    /// Set once a stage has failed: the others stop at their next step.
    pub(crate) failed: AtomicBool,
    pub(crate) source: Option<&'a transfer::Puller>,
    /// Images looked up by name, so the store's index is read once per
    /// build, not once per FROM, count and `--from`.
    pub(crate) resolved: Mutex<BTreeMap<String, image_store::Image>>,
    pub(crate) now: String,
    pub(crate) now_secs: u64,
    /// The target's last step key (where a `mode=min` export starts).
    pub(crate) final_key: String,
    /// The stages whose layers are the image's: the target and the stages
    /// it builds FROM.
    pub(crate) final_stages: BTreeSet<usize>,
    /// Uploads of the image's layers to where it will be pushed.
    pub(crate) pushers: Vec<crate::cache::uploader::Uploader>,
    /// Mixed into the keys of `--no-cache-filter` stages: their steps,
    /// and everything built on them, get keys no earlier build had.
    pub(crate) run_nonce: String,
    /// A layer this build made → the one the same step made before it
    /// (whose unchanged files its unpack links).
    pub(crate) similar: Mutex<BTreeMap<image_store::Digest, image_store::Digest>>,
    /// Unpacked layer directories steps of this build looked up, by diff
    /// ID (the build holds the store's gc lock: none goes away meanwhile).
    pub(crate) unpacked: Mutex<BTreeMap<image_store::Digest, Vec<std::path::PathBuf>>>,
    /// Those directories opened, and what steps looked up in them (a
    /// stored layer never changes): a step opens only its new layers.
    pub(crate) opened: std::sync::Arc<containers::layers::LayerCache>,
}

/// Builds the Dockerfile in `opts`; base images missing from the store
/// come from `source` (per [`BuildOptions::pull`]).
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
    let builtin_args = args::platform_args();
    let mut plan = Plan::new(&df, opts.target.as_deref(), &opts.build_args, &builtin_args)?;
    plan.named = opts.named_contexts.clone();
    for f in &opts.no_cache_stages {
        if !plan
            .stages
            .iter()
            .any(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(f)))
        {
            return Err(BuildError::Invalid(format!(
                "--no-cache-filter {f}: no stage of that name"
            )));
        }
    }
    let lexer = df.lexer();
    let context = match &opts.context {
        Some(dir) => Some(
            crate::context::BuildContext::new(dir, &opts.ignore_patterns)
                .map_err(|e| BuildError::Invalid(e.to_string()))?,
        ),
        None => None,
    };
    let scratch = store.build_scratch(std::process::id());
    let index = opts.context.as_ref().map(|c| {
        if opts.transient_context {
            StatIndex::open_at(scratch.path().join("stat-index"))
        } else {
            StatIndex::open(store, c)
        }
    });
    let (now, now_secs) = match opts.source_date_epoch {
        Some(e) => (
            model::format_time(chrono::DateTime::from_timestamp(e as i64, 0).unwrap_or_default()),
            e,
        ),
        None => (model::now(), chrono::Utc::now().timestamp().max(0) as u64),
    };
    let access = source.map(|s| s.access.clone()).unwrap_or_default();
    let shared = sharing::Sharing::open(store, opts, &access, events)?;
    let (cache, pushers) = (shared.cache, shared.pushers);
    let mut b = Builder {
        store,
        opts,
        plan,
        lexer,
        cache,
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
        final_key: String::new(),
        final_stages: BTreeSet::new(),
        pushers,
        run_nonce: format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ),
        similar: Mutex::new(BTreeMap::new()),
        unpacked: Mutex::new(BTreeMap::new()),
        opened: Default::default(),
    };
    let ingest = store.ingest()?;
    let result = b.run(&ingest).and_then(|out| {
        ingest.commit()?;
        Ok(out)
    });
    let Builder {
        scratch,
        index,
        cache,
        final_key,
        events,
        pushers,
        ..
    } = b;
    // The push that follows finds these layers there (or sends them
    // itself, should an upload have failed).
    for p in pushers {
        p.finish();
    }
    // The committer removes step scratch directories under it.
    cache.commits.drain();
    drop(scratch);
    if let Some(i) = index.as_ref().filter(|_| !opts.transient_context) {
        i.save();
    }
    let out = result?;
    let events = events.into_inner().unwrap_or_else(|p| p.into_inner());
    sharing::export(store, opts, &access, cache, &final_key, events)?;
    drop(shared.lock);
    Ok(out)
}

impl<'a> Builder<'a> {
    /// Builds the target; its config and manifest go into `ingest`, which
    /// names the image when the caller commits it.
    pub(crate) fn run(&mut self, ingest: &Ingest) -> Result<BuildOutput, BuildError> {
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
        self.final_stages = self.final_chain(&global_env);
        self.fetch_bases(&needed, &global_env)?;
        self.check_layer_limit(&needed, &global_env)?;

        let mut done = self.run_stages(&needed, &deps, &global_env)?;
        // Every RUN layer durable before the image (or anything) names it.
        self.cache.commits.wait()?;
        self.warn_unused_args();
        let mut state = done
            .remove(&self.plan.target)
            .expect("the target was built");
        // The image's layers must be in the store, also those of steps
        // that hit in an imported cache and were never read.
        self.cache.ensure(self.store, &state.layers)?;
        self.final_key = state.key.clone();
        sharing::set_inline(&self.cache, self.opts, &mut state.config, &state.key);
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
        let annotations =
            (!self.opts.annotations.is_empty()).then(|| self.opts.annotations.clone());
        let committed = ingest.commit_annotated_image(
            &state.config,
            state.layers,
            &self.opts.tags,
            annotations,
        )?;
        Ok(BuildOutput {
            id: committed.id,
            manifest: committed.manifest,
        })
    }

    pub(crate) fn stage_run<'b>(
        &'b self,
        i: usize,
        done: BTreeMap<usize, State>,
    ) -> StageRun<'b, 'a> {
        let stage = &self.plan.stages[i];
        StageRun {
            b: self,
            stage,
            done,
            step: 0,
            total: 1 + stage.commands.len(),
            vertex: 0,
        }
    }

    /// The store's image for `name`, looked up once per build.
    pub(crate) fn image(&self, name: &str) -> Result<image_store::Image, image_store::StoreError> {
        let mut cache = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(img) = cache.get(name) {
            return Ok(img.clone());
        }
        let img = self.store.resolve(name)?;
        cache.insert(name.to_string(), img.clone());
        Ok(img)
    }

    /// Notes that `layer` is a new result of the step that made `before`.
    pub(crate) fn note_similar(&self, layer: &image_store::Digest, before: image_store::Digest) {
        self.similar
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(layer.clone(), before);
    }

    /// The earlier result of the step that made `layer`, if this build
    /// made it anew.
    pub(crate) fn similar_to(&self, layer: &image_store::Digest) -> Option<image_store::Digest> {
        self.similar
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(layer)
            .cloned()
    }

    pub(crate) fn emit(&self, stage: usize, kind: EventKind) {
        let mut events = self.events.lock().unwrap_or_else(|p| p.into_inner());
        (events)(Event {
            stage,
            stages: self.numbers.len(),
            kind,
        });
    }
}
