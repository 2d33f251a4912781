//! `kiln stats`: flags into [`containers::stats`], and its table.

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::Result;
use cli_format::rows::stats;
use cli_format::Format;

use crate::context::Ctx;
use crate::exit::{from_containers, Status};

#[derive(clap::Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Print one reading and exit, instead of refreshing every second
    #[arg(long)]
    pub no_stream: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Format the output: `table`, `table TEMPLATE`, `json` or a Go template
    /// (fields .ID .Container .Name .CPUPerc .MemUsage .MemPerc .NetIO
    /// .BlockIO .PIDs)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub fn run(ctx: &Ctx, args: StatsArgs) -> Result<Status> {
    let format = Format::parse_rows(args.format.as_deref(), stats::DEFAULT, stats::ROW_TYPE)?;
    let store = ctx.store()?;
    let terminal = std::io::stdout().is_terminal();
    loop {
        // docker's one reading: CPU over a second between two samples.
        let all =
            containers::stats::stats(&store, &args.containers, args.all, Duration::from_secs(1))
                .map_err(from_containers)?;
        let rows: Vec<_> = all
            .iter()
            .map(|s| {
                let given = args
                    .containers
                    .iter()
                    .find(|n| **n == s.name || s.id.starts_with(n.as_str()))
                    .cloned()
                    .unwrap_or_else(|| s.id[..12.min(s.id.len())].to_string());
                stats::row(s, &given, args.no_trunc)
            })
            .collect();
        if !args.no_stream && terminal {
            // Clear the screen and go home, as docker's live table does.
            out!("\x1b[2J\x1b[H");
        }
        out!("{}", format.render(&rows, stats::HEADERS)?);
        if args.no_stream {
            return Ok(Status::Success);
        }
    }
}
