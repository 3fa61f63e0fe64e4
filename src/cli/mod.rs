//! Argument parsing (clap) and the subcommands. One exit-code rule: bad arguments and bad
//! input files (a dataset, a checkpoint, a metrics file, `MNIST_DIR`), all found before the
//! work starts, exit with code 2 and a one-line error; failures during the work (a GPU
//! error, a diverged run, a failed write or download) exit with code 1.

mod args;
mod bench;
mod commands;
mod engines;
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
            let usage = e.downcast_ref::<BadInput>().is_some()
                || e.downcast_ref::<wgtrain::Error>()
                    .is_some_and(is_usage_error);
            eprintln!("error: {e:#}");
            if usage { 2 } else { 1 }
        }
    }
}

/// Errors that mean "the arguments were wrong", which exit with code 2 like clap's own.
fn is_usage_error(e: &wgtrain::Error) -> bool {
    match e {
        // A size the arguments chose (batch, hidden sizes) that this adapter cannot hold.
        wgtrain::Error::InvalidConfig { .. }
        | wgtrain::Error::Output { .. }
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

/// A bad input file (or input directory) found before the work starts: a dataset that is
/// missing, incomplete or malformed, an unreadable or malformed checkpoint or metrics file.
/// Exits with code 2, like a bad argument; the message is the inner error's.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct BadInput(#[from] pub wgtrain::Error);

/// Marks an error from reading an input the user named as [`BadInput`] (exit code 2).
pub(crate) fn bad_input(e: impl Into<wgtrain::Error>) -> anyhow::Error {
    BadInput(e.into()).into()
}
