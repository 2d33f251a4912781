//! `kiln pull [--platform P] [--tls-verify=false] [--creds U:P] [--authfile F] [-q] SOURCE`.

use std::path::Path;

use anyhow::{anyhow, Context as _, Result};
use image_store::archive;
use registry_client::{Platform, Reference};

use crate::context::Ctx;
use crate::exit::Status;
use crate::transfer::opts::RegistryOpts;
use crate::transfer::progress::Progress;
use crate::transfer::transport::Location;
use crate::transfer::{oci_dir, registry};

#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Platform to choose from a multi-platform image, OS/ARCH[/VARIANT] (default: the host's)
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    pub platform: Option<String>,
    #[command(flatten)]
    pub registry: RegistryOpts,
    /// Print only the image ID
    #[arg(short, long)]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST], docker://NAME, oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF]
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// The name an image read from an `oci:` layout gets: REF when it is a
/// full reference, else `localhost/<dir name>:<REF or latest>`.
pub fn layout_name(dir: &Path, reference: Option<&str>) -> Result<image_store::Reference> {
    if let Some(r) = reference {
        if let Ok(parsed) = r.parse::<image_store::Reference>() {
            if parsed.is_qualified() {
                return Ok(parsed);
            }
        }
    }
    let base = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_lowercase()))
        .unwrap_or_else(|| "image".to_string());
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let tag = reference.unwrap_or("latest");
    format!("localhost/{base}:{tag}")
        .parse::<image_store::Reference>()
        .map_err(|e| anyhow!("cannot name the image from {}: {e}", dir.display()))
}

pub fn run(ctx: &Ctx, args: PullArgs) -> Result<Status> {
    let store = ctx.store()?;
    let progress = Progress::new(args.quiet);
    let platform: Platform = match &args.platform {
        Some(p) => p.parse().map_err(|e| anyhow!("--platform {p:?}: {e}"))?,
        None => Platform::host(),
    };
    match Location::parse(&args.image)? {
        Location::Docker(name) => {
            let reference = name.parse::<Reference>()?.remote();
            let client = args.registry.client()?;
            progress.line(&format!("Trying to pull {reference}..."));
            let pulled = registry::pull(&store, &client, &reference, &platform, &progress)
                .with_context(|| format!("pulling {reference}"))?;
            progress.line(&format!("Pulled {}@{}", pulled.name, pulled.manifest));
            outln!("{}", pulled.id);
        }
        Location::OciDir { dir, reference } => {
            let name = layout_name(&dir, reference.as_deref())?;
            let (_, id) = oci_dir::read(&store, &dir, reference.as_deref(), &platform, &[name])
                .with_context(|| format!("pulling {}", args.image))?;
            outln!("{id}");
        }
        Location::OciArchive { file, .. } | Location::DockerArchive { file, .. } => {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let loaded = archive::load(&store, std::io::BufReader::with_capacity(1 << 20, f))
                .with_context(|| format!("pulling {}", args.image))?;
            for (id, _) in &loaded.images {
                outln!("{id}");
            }
        }
    }
    Ok(Status::Success)
}
