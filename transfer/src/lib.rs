//! Moving images between the places they live: registries (`docker://`),
//! OCI layout directories (`oci:`), archives (`oci-archive:`,
//! `docker-archive:`) and the local store. `kiln pull`, `push`, `save`,
//! `load` and the builder's base-image pull all go through here.

pub mod archive;
mod copy;
pub mod credentials;
mod error;
mod image;
pub mod location;
pub mod oci_dir;
pub mod oci_layout;
pub mod progress;
pub mod registry;
pub mod store;

pub use copy::{copy, Copied, CopyOptions, DEFAULT_JOBS};
pub use credentials::RegistryAccess;
pub use error::{Context, Error, Result};
pub use image::{ImageDest, ImageSource, RawManifest, SourceBlob, SourceImage};
pub use location::Location;
pub use progress::{BlobProgress, Progress, Silent};
pub use registry::{Pulled, Puller};
pub use store::{StoreDest, StoreSource};

pub use oci_model::MAX_LAYERS;

/// The warning for an image that arrives with more layers than a union
/// filesystem stacks (pull, load): it is stored, but may not run.
pub fn too_many_layers(name: &str, layers: usize) -> Option<String> {
    (layers > MAX_LAYERS).then(|| {
        format!(
            "{name} has {layers} layers; a union filesystem stacks at most {MAX_LAYERS}, so it may not run"
        )
    })
}

/// A multi-threaded runtime for the async registry client.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
}
