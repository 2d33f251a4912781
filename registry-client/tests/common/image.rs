//! Builds small random test images (layer + config + OCI manifest).

use registry_client::manifest::{OCI_INDEX, OCI_MANIFEST};
use registry_client::{BlobSource, Client, Digest, PushOutcome, Repository};

pub struct Blob {
    pub digest: Digest,
    pub data: Vec<u8>,
    pub media_type: String,
}

impl Blob {
    pub fn new(data: Vec<u8>, media_type: &str) -> Blob {
        Blob {
            digest: Digest::sha256_of(&data),
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
    pub layers: Vec<Blob>,
    pub config: Blob,
    pub manifest: Vec<u8>,
    pub digest: Digest,
}

impl TestImage {
    pub fn new(arch: &str, layer_sizes: &[usize]) -> TestImage {
        let layers: Vec<Blob> = layer_sizes
            .iter()
            .map(|n| Blob::new(random_bytes(*n), "application/vnd.oci.image.layer.v1.tar"))
            .collect();
        let config = serde_json::json!({
            "architecture": arch,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.digest.to_string()).collect::<Vec<_>>()},
            "config": {},
        });
        let config = Blob::new(
            config.to_string().into_bytes(),
            "application/vnd.oci.image.config.v1+json",
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        })
        .to_string()
        .into_bytes();
        let digest = Digest::sha256_of(&manifest);
        TestImage {
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
            .put_manifest(repo, tag, OCI_MANIFEST, &self.manifest)
            .await
            .unwrap();
        assert_eq!(d, self.digest);
        outcomes
    }
}

pub fn index_of(images: &[(&TestImage, &str, Option<&str>)]) -> Vec<u8> {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": images.iter().map(|(img, arch, variant)| {
            let mut p = serde_json::json!({"os": "linux", "architecture": arch});
            if let Some(v) = variant { p["variant"] = serde_json::json!(v); }
            serde_json::json!({
                "mediaType": OCI_MANIFEST,
                "digest": img.digest.to_string(),
                "size": img.manifest.len(),
                "platform": p,
            })
        }).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes()
}
