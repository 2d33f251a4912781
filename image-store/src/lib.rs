//! The local image store: an OCI image layout on disk plus kiln's own
//! bookkeeping beside it (locks, unpacked layers). Container records live
//! beside it too (`kiln/containers/`), but belong to the containers crate.

pub mod archive;
pub mod build_roots;
pub mod cache_dirs;
pub mod check;
pub mod compose;
pub mod compressed;
pub mod diff;
pub mod error;
pub mod fsutil;
pub mod images;
pub mod layer;
pub mod layers;
pub mod layout;
mod lock;
pub mod model;
pub mod temps;
pub mod unpack;
pub mod verify;

/// The OCI model lives in `oci-model`; these keep `image_store::digest::…`
/// and `image_store::reference::…` paths working.
pub use oci_model::{digest, reference};

pub use compose::{Committed, ComposeError, StoredLayer};
pub use digest::Digest;
pub use error::StoreError;
pub use fsutil::write_atomic;
pub use images::Image;
pub use layout::Store;
pub use model::{ContainerConfig, Descriptor, History, ImageConfig, Manifest};
pub use reference::Reference;
