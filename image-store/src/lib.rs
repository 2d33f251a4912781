//! The local image store: an OCI image layout on disk plus kiln's own
//! bookkeeping beside it (locks, unpacked layers). Container records live
//! beside it too (`kiln/containers/`), but belong to the containers crate.

pub mod build_roots;
pub mod cache_dirs;
pub mod check;
pub mod compressed;
pub mod diff;
pub mod error;
pub mod filters;
pub mod fsutil;
pub mod images;
pub mod ingest;
pub mod inspect;
pub mod layer;
pub mod layer_files;
pub mod lock;
pub use lock::LockGuard;
pub mod model;
mod piped;
pub mod rewrite;
pub mod store;
pub mod temps;
pub mod unpack;
pub mod unpacked;
pub mod unpacking;
pub mod verify;
pub mod writer_marks;

/// The OCI model lives in `oci-model`; these keep `image_store::digest::…`
/// and `image_store::reference::…` paths working.
pub use oci_model::{digest, reference};

pub use digest::Digest;
pub use error::StoreError;
pub use fsutil::write_atomic;
pub use images::Image;
pub use ingest::{Added, Committed, ComposeError, Ingest, StoredLayer};
pub use model::{ContainerConfig, Descriptor, History, ImageConfig, Manifest};
pub use reference::Reference;
pub use store::Store;
