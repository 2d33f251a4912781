//! `kiln history`: one row per history entry, newest first.

use anyhow::Result;
use image_store::History;

use crate::cli::HistoryArgs;
use crate::context::Ctx;
use crate::exit::Status;
use crate::format;

pub fn run(ctx: &Ctx, args: HistoryArgs) -> Result<Status> {
    let store = ctx.store()?;
    let img = store.resolve(&args.image)?;
    let layers = &img.manifest.layers;
    // An image without history (e.g. pushed by a tool that omits it) gets
    // one synthetic entry per layer.
    let history: Vec<History> = if img.config.history.is_empty() {
        layers.iter().map(|_| History::default()).collect()
    } else {
        img.config.history.clone()
    };
    let mut layer_sizes = layers.iter().map(|l| l.size);
    let mut rows: Vec<Vec<String>> = history
        .iter()
        .map(|h| {
            let size = if h.empty_layer {
                0
            } else {
                layer_sizes.next().unwrap_or(0)
            };
            let created_by = h.created_by.clone().unwrap_or_default();
            vec![
                "<missing>".to_string(),
                if args.human {
                    format::ago(h.created.as_deref())
                } else {
                    h.created.clone().unwrap_or_default()
                },
                if args.no_trunc {
                    created_by
                } else {
                    format::ellipsis(&created_by, 45)
                },
                if args.human {
                    format::human_size(size)
                } else {
                    size.to_string()
                },
                h.comment.clone().unwrap_or_default(),
            ]
        })
        .collect();
    rows.reverse();
    if let Some(top) = rows.first_mut() {
        top[0] = if args.no_trunc {
            img.id().to_string()
        } else {
            img.id().short().to_string()
        };
    }
    if args.quiet {
        for r in &rows {
            outln!("{}", r[0]);
        }
        return Ok(Status::Success);
    }
    out!(
        "{}",
        format::table(
            &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
            &rows
        )
    );
    Ok(Status::Success)
}
