//! `kiln import`: flags into [`builder::import::import`], which makes a
//! one-layer image of a rootfs tarball (a file, `-` for standard input,
//! or an http(s) URL, streamed).

use std::fs::File;
use std::io::Read;

use anyhow::{Context as _, Result};
use builder::import::{self, ImportRequest};
use image_store::Reference;

use crate::cli::ImportArgs;
use crate::context::Ctx;
use crate::exit::Status;

pub fn run(ctx: &Ctx, args: ImportArgs) -> Result<Status> {
    let reference: Option<Reference> = args.reference.as_deref().map(str::parse).transpose()?;
    let src = args.source.as_str();
    let req = ImportRequest {
        source: src.to_string(),
        reference,
        message: args.message,
        changes: args.changes,
    };
    let input: Box<dyn Read> = if src == "-" {
        Box::new(std::io::stdin().lock())
    } else if import::is_url(src) {
        import::open_url(src)?
    } else {
        Box::new(File::open(src).with_context(|| format!("opening {src}"))?)
    };
    let store = ctx.store()?;
    let committed = import::import(&store, input, &req)?;
    outln!("{}", committed.id);
    Ok(Status::Success)
}
