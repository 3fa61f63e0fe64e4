//! The errors that mean "bad arguments or a bad input, found before the work started" (exit
//! code 2, by `cli::exit_code`): [`BadInput`] for an input file or an output path the user
//! named, [`usage`] for a flag value, and [`check_outputs`], the up-front output-path check.

use anyhow::Result;

use wgtrain::output::OutputKind;

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

/// Checks every output path of a command with the one rule
/// ([`wgtrain::output::check_output`]) before any work: its directory exists (parents are
/// never created) and is not `/`, and a file output is not a directory.
///
/// # Errors
/// [`wgtrain::Error::Output`] for the first bad path, marked as [`BadInput`]
/// (exit 2).
pub(crate) fn check_outputs<'a>(
    outputs: impl IntoIterator<Item = (Option<&'a std::path::Path>, OutputKind)>,
) -> Result<()> {
    for (path, kind) in outputs {
        if let Some(p) = path {
            wgtrain::output::check_output(p, kind).map_err(bad_input)?;
        }
    }
    Ok(())
}

/// A usage error (exit 2): the value of `--name` (or of the setting `name`) is refused for
/// `reason`, as [`wgtrain::Error::InvalidConfig`].
pub(crate) fn usage(
    name: &'static str,
    value: impl ToString,
    reason: impl ToString,
) -> anyhow::Error {
    wgtrain::Error::InvalidConfig {
        name,
        value: value.to_string(),
        reason: reason.to_string(),
    }
    .into()
}
