//! Media types of manifests, indexes, configs and layers, and what a layer's
//! media type says about its compression.

pub const OCI_LAYOUT_VERSION: &str = "1.0.0";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
pub const DOCKER_FOREIGN_LAYER: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";

pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// How a layer blob is compressed, judged by its media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

pub fn layer_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        OCI_LAYER | DOCKER_LAYER => Some(Compression::None),
        OCI_LAYER_GZIP | DOCKER_LAYER_GZIP | DOCKER_FOREIGN_LAYER => Some(Compression::Gzip),
        OCI_LAYER_ZSTD | DOCKER_LAYER_ZSTD => Some(Compression::Zstd),
        _ => None,
    }
}
/// Whether a manifest media type is a multi-platform index (OCI index or
/// Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}
