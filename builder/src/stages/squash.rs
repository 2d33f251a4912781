//! `--squash`: the layers above the base merged into one.

use image_store::model::History;

use super::stage::State;
use super::Builder;
use crate::error::BuildError;

impl Builder<'_> {
    /// `--squash`: the layers above the base merged into one.
    pub(crate) fn squash(&self, state: &mut State) -> Result<(), BuildError> {
        let above = state.layers.len() - state.base_layers;
        if above <= 1 {
            return Ok(());
        }
        let merged = self.scratch.path().join("squash");
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
}
