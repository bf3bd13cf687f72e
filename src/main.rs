//! The `aifp-migrate` binary: parse the flags, run, print, exit with the code SPEC gives.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use aifp_migrate::cli::{self, Cli};
use clap::Parser;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    if let Some(text) = cli.generated() {
        let _ = std::io::Write::write_all(&mut std::io::stdout(), &text);
        return ExitCode::SUCCESS;
    }
    let result = cli.into_options().and_then(|opts| {
        if cli::stops_cleanly(&opts) {
            // Without it a signal ends the process at once, which SQLite survives (the journal
            // rolls back at the next open) but which leaves the unfinished backup behind.
            let _ = aifp_migrate::interrupt::listen();
        }
        let progress = cli::progress(&opts);
        aifp_migrate::run(&opts, &progress).map(|outcome| cli::print(&outcome, &opts))
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            cli::print_error(&e);
            ExitCode::from(e.exit_code())
        }
    }
}
