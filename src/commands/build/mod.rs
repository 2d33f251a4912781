//! `kiln build`: docker-compatible flags over the builder crate.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use builder::{flags, BuildOptions, Event, PullPolicy};
use image_store::Reference;

use crate::context::Ctx;
use crate::exit::{Status, WithCode};
use crate::transfer::opts::RegistryOpts;
use crate::transfer::progress::Progress;
use progress::{Mode, Renderer};

mod progress;

#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Name the image NAME[:TAG] (repeatable)
    #[arg(short, long = "tag", value_name = "NAME")]
    pub tags: Vec<String>,
    /// The Dockerfile (default: CONTEXT/Dockerfile; `-` reads it from standard input)
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<String>,
    /// Set a build-time variable (K=V, or K to take the value from the environment)
    #[arg(long = "build-arg", value_name = "K[=V]")]
    pub build_args: Vec<String>,
    /// Build this stage and only the stages it needs
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Do not use the build cache
    #[arg(long)]
    pub no_cache: bool,
    /// When to pull base images: missing (default: only those not in the
    /// store), always (`--pull` alone) or never
    #[arg(
        long,
        value_name = "POLICY",
        default_value = "missing",
        num_args = 0..=1,
        default_missing_value = "always",
        require_equals = true
    )]
    pub pull: String,
    #[command(flatten)]
    pub registry: RegistryOpts,
    /// Add a label to the image (K=V, repeatable)
    #[arg(long = "label", value_name = "K=V")]
    pub labels: Vec<String>,
    /// Write the image ID to FILE
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Merge all layers above the base image into one
    #[arg(long)]
    pub squash: bool,
    /// Target platform; only the host's (linux/amd64 here) is supported
    #[arg(long, value_name = "PLATFORM")]
    pub platform: Option<String>,
    /// Network for RUN steps: host (default), bridge or none
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// Add a line to the RUN steps' /etc/hosts: HOST:IP
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// A secret for RUN --mount=type=secret: id=ID,src=PATH
    #[arg(long = "secret", value_name = "id=ID,src=PATH")]
    pub secrets: Vec<String>,
    /// Progress output: auto, plain, tty or quiet
    #[arg(long, default_value = "auto", value_name = "TYPE")]
    pub progress: String,
    /// Print only the image ID
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the Dockerfile's syntax tree (BuildKit's dump format) and exit
    #[arg(long)]
    pub print_ast: bool,
    /// Run RUN steps with this OCI runtime (e.g. /usr/sbin/runc) instead of kiln's own
    #[arg(long, value_name = "PATH")]
    pub runtime: Option<PathBuf>,
    /// The build context directory, or `-` for a Dockerfile on standard input and no context
    #[arg(value_name = "CONTEXT")]
    pub context: Option<String>,
}

pub fn run(ctx: &Ctx, args: BuildArgs) -> Result<Status> {
    let context_arg = args.context.clone().unwrap_or_else(|| ".".into());
    let (text, name, context, dockerfile_path) = read_inputs(&args, &context_arg)?;
    if args.print_ast {
        let dump = dockerfile_parser::dump_ast(&text)
            .map_err(|e| anyhow::anyhow!("{}", e.with_file_name(&name)))?;
        out!("{dump}");
        return Ok(Status::Success);
    }
    let pull: PullPolicy = args.pull.parse()?;
    let mode = Mode::parse(&args.progress, args.quiet, std::io::stderr().is_terminal())?;
    flags::platform(args.platform.as_deref())?;
    // Views of stages for COPY --from are mounted in a private mount
    // namespace, entered while the process has one thread.
    if let Err(e) = builder::private_mount_namespace() {
        eprintln!("WARNING: {e}");
    }
    let store = ctx.store()?;
    let mut opts = BuildOptions {
        dockerfile: text,
        dockerfile_name: name,
        quiet: mode == Mode::Quiet,
        no_cache: args.no_cache,
        squash: args.squash,
        target: args.target.clone(),
        runtime: args.runtime.clone(),
        pull,
        ..Default::default()
    };
    for t in &args.tags {
        opts.tags.push(t.parse::<Reference>()?);
    }
    opts.build_args = flags::build_args(&args.build_args);
    opts.labels = flags::labels(&args.labels);
    opts.network = flags::network(args.network.as_deref())?;
    opts.bridge = args.network.as_deref() == Some("bridge");
    for h in &args.add_host {
        opts.add_hosts.push(flags::add_host(h)?);
    }
    for s in &args.secrets {
        let (id, src) = flags::secret(s)?;
        opts.secrets.insert(id, src);
    }
    opts.source_date_epoch =
        flags::source_date_epoch(&opts.build_args, std::env::var("SOURCE_DATE_EPOCH").ok())?;
    if let Some(dir) = &context {
        opts.ignore_patterns = builder::dockerignore::for_build(dir, &dockerfile_path)
            .context("reading .dockerignore")?;
    }
    opts.context = context;

    let quiet = opts.quiet;
    opts.capture_output = mode == Mode::Tty;
    let started = std::time::Instant::now();
    let mut renderer = Renderer::new(mode);
    let mut on_event = |e: Event| renderer.event(e);
    // Base images the store lacks come from their registry, as `kiln pull`
    // would fetch them (same flags: `--tls-verify`, `--creds`, …).
    let puller = transfer::Puller::new(
        args.registry.access(),
        std::sync::Arc::new(Progress::new(quiet)),
    );
    let result = builder::build(&store, &opts, Some(&puller), &mut on_event);
    drop(renderer);
    let out = match result {
        Ok(o) => o,
        Err(e) if e.is_run_failure() => {
            return Err(WithCode {
                code: 1,
                message: e.to_string(),
            }
            .into())
        }
        Err(e) => return Err(anyhow::anyhow!("{e}")),
    };
    if let Some(f) = &args.iidfile {
        std::fs::write(f, out.id.to_string())
            .with_context(|| format!("writing {}", f.display()))?;
    }
    if !quiet {
        for t in &opts.tags {
            eprintln!("Successfully tagged {}", t.normalized());
        }
        eprintln!(
            "--> built {} in {:.3}s",
            out.id.short(),
            started.elapsed().as_secs_f64()
        );
    }
    outln!("{}", out.id);
    Ok(Status::Success)
}

/// `kiln builder prune [-a]`: forget the build cache.
pub fn prune(ctx: &Ctx, args: crate::cli::BuilderPruneArgs) -> Result<Status> {
    let store = ctx.store()?;
    let pruned = builder::prune_cache(&store, args.all).map_err(|e| anyhow::anyhow!("{e}"))?;
    outln!(
        "Deleted {} build cache records{}",
        pruned.records,
        if args.all {
            format!(" and {} cache mounts", pruned.mounts)
        } else {
            String::new()
        }
    );
    outln!(
        "Total reclaimed space: {}",
        crate::format::human_size(pruned.freed)
    );
    Ok(Status::Success)
}

/// (Dockerfile text, its name for errors, context dir, Dockerfile path).
fn read_inputs(
    args: &BuildArgs,
    context_arg: &str,
) -> Result<(String, String, Option<PathBuf>, PathBuf)> {
    let read_stdin = || -> Result<String> {
        let mut s = String::new();
        if std::io::stdin().is_terminal() {
            bail!("no Dockerfile on standard input");
        }
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading the Dockerfile from standard input")?;
        Ok(s)
    };
    if context_arg == "-" {
        if args.file.as_deref().is_some_and(|f| f != "-") {
            bail!("with a context of `-` the Dockerfile comes from standard input; drop -f");
        }
        return Ok((
            read_stdin()?,
            "Dockerfile".into(),
            None,
            PathBuf::from("Dockerfile"),
        ));
    }
    let dir = PathBuf::from(context_arg);
    if !dir.is_dir() {
        bail!("the build context {context_arg:?} is not a directory");
    }
    let dir = std::fs::canonicalize(&dir).with_context(|| format!("resolving {context_arg}"))?;
    match args.file.as_deref() {
        Some("-") => Ok((
            read_stdin()?,
            "Dockerfile".into(),
            Some(dir.clone()),
            dir.join("Dockerfile"),
        )),
        other => {
            let path = other
                .map(PathBuf::from)
                .unwrap_or_else(|| dir.join("Dockerfile"));
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok((text, name, Some(dir), path))
        }
    }
}
