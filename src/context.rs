//! Where the store lives: `--root` > `$KILN_ROOT` > `/var/lib/kiln` for root
//! > `$XDG_DATA_HOME/kiln` (or `~/.local/share/kiln`).

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use image_store::Store;

pub struct Ctx {
    root: PathBuf,
}

impl Ctx {
    pub fn new(root: Option<PathBuf>) -> Ctx {
        let root = root
            .or_else(|| {
                std::env::var_os("KILN_ROOT")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(default_root);
        Ctx { root }
    }

    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    pub fn store(&self) -> Result<Store> {
        Store::open(&self.root)
            .map(|s| s.with_janitor(containers::check::remove_leftover_cgroups))
            .with_context(|| format!("opening the image store at {}", self.root.display()))
    }
}

fn default_root() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/lib/kiln");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("kiln");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".local/share/kiln")
}
