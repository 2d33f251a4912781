//! Layer tars: path hygiene, and the normalising copy that turns any tar
//! stream (plain, gzip, zstd, bzip2 or xz) into a clean layer blob in one pass.
//! One file per concern; this one holds the error every part reports.

mod decompress;
mod entry_check;
mod names;
mod normalize;
mod size_limit;

use std::io;

use crate::digest::Digest;

pub use decompress::decompressed;
pub(crate) use decompress::Tagged;
pub use entry_check::{CheckedEntry, EntryCheck};
pub use names::{
    classify_name, clean_path, clean_path_bytes, show_name, show_type, EntryName, OPAQUE,
    WHITEOUT_PREFIX,
};
pub use normalize::{normalize_tar, TarStats};
pub(crate) use normalize::{not_tar, truncated};
pub use size_limit::{max_layer_size, SizeLimit, DEFAULT_MAX_LAYER_SIZE, LIMIT_ENV};

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("not a tar archive: {0}")]
    NotTar(String),
    #[error("tar archive is corrupt or truncated after {entries} entries: {reason}")]
    Corrupt { entries: u64, reason: String },
    #[error("the input is empty")]
    Empty,
    #[error("{kind} data is corrupt or truncated: {source}")]
    Decompress {
        kind: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("tar entry \"{entry}\": path escapes the root")]
    Escape { entry: String },
    #[error(
        "tar entry \"{entry}\": hard link to \"{target}\", which is not earlier in the archive"
    )]
    DanglingHardlink { entry: String, target: String },
    #[error("tar entry \"{entry}\": {reason}")]
    BadEntry { entry: String, reason: String },
    #[error(
        "the layer expands to more than {limit} bytes (the limit per layer; set {LIMIT_ENV} to change it)"
    )]
    TooLarge { limit: u64 },
    #[error("layer {layer}: its uncompressed content hashes to {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    /// An unpack asked to write only what differs from an earlier layer
    /// ([`crate::unpack::Reuse::delta`]) found a layer that is not such a
    /// delta; it is unpacked whole instead.
    #[error("the layer is not a delta over the one below: {0}")]
    NotDelta(&'static str),
    /// Any of the above, naming the layer (blob digest) it was found in.
    #[error("layer {layer}: {source}")]
    InLayer {
        layer: Digest,
        #[source]
        source: Box<LayerError>,
    },
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl LayerError {
    /// Ok when the layer `blob`'s uncompressed content hashed to the
    /// `claimed` diff ID, else the mismatch, naming all three.
    pub fn check_diff_id(
        blob: &Digest,
        claimed: &Digest,
        actual: &Digest,
    ) -> Result<(), LayerError> {
        if actual == claimed {
            return Ok(());
        }
        Err(LayerError::DiffIdMismatch {
            layer: blob.clone(),
            expected: claimed.clone(),
            actual: actual.clone(),
        })
    }

    /// This error, naming the layer it was found in (once).
    pub fn in_layer(self, layer: &Digest) -> LayerError {
        match self {
            e @ (LayerError::InLayer { .. } | LayerError::DiffIdMismatch { .. }) => e,
            e => LayerError::InLayer {
                layer: layer.clone(),
                source: Box::new(e),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::size_limit::parse_size;
    use super::*;

    #[test]
    fn cleans_paths() {
        let c = |s: &str| {
            clean_path(s)
                .unwrap()
                .map(|p| p.to_string_lossy().into_owned())
        };
        assert_eq!(c("./a/b"), Some("a/b".into()));
        assert_eq!(c("/abs/x"), Some("abs/x".into()));
        assert_eq!(c("a/../b"), Some("b".into()));
        assert_eq!(c("./"), None);
        assert!(clean_path("../escape").is_err());
        assert!(clean_path("a/../../x").is_err());
    }

    #[test]
    fn sizes_and_names() {
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("64g"), Some(64 << 30));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("99999999999T"), None);
        assert_eq!(show_name(b"a\xffb\n\"c"), "a\\xffb\\n\\\"c");
        assert_eq!(show_type(tar::EntryType::new(b'V')), "'V' (86)");
    }

    #[test]
    fn whiteout_names() {
        let c = |s: &[u8]| classify_name(s).map_err(|e| e.to_string());
        assert!(c(b"a/.wh...").unwrap_err().contains("a whiteout of \"..\""));
        assert!(c(b".wh..").is_err());
        assert!(c(b"./.wh.").is_err());
        assert_eq!(
            c(b"/a/.wh.x").unwrap(),
            Some(EntryName::Whiteout {
                dir: "a".into(),
                hidden: "x".into()
            })
        );
        assert_eq!(
            c(b"a/.wh..wh..opq").unwrap(),
            Some(EntryName::Opaque { dir: "a".into() })
        );
        assert_eq!(c(b".wh..wh.plnk").unwrap(), None);
    }
}
