//! `kiln cp` and `kiln diff`: arguments into [`containers::copy`] calls.

use std::io::IsTerminal as _;
use std::path::Path;

use anyhow::{bail, Result};
use containers::copy::{self, HostEnd};

use crate::context::Ctx;
use crate::exit::{from_containers, Status};

#[derive(clap::Args, Debug)]
pub struct CpArgs {
    /// Follow a symlink given as the source
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Keep owners (kiln always does; accepted for docker compatibility)
    #[arg(short, long)]
    pub archive: bool,
    /// CONTAINER:PATH, a host path, or `-` for a tar on standard input
    #[arg(value_name = "SRC")]
    pub src: String,
    /// CONTAINER:PATH, a host path, or `-` for a tar on standard output
    #[arg(value_name = "DEST")]
    pub dest: String,
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `NAME:PATH` names a container's path (docker: a colon before any `/`);
/// anything else is the host's.
fn container_path(arg: &str) -> Option<(&str, &str)> {
    let (c, p) = arg.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then_some((c, p))
}

pub fn cp(ctx: &Ctx, args: CpArgs) -> Result<Status> {
    let store = ctx.store()?;
    match (container_path(&args.src), container_path(&args.dest)) {
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("one of SRC and DEST must be CONTAINER:PATH"),
        (Some((c, p)), None) => {
            let p = if p.is_empty() { "/" } else { p };
            let mut out = std::io::stdout().lock();
            let dest = if args.dest == "-" {
                if out.is_terminal() {
                    bail!("refusing to write a tar archive to a terminal: redirect stdout");
                }
                HostEnd::Tar
            } else {
                HostEnd::Path(Path::new(&args.dest))
            };
            copy::copy_out(&store, c, p, args.follow_link, dest, &mut out)
                .map_err(from_containers)?;
        }
        (None, Some((c, p))) => {
            let p = if p.is_empty() { "/" } else { p };
            let src = match args.src.as_str() {
                "-" => HostEnd::Tar,
                s => HostEnd::Path(Path::new(s)),
            };
            let mut input = std::io::stdin().lock();
            copy::copy_in(&store, c, p, src, args.follow_link, &mut input)
                .map_err(from_containers)?;
        }
    }
    Ok(Status::Success)
}

pub fn diff(ctx: &Ctx, args: DiffArgs) -> Result<Status> {
    let store = ctx.store()?;
    for ch in copy::diff(&store, &args.container).map_err(from_containers)? {
        outln!("{} {}", ch.kind, ch.path);
    }
    Ok(Status::Success)
}
