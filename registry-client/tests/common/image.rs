//! Builds small random test images (layer + config + OCI manifest).

use registry_client::manifest::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use registry_client::{BlobSource, Client, Digest, PushOutcome, Repository};

pub struct Blob {
    pub digest: Digest,
    pub data: Vec<u8>,
    pub media_type: String,
}

impl Blob {
    pub fn new(data: Vec<u8>, media_type: &str) -> Blob {
        Blob {
            digest: Digest::of_bytes(&data),
            data,
            media_type: media_type.into(),
        }
    }
    pub fn descriptor(&self) -> serde_json::Value {
        serde_json::json!({
            "mediaType": self.media_type,
            "digest": self.digest.to_string(),
            "size": self.data.len(),
        })
    }
}

/// Pseudo-random bytes (xorshift; no RNG crate needed, new each call).
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub struct TestImage {
    pub media_type: &'static str,
    pub layers: Vec<Blob>,
    pub config: Blob,
    pub manifest: Vec<u8>,
    pub digest: Digest,
}

impl TestImage {
    pub fn new(arch: &str, layer_sizes: &[usize]) -> TestImage {
        Self::build(arch, layer_sizes, false)
    }

    /// The same, as a Docker schema2 image.
    pub fn docker(arch: &str, layer_sizes: &[usize]) -> TestImage {
        Self::build(arch, layer_sizes, true)
    }

    fn build(arch: &str, layer_sizes: &[usize], docker: bool) -> TestImage {
        let (media_type, layer_type, config_type) = if docker {
            (
                DOCKER_MANIFEST,
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "application/vnd.docker.container.image.v1+json",
            )
        } else {
            (
                OCI_MANIFEST,
                "application/vnd.oci.image.layer.v1.tar",
                "application/vnd.oci.image.config.v1+json",
            )
        };
        let layers: Vec<Blob> = layer_sizes
            .iter()
            .map(|n| Blob::new(random_bytes(*n), layer_type))
            .collect();
        let config = serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>()},
            "config": {},
        });
        let config = Blob::new(config.to_string().into_bytes(), config_type);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        })
        .to_string()
        .into_bytes();
        let digest = Digest::of_bytes(&manifest);
        TestImage {
            media_type,
            layers,
            config,
            manifest,
            digest,
        }
    }

    pub fn blobs(&self) -> impl Iterator<Item = &Blob> {
        self.layers.iter().chain(std::iter::once(&self.config))
    }

    /// Pushes blobs (layers, config) then the manifest under `tag`.
    pub async fn push(&self, client: &Client, repo: &Repository, tag: &str) -> Vec<PushOutcome> {
        let mut outcomes = Vec::new();
        for b in self.blobs() {
            let o = client
                .push_blob(
                    repo,
                    &b.digest,
                    b.data.len() as u64,
                    &BlobSource::Bytes(b.data.clone().into()),
                    None,
                )
                .await
                .unwrap();
            outcomes.push(o);
        }
        let d = client
            .put_manifest(repo, tag, self.media_type, &self.manifest)
            .await
            .unwrap();
        assert_eq!(d, self.digest);
        outcomes
    }
}

/// An OCI index, or a Docker manifest list when the images are Docker's.
pub fn index_of(images: &[(&TestImage, &str, Option<&str>)]) -> Vec<u8> {
    let docker = images
        .first()
        .is_some_and(|i| i.0.media_type == DOCKER_MANIFEST);
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": if docker { DOCKER_MANIFEST_LIST } else { OCI_INDEX },
        "manifests": images.iter().map(|(img, arch, variant)| {
            let mut p = serde_json::json!({"os": "linux", "architecture": arch});
            if let Some(v) = variant { p["variant"] = serde_json::json!(v); }
            serde_json::json!({
                "mediaType": img.media_type,
                "digest": img.digest.to_string(),
                "size": img.manifest.len(),
                "platform": p,
            })
        }).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes()
}
