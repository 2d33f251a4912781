//! Base images: fetched before the build starts (per `--pull`), and the
//! sources `--from` names (a stage, an image or scratch).

use std::collections::BTreeSet;

use dockerfile_parser::instructions::Command;

use super::options::PullPolicy;
use super::plan::{self, Base};
use super::stage::StageRun;
use super::Builder;
use crate::cache;
use crate::error::BuildError;
use crate::steps::lower::Lowers;

impl Builder<'_> {
    /// Brings the images the needed stages use into the store first, so
    /// the layer count is known and no stage waits on the network.
    pub(crate) fn fetch_bases(
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
                // An image ID (an `oci-layout://` named context) is not
                // pulled: no registry serves it by that name.
                if present && image.starts_with("sha256:") {
                    continue;
                }
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
}

impl StageRun<'_, '_> {
    /// A `--from` source's key alone (no layer is read or fetched); `None`
    /// for a directory context, whose files are its key.
    pub(crate) fn source_key(
        &self,
        from: &str,
        cmd: &Command,
    ) -> Result<Option<String>, BuildError> {
        match self.plan.base(from, self.stage.index, true) {
            Base::Stage(d) => self
                .done
                .get(&d)
                .map(|s| Some(s.key.clone()))
                .ok_or_else(|| BuildError::at(cmd, format!("stage {from} was not built"))),
            Base::Scratch => Ok(Some("scratch".into())),
            Base::Dir(..) => Ok(None),
            Base::Image(name) => self
                .image(&name)
                .map(|img| Some(cache::image_key(img.id())))
                .map_err(|e| BuildError::at(cmd, format!("--from={name}: {e}"))),
        }
    }

    /// The layer digests of a `--from` source, bottom first: its whole
    /// content, known without unpacking or reading a file. `None` for a
    /// directory context (its files are hashed instead).
    pub(crate) fn source_layers(
        &self,
        from: &str,
        cmd: &Command,
    ) -> Result<Option<Vec<image_store::Digest>>, BuildError> {
        let digests = |layers: &[image_store::Descriptor]| {
            Some(layers.iter().map(|l| l.digest.clone()).collect())
        };
        match self.plan.base(from, self.stage.index, true) {
            Base::Stage(d) => self
                .done
                .get(&d)
                .map(|s| digests(&s.layers))
                .ok_or_else(|| BuildError::at(cmd, format!("stage {from} was not built"))),
            Base::Scratch => Ok(Some(Vec::new())),
            Base::Dir(..) => Ok(None),
            Base::Image(name) => self
                .image(&name)
                .map(|img| digests(&img.manifest.layers))
                .map_err(|e| BuildError::at(cmd, format!("--from={name}: {e}"))),
        }
    }

    /// A `--from` source: its key (what identifies its content) and layers.
    pub(crate) fn source_of(
        &self,
        from: &str,
        cmd: &Command,
    ) -> Result<(String, Lowers), BuildError> {
        match self.plan.base(from, self.stage.index, true) {
            Base::Stage(d) => {
                let s = self
                    .done
                    .get(&d)
                    .ok_or_else(|| BuildError::at(cmd, format!("stage {from} was not built")))?;
                Ok((s.key.clone(), self.lowers(s)?))
            }
            Base::Scratch => Ok(("scratch".into(), Lowers::default())),
            Base::Dir(..) => Err(BuildError::at(
                cmd,
                format!(
                    "--from={from}: a directory build context is read by COPY --from, \
                     FROM or a bind mount, not as image layers"
                ),
            )),
            Base::Image(name) => {
                let img = self
                    .image(&name)
                    .map_err(|e| BuildError::at(cmd, format!("--from={name}: {e}")))?;
                let dirs = self.store.unpacked_layers(&img)?;
                let opened = self.b.opened.clone();
                Ok((cache::image_key(img.id()), Lowers { dirs, opened }))
            }
        }
    }
}
