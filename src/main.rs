//! The `shouhou` binary: parse the command line, run it, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use shouhou::cli::{Cli, run};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // reqwest and sqlx both use rustls; pick the provider once so neither panics choosing.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}
