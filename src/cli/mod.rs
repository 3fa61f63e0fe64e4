//! Argument parsing (clap) and the subcommands. Bad arguments exit with code 2 and a
//! one-line error before any work; failures during a run exit with code 1.

mod args;
mod bench;
mod commands;
mod engines;
mod interrupt;
mod profile;
mod tune;

use clap::Parser;

pub use args::Cli;

/// Parses the arguments, runs the command and returns the process exit code.
pub fn run() -> i32 {
    let cli = Cli::parse();
    match commands::dispatch(cli) {
        Ok(()) => 0,
        Err(e) => {
            let lib = e.downcast_ref::<wgtrain::Error>();
            let usage = lib.is_some_and(is_usage_error);
            let interrupted = lib.is_some_and(|e| matches!(e, wgtrain::Error::Interrupted { .. }));
            eprintln!("error: {e:#}");
            if interrupted {
                interrupt::EXIT_INTERRUPTED
            } else if usage {
                2
            } else {
                1
            }
        }
    }
}

/// Errors that mean "the arguments were wrong", which exit with code 2 like clap's own.
fn is_usage_error(e: &wgtrain::Error) -> bool {
    match e {
        // A size the arguments chose (batch, hidden sizes) that this adapter cannot hold.
        wgtrain::Error::InvalidConfig { .. }
        | wgtrain::Error::Output { .. }
        // Another run writes the same output: found before any work.
        | wgtrain::Error::Locked { .. }
        | wgtrain::Error::LimitExceeded { .. } => true,
        // A name or backend the user chose that matches nothing.
        wgtrain::Error::NoAdapter {
            filter,
            explicit_backend,
            ..
        } => !filter.is_empty() || *explicit_backend,
        _ => false,
    }
}
