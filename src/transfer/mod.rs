//! Moving images between the store and elsewhere: registries (`docker://`),
//! OCI layout directories (`oci:`) and archives (`oci-archive:`,
//! `docker-archive:`). Shared by `kiln pull` and `kiln push`.

pub mod oci_dir;
pub mod opts;
pub mod progress;
pub mod registry;
pub mod transport;

/// A union filesystem stacks at most this many layers.
pub const MAX_LAYERS: usize = 127;

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
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8);
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?)
}

/// Converts between the registry client's digest and the store's.
pub fn store_digest(d: &registry_client::Digest) -> anyhow::Result<image_store::Digest> {
    Ok(d.to_string().parse()?)
}

pub fn client_digest(d: &image_store::Digest) -> anyhow::Result<registry_client::Digest> {
    Ok(d.to_string().parse()?)
}
