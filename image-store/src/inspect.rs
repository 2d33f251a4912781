//! `docker image inspect`'s JSON for an image of the store (`kiln
//! inspect`, the Engine API's `/images/{name}/json`).

use serde_json::{json, Value};

use crate::images::Image;

/// docker's image inspect object for `img`.
pub fn describe(img: &Image) -> Value {
    let c = &img.config;
    let repo_digests: Vec<String> = img
        .names
        .iter()
        .map(|n| format!("{}@{}", crate::images::repo_of(n), img.manifest_digest()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    json!({
        "Id": img.id().to_string(),
        "Digest": img.manifest_digest().to_string(),
        "RepoTags": img.names,
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": c.comment.clone().unwrap_or_default(),
        "Created": c.created,
        "Author": c.author.clone().unwrap_or_default(),
        "Config": c.config.clone().unwrap_or_default(),
        "Architecture": c.architecture,
        "Variant": c.variant,
        "Os": c.os,
        "Size": img.size(),
        "RootFS": {
            "Type": c.rootfs.kind,
            "Layers": c.rootfs.diff_ids,
        },
        "History": c.history,
        "ManifestMediaType": img.manifest_descriptor.media_type,
        "Metadata": {
            "LastTagTime": Value::Null,
        },
    })
}

/// One entry of an image's history with the size of the layer it made.
#[derive(Debug, Clone)]
pub struct HistoryEntry {
    pub history: crate::model::History,
    /// Bytes of its layer (0 for an entry that made none).
    pub size: u64,
}

/// `img`'s history, oldest first, each entry with its layer's size; an
/// image without history (a tool that omits it) gets one entry per layer.
pub fn history(img: &Image) -> Vec<HistoryEntry> {
    let layers = &img.manifest.layers;
    let history: Vec<crate::model::History> = if img.config.history.is_empty() {
        layers.iter().map(|_| Default::default()).collect()
    } else {
        img.config.history.clone()
    };
    let mut sizes = layers.iter().map(|l| l.size);
    history
        .into_iter()
        .map(|h| {
            let size = match h.empty_layer {
                true => 0,
                false => sizes.next().unwrap_or(0),
            };
            HistoryEntry { history: h, size }
        })
        .collect()
}
