//! `kiln push [--tls-verify=false] [--creds U:P] [--authfile F]
//! [--compression-format gzip|zstd] [--format oci|v2s2] [--digestfile F]
//! [-q] IMAGE [DESTINATION]`.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use image_store::compressed::LayerFormat;
use registry_client::Reference;
use transfer::archive::{self, ArchiveFormat};
use transfer::registry::ManifestFormat;
use transfer::{copy, oci_dir, CopyOptions, Location, Silent, StoreSource};

use crate::context::Ctx;
use crate::exit::Status;
use crate::transfer::opts::RegistryOpts;
use crate::transfer::progress::Progress;

#[derive(clap::Args, Debug)]
pub struct PushArgs {
    #[command(flatten)]
    pub registry: RegistryOpts,
    /// Compression for layers stored uncompressed: gzip or zstd
    #[arg(long, value_name = "FORMAT", default_value = "gzip")]
    pub compression_format: LayerFormat,
    /// Manifest format: oci or v2s2 (default: oci, or the image's own when nothing is recompressed)
    #[arg(short = 'f', long, value_name = "FORMAT")]
    pub format: Option<ManifestFormat>,
    /// Write the pushed manifest's digest to FILE
    #[arg(long, value_name = "FILE")]
    pub digestfile: Option<PathBuf>,
    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
    /// The local image
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// NAME[:TAG], docker://NAME, oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF] (default: IMAGE)
    #[arg(value_name = "DESTINATION")]
    pub destination: Option<String>,
}

pub fn run(ctx: &Ctx, args: PushArgs) -> Result<Status> {
    let store = ctx.store()?;
    // Held until the push is done, so no `rmi` deletes a blob being sent.
    let _reader = store.reader_lock()?;
    let img = store.resolve_locked(&args.image)?;
    let dest = args.destination.as_deref().unwrap_or(&args.image);
    let progress = Progress::new(args.quiet);
    let src = StoreSource::new(&store, img.clone());
    let digest = match Location::parse(dest)? {
        Location::Docker(name) => {
            let reference = name.parse::<Reference>()?.remote();
            let client = args.registry.client()?;
            transfer::registry::push(
                &store,
                &client,
                &img,
                &reference,
                args.format,
                args.compression_format,
                &progress,
            )
            .with_context(|| format!("pushing {reference}"))?
            .to_string()
        }
        Location::OciDir { dir, reference } => {
            let to = oci_dir::dest(&dir).with_context(|| format!("pushing to {dest}"))?;
            let src = src.with_names(reference.into_iter().collect());
            copy(&src, &to, &CopyOptions::default(), &Silent)
                .and_then(|_| to.finish())
                .with_context(|| format!("pushing to {dest}"))?;
            img.manifest_digest().to_string()
        }
        Location::OciArchive { file, reference } | Location::DockerArchive { file, reference } => {
            let format = if dest.starts_with("oci-archive:") {
                ArchiveFormat::OciArchive
            } else {
                ArchiveFormat::DockerArchive
            };
            // docker's RepoTags, as given (a short name means Docker Hub).
            let names = reference.map_or_else(|| img.names.clone(), |r| vec![r]);
            let images = [(img.clone(), names)];
            archive::save_to_file(&store, &images, format, false, &file, 0o644)
                .with_context(|| format!("pushing to {dest}"))?;
            img.manifest_digest().to_string()
        }
    };
    if let Some(f) = &args.digestfile {
        std::fs::write(f, &digest).with_context(|| format!("writing {}", f.display()))?;
    }
    progress.line(&format!("Pushed {dest}@{digest}"));
    Ok(Status::Success)
}
