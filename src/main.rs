//! kiln: build, store, move and run container images.

/// `println!` for command output: a closed stdout (`kiln images | head`)
/// becomes an error that `main` ends quietly, where `println!` would panic.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($t)*).map_err(crate::exit::stdout_error)?
    }};
}

/// `print!` for command output (see `outln!`).
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($t)*).map_err(crate::exit::stdout_error)?
    }};
}

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
    let res = commands::dispatch(cli);
    // A clean end: this process's writer marks go (see
    // image_store::writer_marks); a killed one leaves them to the next.
    image_store::writer_marks::release();
    match res {
        Ok(status) => status.into(),
        // Whoever read our output stopped reading: end as a Go CLI (docker)
        // ends on SIGPIPE, quietly and with 128+SIGPIPE.
        Err(err) if exit::is_stdout_closed(&err) => ExitCode::from(141),
        Err(err) => {
            eprintln!("kiln: {}", exit::render(&err));
            ExitCode::from(exit::code_of(&err))
        }
    }
}
