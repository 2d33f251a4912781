//! `kiln push [--tls-verify=false] [--creds U:P] [--authfile F]
//! [--compression-format gzip|zstd] [--format oci|v2s2] [--digestfile F]
//! [-q] IMAGE [DESTINATION]`.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use image_store::archive::{self, ArchiveFormat};
use image_store::compressed::LayerFormat;
use registry_client::Reference;

use crate::context::Ctx;
use crate::exit::Status;
use crate::transfer::oci_dir;
use crate::transfer::opts::RegistryOpts;
use crate::transfer::progress::Progress;
use crate::transfer::registry::{self, ManifestFormat, PushOptions, DEFAULT_JOBS};
use crate::transfer::transport::Location;

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
    let digest = match Location::parse(dest)? {
        Location::Docker(name) => {
            let reference = name.parse::<Reference>()?.remote();
            let client = args.registry.client()?;
            let opts = PushOptions {
                format: args.format,
                compression: args.compression_format,
                jobs: DEFAULT_JOBS,
            };
            registry::push(&store, &client, &img, &reference, &opts, &progress)
                .with_context(|| format!("pushing {reference}"))?
                .to_string()
        }
        Location::OciDir { dir, reference } => {
            oci_dir::write(&store, &img, &dir, reference.as_deref())
                .with_context(|| format!("pushing to {dest}"))?;
            img.manifest_digest().to_string()
        }
        Location::OciArchive { file, reference } => {
            let names = match reference {
                Some(r) => vec![r],
                None => img.names.clone(),
            };
            write_archive(&store, &img, names, ArchiveFormat::OciArchive, &file)
                .with_context(|| format!("pushing to {dest}"))?;
            img.manifest_digest().to_string()
        }
        Location::DockerArchive { file, reference } => {
            // docker's RepoTags, as given (a short name means Docker Hub).
            let names = match reference {
                Some(r) => vec![r],
                None => img.names.clone(),
            };
            write_archive(&store, &img, names, ArchiveFormat::DockerArchive, &file)
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

fn write_archive(
    store: &image_store::Store,
    img: &image_store::Image,
    names: Vec<String>,
    format: ArchiveFormat,
    file: &std::path::Path,
) -> Result<()> {
    let dir = file.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = dir.unwrap_or(std::path::Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".kiln-push-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file beside {}", file.display()))?;
    {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.as_file());
        archive::save(store, &[(img.clone(), names)], format, &mut out)?;
        std::io::Write::flush(&mut out)?;
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))?;
    tmp.persist(file)
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(())
}
