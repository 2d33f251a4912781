//! `kiln images` and `kiln tag`.

use anyhow::Result;
use image_store::images::split_name;
use image_store::{Image, Reference};
use serde_json::json;

use crate::cli::{ImagesArgs, TagArgs};
use crate::context::Ctx;
use crate::exit::Status;
use crate::format;

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
    let mut images = list.images;
    images.sort_by(|a, b| b.config.created.cmp(&a.config.created));
    let filter: Option<Reference> = args.reference.as_deref().map(str::parse).transpose()?;

    let mut rows = Vec::new();
    for img in &images {
        if img.names.is_empty() {
            if filter.is_none() {
                rows.push(Row {
                    image: img,
                    repo: "<none>".into(),
                    tag: "<none>".into(),
                });
            }
            continue;
        }
        for n in &img.names {
            if filter.as_ref().is_some_and(|f| !matches_filter(f, n)) {
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

    let id = |i: &Image| {
        if args.no_trunc {
            i.id().to_string()
        } else {
            i.id().short().to_string()
        }
    };
    if args.quiet {
        let mut seen = std::collections::HashSet::new();
        for r in &rows {
            if seen.insert(r.image.id().clone()) {
                outln!("{}", id(r.image));
            }
        }
        return Ok(Status::Success);
    }
    if args.format.as_deref() == Some("json") {
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "Id": r.image.id().to_string(),
                    "Repository": r.repo,
                    "Tag": r.tag,
                    "Names": r.image.names,
                    "Digest": r.image.manifest_digest().to_string(),
                    "Created": r.image.config.created,
                    "Size": r.image.size(),
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(Status::Success);
    }
    if let Some(f) = args.format.as_deref().filter(|f| *f != "table") {
        anyhow::bail!("unsupported --format {f:?}: use `table` or `json`");
    }
    let mut header = vec!["REPOSITORY", "TAG"];
    if args.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![r.repo.clone(), r.tag.clone()];
            if args.digests {
                cells.push(r.image.manifest_digest().to_string());
            }
            cells.push(id(r.image));
            cells.push(format::ago(r.image.config.created.as_deref()));
            cells.push(format::human_size(r.image.size()));
            cells
        })
        .collect();
    out!("{}", format::table(&header, &table));
    Ok(Status::Success)
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
