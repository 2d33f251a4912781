//! `kiln history`: one row per history entry, newest first.

use anyhow::Result;

use crate::cli::HistoryArgs;
use crate::context::Ctx;
use crate::exit::Status;
use crate::format;

pub fn run(ctx: &Ctx, args: HistoryArgs) -> Result<Status> {
    let store = ctx.store()?;
    let img = store.resolve(&args.image)?;
    let mut rows: Vec<Vec<String>> = image_store::inspect::history(&img)
        .iter()
        .map(|e| {
            let (h, size) = (&e.history, e.size);
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
