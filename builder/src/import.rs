//! `kiln import` and the Engine API's `POST /images/create?fromSrc=`: a
//! rootfs tarball (plain or compressed) becomes a one-layer image, its
//! config set by `--change` instructions (the builder's Dockerfile config
//! rules), as `docker import` makes it.

use std::io::Read;

use image_store::model::{self, History, ImageConfig};
use image_store::{Committed, Reference, Store};

use crate::error::BuildError;

/// What `kiln import` asks for, flags already parsed.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    /// Where the tarball came from (`-`, a file, a URL), for the history.
    pub source: String,
    /// The new image's name.
    pub reference: Option<Reference>,
    /// The commit message; default "Imported from SOURCE".
    pub message: Option<String>,
    /// Dockerfile instructions (CMD, ENV, ...) for the config.
    pub changes: Vec<String>,
}

/// An http(s) URL's body, streamed (as docker import reads it).
pub fn open_url(url: &str) -> Result<Box<dyn Read + Send>, BuildError> {
    let resp = reqwest::blocking::get(url)
        .and_then(|r| r.error_for_status())
        .map_err(|e| BuildError::Invalid(format!("importing {url}: {}", e.without_url())))?;
    Ok(Box::new(resp))
}

/// Whether an import source names a URL rather than a file.
pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// Stores `input` as the one layer of a new image; the changes are
/// checked before anything is read, and nothing is kept on failure.
pub fn import(
    store: &Store,
    input: impl Read,
    req: &ImportRequest,
) -> Result<Committed, BuildError> {
    let mut container_config = image_store::ContainerConfig::default();
    let mut author = None;
    crate::config::apply_changes(&mut container_config, &mut author, &req.changes)
        .map_err(|e| BuildError::Invalid(e.to_string()))?;
    let ingest = store.ingest()?;
    let layer = ingest
        .store_layer_from_tar(input)
        .map_err(|e| BuildError::Invalid(format!("importing {}: {e}", req.source)))?;
    let created = model::now();
    let comment = req
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", req.source));
    let mut config = ImageConfig::for_host();
    config.created = Some(created.clone());
    config.comment = Some(comment.clone());
    config.config = Some(container_config);
    config.author = author;
    config.rootfs.diff_ids.push(layer.diff_id().clone());
    config.history.push(History {
        created: Some(created),
        comment: Some(comment),
        ..Default::default()
    });
    let names: Vec<Reference> = req.reference.iter().cloned().collect();
    let committed = ingest.commit_image(&config, vec![layer.descriptor], &names)?;
    ingest.commit()?;
    Ok(committed)
}
