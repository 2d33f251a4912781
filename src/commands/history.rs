//! `kiln history`: one row per history entry, newest first.

use anyhow::Result;
use cli_format::rows::history;
use cli_format::Format;

use crate::cli::HistoryArgs;
use crate::context::Ctx;
use crate::exit::Status;

pub fn run(ctx: &Ctx, args: HistoryArgs) -> Result<Status> {
    let format = Format::parse_rows(args.format.as_deref(), history::DEFAULT, history::ROW_TYPE)?;
    let store = ctx.store()?;
    let img = store.resolve(&args.image)?;
    let rows = history::rows(&img, args.no_trunc, args.human);
    if args.quiet {
        for r in &rows {
            outln!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(Status::Success);
    }
    out!("{}", format.render(&rows, history::HEADERS)?);
    Ok(Status::Success)
}
