//! COPY and ADD: sources from the context, a stage, an image, a URL or a
//! git repository, planned (`copy_plan`) then written as one layer.

use dockerfile_parser::instructions::{Command, Copy, Instruction};

use super::copy_plan as copy;
use super::owner;
use crate::cache::{KeyHasher, Record, StatIndex};
use crate::error::BuildError;
use crate::stages::plan::Base;
use crate::stages::{StageRun, State};
use crate::steps::view;

impl StageRun<'_, '_> {
    pub(crate) fn copy_step(
        &mut self,
        cmd: &Command,
        instr: &Instruction,
        c: &Copy,
        state: &mut State,
        mut key: KeyHasher,
    ) -> Result<(Record, String), BuildError> {
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
        // `COPY --from` a stage whose key an imported cache maps (through
        // an alias of the instruction and the source's key) to a step it
        // has: a hit without reading, or fetching, either stage's layers.
        let from = c.from.as_ref().map(|f| {
            self.lexer
                .process_word(f, &self.expansion_env(state))
                .unwrap_or(f.clone())
        });
        let alias = match &from {
            Some(from) => self.source_key(from, cmd)?.map(|src| {
                let mut def = KeyHasher::new(&state.key);
                def.part("instruction", format!("{instr:?}").as_bytes())
                    .part("from-key", src.as_bytes());
                def.finish()
            }),
            None => None,
        };
        if let (Some(alias), true) = (&alias, state.cache_ok && !self.no_cache_filtered()) {
            if let Some(k) = self.cache.alias(alias) {
                if let Some(rec) = self.hit(state, &k) {
                    self.cache.note_alias(alias, &k);
                    return Ok((rec, k));
                }
            }
        }
        // The same step over the same source layers: the key it got then.
        let content_alias = match &from {
            Some(from) => self.source_layers(from, cmd)?.map(|layers| {
                let mut a = key.clone();
                let list: Vec<String> = layers.iter().map(|d| d.to_string()).collect();
                a.part("from-layers", list.join(",").as_bytes());
                a.finish()
            }),
            None => None,
        };
        if let (Some(a), true) = (&content_alias, state.cache_ok && !self.no_cache_filtered()) {
            if let Some(k) = self.cache.content_alias(a) {
                if let Some(rec) = self.hit(state, &k) {
                    if let Some(alias) = &alias {
                        self.cache.note_alias(alias, &k);
                    }
                    return Ok((rec, k));
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
        let inputs;
        let mut _view = None;
        let mut _owned_ctx = None;
        // The digests of a stage's files, for this step only: a view's
        // files are read once each.
        let view_index = StatIndex::default();
        let planned = match &from {
            None => {
                let Some(ctx) = self.context.as_ref() else {
                    return Err(BuildError::at(
                        cmd,
                        "COPY needs a build context, but the Dockerfile came from standard input",
                    ));
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
                if let Base::Dir(dir, ignore) = self.plan.base(from, self.stage.index, true) {
                    // A directory context: its files hashed into the key as
                    // the main context's are. The stat index lives in the
                    // build's scratch space: a named context may be a temp
                    // checkout, whose index would only pile up in the store.
                    key.part("from", b"directory context");
                    let ctx = crate::context::BuildContext::new(&dir, &ignore)
                        .map_err(|e| BuildError::Invalid(e.to_string()))?;
                    let index = StatIndex::open_at(self.scratch_for("dir-index").join("index"));
                    let mut root = copy::SourceRoot {
                        ctx: &ctx,
                        index: Some(&index),
                        inputs: Vec::new(),
                        from: Some(from.clone()),
                    };
                    let planned = copy::plan(&params, &mut root, &lowers, &mut key)
                        .map_err(|e| e.located(cmd))?;
                    let k = key.finish();
                    let inputs = root.inputs;
                    let rec = self.lookup_or(state, &k, cmd, &inputs, |b, previous| {
                        b.copied_layer(&planned, cmd, previous)
                    })?;
                    return Ok((rec, k));
                }
                // Keyed by what is copied (each file's sha256 with its
                // name, mode and owner), not by the source's key: a stage
                // that ran again and made the same files leaves this step
                // and the ones after it cached, as BuildKit's content
                // checksums do. Only a changed source is read for this (the
                // content alias above answers for the same layers).
                let (_, src_lowers) = self.source_of(from, cmd)?;
                key.part("from", b"stage or image content");
                let target = self.scratch_for("view");
                let v = view::View::mount(&src_lowers.dirs, &target)?;
                let ctx = crate::context::BuildContext::new(&v.root, &[] as &[&str])
                    .map_err(|e| BuildError::Invalid(e.to_string()))?;
                _view = Some(v);
                let ctx = _owned_ctx.insert(ctx);
                let mut root = copy::SourceRoot {
                    ctx,
                    index: Some(&view_index),
                    inputs: Vec::new(),
                    from: Some(from.clone()),
                };
                let planned = copy::plan(&params, &mut root, &lowers, &mut key)
                    .map_err(|e| e.located(cmd))?;
                inputs = root.inputs;
                planned
            }
        };
        let k = key.finish();
        if let Some(alias) = &alias {
            self.cache.note_alias(alias, &k);
        }
        if let Some(a) = &content_alias {
            self.cache.put_content_alias(a, &k);
        }
        let rec = self.lookup_or(state, &k, cmd, &inputs, |b, previous| {
            b.copied_layer(&planned, cmd, previous)
        })?;
        Ok((rec, k))
    }

    /// The layer of a COPY/ADD that missed: `previous` (the layer the step
    /// made last time) gives the bytes of unchanged files, and the layer
    /// is unpacked as it is written when a later step reads it, linking
    /// unchanged files from `previous`.
    fn copied_layer(
        &self,
        planned: &[super::copy_layer::Planned],
        cmd: &Command,
        previous: Option<&image_store::Digest>,
    ) -> Result<Record, BuildError> {
        let unpack = self.layer_read_later(cmd).then(|| previous.cloned());
        self.planned_layer(planned, cmd, unpack, previous)
    }
}
