//! `kiln save` and `kiln load`.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};

use ::transfer::archive::{self, ArchiveFormat};
use anyhow::{bail, Context as _, Result};
use image_store::{Image, Reference};

use crate::cli::{LoadArgs, SaveArgs};
use crate::context::Ctx;
use crate::exit::Status;

pub fn save(ctx: &Ctx, args: SaveArgs) -> Result<Status> {
    let format = match args.format.as_str() {
        "docker-archive" => ArchiveFormat::DockerArchive,
        "oci-archive" => ArchiveFormat::OciArchive,
        other => bail!("unsupported archive format {other:?}: use docker-archive or oci-archive"),
    };
    let store = ctx.store()?;
    // Held until the archive is written, so no `rmi` deletes a blob of it.
    let _reader = store.reader_lock()?;
    let images = select(&store, &args.images)?;
    match &args.output {
        Some(path) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
            let dir = dir.unwrap_or(std::path::Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".kiln-save-")
                .tempfile_in(dir)
                .with_context(|| format!("creating a temp file beside {}", path.display()))?;
            write(&store, &images, format, args.compress, tmp.as_file())
                .with_context(|| format!("saving to {}", path.display()))?;
            // tempfile makes 0600 files; an archive is an ordinary file.
            use std::os::unix::fs::PermissionsExt;
            let mode = 0o666 & !current_umask();
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(mode))?;
            tmp.persist(path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        None => {
            let out = std::io::stdout();
            if out.is_terminal() {
                bail!("refusing to write an archive to a terminal: use -o FILE or redirect");
            }
            // Stdout, not its lock: the archive writer may be shared between
            // threads (the lock is not `Send`).
            write(
                &store,
                &images,
                format,
                args.compress,
                std::io::BufWriter::with_capacity(1 << 20, out),
            )?;
        }
    }
    Ok(Status::Success)
}

fn current_umask() -> u32 {
    // SAFETY: umask cannot fail; it is set straight back.
    unsafe {
        let old = libc::umask(0o022);
        libc::umask(old);
        old as u32
    }
}

fn write(
    store: &image_store::Store,
    images: &[(Image, Vec<String>)],
    format: ArchiveFormat,
    compress: bool,
    out: impl Write + Send,
) -> Result<()> {
    if compress {
        let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        archive::save(store, images, format, &mut gz)?;
        gz.finish()?.flush()?;
    } else {
        let mut out = out;
        archive::save(store, images, format, &mut out)?;
        out.flush()?;
    }
    Ok(())
}

/// Each named image once, carrying the tags it was named by (docker: an
/// image named by ID carries no tag).
fn select(store: &image_store::Store, names: &[String]) -> Result<Vec<(Image, Vec<String>)>> {
    let mut out: Vec<(Image, Vec<String>)> = Vec::new();
    for name in names {
        let img = store.resolve_locked(name)?;
        let tag = name.parse::<Reference>().ok().and_then(|r| {
            r.candidates()
                .into_iter()
                .map(|c| c.to_string())
                .find(|c| img.names.contains(c))
        });
        match out
            .iter_mut()
            .find(|(i, _)| i.manifest_digest() == img.manifest_digest())
        {
            Some((_, tags)) => tags.extend(tag.filter(|t| !tags.contains(t))),
            None => out.push((img, tag.into_iter().collect())),
        }
    }
    Ok(out)
}

pub fn load(ctx: &Ctx, args: LoadArgs) -> Result<Status> {
    let store = ctx.store()?;
    let (input, label): (Box<dyn Read>, String) = match &args.input {
        Some(p) => (
            Box::new(File::open(p).with_context(|| format!("opening {}", p.display()))?),
            p.display().to_string(),
        ),
        None => {
            if std::io::stdin().is_terminal() {
                bail!("no archive given: use -i FILE or redirect standard input");
            }
            (
                Box::new(std::io::stdin().lock()),
                "standard input".to_string(),
            )
        }
    };
    let loaded = archive::load(&store, input).with_context(|| format!("loading {label}"))?;
    let images = store.images()?;
    for (id, names) in &loaded.images {
        if let Some(img) = images.iter().find(|i| i.id() == id) {
            let name = names.first().map_or_else(|| id.to_string(), |n| n.clone());
            if let Some(w) = crate::transfer::too_many_layers(&name, img.manifest.layers.len()) {
                eprintln!("WARNING: {w}");
            }
        }
        if args.quiet {
            outln!("{id}");
        } else if names.is_empty() {
            outln!("Loaded image ID: {id}");
        } else {
            for n in names {
                outln!("Loaded image: {n}");
            }
        }
    }
    Ok(Status::Success)
}
