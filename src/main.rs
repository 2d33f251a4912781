//! kiln: build, store, move and run container images.

mod cli;
mod commands;
mod context;
mod exit;
mod format;
mod transfer;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => 0,
                _ => exit::KILN_ERROR,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match commands::dispatch(cli) {
        Ok(status) => status.into(),
        Err(err) => {
            eprintln!("kiln: {}", exit::render(&err));
            ExitCode::from(exit::code_of(&err))
        }
    }
}
