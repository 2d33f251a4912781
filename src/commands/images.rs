//! `kiln images` and `kiln tag`.

use anyhow::Result;
use cli_format::rows::images;
use cli_format::Format;
use image_store::filters::{ImageFilters, Keys};
use image_store::images::split_name;
use image_store::{Image, Reference};

use crate::cli::{ImagesArgs, TagArgs};
use crate::context::Ctx;
use crate::exit::Status;

struct Row<'a> {
    image: &'a Image,
    repo: String,
    tag: String,
}

pub fn run(ctx: &Ctx, args: ImagesArgs) -> Result<Status> {
    let store = ctx.store()?;
    let list = store.image_list()?;
    for b in &list.broken {
        eprintln!("WARNING: {}", b.error(&b.label()));
    }
    let format = Format::parse_rows(
        args.format.as_deref(),
        default_format(&args),
        images::ROW_TYPE,
    )?;
    let filters = ImageFilters::parse(&args.filter, Keys::List, &list)?;
    let mut images = list.images;
    images.sort_by(|a, b| b.config.created.cmp(&a.config.created));
    let filter: Option<Reference> = args.reference.as_deref().map(str::parse).transpose()?;

    let mut rows = Vec::new();
    for img in images.iter().filter(|i| filters.accepts(i)) {
        if img.names.is_empty() {
            if filter.is_none() && filters.accepts_name(None) {
                rows.push(Row {
                    image: img,
                    repo: "<none>".into(),
                    tag: "<none>".into(),
                });
            }
            continue;
        }
        for n in &img.names {
            if filter.as_ref().is_some_and(|f| !matches_filter(f, n))
                || !filters.accepts_name(Some(n))
            {
                continue;
            }
            let (repo, tag) = split_name(n);
            rows.push(Row {
                image: img,
                repo,
                tag,
            });
        }
    }

    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            if seen.insert(r.image.id().clone()) {
                let id = r.image.id();
                match args.no_trunc {
                    true => outln!("{id}"),
                    false => outln!("{}", id.short()),
                }
            }
        }
        return Ok(Status::Success);
    }
    let rows: Vec<_> = rows
        .iter()
        .map(|r| images::row(r.image, &r.repo, &r.tag, args.no_trunc))
        .collect();
    out!("{}", format.render(&rows, images::HEADERS)?);
    Ok(Status::Success)
}

fn default_format(args: &ImagesArgs) -> &'static str {
    match args.digests {
        true => images::DEFAULT_DIGESTS,
        false => images::DEFAULT,
    }
}

/// `kiln images busybox` lists every tag of the repository; with a tag,
/// just that one.
fn matches_filter(filter: &Reference, name: &str) -> bool {
    filter.candidates().iter().any(|c| {
        if filter.tag().is_some() || filter.digest().is_some() {
            c.to_string() == name
        } else {
            image_store::images::repo_of(name) == c.name()
        }
    })
}

pub fn tag(ctx: &Ctx, args: TagArgs) -> Result<Status> {
    let store = ctx.store()?;
    store.tag(&args.source, &args.target)?;
    Ok(Status::Success)
}
