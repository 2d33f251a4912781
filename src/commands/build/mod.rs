//! `kiln build`: docker-compatible flags over the builder crate.

use std::io::IsTerminal;
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
    /// The Dockerfile (default: Dockerfile at the context's root; `-` reads
    /// it from standard input). For a directory context a path is relative
    /// to the current directory; for an archive, URL or git context it is
    /// relative to the context's root
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
    /// Take cached steps from a cache: type=registry,ref=REG/REPO:TAG (a cache manifest, or an image
    /// with an inline cache), REF alone, or type=local,src=DIR[,tag=T] (repeatable)
    #[arg(long = "cache-from", value_name = "SPEC")]
    pub cache_from: Vec<String>,
    /// Export this build's steps: type=registry,ref=REG/REPO:TAG or type=local,dest=DIR[,tag=T],
    /// with [,mode=min|max][,compression=gzip|zstd]; or type=inline (in the image's config)
    #[arg(long = "cache-to", value_name = "SPEC")]
    pub cache_to: Vec<String>,
    /// Push every -t name after the build
    #[arg(long)]
    pub push: bool,
    /// Also write the result: type=local,dest=DIR | type=tar,dest=FILE (the final stage's files),
    /// type=oci|docker,dest=FILE[,name=N] (an archive), type=image[,push=true] | type=registry[,name=N]
    #[arg(short, long = "output", value_name = "SPEC")]
    pub outputs: Vec<String>,
    /// Write buildx's build metadata (containerimage.digest, image.name, …) as JSON to FILE
    #[arg(long, value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Add an annotation to the image's manifest ([manifest:]K=V, repeatable)
    #[arg(long = "annotation", value_name = "K=V")]
    pub annotations: Vec<String>,
    /// Add HOST:IP to /etc/hosts of RUN steps (repeatable)
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_hosts: Vec<String>,
    /// Size of /dev/shm in RUN steps (e.g. 128m; default 64m)
    #[arg(long = "shm-size", value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// A resource limit for RUN steps, NAME=SOFT[:HARD] (e.g. nofile=1024:2048; repeatable)
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// Not supported: RUN steps run in kiln's own cgroup (refused)
    #[arg(long = "cgroup-parent", value_name = "CGROUP")]
    pub cgroup_parent: Option<String>,
    /// Do not use the cache for the steps of this stage (repeatable)
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,
    /// Run the Dockerfile's lint rules, print what they find and exit
    /// (1 when there are warnings) without building
    #[arg(long)]
    pub check: bool,
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
    /// A secret for RUN --mount=type=secret: id=ID,src=PATH
    #[arg(long = "secret", value_name = "id=ID,src=PATH")]
    pub secrets: Vec<String>,
    /// A named context for FROM NAME and COPY --from=NAME: NAME=DIR,
    /// NAME=docker-image://REF, NAME=oci-layout://DIR[:TAG], or NAME=URL
    /// (an http(s) archive or a git repository) (repeatable)
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    pub build_contexts: Vec<String>,
    /// An ssh agent for RUN --mount=type=ssh: default, ID (both use
    /// $SSH_AUTH_SOCK), ID=SOCKET, or ID=KEY[,KEY] (unencrypted key files,
    /// loaded into an agent of the build's own) (repeatable)
    #[arg(long = "ssh", value_name = "default|ID[=SOCKET|KEY[,KEY]]")]
    pub ssh: Vec<String>,
    /// Progress output: auto, plain, tty, rawjson (BuildKit's SolveStatus
    /// JSON lines, as `docker buildx build --progress rawjson`) or quiet
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
    /// The build context: a directory; `-` for standard input holding a
    /// context archive (tar, plain or gzip/bzip2/xz/zstd) or a Dockerfile
    /// alone (told apart by content); an http(s) URL of such an archive or
    /// Dockerfile; or a git repository (`https://host/repo.git#ref:subdir`,
    /// `git://…`, `git@host:repo.git`; `.git` is dropped unless
    /// `--build-arg BUILDKIT_CONTEXT_KEEP_GIT_DIR=1`)
    #[arg(value_name = "CONTEXT")]
    pub context: Option<String>,
}

pub fn run(ctx: &Ctx, args: BuildArgs) -> Result<Status> {
    let context_arg = args.context.clone().unwrap_or_else(|| ".".into());
    let inputs = read_inputs(&args, &context_arg)?;
    if args.print_ast {
        let dump = dockerfile_parser::dump_ast(&inputs.dockerfile)
            .map_err(|e| anyhow::anyhow!("{}", e.with_file_name(&inputs.dockerfile_name)))?;
        out!("{dump}");
        return Ok(Status::Success);
    }
    if args.check {
        let report = builder::lint::check(&inputs.dockerfile, &inputs.dockerfile_name)
            .map_err(|e| anyhow::anyhow!("{}", e.with_file(&inputs.dockerfile_name)))?;
        out!("{}", report.text);
        return Ok(if report.warnings == 0 {
            Status::Success
        } else {
            Status::External(1)
        });
    }
    flags::cgroup_parent(args.cgroup_parent.as_deref())?;
    let pull: PullPolicy = args.pull.parse()?;
    let mode = Mode::parse(&args.progress, args.quiet, std::io::stderr().is_terminal())?;
    flags::platform(args.platform.as_deref())?;
    // Views of stages for COPY --from are mounted in a private mount
    // namespace, entered while the process has one thread.
    // (rawjson's stderr is JSON only: the warning goes in its stream.)
    let mut early_warnings = Vec::new();
    if let Err(e) = builder::private_mount_namespace() {
        match mode {
            Mode::RawJson => early_warnings.push(e.to_string()),
            _ => eprintln!("WARNING: {e}"),
        }
    }
    let store = ctx.store()?;
    let mut opts = BuildOptions {
        dockerfile: inputs.dockerfile.clone(),
        dockerfile_name: inputs.dockerfile_name.clone(),
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
    let mut outputs = Vec::new();
    for o in &args.outputs {
        let out = builder::outputs::parse(o)?;
        for n in out.extra_names() {
            opts.tags.push(n.parse::<Reference>()?);
        }
        outputs.push(out);
    }
    if args.push {
        outputs.push(builder::outputs::Output::Image {
            names: Vec::new(),
            push: true,
        });
    }
    for o in &outputs {
        if let builder::outputs::Output::Image { names, push: true } = o {
            let names = if names.is_empty() {
                opts.tags
                    .iter()
                    .map(|t| t.normalized().to_string())
                    .collect()
            } else {
                names.clone()
            };
            opts.upload_to.extend(names);
        }
    }
    for c in &args.cache_from {
        opts.cache_from.push(flags::cache_spec(c, false)?);
    }
    for c in &args.cache_to {
        opts.cache_to.push(flags::cache_spec(c, true)?);
    }
    opts.labels = flags::labels(&args.labels);
    opts.annotations = flags::annotations(&args.annotations)?;
    opts.no_cache_stages = args.no_cache_filter.clone();
    for h in &args.add_hosts {
        opts.step_host.add_hosts.push(flags::add_host(h)?);
    }
    opts.step_host.shm_size = args.shm_size.as_deref().map(flags::shm_size).transpose()?;
    for u in &args.ulimits {
        opts.step_host.ulimits.push(flags::ulimit(u)?);
    }
    opts.network = flags::network(args.network.as_deref())?;
    opts.bridge = args.network.as_deref() == Some("bridge");
    let auth_sock = std::env::var("SSH_AUTH_SOCK").ok();
    // Agents started for key files live until the build ends.
    let mut agents = Vec::new();
    for s in &args.ssh {
        let (id, source) = flags::ssh(s, auth_sock.as_deref())?;
        let socket = match source {
            flags::SshSource::Socket(p) => p,
            flags::SshSource::Keys(keys) => {
                let agent = builder::inputs::ssh_agent_with_keys(&keys, s)?;
                let p = agent.socket().to_path_buf();
                agents.push(agent);
                p
            }
        };
        opts.ssh.insert(id, socket);
    }
    for s in &args.secrets {
        let (id, src) = flags::secret(s)?;
        opts.secrets.insert(id, src);
    }
    opts.source_date_epoch =
        flags::source_date_epoch(&opts.build_args, std::env::var("SOURCE_DATE_EPOCH").ok())?;
    // Kept until the build ends: a downloaded or checked-out one is a
    // temp directory removed on drop.
    let named = builder::inputs::named_all(&args.build_contexts, &store)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for n in &named {
        opts.named_contexts
            .insert(n.name.clone(), n.context.clone());
    }
    opts.ignore_patterns = inputs.ignore_patterns.clone();
    opts.context = inputs.context.clone();
    opts.transient_context = inputs.is_transient();

    let quiet = opts.quiet;
    // rawjson's standard error is JSON lines only: pulls and the closing
    // lines say nothing there.
    let quiet_stderr = quiet || mode == Mode::RawJson;
    opts.capture_output = matches!(mode, Mode::Tty | Mode::RawJson);
    let started = std::time::Instant::now();
    let mut renderer = Renderer::new(mode, &inputs.dockerfile_name);
    for w in early_warnings {
        renderer.event(Event {
            stage: 0,
            stages: 0,
            kind: builder::EventKind::Warning(w),
        });
    }
    let mut on_event = |e: Event| renderer.event(e);
    // Base images the store lacks come from their registry, as `kiln pull`
    // would fetch them (same flags: `--tls-verify`, `--creds`, …).
    let puller = transfer::Puller::new(
        args.registry.access(),
        std::sync::Arc::new(Progress::new(quiet_stderr)),
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
    let pushed_names;
    {
        // Held while blobs are read, so no `rmi` deletes one.
        let _reader = store.reader_lock()?;
        let image = store.image_by_manifest_locked(&out.manifest.digest)?;
        let progress = Progress::new(quiet_stderr);
        let written = builder::outputs::write(
            &store,
            &image,
            &opts.tags,
            &outputs,
            &args.registry.access(),
            &progress,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(f) = &args.metadata_file {
            let mut names: Vec<String> = opts
                .tags
                .iter()
                .map(|t| t.normalized().to_string())
                .collect();
            for n in outputs.iter().flat_map(|o| o.names()) {
                if !names.contains(n) {
                    names.push(n.clone());
                }
            }
            let doc = builder::outputs::metadata(&image, &names, &written);
            let text = serde_json::to_string_pretty(&doc)?;
            std::fs::write(f, text).with_context(|| format!("writing {}", f.display()))?;
        }
        pushed_names = written.pushed_names;
    }
    if let Some(f) = &args.iidfile {
        std::fs::write(f, out.id.to_string())
            .with_context(|| format!("writing {}", f.display()))?;
    }
    if !quiet_stderr {
        for t in &opts.tags {
            eprintln!("Successfully tagged {}", t.normalized());
        }
        for n in &pushed_names {
            eprintln!("Pushed {n}");
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
    let mut opts = builder::PruneOptions {
        all: args.all,
        ..Default::default()
    };
    for f in &args.filter {
        let until = f.strip_prefix("until=").ok_or_else(|| {
            anyhow::anyhow!("invalid filter {f:?}: kiln prunes the build cache by until= only")
        })?;
        opts.until = Some(
            image_store::filters::parse_time(until, chrono::Utc::now()).ok_or_else(|| {
                anyhow::anyhow!("invalid filter {f:?}: want a timestamp or a duration (24h, 30m)")
            })?,
        );
    }
    if let Some(k) = &args.keep_storage {
        opts.keep_storage = Some(builder::parse_size(k).ok_or_else(|| {
            anyhow::anyhow!("invalid --keep-storage {k:?}: want a size (1GB, 500MB, bytes)")
        })?);
    }
    let store = ctx.store()?;
    let pruned = builder::prune_cache(&store, &opts).map_err(|e| anyhow::anyhow!("{e}"))?;
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

/// The Dockerfile and context the arguments name (see [`builder::inputs`]).
fn read_inputs(args: &BuildArgs, context_arg: &str) -> Result<builder::inputs::Inputs> {
    let reads_stdin = context_arg == "-" || args.file.as_deref() == Some("-");
    if reads_stdin && std::io::stdin().is_terminal() {
        bail!("no Dockerfile or context archive on standard input");
    }
    let req = builder::inputs::Request {
        context: context_arg,
        file: args.file.as_deref(),
        keep_git_dir: flags::keep_git_dir(&flags::build_args(&args.build_args)),
    };
    builder::inputs::resolve(&req, &mut std::io::stdin().lock()).map_err(|e| anyhow::anyhow!("{e}"))
}
