//! `kiln inspect`: docker-style JSON for images.

use anyhow::Result;
use cli_format::Format;
use image_store::Image;
use serde_json::{json, Value};

use crate::cli::InspectArgs;
use crate::context::Ctx;
use crate::exit::{self, Status};

pub fn run(ctx: &Ctx, args: InspectArgs) -> Result<Status> {
    let kind = args.kind.as_deref();
    if let Some(k) = kind.filter(|k| !matches!(*k, "image" | "container")) {
        anyhow::bail!("unsupported --type {k:?}: only images and containers can be inspected");
    }
    // A bad template fails before anything is looked up, as docker's.
    let format = args
        .format
        .as_deref()
        .map(|f| Format::parse(Some(f), f))
        .transpose()?;
    let store = ctx.store()?;
    let mut out = Vec::new();
    let mut failed = false;
    let containers = containers::Containers::new(&store);
    for name in &args.images {
        // A container first, as docker decides what a name is.
        if kind != Some("image") {
            match containers.container(name) {
                Ok(c) => {
                    out.push(containers::inspect::describe(&store, &c));
                    continue;
                }
                Err(e) if kind == Some("container") => {
                    eprintln!("kiln: {}", exit::render(&exit::from_containers(e)));
                    failed = true;
                    continue;
                }
                Err(_) => {}
            }
        }
        match store.resolve(name) {
            Ok(img) => out.push(describe(&img)),
            Err(e) => {
                eprintln!("kiln: {}", exit::render(&e.into()));
                failed = true;
            }
        }
    }
    match format {
        Some(f) => out!("{}", f.render(&out, &[])?),
        None => outln!("{}", serde_json::to_string_pretty(&out)?),
    }
    Ok(if failed {
        Status::External(exit::KILN_ERROR)
    } else {
        Status::Success
    })
}

fn describe(img: &Image) -> Value {
    let c = &img.config;
    let repo_digests: Vec<String> = img
        .names
        .iter()
        .map(|n| {
            format!(
                "{}@{}",
                image_store::images::repo_of(n),
                img.manifest_digest()
            )
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    json!({
        "Id": img.id().to_string(),
        "Digest": img.manifest_digest().to_string(),
        "RepoTags": img.names,
        "RepoDigests": repo_digests,
        "Parent": "",
        "Comment": c.comment.clone().unwrap_or_default(),
        "Created": c.created,
        "Author": c.author.clone().unwrap_or_default(),
        "Config": c.config.clone().unwrap_or_default(),
        "Architecture": c.architecture,
        "Variant": c.variant,
        "Os": c.os,
        "Size": img.size(),
        "RootFS": {
            "Type": c.rootfs.kind,
            "Layers": c.rootfs.diff_ids,
        },
        "History": c.history,
        "ManifestMediaType": img.manifest_descriptor.media_type,
        "Metadata": {
            "LastTagTime": Value::Null,
        },
    })
}
