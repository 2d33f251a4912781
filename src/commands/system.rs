//! `kiln system check|df|prune|info` and `kiln version`.
//!
//! `system check [--repair]`: one line per problem (podman's `system
//! check` shape); exit 0 when the store is consistent (or every problem was
//! repaired), 1 when problems remain, 125 when the check could not run.
//! `kiln system service`: the Docker Engine API (the `engine-api` crate).

use anyhow::Result;
use cli_format::rows::{df, images, info, ps, version, volumes};
use cli_format::Format;
use containers::control;
use containers::network::Networks;

use crate::cli::{DfArgs, FormatArgs, SystemCheckArgs, SystemPruneArgs};
use crate::context::Ctx;
use crate::exit::{self, from_containers, Status};
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

/// `kiln system df [-v]`.
pub fn df(ctx: &Ctx, args: DfArgs) -> Result<Status> {
    // With -v, docker runs a format of its own (not `table`) once, on the
    // lists (`{{range .Images}}…`): no header, no columns, `table `
    // dropped, nothing added after it.
    let verbose_format = match args.format.as_deref().map(str::trim) {
        Some(f) if args.verbose && !f.is_empty() && f != "table" => {
            let body = match f.strip_prefix("table") {
                Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim_start(),
                _ => f,
            };
            Some(Format::parse_rows(Some(body), body, df::VERBOSE_TYPE)?)
        }
        _ => None,
    };
    let format = Format::parse_rows(args.format.as_deref(), df::DEFAULT, df::ROW_TYPE)?;
    let store = ctx.store()?;
    let usage = ::containers::usage::disk_usage(&store).map_err(from_containers)?;
    if let Some(f) = verbose_format {
        let mut text = f.render(&[df::verbose(&store, &usage)], &[])?;
        text.pop();
        out!("{text}");
        return Ok(Status::Success);
    }
    if !args.verbose {
        out!("{}", format.render(&df::rows(&usage), df::HEADERS)?);
        return Ok(Status::Success);
    }
    let section = |template: &str, rows: &[serde_json::Value], headers| -> Result<String> {
        Ok(Format::parse(Some(template), template)?.render(rows, headers)?)
    };
    let image_rows = df::image_rows(&usage, true);
    outln!("Images space usage:\n");
    out!(
        "{}",
        section(df::IMAGES_VERBOSE, &image_rows, images::HEADERS)?
    );
    outln!("\nContainers space usage:\n");
    let container_rows = df::container_rows(&store, &usage, true);
    out!(
        "{}",
        section(df::CONTAINERS_VERBOSE, &container_rows, ps::HEADERS)?
    );
    outln!("\nLocal Volumes space usage:\n");
    let volume_rows = df::volume_rows(&usage);
    out!(
        "{}",
        section(df::VOLUMES_VERBOSE, &volume_rows, volumes::HEADERS)?
    );
    outln!(
        "\nBuild cache usage: {} ({} step records)",
        format::human_size(usage.cache_size),
        usage.cache_records
    );
    Ok(Status::Success)
}

/// `kiln system prune`: stopped containers, unused networks, dangling (or
/// with `-a` unused) images and the build cache; with `--volumes` the
/// anonymous volumes no container uses. Running containers, and the images
/// and volumes of any container, stay.
pub fn prune(ctx: &Ctx, args: SystemPruneArgs) -> Result<Status> {
    let store = ctx.store()?;
    let mut freed = 0u64;
    let mut seen = std::collections::HashSet::new();
    let dirs = ::containers::Containers::new(&store);
    let mut gone = Vec::new();
    for c in control::list(&store, true).map_err(from_containers)? {
        if c.is_running() || c.is_restarting() || c.is_ending() {
            continue;
        }
        let size = ::containers::usage::du(&dirs.container_dir(&c.id), &mut seen);
        match control::remove(&store, &c.id, false) {
            Ok(()) => {
                freed += size;
                gone.push(c.id);
            }
            // One that started meanwhile stays.
            Err(e) => eprintln!("kiln: {}", exit::render(&from_containers(e))),
        }
    }
    section("Deleted Containers", &gone)?;

    let nets = Networks::new(&store);
    let lock = nets.lock().map_err(from_containers)?;
    section(
        "Deleted Networks",
        &nets.prune(&lock).map_err(from_containers)?,
    )?;
    drop(lock);

    if args.volumes {
        let vols = ::containers::volumes::Volumes::new(&store);
        let sizes: Vec<(String, u64)> = vols
            .list()
            .map_err(from_containers)?
            .into_iter()
            .map(|v| {
                let size = ::containers::usage::du(&vols.dir().join(&v.name), &mut seen);
                (v.name, size)
            })
            .collect();
        let gone = vols.prune(false).map_err(from_containers)?;
        freed += sizes
            .iter()
            .filter(|(n, _)| gone.contains(n))
            .map(|(_, s)| s)
            .sum::<u64>();
        section("Deleted Volumes", &gone)?;
    }

    let (deleted, image_bytes) =
        store.prune(args.all, &|img| dirs.container_using(img.id()).is_some())?;
    let deleted: Vec<String> = deleted.iter().map(|d| format!("deleted: {d}")).collect();
    section("Deleted Images", &deleted)?;
    freed += image_bytes;

    let cache = builder::prune_cache(&store, &builder::PruneOptions::default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if cache.records > 0 {
        outln!("Deleted build cache objects: {}\n", cache.records);
    }
    freed += cache.freed;
    outln!("Total reclaimed space: {}", format::human_size(freed));
    Ok(Status::Success)
}

fn section(title: &str, items: &[String]) -> Result<()> {
    if !items.is_empty() {
        outln!("{title}:");
        for i in items {
            outln!("{i}");
        }
        outln!();
    }
    Ok(())
}

/// `kiln info` / `kiln system info`.
pub fn info(ctx: &Ctx, args: FormatArgs) -> Result<Status> {
    let format = args.format.as_deref().unwrap_or(info::DEFAULT);
    let format = Format::parse_rows(Some(format), format, info::ROW_TYPE)?;
    let store = ctx.store()?;
    let i = ::containers::usage::info(&store).map_err(from_containers)?;
    let v = info::value(&i, env!("CARGO_PKG_VERSION"));
    out!("{}", format.render(&[v], &[])?);
    Ok(Status::Success)
}

/// `kiln version`: no store needed.
pub fn version(ctx: &Ctx, args: FormatArgs) -> Result<Status> {
    let format = args.format.as_deref().unwrap_or(version::DEFAULT);
    let format = Format::parse_rows(Some(format), format, version::ROW_TYPE)?;
    let v = version::value(env!("CARGO_PKG_VERSION"), ctx.root());
    out!("{}", format.render(&[v], &[])?);
    Ok(Status::Success)
}
