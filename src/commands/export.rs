//! `kiln export`: flags into [`containers::export`], which writes the
//! container's whole filesystem as one tar.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::{bail, Result};

use crate::context::Ctx;
use crate::exit::{from_containers, Status};

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Write to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub fn run(ctx: &Ctx, args: ExportArgs) -> Result<Status> {
    if args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("refusing to write a tar archive to a terminal: use -o FILE or redirect stdout");
    }
    let store = ctx.store()?;
    let res = match &args.output {
        Some(out) => containers::export::export_to_file(&store, &args.container, out),
        None => containers::export::export(&store, &args.container, &mut std::io::stdout().lock()),
    };
    res.map_err(from_containers)?;
    Ok(Status::Success)
}
