//! The distribution (registry v2) protocol: auth challenges, blobs, manifests,
//! indexes and retries. Knows nothing of the local store.
//!
//! Built on reqwest + rustls directly rather than `oci-client`: kiln needs
//! downloads that stream into a caller's writer and resume with `Range`,
//! uploads that re-open their source on retry, cross-repository mounts and
//! per-registry `certs.d` TLS, which `oci-client` does not expose together.

mod auth;
mod blob;
mod client;
pub mod credentials;
mod digest;
mod error;
pub mod manifest;
mod reference;
mod tls;

pub use blob::{BlobSource, BlockingWrite, PushOutcome, ReaderFactory};
pub use client::{Client, ClientOptions, RetryPolicy};
pub use credentials::{config_key, CredentialStore, Credentials, DockerConfig, StaticCredentials};
pub use digest::{Algorithm, Digest};
pub use error::{Error, RegistryErrorItem, Result};
pub use manifest::{select_platform, Descriptor, Manifest, ManifestHead, Platform};
pub use reference::{normalize_registry, Reference, Repository, DOCKER_HUB};
