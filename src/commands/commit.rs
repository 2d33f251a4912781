//! `kiln commit`: a container's changes (its overlay upper directory)
//! become one new layer on top of its image.
//!
//! `--pause` (default true, as docker): a running container's processes are
//! stopped with SIGSTOP while the layer is written and continued with
//! SIGCONT after (no cgroup freezer: the runner creates cgroups only for
//! resource limits).

use anyhow::{Context as _, Result};
use image_store::diff::{write_tar_from_dir, DiffOptions};
use image_store::model::{self, media, Descriptor, History};
use image_store::Reference;

use super::ctr;
use crate::context::Ctx;
use crate::exit::Status;

#[derive(clap::Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g. "Jane Doe <jane@example.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
    /// Apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR)
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// Pause the container during commit
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// Name of the new image, REPOSITORY[:TAG]
    pub reference: Option<String>,
}

/// SIGCONTs the stopped processes when dropped.
struct Paused(Vec<i32>);

impl Drop for Paused {
    fn drop(&mut self) {
        for &p in &self.0 {
            let _ = runner::kill(p, libc::SIGCONT);
        }
    }
}

fn pause(store: &image_store::Store, c: &image_store::containers::Container) -> Paused {
    let Some(pid) = ctr::init_pid(store, c) else {
        return Paused(Vec::new());
    };
    let mut stopped = Vec::new();
    for p in ctr::namespace_pids(pid) {
        if runner::kill(p, libc::SIGSTOP).is_ok() {
            stopped.push(p);
        }
    }
    Paused(stopped)
}

pub fn run(ctx: &Ctx, args: CommitArgs) -> Result<Status> {
    let name: Option<Reference> = args.reference.as_deref().map(str::parse).transpose()?;
    let store = ctx.store()?;
    let c = ctr::find(&store, &args.container)?;
    // The base image is looked up inside the transaction that also stores
    // the new image (it holds the writer lock), so an `rmi` cannot delete it
    // in between; on failure the blobs it wrote are removed again.
    let ingest = store.ingest()?;
    let image = store
        .resolve_locked(&c.image_id.to_string())
        .with_context(|| format!("the image of container {}", args.container))?;
    let mut config = image.config.clone();
    let mut container_config = config.container_config();
    let mut author = args.author.clone().or_else(|| config.author.clone());
    builder::config::apply_changes(&mut container_config, &mut author, &args.changes)?;

    let upper = store.container_dir(&c.id).join("upper");
    std::fs::create_dir_all(&upper)?;
    let (digest, size) = {
        let _paused = if args.pause {
            pause(&store, &c)
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
        .context("writing the container's changes as a layer")?;
        w.commit(None)?
    };
    let created = model::now();
    config.created = Some(created.clone());
    config.author = author.clone();
    config.comment = args.message.clone();
    config.config = Some(container_config);
    config.rootfs.diff_ids.push(digest.clone());
    config.history.push(History {
        created: Some(created),
        created_by: Some(c.command.join(" ")),
        author,
        comment: args.message.clone(),
        empty_layer: false,
    });
    let mut layers = image.manifest.layers.clone();
    layers.push(Descriptor::new(media::OCI_LAYER, digest, size));
    let names: Vec<Reference> = name.into_iter().collect();
    let committed = ingest.commit_image(&config, layers, &names)?;
    ingest.commit()?;
    outln!("{}", committed.id);
    Ok(Status::Success)
}
