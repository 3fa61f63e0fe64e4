//! Argument parsing (clap) and the subcommands. One exit-code rule: bad arguments and bad
//! input files (a dataset, a checkpoint, a metrics file, `MNIST_DIR`), all found before the
//! work starts, exit with code 2 and a one-line error; failures during the work (a GPU
//! error, a diverged run, a failed write or download) exit with code 1.

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
            eprintln!("error: {e:#}");
            exit_code(&e)
        }
    }
}

/// The one exit-code rule for an error: 2 for bad arguments and bad inputs found before
/// the work starts ([`BadInput`], and the library errors [`is_usage_error`] lists), 1 for
/// failures during the work, 130 when Ctrl-C stopped it ([`wgtrain::Error::Interrupted`]).
fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<wgtrain::Error>()
        .is_some_and(|e| matches!(e, wgtrain::Error::Interrupted { .. }))
    {
        return interrupt::EXIT_INTERRUPTED;
    }
    let usage = e.downcast_ref::<BadInput>().is_some()
        || e.downcast_ref::<wgtrain::Error>()
            .is_some_and(is_usage_error);
    if usage { 2 } else { 1 }
}

/// Errors that mean "the arguments were wrong", which exit with code 2 like clap's own.
fn is_usage_error(e: &wgtrain::Error) -> bool {
    match e {
        // A size the arguments chose (batch, hidden sizes) that this adapter cannot hold.
        // (An output path is checked before the work by `commands::check_outputs`, which
        // marks its refusal as `BadInput`; an `Output` error from a write during the work,
        // a full disk say, is a failure: exit 1.)
        wgtrain::Error::InvalidConfig { .. }
        // Another run writes the same output: found before any work.
        | wgtrain::Error::Locked { .. }
        | wgtrain::Error::LimitExceeded { .. } => true,
        // A name or backend the user chose that matches nothing.
        wgtrain::Error::NoAdapter {
            filter,
            explicit_backend,
            ..
        } => !filter.is_empty() || *explicit_backend,
        // Labels that do not fit the class count, found before any work.
        wgtrain::Error::Data(d) => d.is_bad_input(),
        _ => false,
    }
}

/// A bad input found before the work starts: a dataset that is missing, incomplete or
/// malformed, an unreadable or malformed checkpoint or metrics file, an output path that
/// breaks the output rule. Exits with code 2, like a bad argument; the message is the inner
/// error's.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct BadInput(#[from] pub wgtrain::Error);

/// Marks an error from reading an input the user named as [`BadInput`] (exit code 2).
pub(crate) fn bad_input(e: impl Into<wgtrain::Error>) -> anyhow::Error {
    BadInput(e.into()).into()
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use wgtrain::output::OutputKind;

    use super::{bad_input, commands, exit_code};

    /// The same error kind exits 2 when found before the work and 1 during it: an output
    /// path refused by the up-front check, against a write that fails after training.
    #[test]
    fn an_output_error_exits_2_before_the_work_and_1_during_it() {
        let missing = Path::new("/nonexistent/dir/m.jsonl");
        let before = commands::check_outputs([(Some(missing), OutputKind::File)]).unwrap_err();
        assert_eq!(exit_code(&before), 2, "{before:#}");
        let during: anyhow::Error = wgtrain::Error::Output {
            path: PathBuf::from("m.safetensors"),
            reason: "write failed: No space left on device".into(),
        }
        .into();
        assert_eq!(exit_code(&during), 1);
        let diverged: anyhow::Error = wgtrain::Error::NonFiniteLoss {
            epoch: 1,
            step: 2,
            last_finite: "none".into(),
        }
        .into();
        assert_eq!(exit_code(&diverged), 1);
        let malformed = bad_input(wgtrain::Error::Format {
            path: PathBuf::from("m.jsonl"),
            reason: "line 1: not an epoch record".into(),
        })
        .context("reading the metrics file");
        assert_eq!(exit_code(&malformed), 2, "context keeps the mark");
        let usage: anyhow::Error = wgtrain::Error::InvalidConfig {
            name: "gamma",
            value: "0.5".into(),
            reason: "applies to --lr-schedule step only".into(),
        }
        .into();
        assert_eq!(exit_code(&usage), 2);
    }
}
