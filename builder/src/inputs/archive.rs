//! A context archive (plain, gzip, bzip2, xz or zstd tar) unpacked with
//! the store's checked extraction: the same entry rules as a layer, every
//! entry created inside the target, no device nodes.

use std::io::Read;
use std::path::Path;

use image_store::layer::{decompressed, LayerError};

use crate::error::BuildError;

/// Unpacks `input` into `dest` (an empty directory). `what` names the
/// input in errors (`standard input`, a URL).
pub(super) fn unpack(input: impl Read, dest: &Path, what: &str) -> Result<(), BuildError> {
    let bad = |e: LayerError| BuildError::Invalid(format!("the build context from {what}: {e}"));
    let tar = decompressed(input).map_err(bad)?;
    image_store::unpack::unpack_tree(tar, dest).map_err(bad)?;
    Ok(())
}
