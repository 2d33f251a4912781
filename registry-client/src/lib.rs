//! The distribution (registry v2) protocol: auth challenges, blobs, manifests,
//! indexes and retries. Knows nothing of the local store.
//!
//! ```no_run
//! # async fn demo() -> registry_client::Result<()> {
//! use std::sync::Arc;
//! use registry_client::*;
//!
//! let creds = DockerConfig::load(None)?; // ~/.docker/config.json
//! let client = Client::new(ClientOptions {
//!     credentials: Some(Arc::new(creds)),
//!     ..ClientOptions::default()
//! });
//! let r: Reference = "alpine:3.20".parse()?;
//! let mut m = client.get_manifest(&r).await?;
//! if manifest::is_index(&m.media_type) {
//!     let d = select_platform(&m.bytes, &Platform::host())?;
//!     let by_digest = r.with_digest(d.digest.clone());
//!     m = client.get_manifest(&by_digest).await?;
//! }
//! // ... parse m.bytes, then for each layer (in parallel, on clones of `client`):
//! # let (digest, size): (Digest, u64) = todo!();
//! let mut tmp = tokio::fs::File::create("blob.tmp").await.unwrap();
//! client.pull_blob(&r.repository(), &digest, Some(size), &mut tmp).await?;
//! // Only now rename blob.tmp into the store: on Err it holds garbage.
//! # Ok(()) }
//! ```
//!
//! Pushing is the reverse: [`Client::push_blob`] for every layer and the
//! config (HEAD, then mount or upload), then [`Client::put_manifest`].
//!
//! Built on reqwest + rustls directly rather than `oci-client`: kiln needs
//! downloads that stream into a caller's writer and resume with `Range`,
//! uploads that re-open their source on retry, cross-repository mounts and
//! per-registry `certs.d` TLS, which `oci-client` does not expose together.

mod auth;
mod blob;
pub mod catalog;
mod client;
pub mod credentials;
mod error;
pub mod manifest;
mod tls;

pub use blob::{BlobSource, BlockingWrite, PushOutcome, ReaderFactory};
pub use client::{Client, ClientOptions, RetryPolicy};
pub use credentials::{config_key, CredentialStore, Credentials, DockerConfig, StaticCredentials};
pub use error::{Error, RegistryErrorItem, Result};
pub use manifest::{select_platform, Manifest, ManifestHead};
// The model is oci-model's; re-exported so callers keep their paths.
pub use oci_model::{
    normalize_registry, Algorithm, Descriptor, Digest, Platform, Reference, Repository, DOCKER_HUB,
};
