//! `kiln import`: a rootfs tarball becomes a one-layer image.

use std::fs::File;
use std::io::Read;

use anyhow::{Context as _, Result};
use image_store::model::{self, History, ImageConfig};
use image_store::Reference;

use crate::cli::ImportArgs;
use crate::context::Ctx;
use crate::exit::Status;

pub fn run(ctx: &Ctx, args: ImportArgs) -> Result<Status> {
    let name: Option<Reference> = args.reference.as_deref().map(str::parse).transpose()?;
    let mut container_config = image_store::ContainerConfig::default();
    let mut author = None;
    builder::config::apply_changes(&mut container_config, &mut author, &args.changes)?;
    let src = args.source.as_str();
    let input: Box<dyn Read> = if src == "-" {
        Box::new(std::io::stdin().lock())
    } else if src.starts_with("http://") || src.starts_with("https://") {
        // Streamed straight into the layer writer, as docker import does.
        let resp = reqwest::blocking::get(src)
            .and_then(|r| r.error_for_status())
            .map_err(|e| anyhow::anyhow!("importing {src}: {}", e.without_url()))?;
        Box::new(resp)
    } else {
        Box::new(File::open(src).with_context(|| format!("opening {src}"))?)
    };

    let store = ctx.store()?;
    let ingest = store.ingest()?;
    let layer = ingest
        .store_layer_from_tar(input)
        .with_context(|| format!("importing {src}"))?;
    let created = model::now();
    let comment = args
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {src}"));
    let mut config = ImageConfig::for_host();
    config.created = Some(created.clone());
    config.comment = Some(comment.clone());
    config.config = Some(container_config);
    config.author = author;
    config.rootfs.diff_ids.push(layer.diff_id().clone());
    config.history.push(History {
        created: Some(created),
        comment: Some(comment),
        ..Default::default()
    });
    let names: Vec<Reference> = name.into_iter().collect();
    let committed = ingest.commit_image(&config, vec![layer.descriptor], &names)?;
    ingest.commit()?;
    outln!("{}", committed.id);
    Ok(Status::Success)
}
