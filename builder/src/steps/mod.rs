//! One module per kind of step, and what steps share: the cache lookup,
//! the layer stack below a step, writing a layer.

mod arg;
mod bind_view;
pub mod copy;
pub mod copy_layer;
pub mod copy_plan;
mod copy_remote;
mod copy_reuse;
pub mod git;
pub mod lower;
mod metadata;
pub mod output;
pub mod owner;
pub mod run;
mod run_mounts;
mod run_step;
pub mod view;
mod workdir;

use std::path::Path;
use std::time::Instant;

use dockerfile_parser::instructions::{Command, Instruction};
use dockerfile_parser::shell::Env;
use image_store::diff::{write_tar_from_dir, DiffOptions};
use image_store::layer_files::Vouched;
use image_store::model::{media, History};
use image_store::rewrite::Rewritten;
use image_store::Descriptor;

use crate::cache::{self, KeyHasher, Record};
use crate::error::BuildError;
use crate::stages::plan::makes_layer;
use crate::stages::{history, Builder, EventKind, StageRun, State};
use lower::Lowers;

impl StageRun<'_, '_> {
    /// One step: the instruction expanded with the stage's ARG and ENV and
    /// keyed, then run by its kind's module (or found in the cache).
    pub(crate) fn step_command(
        &mut self,
        cmd: &Command,
        state: &mut State,
    ) -> Result<(), BuildError> {
        let vertex = crate::stages::makes_vertex(&cmd.instruction)
            .then(|| buildkit_text(cmd.original.trim()));
        self.begin_step(cmd.original.trim(), vertex.as_deref())?;
        let started = Instant::now();
        if let Some(env) = state.config.config.as_ref().and_then(|c| c.env.as_deref()) {
            state.vars.sync(env);
        }
        let env = self.expansion_env(state);
        let mut instr = cmd.instruction.clone();
        instr
            .expand(&self.lexer, &env as &dyn Env)
            .map_err(|e| BuildError::caused_at(cmd, e))?;

        if let Instruction::Arg(defs) = &instr {
            return self.arg_step(defs, cmd, state, started);
        }

        let mut key = KeyHasher::new(&state.key);
        key.part("instruction", format!("{instr:?}").as_bytes());
        // A stage run again by --no-cache-filter may give other files (a
        // fresh `apt-get update`): its keys are new, so the stages that
        // copy from it run again too instead of reusing what the old
        // content made.
        if self.no_cache_filtered() {
            key.part("no-cache-filter", self.run_nonce.as_bytes());
        }
        if matches!(instr, Instruction::Run(_)) {
            key.part("args", format!("{:?}", state.args).as_bytes());
            key.part(
                "network",
                format!("{:?}", self.network_for(&instr)).as_bytes(),
            );
            // Only when set, so the keys of other builds stay as they were.
            if self.bridge_for(&instr) {
                key.part("network", b"bridge");
            }
            if !self.opts.step_host.is_default() {
                key.part("host", format!("{:?}", self.opts.step_host).as_bytes());
            }
        }
        // Metadata first: WORKDIR's directory is made with the new value.
        if !makes_layer(&instr) {
            metadata::apply(&instr, cmd, state)?;
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
        if self.final_stages.contains(&self.stage.index)
            && !self.opts.squash
            && self.store.has_blob(&l.digest)
        {
            for p in &self.pushers {
                p.send(&l.digest);
            }
        }
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
    /// layer blob and records it. `unpack`: the layer is unpacked while it
    /// is written, linking unchanged files from the layer named if any
    /// (see [`Self::layer_read_later`]). `previous`: the layer the step
    /// made last time, whose bytes of unchanged files are taken instead of
    /// reading each file again ([`copy_layer::write_layer`]), and which
    /// the new layer is compared with as it is written: one that comes
    /// out the same is neither written nor unpacked again
    /// ([`image_store::rewrite`]).
    pub(crate) fn planned_layer(
        &self,
        planned: &[copy_layer::Planned],
        cmd: &Command,
        unpack: Option<Option<image_store::Digest>>,
        previous: Option<&image_store::Digest>,
    ) -> Result<Record, BuildError> {
        let epoch = self.opts.source_date_epoch;
        let previous_blob = previous.map(|d| self.store.blob_path(d));
        let write = |out: &mut dyn std::io::Write, vouched| {
            let previous = previous_blob.as_deref().zip(previous).map(|(p, d)| {
                let (store, d) = (self.store.clone(), d.clone());
                let load: copy_reuse::LoadRecord = Box::new(move || store.layer_files(&d));
                (p, load)
            });
            copy_layer::write_layer(planned, out, epoch, previous, vouched)
                .map_err(|e| e.located(cmd))
        };
        let store = self.store.clone();
        let (digest, size) = match unpack {
            Some(like) => {
                let vouched = std::sync::Arc::<Vouched>::default();
                let v = vouched.clone();
                let make =
                    move || Ok(store.unpacking_writer(store.blob_writer()?, like.as_ref(), v));
                let mut w = self.store.rewrite(previous, make)?;
                write(&mut w, Some(&vouched))?;
                match w.finish().map_err(layer_io)? {
                    Rewritten::Same(d, n) => (d, n),
                    Rewritten::New(w) => {
                        let (blob, installed) = w.finish()?;
                        // Without its unpacked copy, the next step unpacks
                        // the blob: it must be in place first.
                        self.commit_blob(blob, installed)?
                    }
                }
            }
            None => {
                let mut w = self.store.rewrite(previous, move || store.blob_writer())?;
                write(&mut w, None)?;
                match w.finish().map_err(layer_io)? {
                    Rewritten::Same(d, n) => (d, n),
                    // Durable off the path when no later step of this
                    // build reads it (a WORKDIR's is not unpacked as it is
                    // written, yet the next step may stack it).
                    Rewritten::New(w) => {
                        self.commit_blob(w.finish()?, !self.layer_read_later(cmd))?
                    }
                }
            }
        };
        Ok(Record {
            created: self.now.clone(),
            layer: Some(Descriptor::new(media::OCI_LAYER, digest, size)),
        })
    }

    /// Whether a step after `cmd` stacks this stage's layers as lower
    /// directories, so a layer `cmd` writes is best unpacked as it is
    /// written: a later RUN, COPY, ADD or WORKDIR of the stage, or any use
    /// of a stage other than the target (built on, or copied from). The
    /// target's last COPY (a 500 MB one in the benchmark) is not unpacked
    /// at all until something runs the image.
    pub(crate) fn layer_read_later(&self, cmd: &Command) -> bool {
        if self.stage.index != self.plan.target {
            return true;
        }
        let commands = &self.stage.commands;
        let rest = match commands.iter().position(|c| std::ptr::eq(c, cmd)) {
            Some(i) => &commands[i + 1..],
            // An ONBUILD trigger or a directory base's COPY: before them all.
            None => &commands[..],
        };
        rest.iter().any(|c| {
            matches!(
                c.instruction,
                Instruction::Run(_)
                    | Instruction::Copy(_)
                    | Instruction::Add(_)
                    | Instruction::Workdir(_)
            )
        })
    }

    /// Ends a step that changes only the config: its cache record (for the
    /// created time and the chain of keys) and an `empty_layer` history entry.
    pub(crate) fn empty_layer_step(
        &mut self,
        state: &mut State,
        key: String,
        cmd: &Command,
        created_by: String,
        started: Instant,
    ) -> Result<(), BuildError> {
        let rec = self.lookup_or(state, &key, cmd, &[], |b, _| {
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
    pub(crate) fn lookup_or(
        &mut self,
        state: &mut State,
        key: &str,
        cmd: &Command,
        inputs: &[(String, String)],
        make: impl FnOnce(&mut Self, Option<&image_store::Digest>) -> Result<Record, BuildError>,
    ) -> Result<Record, BuildError> {
        let probe = probe(state, cmd);
        // `--no-cache-filter`: this stage's steps run again, said once.
        if self.no_cache_filtered() && state.cache_ok {
            state.cache_ok = false;
            self.emit(EventKind::CacheMiss {
                reason: format!(
                    "line {}: the stage is in --no-cache-filter",
                    cmd.span.start_line
                ),
            });
        }
        if state.cache_ok {
            if let Some(rec) = self.hit(state, key) {
                return Ok(rec);
            }
            state.cache_ok = false;
            if !self.opts.no_cache {
                let why = match self.cache.probe(&probe) {
                    None => "new instruction, or an earlier step changed".to_string(),
                    // The same text after the same parent: what differs
                    // is what the step reads, not the instruction.
                    Some(old) => cache::changed_input(&old, inputs).unwrap_or_else(|| {
                        match cmd.instruction {
                            Instruction::Copy(_) | Instruction::Add(_) => "what it copies changed",
                            _ => "a build argument or another value it uses changed",
                        }
                        .to_string()
                    }),
                };
                let reason = format!(
                    "line {}: {} ({why})",
                    cmd.span.start_line,
                    output::truncate_command(cmd.original.trim())
                );
                self.emit(EventKind::CacheMiss { reason });
            }
        }
        // COPY and ADD layers are unpacked for the steps after them (a
        // RUN's layer is its upper directory, kept as is).
        let copies = matches!(cmd.instruction, Instruction::Copy(_) | Instruction::Add(_));
        let previous = copies.then(|| self.cache.previous_layer(&probe)).flatten();
        let rec = make(self, previous.as_ref())?;
        if let (Some(l), true) = (&rec.layer, copies) {
            if let Some(prev) = previous.filter(|p| *p != l.digest) {
                self.b.note_similar(&l.digest, prev);
            }
            self.cache.put_previous_layer(&probe, &l.digest);
        }
        self.cache.note(cache::Used {
            key: key.to_string(),
            parent: state.key.clone(),
            rec: rec.clone(),
            imported: false,
        });
        self.cache
            .put(key, &rec)
            .map_err(|e| BuildError::Io(self.cache.dir().to_path_buf(), e))?;
        self.cache.put_probe(&probe, inputs);
        Ok(rec)
    }

    /// The record of `key` from the store's cache or an imported one,
    /// noted as a step of this build and shown as a hit.
    pub(crate) fn hit(&self, state: &State, key: &str) -> Option<Record> {
        let local = self.cache.get(self.store, key).map(|r| (r, false));
        let (rec, imported) = local.or_else(|| self.cache.get_imported(key).map(|r| (r, true)))?;
        self.cache.note(cache::Used {
            key: key.to_string(),
            parent: state.key.clone(),
            rec: rec.clone(),
            imported,
        });
        self.emit(EventKind::CacheHit);
        Some(rec)
    }

    /// This stage is named in `--no-cache-filter`.
    fn no_cache_filtered(&self) -> bool {
        self.stage.name.as_ref().is_some_and(|n| {
            self.opts
                .no_cache_stages
                .iter()
                .any(|f| f.eq_ignore_ascii_case(n))
        })
    }

    pub(crate) fn lowers(&self, state: &State) -> Result<Lowers, BuildError> {
        self.cache.commits.check()?;
        let layers = state.layers.iter().zip(&state.config.rootfs.diff_ids);
        // A step builds on the layers of the step before it and one more:
        // only the layers this build has not looked up yet are.
        // Each layer's directories: its own, and a delta's base below it.
        let mut dirs: Vec<Option<Vec<std::path::PathBuf>>> = {
            let known = self.b.unpacked.lock().unwrap_or_else(|p| p.into_inner());
            layers
                .clone()
                .map(|(_, id)| known.get(id).cloned())
                .collect()
        };
        let new: Vec<usize> = (0..dirs.len()).filter(|&i| dirs[i].is_none()).collect();
        if new.is_empty() {
            return Ok(Lowers {
                dirs: dirs.into_iter().flatten().flatten().collect(),
                opened: self.b.opened.clone(),
            });
        }
        // Layers known only from an imported cache come now, when a step
        // reads them.
        let fetch: Vec<_> = new.iter().map(|&i| state.layers[i].clone()).collect();
        self.cache.ensure(self.store, &fetch)?;
        for (i, (d, id)) in layers.enumerate() {
            if dirs[i].is_some() {
                continue;
            }
            // A blob still being committed off the path (see
            // `commit_blob`) is unpacked once it is in place.
            if self.cache.commits.is_pending(id) && !self.store.layers_dir().join(id.hex()).is_dir()
            {
                self.cache.commits.wait()?;
            }
            let like = self.b.similar_to(id);
            let dir = self
                .store
                .unpacked_layer_like(d, id, Some(like.as_ref().unwrap_or(id)))
                .map_err(BuildError::Compose)?;
            self.b
                .unpacked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id.clone(), dir.clone());
            dirs[i] = Some(dir);
        }
        Ok(Lowers {
            dirs: dirs.into_iter().flatten().flatten().collect(),
            opened: self.b.opened.clone(),
        })
    }

    /// The steps that write a layer, each in its own module.
    fn layer_step(
        &mut self,
        cmd: &Command,
        instr: &Instruction,
        state: &mut State,
        key: KeyHasher,
    ) -> Result<(Record, String), BuildError> {
        match instr {
            Instruction::Copy(c) | Instruction::Add(c) => self.copy_step(cmd, instr, c, state, key),
            Instruction::Run(r) => self.run_step(cmd, instr, r, state, key),
            Instruction::Workdir(_) => self.workdir_step(cmd, state, key),
            _ => unreachable!("only RUN, COPY, ADD and WORKDIR make layers"),
        }
    }
}

impl Builder<'_> {
    /// The diff in a RUN's upper directory becomes a layer; the directory
    /// itself is already that layer in overlay form, so it is kept as the
    /// unpacked copy instead of unpacking the blob again later. With that
    /// copy in place the blob is made durable off the step's path
    /// ([`crate::cache::commits`]): the next step mounts the copy.
    pub(crate) fn store_upper(&self, upper: &Path) -> Result<Descriptor, BuildError> {
        let mut w = self.store.blob_writer()?;
        let opts = DiffOptions {
            clamp_mtime: self.opts.source_date_epoch,
            overlay_whiteouts: true,
        };
        write_tar_from_dir(upper, &mut w, opts).map_err(image_store::ComposeError::from)?;
        let blob = w.finish()?;
        let dest = self.store.layers_dir().join(blob.digest().hex());
        if !dest.exists() && self.opts.source_date_epoch.is_none() {
            let _ = std::fs::create_dir_all(self.store.layers_dir());
            let _ = std::fs::rename(upper, &dest);
        }
        // Without the directory, a step that needs the layer unpacks the
        // blob: it must be in place first.
        let (digest, size) = self.commit_blob(blob, dest.is_dir())?;
        Ok(Descriptor::new(media::OCI_LAYER, digest, size))
    }

    /// Names a layer blob written for a step: now, or off the step's path
    /// when `deferred` ([`crate::cache::commits`]: the build waits for it
    /// before anything refers to the blob, and the step's record is
    /// written after it).
    fn commit_blob(
        &self,
        blob: image_store::store::PendingBlob,
        deferred: bool,
    ) -> Result<(image_store::Digest, u64), BuildError> {
        let (digest, size) = (blob.digest().clone(), blob.size());
        if deferred {
            self.cache.commits.blob(blob)?;
        } else {
            image_store::store::commit_pending(vec![blob])?;
        }
        Ok((digest, size))
    }
}

fn layer_io(e: std::io::Error) -> BuildError {
    BuildError::Io(std::path::PathBuf::from("layer"), e)
}

/// An instruction as BuildKit names its vertex: the keyword upper-cased.
fn buildkit_text(original: &str) -> String {
    match original.split_once(char::is_whitespace) {
        Some((word, rest)) => format!("{} {}", word.to_uppercase(), rest.trim_start()),
        None => original.to_uppercase(),
    }
}

/// The key of a step by its parent and text alone: the same across edits
/// of its inputs, so it finds what the step did last time.
fn probe(state: &State, cmd: &Command) -> String {
    cache::KeyHasher::new(&state.key)
        .part("probe", cmd.original.trim().as_bytes())
        .clone_finish()
}
