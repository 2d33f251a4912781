//! What a build shares beyond its store: the caches it imports
//! (`--cache-from`) and exports (`--cache-to`), and the early upload of the
//! image's layers to where it will be pushed (`--push`).

use std::collections::BTreeSet;

use dockerfile_parser::instructions::Instruction;
use image_store::compressed::LayerFormat;
use image_store::{ImageConfig, LockGuard, Store};
use transfer::RegistryAccess;

use super::options::{BuildOptions, Event, EventKind};
use super::plan::{self, Base};
use super::Builder;
use crate::cache::commits::Commits;
use crate::cache::export::Export;
use crate::cache::remote::{Imported, INLINE_KEY};
use crate::cache::uploader::Uploader;
use crate::cache::{inline, Cache};
use crate::error::BuildError;
use crate::flags::{CacheMode, CacheSpec};

pub(crate) struct Sharing {
    pub(crate) cache: Cache,
    pub(crate) pushers: Vec<Uploader>,
    /// Layers compressed for an export are written into the store until
    /// the export is done: no collector may run meanwhile.
    pub(crate) lock: Option<LockGuard>,
}

impl Sharing {
    /// The build cache with the imported caches read, and the uploads
    /// started (`mode=max` exports, pushes).
    pub(crate) fn open(
        store: &Store,
        opts: &BuildOptions,
        access: &RegistryAccess,
        events: &mut (dyn FnMut(Event) + Send),
    ) -> Result<Sharing, BuildError> {
        let mut cache = Cache::new(store, !opts.no_cache);
        if cache.enabled() && !opts.cache_from.is_empty() {
            cache.imported = Imported::load(&opts.cache_from, access, &mut |w| {
                events(Event {
                    stage: 0,
                    stages: 0,
                    kind: EventKind::Warning(w),
                })
            });
        }
        let lock = if opts.cache_to.is_empty() {
            None
        } else {
            Some(store.reader_lock()?)
        };
        for spec in &opts.cache_to {
            cache.uploaders.push(match spec {
                CacheSpec::Registry {
                    reference,
                    mode: CacheMode::Max,
                    compression,
                } => Uploader::start(store, reference, *compression, access),
                _ => None,
            });
        }
        let pushers: Vec<Uploader> = opts
            .upload_to
            .iter()
            .filter_map(|name| Uploader::start(store, name, LayerFormat::Gzip, access))
            .collect();
        // Uploads read a layer's blob as soon as its step ends.
        if !pushers.is_empty() || cache.uploaders.iter().any(Option::is_some) {
            cache.commits = Commits::disabled(store.build_roots());
        }
        Ok(Sharing {
            cache,
            pushers,
            lock,
        })
    }
}

/// Writes each `--cache-to` but the inline one (already in the config).
pub(crate) fn export(
    store: &Store,
    opts: &BuildOptions,
    access: &RegistryAccess,
    mut cache: Cache,
    final_key: &str,
    events: &mut (dyn FnMut(Event) + Send),
) -> Result<(), BuildError> {
    cache.keep_fetched(store);
    let uploaders = std::mem::take(&mut cache.uploaders);
    for (spec, uploader) in opts.cache_to.iter().zip(uploaders) {
        if matches!(spec, CacheSpec::Inline) {
            continue;
        }
        let started = std::time::Instant::now();
        let exported = Export {
            store,
            spec,
            access,
            imported: &cache.imported,
            uploader,
        }
        .run(&cache.used(), &cache.aliases(), final_key)?;
        events(Event {
            stage: 0,
            stages: 0,
            kind: EventKind::Info(format!(
                "exported cache to {}: {} steps, {} layers ({} uploaded), {} in {:.3}s",
                spec.label(),
                exported.steps,
                exported.layers,
                exported.uploaded,
                exported.manifest,
                started.elapsed().as_secs_f64()
            )),
        });
    }
    Ok(())
}

/// With `--cache-to type=inline`, the image's steps go into its config;
/// a base image's inline cache never stays (it is not this image's).
pub(crate) fn set_inline(cache: &Cache, opts: &BuildOptions, config: &mut ImageConfig, key: &str) {
    config.extra.remove(INLINE_KEY);
    if opts.cache_to.iter().any(|c| matches!(c, CacheSpec::Inline)) {
        let inline = inline::inline(&cache.used(), &cache.aliases(), key);
        config.extra.insert(
            INLINE_KEY.into(),
            serde_json::to_value(inline).expect("plain data"),
        );
    }
}

impl Builder<'_> {
    /// The target and the stages it builds FROM, whose layers are the
    /// image's.
    pub(crate) fn final_chain(&self, global_env: &[(String, String)]) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut at = self.plan.target;
        while out.insert(at) {
            let Instruction::From(f) = &self.plan.stages[at].from.instruction else {
                break;
            };
            let image = self
                .lexer
                .process_word(&f.image, &plan::Pairs(global_env))
                .unwrap_or_default();
            match self.plan.base(&image, at, false) {
                Base::Stage(d) => at = d,
                _ => break,
            }
        }
        out
    }
}
