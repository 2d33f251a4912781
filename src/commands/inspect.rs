//! `kiln inspect`: docker-style JSON for images.

use anyhow::Result;
use cli_format::Format;

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
            Ok(img) => out.push(image_store::inspect::describe(&img)),
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
