//! Layers compressed and uploaded while the build runs: each layer is
//! queued as its step finishes, compressed on a thread of its own, and its
//! upload runs while the next one is compressed. Used by `--cache-to
//! type=registry,mode=max` (every layer is exported) and by `--push` (the
//! final image's layers).

use std::collections::{HashMap, HashSet};

use image_store::compressed::LayerFormat;
use image_store::{Descriptor, Digest, Store};
use registry_client::{BlobSource, PushOutcome, Reference};
use transfer::RegistryAccess;

/// What the background upload of one layer gave: its compressed blob and
/// whether the registry had to take its bytes.
pub(super) type Sent = Result<(Descriptor, PushOutcome), String>;

/// Compresses and uploads layers on a thread of its own, as they are made.
pub struct Uploader {
    tx: Option<std::sync::mpsc::Sender<Digest>>,
    handle: Option<std::thread::JoinHandle<HashMap<Digest, Sent>>>,
}

impl Uploader {
    /// `None` when the registry cannot be reached this way (the export at
    /// the end then does all the work, and reports the error).
    pub fn start(
        store: &Store,
        reference: &str,
        format: LayerFormat,
        access: &RegistryAccess,
    ) -> Option<Uploader> {
        let repo = reference.parse::<Reference>().ok()?.remote().repository();
        let client = access.client().ok()?;
        let rt = transfer::runtime().ok()?;
        let store = store.clone();
        let (tx, rx) = std::sync::mpsc::channel::<Digest>();
        let handle = std::thread::spawn(move || {
            let mut pending = Vec::new();
            let mut seen = HashSet::new();
            for diff_id in rx {
                if !seen.insert(diff_id.clone()) {
                    continue;
                }
                let desc = match store.compressed_layer(&diff_id, format) {
                    Some(d) => Ok(d),
                    None => store.compress_layer(&diff_id, format),
                };
                let (client, repo, store) = (client.clone(), repo.clone(), store.clone());
                // The upload runs while the next layer is compressed.
                pending.push((
                    diff_id,
                    rt.spawn(async move {
                        let d = desc.map_err(|e| e.to_string())?;
                        let src = BlobSource::File(store.blob_path(&d.digest));
                        let o = client
                            .push_blob(&repo, &d.digest, d.size, &src, None)
                            .await
                            .map_err(|e| e.to_string())?;
                        Ok((d, o))
                    }),
                ));
            }
            pending
                .into_iter()
                .map(|(d, task)| {
                    let res = rt
                        .block_on(task)
                        .unwrap_or_else(|e| Err(format!("upload task: {e}")));
                    (d, res)
                })
                .collect()
        });
        Some(Uploader {
            tx: Some(tx),
            handle: Some(handle),
        })
    }

    /// Queues the layer `diff_id` (in the store) for upload.
    pub fn send(&self, diff_id: &Digest) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(diff_id.clone());
        }
    }

    /// Waits for every queued upload.
    pub fn finish(mut self) -> HashMap<Digest, Sent> {
        drop(self.tx.take());
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}
