//! `kiln pull [--platform P] [--tls-verify=false] [--creds U:P] [--authfile F] [-q] SOURCE`.

use anyhow::{anyhow, Context as _, Result};
use registry_client::{Platform, Reference};
use transfer::oci_dir::{self, OciDirSource};
use transfer::{archive, copy, CopyOptions, Location, Silent, StoreDest};

use crate::context::Ctx;
use crate::exit::Status;
use crate::transfer::opts::RegistryOpts;
use crate::transfer::progress::Progress;

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

pub fn run(ctx: &Ctx, args: PullArgs) -> Result<Status> {
    let store = ctx.store()?;
    let platform: Platform = match &args.platform {
        Some(p) => p.parse().map_err(|e| anyhow!("--platform {p:?}: {e}"))?,
        None => Platform::host(),
    };
    match Location::parse(&args.image)? {
        Location::Docker(name) => {
            let reference = name.parse::<Reference>()?.remote();
            let client = args.registry.client()?;
            let progress = Progress::new(args.quiet);
            progress.line(&format!("Trying to pull {reference}..."));
            let pulled =
                transfer::registry::pull(&store, &client, &reference, &platform, &progress)
                    .with_context(|| format!("pulling {reference}"))?;
            progress.line(&format!("Pulled {}@{}", pulled.name, pulled.manifest));
            outln!("{}", pulled.id);
        }
        Location::OciDir { dir, reference } => {
            let name = oci_dir::layout_name(&dir, reference.as_deref())?;
            let src = OciDirSource::new(&dir, reference.as_deref());
            let dest = StoreDest::new(&store, vec![name])?;
            let opts = CopyOptions {
                platform,
                ..CopyOptions::default()
            };
            let copied = copy(&src, &dest, &opts, &Silent)
                .with_context(|| format!("pulling {}", args.image))?;
            dest.commit()?;
            outln!("{}", copied.id);
        }
        Location::OciArchive { file, .. } | Location::DockerArchive { file, .. } => {
            let f = std::fs::File::open(&file)
                .with_context(|| format!("opening {}", file.display()))?;
            let loaded = archive::load(&store, std::io::BufReader::with_capacity(1 << 20, f))
                .with_context(|| format!("pulling {}", args.image))?;
            for (id, ..) in &loaded.images {
                outln!("{id}");
            }
        }
    }
    Ok(Status::Success)
}
