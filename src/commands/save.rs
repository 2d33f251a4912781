//! `kiln save` and `kiln load`.

use std::fs::File;
use std::io::{IsTerminal, Read};

use anyhow::{bail, Context as _, Result};
use transfer::archive::{self, ArchiveFormat};

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
    let images = archive::select(&store, &args.images)?;
    match &args.output {
        Some(path) => {
            let mode = 0o666 & !current_umask();
            archive::save_to_file(&store, &images, format, args.compress, path, mode)
                .with_context(|| format!("saving to {}", path.display()))?;
        }
        None => {
            let out = std::io::stdout();
            if out.is_terminal() {
                bail!("refusing to write an archive to a terminal: use -o FILE or redirect");
            }
            // Stdout, not its lock: the archive writer may be shared
            // between threads (the lock is not `Send`).
            let out = std::io::BufWriter::with_capacity(1 << 20, out);
            archive::save_to(&store, &images, format, args.compress, out)?;
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
    for (id, names, layers) in &loaded.images {
        let name = names.first().map_or_else(|| id.to_string(), |n| n.clone());
        if let Some(w) = transfer::too_many_layers(&name, *layers) {
            eprintln!("WARNING: {w}");
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
