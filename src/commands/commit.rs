//! `kiln commit`: flags into [`containers::commit::commit`], which writes
//! the container's changes as a layer on its image (pausing it first
//! unless `--pause=false`); `--change` instructions are applied by the
//! builder's Dockerfile config rules.

use anyhow::Result;
use containers::commit::CommitOptions;
use image_store::Reference;

use crate::context::Ctx;
use crate::exit::{from_containers, Status};

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

pub fn run(ctx: &Ctx, args: CommitArgs) -> Result<Status> {
    let reference: Option<Reference> = args.reference.as_deref().map(str::parse).transpose()?;
    let store = ctx.store()?;
    let opts = CommitOptions {
        author: args.author,
        message: args.message,
        pause: args.pause,
        reference,
    };
    let changes = args.changes;
    let edit = Box::new(|config: &mut _, author: &mut _| {
        builder::config::apply_changes(config, author, &changes).map_err(Into::into)
    });
    let committed =
        containers::commit::commit(&store, &args.container, opts, edit).map_err(from_containers)?;
    outln!("{}", committed.id);
    Ok(Status::Success)
}
