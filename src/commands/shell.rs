//! `kiln completion bash|zsh|fish` and `kiln man DIR`: generated from the
//! clap definitions (clap_complete, clap_mangen), so they list exactly the
//! commands and flags kiln has.

use std::path::Path;

use anyhow::{Context as _, Result};
use clap::CommandFactory;

use crate::cli::{Cli, CompletionArgs, ManArgs, Shell};
use crate::exit::Status;

pub fn completion(args: CompletionArgs) -> Result<Status> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    match args.shell {
        Shell::Bash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "kiln", &mut buf)
        }
        Shell::Zsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "kiln", &mut buf)
        }
        Shell::Fish => {
            clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "kiln", &mut buf)
        }
    }
    out!("{}", String::from_utf8_lossy(&buf));
    Ok(Status::Success)
}

pub fn man(args: ManArgs) -> Result<Status> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let mut cmd = Cli::command();
    cmd.build();
    let n = write_pages(&cmd, "kiln", &args.dir)?;
    outln!("{n} man pages written to {}", args.dir.display());
    Ok(Status::Success)
}

/// Writes `name.1` for `cmd` and one page per subcommand (`kiln-image-ls.1`).
fn write_pages(cmd: &clap::Command, name: &str, dir: &Path) -> Result<usize> {
    let page = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_string())
        .render(&mut buf)
        .with_context(|| format!("rendering {}", page.display()))?;
    std::fs::write(&page, buf).with_context(|| format!("writing {}", page.display()))?;
    let mut n = 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        n += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(n)
}
