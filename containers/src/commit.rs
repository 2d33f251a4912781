//! `kiln commit`: a container's changes (its overlay upper directory)
//! become one new layer on top of its image.
//!
//! `pause` (docker's default): a running container's processes are
//! stopped with SIGSTOP while the layer is written and continued with
//! SIGCONT after (no cgroup freezer: the runner creates cgroups only for
//! resource limits).

use image_store::diff::{write_tar_from_dir, DiffOptions};
use image_store::model::{self, media, Descriptor, History};
use image_store::{Committed, ContainerConfig, Reference, Store};

use crate::control::{init_pid, namespace_pids};
use crate::error::{chain, Error, Result};
use crate::records::{Container, Containers};

/// What `kiln commit` sets beside the layer.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The author; default the image's.
    pub author: Option<String>,
    pub message: Option<String>,
    pub pause: bool,
    /// The new image's name.
    pub reference: Option<Reference>,
}

/// The edit a commit makes to the image's container config and author
/// (`--change` instructions), given by the caller.
pub type ConfigEdit<'a> = dyn FnOnce(
        &mut ContainerConfig,
        &mut Option<String>,
    ) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>
    + 'a;

/// SIGCONTs the stopped processes when dropped.
struct Paused(Vec<i32>);

impl Drop for Paused {
    fn drop(&mut self) {
        for &p in &self.0 {
            let _ = runner::kill(p, libc::SIGCONT);
        }
    }
}

fn pause(store: &Store, c: &Container) -> Paused {
    let Some(pid) = init_pid(store, c) else {
        return Paused(Vec::new());
    };
    let mut stopped = Vec::new();
    for p in namespace_pids(pid) {
        if runner::kill(p, libc::SIGSTOP).is_ok() {
            stopped.push(p);
        }
    }
    Paused(stopped)
}

/// Commits container `name`'s changes as a new image.
pub fn commit(
    store: &Store,
    name: &str,
    opts: CommitOptions,
    edit: Box<ConfigEdit<'_>>,
) -> Result<Committed> {
    let containers = Containers::new(store);
    let c = containers.container(name)?;
    crate::export::not_on_a_copy(store, &c)?;
    // The base image is looked up inside the transaction that also stores
    // the new image (it holds the writer lock), so an `rmi` cannot delete it
    // in between; on failure the blobs it wrote are removed again.
    let ingest = store.ingest()?;
    let image = store
        .resolve_locked(&c.image_id.to_string())
        .map_err(|e| Error::Invalid(format!("the image of container {name}: {}", chain(&e))))?;
    let mut config = image.config.clone();
    let mut container_config = config.container_config();
    let mut author = opts.author.clone().or_else(|| config.author.clone());
    edit(&mut container_config, &mut author).map_err(Error::Changes)?;

    let upper = containers.container_dir(&c.id).join("upper");
    std::fs::create_dir_all(&upper).map_err(Error::io(&upper))?;
    let (digest, size) = {
        let _paused = if opts.pause {
            pause(store, &c)
        } else {
            Paused(Vec::new())
        };
        let mut w = ingest.blob_writer()?;
        write_tar_from_dir(
            &upper,
            &mut w,
            DiffOptions {
                overlay_whiteouts: true,
                clamp_mtime: None,
            },
        )
        .map_err(|e| {
            Error::Invalid(format!(
                "writing the container's changes as a layer: {}",
                chain(&e)
            ))
        })?;
        w.commit(None)?
    };
    let created = model::now();
    config.created = Some(created.clone());
    config.author = author.clone();
    config.comment = opts.message.clone();
    config.config = Some(container_config);
    config.rootfs.diff_ids.push(digest.clone());
    config.history.push(History {
        created: Some(created),
        created_by: Some(c.command.join(" ")),
        author,
        comment: opts.message.clone(),
        empty_layer: false,
    });
    let mut layers = image.manifest.layers.clone();
    layers.push(Descriptor::new(media::OCI_LAYER, digest, size));
    let names: Vec<Reference> = opts.reference.into_iter().collect();
    let committed = ingest.commit_image(&config, layers, &names)?;
    ingest.commit()?;
    Ok(committed)
}
