//! `kiln system check [--repair]`: one line per problem (podman's `system
//! check` shape); exit 0 when the store is consistent (or every problem was
//! repaired), 1 when problems remain, 125 when the check could not run.
//! `kiln system service`: the Docker Engine API (the `engine-api` crate).

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

#[derive(clap::Args, Debug)]
pub struct ServiceArgs {
    /// Exit after this many seconds with no connection open (0: never), as podman's
    #[arg(short, long, value_name = "SECONDS", default_value_t = 5)]
    pub time: u64,
    /// Where to listen: unix:///PATH or tcp://IP:PORT (default:
    /// unix:///run/kiln/kiln.sock for root, else $XDG_RUNTIME_DIR/kiln/kiln.sock)
    #[arg(value_name = "URI")]
    pub listen: Vec<String>,
}

pub fn service(ctx: &Ctx, args: ServiceArgs) -> Result<Status> {
    let mut listen = Vec::new();
    for l in &args.listen {
        listen.push(engine_api::Listen::parse(l)?);
    }
    if listen.is_empty() {
        listen.push(engine_api::Listen::Unix(default_socket()));
    }
    let store = ctx.store()?;
    let monitor: engine_api::MonitorFn = std::sync::Arc::new(|store, id| {
        crate::commands::run::monitor_command(store, id).map_err(std::io::Error::other)
    });
    let config = engine_api::Config {
        root: store.root().to_path_buf(),
        listen,
        idle: (args.time > 0).then(|| std::time::Duration::from_secs(args.time)),
        monitor,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(engine_api::serve(config))?;
    Ok(Status::Success)
}

fn default_socket() -> std::path::PathBuf {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return "/run/kiln/kiln.sock".into();
    }
    let base = std::env::var_os("XDG_RUNTIME_DIR")
        .filter(|v| !v.is_empty())
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    base.join("kiln/kiln.sock")
}
