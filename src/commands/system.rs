//! `kiln system check [--repair]`: one line per problem (podman's `system
//! check` shape); exit 0 when the store is consistent (or every problem was
//! repaired), 1 when problems remain, 125 when the check could not run.

use anyhow::Result;

use crate::cli::SystemCheckArgs;
use crate::context::Ctx;
use crate::exit::Status;
use crate::format;

pub fn check(ctx: &Ctx, args: SystemCheckArgs) -> Result<Status> {
    let store = ctx.store()?;
    let report = ::containers::check::system_check(&store, args.repair)?;
    for p in &report.problems {
        let note = match (args.repair, p.repaired) {
            (false, _) => String::new(),
            (true, true) => format!(" ({})", p.action),
            (true, false) => " (not repaired)".into(),
        };
        outln!("{p}{note}");
    }
    if !args.quiet {
        outln!(
            "Checked {} images, {} blobs ({})",
            report.images,
            report.blobs,
            format::human_size(report.bytes)
        );
        let (n, bytes) = report.unreferenced;
        if n > 0 && !args.repair {
            outln!(
                "{n} unreferenced blobs ({}) can be removed with `kiln image prune`",
                format::human_size(bytes)
            );
        }
        match (report.problems.len(), report.remaining()) {
            (0, _) => outln!("No problems found"),
            (found, 0) => outln!("{found} problems found, all repaired"),
            (found, left) if args.repair => {
                outln!("{found} problems found, {left} not repaired")
            }
            (found, _) => {
                outln!("{found} problems found (`kiln system check --repair` removes what it can)")
            }
        }
    }
    Ok(if report.remaining() > 0 {
        Status::External(1)
    } else {
        Status::Success
    })
}
