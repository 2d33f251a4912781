//! The OCI image model, at the bottom of the workspace: content digests,
//! image references, descriptors, manifests and indexes, the image config,
//! platforms (with the one rule for choosing a manifest from an index) and
//! the media types. Plain data and parsing; no I/O beyond the hashing
//! adapters that compute digests while bytes stream through.

pub mod config;
pub mod digest;
pub mod manifest;
pub mod media;
pub mod platform;
pub mod reference;

pub use config::{ContainerConfig, Healthcheck, History, ImageConfig, RootFs};
pub use digest::{Algorithm, Digest, DigestError};
pub use manifest::{Descriptor, Index, Manifest, RawManifest, MAX_LAYERS};
pub use platform::{host_arch, normalize_arch, Platform, PlatformError, PlatformNotFound};
pub use reference::{normalize_registry, Reference, ReferenceError, Repository, DOCKER_HUB};
