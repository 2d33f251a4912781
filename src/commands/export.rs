//! `kiln export`: a container's whole filesystem (image layers + its changes,
//! whiteouts applied) as one tar. The layers are stacked as a read-only
//! overlay in a private mount namespace of this process, so nothing shows on
//! the host and the mount goes away with the process.

use std::ffi::CString;
use std::fs;
use std::io::{BufWriter, IsTerminal as _, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use image_store::diff::{write_tar_from_dir, DiffOptions};
use image_store::Store;

use super::ctr;
use crate::context::Ctx;
use crate::exit::Status;

#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// Write to FILE instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

fn cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).context("path contains a NUL byte")
}

fn check(rc: libc::c_int, what: &str) -> Result<()> {
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context(what.to_string());
    }
    Ok(())
}

/// A read-only overlay of `layers` (bottom first) mounted at `target`, in
/// a private mount namespace this (single-threaded) process enters first.
pub fn mount_readonly_view(store: &Store, layers: &[PathBuf], target: &Path) -> Result<()> {
    // SAFETY: unshare/mount with valid C strings; the CLI has one thread.
    unsafe {
        check(
            libc::unshare(libc::CLONE_NEWNS),
            "entering a private mount namespace (needs root)",
        )?;
        check(
            libc::mount(
                c"none".as_ptr(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ),
            "making / private",
        )?;
    }
    // Paths relative to kiln/ keep the options within one page.
    let base = store.kiln_dir();
    let rel = |p: &Path| -> String {
        p.strip_prefix(&base)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let lowers: Vec<String> = layers.iter().rev().map(|p| rel(p)).collect();
    for l in &lowers {
        if l.contains([',', ':']) {
            bail!("layer path {l} contains ',' or ':'");
        }
    }
    let data = CString::new(format!("lowerdir={}", lowers.join(":")))?;
    if data.as_bytes().len() >= 4000 {
        bail!("{} layers: overlay options exceed one page", layers.len());
    }
    std::env::set_current_dir(&base).with_context(|| format!("entering {}", base.display()))?;
    let t = cstr(target)?;
    // SAFETY: valid C strings.
    let rc = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            t.as_ptr(),
            c"overlay".as_ptr(),
            libc::MS_RDONLY,
            data.as_ptr().cast(),
        )
    };
    check(rc, "mounting the container's layers")
}

pub fn run(ctx: &Ctx, args: ExportArgs) -> Result<Status> {
    if args.output.is_none() && std::io::stdout().is_terminal() {
        bail!("refusing to write a tar archive to a terminal: use -o FILE or redirect stdout");
    }
    let store = ctx.store()?;
    let c = ctr::find(&store, &args.container)?;
    let mut layers = ctr::lowers(&store, &c)?;
    let upper = ::containers::Containers::new(&store)
        .container_dir(&c.id)
        .join("upper");
    if upper.is_dir() {
        layers.push(upper);
    }
    let target = store
        .tmp_dir()
        .join(format!("export-{}-{}", &c.id[..12], std::process::id()));
    let target = std::path::absolute(&target)?;
    fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    let res = (|| -> Result<()> {
        mount_readonly_view(&store, &layers, &target)?;
        match &args.output {
            Some(out) => write_file(&target, out),
            None => {
                let mut w = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
                write_tar_from_dir(&target, &mut w, DiffOptions::default())?;
                w.flush()?;
                Ok(())
            }
        }
    })();
    if let Ok(t) = cstr(&target) {
        // SAFETY: valid C string.
        unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) };
    }
    let _ = fs::remove_dir(&target);
    res?;
    Ok(Status::Success)
}

fn write_file(root: &Path, out: &Path) -> Result<()> {
    let out = std::path::absolute(out)?;
    let dir = out.parent().unwrap_or(Path::new("/"));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        out.file_name()
            .map_or("export".into(), |n| n.to_string_lossy()),
        std::process::id()
    ));
    let res = (|| -> Result<()> {
        let f = fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        write_tar_from_dir(root, &mut w, DiffOptions::default())?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        fs::rename(&tmp, &out).with_context(|| format!("renaming to {}", out.display()))?;
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}
