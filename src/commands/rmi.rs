//! `kiln rmi` and `kiln image prune`.

use anyhow::Result;
use image_store::filters::{ImageFilters, Keys};

use crate::cli::{PruneArgs, RmiArgs};
use crate::context::Ctx;
use crate::exit::{self, Status};
use crate::format;

pub fn run(ctx: &Ctx, args: RmiArgs) -> Result<Status> {
    let store = ctx.store()?;
    let mut failed = false;
    for name in &args.images {
        match store.remove(name, args.force, &|id| {
            ::containers::Containers::new(&store).container_using(id)
        }) {
            Ok(report) => {
                for u in &report.untagged {
                    outln!("Untagged: {u}");
                }
                for d in &report.deleted {
                    outln!("Deleted: {d}");
                }
            }
            Err(e) => {
                eprintln!("kiln: {}", exit::render(&e.into()));
                failed = true;
            }
        }
    }
    Ok(if failed {
        Status::External(exit::KILN_ERROR)
    } else {
        Status::Success
    })
}

pub fn prune(ctx: &Ctx, args: PruneArgs) -> Result<Status> {
    let store = ctx.store()?;
    let filters = ImageFilters::parse(&args.filter, Keys::Prune, &store.image_list()?)?;
    let (deleted, freed) = store.prune(args.all, &|img| {
        !filters.accepts(img)
            || ::containers::Containers::new(&store)
                .container_using(img.id())
                .is_some()
    })?;
    if !deleted.is_empty() {
        outln!("Deleted Images:");
        for d in &deleted {
            outln!("deleted: {d}");
        }
        outln!();
    }
    outln!("Total reclaimed space: {}", format::human_size(freed));
    Ok(Status::Success)
}
